"""The engine against the real model: every number ``convcalc shape`` prints, measured by torch.

``check(network)`` builds the model with ``build_model`` and compares, layer by layer:

- **output shape**: forward hooks on a dummy batch of 2, through the real CPU kernels (no
  autograd, weights left uninitialised: values never change a shape);
- **params** and **buffers**: the modules' own tensors;
- **MACs**: ``torch.utils.flop_counter.FlopCounterMode`` during that same forward. It counts
  2 FLOPs per multiply-accumulate of convolutions, transposed convolutions and matrix products
  (a Linear's ``addmm``), bias additions not counted, and nothing for pooling, normalisation or
  activations: the engine's convention, so MACs = FLOPs / 2 / batch, compared on every layer;
- **receptive field**: the gradient probe below;
- **torchinfo**: ``torchinfo.summary`` of the same model (on the meta device, where it costs
  nothing) must report the engine's output shapes and total parameters.

The gradient probe (``probe_fields``) needs no trained weights: a receptive field does not depend
on channel counts, so it runs a float64 *skeleton* of the network with one channel everywhere,
every weight 1/fan_in (positive: no cancellation), no bias, max pools turned into averages over
the same windows, activations, BatchNorm and Dropout removed. The input pixels with a nonzero
gradient of one output unit are exactly the pixels that unit sees.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from convcalc import spec as S
from convcalc.build import build_model
from convcalc.engine import RF, Analysis, LayerResult, analyze, fmt_num, fmt_shape
from convcalc.errors import ConvcalcError
from convcalc.graph import NETWORK_INPUT
from convcalc.layers.base import axis_names, channels_first

BATCH = 2

Unit = tuple[int, ...] | None  # (row, column) of an output unit, one index per axis; None: all units
Extent = tuple[tuple[int, int], ...]  # ((first, last) row, (first, last) column): a pair per axis


# --------------------------------------------------------------------------------------
# The gradient probe

Step = Callable[[list[torch.Tensor]], torch.Tensor]


def skeleton(model: nn.Module, analysis: Analysis) -> list[Step | None]:
    """One function per layer (row of ``analysis``) on float64 ``(B, 1, *spatial)`` maps
    (``(B, F)`` once flat) that connects exactly the positions the layer's module connects,
    with positive weights; it takes the layer's inputs, in order. It reads the modules
    themselves (the geometry torch was given), not the spec. None: a layer the probe cannot
    follow (e.g. Unflatten back to channels); the layers after it are not probed."""
    return [
        _parameter_step(row)
        if row.type == "Parameter"
        else _skeleton_step(model.get_submodule(row.name), row)
        for row in analysis.rows
    ]


def _parameter_step(row: LayerResult) -> Step:
    """A Parameter: a positive constant of one channel (it sees no input position), broadcast
    as the real one is (no batch dim)."""
    shape = row.output_shape or ()
    size = (1, *shape[1:]) if len(shape) > 1 else (1,) * len(shape)
    return lambda xs: torch.ones(size, dtype=torch.float64)


def _one(f: Callable[[torch.Tensor], torch.Tensor]) -> Step:
    return lambda xs: f(xs[0])


def _skeleton_step(m: nn.Module, row: LayerResult) -> Step | None:
    kind = type(m).__name__
    nd = int(kind[-2]) if kind[-2:] in ("1d", "2d", "3d") else None
    if kind.startswith("Conv") and not kind.startswith("ConvTranspose"):
        conv = getattr(F, f"conv{nd}d")
        weight = _mean_kernel(m.kernel_size)
        return _one(lambda x: conv(x.sum(1, keepdim=True), weight, None, m.stride, m.padding, m.dilation))
    if kind.startswith("ConvTranspose"):
        conv_t = getattr(F, f"conv_transpose{nd}d")
        weight = _mean_kernel(m.kernel_size)
        return _one(lambda x: conv_t(x.sum(1, keepdim=True), weight, None, m.stride, m.padding,
                                     m.output_padding, 1, m.dilation))  # fmt: skip
    if kind.startswith("MaxPool"):
        return _one(lambda x: _window_mean(x, m))
    if kind.startswith("AvgPool"):
        pool = getattr(F, f"avg_pool{nd}d")
        return _one(lambda x: pool(x, m.kernel_size, m.stride, m.padding, m.ceil_mode, m.count_include_pad))
    if kind.startswith("Adaptive"):
        pool = getattr(F, f"adaptive_avg_pool{nd}d")
        return _one(lambda x: pool(x, m.output_size))
    if kind == "Flatten":
        return _one(lambda x: torch.flatten(x, m.start_dim, m.end_dim))
    if kind == "Linear":
        return _one(lambda x: x.mean(dim=-1, keepdim=True))  # out_features=1, weights 1/in_features
    if kind in ("Softmax", "LogSoftmax", "Softmin"):
        return _one(lambda x: _mixing(x, [_softmax_dim(x, m.dim)]))
    if kind == "LayerNorm":
        return _one(lambda x: _mixing(x, list(range(x.dim() - len(m.normalized_shape), x.dim()))))
    if kind == "GroupNorm" or kind.startswith("InstanceNorm"):  # statistics over all positions (training)
        return _one(lambda x: _mixing(x, list(range(2, x.dim()))))
    if kind == "Add":
        return lambda xs: sum(xs[1:], xs[0])  # the union of what the inputs see
    if kind == "Mul":
        return lambda xs: _gated(xs)
    if kind == "Cat":
        return lambda xs: _cat(xs, m.dim, row)
    if "Pad" in kind:
        mode = (
            "reflect"
            if kind.startswith("Reflection")
            else "replicate"
            if kind.startswith("Replication")
            else "constant"
        )
        return _one(lambda x: F.pad(x, m.padding, mode))
    if kind == "Upsample":
        return _one(lambda x: F.interpolate(x, m.size, m.scale_factor, m.mode, m.align_corners))
    if kind == "PixelShuffle":  # output (i, j) reads input (i // r, j // r): a nearest upsampling
        return _one(lambda x: F.interpolate(x, scale_factor=m.upscale_factor, mode="nearest"))
    if kind == "PixelUnshuffle":  # all channels of output (i, j) read an r × r block
        return _one(lambda x: F.avg_pool2d(x, m.downscale_factor))
    if kind == "Unflatten":
        return None
    if kind == "Permute":  # the one-channel skeleton's dims move as the real ones do
        return _one(lambda x: x.permute(m.dims))
    if kind == "Chunk":  # along channels every piece sees what the one skeleton channel sees
        channels = m.dim % (len(row.input_shape) + 1) == 1 and len(row.input_shape) > 1
        return _one(lambda x: x if channels else x.chunk(m.chunks, m.dim)[m.index])
    return _one(lambda x: x)  # activations, BatchNorm, Dropout, Identity, ChannelShuffle: pointwise


def _mean_kernel(kernel_size: int | tuple[int, ...]) -> torch.Tensor:
    k = tuple(kernel_size) if isinstance(kernel_size, tuple | list) else (kernel_size,)
    return torch.full((1, 1, *k), 1.0 / math.prod(k), dtype=torch.float64)


def _window_mean(x: torch.Tensor, pool: nn.Module) -> torch.Tensor:
    """The mean over exactly a max pool's windows (padding, dilation, ceil_mode), where the
    average pools have no dilation: zero-pad, convolve with a dilated mean kernel, crop to the
    size torch's own max pool gives."""
    nd = x.dim() - 2
    out_size = pool(x.detach()).shape[2:]

    def per_axis(value: Any) -> tuple[int, ...]:
        return tuple(value) if isinstance(value, tuple | list) else (value,) * nd

    k, s, p, d = (per_axis(v) for v in (pool.kernel_size, pool.stride, pool.padding, pool.dilation))
    n = x.shape[2:]
    # The windows span (out−1)·s + d·(k−1) + 1 padded positions; pad the far side that far.
    far = [max(0, (out_size[a] - 1) * s[a] + d[a] * (k[a] - 1) + 1 - n[a] - p[a]) for a in range(nd)]
    pads = [v for a in reversed(range(nd)) for v in (p[a], far[a])]  # F.pad: last axis first
    conv = getattr(F, f"conv{nd}d")
    out = conv(F.pad(x, pads), _mean_kernel(k), None, s, 0, d)
    return out[(..., *(slice(0, size) for size in out_size))]


