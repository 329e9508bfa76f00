"""The shipped specs of torchvision's networks are torchvision's networks.

For each: the generated model's ``state_dict()`` has exactly torchvision's keys and shapes (so
``load_state_dict(strict=True)`` of torchvision's weights works), its parameter count and MACs
equal torchvision's model as torch measures it (``FlopCounterMode``, on the meta device: no
memory, no weights), and with torchvision's weights loaded both give the same outputs. Never
any download: ``weights=None``.
"""

from __future__ import annotations

import importlib

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from convcalc import spec as S
from convcalc.build import build_model
from convcalc.engine import analyze
from tests.conftest import SPECS, torchvision_models

# spec -> (module, function, keyword arguments)
NETWORKS = {
    "resnet18": ("torchvision.models", "resnet18", {}),
    "resnet50": ("torchvision.models", "resnet50", {}),
    "mobilenet_v2": ("torchvision.models", "mobilenet_v2", {}),
    "mobilenet_v3_small": ("torchvision.models", "mobilenet_v3_small", {}),
    "densenet121": ("torchvision.models", "densenet121", {}),
    "googlenet": ("torchvision.models", "googlenet", {"aux_logits": False, "init_weights": False}),
    "r3d_18": ("torchvision.models.video", "r3d_18", {}),
    "resnet18_cifar": ("tests.test_torchvision", "cifar_resnet18", {}),
}
SMALL = {"resnet18", "resnet18_cifar", "mobilenet_v2", "mobilenet_v3_small"}


def cifar_resnet18(weights=None) -> torch.nn.Module:
    """ResNet-18 as the CIFAR literature trains it: torchvision's, 10 classes, a 3×3 stride-1
    stem and no max-pool (specs/resnet18_cifar.yaml)."""
    model = torchvision_models().resnet18(weights=weights, num_classes=10)
    model.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    model.maxpool = torch.nn.Identity()
    return model  # real forward passes in a few seconds


def reference(name: str, device: str = "meta") -> torch.nn.Module:
    torchvision_models()
    module, function, kwargs = NETWORKS[name]
    with torch.device(device):
        return getattr(importlib.import_module(module), function)(weights=None, **kwargs)


def macs(model: torch.nn.Module, shape: tuple[int, ...]) -> float:
    counter = FlopCounterMode(display=False)
    model.eval()
    with counter, torch.no_grad():
        model(torch.zeros(1, *shape, device="meta"))
    return counter.get_total_flops() / 2


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_state_dict_params_and_macs_are_torchvisions(name):
    network = S.load_spec(SPECS / f"{name}.yaml")
    analysis = analyze(network)
    theirs = reference(name)
    with torch.device("meta"):
        ours = build_model(network)
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == {
        k: tuple(v.shape) for k, v in theirs.state_dict().items()
    }
    assert analysis.total_params == sum(p.numel() for p in theirs.parameters())
    assert analysis.total_macs == macs(theirs, tuple(network.input))


@pytest.mark.parametrize(
    "name", [n if n in SMALL else pytest.param(n, marks=pytest.mark.slow) for n in sorted(NETWORKS)]
)
def test_torchvisions_weights_load_strictly_and_give_the_same_outputs(name):
    torch.manual_seed(0)
    network = S.load_spec(SPECS / f"{name}.yaml")
    theirs = reference(name, "cpu").eval()
    ours = build_model(network, initialize=False).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(2, *network.input)
    with torch.no_grad():
        assert torch.equal(ours(x), theirs(x))
