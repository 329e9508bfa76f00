"""Convolutions: Conv1d/2d/3d and ConvTranspose1d/2d/3d, per spatial axis."""

from __future__ import annotations

from typing import Any

from convcalc.layers.base import (
    Ctx,
    Family,
    Out,
    axis_names,
    check_count,
    conv_transpose_out,
    dims,
    explain_params,
    fmt_shape,
    numel,
    params_line,
    register,
    rf_lines,
    rf_step,
    rf_transposed,
    same_padding,
    short,
    spatial,
    tup,
    unseen,
)


def _geometry(ctx: Ctx, layer: Any, nd: int):
    """What convolutions and transposed ones check and read alike: an input with ``nd``
    spatial axes, in_channels, groups, (kernel, stride, dilation) per axis and a solved
    ``padding: auto`` (else None). Returns None when the layer cannot be computed."""
    fmap = spatial(ctx, nd)
    if fmap is None:
        return None
    check_count(ctx, "in_channels", layer.in_channels, fmap.c)
    k, s, d = layer.kernel_size, layer.stride, layer.dilation
    if type(k) is not int or type(s) is not int or type(d) is not int:  # per axis (the common ints: inline)
        k, s, d = tup(k, nd), tup(s, nd), tup(d, nd)
    else:
        k, s, d = (k,) * nd, (s,) * nd, (d,) * nd
    solved = None
    if layer.padding == "auto":
        solved = solve_padding(ctx, layer, ctx.shape)
        if solved is None:
            return None
    _check_groups(ctx, layer, fmap.c)
    return fmap, k, s, d, solved


