"""Merges: ``Add`` (elementwise sum), ``Mul`` (broadcasting product), ``Cat`` (``torch.cat``),
and ``Chunk``, the piece of one tensor that a split gives (``x.chunk(2, dim=1)[0]``; built as
``convcalc.build.Chunk``, 0 MACs).

The merges have no ``torch.nn`` class: the generated model's ``forward`` writes ``a + b``, ``a * b``
and ``torch.cat([a, b], dim)``. They count 0 MACs, as ``FlopCounterMode`` does. Through a merge
the receptive field is the union of what every path sees; paths whose jumps differ (or, for
``Add``, whose starts differ) are "not aligned" and warned about, as google-research's
receptive_field library does.
"""

from __future__ import annotations

from typing import Any

from convcalc.layers.base import RF, Ctx, Family, Input, Out, channels_first, fmt_num, fmt_shape, register


def _list(inputs: list[Input]) -> str:
    return " and ".join(f"{i.name} ({fmt_shape(i.shape)})" for i in inputs)


def add(ctx: Ctx, layer: Any) -> Out:
    ins = ctx.inputs
    if len(ins) < 2:
        return _too_few(ctx)
    if _parameters_only(ctx):
        return Out(None, None)
    tensors = [i for i in ins if i.rf is not None]  # Parameters broadcast (a learnable bias)
    first = tensors[0]
    for other in tensors[1:]:
        if other.shape != first.shape:
            ctx.error(f"adds {_list([first, other])}: shapes must match", _add_fix(first, other))
            return Out(None, None)
    shape = _with_parameters(ctx, first.shape, ins)
    if shape is None or not _same_layout(ctx):
        return Out(None, None)
    ctx.note(f"elementwise sum of {len(ins)} tensors of {fmt_shape(first.shape)}; 0 MACs")
    rf, bound = _union(ctx, shape, check_start=True)
    return Out(shape, rf, regime="bound" if bound else None, layout=_layout(ctx))


def _with_parameters(ctx: Ctx, shape: tuple[int, ...], ins: list[Input]) -> tuple[int, ...] | None:
    """``shape`` broadcast with the Parameters among ``ins`` (field None): they have no batch dim,
    so torch aligns them from the right with (N, *shape)."""
    for param in (i for i in ins if i.rf is None and i.shape != shape):
        pad = len(shape) - len(param.shape)
        out = _broadcast(shape, (1,) * pad + param.shape) if pad >= 0 else None
        if out is None:
            ctx.error(f"{param.name} ({fmt_shape(param.shape)}) does not broadcast against "
                      f"{fmt_shape(shape)} (each dim, from the right, must be equal or 1)",
                      f"give {param.name} the shape {list(shape)}, or 1 on the dims shared")  # fmt: skip
            return None
        shape = out
    return shape


def _parameters_only(ctx: Ctx) -> bool:
    """Parameters have no batch dim: a merge needs a tensor among its inputs to have one (and
    Cat cannot take a Parameter at all: torch.cat needs equal batch sizes)."""
    params = [i.name for i in ctx.inputs if i.rf is None]
    if params and (ctx.layer.type == "Cat" or len(params) == len(ctx.inputs)):
        what = "concatenates a Parameter" if ctx.layer.type == "Cat" else "merges Parameters only"
        ctx.error(f"{what} ({', '.join(params)}), which has no batch dim",
                  "merge a Parameter with a tensor in a Mul or Add")  # fmt: skip
        return True
    return False


def _same_layout(ctx: Ctx) -> bool:
    """Tensors merged must have their axes in the same order (a Parameter has none)."""
    layouts = {lay for i, lay in zip(ctx.inputs, ctx.layouts, strict=True) if i.rf is not None}
    if len(layouts) > 1:
        ctx.error(f"{ctx.layer.type} merges tensors whose dims are in different orders (one is permuted)",
                  "permute them to the same order first, e.g. back to channels-first")  # fmt: skip
        return False
    return True


def _layout(ctx: Ctx) -> tuple[int, ...] | None:
    return next((lay for i, lay in zip(ctx.inputs, ctx.layouts, strict=True) if i.rf is not None), None)


def _add_fix(a: Input, b: Input) -> str | None:
    """A 1×1 convolution (with the stride that matches the sizes) on the shortcut."""
    if len(a.shape) != len(b.shape) or len(a.shape) < 2:
        return "give both inputs the same shape"
    big, small = (a, b) if a.shape[1] >= b.shape[1] else (b, a)
    strides = {big.shape[i] / small.shape[i] for i in range(1, len(a.shape))}
    if len(strides) == 1 and (stride := strides.pop()).is_integer():
        nd = len(a.shape) - 1
        conv = (
            f"a Conv{nd}d(out_channels: {small.shape[0]}, kernel_size: 1, stride: {int(stride)}) "
            f"on {big.name}"
        )
        return f"{conv} (and a BatchNorm{nd}d), as ResNet's downsampling shortcut"
    return f"resize {a.name} or {b.name} so that both are {fmt_shape(a.shape)}"


