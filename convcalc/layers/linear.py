"""Linear, Flatten and Unflatten: the layers that change a tensor's rank."""

from __future__ import annotations

import math
from typing import Any

from convcalc.layers.base import (
    Ctx,
    Family,
    FixAction,
    Out,
    check_count,
    explain_params,
    fmt_shape,
    global_rf,
    register,
)


def linear(ctx: Ctx, layer: Any) -> Out:
    shape = ctx.shape
    if ctx.layout is not None:
        return _linear_last(ctx, layer)
    if len(shape) != 1:
        ctx.error(
            f"Linear gets a {fmt_shape(shape)} input; it needs a flat vector",
            "add a Flatten layer before it",
            FixAction("insert", (("type", "Flatten"),)),
        )
        return Out(None, None)
    f_in = shape[0]
    check_count(ctx, "in_features", layer.in_features, f_in)
    if ctx.errors:
        return Out(None, None)
    weight = f_in * layer.out_features
    bias = layer.out_features if layer.bias else 0
    explain_params(ctx, weight, bias, f"{f_in}·{layer.out_features}")
    return Out((layer.out_features,), ctx.rf, weight, bias, 0, weight)


def _linear_last(ctx: Ctx, layer: Any) -> Out:
    """On a permuted tensor whose channels are last (ConvNeXt's pointwise convolutions): torch's
    matmul over the last dim at every position, positions·in·out MACs, no positions mixed."""
    shape = ctx.shape
    if ctx.layout[-1] != 0:
        ctx.error(f"Linear acts on the last dim, which is a spatial one of the permuted {fmt_shape(shape)} "
                  "input", "permute the channels last first, e.g. dims: [0, 2, 3, 1]")  # fmt: skip
        return Out(None, None)
    f_in = shape[-1]
    check_count(ctx, "in_features", layer.in_features, f_in)
    if ctx.errors:
        return Out(None, None)
    positions = math.prod(shape[:-1])
    weight = f_in * layer.out_features
    bias = layer.out_features if layer.bias else 0
    explain_params(ctx, weight, bias, f"{f_in}·{layer.out_features}")
    ctx.note(f"MACs = {positions:,} positions · {f_in}·{layer.out_features} = {positions * weight:,}; "
             "channels last: no positions mixed")  # fmt: skip
    return Out(
        (*shape[:-1], layer.out_features), ctx.rf, weight, bias, 0, positions * weight, layout=ctx.layout
    )


def _dim(value: int, ndim: int) -> int | None:
    return value % ndim if -ndim <= value < ndim else None


def flatten(ctx: Ctx, layer: Any) -> Out:
    shape = ctx.shape
    full = (None, *shape)  # with the batch dim
    start, end = _dim(layer.start_dim, len(full)), _dim(layer.end_dim, len(full))
    if start is None or end is None:
        ctx.error(f"start_dim/end_dim out of range for an input of {len(full)} dims (batch included)")
        return Out(None, None)
    if start == 0:
        start_1 = FixAction("set", (("start_dim", 1),))
        ctx.error("start_dim=0 would fold the batch into the features", "use start_dim: 1", start_1)
        return Out(None, None)
    if start > end:
        ctx.error(f"start_dim {layer.start_dim} comes after end_dim {layer.end_dim}")
        return Out(None, None)
    out = (*shape[: start - 1], math.prod(shape[start - 1 : end]), *shape[end:])
    ctx.note(lambda: f"{' · '.join(str(v) for v in shape[start - 1 : end])} = {out[start - 1]:,}")
    return Out(out, global_rf(ctx) if len(out) != len(shape) else ctx.rf)


def unflatten(ctx: Ctx, layer: Any) -> Out:
    shape = ctx.shape
    dim = _dim(layer.dim, len(shape) + 1)
    if dim is None or dim == 0:
        ctx.error(
            f"dim={layer.dim} is not a dim of the {fmt_shape(shape)} input (batch is dim 0)",
            "use dim: 1 for the first dim after the batch",
        )
        return Out(None, None)
    sizes = tuple(layer.unflattened_size)
    n = shape[dim - 1]
    if math.prod(sizes) != n:
        ctx.error(
            f"unflattened_size {list(sizes)} holds {math.prod(sizes):,} values but dim {layer.dim} has {n:,}",
            f"use sizes whose product is {n:,}",
        )
        return Out(None, None)
    out = (*shape[: dim - 1], *sizes, *shape[dim:])
    ctx.note(f"{n:,} = {' · '.join(map(str, sizes))}")
    rf = ctx.rf if len(out) == len(shape) else global_rf(ctx)
    return Out(out, rf)


register(
    "Linear", Family(linear, lambda layer, inferred: f"→{layer.out_features}", global_rf=True, layout="own")
)
register("Flatten", Family(flatten, global_rf=True))
register(
    "Unflatten", Family(unflatten, lambda layer, inferred: "→" + "×".join(map(str, layer.unflattened_size)))
)
