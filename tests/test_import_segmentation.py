"""`convcalc import` of torchvision's segmentation models (FCN, DeepLabV3): a forward that returns
``{"out": x}`` and sizes its upsampling with ``x.shape[-2:]``, against torch.

The issue's proof for every imported model: the same output shape, params, MACs
(FlopCounterMode on the original), state_dict keys and shapes, the same outputs with the
original's weights loaded strictly, and ``convcalc check`` of the imported spec passes.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch._subclasses.fake_tensor import FakeTensor
from torch.utils.flop_counter import FlopCounterMode

from convcalc.build import build_model
from convcalc.check import check
from convcalc.cli import main
from convcalc.engine import analyze
from convcalc.importer import ImportFailed, import_model
from tests.conftest import run_cli, torchvision_models


def segmentation(name: str, device: str = "meta", **kwargs) -> nn.Module:
    """torchvision's segmentation builder ``name``, no weights at all (nor the backbone's)."""
    builder = getattr(torchvision_models().segmentation, name)
    with torch.device(device):
        return builder(weights=None, weights_backbone=None, **kwargs)


def _keys(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def same_as_torchvision(name: str, size: int) -> None:
    original = segmentation(name).eval()
    network = import_model(original, (3, size, size), name)
    analysis = analyze(network)
    assert analysis.ok, analysis.errors
    with torch.device("meta"):
        ours = build_model(network)
    assert _keys(ours) == _keys(original)
    assert analysis.total_params == sum(p.numel() for p in original.parameters())
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        out = original(torch.zeros(1, 3, size, size, device="meta"))["out"]
    assert analysis.total_macs == counter.get_total_flops() / 2
    assert analysis.output_shape == tuple(out.shape[1:]) == (21, size, size)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fcn_resnet50", "deeplabv3_resnet50", "deeplabv3_mobilenet_v3_large"])
def test_segmentation_models_import_exactly(name):
    same_as_torchvision(name, 224)


def test_deeplab_gives_the_originals_outputs_and_checks():
    """DeepLabV3 on MobileNetV3 (dilated backbone, ASPP with an image-pooling branch upsampled to
    the feature map's ``x.shape[-2:]``, the head upsampled to the input's): weights loaded
    strictly give the same ``out``; check passes, receptive fields included (at 64×64)."""
    torch.manual_seed(0)
    original = segmentation("deeplabv3_mobilenet_v3_large", "cpu", num_classes=3).eval()
    network = import_model(original, (3, 64, 64), "deeplab")
    ours = build_model(network, initialize=False).eval()
    ours.load_state_dict(original.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), original(x)["out"], rtol=0, atol=0)
    report = check(network)
    assert report.ok, [str(c) for c in report.mismatches]


def test_a_shape_read_is_the_size_at_the_imported_input():
    """The sizes ``x.shape[-2:]`` gives become the Upsample's ``size``: at each input size the
    import is exact (the spec says the size it was imported at)."""
    original = segmentation("fcn_resnet50")
    for size in (64, 96):
        network = import_model(original, (3, size, size), "fcn")
        last = analyze(network).rows[-1]
        assert last.type == "Upsample" and last.output_shape == (21, size, size)


def test_an_aux_head_is_refused_with_the_fix():
    with pytest.raises(ImportFailed, match=r"2 outputs \(out, aux\).*--arg aux_loss=false"):
        import_model(segmentation("fcn_resnet50", aux_loss=True), (3, 64, 64), "fcn")


class Upsampler(nn.Module):
    """A model of one's own (real weights on the CPU) that reads the shape of its input."""

    def __init__(self) -> None:
        super().__init__()
        self.down = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.head = nn.Conv2d(4, 2, 1)

    def forward(self, x):
        size = x.shape[-2:]
        return F.interpolate(self.head(self.down(x)), size=size, mode="bilinear", align_corners=False)


class ReadsTheBatch(Upsampler):
    def forward(self, x):
        return self.head(self.down(x)).reshape(x.shape[0], 2, -1)


def test_a_cpu_model_reading_its_shape_imports_without_running_kernels(monkeypatch):
    """A model with real weights runs under a fake-tensor mode: no convolution kernel runs."""
    torch.manual_seed(0)
    model = Upsampler()
    calls = []
    real_conv = torch.nn.functional.conv2d

    def counting(*args, **kwargs):
        calls.append(isinstance(args[0], FakeTensor))
        return real_conv(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "conv2d", counting)
    network = import_model(model, (3, 20, 30), "up")
    monkeypatch.undo()
    assert calls and all(calls)  # run (to read the shapes), on fake tensors only
    assert analyze(network).output_shape == (2, 20, 30)
    ours = build_model(network, initialize=False).eval()
    ours.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(2, 3, 20, 30)
    with torch.no_grad():
        assert torch.equal(ours(x), model.eval()(x))


def test_a_shape_read_of_the_batch_is_still_refused():
    with pytest.raises(ImportFailed, match="getattr"):
        import_model(ReadsTheBatch(), (3, 8, 8), "batch")


def test_a_graph_that_does_not_run_as_traced_is_refused_by_its_op():
    """swin3d's traced graph edits a traced list and fails when run: nothing is folded, and
    the import names the op it cannot say (not the input size)."""
    with torch.device("meta"):
        model = torchvision_models().video.swin3d_t(weights=None)
    with pytest.raises(ImportFailed) as refused:
        import_model(model, (3, 16, 112, 112), "swin3d_t")
    assert "has no spec layer" in str(refused.value) and "--input" not in str(refused.value)


def test_import_cli_of_a_segmentation_model(tmp_path, capsys):
    """In this process (torchvision registered as the tests do); then `shape` of the written spec
    as a user runs it."""
    torchvision_models()
    out = tmp_path / "fcn.yaml"
    with pytest.raises(SystemExit) as done:
        main(["import", "torchvision.models.segmentation:fcn_resnet50", "--input", "3x64x64",
              "--arg", "weights_backbone=null", "-o", str(out)])  # fmt: skip
    assert done.value.code == 0, capsys.readouterr().err
    shaped = run_cli("shape", str(out), "--json")
    assert shaped.returncode == 0, shaped.stderr
    assert json.loads(shaped.stdout)["output_shape"] == [21, 64, 64]
