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

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

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

__all__ = [
    "BYTES_PER_ELEMENT", "EXACT_STEPS", "RF", "Analysis", "LayerResult", "Problem", "adaptive_window",
    "analyze", "conv_out", "conv_transpose_out", "fmt_num", "fmt_shape", "pool_out", "rf_adaptive",
    "rf_global", "rf_step", "rf_transposed", "same_padding", "unseen",
]  # fmt: skip


@dataclass(frozen=True)
class LayerResult:
    """Everything the engine knows about one node (one layer of the expanded graph)."""

    index: int
    name: str  # the dotted module path: "conv1", "layer1.0.conv1"
    type: str
    layer: S._Layer
    input_shape: tuple[int, ...] | None  # of the first input
    output_shape: tuple[int, ...] | None  # None: could not be computed (error here or above)
    # in_channels/in_features/num_features; for padding: auto also padding ((h, w) or 'same')
    # and a ConvTranspose2d's output_padding ((h, w)): what torch must get instead of the spec's
    inferred: dict[str, Any] = field(default_factory=dict)
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
    graph = graph_of(network)
    shape_in = tuple(input_shape or network.input)
    n_in = shape_in[1:] if len(shape_in) > 1 else ()  # the network input's spatial sizes
    rf_in = tuple(RF(1, 1, 0.0) for _ in n_in)
    shapes: list[tuple[int, ...] | None] = []
    fields: list[tuple[RF, ...] | None] = []
    rows: list[LayerResult] = []
    warned_rf = False
    for node in graph.nodes:
        layer = node.layer
        in_shapes = tuple(shape_in if i == NETWORK_INPUT else shapes[i] for i in node.inputs)
        in_rfs = tuple(rf_in if i == NETWORK_INPUT else fields[i] for i in node.inputs)
        base = dict(inputs=node.inputs, input_shapes=in_shapes, path=node.path, groups=node.groups)
        if any(s is None for s in in_shapes):  # an error above left nothing to compute on
            rows.append(LayerResult(node.index, node.name, layer.type, layer, in_shapes[0], None, **base))
            shapes.append(None)
            fields.append(None)
            continue
        names = ["input" if i == NETWORK_INPUT else rows[i].name for i in node.inputs]
        inputs = [Input(s, r, n) for s, r, n in zip(in_shapes, in_rfs, names, strict=True)]
        family = REGISTRY[layer.type]
        ctx = Ctx(node.index, node.name, layer, inputs, n_in)
        if len(inputs) > 1 and not family.merge:
            ctx.error(
                f"{layer.type} reads one input, not {len(inputs)} ({', '.join(names)})",
                "merge them first with Add, Mul or Cat",
            )
            out = None
        else:
            out = family.analyze(ctx, layer)
        if out is None or out.shape is None:
            rows.append(LayerResult(
                node.index, node.name, layer.type, layer, in_shapes[0], None, ctx.inferred,
                explain_lines=tuple(ctx.explain), errors=tuple(ctx.errors), warnings=tuple(ctx.warnings),
                **base,
            ))  # fmt: skip
            shapes.append(None)
            fields.append(None)
            continue
        if out.rf and not warned_rf and not family.global_rf and n_in:
            big = [
                axis for axis, r, n in zip(axis_names(len(n_in)), out.rf, n_in, strict=False) if r.size > n
            ]
            if big:
                warned_rf = True
                sizes = "×".join(fmt_num(r.size) for r in out.rf)
                ctx.warn(
                    f"receptive field {sizes} is larger than the {fmt_shape(n_in)} input "
                    f"(on {' and '.join(big)}): units beyond this point also see padding"
                )
        rows.append(
            LayerResult(
                node.index, node.name, layer.type, layer, in_shapes[0], out.shape, ctx.inferred,
                out.weight, out.bias, out.weight + out.bias - out.frozen, out.buffers, out.macs,
                out.rf, tuple(ctx.explain), tuple(ctx.errors), tuple(ctx.warnings),
                regime=out.regime, **base,
            )
        )  # fmt: skip
        shapes.append(out.shape)
        fields.append(out.rf)
    errors = tuple(p for row in rows for p in row.errors)
    warnings = tuple(p for row in rows for p in row.warnings) + tuple(Problem(w) for w in graph.warnings)
    return Analysis(
        network.name, shape_in, tuple(rows), warnings, errors,
        graph.output, tuple(graph.groups), graph.bounds, graph.params,
    )  # fmt: skip
