"""The arithmetic engine: shapes, parameters, MACs, memory and receptive fields, per node.

Pure Python over a validated network: a ``spec.Network`` or the plain one that
``specfile.plain_network`` gives ``convcalc shape``. The network's layers, blocks and groups
expand into a graph (``convcalc.graph``: nodes in topological order, each naming its inputs);
the engine walks it and asks each node's layer family (``convcalc.layers``) for its arithmetic,
knowing no layer type by name. Neither torch nor pydantic is imported here (``convcalc shape``
and the TUI recompute on every keystroke). Shapes leave out the batch dim: ``(C, L)``,
``(C, H, W)`` or ``(C, D, H, W)`` for feature maps, ``(F,)`` when flat.

Receptive fields follow Araujo, Norris & Sim, "Computing Receptive Fields of Convolutional
Neural Networks", Distill 2019 (see ``convcalc.layers.base``): one ``RF(size, jump, start)``
per spatial axis of the network input. Through branches a node's field is the union of what
every path into it sees.
"""

from __future__ import annotations

import gc
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

from convcalc.graph import NETWORK_INPUT, Graph, Group, expand
from convcalc.layers import REGISTRY
from convcalc.layers.base import (
    BYTES_PER_ELEMENT,
    EXACT_STEPS,
    RF,
    Ctx,
    Input,
    Problem,
    adaptive_window,
    axis_names,
    conv_out,
    conv_transpose_out,
    fmt_count,
    fmt_num,
    fmt_shape,
    numel,
    pool_out,
    rf_adaptive,
    rf_global,
    rf_step,
    rf_transposed,
    same_padding,
    unseen,
)

if TYPE_CHECKING:  # annotations only: pydantic is not imported at run time
    from convcalc import spec as S

_NOTHING_INFERRED: Mapping[str, Any] = MappingProxyType({})  # a shared default: read-only
# A named tuple built from a complete tuple of its fields, without the Python frame of its
# generated __new__: the walk builds two per node (Input, LayerResult), 10% of its time.
_new_row = tuple.__new__

__all__ = [
    "BYTES_PER_ELEMENT", "EXACT_STEPS", "RF", "Analysis", "LayerResult", "Problem", "adaptive_window",
    "analyze", "conv_out", "conv_transpose_out", "fmt_count", "fmt_num", "fmt_shape", "pool_out",
    "rf_adaptive", "rf_global", "rf_step", "rf_transposed", "same_padding", "unseen",
]  # fmt: skip


class LayerResult(NamedTuple):
    """Everything the engine knows about one node (one layer of the expanded graph).

    A named tuple, not a frozen dataclass: as immutable, and built in a fifth of the time
    (1.3 µs against 7 µs for 22 fields), which is most of what a row costs in a deep spec."""

    index: int
    name: str  # the dotted module path: "conv1", "layer1.0.conv1"
    type: str
    layer: S._Layer
    input_shape: tuple[int, ...] | None  # of the first input
    output_shape: tuple[int, ...] | None  # None: could not be computed (error here or above)
    # in_channels/in_features/num_features; for padding: auto also padding ((h, w) or 'same')
    # and a ConvTranspose2d's output_padding ((h, w)): what torch must get instead of the spec's
    inferred: Mapping[str, Any] = _NOTHING_INFERRED
    weight_params: int = 0
    bias_params: int = 0
    trainable_params: int = 0
    buffers: int = 0  # e.g. BatchNorm running statistics: state, not parameters
    macs: int = 0
    receptive_field: tuple[RF, ...] | None = None  # one per spatial axis of the network input
    explain_lines: tuple[Any, ...] = ()  # strings, or callables making them (built when asked)
    errors: tuple[Problem, ...] = ()
    warnings: tuple[Problem, ...] = ()
    inputs: tuple[int, ...] = ()  # rows feeding it; -1 is the network input
    input_shapes: tuple[tuple[int, ...] | None, ...] = ()
    path: tuple[str, ...] = ()
    groups: tuple[Group, ...] = ()  # enclosing blocks and Sequentials, outermost first
    regime: str | None = None  # "bound": the field here is an upper bound, not exact
    # after a Permute: layout[k] is the channels-first dim at dim k of the output (batch left out,
    # 0: channels), e.g. (1, 2, 0) channels-last; None: channels first
    layout: tuple[int, ...] | None = None

    @property
    def params(self) -> int:
        return self.weight_params + self.bias_params

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @property
    def memory_bytes(self) -> int:
        return numel(self.output_shape) * BYTES_PER_ELEMENT if self.output_shape else 0

    @property
    def summary(self) -> str:
        """The main settings in short, e.g. ``6@5×5 s1 p0`` for a conv."""
        return REGISTRY[self.type].summary(self.layer, self.inferred)

    @property
    def explain(self) -> tuple[str, ...]:
        lines: list[str] = []
        for item in self.explain_lines:
            text = item() if callable(item) else item
            lines.extend(text.split("\n") if text else [])
        return tuple(lines)

    @property
    def straight(self) -> bool:
        """Reads only the row above it (or the input, for the first row)."""
        return self.inputs == (self.index - 1,)


