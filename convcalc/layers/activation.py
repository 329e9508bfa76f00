"""Position-by-position layers: activations, dropout, Softmax over a dim, PReLU, ChannelShuffle."""

from __future__ import annotations

from typing import Any

from convcalc.layers.base import Ctx, Family, Out, fmt_shape, register, rf_along

POINTWISE = (
    "ReLU", "ReLU6", "LeakyReLU", "ELU", "SELU", "CELU", "GELU", "SiLU", "Mish", "Hardswish",
    "Hardsigmoid", "Hardtanh", "Tanh", "Sigmoid", "Softplus", "Softsign", "Tanhshrink", "Identity",
    "Dropout", "AlphaDropout", "StochasticDepth",
)  # fmt: skip
CHANNEL_DROPOUT = {"Dropout1d": 1, "Dropout2d": 2, "Dropout3d": 3, "FeatureAlphaDropout": None}


def pointwise(ctx: Ctx, layer: Any) -> Out:
    ctx.note("shape unchanged")
    return Out(ctx.shape, ctx.rf)


def channel_dropout(ctx: Ctx, layer: Any) -> Out:
    nd = CHANNEL_DROPOUT[layer.type]
    shape = ctx.shape
    if (nd is not None and len(shape) != nd + 1) or len(shape) < 2:  # torch warns, and still runs
        want = {1: "(C, L)", 2: "(C, H, W)", 3: "(C, D, H, W)"}.get(nd, "(C, ...)")
        ctx.warn(
            f"{layer.type} drops whole channels of a {want} input; it gets {fmt_shape(shape)}",
            "use Dropout after a Flatten" if len(shape) == 1 else f"use Dropout{len(shape) - 1}d",
        )
    ctx.note("shape unchanged; whole channels are zeroed together")
    return Out(shape, ctx.rf)


def softmax(ctx: Ctx, layer: Any) -> Out:
    shape = ctx.shape
    ndim = len(shape) + 1
    if layer.dim is None:  # torch's legacy choice (torch.nn.functional._get_softmax_dim)
        dim = 0 if ndim in (0, 1, 3) else 1
    elif not -ndim <= layer.dim < ndim:
        ctx.error(f"dim={layer.dim} is out of range for a {ndim}-dim input (batch included)")
        return Out(None, None)
    else:
        dim = layer.dim % ndim
    rf = ctx.rf
    a = dim - 2  # the spatial axis normalised over, if any
    if len(shape) == len(rf) + 1 and 0 <= a < len(rf):
        # every unit along that axis depends on the whole axis: all share one field (jump 0)
        rf = tuple(rf_along(rf[b], shape[1 + b], ctx.n_in[b]) if b == a else rf[b] for b in range(len(rf)))
        ctx.note(f"shape unchanged; each output depends on the whole of spatial axis {a}")
        return Out(shape, rf)
    ctx.note("shape unchanged")
    return Out(shape, rf)


def prelu(ctx: Ctx, layer: Any) -> Out:
    shape = ctx.shape
    n = layer.num_parameters
    if n != 1 and (len(shape) < 1 or shape[0] != n):
        ctx.error(
            f"num_parameters={n} but the input has {shape[0]} channels",
            f"use num_parameters: 1 (one slope) or {shape[0]} (one per channel)",
        )
        return Out(None, None)
    ctx.note(f"shape unchanged; params = {n} slope{'s' if n > 1 else ''}")
    return Out(shape, ctx.rf, n, 0)


def channel_shuffle(ctx: Ctx, layer: Any) -> Out:
    shape = ctx.shape
    if len(shape) < 2 or shape[0] % layer.groups:
        ctx.error(
            f"groups={layer.groups} must divide the channels of a (C, ...) input; it gets {fmt_shape(shape)}",
            "use a groups value that divides the channel count",
        )
        return Out(None, None)
    ctx.note(f"shape unchanged; channels reordered across {layer.groups} groups")
    return Out(shape, ctx.rf)


def _summary(layer: Any, inferred: dict) -> str:
    if layer.type in ("Dropout", "AlphaDropout", *CHANNEL_DROPOUT):
        return f"p={layer.p:g}"
    if layer.type == "LeakyReLU":
        return f"slope={layer.negative_slope:g}"
    if layer.type in ("Softmax", "LogSoftmax") and layer.dim is not None:
        return f"dim={layer.dim}"
    if layer.type == "ChannelShuffle":
        return f"g{layer.groups}"
    return ""


register(POINTWISE, Family(pointwise, _summary, layout="keep"))  # any axis order: position by position
register(tuple(CHANNEL_DROPOUT), Family(channel_dropout, _summary))
register(("Softmax", "LogSoftmax"), Family(softmax, _summary))
register("PReLU", Family(prelu))
register("ChannelShuffle", Family(channel_shuffle, _summary))
