"""Graph networks as standalone PyTorch source (``convcalc export`` of a spec with branches,
groups or blocks): a class per block, ``forward`` with named intermediates and shape comments.

Every use of a block is the same class. What differs between the uses of a block (its
channels, its stride) becomes an argument of the class, named after the block's parameter it
always equals (``planes``), ``in_channels`` (the channels the block reads), a small multiple of
one of those (``planes * 4``), or else after the layer and field (``conv1_stride``). Uses whose
layers differ in type (a block parameter naming the activation) get a class each
(``Bneck``, ``Bneck2``). A ``Sequential`` group whose members form a chain is an
``nn.Sequential``; one with branches inside is a class too.

The source is laid out as ``ruff format`` would (88 columns), so it passes a stock
``ruff check`` and ``ruff format --check``.
"""

from __future__ import annotations

import ast
import inspect
import keyword
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from convcalc import spec as S
from convcalc.engine import Analysis, LayerResult, analyze, fmt_count
from convcalc.errors import ConvcalcError
from convcalc.graph import NETWORK_INPUT
from convcalc.torch_signatures import SIGNATURES

WIDTH = 88  # ruff's and black's default line length, so the file passes a stock `ruff check`
_MERGES = ("Add", "Mul", "Cat")


# --------------------------------------------------------------------------------------
# What a spec layer's torch module takes, without torch


class BuildError(ConvcalcError):
    """The spec has engine errors, so no model can be built; ``analysis`` says which."""

    def __init__(self, analysis: Analysis):
        self.analysis = analysis
        super().__init__("\n".join(str(problem) for problem in analysis.errors))


def valid_analysis(network: S.Network) -> Analysis:
    """The engine's analysis of a network that can be built; ``BuildError`` otherwise."""
    analysis = analyze(network)
    if not analysis.ok:
        raise BuildError(analysis)
    return analysis


def module_kwargs(layer: S._Layer, inferred: dict[str, int]) -> dict[str, Any]:
    """The constructor arguments of ``torch.nn.<layer.type>``: the spec's fields that the
    constructor takes (not ``type``, ``name`` or other spec-only fields), with what the engine
    inferred filled in."""
    accepted = {name for name, _ in SIGNATURES[layer.type]}
    kwargs = layer.model_dump(exclude={"type", "name"})
    kwargs = {key: tuple(value) if isinstance(value, list) else value  # pairs may come back as lists
              for key, value in kwargs.items() if key in accepted}  # fmt: skip
    kwargs.update(inferred)
    return kwargs


# Spec types that are convcalc's own modules (convcalc.build), not torch.nn's: exported with
# their source
OWN_LAYERS = ("StochasticDepth", "BatchNormAct2d", "Chunk", "Permute", "LayerNorm2d")


def constructor_name(type_name: str) -> str:
    """How exported source calls it: ``nn.Conv2d``, or ``StochasticDepth`` (defined in the file)."""
    return type_name if type_name in OWN_LAYERS else f"nn.{type_name}"


def own_layer_sources(analysis: Analysis) -> list[str]:
    """The classes of ``OWN_LAYERS`` the network uses, as source lines for an exported file:
    the very code the built model runs, read from convcalc/build.py (not imported: torch)."""
    used = {row.type for row in analysis.rows} & set(OWN_LAYERS)
    if not used:
        return []
    text = (Path(__file__).parent / "build.py").read_text(encoding="utf-8")
    classes = {node.name: node for node in ast.parse(text).body if isinstance(node, ast.ClassDef)}
    lines: list[str] = []
    for name in OWN_LAYERS:
        if name in used:
            lines += ["", "", *ast.get_source_segment(text, classes[name]).split("\n")]
    return lines


# --------------------------------------------------------------------------------------
# A plain stack as source (graphs: ``graph_source``)

# Sizes written as the first positional arguments, as PyTorch code usually does
# (``nn.Conv2d(1, 6, kernel_size=5)``, ``nn.Linear(256, 120)``); everything else by keyword.
_POSITIONAL = {
    **{
        f"{kind}{nd}d": ("in_channels", "out_channels")
        for kind in ("Conv", "ConvTranspose")
        for nd in (1, 2, 3)
    },
    **{f"BatchNorm{nd}d": ("num_features",) for nd in (1, 2, 3)},
    "Linear": ("in_features", "out_features"),
}