@dataclass(frozen=True)
class Analysis:
    name: str
    input_shape: tuple[int, ...]
    rows: tuple[LayerResult, ...]
    warnings: tuple[Problem, ...]  # every warning, the layers' included
    errors: tuple[Problem, ...]  # every error, the layers' included
    output_index: int = -2  # the row whose output is the network's (-1: the input; -2: the last)
    groups: tuple[Group, ...] = ()
    # group path -> (the row it reads, the row whose output is the group's); -1: the input
    bounds: Mapping[tuple[str, ...], tuple[int, int]] = field(default_factory=dict)
    params: Mapping[tuple[str, ...], Mapping[str, Any]] = field(default_factory=dict)  # of each block use

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def straight(self) -> bool:
        """A plain stack: no groups, every row reads the one above."""
        return not self.groups and all(row.straight for row in self.rows)

    @property
    def output_row(self) -> LayerResult | None:
        if not self.rows or self.output_index == NETWORK_INPUT:
            return None
        return self.rows[self.output_index if self.output_index >= 0 else -1]

    @property
    def output_shape(self) -> tuple[int, ...] | None:
        row = self.output_row
        return self.input_shape if row is None else row.output_shape

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


def graph_of(network: Any) -> Graph:
    """The network's graph: the one validation expanded, or (a plain network) expanded now."""
    graph = getattr(network, "graph", None)
    if graph is None:
        graph = expand(network, _no_blocks)
    return graph


def _no_blocks(raw: dict, where: str) -> Any:  # a plain network has no blocks to validate
    raise AssertionError(f"{where}: plain networks hold validated layers only")


def analyze(network: S.Network, input_shape: tuple[int, ...] | None = None) -> Analysis:
    """Analyse every node of ``network`` (on ``input_shape`` if given, else the spec's input)."""
    # The walk allocates tens of thousands of small objects and makes no reference cycles:
    # the cyclic collector, run every 700 allocations, would only add an eighth to the time.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _walk(network, input_shape)
    finally:
        if collecting:
            gc.enable()


def _layout_ok(ctx: Ctx, family: Any, layouts: tuple, inputs: list[Input]) -> bool:
    """Only a family that knows about axis order reads a permuted tensor, and only a merge reads
    a value computed from Parameters alone (it sees nothing of the input: its field is None)."""
    if not family.merge and any(i.rf is None for i in inputs):
        ctx.error(f"reads {inputs[0].name}, a Parameter (it holds no input position)",
                  f"use it in a Mul or Add with a tensor: inputs: [{inputs[0].name}, input]")  # fmt: skip
        return False
    moved = next((layout for layout in layouts if layout is not None), None)
    if family.layout is None and moved is not None:
        last = moved == (*range(1, len(moved)), 0)
        order = "channels last" if last else f"its dims hold channels-first dims {list(moved)}"
        undo = [0, *(moved.index(dim) + 1 for dim in range(len(moved)))]
        ctx.error(f"{ctx.layer.type} needs channels first, but its input is permuted ({order})",
                  f"permute back to channels-first first: {{type: Permute, dims: {undo}}}")  # fmt: skip
        return False
    return True


