"""Tensors that are not a layer's output in the usual sense: ``Parameter`` (a learnable tensor a
block owns, reading nothing), ``Permute`` (the axes moved, torchvision.ops.Permute) and
``LayerNorm2d`` (a LayerNorm over the channels at each position, torchvision's and timm's).

A permuted tensor keeps its receptive field per axis of the network input: only the dims it is
stored in move. The engine carries the order as a *layout* (``Ctx.layouts``, ``Out.layout``):
``layout[k]`` is the channels-first dim held at dim ``k`` (batch left out), so ConvNeXt's
channels-last ``(H, W, C)`` is ``(1, 2, 0)``; families that know nothing of it refuse a
permuted input (``Family.layout``).

A ``Parameter`` sees no input position: its field is None, and a merge of it with a tensor has
the tensor's field (``convcalc.layers.merge``).
"""

from __future__ import annotations

from typing import Any

from convcalc.layers.base import Ctx, Family, Out, check_count, fmt_count, fmt_shape, numel, register, spatial


def parameter(ctx: Ctx, layer: Any) -> Out:
    shape = tuple(layer.shape)
    n = numel(shape)
    init = f"N(0, {layer.std:g}²)" if layer.std is not None else f"{layer.value:g}"
    read = f", read as {fmt_shape(tuple(layer.view))}" if layer.view else ""
    ctx.note(f"a learnable {fmt_shape(shape)} tensor filled with {init}{read}: {fmt_count(n, 'parameter')}; "
             "it reads nothing, so it sees no input position")  # fmt: skip
    return Out(tuple(layer.view) if layer.view else shape, None, weight=n)


def _channels_last_example(ndim: int) -> list[int]:
    return [0, *range(2, ndim), 1]


def permute(ctx: Ctx, layer: Any) -> Out:
    shape = ctx.shape
    ndim = len(shape) + 1  # with the batch dim
    dims = [d % ndim for d in layer.dims if -ndim <= d < ndim]
    if len(layer.dims) != ndim or sorted(dims) != list(range(ndim)):
        batched = f"(N, {', '.join(map(str, shape))})"
        ctx.error(
            f"dims {list(layer.dims)} is not an order of the {ndim} dims of a {batched} input (batch: 0)",
            f"give each of 0..{ndim - 1} once, e.g. dims: {_channels_last_example(ndim)} (channels last)",
        )
        return Out(None, None)
    if dims[0] != 0:
        example = _channels_last_example(ndim)
        ctx.error(f"dims {list(layer.dims)} moves the batch dim 0", f"keep 0 first, e.g. {example}")
        return Out(None, None)
    before = ctx.layout or tuple(range(ndim - 1))
    out = tuple(shape[d - 1] for d in dims[1:])
    layout = tuple(before[d - 1] for d in dims[1:])
    channels_first = layout == tuple(range(ndim - 1))
    ctx.note(
        f"{fmt_shape(shape)} -> {fmt_shape(out)}: a view, 0 MACs; "
        + ("channels first again" if channels_first else "the receptive field per input axis unchanged")
    )
    return Out(out, ctx.rf, layout=None if channels_first else layout)


def layernorm2d(ctx: Ctx, layer: Any) -> Out:
    fmap = spatial(ctx, 2)
    if fmap is None:
        return Out(None, None)
    c = fmap.c
    check_count(ctx, "normalized_shape", layer.normalized_shape, c)
    if ctx.errors:
        return Out(None, None)
    weight = c if layer.elementwise_affine else 0
    bias = c if layer.elementwise_affine and layer.bias else 0
    ctx.note(f"shape unchanged; each position normalised over its {c} channels (no positions mixed); "
             f"params = {weight} + {bias} (γ, β)")  # fmt: skip
    return Out(ctx.shape, ctx.rf, weight, bias)


def _summary(layer: Any, inferred: dict) -> str:
    if layer.type == "Parameter":
        stored = fmt_shape(tuple(layer.shape))
        return f"{stored} as {fmt_shape(tuple(layer.view))}" if layer.view else stored
    if layer.type == "Permute":
        return ",".join(map(str, layer.dims))
    return ""


register("Parameter", Family(parameter, _summary))
register("Permute", Family(permute, _summary, layout="own"))
register("LayerNorm2d", Family(layernorm2d, _summary, nd=2))
