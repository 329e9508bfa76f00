"""Spec -> real PyTorch model: one ``torch.nn`` module per spec layer, named by the spec.

Every ``in_channels`` / ``in_features`` / ``num_features`` comes from the engine, so a model
that builds here has exactly the shapes ``convcalc shape`` printed. ``export_source`` writes the
same model as standalone PyTorch source (``convcalc export``).
"""

from __future__ import annotations

import inspect
import math
import re
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from convcalc import spec as S
from convcalc.engine import Analysis, analyze, graph_of
from convcalc.errors import ConvcalcError
from convcalc.graph import NETWORK_INPUT, Graph


class BuildError(ConvcalcError):
    """The spec has engine errors, so no model can be built; ``analysis`` says which."""

    def __init__(self, analysis: Analysis):
        self.analysis = analysis
        super().__init__("\n".join(str(problem) for problem in analysis.errors))


def module_kwargs(layer: S._Layer, inferred: dict[str, int]) -> dict[str, Any]:
    """The constructor arguments of ``torch.nn.<layer.type>``: the spec's fields that the
    constructor takes (not ``type``, ``name`` or other spec-only fields), with what the engine
    inferred filled in."""
    accepted = inspect.signature(torch_class(layer.type).__init__).parameters
    kwargs = layer.model_dump(exclude={"type", "name"})
    kwargs = {key: tuple(value) if isinstance(value, list) else value  # pairs may come back as lists
              for key, value in kwargs.items() if key in accepted}  # fmt: skip
    kwargs.update(inferred)
    return kwargs


class Add(nn.Module):
    """The spec's ``Add``: the elementwise sum of its inputs (``a + b``)."""

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out


class Mul(nn.Module):
    """The spec's ``Mul``: the broadcasting product of its inputs (``x * gate``)."""

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = out * x
        return out


