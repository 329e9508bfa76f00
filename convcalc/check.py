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

BATCH = 2

Unit = tuple[int, int] | None  # (row, column) of an output unit; None: all units together
Extent = tuple[tuple[int, int], tuple[int, int]]  # ((first, last) row, (first, last) column)


# --------------------------------------------------------------------------------------
# The gradient probe


def skeleton(model: nn.Sequential) -> list[Callable[[torch.Tensor], torch.Tensor]]:
    """One function per module of ``model`` on float64 ``(B, 1, H, W)`` maps (``(B, F)`` once
    flat) that connects exactly the positions the module connects, with positive weights. It
    reads the modules themselves (the geometry torch was given), not the spec."""
    return [_skeleton_step(module) for module in model]


def _skeleton_step(m: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    if isinstance(m, nn.Conv2d):
        weight = _mean_kernel(m.kernel_size)
        return lambda x: F.conv2d(x, weight, None, m.stride, m.padding, m.dilation)
    if isinstance(m, nn.ConvTranspose2d):
        weight = _mean_kernel(m.kernel_size)
        return lambda x: F.conv_transpose2d(
            x, weight, None, m.stride, m.padding, m.output_padding, 1, m.dilation
        )
    if isinstance(m, nn.MaxPool2d):
        return lambda x: _window_mean(x, m)
    if isinstance(m, nn.AvgPool2d):
        return lambda x: F.avg_pool2d(x, m.kernel_size, m.stride, m.padding, m.ceil_mode, m.count_include_pad)
    if isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        return lambda x: F.adaptive_avg_pool2d(x, m.output_size)
    if isinstance(m, nn.Flatten):
        return lambda x: torch.flatten(x, m.start_dim, m.end_dim)
    if isinstance(m, nn.Linear):
        return lambda x: x.mean(dim=-1, keepdim=True)  # out_features=1, weights 1/in_features
    if isinstance(m, (nn.Softmax, nn.LogSoftmax)):
        return lambda x: _softmax_mixing(x, m.dim)
    return lambda x: x  # activations, BatchNorm2d, Dropout, Identity: position by position


def _mean_kernel(kernel_size: int | tuple[int, int]) -> torch.Tensor:
    kh, kw = S.pair(kernel_size)
    return torch.full((1, 1, kh, kw), 1.0 / (kh * kw), dtype=torch.float64)


def _window_mean(x: torch.Tensor, pool: nn.MaxPool2d) -> torch.Tensor:
    """The mean over exactly MaxPool2d's windows (padding, dilation, ceil_mode), where
    AvgPool2d has no dilation: zero-pad, convolve with a dilated mean kernel, crop to the size
    torch's own max_pool2d gives."""
    out_size = pool(x.detach()).shape[-2:]
    k, s, p, d = (S.pair(v) for v in (pool.kernel_size, pool.stride, pool.padding, pool.dilation))
    n = x.shape[-2:]
    # The windows span (out−1)·s + d·(k−1) + 1 padded positions; pad the right side that far.
    right = [max(0, (out_size[a] - 1) * s[a] + d[a] * (k[a] - 1) + 1 - n[a] - p[a]) for a in (0, 1)]
    padded = F.pad(x, (p[1], right[1], p[0], right[0]))
    return F.conv2d(padded, _mean_kernel(k), None, s, 0, d)[..., : out_size[0], : out_size[1]]


def _softmax_mixing(x: torch.Tensor, dim: int | None) -> torch.Tensor:
    """Softmax couples every position along its dim: x + mean along that dim, positively. The
    batch dim (0) is left alone: receptive fields are per sample."""
    if dim is None:  # torch's legacy choice for dim=None (torch.nn.functional._get_softmax_dim)
        dim = 0 if x.dim() in (0, 1, 3) else 1
    dim %= x.dim()
    return x if dim == 0 else x + x.mean(dim=dim, keepdim=True)


def probe_fields(network: S.Network, units: Mapping[int, Sequence[Unit]]) -> dict[int, list[Extent | None]]:
    """For each layer index in ``units``, the extent in input pixels of the nonzero input
    gradient of each listed output unit: ((first row, last row), (first col, last col)), or None
    if no input pixel reaches it. A unit ``None`` means all of the layer's units together (for
    flat outputs: what a unit of a following Linear sees)."""
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
    with torch.device("meta"):  # only the modules' geometry is read: no memory, no initialisation
        model = build_model(network)
    h, w = network.input[1:]
    x = torch.zeros(batch, 1, h, w, dtype=torch.float64, requires_grad=True)
    outputs = []
    y = x
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. "implicit dimension choice for softmax"
        for step in skeleton(model)[: max(units) + 1]:
            y = step(y)
            outputs.append(y)
    fields: dict[int, list[Extent | None]] = {}
    for index, wanted in units.items():
        out = outputs[index]
        # A unit beyond the real output (the engine's shape is wrong there) sees nothing.
        inside = [unit is None or (out.dim() == 4 and unit[0] < out.shape[2] and unit[1] < out.shape[3])
                  for unit in wanted]  # fmt: skip
        target = out.new_zeros(()) + sum(
            out[b].sum() if unit is None else out[b, 0, unit[0], unit[1]]
            for b, unit in enumerate(wanted)
            if inside[b]
        )
        (grad,) = torch.autograd.grad(target, x, retain_graph=True, allow_unused=True)
        fields[index] = [
            _extent(grad[b, 0]) if grad is not None and inside[b] else None for b in range(len(wanted))
        ]
    return fields


def _extent(grad: torch.Tensor) -> Extent | None:
    seen = grad != 0
    rows = seen.any(dim=1).nonzero().flatten()
    cols = seen.any(dim=0).nonzero().flatten()
    if len(rows) == 0:
        return None
    return (int(rows[0]), int(rows[-1])), (int(cols[0]), int(cols[-1]))


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


def check(network: S.Network) -> CheckReport:
    """Compare the engine's analysis of ``network`` with the real model; raises ``BuildError``
    (a ``ConvcalcError``) when the spec has engine errors."""
    model = build_model(network, initialize=False)  # raises BuildError for invalid specs
    analysis = analyze(network)
    comparisons = [
        *_model_comparisons(analysis, model, network),
        *_rf_comparisons(analysis, network),
        *_torchinfo_comparisons(analysis, network),
    ]
    order = {row.index: i for i, row in enumerate(analysis.rows)}
    comparisons.sort(key=lambda c: order.get(c.index, len(order)))  # stable: layers, then totals
    return CheckReport(analysis, tuple(comparisons))


def _model_comparisons(analysis: Analysis, model: nn.Sequential, network: S.Network) -> list[Comparison]:
    from torch.utils.flop_counter import FlopCounterMode

    shapes: dict[str, tuple[int, ...]] = {}
    hooks = [
        module.register_forward_hook(
            lambda _m, _i, out, name=name: shapes.__setitem__(name, tuple(out.shape))
        )
        for name, module in model.named_children()
    ]
    counter = FlopCounterMode(display=False)
    model.eval()  # Dropout off, BatchNorm on its running statistics
    with counter, torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = model(torch.zeros(BATCH, *network.input))
    for hook in hooks:
        hook.remove()
    flops = {
        key.rsplit(".", 1)[-1]: sum(per_op.values())
        for key, per_op in counter.get_flop_counts().items()
        if key.startswith(f"{type(model).__name__}.")
    }
    result = []
    for row in analysis.rows:
        module = getattr(model, row.name)
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


def torchinfo_summary(network: S.Network, batch: int = 1):
    """``torchinfo.summary`` of the model (``convcalc summary``); its ``str()`` is torchinfo's
    table. The model lives on the meta device: torchinfo's forward then only computes shapes,
    so VGG16 takes milliseconds and no memory."""
    import torchinfo

    with torch.device("meta"):
        model = build_model(network)  # raises BuildError for invalid specs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torchinfo.summary(
            model,
            input_size=(batch, *network.input),
            device="meta",
            verbose=0,
            depth=1,
            col_names=("output_size", "num_params", "mult_adds"),
            row_settings=("var_names",),
        )


