"""The arithmetic engine: shapes, parameters, MACs, memory and receptive fields, per layer.

Pure Python over a validated network: a ``spec.Network`` or the plain one that
``specfile.plain_network`` gives ``convcalc shape``; layers are told apart by their ``type``
and read by attribute, so neither torch nor pydantic is imported here (``convcalc shape`` and
the TUI recompute on every keystroke). Shapes here leave out the batch dim: ``(C, H, W)`` for
feature maps, ``(F,)`` after a Flatten. Every formula is PyTorch's own, per axis (H and W
apart); the sources are cited where they are used.

Receptive fields follow Araujo, Norris & Sim, "Computing Receptive Fields of Convolutional
Neural Networks", Distill 2019: with the effective kernel k̂ = d·(k−1)+1,
r ← r + (k̂−1)·j,  start ← start + ((k̂−1)/2 − p_left)·j,  j ← j·s.
``start`` is the centre of the first output unit's field in input-pixel coordinates (pixel 0
is centred at 0), so the field of unit i spans start + i·j ± (r−1)/2.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from convcalc.specfile import layer_names, pair

if TYPE_CHECKING:  # annotations only: pydantic is not imported at run time
    from convcalc import spec as S

BYTES_PER_ELEMENT = 4  # float32 activations


@dataclass(frozen=True)
class RF:
    """Receptive field on one axis, in input pixels."""

    size: float  # r
    jump: float  # j: distance between adjacent units' field centres
    start: float  # centre of the first unit's field


@dataclass(frozen=True)
class Problem:
    """An error or warning; ``index``/``name`` say which layer (None: the network itself)."""

    message: str
    index: int | None = None
    name: str | None = None
    type: str | None = None
    fix: str | None = None

    def __str__(self) -> str:
        where = f"layer {self.index} ({self.name}, {self.type}): " if self.index is not None else ""
        fix = f"; fix: {self.fix}" if self.fix else ""
        return f"{where}{self.message}{fix}"


@dataclass(frozen=True)
class LayerResult:
    """Everything the engine knows about one layer."""

    index: int
    name: str
    type: str
    layer: S._Layer
    input_shape: tuple[int, ...] | None
    output_shape: tuple[int, ...] | None  # None: could not be computed (error here or above)
    # in_channels/in_features/num_features; for padding: auto also padding ((h, w) or 'same')
    # and a ConvTranspose2d's output_padding ((h, w)): what torch must get instead of the spec's
    inferred: dict[str, int | tuple[int, int] | str] = field(default_factory=dict)
    weight_params: int = 0
    bias_params: int = 0
    trainable_params: int = 0
    buffers: int = 0  # e.g. BatchNorm running statistics: state, not parameters
    macs: int = 0
    receptive_field: tuple[RF, RF] | None = None  # (height axis, width axis)
    explain: tuple[str, ...] = ()
    errors: tuple[Problem, ...] = ()
    warnings: tuple[Problem, ...] = ()

    @property
    def params(self) -> int:
        return self.weight_params + self.bias_params

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @property
    def memory_bytes(self) -> int:
        return _numel(self.output_shape) * BYTES_PER_ELEMENT if self.output_shape else 0

    @property
    def summary(self) -> str:
        """The main settings in short, e.g. ``6@5×5 s1 p0`` for a conv."""
        return _summary(self.layer, self.inferred)


@dataclass(frozen=True)
class Analysis:
    name: str
    input_shape: tuple[int, int, int]
    rows: tuple[LayerResult, ...]
    warnings: tuple[Problem, ...]  # every warning, the layers' included
    errors: tuple[Problem, ...]  # every error, the layers' included

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def output_shape(self) -> tuple[int, ...] | None:
        if not self.rows:
            return self.input_shape
        return self.rows[-1].output_shape

    @property
    def total_params(self) -> int:
        return sum(row.params for row in self.rows)

    @property
    def trainable_params(self) -> int:
        return sum(row.trainable_params for row in self.rows)

    @property
    def total_macs(self) -> int:
        return sum(row.macs for row in self.rows)

    @property
    def total_flops(self) -> int:
        return 2 * self.total_macs

    @property
    def total_memory_bytes(self) -> int:
        """Activation memory of one sample's forward pass: every layer's output, float32."""
        return sum(row.memory_bytes for row in self.rows)

    @property
    def param_bytes(self) -> int:
        return self.total_params * BYTES_PER_ELEMENT


# --------------------------------------------------------------------------------------
# Per-axis arithmetic (pure functions of ints; tested against torch by hypothesis)


def conv_out(n: int, k: int, s: int, pad_l: int, pad_r: int, d: int) -> int:
    """Conv2d output size: ⌊(n + pL + pR − d·(k−1) − 1)/s⌋ + 1 (torch.nn.Conv2d docs)."""
    return (n + pad_l + pad_r - d * (k - 1) - 1) // s + 1


def pool_out(n: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """Pooling output size, as ATen's ``pooling_output_shape`` (aten/src/ATen/native/Pool.h):
    with ceil_mode, ⌈…/s⌉ + 1, minus one when the last window would start beyond the input
    and the left padding."""
    out = (n + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    return out


def conv_transpose_out(n: int, k: int, s: int, p: int, d: int, output_padding: int) -> int:
    """ConvTranspose2d: (n−1)·s − 2p + d·(k−1) + output_padding + 1 (torch.nn.ConvTranspose2d docs)."""
    return (n - 1) * s - 2 * p + d * (k - 1) + output_padding + 1


def same_padding(k: int, d: int) -> tuple[int, int]:
    """padding='same': total d·(k−1), the odd pixel on the right/bottom (torch's _conv_forward)."""
    total = d * (k - 1)
    return total // 2, total - total // 2


def adaptive_window(n: int, out: int, i: int) -> tuple[int, int]:
    """Adaptive pooling's window [start, end) for output unit i (ATen's start_index/end_index)."""
    return (i * n) // out, -((-(i + 1) * n) // out)


# Receptive-field bounds below are computed window by window up to this many steps; past it a
# closed-form bound with the same guarantee is used, so a huge stride or output_size typed
# into the TUI cannot stall the recompute.
EXACT_STEPS = 100_000


def unseen(n: int, k: int, s: int, pad_l: int, pad_r: int, d: int, out: int) -> int:
    """Input pixels at the end of an axis that no window covers (the floor division drops them)."""
    covered = (out - 1) * s + d * (k - 1) + 1  # in padded coordinates, from the left edge
    return max(0, n + pad_l - covered)


def rf_step(rf: RF, k: int, s: float, pad_l: float, d: int = 1) -> RF:
    """One conv/pool layer on one axis (Araujo et al. 2019, eqs. 2 and 5)."""
    k_eff = d * (k - 1) + 1
    return RF(
        size=rf.size + (k_eff - 1) * rf.jump,
        jump=rf.jump * s,
        start=rf.start + ((k_eff - 1) / 2 - pad_l) * rf.jump,
    )


def rf_transposed(rf: RF, k: int, s: int, p: int, d: int) -> RF:
    """ConvTranspose2d on one axis: output o receives input i where o = i·s − p + t·d, t < k.
    Jumps shrink by s, but unevenly (neighbouring outputs may come from inputs a whole unit
    apart), so the size is the upper bound that keeps every later layer's field a bound too:
    any m neighbouring outputs see inputs at most (size−r)/j + (m−1)/s units apart."""
    k_eff = d * (k - 1) + 1
    if s * (s + k_eff) * k <= EXACT_STEPS:
        slack = _window_slack(
            lambda q: [(q + p - t * d) // s for t in range(k) if (q + p - t * d) % s == 0],
            [(first, s + k_eff) for first in range(s)],  # the pattern repeats every s outputs
            step=1 / s,
        )
    else:  # outputs q..q+m−1 see inputs within [(q+p−(k̂−1))/s, (q+m−1+p)/s]: (m−1+k̂−1)/s apart
        slack = (k_eff - 1) / s
    return RF(
        size=rf.size + slack * rf.jump,
        jump=rf.jump / s,
        start=rf.start + (p - (k_eff - 1) / 2) / s * rf.jump,  # output 0's centre, in input units
    )


def rf_adaptive(rf: RF, n: int, out: int) -> RF:
    """An adaptive pool from n to ``out`` > 1 units on one axis. When the output divides the
    input the windows are a regular pool (k = s = n/o) and this is exact. Otherwise the jump
    spaces the first and last windows' centres exactly (the ones between approximately) and the
    size is the upper bound that keeps later layers' fields bounds too."""
    first_end = -(-n // out)  # window 0 is [0, ⌈n/o⌉); the last is [n − ⌈n/o⌉, n)
    centre_first, centre_last = (first_end - 1) / 2, (n - first_end + n - 1) / 2
    step = (centre_last - centre_first) / (out - 1)  # in units of the previous layer
    if n % out == 0:  # windows of n/o every n/o: a regular pool
        slack = n // out - 1
    elif out <= EXACT_STEPS:
        # windows only move right, so m neighbouring units i−m+1..i span from the first one's
        # start to the last one's end: the slack is max over j ≤ i of end_i − start_j − (i−j)·step
        slack, low = 0.0, math.inf
        for i in range(out):
            start, end = adaptive_window(n, out, i)
            low = min(low, start - i * step)
            slack = max(slack, end - 1 - i * step - low)
    else:  # end_i − start_j < (i−j+1)·n/o + 1 and step ≤ n/o: the slack is below ⌈n/o⌉ + 1
        slack = first_end + 1
    return RF(size=rf.size + slack * rf.jump, jump=rf.jump * step, start=rf.start + centre_first * rf.jump)


def _window_slack(sources: Callable[[int], list[int]], windows: list[tuple[int, int]], step: float) -> float:
    """How much a uniform field of jump ``step`` must add so that it covers every real window:
    the max, over windows of m neighbouring units (``windows``: first unit, largest m), of the
    distance between the farthest previous-layer units they see, minus (m−1)·step."""
    slack = 0.0
    for first, longest in windows:
        lo = hi = None
        for m in range(1, longest + 1):
            for unit in sources(first + m - 1):
                lo, hi = (unit, unit) if lo is None else (min(lo, unit), max(hi, unit))
            if lo is not None:
                slack = max(slack, hi - lo - (m - 1) * step)
    return slack


def rf_global(rf: RF, out_units: int, n_input: int) -> RF:
    """A layer whose every output sees every unit of the previous layer (Flatten, Linear,
    a global pool): the union of those units' fields, clipped to the input axis."""
    lo = max(0.0, rf.start - (rf.size - 1) / 2)
    hi = min(n_input - 1.0, rf.start + (out_units - 1) * rf.jump + (rf.size - 1) / 2)
    size = max(1.0, hi - lo + 1)
    return RF(size=size, jump=size, start=(lo + hi) / 2)


# --------------------------------------------------------------------------------------
# The walk over the layers


class _Ctx:
    """Collects one layer's results while its handler runs."""

    def __init__(self, index: int, name: str, layer: S._Layer, shape: tuple[int, ...]):
        self.index, self.name, self.layer, self.shape = index, name, layer, shape
        self.errors: list[Problem] = []
        self.warnings: list[Problem] = []
        self.explain: list[str] = []
        self.inferred: dict[str, int] = {}

    def error(self, message: str, fix: str | None = None) -> None:
        self.errors.append(Problem(message, self.index, self.name, self.layer.type, fix))

    def warn(self, message: str, fix: str | None = None) -> None:
        self.warnings.append(Problem(message, self.index, self.name, self.layer.type, fix))


@dataclass
class _Out:
    shape: tuple[int, ...] | None
    rf: tuple[RF, RF] | None
    weight: int = 0
    bias: int = 0
    buffers: int = 0
    macs: int = 0


def analyze(network: S.Network, input_shape: tuple[int, int, int] | None = None) -> Analysis:
    """Analyse every layer of ``network`` (on ``input_shape`` if given, else the spec's input)."""
    shape: tuple[int, ...] | None = tuple(input_shape or network.input)
    n_in = shape[1:]  # the network input's (H, W), for global receptive fields
    rf: tuple[RF, RF] | None = (RF(1, 1, 0.0), RF(1, 1, 0.0))
    rows = []
    warned_rf = False
    for index, (name, layer) in enumerate(zip(layer_names(network), network.layers, strict=False)):
        if shape is None:  # an error above left nothing to compute on
            rows.append(LayerResult(index, name, layer.type, layer, None, None))
            continue
        ctx = _Ctx(index, name, layer, shape)
        out = _HANDLERS[layer.type](ctx, layer, shape, rf, n_in)
        if out.rf and not warned_rf and layer.type not in _GLOBAL_TYPES:
            big = [axis for axis, r, n in zip("HW", out.rf, n_in, strict=False) if r.size > n]
            if big:
                warned_rf = True
                sizes = "×".join(fmt_num(r.size) for r in out.rf)
                ctx.warn(
                    f"receptive field {sizes} is larger than the {n_in[0]}×{n_in[1]} input "
                    f"(on {' and '.join(big)}): units beyond this point also see padding"
                )
        trainable = out.weight + out.bias  # every parameter of these layer types is trainable
        rows.append(
            LayerResult(
                index, name, layer.type, layer, shape, out.shape, ctx.inferred,
                out.weight, out.bias, trainable, out.buffers, out.macs,
                out.rf if out.shape is not None else None,
                tuple(ctx.explain), tuple(ctx.errors), tuple(ctx.warnings),
            )
        )  # fmt: skip
        shape, rf = out.shape, out.rf
    errors = tuple(p for row in rows for p in row.errors)
    warnings = tuple(p for row in rows for p in row.warnings)
    return Analysis(network.name, tuple(input_shape or network.input), tuple(rows), warnings, errors)


def _numel(shape: tuple[int, ...]) -> int:
    return math.prod(shape)


def fmt_num(x: float) -> str:
    """3.0 -> '3', 2.5 -> '2.5'."""
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def fmt_shape(shape: tuple[int, ...] | None) -> str:
    return "—" if shape is None else "×".join(str(v) for v in shape)


def _spatial(ctx: _Ctx, shape: tuple[int, ...]) -> bool:
    if len(shape) == 3:
        return True
    ctx.error(
        f"needs a (C, H, W) feature map but gets {fmt_shape(shape)}",
        "move it before the Flatten, or use a Linear layer here",
    )
    return False


def _check_channels(ctx: _Ctx, field_name: str, given: int | None, actual: int) -> None:
    ctx.inferred[field_name] = actual
    if given is not None and given != actual:
        ctx.error(
            f"{field_name}={given} but the input has {actual}",
            f"set {field_name}: {actual}, or leave it out to infer it",
        )


# --------------------------------------------------------------------------------------
# Handlers, one per layer type: (ctx, layer, input shape, rf, network input HW) -> _Out


def _conv_geometry(ctx: _Ctx, layer: S.Conv2d | S.ConvTranspose2d, shape):
    """What Conv2d and ConvTranspose2d check and read alike: a (C, H, W) input, in_channels,
    groups, (kernel, stride, dilation) per axis and a solved ``padding: auto`` (else None).
    Returns None when the layer cannot be computed."""
    if not _spatial(ctx, shape):
        return None
    _check_channels(ctx, "in_channels", layer.in_channels, shape[0])
    k, s, d = pair(layer.kernel_size), pair(layer.stride), pair(layer.dilation)
    solved = _solve_padding(ctx, layer, shape) if layer.padding == "auto" else None
    if layer.padding == "auto" and solved is None:
        return None
    _check_groups(ctx, layer, shape[0])
    return k, s, d, solved


def _conv(ctx: _Ctx, layer: S.Conv2d, shape, rf, n_in) -> _Out:
    geometry = _conv_geometry(ctx, layer, shape)
    if geometry is None:
        return _Out(None, None)
    k, s, d, solved = geometry
    c_in, h, w = shape
    if solved is not None:
        pads = [same_padding(k[a], d[a]) if p == "same" else (p, p) for a, p in enumerate(solved[0])]
    elif layer.padding == "same":
        if s != (1, 1):
            ctx.error("padding='same' needs stride 1", "use stride 1, or give the padding as a number")
        pads = [same_padding(k[a], d[a]) for a in (0, 1)]
    else:
        p = (0, 0) if layer.padding == "valid" else pair(layer.padding)
        pads = [(p[0], p[0]), (p[1], p[1])]
    size = (h, w)
    outs = [conv_out(size[a], k[a], s[a], *pads[a], d[a]) for a in (0, 1)]
    for a, axis in enumerate("HW"):
        pl, pr = pads[a]
        ctx.explain.append(
            f"{axis} = ⌊({size[a]} + {pl} + {pr} − {d[a]}·({k[a]}−1) − 1)/{s[a]}⌋ + 1 = {outs[a]}"
        )
    if not _sizes_ok(ctx, outs, size, pads, k, d):
        return _Out(None, None)
    _warn_unseen(ctx, size, k, s, pads, d, outs)
    c_out = layer.out_channels
    weight = c_out * (c_in // layer.groups) * k[0] * k[1]
    bias = c_out if layer.bias else 0
    macs = c_out * outs[0] * outs[1] * (c_in // layer.groups) * k[0] * k[1]
    out_shape = (c_out, outs[0], outs[1])
    _explain_params(ctx, weight, bias, f"{c_out}·({c_in}/{layer.groups})·{k[0]}·{k[1]}")
    _explain_sharing(ctx, shape, out_shape, weight + bias)
    new_rf = tuple(rf_step(rf[a], k[a], s[a], pads[a][0], d[a]) for a in (0, 1))
    _explain_rf(ctx, rf, new_rf, k, s, d, [p[0] for p in pads])
    return _Out(out_shape, new_rf, weight, bias, 0, macs)


def _conv_transpose(ctx: _Ctx, layer: S.ConvTranspose2d, shape, rf, n_in) -> _Out:
    geometry = _conv_geometry(ctx, layer, shape)
    if geometry is None:
        return _Out(None, None)
    k, s, d, solved = geometry
    c_in, h, w = shape
    p, op = solved if solved is not None else (pair(layer.padding), pair(layer.output_padding))
    for a, axis in enumerate("HW"):
        if op[a] >= max(s[a], d[a]):
            ctx.error(
                f"output_padding {op[a]} on {axis} must be smaller than max(stride, dilation) = "
                f"{max(s[a], d[a])}",
                f"use output_padding < {max(s[a], d[a])}",
            )
    size = (h, w)
    outs = [conv_transpose_out(size[a], k[a], s[a], p[a], d[a], op[a]) for a in (0, 1)]
    for a, axis in enumerate("HW"):
        ctx.explain.append(
            f"{axis} = ({size[a]}−1)·{s[a]} − 2·{p[a]} + {d[a]}·({k[a]}−1) + {op[a]} + 1 = {outs[a]}"
        )
    if min(outs) < 1:
        ctx.error(
            f"output size {outs[0]}×{outs[1]} is below 1: the padding {p[0]}×{p[1]} removes more "
            "than the layer adds",
            "reduce padding",
        )
        return _Out(None, None)
    if ctx.errors:
        return _Out(None, None)
    c_out = layer.out_channels
    weight = c_in * (c_out // layer.groups) * k[0] * k[1]
    bias = c_out if layer.bias else 0
    macs = c_in * h * w * (c_out // layer.groups) * k[0] * k[1]
    out_shape = (c_out, outs[0], outs[1])
    _explain_params(ctx, weight, bias, f"{c_in}·({c_out}/{layer.groups})·{k[0]}·{k[1]}")
    new_rf = tuple(rf_transposed(rf[a], k[a], s[a], p[a], d[a]) for a in (0, 1))
    return _Out(out_shape, new_rf, weight, bias, 0, macs)


def _solve_padding(ctx: _Ctx, layer, shape) -> tuple[tuple, tuple[int, int]] | None:
    """``padding: auto``: the (padding, output_padding) pairs that give the layer's
    ``output_shape`` (a pad may be 'same'), recorded in ``ctx.inferred``; None after an error."""
    from convcalc import solve  # solve builds on this module's per-axis functions

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
    ctx.explain.append(f"padding: auto for output {fmt_shape(want[-2:])}: {solved}")
    return pads, ops


def _check_groups(ctx: _Ctx, layer: S.Conv2d | S.ConvTranspose2d, c_in: int) -> None:
    g = layer.groups
    for field_name, value in (("in_channels", c_in), ("out_channels", layer.out_channels)):
        if value % g:
            ctx.error(
                f"groups={g} does not divide {field_name}={value}",
                f"use a groups value that divides both {c_in} and {layer.out_channels}",
            )


def _sizes_ok(ctx: _Ctx, outs, size, pads, k, d) -> bool:
    if min(outs) >= 1 and not ctx.errors:
        return True
    if min(outs) < 1:
        padded = [size[a] + pads[a][0] + pads[a][1] for a in (0, 1)]
        k_eff = [d[a] * (k[a] - 1) + 1 for a in (0, 1)]
        ctx.error(
            f"output size {outs[0]}×{outs[1]} is below 1: the (dilated) kernel "
            f"{k_eff[0]}×{k_eff[1]} is larger than the padded input {padded[0]}×{padded[1]}",
            "use a smaller kernel_size or dilation, add padding, or remove a downsampling layer above",
        )
    return False


def _warn_unseen(ctx: _Ctx, size, k, s, pads, d, outs) -> None:
    lost = [unseen(size[a], k[a], s[a], *pads[a], d[a], outs[a]) for a in (0, 1)]
    parts = [
        f"the last {n} {'row' if a == 0 else 'column'}{'s' if n > 1 else ''}" for a, n in enumerate(lost) if n
    ]
    if parts:
        ctx.warn(
            f"{' and '.join(parts)} of its {size[0]}×{size[1]} input are never seen "
            "(the division by the stride is not exact)",
            "adjust padding or the input size so that (size + padding − kernel) is a multiple of the stride",
        )


def _pool(ctx: _Ctx, layer: S.MaxPool2d | S.AvgPool2d, shape, rf, n_in) -> _Out:
    if not _spatial(ctx, shape):
        return _Out(None, None)
    c, h, w = shape
    k = pair(layer.kernel_size)
    s = pair(layer.stride) if layer.stride is not None else k
    if layer.padding == "auto":
        solved = _solve_padding(ctx, layer, shape)
        if solved is None:
            return _Out(None, None)
        p = solved[0]
    else:
        p = pair(layer.padding)
    d = pair(layer.dilation) if layer.type == "MaxPool2d" else (1, 1)
    for a, axis in enumerate("HW"):
        if p[a] > k[a] // 2:
            ctx.error(
                f"padding {p[a]} on {axis} is more than half the kernel size {k[a]}",
                f"use padding <= {k[a] // 2}",
            )
    size = (h, w)
    outs = [pool_out(size[a], k[a], s[a], p[a], d[a], layer.ceil_mode) for a in (0, 1)]
    rounding = "⌈" if layer.ceil_mode else "⌊"
    closing = "⌉" if layer.ceil_mode else "⌋"
    for a, axis in enumerate("HW"):
        ctx.explain.append(
            f"{axis} = {rounding}({size[a]} + 2·{p[a]} − {d[a]}·({k[a]}−1) − 1)/{s[a]}{closing}"
            f" + 1 = {outs[a]}"
        )
    pads = [(p[0], p[0]), (p[1], p[1])]
    if not _sizes_ok(ctx, outs, size, pads, k, d):
        return _Out(None, None)
    if not layer.ceil_mode:
        _warn_unseen(ctx, size, k, s, pads, d, outs)
    new_rf = tuple(rf_step(rf[a], k[a], s[a], p[a], d[a]) for a in (0, 1))
    _explain_rf(ctx, rf, new_rf, k, s, d, p)
    return _Out((c, outs[0], outs[1]), new_rf)


def _adaptive_pool(ctx: _Ctx, layer, shape, rf, n_in) -> _Out:
    if not _spatial(ctx, shape):
        return _Out(None, None)
    c, h, w = shape
    o = pair(layer.output_size)
    new_rf = []
    for a, (n, out) in enumerate(zip((h, w), o, strict=False)):
        new_rf.append(rf_global(rf[a], n, n_in[a]) if out == 1 else rf_adaptive(rf[a], n, out))
        ctx.explain.append(f"{'HW'[a]} = output_size = {out} (windows of {_window_sizes(n, out)} from {n})")
    return _Out((c, o[0], o[1]), tuple(new_rf))


def _window_sizes(n: int, out: int) -> str:
    if out > EXACT_STEPS:
        return f"at most {-(-n // out) + 1}"
    sizes = sorted({end - start for start, end in (adaptive_window(n, out, i) for i in range(out))})
    return " or ".join(str(v) for v in sizes)


def _batchnorm(ctx: _Ctx, layer: S.BatchNorm2d, shape, rf, n_in) -> _Out:
    if not _spatial(ctx, shape):
        return _Out(None, None)
    c = shape[0]
    _check_channels(ctx, "num_features", layer.num_features, c)
    if ctx.errors:
        return _Out(None, None)
    weight, bias = (c, c) if layer.affine else (0, 0)
    buffers = 2 * c + 1 if layer.track_running_stats else 0  # mean, var, num_batches_tracked
    ctx.explain.append(f"shape unchanged; params = {'2·' + str(c) if layer.affine else '0'} (γ, β)"
                       f"; buffers = {buffers} (running mean, var, count)")  # fmt: skip
    return _Out(shape, rf, weight, bias, buffers)


def _flatten(ctx: _Ctx, layer: S.Flatten, shape, rf, n_in) -> _Out:
    full = (None, *shape)  # with the batch dim
    start = layer.start_dim % len(full) if -len(full) <= layer.start_dim < len(full) else None
    end = layer.end_dim % len(full) if -len(full) <= layer.end_dim < len(full) else None
    if start is None or end is None:
        ctx.error(f"start_dim/end_dim out of range for an input of {len(full)} dims (batch included)")
        return _Out(None, None)
    if start == 0:
        ctx.error("start_dim=0 would fold the batch into the features", "use start_dim: 1")
        return _Out(None, None)
    if start > end:
        ctx.error(f"start_dim {layer.start_dim} comes after end_dim {layer.end_dim}")
        return _Out(None, None)
    out = (*shape[: start - 1], math.prod(shape[start - 1 : end]), *shape[end:])
    ctx.explain.append(f"{' · '.join(str(v) for v in shape[start - 1 : end])} = {out[start - 1]}")
    new_rf = _global_rf(shape, rf, n_in) if len(out) < 3 else rf
    return _Out(out, new_rf)


def _global_rf(shape: tuple[int, ...], rf, n_in) -> tuple[RF, RF]:
    spatial = shape[1:] if len(shape) == 3 else (1, 1)
    return tuple(rf_global(rf[a], spatial[a], n_in[a]) for a in (0, 1))


def _linear(ctx: _Ctx, layer: S.Linear, shape, rf, n_in) -> _Out:
    if len(shape) != 1:
        ctx.error(
            f"Linear gets a {fmt_shape(shape)} input; it needs a flat vector",
            "add a Flatten layer before it",
        )
        return _Out(None, None)
    f_in = shape[0]
    _check_channels(ctx, "in_features", layer.in_features, f_in)
    if ctx.errors:
        return _Out(None, None)
    weight = f_in * layer.out_features
    bias = layer.out_features if layer.bias else 0
    _explain_params(ctx, weight, bias, f"{f_in}·{layer.out_features}")
    return _Out((layer.out_features,), rf, weight, bias, 0, weight)


def _pointwise(ctx: _Ctx, layer, shape, rf, n_in) -> _Out:
    if layer.type == "Dropout2d" and len(shape) != 3:  # torch warns, and still runs
        ctx.warn(
            f"Dropout2d drops whole channels of a (C, H, W) input; it gets {fmt_shape(shape)}",
            "use Dropout after a Flatten",
        )
    if layer.type in ("Softmax", "LogSoftmax") and layer.dim is not None:
        ndim = len(shape) + 1
        if not -ndim <= layer.dim < ndim:
            ctx.error(f"dim={layer.dim} is out of range for a {ndim}-dim input (batch included)")
            return _Out(None, None)
        dim = layer.dim % ndim
        if len(shape) == 3 and dim >= 2:  # normalising over H or W: every unit sees that whole axis
            a = dim - 2
            rf = tuple(
                rf_global(rf[a], shape[dim - 1], n_in[a]) if axis == a else rf[axis] for axis in (0, 1)
            )
            ctx.explain.append(f"shape unchanged; each output depends on the whole {'HW'[a]} axis")
            return _Out(shape, rf)
    ctx.explain.append("shape unchanged")
    return _Out(shape, rf)


def _explain_params(ctx: _Ctx, weight: int, bias: int, weight_formula: str) -> None:
    ctx.explain.append(f"params = weight {weight_formula} = {weight:,} + bias {bias:,} = {weight + bias:,}")


def _explain_sharing(ctx: _Ctx, shape_in, shape_out, params: int) -> None:
    """What a fully connected layer between the same input and output would cost."""
    n_in, n_out = _numel(shape_in), _numel(shape_out)
    dense = n_in * n_out + n_out
    ratio = dense / params if params else float("inf")
    ctx.explain.append(
        f"a Linear from {fmt_shape(shape_in)} to {fmt_shape(shape_out)} would need "
        f"{n_in:,}·{n_out:,} + {n_out:,} = {dense:,} params ({ratio:,.0f}× more: weight sharing)"
    )


def _explain_rf(ctx: _Ctx, rf, new_rf, k, s, d, pad_l) -> None:
    for a, axis in enumerate("HW"):
        k_eff = d[a] * (k[a] - 1) + 1
        old, new = rf[a], new_rf[a]
        ctx.explain.append(
            f"RF {axis}: r = {fmt_num(old.size)} + ({k_eff}−1)·{fmt_num(old.jump)} = {fmt_num(new.size)}, "
            f"j = {fmt_num(old.jump)}·{s[a]} = {fmt_num(new.jump)}, "
            f"start = {fmt_num(old.start)} + (({k_eff}−1)/2 − {pad_l[a]})·{fmt_num(old.jump)}"
            f" = {fmt_num(new.start)}"
        )


def _summary(layer: S._Layer, inferred: dict | None = None) -> str:
    padding = (inferred or {}).get("padding", getattr(layer, "padding", 0))  # solved, for padding: auto
    if layer.type in ("Conv2d", "ConvTranspose2d"):
        k, s = pair(layer.kernel_size), pair(layer.stride)
        pad = padding if isinstance(padding, str) else _short(pair(padding))
        text = f"{layer.out_channels}@{k[0]}×{k[1]} s{_short(s)} p{pad}"
        if layer.dilation != 1:
            text += f" d{_short(pair(layer.dilation))}"
        if layer.groups != 1:
            text += f" g{layer.groups}"
        op = (inferred or {}).get("output_padding", getattr(layer, "output_padding", 0))
        if layer.type == "ConvTranspose2d" and pair(op) != (0, 0):
            text += f" op{_short(pair(op))}"
        return text
    if layer.type in ("MaxPool2d", "AvgPool2d"):
        k = pair(layer.kernel_size)
        s = pair(layer.stride) if layer.stride is not None else k
        text = f"{k[0]}×{k[1]} s{_short(s)}"
        if padding != 0 and padding != "auto":
            text += f" p{_short(pair(padding))}"
        if layer.type == "MaxPool2d" and layer.dilation != 1:
            text += f" d{_short(pair(layer.dilation))}"
        return text + (" ceil" if layer.ceil_mode else "")
    if layer.type in ("AdaptiveAvgPool2d", "AdaptiveMaxPool2d"):
        o = pair(layer.output_size)
        return f"→{o[0]}×{o[1]}"
    if layer.type == "Linear":
        return f"→{layer.out_features}"
    if layer.type in ("Dropout", "Dropout2d"):
        return f"p={layer.p:g}"
    if layer.type == "LeakyReLU":
        return f"slope={layer.negative_slope:g}"
    return ""


def _short(value: tuple[int, int]) -> str:
    return str(value[0]) if value[0] == value[1] else f"{value[0]},{value[1]}"


_GLOBAL_TYPES = ("Flatten", "Linear", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d")

_HANDLERS: dict[str, Callable[..., _Out]] = {
    "Conv2d": _conv,
    "ConvTranspose2d": _conv_transpose,
    "MaxPool2d": _pool,
    "AvgPool2d": _pool,
    "AdaptiveAvgPool2d": _adaptive_pool,
    "AdaptiveMaxPool2d": _adaptive_pool,
    "BatchNorm2d": _batchnorm,
    "Flatten": _flatten,
    "Linear": _linear,
    **{
        name: _pointwise
        for name in (
            "Dropout",
            "Dropout2d",
            "ReLU",
            "LeakyReLU",
            "ELU",
            "GELU",
            "SiLU",
            "Tanh",
            "Sigmoid",
            "Softmax",
            "LogSoftmax",
            "Identity",
        )
    },  # fmt: skip
}
