"""`convcalc import`: an existing model becomes a spec whose generated model is that model.

For every imported model: the same state_dict keys and shapes, the same total params, the same
MACs as FlopCounterMode measures on the original, and (small models) the same outputs with the
original's weights loaded strictly. Unsupported ops stop the import with a message; bad targets
are one-line errors.
"""

from __future__ import annotations

import importlib
import textwrap

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from convcalc.build import build_model
from convcalc.check import check
from convcalc.engine import analyze
from convcalc.importer import ImportFailed, import_model, import_target
from convcalc.spec import parse_spec
from tests.conftest import run_cli, torchvision_models

SMALL = ["resnet18", "mobilenet_v2", "squeezenet1_1", "alexnet", "mnasnet0_5", "mobilenet_v3_small",
         "efficientnet_b0"]  # fmt: skip
LARGE = ["resnet50", "vgg16_bn", "resnext50_32x4d", "wide_resnet50_2", "mobilenet_v3_large",
         "efficientnet_v2_s", "mnasnet1_0"]  # fmt: skip

NET = """
import torch
import torch.nn.functional as F
from torch import nn


class Net(nn.Module):
    def __init__(self, classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.branch = nn.Conv2d(1, 4, 1)
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(12 * 14 * 14, classes))

    def forward(self, x):
        a = F.relu(self.conv1(x))
        a = self.conv2(a) + a
        b = torch.sigmoid(self.branch(x))
        y = torch.cat([a, b], dim=1)
        y = F.max_pool2d(y, 2)
        return self.head(y.view(y.size(0), -1))


class Fourier(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)

    def forward(self, x):
        return torch.fft.fft2(self.conv(x)).real


class Shared(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        return self.conv(self.conv(x))


def needs_depth(depth):
    return Net()


not_a_model = 3
"""


def torchvision(name: str, device: str = "meta") -> torch.nn.Module:
    """torchvision's ``name`` with ``weights=None``; on the CPU when its constructor computes with
    tensors (RegNet's widths: "Cannot copy out of meta tensor")."""
    models = torchvision_models()
    try:
        with torch.device(device):
            return getattr(models, name)(weights=None)
    except NotImplementedError:
        return getattr(models, name)(weights=None)


def same_as_torchvision(name: str, outputs: bool) -> None:
    original = torchvision(name)
    network = import_model(original, (3, 224, 224), name)
    analysis = analyze(network)
    assert analysis.ok, analysis.errors
    with torch.device("meta"):
        ours = build_model(network)
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == {
        k: tuple(v.shape) for k, v in original.state_dict().items()
    }
    assert analysis.total_params == sum(p.numel() for p in original.parameters())
    counter = FlopCounterMode(display=False)
    original.eval()
    with counter, torch.no_grad():
        out = original(torch.zeros(1, 3, 224, 224, device=next(original.parameters()).device))
    assert analysis.total_macs == counter.get_total_flops() / 2
    assert analysis.output_shape == tuple(out.shape[1:])
    if outputs:
        torch.manual_seed(0)
        original = torchvision(name, "cpu").eval()
        ours = build_model(network, initialize=False).eval()
        ours.load_state_dict(original.state_dict(), strict=True)
        x = torch.randn(2, 3, 224, 224)
        with torch.no_grad():
            assert torch.equal(ours(x), original(x))


@pytest.mark.parametrize("name", SMALL)
def test_torchvision_models_import_exactly(name):
    same_as_torchvision(name, outputs=True)


@pytest.mark.slow
@pytest.mark.parametrize("name", LARGE)
def test_large_torchvision_models_import_exactly(name):
    same_as_torchvision(name, outputs=False)


@pytest.mark.parametrize("mode", ["row", "batch"])
@pytest.mark.parametrize("p", [0.0, 0.3, 1.0])
def test_stochastic_depth_is_torchvisions(p, mode):
    """The spec's StochasticDepth (EfficientNet's, on the residual branch) draws and scales as
    torchvision.ops.StochasticDepth when training, and is the identity in eval mode."""
    from convcalc.build import StochasticDepth

    torchvision_models()
    ops = importlib.import_module("torchvision.ops")
    x = torch.randn(16, 3, 4, 4)
    ours, theirs = StochasticDepth(p, mode).train(), ops.StochasticDepth(p, mode).train()
    for seed in range(3):
        torch.manual_seed(seed)
        mine = ours(x)
        torch.manual_seed(seed)
        assert torch.equal(mine, theirs(x))
    assert ours.eval()(x) is x


def test_efficientnet_imports_with_stochastic_depth_layers():
    network = import_model(torchvision("efficientnet_b0"), (3, 224, 224), "efficientnet_b0")
    assert any(row.type == "StochasticDepth" for row in analyze(network).rows)
    assert analyze(network).rows[-1].output_shape == (1000,)


@pytest.mark.slow
def test_an_imported_resnet_passes_check():
    report = check(import_model(torchvision("resnet18"), (3, 224, 224), "resnet18"))
    assert report.ok, [str(c) for c in report.mismatches]


@pytest.fixture
def nets(tmp_path):
    path = tmp_path / "nets.py"
    path.write_text(textwrap.dedent(NET))
    return path