def mul(ctx: Ctx, layer: Any) -> Out:
    ins = ctx.inputs
    if len(ins) < 2:
        return _too_few(ctx)
    if _parameters_only(ctx):
        return Out(None, None)
    tensors = [i for i in ins if i.rf is not None]  # Parameters: aligned from the right
    shape = tensors[0].shape
    for other in tensors[1:]:
        out = _broadcast(shape, other.shape)
        if out is None:
            ctx.error(
                f"multiplies {_list([ins[0], other])}: shapes do not broadcast (each dim, from the "
                "right, must be equal or 1)",
                "give the gate the size 1 on the dims it is shared over, e.g. C×1×1 for a channel gate",
            )
            return Out(None, None)
        shape = out
    shape = _with_parameters(ctx, shape, ins)
    if shape is None or not _same_layout(ctx):
        return Out(None, None)
    ctx.note(f"elementwise product broadcast to {fmt_shape(shape)}; 0 MACs")
    gates = [i.name for i in tensors[1:] if i.shape != shape]
    if gates:
        ctx.note(f"receptive field: that of the full-size input; the broadcast gate {', '.join(gates)} "
                 "(global context) is left out")  # fmt: skip
    params = [i.name for i in ins if i.rf is None]
    if params and len(params) < len(ins):
        ctx.note(f"{', '.join(params)}: a Parameter, it sees no input position; the field is the tensor's")
    rf, bound = _union(ctx, shape, check_start=False, gated=True)
    return Out(shape, rf, regime="bound" if bound else None, layout=_layout(ctx))


def _broadcast(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...] | None:
    if len(a) != len(b):  # with the batch dim in front, a shorter shape would broadcast over it
        return None
    out = []
    for x, y in zip(a, b, strict=True):
        if x != y and 1 not in (x, y):
            return None
        out.append(max(x, y))
    return tuple(out)


def cat(ctx: Ctx, layer: Any) -> Out:
    ins = ctx.inputs
    if len(ins) < 2:
        return _too_few(ctx)
    if _parameters_only(ctx):
        return Out(None, None)
    first = ins[0]
    ndim = len(first.shape) + 1
    if not -ndim <= layer.dim < ndim or layer.dim % ndim == 0:
        ctx.error(
            f"dim={layer.dim} is not a dim of the {fmt_shape(first.shape)} inputs (batch is dim 0)",
            "use dim: 1 for channels",
        )
        return Out(None, None)
    dim = layer.dim % ndim - 1  # in the shape without batch
    for other in ins[1:]:
        if len(other.shape) != len(first.shape):
            ctx.error(
                f"concatenates {_list([first, other])}: the ranks differ", "flatten or reshape one of them"
            )
            return Out(None, None)
        diff = [i for i in range(len(first.shape)) if i != dim and other.shape[i] != first.shape[i]]
        if diff:
            ctx.error(
                f"concatenates {_list([first, other])} on dim {layer.dim}: every other dim must match",
                _crop_fix(first, other, diff),
            )
            return Out(None, None)
    shape = list(first.shape)
    shape[dim] = sum(i.shape[dim] for i in ins)
    ctx.note(
        lambda: f"{' + '.join(str(i.shape[dim]) for i in ins)} = {shape[dim]} along dim {layer.dim}; 0 MACs"
    )
    rf, bound = _union(ctx, tuple(shape), check_start=False, along=dim - 1)
    return Out(tuple(shape), rf, regime="bound" if bound else None)


