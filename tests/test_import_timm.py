"""`convcalc import` of timm models (timm as a test oracle, `pretrained=False`): the ones whose
layers convcalc has import exactly; the rest are refused by their first op, never imported
wrongly. timm imports torchvision, so it is imported after the tests' torchvision registration
(tests/conftest.py:torchvision_models)."""

from __future__ import annotations

import importlib

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from convcalc import spec as S
from convcalc.build import build_model, torch_class
from convcalc.check import check
from convcalc.engine import analyze
from convcalc.importer import ImportFailed, import_model
from convcalc.memcheck import memory_comparisons
from convcalc.spec import NORM_ACTS
from tests.conftest import torchvision_models


def timm_module(name: str = "timm"):
    """``timm`` or one of its modules, imported after the torchvision registration it needs."""
    torchvision_models()
    return importlib.import_module(name)


def timm_model(name: str, device: str = "meta") -> nn.Module:
    timm = timm_module()
    with torch.device(device):
        return timm.create_model(name, pretrained=False)


def _keys(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def same_as_timm(name: str) -> None:
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


# BatchNormAct2d, x.mean((2, 3), keepdim=True) in squeeze-excite, timm's Linear; xception41's
# ConvNormAct blocks with and without an activation (act: null splits them into two blocks);
# ConvNeXt: timm's LayerNorm2d and LayerNorm, x.permute, gamma.reshape(1, -1, 1, 1) (a view)
FAMILIES = [
    "resnet50",
    "efficientnet_b0",
    "mobilenetv3_large_100",
    "regnety_004",
    "xception41",
    "convnext_atto",
]
MORE = [
    "convnext_tiny",
    "convnext_nano",
    "resnet18",
    "resnext50_32x4d",
    "seresnet50",
    "densenet121",
    "inception_v3",
    "mobilenetv2_100",
    "mobilenetv3_small_100",
    "lcnet_050",
    "repvgg_a2",
    "regnetx_002",
    "tinynet_a",
    "efficientnet_b3",
]


@pytest.mark.parametrize("name", FAMILIES)
def test_timm_families_import_exactly(name):
    same_as_timm(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", MORE)
def test_more_timm_models_import_exactly(name):
    same_as_timm(name)


@pytest.mark.parametrize("name", ["efficientnet_b0", "resnet18", "convnext_atto"])
def test_timm_models_give_their_outputs(name):
    """The original's weights (initialised, and running statistics moved by one training
    step) loaded strictly into the imported spec's model give its outputs, in eval and in train
    mode (BatchNormAct2d with batch statistics, SiLU after it)."""
    torch.manual_seed(0)
    original = timm_model(name, "cpu")
    network = import_model(original, (3, 64, 64), name)
    ours = build_model(network, initialize=False)
    x = torch.randn(4, 3, 64, 64)
    original.train()(x)  # running statistics away from 0 and 1
    ours.load_state_dict(original.state_dict(), strict=True)
    with torch.no_grad():
        assert torch.equal(ours.eval()(x), original.eval()(x))
        torch.testing.assert_close(ours.train()(x), original.train()(x))


@pytest.mark.parametrize("name", ["efficientnet_b0", "convnext_atto"])
def test_an_imported_timm_model_passes_check(name):
    """Receptive fields by the gradient probe included (at 64×64); and training memory."""
    network = import_model(timm_model(name), (3, 64, 64), name)
    report = check(network)
    assert report.ok, [str(c) for c in report.mismatches]


def test_timms_convnext_gamma_is_stored_flat_and_read_per_channel():
    """gamma is (C,) in timm's state_dict and multiplies (N, C, H, W) as (1, C, 1, 1): the
    Parameter keeps the stored shape and reads it through its view; the value is timm's."""
    original = timm_model("convnext_atto", "cpu")
    network = import_model(original, (3, 64, 64), "convnext_atto")
    rows = {row.name: row for row in analyze(network).rows if row.type == "Parameter"}
    gamma = rows["stages.0.blocks.0.gamma"]
    assert (gamma.layer.shape, gamma.layer.view, gamma.output_shape) == ([40], [40, 1, 1], (40, 1, 1))
    assert gamma.layer.value == pytest.approx(1e-6)
    assert len(rows) == sum(1 for name, _ in original.named_parameters() if name.endswith(".gamma"))


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("mixnet_s", "call_function split"),  # torch.split into unequal pieces: no spec layer
        ("vgg16", "torch.fx cannot trace it"),  # its pre-logits check the feature map's size in Python
    ],
)
def test_timm_models_convcalc_cannot_say_are_refused(name, words):
    with pytest.raises(ImportFailed, match=words):
        import_model(timm_model(name), (3, 224, 224), name)


ACTS = st.sampled_from([None, *NORM_ACTS])


@settings(max_examples=25, deadline=None)
@given(
    channels=st.integers(1, 6),
    size=st.integers(1, 5),
    act=ACTS,
    affine=st.booleans(),
    track=st.booleans(),
    momentum=st.sampled_from([0.1, 0.5, None]),
)
def test_batchnormact2d_is_timms(channels, size, act, affine, track, momentum):
    """Our BatchNormAct2d against timm's: the same keys, and with its state the same outputs
    in train and eval mode, running statistics updated alike."""
    timm_layers = timm_module("timm.layers")
    theirs = timm_layers.BatchNormAct2d(
        channels,
        momentum=momentum,
        affine=affine,
        track_running_stats=track,
        act_layer=getattr(nn, act) if act else None,
        apply_act=act is not None,
    )
    ours = torch_class("BatchNormAct2d")(
        channels, momentum=momentum, affine=affine, track_running_stats=track, act=act
    )
    assert _keys(ours) == _keys(theirs)
    torch.manual_seed(0)
    x = torch.randn(3, channels, size, size + 1)
    with torch.no_grad():
        for p in theirs.parameters():
            p.uniform_(-1, 1)
        ours.load_state_dict(theirs.state_dict())
        torch.testing.assert_close(ours.train()(x), theirs.train()(x))
        torch.testing.assert_close(ours.state_dict(), theirs.state_dict())
        torch.testing.assert_close(ours.eval()(x), theirs.eval()(x))


@pytest.mark.parametrize("act", ["ReLU", "SiLU", None])
def test_a_spec_with_batchnormact2d_checks_with_training_memory(act):
    network = S.Network.model_validate(
        {
            "input": [3, 12, 12],
            "layers": [
                {"type": "Conv2d", "out_channels": 4, "kernel_size": 3, "bias": False},
                {"type": "BatchNormAct2d", "act": act},
                {"type": "Conv2d", "out_channels": 2, "kernel_size": 3},
                {"type": "BatchNormAct2d", "act": act},
            ],
        }
    )
    report = check(network)
    assert report.ok, [str(c) for c in report.mismatches]
    # and with amp: the stats in float32, the normalised map in bfloat16
    for amp in (False, True):
        assert all(c.ok for c in memory_comparisons(network, amp=amp)), amp


def test_a_norm_act_with_settings_the_spec_lacks_is_refused():
    timm_layers = timm_module("timm.layers")
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3),
        timm_layers.BatchNormAct2d(4, act_layer=nn.LeakyReLU, act_kwargs={"negative_slope": 0.2}),
    )
    with pytest.raises(ImportFailed, match=r"1 \(BatchNormAct2d\): its activation LeakyReLU"):
        import_model(model, (3, 8, 8), "net")