def _torchinfo_comparisons(analysis: Analysis, network: S.Network) -> list[Comparison]:
    stats = torchinfo_summary(network, BATCH)
    by_name = {info.var_name: info for info in stats.summary_list if info.depth == 1}
    result = []
    for row in analysis.rows:
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
#   stride can put a centre up to a jump away), so positions are not compared, nor the union of
#   such fields after a Flatten.


@dataclass(frozen=True)
class _Expect:
    lo: float  # "exact"/"union": the span's ends clipped to the input
    hi: float
    exact_lo: bool  # the end lies inside the input: it must be the probe's end exactly
    exact_hi: bool
    rule: str
    bound: float = 0.0  # "bound": the engine's size, an upper bound of the probe's


def _rf_comparisons(analysis: Analysis, network: S.Network) -> list[Comparison]:
    n_in = analysis.input_shape[1:]
    regime = ["exact", "exact"]
    union_clipped = [(False, False), (False, False)]
    previous_rf = (RF(1, 1, 0.0), RF(1, 1, 0.0))
    plans: dict[int, list[tuple[Unit, list[_Expect | None]]]] = {}
    for row in analysis.rows:
        rf = row.receptive_field
        assert rf is not None and row.output_shape is not None  # a valid analysis computes both
        for a in (0, 1):
            regime[a], clipped = _next_regime(regime[a], row, a, previous_rf[a], n_in[a])
            union_clipped[a] = clipped or union_clipped[a]
        previous_rf = rf
        if len(row.output_shape) == 3:
            picks = [_pick_units(rf[a], row.output_shape[1 + a], n_in[a], regime[a]) for a in (0, 1)]
            units: list[Unit] = [(picks[0][u], picks[1][u]) for u in (0, 1)]
        else:
            units = [None]
        plans[row.index] = [
            (unit, [_expect(rf[a], unit and unit[a], n_in[a], regime[a], union_clipped[a]) for a in (0, 1)])
            for unit in units
        ]
    fields = probe_fields(network, {index: [unit for unit, _ in plan] for index, plan in plans.items()})
    result = []
    for row in analysis.rows:
        for (unit, expects), got in zip(plans[row.index], fields[row.index], strict=True):
            # A unit whose span is inside the input on both axes surely sees its ends; any other
            # may see no pixel at all (its windows fall in padding, or its field is all holes).
            must_see = all(e is not None and e.exact_lo and e.exact_hi for e in expects)
            for a, axis in enumerate("HW"):
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