def _crop_fix(a: Input, b: Input, diff: list[int]) -> str:
    """U-Net's case: the spatial sizes differ; crop (negative padding) or pad the larger one."""
    if 0 in diff or len(a.shape) < 2:
        return "make the other dims equal"
    big, small = (a, b) if a.shape[diff[0]] > b.shape[diff[0]] else (b, a)
    by = [big.shape[i] - small.shape[i] for i in range(1, len(a.shape))]
    nd = len(a.shape) - 1
    if all(v >= 0 and v % 2 == 0 for v in by):
        each = [v // 2 for v in by]
        amount = each[0] if len(set(each)) == 1 else each
        return (
            f"crop {big.name} by {amount} on each side (a ZeroPad{nd}d with padding -{amount} "
            f"on it), or pad {small.name} by as much"
        )
    return f"{big.name} is larger by {'×'.join(map(str, by))}: crop or pad one of them to the other's size"


def _too_few(ctx: Ctx) -> Out:
    ctx.error(
        f"{ctx.layer.type} needs at least two inputs; it has {len(ctx.inputs)}",
        "name them, e.g. inputs: [conv2, input]",
    )
    return Out(None, None)


def _union(
    ctx: Ctx, shape: tuple[int, ...], check_start: bool, along: int | None = None, gated: bool = False
) -> tuple[tuple, bool]:
    """The union of every input's field per axis (an upper bound where they do not line up),
    with a warning naming the paths that are not aligned."""
    # a Parameter sees nothing: left out; a permuted tensor: its sizes in channels-first order,
    # the order of the fields
    seeing = [Input(channels_first(i.shape, lay), i.rf, i.name)
              for i, lay in zip(ctx.inputs, ctx.layouts, strict=True) if i.rf is not None]  # fmt: skip
    if not seeing:
        return None, False
    shape = channels_first(shape, _layout(ctx))
    ins = [i for i in seeing if len(i.rf) == len(seeing[0].rf)]
    n_axes = len(ins[0].rf)
    spatial_out = shape[1:] if len(shape) == n_axes + 1 else (1,) * n_axes
    out, bound = [], False
    for a in range(n_axes):
        n = spatial_out[a]
        # gated (Mul): an input broadcast over positions (its spatial shape is not the
        # output's) is a gate (squeeze-and-excitation): the field is that of the full-size
        # paths, the gate's global context left out (it would make every unit see everything).
        paths = [i for i in ins if tuple(i.shape[1:]) == tuple(shape[1:])] or ins if gated else ins
        ends = []
        for i in paths:
            size = i.shape[1 + a] if len(i.shape) == n_axes + 1 else 1
            ends.append([_ends(i.rf[a], 0 if size == 1 else q) for q in (0, n - 1)])
        if along == a:  # concatenated along this axis: a bound over every input's units
            lo = min(min(e[0][0], e[1][0]) for e in ends)
            hi = max(max(e[0][1], e[1][1]) for e in ends)
            out.append(RF(hi - lo + 1, (hi - lo + 1) / max(1, n), (lo + hi) / 2))
            bound = True
            continue
        lo0, hi0 = min(e[0][0] for e in ends), max(e[0][1] for e in ends)
        lo1, hi1 = min(e[1][0] for e in ends), max(e[1][1] for e in ends)
        size = max(hi0 - lo0, hi1 - lo1) + 1
        start = (lo0 + hi0) / 2
        jump = ((lo1 + hi1) / 2 - start) / (n - 1) if n > 1 else ins[0].rf[a].jump
        uniform = abs((hi0 - lo0) - (hi1 - lo1)) < 1e-9
        bound = bound or not uniform
        out.append(RF(size, jump, start))
        spread = [i for i in paths if (i.shape[1 + a] if len(i.shape) == n_axes + 1 else 1) > 1 or n == 1]
        _warn_alignment(ctx, a, spread, check_start)
    return tuple(out), bound


def _ends(rf: RF, unit: int) -> tuple[float, float]:
    centre = rf.start + unit * rf.jump
    return centre - (rf.size - 1) / 2, centre + (rf.size - 1) / 2


def _warn_alignment(ctx: Ctx, axis: int, ins: list[Input], check_start: bool) -> None:
    if len(ins) < 2 or any(w.message.startswith("paths not aligned") for w in ctx.warnings):
        return
    first = ins[0]
    for other in ins[1:]:
        a, b = first.rf[axis], other.rf[axis]
        what = "jump" if a.jump != b.jump else "start" if check_start and a.start != b.start else None
        if what:
            ctx.warn(
                f"paths not aligned on spatial axis {axis}: {first.name} has {what} "
                f"{fmt_num(getattr(a, what))}, {other.name} has {fmt_num(getattr(b, what))}; their units "
                "sit at different input positions, so the merged field is an upper bound",
                "check the strides and paddings of both paths",
            )
            return


register("Add", Family(add, merge=True, layout="own"))
register("Mul", Family(mul, merge=True, layout="own"))
register("Cat", Family(cat, lambda layer, inferred: "" if layer.dim == 1 else f"dim={layer.dim}", merge=True))


def chunk(ctx: Ctx, layer: Any) -> Out:
    """``torch.chunk(x, chunks, dim)[index]``: pieces of ceil(size / chunks), the last maybe shorter,
    as many as that takes (``torch.chunk`` may return fewer than ``chunks``)."""
    shape = ctx.shape
    ndim = len(shape) + 1
    if not -ndim <= layer.dim < ndim or layer.dim % ndim == 0:
        ctx.error(f"dim={layer.dim} is not a dim of a {fmt_shape(shape)} input (batch is dim 0)",
                  "use dim: 1 for channels")  # fmt: skip
        return Out(None, None)
    d = layer.dim % ndim - 1  # in the shape without batch
    size = shape[d]
    piece = -(-size // layer.chunks)
    pieces = -(-size // piece)
    if layer.index >= pieces:
        plural = "s" if pieces > 1 else ""
        ctx.error(f"index={layer.index}, but torch.chunk gives {pieces} piece{plural} of a dim of {size}",
                  f"use an index below {pieces}")  # fmt: skip
        return Out(None, None)
    first = layer.index * piece
    out = list(shape)
    out[d] = min(piece, size - first)
    rf = ctx.rf
    if len(shape) == len(rf) + 1 and d >= 1:  # a spatial axis: the piece's first unit is unit `first`
        a = d - 1
        rf = tuple(RF(r.size, r.jump, r.start + first * r.jump) if b == a else r for b, r in enumerate(rf))
    ctx.note(f"elements {first}..{first + out[d] - 1} of {size} along dim {layer.dim}; a view, 0 MACs")
    return Out(tuple(out), rf)


register("Chunk", Family(chunk, lambda layer, inferred: f"{layer.index}/{layer.chunks}"))
