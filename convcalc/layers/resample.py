"""Resampling: Upsample, PixelShuffle, PixelUnshuffle.

Upsample's output size is torch's (``F.interpolate``): ``size``, or ⌊n·scale_factor⌋ per axis.
Its sources per output index are ATen's (``UpSample.h``: ``nearest_idx``,
``area_pixel_compute_source_index``); the field is an upper bound (interpolation weights can be
zero at exact positions, and neighbouring outputs may share a source).
"""

from __future__ import annotations

import math
from typing import Any

from convcalc.layers.base import (
    Ctx,
    Family,
    Out,
    axis_names,
    dims,
    register,
    rf_sources,
    rf_step,
    spatial,
    tup,
)

_MODE_ND = {"linear": 1, "bilinear": 2, "bicubic": 2, "trilinear": 3}


def upsample(ctx: Ctx, layer: Any) -> Out:
    fmap = spatial(ctx)
    if fmap is None:
        return Out(None, None)
    nd = len(fmap.sizes)
    if (layer.size is None) == (layer.scale_factor is None):
        ctx.error("give exactly one of size and scale_factor", "e.g. scale_factor: 2")
        return Out(None, None)
    want_nd = _MODE_ND.get(layer.mode)
    if want_nd is not None and want_nd != nd:
        ctx.error(
            f"mode {layer.mode!r} is for {want_nd}-D inputs; this one has {nd} spatial axes",
            f"use mode: {[m for m, n in _MODE_ND.items() if n == nd][0] if nd in (1, 2, 3) else 'nearest'}"
            " or nearest",
        )
        return Out(None, None)
    if layer.align_corners is not None and want_nd is None:
        ctx.error("align_corners is only for the linear modes", "remove align_corners, or use mode: bilinear")
        return Out(None, None)
    for name, value in (("size", layer.size), ("scale_factor", layer.scale_factor)):
        if isinstance(value, (list, tuple)) and len(value) != nd:
            ctx.error(f"{name} has {len(value)} values; the input has {nd} spatial axes",
                      f"give one {name}, or {nd}")  # fmt: skip
            return Out(None, None)
    n = fmap.sizes
    if layer.size is not None:
        outs, scales = tup(layer.size, nd), (None,) * nd
    else:
        scales = tup(layer.scale_factor, nd)
        outs = tuple(math.floor(n[a] * scales[a]) for a in range(nd))
    if min(outs) < 1:
        ctx.error(f"output size {dims(outs)} is below 1", "use a larger scale_factor or size")
        return Out(None, None)
    names = axis_names(nd)
    ctx.note(lambda: "\n".join(
        f"{names[a]} = {outs[a]}" + ("" if scales[a] is None else f" = ⌊{n[a]}·{scales[a]:g}⌋")
        for a in range(nd)
    ))  # fmt: skip
    rf = ctx.rf
    new_rf = tuple(
        rf_sources(rf[a], _sources(layer.mode, layer.align_corners, n[a], outs[a], scales[a]), outs[a])
        for a in range(len(rf))
    )
    return Out((fmap.c, *outs), new_rf, regime="bound")


def _sources(mode: str, align_corners: bool | None, n: int, out: int, scale: float | None):
    """The input indices output q reads on one axis (ATen's upsampling kernels)."""
    if mode in ("nearest", "nearest-exact"):
        ratio = (1.0 / scale) if scale is not None else n / out
        if mode == "nearest":
            return lambda q: [min(int(math.floor(q * ratio)), n - 1)]
        return lambda q: [min(int(math.floor((q + 0.5) * ratio)), n - 1)]
    taps = (-1, 0, 1, 2) if mode == "bicubic" else (0, 1)
    if align_corners:
        ratio = (n - 1) / (out - 1) if out > 1 else 0.0

        def source(q: int) -> float:
            return q * ratio
    else:
        ratio = (1.0 / scale) if scale is not None else n / out

        def source(q: int) -> float:
            real = (q + 0.5) * ratio - 0.5
            return real if mode == "bicubic" else max(real, 0.0)

    return lambda q: sorted({min(max(int(math.floor(source(q))) + t, 0), n - 1) for t in taps})


def pixel_shuffle(ctx: Ctx, layer: Any) -> Out:
    fmap = spatial(ctx, 2)
    if fmap is None:
        return Out(None, None)
    r = layer.upscale_factor
    if fmap.c % (r * r):
        ctx.error(f"{fmap.c} channels are not divisible by upscale_factor² = {r * r}",
                  f"give the layer before it a multiple of {r * r} channels")  # fmt: skip
        return Out(None, None)
    outs = tuple(v * r for v in fmap.sizes)
    ctx.note(f"C = {fmap.c}/{r}² = {fmap.c // (r * r)}; H, W ×{r}")
    rf = ctx.rf
    new_rf = tuple(rf_sources(rf[a], lambda q: [q // r], outs[a]) for a in range(len(rf)))
    return Out((fmap.c // (r * r), *outs), new_rf, regime="bound")


def pixel_unshuffle(ctx: Ctx, layer: Any) -> Out:
    fmap = spatial(ctx, 2)
    if fmap is None:
        return Out(None, None)
    r = layer.downscale_factor
    if any(v % r for v in fmap.sizes):
        ctx.error(f"the {dims(fmap.sizes)} input is not divisible by downscale_factor {r}",
                  f"use an input size that is a multiple of {r}")  # fmt: skip
        return Out(None, None)
    ctx.note(f"C = {fmap.c}·{r}² = {fmap.c * r * r}; H, W ÷{r}")
    rf = ctx.rf
    new_rf = tuple(rf_step(rf[a], r, r, 0) for a in range(len(rf)))  # over all channels: an r×r window
    return Out((fmap.c * r * r, *(v // r for v in fmap.sizes)), new_rf)


def _summary(layer: Any, inferred: dict) -> str:
    if layer.type == "Upsample":
        how = f"×{layer.scale_factor}" if layer.size is None else f"→{layer.size}"
        return f"{how} {layer.mode}".replace("[", "").replace("]", "")
    if layer.type == "PixelShuffle":
        return f"×{layer.upscale_factor}"
    return f"÷{layer.downscale_factor}"


register("Upsample", Family(upsample, _summary))
register("PixelShuffle", Family(pixel_shuffle, _summary, nd=2))
register("PixelUnshuffle", Family(pixel_unshuffle, _summary, nd=2))