def conv(ctx: Ctx, layer: Any, nd: int) -> Out:
    geometry = _geometry(ctx, layer, nd)
    if geometry is None:
        return Out(None, None)
    fmap, k, s, d, solved = geometry
    padding = layer.padding
    if solved is not None:
        pads = [same_padding(k[a], d[a]) if p == "same" else (p, p) for a, p in enumerate(solved[0])]
    elif padding == "same":
        if any(v != 1 for v in s):
            ctx.error("padding='same' needs stride 1", "use stride 1, or give the padding as a number")
        pads = [same_padding(k[a], d[a]) for a in range(nd)]
    elif padding == "valid":
        pads = [(0, 0)] * nd
    elif isinstance(padding, int):
        pads = [(padding, padding)] * nd
    else:
        pads = [(p, p) for p in padding]
    # One pass over the axes (a deep spec spends most of its time here): output size, the
    # input positions no window reaches, and the receptive field (Araujo et al. 2019).
    size, rf = fmap.sizes, ctx.rf
    outs, lost, new_rf = [], [], []
    for a in range(nd):
        n, k_a, s_a, d_a, (left, right) = size[a], k[a], s[a], d[a], pads[a]
        out = (n + left + right - d_a * (k_a - 1) - 1) // s_a + 1  # conv_out
        outs.append(out)
        lost.append(max(0, n + left - ((out - 1) * s_a + d_a * (k_a - 1) + 1)))  # unseen
        if a < len(rf):
            new_rf.append(rf_step(rf[a], k_a, s_a, left, d_a))
    names = axis_names(nd)
    ctx.note(lambda: "\n".join(
        f"{names[a]} = ⌊({size[a]} + {pads[a][0]} + {pads[a][1]} − {d[a]}·({k[a]}−1) − 1)/{s[a]}⌋ + 1 "
        f"= {outs[a]}"
        for a in range(nd)
    ))  # fmt: skip
    if min(outs) < 1 or ctx.errors:
        sizes_ok(ctx, outs, size, pads, k, d)
        return Out(None, None)
    if any(lost):
        warn_unseen(ctx, size, k, s, pads, d, outs)
    c_in, c_out, g = fmap.c, layer.out_channels, layer.groups
    taps = numel(k)
    weight = c_out * (c_in // g) * taps
    bias = c_out if layer.bias else 0
    macs = c_out * numel(outs) * (c_in // g) * taps
    out_shape = (c_out, *outs)
    new_rf = tuple(new_rf)
    shape_in, apart = ctx.shape, ctx.axes_apart

    def lines() -> str:  # one lazy note for params, weight sharing and the field
        parts = [
            params_line(weight, bias, f"{c_out}·({c_in}/{g})·{'·'.join(map(str, k))}"),
            _sharing_line(shape_in, out_shape, weight + bias),
            "" if apart else rf_lines(rf, new_rf, k, s, d, [p[0] for p in pads]),
        ]
        return "\n".join(part for part in parts if part)

    ctx.note(lines)
    return Out(out_shape, new_rf, weight, bias, 0, macs)


def conv_transpose(ctx: Ctx, layer: Any, nd: int) -> Out:
    geometry = _geometry(ctx, layer, nd)
    if geometry is None:
        return Out(None, None)
    fmap, k, s, d, solved = geometry
    if solved is not None:
        p, op = solved
    else:
        p, op = tup(layer.padding, nd), tup(layer.output_padding, nd)
    names = axis_names(nd)
    for a in range(nd):
        if op[a] >= max(s[a], d[a]):
            ctx.error(
                f"output_padding {op[a]} on {names[a]} must be smaller than max(stride, dilation) = "
                f"{max(s[a], d[a])}",
                f"use output_padding < {max(s[a], d[a])}",
            )
    size = fmap.sizes
    outs = [conv_transpose_out(size[a], k[a], s[a], p[a], d[a], op[a]) for a in range(nd)]
    ctx.note(lambda: "\n".join(
        f"{names[a]} = ({size[a]}−1)·{s[a]} − 2·{p[a]} + {d[a]}·({k[a]}−1) + {op[a]} + 1 = {outs[a]}"
        for a in range(nd)
    ))  # fmt: skip
    if min(outs) < 1:
        ctx.error(
            f"output size {dims(outs)} is below 1: the padding {dims(p)} removes more than the layer adds",
            "reduce padding",
        )
        return Out(None, None)
    if ctx.errors:
        return Out(None, None)
    c_in, c_out, g = fmap.c, layer.out_channels, layer.groups
    taps = numel(k)
    weight = c_in * (c_out // g) * taps
    bias = c_out if layer.bias else 0
    macs = c_in * numel(size) * (c_out // g) * taps
    explain_params(ctx, weight, bias, lambda: f"{c_in}·({c_out}/{g})·{'·'.join(map(str, k))}")
    rf = ctx.rf
    new_rf = tuple(rf_transposed(rf[a], k[a], s[a], p[a], d[a]) for a in range(len(rf)))
    return Out((c_out, *outs), new_rf, weight, bias, 0, macs, regime="bound")


def solve_padding(ctx: Ctx, layer: Any, shape: tuple[int, ...]):
    """``padding: auto`` (2-D layers): the (padding, output_padding) pairs that give the
    layer's ``output_shape`` (a pad may be 'same'), recorded in ``ctx.inferred``; None after an
    error."""
    from convcalc import solve  # the solver builds on the per-axis functions in layers.base

    want = layer.output_shape
    c_out = shape[0] if layer.type in ("MaxPool2d", "AvgPool2d") else layer.out_channels
    if len(want) == 3 and want[0] != c_out:
        ctx.error(
            f"output_shape {fmt_shape(want)} has {want[0]} channels but the layer gives {c_out}",
            f"use output_shape [{c_out}, {want[1]}, {want[2]}], or [{want[1]}, {want[2]}]",
        )
        return None
    try:
        setting = solve.auto_padding(layer, shape[1:], tuple(want[-2:]))
    except solve.SolveError as error:
        ctx.error(error.message, error.fix)
        return None
    pads, ops = (setting.h.padding, setting.w.padding), (setting.h.output_padding, setting.w.output_padding)
    ctx.inferred["padding"] = "same" if "same" in pads else pads
    if layer.type == "ConvTranspose2d":
        ctx.inferred["output_padding"] = ops
    solved = ", ".join(f"{key}={value}" for key, value in ctx.inferred.items() if key.endswith("padding"))
    ctx.note(f"padding: auto for output {fmt_shape(want[-2:])}: {solved}")
    return pads, ops


def _check_groups(ctx: Ctx, layer: Any, c_in: int) -> None:
    g = layer.groups
    if g == 1:  # divides everything
        return
    for field_name, value in (("in_channels", c_in), ("out_channels", layer.out_channels)):
        if value % g:
            ctx.error(
                f"groups={g} does not divide {field_name}={value}",
                f"use a groups value that divides both {c_in} and {layer.out_channels}",
            )


def sizes_ok(ctx: Ctx, outs, size, pads, k, d) -> bool:
    if min(outs) >= 1 and not ctx.errors:
        return True
    if min(outs) < 1:
        padded = [size[a] + pads[a][0] + pads[a][1] for a in range(len(size))]
        k_eff = [d[a] * (k[a] - 1) + 1 for a in range(len(size))]
        ctx.error(
            f"output size {dims(outs)} is below 1: the (dilated) kernel "
            f"{dims(k_eff)} is larger than the padded input {dims(padded)}",
            "use a smaller kernel_size or dilation, add padding, or remove a downsampling layer above",
        )
    return False


_UNIT = {"L": "position", "D": "slice", "H": "row", "W": "column"}


def warn_unseen(ctx: Ctx, size, k, s, pads, d, outs) -> None:
    lost = [unseen(size[a], k[a], s[a], *pads[a], d[a], outs[a]) for a in range(len(size))]
    if not any(lost):
        return
    names = axis_names(len(size))
    parts = [
        f"the last {n} {_UNIT.get(names[a], 'unit')}{'s' if n > 1 else ''}" for a, n in enumerate(lost) if n
    ]
    if parts:
        ctx.warn(
            f"{' and '.join(parts)} of its {dims(size)}{'-long' if len(size) == 1 else ''} input "
            f"{'is' if sum(lost) == 1 else 'are'} never seen "
            "(the division by the stride is not exact)",
            "adjust padding or the input size so that (size + padding − kernel) is a multiple of the stride",
        )


def _sharing_line(shape_in, shape_out, params: int) -> str:
    """What a fully connected layer between the same input and output would cost."""
    n_in, n_out = numel(shape_in), numel(shape_out)
    dense = n_in * n_out + n_out
    ratio = dense / params if params else float("inf")
    return (
        f"a Linear from {fmt_shape(shape_in)} to {fmt_shape(shape_out)} would need "
        f"{n_in:,}·{n_out:,} + {n_out:,} = {dense:,} params ({ratio:,.0f}× more: weight sharing)"
    )


def summary(layer: Any, inferred: dict) -> str:
    nd = int(layer.type[-2])
    padding = inferred.get("padding", layer.padding)  # solved, for padding: auto
    k, s = tup(layer.kernel_size, nd), tup(layer.stride, nd)
    pad = f" {padding}" if isinstance(padding, str) else f" p{short(tup(padding, nd))}"
    text = f"{layer.out_channels}@{dims(k)} s{short(s)}{pad}"
    if tup(layer.dilation, nd) != (1,) * nd:
        text += f" d{short(tup(layer.dilation, nd))}"
    if layer.groups != 1:
        text += f" g{layer.groups}"
    op = inferred.get("output_padding", getattr(layer, "output_padding", 0))
    if layer.type.startswith("ConvTranspose") and tup(op, nd) != (0,) * nd:
        text += f" op{short(tup(op, nd))}"
    return text


for _nd in (1, 2, 3):
    register(f"Conv{_nd}d", Family(lambda ctx, layer, nd=_nd: conv(ctx, layer, nd), summary, nd=_nd))
    register(
        f"ConvTranspose{_nd}d",
        Family(lambda ctx, layer, nd=_nd: conv_transpose(ctx, layer, nd), summary, nd=_nd),
    )