def _softmax_dim(x: torch.Tensor, dim: int | None) -> int:
    if dim is None:  # torch's legacy choice for dim=None (torch.nn.functional._get_softmax_dim)
        dim = 0 if x.dim() in (0, 1, 3) else 1
    return dim % x.dim()


def _mixing(x: torch.Tensor, dims: list[int]) -> torch.Tensor:
    """An op coupling every position along ``dims`` (Softmax, a norm's statistics): x + the
    mean along them, positively. The batch dim (0) is left alone: fields are per sample."""
    dims = [d for d in dims if d != 0]
    return x + x.mean(dim=dims, keepdim=True) if dims else x


def _gated(xs: list[torch.Tensor]) -> torch.Tensor:
    """Mul: the union of the full-size inputs; a gate broadcast over positions (size 1 where
    the output has more) is left out, the engine's documented convention for SE gates."""
    spatial = torch.broadcast_shapes(*(x.shape for x in xs))[2:]
    full = [x for x in xs if x.shape[2:] == spatial] or xs
    return sum(full[1:], full[0])


def _cat(xs: list[torch.Tensor], dim: int, row: LayerResult) -> torch.Tensor:
    """Cat along channels: the one-channel skeleton adds the maps (the union of what they see);
    along any other dim the maps are concatenated as torch does."""
    rank = len(row.input_shapes[0] or ()) + 1  # with the batch dim
    if rank > 2 and dim % rank == 1:
        return sum(xs[1:], xs[0])
    return torch.cat(xs, dim)