_ADAPTIVE = ("AdaptiveAvgPool2d", "AdaptiveMaxPool2d")


def _next_regime(
    regime: str, row: LayerResult, a: int, before: RF, n: int
) -> tuple[str, tuple[bool, bool] | None]:
    """The comparison regime of axis ``a`` after ``row``; for a new union, whether each of its
    ends was clipped to the input."""
    out = row.output_shape
    if len(out) != 3 or (row.type in _ADAPTIVE and S.pair(row.layer.output_size)[a] == 1):  # global here
        if regime != "exact":
            return regime, None
        m = row.input_shape[1 + a] if len(row.input_shape) == 3 else 1
        lo = before.start - (before.size - 1) / 2  # the union of the m units before, unclipped
        hi = before.start + (m - 1) * before.jump + (before.size - 1) / 2
        return "union", (lo < 0, hi > n - 1)
    if row.type == "ConvTranspose2d" or (row.type in _ADAPTIVE and row.input_shape[1 + a] % out[1 + a]):
        return "bound", None
    if regime == "union" and row.type in ("Conv2d", "MaxPool2d", "AvgPool2d", *_ADAPTIVE):
        return "bound", None  # a window over a one-unit axis that stands for the whole input
    return regime, None


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
        return None if i is None else _Expect(0, 0, False, False, "bound", rf.size)
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
    "RF": ("RF H", "RF W"),
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
            "receptive fields, torchinfo."
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
