"""What every layer family shares: the per-axis arithmetic, receptive-field steps, and the
context a family's ``analyze`` reports into.

Pure Python: no torch, no pydantic (``convcalc shape`` and the TUI recompute on every
keystroke). Shapes leave out the batch dim: ``(C, L)``, ``(C, H, W)`` or ``(C, D, H, W)`` for
feature maps, ``(F,)`` when flat. Every size formula is PyTorch's own, per axis; sources are
cited where used.

Receptive fields follow Araujo, Norris & Sim, "Computing Receptive Fields of Convolutional
Neural Networks", Distill 2019: with the effective kernel k̂ = d·(k−1)+1,
r ← r + (k̂−1)·j,  start ← start + ((k̂−1)/2 − p_left)·j,  j ← j·s.
``start`` is the centre of the first output unit's field in input-pixel coordinates (pixel 0
is centred at 0), so the field of unit i spans start + i·j ± (r−1)/2. A field is kept per axis
of the *network input*; a layer that changes the number of spatial axes (Flatten, Linear)
makes every unit see the union of what the units before it saw.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

BYTES_PER_ELEMENT = 4  # float32 activations

# Receptive-field bounds are computed window by window up to this many steps; past it a
# closed-form bound with the same guarantee is used, so a huge stride or output_size typed
# into the TUI cannot stall the recompute.
EXACT_STEPS = 100_000

AXES = {1: "L", 2: "HW", 3: "DHW"}


def axis_names(nd: int) -> str:
    return AXES[nd] if nd in AXES else "".join(f"{i}" for i in range(nd))


class RF(NamedTuple):
    """Receptive field on one axis, in input pixels (a named tuple: the engine makes one per
    axis per layer, and a frozen dataclass costs several times as much to build)."""

    size: float  # r
    jump: float  # j: distance between adjacent units' field centres
    start: float  # centre of the first unit's field

    def span(self, unit: int) -> tuple[float, float]:
        """(first, last) input position unit ``unit`` sees: ``start + unit·jump ± (size − 1)/2``
        (not clipped to the input; `convcalc rf` and the TUI's picture draw it)."""
        centre = self.start + unit * self.jump
        return centre - (self.size - 1) / 2, centre + (self.size - 1) / 2


@dataclass(frozen=True)
class FixAction:
    """A fix as an edit the TUI can apply (its ``f`` key): ``"insert"`` puts the layer ``fields``
    (spec items) before the problem's layer; ``"set"`` sets the layer's ``fields`` (None: leave
    the field out, so its default or the inferred value applies)."""

    kind: str
    fields: tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class Problem:
    """An error or warning; ``index``/``name`` say which layer (None: the network itself)."""

    message: str
    index: int | None = None
    name: str | None = None
    type: str | None = None
    fix: str | None = None
    action: FixAction | None = None  # the fix as an edit, where it is one

    def __str__(self) -> str:
        where = f"layer {self.index} ({self.name}, {self.type}): " if self.index is not None else ""
        fix = f"; fix: {self.fix}" if self.fix else ""
        return f"{where}{self.message}{fix}"


@dataclass(slots=True)
class Out:
    """What a family computes for one layer."""

    shape: tuple[int, ...] | None
    rf: tuple[RF, ...] | None
    weight: int = 0
    bias: int = 0
    buffers: int = 0
    macs: int = 0
    frozen: int = 0  # parameters that are not trainable (none of today's types has any)
    regime: str | None = None  # for check: "bound" where the field is an upper bound
    layout: tuple[int, ...] | None = None  # axes moved by a Permute (see ``Ctx.layouts``)


class Input(NamedTuple):
    """One input of a layer: the shape and receptive field of the tensor it reads."""

    shape: tuple[int, ...]
    rf: tuple[RF, ...]
    name: str  # the producing layer's name, or "input"


class Ctx:
    """Collects one layer's results while its family's ``analyze`` runs."""

    __slots__ = ("index", "name", "layer", "inputs", "n_in", "errors", "warnings", "explain", "inferred",
                 "axes_apart", "layouts")  # fmt: skip

    def __init__(self, index: int, name: str, layer: Any, inputs: list[Input], n_in: tuple[int, ...]):
        self.index, self.name, self.layer = index, name, layer
        self.inputs = inputs
        self.n_in = n_in  # spatial sizes of the network input, for global fields
        self.errors: list[Problem] = []
        self.warnings: list[Problem] = []
        self.explain: list[str] = []
        self.inferred: dict[str, Any] = {}
        # the input's spatial axes are not the network input's (a Flatten and an Unflatten
        # above): its field is already the union, and the family's field steps are not told
        self.axes_apart = False
        # per input, its axis order after a Permute: layout[k] is the channels-first dim held at
        # dim k (batch left out; 0 the channels), e.g. (1, 2, 0) channels-last; None: channels first
        self.layouts: tuple[tuple[int, ...] | None, ...] = (None,) * len(inputs)

    @property
    def layout(self) -> tuple[int, ...] | None:
        return self.layouts[0] if self.layouts else None

    @property
    def shape(self) -> tuple[int, ...]:
        return self.inputs[0].shape

    @property
    def rf(self) -> tuple[RF, ...]:
        return self.inputs[0].rf

    def error(self, message: str, fix: str | None = None, action: FixAction | None = None) -> None:
        self.errors.append(Problem(message, self.index, self.name, self.layer.type, fix, action))

    def warn(self, message: str, fix: str | None = None) -> None:
        self.warnings.append(Problem(message, self.index, self.name, self.layer.type, fix))

    def note(self, text: Callable[[], str] | str) -> None:
        """An explain line; built lazily (callables) only when someone asks for the text."""
        self.explain.append(text)


@dataclass(frozen=True)
class Family:
    """A layer family's behaviour for one ``type``: its arithmetic and its short settings."""

    analyze: Callable[[Ctx, Any], Out]
    summary: Callable[[Any, dict], str] = lambda layer, inferred: ""
    nd: int | None = None  # spatial dims the type works on (Conv1d: 1); None: any
    torch_class: str | None = None  # torch.nn class built for it (None: the type's own name)
    merge: bool = False  # takes several inputs (Add, Mul, Cat)
    global_rf: bool = False  # every output unit sees its whole input (no RF warning)
    # on a permuted input (channels not first): None refuses it (an engine error), "keep"
    # passes the axis order through (pointwise), "own": the family reads ``ctx.layouts``
    layout: str | None = None


REGISTRY: dict[str, Family] = {}


def register(names: str | tuple[str, ...], family: Family) -> None:
    for name in (names,) if isinstance(names, str) else names:
        REGISTRY[name] = family


class Spatial(NamedTuple):
    """A feature map's geometry: channels and per-axis sizes, for the family code."""

    c: int
    sizes: tuple[int, ...]


# --------------------------------------------------------------------------------------
# Small helpers


def tup(value: Any, nd: int) -> tuple:
    """``3`` -> ``(3, 3)`` for 2-D; a sequence stays (one value per spatial axis)."""
    if isinstance(value, (list, tuple)):
        return tuple(value)
    return (value,) * nd


def pair(value: int | tuple[int, int]) -> tuple[int, int]:
    """``3`` -> ``(3, 3)``; ``(3, 5)`` stays (height, width)."""
    return (value, value) if isinstance(value, int) else (value[0], value[1])


def numel(shape: tuple[int, ...]) -> int:
    return math.prod(shape)


def channels_first(shape: tuple[int, ...], layout: tuple[int, ...] | None) -> tuple[int, ...]:
    """A permuted tensor's shape in channels-first order: ``(H, W, C)`` with layout (1, 2, 0)
    is ``(C, H, W)``."""
    if layout is None:
        return shape
    out = [0] * len(shape)
    for k, dim in enumerate(layout):
        out[dim] = shape[k]
    return tuple(out)


def fmt_num(x: float) -> str:
    """3.0 -> '3', 2.5 -> '2.5'."""
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def fmt_count(n: int, noun: str) -> str:
    """``1 layer``, ``2 layers``, ``1,024 layers`` (never ``1 layers``)."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def fmt_shape(shape: tuple[int, ...] | None) -> str:
    return "—" if shape is None else "×".join(str(v) for v in shape)


def short(values: tuple) -> str:
    """``(1, 1)`` -> ``1``; ``(1, 2)`` -> ``1,2``."""
    return str(values[0]) if all(v == values[0] for v in values) else ",".join(str(v) for v in values)


def dims(values: tuple) -> str:
    """``(5, 5)`` -> ``5×5``."""
    return "×".join(str(v) for v in values)


def spatial(ctx: Ctx, nd: int | None = None, shape: tuple[int, ...] | None = None) -> Spatial | None:
    """The input as a feature map with ``nd`` spatial axes (any ≥ 1 when None), else an error."""
    shape = ctx.shape if shape is None else shape
    if len(shape) >= 2 and (nd is None or len(shape) == nd + 1):
        return Spatial(shape[0], tuple(shape[1:]))
    want = {1: "(C, L)", 2: "(C, H, W)", 3: "(C, D, H, W)"}.get(nd, "a (C, spatial...) feature map")
    if len(shape) == 1:
        fix = "move it before the Flatten, or use a Linear layer here"
    elif nd is not None and len(shape) >= 2:
        kind = ctx.layer.type[:-2] if ctx.layer.type[-2:] in ("1d", "2d", "3d") else ctx.layer.type
        fix = f"use {kind}{len(shape) - 1}d for a {len(shape) - 1}-D input"
    else:
        fix = None
    ctx.error(f"needs a {want} input but gets {fmt_shape(shape)}", fix)
    return None


def check_count(ctx: Ctx, field_name: str, given: int | None, actual: int) -> None:
    """An inferred size (in_channels, in_features, num_features): recorded, and checked if given."""
    ctx.inferred[field_name] = actual
    if given is not None and given != actual:
        ctx.error(
            f"{field_name}={given} but the input has {actual}",
            f"set {field_name}: {actual}, or leave it out to infer it",
            FixAction("set", ((field_name, None),)),
        )


# --------------------------------------------------------------------------------------
# Per-axis arithmetic (pure functions of ints; tested against torch by hypothesis)


def conv_out(n: int, k: int, s: int, pad_l: int, pad_r: int, d: int) -> int:
    """Conv output size: ⌊(n + pL + pR − d·(k−1) − 1)/s⌋ + 1 (torch.nn.Conv2d docs)."""
    return (n + pad_l + pad_r - d * (k - 1) - 1) // s + 1


def pool_out(n: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """Pooling output size, as ATen's ``pooling_output_shape`` (aten/src/ATen/native/Pool.h):
    with ceil_mode, ⌈…/s⌉ + 1, minus one when the last window would start beyond the input
    and the left padding."""
    out = (n + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    return out


def padding_only_window(n: int, k: int, s: int, p: int, d: int, out: int) -> int | None:
    """The first of the ``out`` windows (start ``i·s − p``, taps every ``d``) with no tap in
    ``[0, n)``, or None. Only windows that start in the padding, or end in it, can miss the
    input: the first and last ``⌈p/s⌉ + 1``."""
    edge = -(-p // s) + 1
    for i in sorted({*range(min(edge, out)), *range(max(out - edge, 0), out)}):
        if not any(0 <= i * s - p + j * d < n for j in range(k)):
            return i
    return None


def conv_transpose_out(n: int, k: int, s: int, p: int, d: int, output_padding: int) -> int:
    """ConvTranspose: (n−1)·s − 2p + d·(k−1) + output_padding + 1 (torch.nn.ConvTranspose2d docs)."""
    return (n - 1) * s - 2 * p + d * (k - 1) + output_padding + 1


def same_padding(k: int, d: int) -> tuple[int, int]:
    """padding='same': total d·(k−1), the odd pixel on the right/bottom (torch's _conv_forward)."""
    total = d * (k - 1)
    return total // 2, total - total // 2


def adaptive_window(n: int, out: int, i: int) -> tuple[int, int]:
    """Adaptive pooling's window [start, end) for output unit i (ATen's start_index/end_index)."""
    return (i * n) // out, -((-(i + 1) * n) // out)


def unseen(n: int, k: int, s: int, pad_l: int, pad_r: int, d: int, out: int) -> int:
    """Input pixels at the end of an axis that no window covers (the floor division drops them)."""
    covered = (out - 1) * s + d * (k - 1) + 1  # in padded coordinates, from the left edge
    return max(0, n + pad_l - covered)


def rf_step(rf: RF, k: int, s: float, pad_l: float, d: int = 1) -> RF:
    """One conv/pool layer on one axis (Araujo et al. 2019, eqs. 2 and 5)."""
    k_eff = d * (k - 1) + 1
    size, jump, start = rf
    return RF(size + (k_eff - 1) * jump, jump * s, start + ((k_eff - 1) / 2 - pad_l) * jump)


def rf_transposed(rf: RF, k: int, s: int, p: int, d: int) -> RF:
    """ConvTranspose on one axis: output o receives input i where o = i·s − p + t·d, t < k.
    Jumps shrink by s, but unevenly (neighbouring outputs may come from inputs a whole unit
    apart), so the size is the upper bound that keeps every later layer's field a bound too:
    any m neighbouring outputs see inputs at most (size−r)/j + (m−1)/s units apart."""
    k_eff = d * (k - 1) + 1
    if s * (s + k_eff) * k <= EXACT_STEPS:
        slack = window_slack(
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


def rf_sources(rf: RF, sources: Callable[[int], list[int]], out: int) -> RF:
    """A resampling layer (Upsample, PixelShuffle) on one axis where output q reads the
    previous units ``sources(q)``: the jump spaces the first and last outputs' centres, the size
    is the upper bound that keeps later fields bounds (as for a transposed convolution)."""
    first, last = sources(0), sources(out - 1)
    centre = (min(first) + max(first)) / 2
    step = ((min(last) + max(last)) / 2 - centre) / (out - 1) if out > 1 else 1.0
    if out <= EXACT_STEPS:
        slack = window_slack(sources, [(q, min(out - q, 8)) for q in range(out)], step)
    else:
        slack = max(len(first), 2) + 1
    return RF(size=rf.size + slack * rf.jump, jump=rf.jump * step, start=rf.start + centre * rf.jump)


def window_slack(sources: Callable[[int], list[int]], windows: list[tuple[int, int]], step: float) -> float:
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
    lo, hi = _union_ends(rf, out_units, n_input)
    size = max(1.0, hi - lo + 1)
    return RF(size=size, jump=size, start=(lo + hi) / 2)


def rf_along(rf: RF, units: int, n_input: int) -> RF:
    """An op that mixes a whole axis but keeps its units (Softmax over W, GroupNorm): every
    unit sees the union of the axis, so all units share one field (jump 0)."""
    lo, hi = _union_ends(rf, units, n_input)
    return RF(size=max(1.0, hi - lo + 1), jump=0.0, start=(lo + hi) / 2)


def _union_ends(rf: RF, units: int, n_input: int) -> tuple[float, float]:
    lo = max(0.0, rf.start - (rf.size - 1) / 2)
    hi = min(n_input - 1.0, rf.start + (units - 1) * rf.jump + (rf.size - 1) / 2)
    return lo, max(lo, hi)


def global_rf(
    ctx: Ctx, rf: tuple[RF, ...] | None = None, shape: tuple[int, ...] | None = None
) -> tuple[RF, ...]:
    """Every axis global: the field after Flatten, Linear, or any change of spatial rank."""
    rf = ctx.rf if rf is None else rf
    shape = ctx.shape if shape is None else shape
    sizes = shape[1:] if len(shape) == len(rf) + 1 else (1,) * len(rf)
    return tuple(rf_global(rf[a], sizes[a], ctx.n_in[a]) for a in range(len(rf)))


def params_line(weight: int, bias: int, weight_formula: str) -> str:
    return f"params = weight {weight_formula} = {weight:,} + bias {bias:,} = {weight + bias:,}"


def explain_params(ctx: Ctx, weight: int, bias: int, weight_formula: str | Callable[[], str]) -> None:
    """The params line; a callable formula is built only when the text is asked for."""
    formula = weight_formula
    ctx.note(lambda: params_line(weight, bias, formula() if callable(formula) else formula))


def rf_lines(rf, new_rf, k, s, d, pad_l) -> str:
    """One line per axis: the receptive-field step of a conv or pool (Araujo et al. 2019)."""
    out = []
    for a, axis in enumerate(axis_names(len(k))):
        if a >= len(rf):
            break
        k_eff = d[a] * (k[a] - 1) + 1
        old, new = rf[a], new_rf[a]
        out.append(
            f"RF {axis}: r = {fmt_num(old.size)} + ({k_eff}−1)·{fmt_num(old.jump)} "
            f"= {fmt_num(new.size)}, "
            f"j = {fmt_num(old.jump)}·{s[a]} = {fmt_num(new.jump)}, "
            f"start = {fmt_num(old.start)} + (({k_eff}−1)/2 − {pad_l[a]})·{fmt_num(old.jump)}"
            f" = {fmt_num(new.start)}"
        )
    return "\n".join(out)


def explain_rf(ctx: Ctx, rf, new_rf, k, s, d, pad_l) -> None:
    if not ctx.axes_apart:
        ctx.note(lambda: rf_lines(rf, new_rf, k, s, d, pad_l))
