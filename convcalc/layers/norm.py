"""Normalisation: BatchNorm/InstanceNorm 1d/2d/3d, GroupNorm, LayerNorm."""

from __future__ import annotations

import math
from typing import Any

from convcalc.layers.base import (
    Ctx,
    Family,
    Out,
    channels_first,
    check_count,
    fmt_shape,
    register,
    rf_along,
    spatial,
)


def batchnorm(ctx: Ctx, layer: Any, nd: int) -> Out:
    shape = ctx.shape
    # BatchNorm1d takes (C,) or (C, L); 2d (C, H, W); 3d (C, D, H, W) (torch's _check_input_dim)
    if len(shape) != nd + 1 and not (nd == 1 and len(shape) == 1) and spatial(ctx, nd) is None:
        return Out(None, None)  # spatial() says what the input should be
    c = shape[0]
    check_count(ctx, "num_features", layer.num_features, c)
    if layer.eps == 0:  # F.batch_norm: "eps must be positive during training" (eval would run)
        ctx.error("eps=0: torch's batch_norm refuses it when training", "use a positive eps, e.g. 1e-5")
    if ctx.errors:
        return Out(None, None)
    weight, bias = (c, c) if layer.affine else (0, 0)
    buffers = 2 * c + 1 if layer.track_running_stats else 0  # mean, var, num_batches_tracked
    ctx.note(lambda: f"shape unchanged; params = {'2·' + str(c) if layer.affine else '0'} (γ, β)"
                     f"; buffers = {buffers} (running mean, var, count)")  # fmt: skip
    return Out(shape, ctx.rf, weight, bias, buffers)


def _mix_spatial(ctx: Ctx, axes: range | list[int]) -> tuple:
    """Statistics over these spatial axes: every unit sees the whole of each of them."""
    rf, shape = ctx.rf, channels_first(ctx.shape, ctx.layout)
    if len(shape) != len(rf) + 1:
        return rf
    return tuple(rf_along(rf[a], shape[1 + a], ctx.n_in[a]) if a in axes else rf[a] for a in range(len(rf)))


def instancenorm(ctx: Ctx, layer: Any, nd: int) -> Out:
    fmap = spatial(ctx, nd)
    if fmap is None:
        return Out(None, None)
    c = fmap.c
    check_count(ctx, "num_features", layer.num_features, c)
    if math.prod(ctx.shape[1:]) == 1:  # torch: "Expected more than 1 spatial element when training"
        ctx.error(
            f"normalises each channel over its positions, but the {fmt_shape(ctx.shape)} input has only one "
            "(torch refuses it when training)",
            "move it before the layer that shrinks the input to one position, or use BatchNorm",
        )
    if ctx.errors:
        return Out(None, None)
    weight, bias = (c, c) if layer.affine else (0, 0)
    buffers = 2 * c + 1 if layer.track_running_stats else 0
    ctx.note("shape unchanged; each unit is normalised by its channel's mean and variance over all positions")
    return Out(ctx.shape, _mix_spatial(ctx, range(nd)), weight, bias, buffers)


def groupnorm(ctx: Ctx, layer: Any) -> Out:
    shape = ctx.shape
    if len(shape) < 2:
        ctx.error(
            f"needs a (C, ...) feature map but gets {fmt_shape(shape)}", "use LayerNorm on a flat input"
        )
        return Out(None, None)
    c = shape[0]
    check_count(ctx, "num_channels", layer.num_channels, c)
    if c % layer.num_groups:
        ctx.error(
            f"num_groups={layer.num_groups} does not divide the {c} channels",
            f"use a num_groups that divides {c}",
        )
    if ctx.errors:
        return Out(None, None)
    weight, bias = (c, c) if layer.affine else (0, 0)
    ctx.note(f"shape unchanged; statistics over groups of {c // layer.num_groups} channels and all positions")
    return Out(shape, _mix_spatial(ctx, range(len(shape) - 1)), weight, bias)


def layernorm(ctx: Ctx, layer: Any) -> Out:
    shape = ctx.shape
    ns = (
        (layer.normalized_shape,)
        if isinstance(layer.normalized_shape, int)
        else tuple(layer.normalized_shape)
    )
    if len(ns) > len(shape) or tuple(shape[len(shape) - len(ns) :]) != ns:
        want = list(shape[-len(ns) :]) if len(ns) <= len(shape) else list(shape)
        ctx.error(
            f"normalized_shape {list(ns)} is not the last {len(ns)} dims of the {fmt_shape(shape)} input",
            f"use normalized_shape: {want[0] if len(want) == 1 else want}",
        )
        return Out(None, None)
    n = math.prod(ns)
    weight = n if layer.elementwise_affine else 0
    bias = n if layer.elementwise_affine and layer.bias else 0
    first = len(shape) - len(ns)  # dims from here on are normalised together
    layout = ctx.layout or tuple(range(len(shape)))  # permuted: which channels-first dims they are
    mixed = [layout[k] - 1 for k in range(first, len(shape)) if layout[k] >= 1]  # spatial axes
    ctx.note(f"shape unchanged; statistics over the last {len(ns)} dims ({fmt_shape(ns)} values)")
    return Out(shape, _mix_spatial(ctx, mixed), weight, bias, layout=ctx.layout)


def _with_act(layer: Any, inferred: dict) -> str:
    return f"+{layer.act}" if layer.act else ""


for _nd in (1, 2, 3):
    register(f"BatchNorm{_nd}d", Family(lambda ctx, layer, nd=_nd: batchnorm(ctx, layer, nd), nd=_nd))
    register(f"InstanceNorm{_nd}d", Family(lambda ctx, layer, nd=_nd: instancenorm(ctx, layer, nd), nd=_nd))
# its activation is pointwise: the field is BatchNorm's
register("BatchNormAct2d", Family(lambda ctx, layer: batchnorm(ctx, layer, 2), _with_act, nd=2))
register("GroupNorm", Family(groupnorm, lambda layer, inferred: f"{layer.num_groups} groups"))
register("LayerNorm", Family(layernorm, layout="own"))  # over the last dims, whichever they are