def probe_fields(network: S.Network, units: Mapping[int, Sequence[Unit]]) -> dict[int, list[Extent | None]]:
    """For each layer index in ``units``, the extent in input positions of the nonzero input
    gradient of each listed output unit: one (first, last) pair per spatial axis, e.g.
    ((first row, last row), (first col, last col)), or None if no input position reaches it.
    A unit ``None`` means all of the layer's units together (for flat outputs: what a unit of a
    following Linear sees). Layers the probe cannot follow are left out of the answer."""
    if not units:
        return {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # single-channel maps: threads only add overhead (3× slower on 2 cores)
    try:
        return _probe(network, units)
    finally:
        torch.set_num_threads(threads)


def _probe(network: S.Network, units: Mapping[int, Sequence[Unit]]) -> dict[int, list[Extent | None]]:
    batch = max(len(wanted) for wanted in units.values())
    analysis = analyze(network)
    with torch.device("meta"):  # only the modules' geometry is read: no memory, no initialisation
        model = build_model(network)
    n_in = tuple(network.input[1:])
    x = torch.zeros(batch, 1, *n_in, dtype=torch.float64, requires_grad=True)
    values: dict[int, torch.Tensor | None] = {NETWORK_INPUT: x}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. "implicit dimension choice for softmax"
        for row, step in zip(analysis.rows[: max(units) + 1], skeleton(model, analysis), strict=False):
            ins = [values[i] for i in row.inputs]
            values[row.index] = None if step is None or any(v is None for v in ins) else step(ins)  # type: ignore[arg-type]
    fields: dict[int, list[Extent | None]] = {}
    for index, wanted in units.items():
        out = values.get(index)
        if out is None:
            continue
        if not out.requires_grad:  # a Parameter's constant: no input position reaches it
            fields[index] = [None] * len(wanted)
            continue
        layout = analysis.rows[index].layout  # after a Permute: the skeleton's dims moved too
        sizes = channels_first(tuple(out.shape[1:]), layout)[1:]
        # A unit beyond the real output (the engine's shape is wrong there) sees nothing.
        inside = [
            unit is None
            or (out.dim() == len(unit) + 2 and all(u < size for u, size in zip(unit, sizes, strict=True)))
            for unit in wanted
        ]
        target = out.new_zeros(()) + sum(
            out[b].sum() if unit is None else out[(b, *_unit_index(unit, layout))]
            for b, unit in enumerate(wanted)
            if inside[b]
        )
        (grad,) = torch.autograd.grad(target, x, retain_graph=True, allow_unused=True)
        fields[index] = [
            _extent(grad[b, 0]) if grad is not None and inside[b] else None for b in range(len(wanted))
        ]
    return fields


def _unit_index(unit: tuple[int, ...], layout: tuple[int, ...] | None) -> tuple[int, ...]:
    """The skeleton's (channel 0, *unit) index, in the order its dims are held after a Permute."""
    if layout is None:
        return (0, *unit)
    return tuple(0 if dim == 0 else unit[dim - 1] for dim in layout)


def _extent(grad: torch.Tensor) -> Extent | None:
    seen = grad != 0
    if not seen.any():
        return None
    out = []
    for axis in range(seen.dim()):
        others = [a for a in range(seen.dim()) if a != axis]
        hit = (seen.any(dim=others) if others else seen).nonzero().flatten()
        out.append((int(hit[0]), int(hit[-1])))
    return tuple(out)  # type: ignore[return-value]


# --------------------------------------------------------------------------------------
# Comparisons


@dataclass(frozen=True)
class Comparison:
    """One quantity of one layer (``index`` None: the network as a whole), engine vs torch."""

    quantity: (
        str  # "output shape", "params", "buffers", "MACs", "RF H", "RF W", "torchinfo output shape", ...
    )
    engine: Any
    torch: Any
    ok: bool
    index: int | None = None
    name: str | None = None
    rule: str = "equal"  # how they are compared (the receptive field has several rules)

    def __str__(self) -> str:
        where = f"layer {self.index} ({self.name})" if self.index is not None else "network"
        rule = "" if self.rule == "equal" else f" [{self.rule}]"
        return f"{where}: {self.quantity} engine {_text(self.engine)} vs torch {_text(self.torch)}{rule}"


def _text(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, tuple) and all(isinstance(v, int) for v in value):
        return fmt_shape(value)
    if isinstance(value, list):  # receptive field: [[lo, hi], ...] per axis of one unit
        return "[" + ", ".join(fmt_num(v) for v in value) + "]"
    return str(value)


@dataclass(frozen=True)
class CheckReport:
    analysis: Analysis
    comparisons: tuple[Comparison, ...]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.comparisons)

    @property
    def mismatches(self) -> tuple[Comparison, ...]:
        return tuple(c for c in self.comparisons if not c.ok)

    def for_layer(self, index: int | None) -> list[Comparison]:
        return [c for c in self.comparisons if c.index == index]