def doc_safe(text: str) -> str:
    """``text`` as it can stand in a docstring: backslashes, quotes and control characters
    escaped (a name like ``a \\N "b"`` must not break the exported source)."""
    return text.encode("unicode_escape").decode("ascii").replace('"', '\\"')


def class_name(network_name: str) -> str:
    """The exported class's name: ``lenet`` -> ``Lenet``, ``dilated_context`` -> ``DilatedContext``."""
    words = [word for word in re.split(r"[^0-9A-Za-z]+", network_name) if word]
    name = "".join(word[0].upper() + word[1:] for word in words) or "Network"
    return name if name[0].isalpha() else f"Net{name}"


def export_source(network: S.Network) -> str:
    """Readable PyTorch source of the network: an ``nn.Module`` subclass that needs only torch,
    every size written out, the shape after each step as a comment; instantiable with no
    arguments and equal, module for module, to ``build_model(network)``."""
    analysis = valid_analysis(network)
    # graph_source also writes names that are no identifiers (block1-0) with add_module/getattr
    if not analysis.straight or any(
        row.type in _MERGES or not row.name.isidentifier() for row in analysis.rows
    ):
        return graph_source(network, analysis)
    cls = class_name(network.name)
    shape_in, shape_out = _batch_shape(analysis.input_shape), _batch_shape(analysis.output_shape)
    layers = fmt_count(len(analysis.rows), "layer")
    init = [line for row in analysis.rows for line in _init_lines(row, analysis)]
    forward = [f"        x = self.{row.name}(x)  # {_batch_shape(row.output_shape)}" for row in analysis.rows]
    lines = [
        *source_header(network, analysis),
        *own_layer_sources(analysis),
        "",
        "",
        f"class {cls}(nn.Module):",
        f'    """{doc_safe(network.name)}, {layers}: {shape_in} -> {shape_out}."""',
        "",
        "    def __init__(self) -> None:",
        "        super().__init__()",
        *init,
        "",
        "    def forward(self, x: torch.Tensor) -> torch.Tensor:",
        f"        # x: {shape_in}",
        *forward,
        "        return x",
        "",
    ]
    return "\n".join(lines)


def source_header(network: S.Network, analysis: Analysis, ordered_dict: bool = False) -> list[str]:
    """The exported file's docstring, imports and ``INPUT_SHAPE`` line."""
    axes = {1: "(F,)", 2: "(C, L)", 3: "(C, H, W)", 4: "(C, D, H, W)"}[len(analysis.input_shape)]
    return [
        f'"""{doc_safe(network.name)}: generated by convcalc from its spec; needs only PyTorch.',
        "",
        f"Input {_batch_shape(analysis.input_shape)}, output {_batch_shape(analysis.output_shape)}.",
        f"{analysis.total_params:,} parameters; {analysis.total_macs:,} multiply-accumulates per sample.",
        '"""',
        "",
        *(["from collections import OrderedDict", ""] if ordered_dict else []),
        "import torch",
        "from torch import nn",
        "",
        f"INPUT_SHAPE = {tuple(analysis.input_shape)!r}  # {axes} of one sample",
    ]


def _batch_shape(shape: tuple[int, ...] | None) -> str:
    return "(N, " + ", ".join(str(v) for v in shape or ()) + ")"


def _init_lines(row, analysis: Analysis) -> list[str]:
    """``self.c1 = nn.Conv2d(1, 6, kernel_size=5)  # 156 params``, wrapped as ruff format would
    when it does not fit in 88 columns."""
    cls, args = _constructor(row, analysis)
    comment = f"  # {row.params:,} params" if row.params else ""
    head = f"        self.{row.name} = {constructor_name(cls)}("
    line = head + ", ".join(args) + ")" + comment
    if len(line) <= WIDTH:
        return [line]
    inner = "            " + ", ".join(args)
    if len(inner) <= WIDTH:
        return [head, inner, "        )" + comment]
    return [head, *(f"            {arg}," for arg in args), "        )" + comment]


