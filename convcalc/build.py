"""Spec -> real PyTorch model: one ``torch.nn`` module per spec layer, named by the spec.

Every ``in_channels`` / ``in_features`` / ``num_features`` comes from the engine, so a model
that builds here has exactly the shapes ``convcalc shape`` printed.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch import nn

from convcalc import spec as S
from convcalc.engine import Analysis, analyze
from convcalc.errors import ConvcalcError


class BuildError(ConvcalcError):
    """The spec has engine errors, so no model can be built; ``analysis`` says which."""

    def __init__(self, analysis: Analysis):
        self.analysis = analysis
        super().__init__("\n".join(str(problem) for problem in analysis.errors))


def module_kwargs(layer: S._Layer, inferred: dict[str, int]) -> dict[str, Any]:
    """The constructor arguments of ``torch.nn.<layer.type>``: the spec's fields (without
    ``type`` and ``name``), with the sizes the engine inferred filled in."""
    kwargs = layer.model_dump(exclude={"type", "name"})
    for key, value in kwargs.items():
        if isinstance(value, list):  # pairs come back from model_dump as tuples or lists
            kwargs[key] = tuple(value)
    kwargs.update(inferred)
    return kwargs


def build_model(network: S.Network, initialize: bool = True) -> nn.Sequential:
    """An ``nn.Sequential`` of the spec's layers, ``model.<name>`` for each.

    ``initialize=False`` skips PyTorch's weight initialisation (the parameters hold whatever
    memory they got): for checks that only need shapes or set the weights themselves, it makes
    large models (VGG16, 138 M parameters) cheap to build.
    """
    analysis = analyze(network)
    if not analysis.ok:
        raise BuildError(analysis)
    modules: OrderedDict[str, nn.Module] = OrderedDict()
    for row in analysis.rows:
        cls = getattr(nn, row.type)
        kwargs = module_kwargs(row.layer, row.inferred)
        if initialize:
            modules[row.name] = cls(**kwargs)
        else:
            modules[row.name] = cls(**kwargs, device="meta") if _takes_device(cls) else cls(**kwargs)
    model = nn.Sequential(modules)
    if not initialize:
        model = model.to_empty(device="cpu")
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d) and module.track_running_stats:
                module.reset_running_stats()  # buffers must hold real statistics to run
    return model


def _takes_device(cls: type[nn.Module]) -> bool:
    return cls in (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.BatchNorm2d)


def dummy_input(network: S.Network, batch: int = 2) -> torch.Tensor:
    """A batch of zeros with the spec's input shape: ``(batch, C, H, W)``."""
    return torch.zeros(batch, *network.input)