def available_memory() -> int | None:
    """Bytes this machine can still give (``MemAvailable``), or None where that is unknown."""
    try:
        for line in open("/proc/meminfo", encoding="ascii"):  # noqa: SIM115 - read once, closed at exit
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def ensure_memory(needed: int, what: str) -> None:
    """A ``ConvcalcError`` before torch tries to allocate more than the machine has."""
    free = available_memory()
    if free is not None and needed > free:
        from convcalc.render import human_bytes

        raise ConvcalcError(f"{what} needs about {human_bytes(needed)}; this machine has {human_bytes(free)} "
                            "available. fix: a smaller --input, or fewer channels")  # fmt: skip


def check(network: S.Network) -> CheckReport:
    """Compare the engine's analysis of ``network`` with the real model; raises ``BuildError``
    (a ``ConvcalcError``) when the spec has engine errors, and ``ConvcalcError`` when the
    forward would need more memory than the machine has (estimated from the engine first)."""
    analysis = analyze(network)
    if analysis.ok:  # the weights, every activation of the batch, and the float64 probe maps
        n_in = math.prod(analysis.input_shape[1:]) if len(analysis.input_shape) > 1 else 1
        needed = (
            analysis.param_bytes + BATCH * analysis.total_memory_bytes + 4 * 8 * n_in * len(analysis.rows)
        )
        ensure_memory(needed, f"check of {network.name}")
    model = build_model(network, initialize=False)  # raises BuildError for invalid specs
    comparisons = [
        *_model_comparisons(analysis, model, network),
        *_rf_comparisons(analysis, network),
        *_torchinfo_comparisons(analysis, network),
    ]
    order = {row.index: i for i, row in enumerate(analysis.rows)}
    comparisons.sort(key=lambda c: order.get(c.index, len(order)))  # stable: layers, then totals
    return CheckReport(analysis, tuple(comparisons))


