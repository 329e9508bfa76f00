"""Spec -> real PyTorch model: one ``torch.nn`` module per spec layer, named by the spec.

Every ``in_channels`` / ``in_features`` / ``num_features`` comes from the engine, so a model
that builds here has exactly the shapes ``convcalc shape`` printed. ``convcalc.export`` writes
the same model as standalone PyTorch source without importing torch.
"""

from __future__ import annotations

import inspect
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from convcalc import spec as S
from convcalc.engine import Analysis, graph_of

# the source side needs no torch: `convcalc export` imports convcalc.export alone; BuildError
# stays importable from here, where build_model raises it
from convcalc.export import BuildError, class_name, module_kwargs, valid_analysis  # noqa: F401
from convcalc.graph import NETWORK_INPUT, Graph


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


class Chunk(nn.Module):
    """One piece of torch.chunk(x, chunks, dim): ShuffleNetV2's x1, x2 = x.chunk(2, dim=1)."""

    def __init__(self, chunks: int, index: int = 0, dim: int = 1) -> None:
        super().__init__()
        self.chunks, self.index, self.dim = chunks, index, dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.chunk(self.chunks, self.dim)[self.index]

    def extra_repr(self) -> str:
        return f"chunks={self.chunks}, index={self.index}, dim={self.dim}"


class Permute(nn.Module):
    """torch.permute(x, dims), batch included: as torchvision.ops.Permute
    (ConvNeXt's [0, 2, 3, 1] to channels-last and [0, 3, 1, 2] back)."""

    def __init__(self, dims: list[int]) -> None:
        super().__init__()
        self.dims = list(dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.permute(x, self.dims)

    def extra_repr(self) -> str:
        return f"dims={self.dims}"


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of (N, C, H, W) at each position, as
    torchvision's and timm's LayerNorm2d (ConvNeXt): channels last, layer_norm
    over C, channels first again."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class BatchNormAct2d(nn.BatchNorm2d):
    """BatchNorm2d, then an activation, in one module, as timm's BatchNormAct2d (its
    EfficientNets, MobileNets, RegNets, DenseNets, ...): the BatchNorm's keys and no others."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True,
                 act: str | None = "ReLU") -> None:  # fmt: skip
        super().__init__(num_features, eps, momentum, affine, track_running_stats)
        self.act = getattr(nn, act)() if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(super().forward(x))


_MERGES: dict[str, type[nn.Module]] = {"Add": Add, "Mul": Mul, "Cat": Cat}
# Spec types that are not torch.nn classes: built from this module, their source exported
OWN_LAYERS: dict[str, type[nn.Module]] = {
    "StochasticDepth": StochasticDepth,
    "BatchNormAct2d": BatchNormAct2d,
    "Chunk": Chunk,
    "Permute": Permute,
    "LayerNorm2d": LayerNorm2d,
}


def torch_class(type_name: str) -> type[nn.Module]:
    """The module class a spec type builds: ``torch.nn.<type>``, or one of ``OWN_LAYERS``."""
    return OWN_LAYERS.get(type_name) or getattr(nn, type_name)


class GraphModule(nn.Module):
    """A network, block or group whose children do not form a plain chain: ``forward`` runs
    them in order, each on the outputs it names (``-1``: this module's input), and returns the
    output of one of them. Tensors are dropped as soon as no later child reads them."""

    def __init__(
        self,
        children: Sequence[tuple[str, nn.Module | nn.Parameter, tuple[int, ...]]],
        output: int,
        views: dict[str, tuple[int, ...]] | None = None,
    ):
        super().__init__()
        self._views = dict(views or {})  # a Parameter read in another shape (its spec's view)
        for name, module, _ in children:
            if isinstance(module, nn.Parameter):  # the spec's Parameter: held here (CNBlock's layer_scale)
                self.register_parameter(name, module)
            else:
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
            module = self._modules.get(name)
            if module is None:  # a Parameter: the tensor itself
                tensor = self._parameters[name]
                view = self._views.get(name)
                if view and not torch.is_grad_enabled():  # a view made under no_grad that still
                    tensor = tensor.detach()  # requires grad has no grad_fn, which hooks reject
                values[step] = tensor.view(view) if view else tensor  # type: ignore[union-attr]
            else:
                values[step] = module(*(values[ref] for ref in refs))
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
    analysis = valid_analysis(network)
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


def _module(row: Any, initialize: bool) -> nn.Module | nn.Parameter:
    if row.type == "Parameter":
        return parameter(row.layer, "meta" if not initialize else None)
    if row.type in _MERGES:
        return _MERGES[row.type](row.layer.dim) if row.type == "Cat" else _MERGES[row.type]()
    cls = torch_class(row.type)
    kwargs = module_kwargs(row.layer, row.inferred)
    if not initialize and "device" in inspect.signature(cls.__init__).parameters:
        return cls(**kwargs, device="meta")
    return cls(**kwargs)


def parameter(layer: S._Layer, device: str | None = None) -> nn.Parameter:
    """The spec's Parameter: ``torch.full(shape, value)``, or ``N(0, std²)`` draws."""
    shape = tuple(layer.shape)
    if layer.std is not None:
        return nn.Parameter(nn.init.normal_(torch.empty(shape, device=device), std=layer.std))
    return nn.Parameter(torch.full(shape, float(layer.value), device=device))


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
    views_of = {row.path or (row.name,): tuple(row.layer.view)
                for row in analysis.rows if row.type == "Parameter" and row.layer.view}  # fmt: skip
    classes: dict[str, type[GraphModule]] = {}
    for container in sorted(children, key=len, reverse=True):  # innermost first
        members = children[container]
        position = {}  # node index -> step of the member holding it as output
        for step, (_, path) in enumerate(members):
            position[out_of[path]] = step

        position = {bounds[container][0]: -1, **position}  # -1: the container's input
        steps = [(name, built[path], tuple(position[i] for i in reads[path])) for name, path in members]
        views = {name: views_of[path] for name, path in members if path in views_of}
        output = position[bounds[container][1]]
        chain = output == len(steps) - 1 and all(refs == (i - 1,) for i, (_, _, refs) in enumerate(steps))
        if chain and (container == () or kinds.get(container) == "Sequential"):
            module: nn.Module = nn.Sequential(OrderedDict((name, child) for name, child, _ in steps))
        else:
            kind = class_name(analysis.name) if container == () else kinds[container]
            if kind == "Sequential":  # a group with branches inside
                module = GraphModule(steps, output, views)
            else:
                if kind not in classes:  # one class per block, as a hand-written model has
                    classes[kind] = type(kind, (GraphModule,), {"__module__": __name__})
                module = classes[kind](steps, output, views)
        built[container] = module
    return built[()]


def dummy_input(network: S.Network, batch: int = 2) -> torch.Tensor:
    """A batch of zeros with the spec's input shape: ``(batch, C, H, W)``."""
    return torch.zeros(batch, *network.input)