def _constructor(row, analysis: Analysis) -> tuple[str, list[str]]:
    """``Conv2d``, ``["1", "6", "kernel_size=5"]``: the sizes first, then every argument that
    differs from torch's default (read from the constructor's signature)."""
    positional = _POSITIONAL.get(row.type, ())
    args = []
    for name, value in _constructor_values(row):
        if name in positional:
            args.append(_size_literal(row, analysis, name, value))
        else:
            args.append(f'{name}="{value}"' if isinstance(value, str) else f"{name}={value!r}")
    return row.type, args


def _constructor_values(row, every: bool = False) -> list[Any]:
    """The constructor's arguments as (name, value): the sizes first (``_POSITIONAL``), then,
    in torch's order, every one that differs from torch's default; ``every``: all of them, as
    (name, value, default) (``inspect.Parameter.empty`` where there is none)."""
    kwargs = module_kwargs(row.layer, row.inferred)
    parameters = dict(SIGNATURES[row.type])
    empty = inspect.Parameter.empty
    defaults = {name: default for name, default in parameters.items() if default is not empty}
    positional = _POSITIONAL.get(row.type, ())
    values: list[Any] = [
        (name, kwargs[name], empty) if every else (name, kwargs[name]) for name in positional
    ]
    order = list(parameters)
    for name in sorted(kwargs, key=order.index):  # torch's argument order
        value = kwargs[name]
        if name in positional:
            continue
        if every:
            values.append((name, value, defaults.get(name, empty)))
        elif not (name in defaults and _same(defaults[name], value)):
            values.append((name, value))
    return values


def _size_literal(row, analysis: Analysis, name: str, value: int) -> str:
    """A Linear's in_features after a Flatten (pointwise layers between allowed) written as the
    product it is (``16 * 4 * 4``), the number people otherwise compute by hand."""
    if name == "in_features":
        before = row
        while before.inputs and before.inputs[0] >= 0:  # back along the layers it reads
            before = analysis.rows[before.inputs[0]]
            shape = before.input_shape
            if before.type == "Flatten" and shape and len(shape) > 1 and math.prod(shape[1:]) > 1:
                return " * ".join(str(v) for v in shape)
            if shape != before.output_shape:
                break
    return str(value)


# --------------------------------------------------------------------------------------
# Calls laid out as ruff format does


@dataclass
class Call:
    """``callee(args)``: each argument a literal, a ``Call``, or a ``Slot`` filled per class."""

    callee: str
    args: list[Any]
    open: str = "("
    close: str = ")"


_NO_DEFAULT = inspect.Parameter.empty


@dataclass(frozen=True, eq=False)
class Slot:
    """A value of one use of a block: the text it is written as in the class. A keyword
    argument equal to torch's default is left out, unless the class takes it as an argument."""

    keyword: str | None
    value: Any
    literal: str  # as written in the top-level model (every value known)
    default: Any = _NO_DEFAULT

    @property
    def omitted(self) -> bool:
        default = self.default
        return default is not _NO_DEFAULT and type(default) is type(self.value) and default == self.value


def flat(item: Any, fill: dict[Slot, str] | None = None) -> str:
    if isinstance(item, Call):
        return (
            item.callee + item.open + ", ".join(flat(a, fill) for a in _shown(item.args, fill)) + item.close
        )
    if isinstance(item, Slot):
        text = (fill or {}).get(item, item.literal)
        return f"{item.keyword}={text}" if item.keyword else text
    return str(item)


def _shown(args: list[Any], fill: dict[Slot, str] | None) -> list[Any]:
    return [a for a in args if not (isinstance(a, Slot) and a.omitted and a not in (fill or {}))]


def layout(head: str, item: Any, tail: str, indent: str, fill: dict[Slot, str] | None = None) -> list[str]:
    """``indent + head + item + tail`` within 88 columns: on one line; else the arguments on
    one line of their own; else one argument a line with a trailing comma (nested calls the
    same way)."""
    line = indent + head + flat(item, fill) + tail
    args = _shown(item.args, fill) if isinstance(item, Call) else []
    if len(line) <= WIDTH or not args:
        return [line]
    start = indent + head + item.callee + item.open
    close = indent + item.close + tail
    body = indent + "    " + ", ".join(flat(a, fill) for a in args)
    if len(body) <= WIDTH:
        return [start, body, close]
    lines = [start]
    for arg in args:
        lines += layout("", arg, ",", indent + "    ", fill)
    return [*lines, close]