def test_own_module_with_functional_ops_imports_and_checks(nets, tmp_path):
    out = tmp_path / "net.yaml"
    result = run_cli("import", f"{nets}:Net", "--input", "28x28", "-o", str(out))
    assert result.returncode == 0, result.stderr
    network = parse_spec(out.read_text())
    types = [row.type for row in analyze(network).rows]
    assert types == ["Conv2d", "ReLU", "Conv2d", "Add", "Conv2d", "Sigmoid", "Cat", "MaxPool2d", "Flatten",
                     "Dropout", "Linear"]  # fmt: skip
    assert check(network).ok
    # the same function a user calls from Python, and the original's weights give its outputs
    import importlib.util

    spec = importlib.util.spec_from_file_location("nets_for_test", nets)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    original = module.Net().eval()
    ours = build_model(import_model(original, (1, 28, 28), "Net")).eval()
    ours.load_state_dict(original.state_dict(), strict=True)
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(ours(x), original(x))


def test_arg_passes_keyword_arguments(nets):
    result = run_cli("import", f"{nets}:Net", "--input", "1x28x28", "--arg", "classes=5", "--json")
    assert result.returncode == 0, result.stderr
    assert '"out_features": 5' in result.stdout


def test_shape_takes_a_target(nets):
    result = run_cli("shape", f"{nets}:Net", "--input", "1x28x28", "--json")
    assert result.returncode == 0, result.stderr
    assert '"total_params": ' in result.stdout


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("nets.py", "give module:name"),
        ("no_such_package_xyz:Net", "cannot import no_such_package_xyz"),
        ("{nets}:Nope", "has no 'Nope'"),
        ("{nets}:not_a_model", "is a int, not an nn.Module"),
        ("{nets}:needs_depth", "pass its arguments with --arg"),
        ("{nets}:Fourier", "fft_fft2 has no spec layer"),
        ("{nets}:Shared", "called twice with the same weights"),
        ("{missing}:Net", "no file"),
        ("{broken}:Net", "syntax error"),
        ("torch.nn:Identity", "one Identity layer, not a model holding layers"),  # its keys have no prefix
    ],
)
def test_bad_targets_are_one_line_errors(nets, tmp_path, target, expected):
    broken = tmp_path / "broken.py"
    broken.write_text("def f(:\n")
    target = target.format(nets=nets, missing=tmp_path / "missing.py", broken=broken)
    result = run_cli("import", target, "--input", "1x28x28")
    assert result.returncode == 1, result.stdout
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_model_needing_an_input_size_says_so(nets):
    with pytest.raises(ImportFailed, match="give --input"):
        import_target(f"{nets}:Net")


def test_a_repeated_submodule_class_becomes_one_block_used_many_times():
    """resnet50's 16 Bottlenecks: two blocks (with and without the downsample), not 16 copies;
    what differs between instances is a parameter (out_channels, stride; conv3 writes
    ${out_channels * 4})."""
    network = import_model(torchvision("resnet50"), (3, 224, 224), "resnet50")
    assert set(network.blocks) == {"Bottleneck", "Bottleneck2"}
    assert sorted(network.blocks["Bottleneck"].params) == ["out_channels", "stride"]
    conv3 = next(layer for layer in network.blocks["Bottleneck"].layers if layer.get("name") == "conv3")
    assert conv3["out_channels"] == "${out_channels * 4}"
    uses = [row.groups[1].kind for row in analyze(network).rows if len(row.groups) > 1]
    assert {kind for kind in uses} == {"Bottleneck", "Bottleneck2"}
    assert len({row.path[:2] for row in analyze(network).rows if len(row.path) > 2}) == 16


@pytest.mark.parametrize("name", ["r3d_18", "r2plus1d_18"])
def test_video_models_import_exactly(name):
    """3-D convolutions, and torchvision's Conv3DSimple (an nn.Conv3d subclass) as a layer."""
    models = torchvision_models()
    import torchvision.models.video as video

    assert models is not None
    with torch.device("meta"):
        original = getattr(video, name)(weights=None)
    network = import_model(original, (3, 16, 112, 112), name)
    analysis = analyze(network)
    with torch.device("meta"):
        ours = build_model(network)
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == {
        k: tuple(v.shape) for k, v in original.state_dict().items()
    }
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        original.eval()(torch.zeros(1, 3, 16, 112, 112, device="meta"))
    assert analysis.total_macs == counter.get_total_flops() / 2


def test_weights_that_forward_does_not_use_stop_the_import():
    """googlenet's auxiliary heads run only in training: a spec without them would miss their
    weights, so the import stops and says how to build the model without them."""
    with pytest.raises(ImportFailed, match="forward does not use in eval mode.*aux_logits=false"):
        import_model(torchvision("googlenet"), (3, 224, 224), "googlenet")


def test_googlenet_without_its_auxiliary_heads_imports_exactly():
    models = torchvision_models()
    with torch.device("meta"):
        original = models.googlenet(weights=None, aux_logits=False, init_weights=False)
    network = import_model(original, (3, 224, 224), "googlenet")
    with torch.device("meta"):
        ours = build_model(network)
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == {
        k: tuple(v.shape) for k, v in original.state_dict().items()
    }
    assert "Inception" in network.blocks  # nine Inception modules, one block