def _model_comparisons(analysis: Analysis, model: nn.Module, network: S.Network) -> list[Comparison]:
    from torch.utils.flop_counter import FlopCounterMode

    shapes: dict[str, tuple[int, ...]] = {}
    leaves = {row.name for row in analysis.rows}
    hooks = [
        module.register_forward_hook(
            lambda _m, _i, out, name=name: shapes.__setitem__(name, tuple(out.shape))
        )
        for name, module in model.named_modules()
        if name in leaves
    ]
    counter = FlopCounterMode(display=False)
    model.eval()  # Dropout off, BatchNorm on its running statistics
    with counter, torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = model(torch.zeros(BATCH, *network.input))
    for hook in hooks:
        hook.remove()
    prefix = f"{type(model).__name__}."  # the counter names modules "<root class>.<path>"
    flops = {
        key[len(prefix) :]: sum(per_op.values())
        for key, per_op in counter.get_flop_counts().items()
        if key.startswith(prefix)
    }
    result = []
    for row in analysis.rows:
        if row.type == "Parameter":  # a tensor of the block, no module: no hook, no MACs
            tensor = model.get_parameter(row.name)
            owner, _, own = row.name.rpartition(".")
            view = getattr(model.get_submodule(owner), "_views", {}).get(own)  # read as, by forward
            shapes[row.name] = (BATCH, *(view or tensor.shape))
            module = nn.ParameterList([tensor])
        else:
            module = model.get_submodule(row.name)
        got_shape = shapes.get(row.name)
        torch_values = {
            "output shape": got_shape[1:] if got_shape else None,
            "params": sum(p.numel() for p in module.parameters()),
            "buffers": sum(b.numel() for b in module.buffers()),
            "MACs": _per_sample_macs(flops.get(row.name, 0)),
        }
        engine_values = {
            "output shape": row.output_shape,
            "params": row.params,
            "buffers": row.buffers,
            "MACs": row.macs,
        }
        for quantity, expected in engine_values.items():
            got = torch_values[quantity]
            result.append(Comparison(quantity, expected, got, expected == got, row.index, row.name))
    totals = {
        "output shape": (analysis.output_shape, tuple(out.shape[1:])),
        "total params": (analysis.total_params, sum(p.numel() for p in model.parameters())),
        "total MACs": (analysis.total_macs, _per_sample_macs(counter.get_total_flops())),
    }
    result += [Comparison(q, e, t, e == t) for q, (e, t) in totals.items()]
    return result


def _per_sample_macs(flops: int) -> int | float:
    macs = flops / (2 * BATCH)
    return int(macs) if macs.is_integer() else macs


def torchinfo_summary(network: S.Network, batch: int = 1, depth: int = 1):
    """``torchinfo.summary`` of the model (``convcalc summary``); its ``str()`` is torchinfo's
    table. The model lives on the meta device: torchinfo's forward then only computes shapes,
    so VGG16 takes milliseconds and no memory."""
    import torchinfo

    ensure_memory(4 * batch * math.prod(network.input), f"summary of {network.name} (its input batch)")
    with torch.device("meta"):
        model = build_model(network)  # raises BuildError for invalid specs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torchinfo.summary(
            model,
            input_size=(batch, *network.input),
            device="meta",
            verbose=0,
            depth=depth,
            col_names=("output_size", "num_params", "mult_adds"),
            row_settings=("var_names",),
        )


def torchinfo_text(stats: Any) -> str:
    """torchinfo's table as it means it: ``Total mult-adds (M): 0.29``. Its unit is a str enum
    put in an f-string, which Python 3.11+ writes as ``(Units.MEGABYTES)``."""
    from torchinfo.enums import Units

    return re.sub(r"\(Units\.([A-Z]+)\)", lambda unit: f"({Units[unit[1]].value})", str(stats))


def _torchinfo_path(info: Any) -> str:
    """The module path of one of torchinfo's rows (``layer1.0.conv1``), from its parents."""
    parts = []
    while info is not None and info.depth > 0:
        parts.append(info.var_name)
        info = info.parent_info
    return ".".join(reversed(parts))


def _torchinfo_comparisons(analysis: Analysis, network: S.Network) -> list[Comparison]:
    stats = torchinfo_summary(network, BATCH, depth=max((len(row.path) for row in analysis.rows), default=1))
    by_name = {_torchinfo_path(info): info for info in stats.summary_list}
    result = []
    for row in analysis.rows:
        if row.type == "Parameter":
            continue  # a tensor, not a module: torchinfo has no row for it (its total counts it)
        info = by_name.get(row.name)
        got = tuple(info.output_size[1:]) if info is not None else None
        result.append(
            Comparison(
                "torchinfo output shape", row.output_shape, got, got == row.output_shape, row.index, row.name
            )
        )
    total = int(stats.total_params)
    result.append(
        Comparison("torchinfo total params", analysis.total_params, total, total == analysis.total_params)
    )
    return result