# --------------------------------------------------------------------------------------
# The module tree


@dataclass
class Container:
    """The network, a block use or a group: its members in order and how they connect."""

    path: tuple[str, ...]
    kind: str  # "network", "Sequential", or the block's name
    members: list[tuple[str, Any]] = field(default_factory=list)  # (name, LayerResult | Container)
    reads: tuple[int, int] = (NETWORK_INPUT, NETWORK_INPUT)  # (input row, output row)

    @property
    def chain(self) -> bool:
        """Members in a chain from the input to the output, no merges: an nn.Sequential."""
        before = self.reads[0]
        for _, member in self.members:
            if _reads(member) != (before,) or (isinstance(member, LayerResult) and member.type in _MERGES):
                return False
            before = _output(member)
        return before == self.reads[1]


def _reads(member: Any) -> tuple[int, ...]:
    return member.inputs if isinstance(member, LayerResult) else (member.reads[0],)


def _output(member: Any) -> int:
    return member.index if isinstance(member, LayerResult) else member.reads[1]


def tree(analysis: Analysis) -> Container:
    kinds = {group.path: group.kind for group in analysis.groups}
    root = Container((), "network", reads=(NETWORK_INPUT, analysis.output_row.index))  # type: ignore[union-attr]
    containers: dict[tuple[str, ...], Container] = {(): root}
    for row in analysis.rows:
        path = row.path or (row.name,)
        for depth in range(1, len(path)):
            prefix = path[:depth]
            if prefix not in containers:
                group = Container(prefix, kinds[prefix], reads=analysis.bounds[prefix])
                containers[prefix] = group
                containers[prefix[:-1]].members.append((prefix[-1], group))
        containers[path[:-1]].members.append((path[-1], row))
    return root


# --------------------------------------------------------------------------------------
# Classes


@dataclass
class ClassDef:
    name: str
    kind: str
    uses: list[Container]
    params: list[str] = field(default_factory=list)
    fill: dict[Slot, str] = field(default_factory=dict)  # slots of the first use -> text