def _walk(network: S.Network, input_shape: tuple[int, ...] | None) -> Analysis:
    graph = graph_of(network)
    shape_in = tuple(input_shape or network.input)
    n_in = shape_in[1:] if len(shape_in) > 1 else ()  # the network input's spatial sizes
    rf_in = tuple(RF(1, 1, 0.0) for _ in n_in)
    rank = len(n_in)
    shapes: list[tuple[int, ...] | None] = []
    fields: list[tuple[RF, ...] | None] = []
    rows: list[LayerResult] = []
    layouts: list[tuple[int, ...] | None] = []  # per node: its axis order after a Permute (None: C first)
    errors: list[Problem] = []
    warnings: list[Problem] = []
    warned_rf = False
    # The walk is the cost of a deep spec (a 1,000-layer stack in a few ms): one input, the
    # common case, takes no generator; rows are positional named tuples.
    for node in graph.nodes:
        layer, reads = node.layer, node.inputs
        if len(reads) == 1:
            i = reads[0]
            if i == NETWORK_INPUT:
                inputs = [Input(shape_in, rf_in, "input")]
                in_shapes = (shape_in,)
            else:
                in_shapes = (shapes[i],)
                inputs = (
                    None
                    if in_shapes[0] is None
                    else [_new_row(Input, (in_shapes[0], fields[i], rows[i].name))]
                )
        else:
            in_shapes = tuple(shape_in if i == NETWORK_INPUT else shapes[i] for i in reads)
            inputs = None if None in in_shapes else [
                Input(shape_in, rf_in, "input") if i == NETWORK_INPUT else Input(shapes[i], fields[i],
                                                                                 rows[i].name)
                for i in reads
            ]  # fmt: skip
        if inputs is None:  # an error above left nothing to compute on
            rows.append(LayerResult(
                node.index, node.name, layer.type, layer, in_shapes[0], None, {},
                inputs=reads, input_shapes=in_shapes, path=node.path, groups=node.groups,
            ))  # fmt: skip
            shapes.append(None)
            fields.append(None)
            layouts.append(None)
            continue
        family = REGISTRY[layer.type]
        first = in_shapes[0] if in_shapes else ()  # a Parameter reads nothing
        apart = len(first) - 1 != rank and len(first) >= 2 and rank and not (family.global_rf or family.merge)
        if apart:  # after Flatten + Unflatten: the family steps a stand-in field of its own rank
            held = inputs[0].rf
            inputs[0] = Input(first, (RF(1, 1, 0.0),) * (len(first) - 1), inputs[0].name)
        ctx = Ctx(node.index, node.name, layer, inputs, n_in)
        if apart:
            ctx.axes_apart = True
        in_layouts = tuple(None if i == NETWORK_INPUT else layouts[i] for i in reads)
        ctx.layouts = in_layouts
        if len(inputs) > 1 and not family.merge:
            ctx.error(
                f"{layer.type} reads one input, not {len(inputs)} ({', '.join(x.name for x in inputs)})",
                "merge them first with Add, Mul or Cat",
            )
            out = None
        elif not _layout_ok(ctx, family, in_layouts, inputs):
            out = None
        else:
            out = family.analyze(ctx, layer)
            if out is not None and family.layout == "keep":
                out.layout = in_layouts[0]
        if apart and out is not None and out.shape is not None:
            out.rf = held  # every unit already sees the union of what the layer reads
            ctx.note("receptive field unchanged: every unit above already sees the union of the input "
                     "(these spatial axes are not the input's)")  # fmt: skip
        if not warned_rf and out is not None and out.shape and out.rf and rank and not family.global_rf:
            names = axis_names(rank)
            big = [axis for axis, r, n in zip(names, out.rf, n_in, strict=False) if r.size > n]
            if big:
                warned_rf = True
                sizes = "×".join(fmt_num(r.size) for r in out.rf)
                ctx.warn(
                    f"receptive field {sizes} is larger than the {fmt_shape(n_in)} input "
                    f"(on {' and '.join(big)}): units beyond this point also see padding"
                )
        row_errors = row_warnings = ()
        if ctx.errors:
            errors.extend(row_errors := tuple(ctx.errors))
        if ctx.warnings:
            warnings.extend(row_warnings := tuple(ctx.warnings))
        if out is None or out.shape is None:
            rows.append(LayerResult(
                node.index, node.name, layer.type, layer, in_shapes[0] if in_shapes else None, None,
                ctx.inferred, 0, 0, 0, 0, 0,
                None, tuple(ctx.explain), row_errors, row_warnings, reads, in_shapes, node.path, node.groups,
            ))  # fmt: skip
            shapes.append(None)
            fields.append(None)
            layouts.append(None)
            continue
        rows.append(_new_row(LayerResult, (  # every field, in order: LayerResult(...) without its frame
            node.index, node.name, layer.type, layer, in_shapes[0] if in_shapes else None, out.shape,
            ctx.inferred, out.weight, out.bias, out.weight + out.bias - out.frozen, out.buffers, out.macs,
            out.rf, tuple(ctx.explain), row_errors, row_warnings, reads, in_shapes, node.path, node.groups,
            out.regime, out.layout,
        )))  # fmt: skip
        shapes.append(out.shape)
        fields.append(out.rf)
        layouts.append(out.layout)
    warnings.extend(Problem(w) for w in graph.warnings)
    return Analysis(
        network.name, shape_in, tuple(rows), tuple(warnings), tuple(errors),
        graph.output, tuple(graph.groups), graph.bounds, graph.params,
    )  # fmt: skip