# --------------------------------------------------------------------------------------
# Receptive fields: what the engine claims for a unit, and how strictly it can be compared
#
# The engine says unit i's field on an axis spans start + i·jump ± (size−1)/2 input pixels.
# - "exact": conv and pool stacks. An end of that span inside the input must be the probe's
#   end exactly (or the unit sees no pixel at all: its windows lie in the padding); an end
#   outside is clipped, and the probe's end must lie inside the clipped span (a dilated or
#   strided field has holes, so the first pixel reached can sit a little inside the edge).
#   Units whose whole span is inside the input are probed when there are any: then size,
#   start and jump are all checked exactly, and the unit must see something.
# - "union": Flatten, Linear, global pools: the engine gives the union of the previous units'
#   fields clipped to the input; compared like the ends above, each end exact unless the union
#   had to be clipped there.
# - "bound": after a ConvTranspose2d (the engine's size is the most inputs any output sees), an
#   adaptive pool whose bins differ in size (the largest bin and the mean stride), or a window
#   over an axis already made global: the engine documents its size as an upper bound there, and
#   that is what is checked (probe size ≤ engine size). Its start is an approximation (the mean
#   stride can put a centre up to a jump away), so positions are not compared; the union of such
#   fields after a Flatten ("within") must hold the probe's, its ends rounded out to whole pixels.


@dataclass(frozen=True)
class _Expect:
    lo: float  # "exact"/"union": the span's ends clipped to the input
    hi: float
    exact_lo: bool  # the end lies inside the input: it must be the probe's end exactly
    exact_hi: bool
    rule: str
    bound: float = 0.0  # "bound": the engine's size, an upper bound of the probe's


_ORDER = {"exact": 0, "union": 1, "bound": 2}


def _rf_comparisons(analysis: Analysis, network: S.Network) -> list[Comparison]:
    n_in = analysis.input_shape[1:]
    nd = len(n_in)
    if nd == 0:
        return []  # a flat input: no positions, no fields
    axes = range(nd)
    start = (["exact"] * nd, [(False, False)] * nd, tuple(RF(1, 1, 0.0) for _ in axes))
    state: dict[int, tuple[list[str], list[tuple[bool, bool]], tuple[RF, ...]]] = {NETWORK_INPUT: start}
    plans: dict[int, list[tuple[Unit, list[_Expect | None]]]] = {}
    for row in analysis.rows:
        rf = row.receptive_field
        if rf is None:  # a Parameter (or made of Parameters only): it must see no input position
            plans[row.index] = [(None, [])]
            continue
        row = _channels_first_row(row, analysis)
        assert row.output_shape is not None  # a valid analysis computes it
        ins = [state[i] for i in row.inputs if i in state]  # Parameters left out: they see nothing
        if row.type == "Mul":  # a gate broadcast over positions is left out (the engine's convention)
            full = [state[i] for i, shape in zip(row.inputs, row.input_shapes, strict=True)
                    if i in state and shape is not None and shape[1:] == row.output_shape[1:]]  # fmt: skip
            ins = full or ins
        regime, union_clipped = [], []
        for a in axes:
            kinds = {s[0][a] for s in ins}
            merged = kinds.pop() if len(kinds) == 1 else "bound"  # branches in different regimes
            if row.regime == "bound" and merged != "bound":
                merged = "bound"
            new, clipped = _next_regime(merged, row, a, ins[0][2][a], n_in[a], nd)
            regime.append(new)
            union_clipped.append(clipped or tuple(any(s[1][a][e] for s in ins) for e in (0, 1)))  # type: ignore[misc]
        state[row.index] = (regime, union_clipped, rf)
        if len(row.output_shape) == nd + 1:
            picks = [_pick_units(rf[a], row.output_shape[1 + a], n_in[a], regime[a]) for a in axes]
            # the first and last picked units, then the corner units: a wrong jump (e.g. a Softmax
            # over W given jump = size) puts every unit but the first outside the input, where no
            # "inside" unit would be picked; each unit once (a 1×1 output has one unit in all)
            last = tuple(row.output_shape[1 + a] - 1 for a in axes)
            picked = [tuple(picks[a][u] for a in axes) for u in (0, 1)]
            units: list[Unit] = list(dict.fromkeys([*picked, (0,) * nd, last]))
        else:
            units = [None]
        plans[row.index] = [
            (unit, [_expect(rf[a], unit and unit[a], n_in[a], regime[a], union_clipped[a]) for a in axes])
            for unit in units
        ]
    fields = probe_fields(network, {index: [unit for unit, _ in plan] for index, plan in plans.items()})
    names = axis_names(nd)
    result = []
    for row in analysis.rows:
        if row.index not in fields:
            continue  # the probe cannot follow this layer (or one it reads)
        if row.receptive_field is None:
            seen = fields[row.index][0]
            for a, axis in enumerate(names):
                got_axis = list(seen[a]) if seen else None
                result.append(Comparison(f"RF {axis} (all units)", None, got_axis, seen is None, row.index,
                                         row.name, "sees nothing"))  # fmt: skip
            continue
        for (unit, expects), got in zip(plans[row.index], fields[row.index], strict=True):
            # A unit whose span is inside the input on every axis surely sees its ends; any other
            # may see no position at all (its windows fall in padding, or its field is all holes).
            must_see = all(e is not None and e.exact_lo and e.exact_hi for e in expects)
            for a, axis in enumerate(names):
                expect = expects[a]
                if expect is None:
                    continue
                probe = got[a] if got is not None else None
                quantity = f"RF {axis} ({'all units' if unit is None else f'unit {unit[a]}'})"
                if expect.rule == "bound":
                    size = probe[1] - probe[0] + 1 if probe else 0
                    ok = size <= math.ceil(expect.bound)
                    result.append(
                        Comparison(quantity, expect.bound, size, ok, row.index, row.name, "size ≤ engine")
                    )
                    continue
                ok = _ends_ok(expect, probe) if probe else not must_see
                result.append(Comparison(quantity, [expect.lo, expect.hi], list(probe) if probe else None, ok,
                                         row.index, row.name, expect.rule))  # fmt: skip
    return result