class Exporter:
    def __init__(self, analysis: Analysis):
        self.analysis = analysis
        self.classes: dict[str, ClassDef] = {}  # by name, in order of first use
        self.signatures: dict[tuple, str] = {}  # (kind, structure) -> class name
        self.class_of: dict[tuple[str, ...], str] = {}  # container path -> class name
        self._bodies: dict[tuple[str, ...], list[tuple[str, Any]]] = {}
        self.values: dict[str, list[list[Any]]] = {}  # class -> each use's argument values

    # the __init__ expression of a member, with Slots for every value --------------------

    def expr(self, member: Any) -> Any:
        if isinstance(member, LayerResult):
            return self.layer_call(member)
        if member.kind == "Sequential" and member.chain:
            names = [name for name, _ in member.members]
            items = [self.expr(m) for _, m in member.members]
            if names == [str(i) for i in range(len(names))]:
                return Call("nn.Sequential", items)
            pairs = [Call("", [f'"{n}"', item]) for n, item in zip(names, items, strict=True)]
            return Call("nn.Sequential", [Call("OrderedDict", [Call("", pairs, "[", "]")])])
        cls = self.class_of[member.path]
        definition = self.classes[cls]
        use = definition.uses.index(member)
        args = [
            Slot(p, value, _literal(value))
            for p, value in zip(definition.params, self.values[cls][use], strict=True)
        ]
        return Call(cls, args)

    def layer_call(self, row: LayerResult) -> Call:
        if row.type == "Parameter":
            return _parameter_call(row.layer)
        args = []
        positional = _POSITIONAL.get(row.type, ())
        for name, value, default in _constructor_values(row, every=True):
            literal = (
                _size_literal(row, self.analysis, name, value) if name in positional else _literal(value)
            )
            args.append(Slot(None if name in positional else name, value, literal, default))
        return Call(constructor_name(row.type), args)

    def structure(self, item: Any) -> Any:
        """What must be equal for two uses to share a class: everything but the slot values."""
        if isinstance(item, Call):
            return (item.callee, tuple(self.structure(a) for a in item.args))
        if isinstance(item, Slot):
            return ("slot", item.keyword)
        if isinstance(item, list | tuple):
            return tuple(self.structure(part) for part in item)
        return item

    # classes for blocks and branching groups, innermost first ---------------------------

    def collect(self, root: Container) -> None:
        """Classes for blocks and branching groups, the innermost first: a class's body
        names the classes below it, so those are parametrized before it is compared."""
        levels: dict[int, list[Container]] = {}

        def is_class(container: Container) -> bool:
            return container.kind != "network" and not (container.kind == "Sequential" and container.chain)

        def height(container: Container) -> int:
            below = [m for _, m in container.members if isinstance(m, Container)]
            h = max((height(m) + is_class(m) for m in below), default=0)
            if is_class(container):
                levels.setdefault(h, []).append(container)
            return h

        height(root)
        for level in sorted(levels):
            new: list[ClassDef] = []
            for container in levels[level]:
                kind = container.kind if container.kind != "Sequential" else _camel(container.path)
                signature = (kind, self.structure(self.body(container)))
                if signature not in self.signatures:
                    name = _unique(kind, self.classes)
                    self.signatures[signature] = name
                    self.classes[name] = ClassDef(name, container.kind, [])
                    new.append(self.classes[name])
                name = self.signatures[signature]
                self.classes[name].uses.append(container)
                self.class_of[container.path] = name
            for definition in new:
                self.parametrize(definition)

    def body(self, container: Container) -> list[tuple[str, Any]]:
        """The container's __init__ members and their expressions (the same objects each time:
        a class's ``fill`` is keyed by the slots of its first use)."""
        if container.path not in self._bodies:
            self._bodies[container.path] = [
                (name, self.expr(member))
                for name, member in container.members
                if not (isinstance(member, LayerResult) and member.type in _MERGES)
            ]
        return self._bodies[container.path]

    def parametrize(self, definition: ClassDef) -> None:
        """Name what varies between the uses; ``fill`` maps the first use's slots to text."""
        bodies = [self.body(use) for use in definition.uses]
        slots = [_slots(body) for body in bodies]
        in_channels = [self.channels_in(use) for use in definition.uses]
        block_params = [self.block_params(use) for use in definition.uses]
        params: list[str] = []
        fill: dict[Slot, str] = {}
        for position, first in enumerate(slots[0]):
            values = [s[position].value for s in slots]
            if all(_same(v, values[0]) for v in values):
                continue
            text = _name_for(values, in_channels, block_params, first)
            if text == first.keyword or text == "size":  # a fallback: one name per slot
                text = _unique_word(
                    f"{_word(first)}", {*params, *block_params[0], "in_channels", *fill.values()}
                )
            fill[first] = text
            for word in re.findall(r"[A-Za-z_]\w*", text):
                if word not in params:
                    params.append(word)
        ordered = [p for p in ("in_channels", *block_params[0]) if p in params]
        definition.params = ordered + [p for p in params if p not in ordered]
        definition.fill = fill
        per_use = []
        for use_index in range(len(definition.uses)):
            known = {"in_channels": in_channels[use_index], **block_params[use_index]}
            row = []
            for param in definition.params:
                if param in known:
                    row.append(known[param])
                else:  # a fallback name: the value of its slot in this use
                    position = next(i for i, s in enumerate(slots[0]) if fill.get(s) == param)
                    row.append(slots[use_index][position].value)
            per_use.append(row)
        self.values[definition.name] = per_use

    def channels_in(self, use: Container) -> Any:
        i = use.reads[0]
        shape = self.analysis.input_shape if i == NETWORK_INPUT else self.analysis.rows[i].output_shape
        return shape[0] if shape and len(shape) > 1 else None

    def block_params(self, use: Container) -> dict[str, Any]:
        return {
            k: v for k, v in self.analysis.params.get(use.path, {}).items() if type(v) in (int, float, bool)
        }

    # source -----------------------------------------------------------------------------

    def class_source(self, definition: ClassDef) -> list[str]:
        use = definition.uses[0]
        values = self.values[definition.name][0]
        what = definition.kind if definition.kind != "Sequential" else "A group with branches"
        lines = [f"class {definition.name}(nn.Module):", f'    """{_used_as(what, definition.uses)}"""', ""]
        params = [f"{p}: {_annotation(v)}" for p, v in zip(definition.params, values, strict=True)]
        lines += layout("", Call("def __init__", ["self", *params]), " -> None:", "    ")
        lines.append("        super().__init__()")
        lines += self.init_lines(self.body(use), definition.fill)
        lines += ["", *self.forward(use, shapes=self.same_shapes(definition))]
        return lines

    def init_lines(self, body: list[tuple[str, Any]], fill: dict[Slot, str] | None = None) -> list[str]:
        lines = []
        for name, item in body:
            if _attr(name) == name:
                lines += layout(f"self.{name} = ", item, "", "        ", fill)
            else:  # a name that is not an identifier (a group's 0, 1, ...)
                lines += layout("", Call("self.add_module", [f'"{name}"', item]), "", "        ", fill)
        return lines

    def same_shapes(self, definition: ClassDef) -> bool:
        def shapes(use: Container) -> list[Any]:
            return [self.analysis.rows[_output(m)].output_shape for _, m in use.members]

        first = shapes(definition.uses[0])
        return all(shapes(u) == first for u in definition.uses[1:])

    def forward(self, container: Container, shapes: bool) -> list[str]:
        lines = ["    def forward(self, x: torch.Tensor) -> torch.Tensor:"]
        if shapes:
            lines.append(f"        # x: {_batch_shape(self.shape_of(container.reads[0]))}")
        names: dict[int, str] = {container.reads[0]: "x"}
        taken = {"x", "torch", "nn", "self"}
        for name, member in container.members:
            variable = _variable(name, taken)
            taken.add(variable)
            reads = [names[i] for i in _reads(member)]
            parameter = isinstance(member, LayerResult) and member.type == "Parameter"
            if isinstance(member, LayerResult) and member.type in _MERGES:
                if member.type == "Cat":
                    value: Any = Call("torch.cat", [Call("", reads, "[", "]"), f"dim={member.layer.dim}"])
                else:
                    value = (" + " if member.type == "Add" else " * ").join(reads)
            else:
                module = f"self.{name}" if _attr(name) == name else f'getattr(self, "{name}")'
                value = module if parameter else Call(module, reads)
                if parameter and member.layer.view:  # stored in one shape, read in another
                    value = Call(f"{module}.view", [str(v) for v in member.layer.view])
            shape = self.shape_of(_output(member))
            shown = str(tuple(shape)) if parameter else _batch_shape(shape)  # a Parameter: no batch dim
            comment = f"  # {shown}" if shapes else ""
            lines += layout(f"{variable} = ", value, comment, "        ")
            names[_output(member)] = variable
        lines.append(f"        return {names[container.reads[1]]}")
        return lines

    def shape_of(self, index: int) -> Any:
        return self.analysis.input_shape if index == NETWORK_INPUT else self.analysis.rows[index].output_shape


