"""`convcalc import` of timm models (timm as a test oracle, `pretrained=False`): the ones whose
layers convcalc has import exactly; the rest are refused by their first op, never imported
wrongly. timm imports torchvision, so it is imported after the tests' torchvision registration
(tests/conftest.py:torchvision_models)."""

from __future__ import annotations

import importlib

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from convcalc.build import build_model
from convcalc.engine import analyze
from convcalc.importer import ImportFailed, import_model
from tests.conftest import torchvision_models


def timm_model(name: str, device: str = "meta") -> nn.Module:
    torchvision_models()
    timm = importlib.import_module("timm")
    with torch.device(device):
        return timm.create_model(name, pretrained=False)


def _keys(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "resnext50_32x4d"])
def test_timm_resnets_import_exactly(name):
    original = timm_model(name).eval()
    network = import_model(original, (3, 224, 224), name)
    analysis = analyze(network)
    assert analysis.ok, analysis.errors
    with torch.device("meta"):
        assert _keys(build_model(network)) == _keys(original)
    assert analysis.total_params == sum(p.numel() for p in original.parameters())
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        out = original(torch.zeros(1, 3, 224, 224, device="meta"))
    assert analysis.total_macs == counter.get_total_flops() / 2
    assert analysis.output_shape == tuple(out.shape[1:]) == (1000,)


def test_a_timm_resnet_gives_its_outputs():
    torch.manual_seed(0)
    original = timm_model("resnet18", "cpu").eval()
    ours = build_model(import_model(original, (3, 64, 64), "resnet18"), initialize=False).eval()
    ours.load_state_dict(original.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(ours(x), original(x))


@pytest.mark.parametrize(
    ("name", "words"),
    [
        # timm's BatchNormAct2d: a BatchNorm2d whose forward also runs its activation
        ("efficientnet_b0", "bn1: call_function getattr"),
        ("vgg16", "torch.fx cannot trace it"),  # its pre-logits check the feature map's size in Python
    ],
)
def test_timm_models_convcalc_cannot_say_are_refused(name, words):
    with pytest.raises(ImportFailed, match=words):
        import_model(timm_model(name), (3, 224, 224), name)