def _channels_first_row(row: LayerResult, analysis: Analysis) -> LayerResult:
    """The row with its shapes in channels-first order (its own and its inputs' layouts undone)."""
    layouts = [None if i == NETWORK_INPUT else analysis.rows[i].layout for i in row.inputs]
    if row.layout is None and not any(layouts):
        return row
    input_shapes = tuple(
        s and channels_first(s, lay) for s, lay in zip(row.input_shapes, layouts, strict=True)
    )
    return row._replace(
        output_shape=channels_first(row.output_shape, row.layout),
        input_shape=input_shapes[0] if input_shapes else None,
        input_shapes=input_shapes,
    )


def _next_regime(
    regime: str, row: LayerResult, a: int, before: RF, n: int, nd: int
) -> tuple[str, tuple[bool, bool] | None]:
    """The comparison regime of axis ``a`` after ``row``; for a new union, whether each of its
    ends was clipped to the input."""
    out = row.output_shape
    rf = row.receptive_field
    kind = row.type
    flat = len(out) != nd + 1
    adaptive = kind.startswith("Adaptive")
    global_here = flat or (adaptive and _per_axis(row.layer.output_size, nd)[a] == 1)
    if global_here or (rf is not None and rf[a].jump == 0 and out[1 + a] > 0 and regime == "exact"):
        if regime != "exact":
            return regime, None
        m = row.input_shape[1 + a] if row.input_shape and len(row.input_shape) == nd + 1 else 1
        lo = before.start - (before.size - 1) / 2  # the union of the m units before, unclipped
        hi = before.start + (m - 1) * before.jump + (before.size - 1) / 2
        return "union", (lo < 0, hi > n - 1)
    if kind.startswith("ConvTranspose") or kind in ("Upsample", "PixelShuffle"):
        return "bound", None
    if adaptive and row.input_shape[1 + a] % out[1 + a]:
        return "bound", None
    if regime == "union" and (kind.startswith(("Conv", "MaxPool", "AvgPool", "PixelUnshuffle")) or adaptive):
        return "bound", None  # a window over a one-unit axis that stands for the whole input
    return regime, None


def _per_axis(value: Any, nd: int) -> tuple[Any, ...]:
    return tuple(value) if isinstance(value, tuple | list) else (value,) * nd


def _span(rf: RF, i: int) -> tuple[float, float]:
    centre = rf.start + i * rf.jump
    return centre - (rf.size - 1) / 2, centre + (rf.size - 1) / 2


def _pick_units(rf: RF, out: int, n: int, regime: str) -> tuple[int, int]:
    """Two units on one axis: the first and last whose span lies inside the input, else the
    first and last with one end inside, else the first and last unit."""
    if regime == "exact":
        spans = [_span(rf, i) for i in range(out)]
        for keep in (lambda lo, hi: lo >= 0 and hi <= n - 1, lambda lo, hi: lo >= 0 or hi <= n - 1):
            picked = [i for i, (lo, hi) in enumerate(spans) if keep(lo, hi) and lo <= n - 1 and hi >= 0]
            if picked:
                return picked[0], picked[-1]
    return 0, out - 1