def graph_source(network: Any, analysis: Analysis) -> str:
    """The source of a network that is not a plain stack (see the module's docstring)."""
    root = tree(analysis)
    exporter = Exporter(analysis)
    exporter.collect(root)
    top = class_name(network.name)
    top = top if top not in exporter.classes else f"{top}Net"
    body = exporter.body(root)
    uses_ordered = any("OrderedDict" in flat(item) for _, item in body) or any(
        "OrderedDict" in flat(item) for d in exporter.classes.values() for _, item in exporter.body(d.uses[0])
    )
    shape_in, shape_out = _batch_shape(analysis.input_shape), _batch_shape(analysis.output_shape)
    layers = fmt_count(len(analysis.rows), "layer")
    lines = source_header(network, analysis, uses_ordered) + own_layer_sources(analysis)
    for definition in exporter.classes.values():
        lines += ["", "", *exporter.class_source(definition)]
    lines += [
        "",
        "",
        f"class {top}(nn.Module):",
        f'    """{doc_safe(network.name)}, {layers}: {shape_in} -> {shape_out}."""',
        "",
        "    def __init__(self) -> None:",
        "        super().__init__()",
    ]
    lines += exporter.init_lines(body)
    lines += ["", *exporter.forward(root, shapes=True), ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# Small helpers


def _parameter_call(layer: Any) -> Call:
    """``nn.Parameter(torch.full((96, 1, 1), 1e-06))``, or ``nn.init.normal_(torch.empty(...),
    std=...)``: as ``convcalc.build.parameter`` makes it; each size a slot (it may vary per use)."""
    sizes = [Slot(None, v, str(v)) for v in layer.shape]
    if layer.std is not None:
        tensor = Call(
            "nn.init.normal_", [Call("torch.empty", sizes), Slot("std", layer.std, repr(layer.std))]
        )
    else:
        shape = Call("", sizes, "(", ",)" if len(sizes) == 1 else ")")
        tensor = Call("torch.full", [shape, Slot(None, float(layer.value), repr(float(layer.value)))])
    return Call("nn.Parameter", [tensor])


def _literal(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def _slots(body: list[tuple[str, Any]]) -> list[Slot]:
    out: list[Slot] = []

    def walk(item: Any) -> None:
        if isinstance(item, Slot):
            out.append(item)
        elif isinstance(item, Call):
            for arg in item.args:
                walk(arg)

    for _, item in body:
        walk(item)
    return out


def _name_for(
    values: list[Any], in_channels: list[Any], block_params: list[dict[str, Any]], slot: Slot
) -> str:
    """The text of a slot that differs between uses: a block parameter, ``in_channels``, a small
    multiple or fraction of one; else the slot's keyword (made unique by the caller)."""
    params = [(p, [bp.get(p) for bp in block_params]) for p in block_params[0]]
    for name, candidates in [("in_channels", in_channels), *params]:
        if all(_same(v, c) or _repeats(v, c) for v, c in zip(values, candidates, strict=True)):
            return name
    if all(type(v) is int for v in values):
        for name, candidates in [*params, ("in_channels", in_channels)]:  # planes * 4, not in_channels * 2
            if not all(type(c) is int and c > 0 for c in candidates):
                continue
            for k in range(2, 9):
                if all(v == c * k for v, c in zip(values, candidates, strict=True)):
                    return f"{name} * {k}"
                if all(c % k == 0 and v == c // k for v, c in zip(values, candidates, strict=True)):
                    return f"{name} // {k}"
    return slot.keyword or "size"


def _repeats(value: Any, single: Any) -> bool:
    """``(2, 2)`` for a ``2``: torch takes either (``stride=2`` is ``stride=(2, 2)``)."""
    return isinstance(value, tuple) and type(single) is int and all(_same(v, single) for v in value)


def _word(slot: Slot) -> str:
    return slot.keyword or "size"


def _unique_word(base: str, taken: set[str]) -> str:
    word, n = base, 2
    while word in taken:
        word, n = f"{base}_{n}", n + 1
    return word


def _annotation(value: Any) -> str:
    if isinstance(value, tuple):
        return "tuple[int, ...]"
    return type(value).__name__


def _used_as(what: str, uses: list[Container]) -> str:
    """``Bottleneck, used as layer1.1, layer1.2 and 11 more.``: as many names as fit a line."""
    names = [".".join(u.path) for u in uses]
    for shown in range(len(names), 0, -1):
        rest = f" and {len(names) - shown} more" if shown < len(names) else ""
        text = f"{what}, used as {', '.join(names[:shown])}{rest}."
        if len(text) + 10 <= WIDTH:
            return text
    return f"{what}, used {len(names)} times."


def _attr(name: str) -> str:
    return name if name.isidentifier() and not keyword.iskeyword(name) else f"_{name}"


def _variable(name: str, taken: set[str]) -> str:
    base = name.replace("-", "_")  # block1-0 -> block1_0
    base = base if base.isidentifier() and not keyword.iskeyword(base) else f"x{base}"
    variable, n = base, 2
    while variable in taken:
        variable, n = f"{base}_{n}", n + 1
    return variable


def _camel(path: tuple[str, ...]) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^0-9A-Za-z]+", "_".join(path)) if part)


def _unique(name: str, taken: dict[str, Any]) -> str:
    if name not in taken:
        return name
    n = 2
    while f"{name}{n}" in taken:
        n += 1
    return f"{name}{n}"