class Cat(nn.Module):
    """The spec's ``Cat``: ``torch.cat(inputs, dim)``."""

    def __init__(self, dim: int = 1):
        super().__init__()
        self.dim = dim

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.cat(xs, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class StochasticDepth(nn.Module):
    """Drops its whole input per sample (mode "row") or for the whole batch
    ("batch") with probability p while training, scaling what it keeps by
    1 / (1 - p); the identity in eval mode. As torchvision.ops.StochasticDepth
    (Huang et al. 2016), on a residual branch before the sum."""

    def __init__(self, p: float, mode: str = "row") -> None:
        super().__init__()
        self.p, self.mode = p, mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        ones = [1] * (x.dim() - 1)
        size = [x.shape[0], *ones] if self.mode == "row" else [1, *ones]
        noise = torch.empty(size, dtype=x.dtype, device=x.device).bernoulli_(keep)
        if keep > 0.0:
            noise.div_(keep)
        return x * noise

    def extra_repr(self) -> str:
        return f"p={self.p}, mode={self.mode!r}"


_MERGES: dict[str, type[nn.Module]] = {"Add": Add, "Mul": Mul, "Cat": Cat}
# Spec types that are not torch.nn classes: built from this module, their source exported
OWN_LAYERS: dict[str, type[nn.Module]] = {"StochasticDepth": StochasticDepth}


def torch_class(type_name: str) -> type[nn.Module]:
    """The module class a spec type builds: ``torch.nn.<type>``, or one of ``OWN_LAYERS``."""
    return OWN_LAYERS.get(type_name) or getattr(nn, type_name)


def constructor_name(type_name: str) -> str:
    """How exported source calls it: ``nn.Conv2d``, or ``StochasticDepth`` (defined in the file)."""
    return type_name if type_name in OWN_LAYERS else f"nn.{type_name}"


def own_layer_sources(analysis: Analysis) -> list[str]:
    """The classes of ``OWN_LAYERS`` the network uses, as source lines for an exported file
    (the very code the built model runs)."""
    lines: list[str] = []
    for name, cls in OWN_LAYERS.items():
        if any(row.type == name for row in analysis.rows):
            lines += ["", "", *inspect.getsource(cls).rstrip("\n").split("\n")]
    return lines


class GraphModule(nn.Module):
    """A network, block or group whose children do not form a plain chain: ``forward`` runs
    them in order, each on the outputs it names (``-1``: this module's input), and returns the
    output of one of them. Tensors are dropped as soon as no later child reads them."""

    def __init__(self, children: Sequence[tuple[str, nn.Module, tuple[int, ...]]], output: int):
        super().__init__()
        for name, module, _ in children:
            self.add_module(name, module)
        self._steps = [(name, refs) for name, _, refs in children]
        self._output = output
        last_use = {ref: i for i, (_, refs) in enumerate(self._steps) for ref in refs}
        last_use[output] = len(self._steps)
        self._free = [
            [r for r, i in last_use.items() if i == step and r >= 0] for step in range(len(self._steps))
        ]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values: dict[int, torch.Tensor] = {-1: x}
        for step, (name, refs) in enumerate(self._steps):
            values[step] = self._modules[name](*(values[ref] for ref in refs))  # type: ignore[misc]
            for ref in self._free[step]:
                del values[ref]
        return values[self._output]


def build_model(network: S.Network, initialize: bool = True) -> nn.Module:
    """The spec's model: every layer a ``torch.nn`` module at its module path (``conv1``,
    ``layer1.0.conv1``), every block and ``Sequential`` a nested module, the sizes the engine
    inferred filled in. A plain stack is an ``nn.Sequential``; a graph is a ``GraphModule``.

    ``initialize=False`` skips PyTorch's weight initialisation (the parameters are zeros, a
    memset instead of random draws, so never NaN): for checks that only need shapes or set the
    weights themselves, it makes large models (VGG16, 138 M parameters) cheap to build.
    """
    analysis = _valid_analysis(network)
    leaves: dict[tuple[str, ...], nn.Module] = {}
    for row in analysis.rows:
        leaves[row.path or (row.name,)] = _module(row, initialize)
    model = _assemble(analysis, graph_of(network), leaves)
    if not initialize:
        model = model.to_empty(device="cpu")
        with torch.no_grad():
            for tensor in (*model.parameters(), *model.buffers()):
                tensor.zero_()  # uninitialised memory may hold NaN
        for module in model.modules():
            if getattr(module, "track_running_stats", False) and hasattr(module, "reset_running_stats"):
                module.reset_running_stats()  # buffers must hold real statistics to run
    return model


def _module(row: Any, initialize: bool) -> nn.Module:
    if row.type in _MERGES:
        return _MERGES[row.type](row.layer.dim) if row.type == "Cat" else _MERGES[row.type]()
    cls = torch_class(row.type)
    kwargs = module_kwargs(row.layer, row.inferred)
    if not initialize and "device" in inspect.signature(cls.__init__).parameters:
        return cls(**kwargs, device="meta")
    return cls(**kwargs)


def _assemble(analysis: Analysis, graph: Graph, leaves: dict[tuple[str, ...], nn.Module]) -> nn.Module:
    """Nest the leaves into their groups, innermost first; each container becomes an
    ``nn.Sequential`` when its children form a chain from its input to its output, else a
    ``GraphModule`` (a block's class is named after the block: ``Bottleneck``)."""
    kinds = {group.path: group.kind for group in graph.groups}
    bounds = {**graph.bounds, (): (NETWORK_INPUT, graph.output)}
    # children of each container, in order: (name, child path, reads, output node)
    children: dict[tuple[str, ...], list[tuple[str, tuple[str, ...]]]] = {path: [] for path in bounds}
    seen: set[tuple[str, ...]] = set()
    out_of: dict[tuple[str, ...], int] = {path: bounds[path][1] for path in kinds}
    reads: dict[tuple[str, ...], tuple[int, ...]] = {path: (bounds[path][0],) for path in kinds}
    for row in analysis.rows:
        path = row.path or (row.name,)
        out_of[path], reads[path] = row.index, row.inputs
        for depth in range(1, len(path) + 1):
            prefix = path[:depth]
            if prefix not in seen:
                seen.add(prefix)
                children[path[: depth - 1]].append((prefix[-1], prefix))
    built: dict[tuple[str, ...], nn.Module] = dict(leaves)
    classes: dict[str, type[GraphModule]] = {}
    for container in sorted(children, key=len, reverse=True):  # innermost first
        members = children[container]
        position = {}  # node index -> step of the member holding it as output
        for step, (_, path) in enumerate(members):
            position[out_of[path]] = step

        position = {bounds[container][0]: -1, **position}  # -1: the container's input
        steps = [(name, built[path], tuple(position[i] for i in reads[path])) for name, path in members]
        output = position[bounds[container][1]]
        chain = output == len(steps) - 1 and all(refs == (i - 1,) for i, (_, _, refs) in enumerate(steps))
        if chain and (container == () or kinds.get(container) == "Sequential"):
            module: nn.Module = nn.Sequential(OrderedDict((name, child) for name, child, _ in steps))
        else:
            kind = class_name(analysis.name) if container == () else kinds[container]
            if kind == "Sequential":  # a group with branches inside
                module = GraphModule(steps, output)
            else:
                if kind not in classes:  # one class per block, as a hand-written model has
                    classes[kind] = type(kind, (GraphModule,), {"__module__": __name__})
                module = classes[kind](steps, output)
        built[container] = module
    return built[()]


def _valid_analysis(network: S.Network) -> Analysis:
    """The engine's analysis of a network that can be built; ``BuildError`` otherwise."""
    analysis = analyze(network)
    if not analysis.ok:
        raise BuildError(analysis)
    return analysis


def dummy_input(network: S.Network, batch: int = 2) -> torch.Tensor:
    """A batch of zeros with the spec's input shape: ``(batch, C, H, W)``."""
    return torch.zeros(batch, *network.input)


# --------------------------------------------------------------------------------------
# Standalone source (``convcalc export``)

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
    analysis = _valid_analysis(network)
    if not analysis.straight or any(row.type in _MERGES for row in analysis.rows):
        from convcalc.export import graph_source

        return graph_source(network, analysis)
    cls = class_name(network.name)
    shape_in, shape_out = _batch_shape(analysis.input_shape), _batch_shape(analysis.output_shape)
    init = [line for row in analysis.rows for line in _init_lines(row, analysis)]
    forward = [f"        x = self.{row.name}(x)  # {_batch_shape(row.output_shape)}" for row in analysis.rows]
    lines = [
        *source_header(network, analysis),
        *own_layer_sources(analysis),
        "",
        "",
        f"class {cls}(nn.Module):",
        f'    """{doc_safe(network.name)}, {len(analysis.rows)} layers: {shape_in} -> {shape_out}."""',
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


_WIDTH = 88  # ruff's and black's default line length, so the file passes a stock `ruff check`


def _init_lines(row, analysis: Analysis) -> list[str]:
    """``self.c1 = nn.Conv2d(1, 6, kernel_size=5)  # 156 params``, wrapped as ruff format would
    when it does not fit in 88 columns."""
    cls, args = _constructor(row, analysis)
    comment = f"  # {row.params:,} params" if row.params else ""
    head = f"        self.{row.name} = {constructor_name(cls)}("
    line = head + ", ".join(args) + ")" + comment
    if len(line) <= _WIDTH:
        return [line]
    inner = "            " + ", ".join(args)
    if len(inner) <= _WIDTH:
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
    cls = torch_class(row.type)
    kwargs = module_kwargs(row.layer, row.inferred)
    parameters = inspect.signature(cls.__init__).parameters
    defaults = {name: p.default for name, p in parameters.items() if p.default is not inspect.Parameter.empty}
    positional = _POSITIONAL.get(row.type, ())
    empty = inspect.Parameter.empty
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


def _same(default: Any, value: Any) -> bool:
    return type(default) is type(value) and default == value


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