def _expect(rf: RF, i: int | None, n: int, regime: str, union_clipped: tuple[bool, bool]) -> _Expect | None:
    if regime == "bound":
        if i is not None:
            return _Expect(0, 0, False, False, "bound", rf.size)
        # the union after a Flatten: it must hold what the probe sees, to the whole pixel
        lo, hi = _span(rf, 0)
        lo, hi = math.floor(max(0.0, lo) + 1e-9), math.ceil(min(n - 1.0, hi) - 1e-9)
        return _Expect(lo, hi, False, False, "within")
    if regime == "union":
        lo, hi = _span(rf, 0)  # the engine's union, already clipped
        return _Expect(lo, hi, not union_clipped[0], not union_clipped[1], "union")
    lo, hi = _span(rf, i or 0)
    return _Expect(max(0.0, lo), min(n - 1.0, hi), lo >= 0, hi <= n - 1, "exact")


def _ends_ok(expect: _Expect, probe: tuple[int, int]) -> bool:
    lo, hi = probe
    ok_lo = lo == expect.lo if expect.exact_lo else lo >= expect.lo
    ok_hi = hi == expect.hi if expect.exact_hi else hi <= expect.hi
    return ok_lo and ok_hi


# --------------------------------------------------------------------------------------
# Rendering (``convcalc check``)

_COLUMNS = {  # table column -> the quantities it summarises
    "output": ("output shape",),
    "params": ("params", "buffers"),
    "MACs": ("MACs",),
    "RF": tuple(f"RF {axis}" for axis in ("L", "D", "H", "W")),
    "torchinfo": ("torchinfo output shape",),
}


def report_table(report: CheckReport):
    """A rich table: one row per layer, ✓ or ✗ per quantity, with the engine's value."""
    from rich.table import Table
    from rich.text import Text

    from convcalc.render import rf_text

    table = Table(title=Text(f"{report.analysis.name}: engine vs torch"), title_justify="left")
    for header in ("#", "name", "type", *_COLUMNS):
        table.add_column(
            header, justify="right" if header in ("#", "params", "MACs") else "left", no_wrap=True
        )
    for row in report.analysis.rows:
        comparisons = report.for_layer(row.index)
        values = {
            "output": fmt_shape(row.output_shape),
            "params": f"{row.params:,}",
            "MACs": f"{row.macs:,}",
            "RF": rf_text(row)[0],
            "torchinfo": "",
        }
        cells = []
        for column, quantities in _COLUMNS.items():
            mine = [c for c in comparisons if c.quantity.split(" (")[0] in quantities]
            mark = "·" if not mine else "✓" if all(c.ok for c in mine) else "✗"  # ·: not comparable
            cells.append(f"{mark} {values[column]}".rstrip())
        bad = any(not c.ok for c in comparisons)
        table.add_row(str(row.index), row.name, row.type, *cells, style="red" if bad else None)
    return table


def report_text(report: CheckReport) -> str:
    """The verdict under the table: the network's totals, then every mismatch named, or what agreed."""
    totals = "Network: " + ", ".join(
        f"{'✓' if c.ok else '✗'} {c.quantity} {_text(c.engine)}" for c in report.for_layer(None)
    )
    return totals + "\n" + _verdict(report)


def _verdict(report: CheckReport) -> str:
    if report.ok:
        return (
            f"All {len(report.comparisons):,} comparisons agree: shapes, params, buffers, MACs, "
            "receptive fields, torchinfo"
            + (
                ", training memory."
                if any(c.quantity.startswith("saved") for c in report.comparisons)
                else "."
            )  # fmt: skip
        )
    lines = [f"{len(report.mismatches)} mismatch{'es' if len(report.mismatches) > 1 else ''}:"]
    lines += [f"  ✗ {c}" for c in report.mismatches]
    return "\n".join(lines)


def report_json(report: CheckReport) -> dict[str, Any]:
    """``convcalc check --json``: every comparison, per layer and for the network."""

    def item(c: Comparison) -> dict[str, Any]:
        return {
            "quantity": c.quantity,
            "engine": _json(c.engine),
            "torch": _json(c.torch),
            "ok": c.ok,
            "rule": c.rule,
        }

    return {
        "name": report.analysis.name,
        "input_shape": list(report.analysis.input_shape),
        "ok": report.ok,
        "layers": [
            {
                "index": row.index,
                "name": row.name,
                "type": row.type,
                "comparisons": [item(c) for c in report.for_layer(row.index)],
            }
            for row in report.analysis.rows
        ],
        "network": [item(c) for c in report.for_layer(None)],
        "mismatches": [str(c) for c in report.mismatches],
    }


def _json(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_json(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
