"""ConvNeXt in the spec language (issue 11): ``Parameter`` (a tensor a block owns), ``Permute``
(the axes moved; LayerNorm, Linear and pointwise layers over channels-last), ``LayerNorm2d``, and
``specs/convnext_tiny.yaml`` against torchvision's convnext_tiny.

Torch is the oracle: ``convcalc.check`` compares every node with the real model (shapes, params,
MACs by FlopCounterMode, receptive fields by the gradient probe), hypothesis draws the cases.
"""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from convcalc import spec as S
from convcalc.build import LayerNorm2d, build_model
from convcalc.check import check
from convcalc.engine import analyze
from convcalc.export import export_source
from tests.conftest import SPECS, run_cli, torchvision_models
from tests.test_export import import_file

CNBLOCK = {
    "params": {"dim": None, "p": 0.0},
    "layers": [
        {"type": "Sequential", "name": "block", "layers": [
            {"type": "Conv2d", "out_channels": "$dim", "kernel_size": 7, "padding": 3, "groups": "$dim"},
            {"type": "Permute", "dims": [0, 2, 3, 1]},
            {"type": "LayerNorm", "normalized_shape": "$dim", "eps": 1e-6},
            {"type": "Linear", "out_features": "${4 * dim}"},
            {"type": "GELU"},
            {"type": "Linear", "out_features": "$dim"},
            {"type": "Permute", "dims": [0, 3, 1, 2]},
        ]},
        {"type": "Parameter", "name": "layer_scale", "shape": ["$dim", 1, 1], "value": 1e-6},
        {"type": "Mul", "name": "scale", "inputs": ["layer_scale", "block"]},
        {"type": "StochasticDepth", "name": "stochastic_depth", "p": "$p"},
        {"type": "Add", "name": "add", "inputs": ["stochastic_depth", "input"]},
    ],
}  # fmt: skip


def network(layers: list, size=(3, 16, 16), blocks: dict | None = None) -> S.Network:
    return S.network_from_data({"name": "t", "input": list(size), "blocks": blocks or {}, "layers": layers})


def mini_convnext(dim: int = 8, blocks: int = 2) -> S.Network:
    return network(
        [
            {"type": "Conv2d", "name": "stem", "out_channels": dim, "kernel_size": 4, "stride": 4},
            {"type": "LayerNorm2d", "name": "norm", "eps": 1e-6},
            {"type": "CNBlock", "name": "stage", "dim": dim, "p": 0.1, "repeat": blocks},
            {"type": "AdaptiveAvgPool2d", "name": "avgpool", "output_size": 1},
            {"type": "Flatten", "name": "flatten"},
            {"type": "Linear", "name": "fc", "out_features": 5},
        ],
        (3, 32, 32),
        {"CNBlock": CNBLOCK},
    )


def assert_checks(net: S.Network) -> None:
    report = check(net)
    assert report.ok, "\n".join(str(c) for c in report.mismatches)


# --------------------------------------------------------------------------------------
# Parameter


def test_a_cnblock_checks_against_torch_and_its_parameter_lives_on_the_block():
    net = mini_convnext()
    assert_checks(net)  # shapes, params, MACs, receptive fields (the gradient probe), torchinfo
    model = build_model(net)
    params = dict(model.named_parameters())
    assert params["stage.0.layer_scale"].shape == (8, 1, 1)
    assert torch.equal(params["stage.0.layer_scale"].detach(), torch.full((8, 1, 1), 1e-6))
    assert "stage.0.layer_scale.weight" not in params
    rows = {row.name: row for row in analyze(net).rows}
    assert rows["stage.0.layer_scale"].params == 8 and rows["stage.0.layer_scale"].receptive_field is None
    # a merge of a parameter and a tensor has the tensor's field
    assert rows["stage.0.scale"].receptive_field == rows["stage.0.block.6"].receptive_field


def test_the_parameter_is_trained():
    model = build_model(mini_convnext(blocks=1)).train()
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    grad = model.get_parameter("stage.layer_scale").grad  # one use: the block is "stage" itself
    assert grad is not None and grad.abs().sum() > 0


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    c=st.integers(1, 4),
    h=st.integers(3, 9),
    shape=st.sampled_from(["c11", "1hw", "chw", "w", "1", "11w"]),
    merge=st.sampled_from(["Mul", "Add"]),
    first=st.booleans(),
    flat=st.booleans(),
)
def test_a_parameter_broadcasts_as_torch_does(c, h, shape, merge, first, flat):
    """Against torch: a Parameter of any shape that broadcasts with (N, C, H, W) from the right,
    stored in that shape or (``flat``) as one axis read through ``view`` (timm's gamma)."""
    w = h + 1
    dims = {"c11": [c, 1, 1], "1hw": [1, h, w], "chw": [c, h, w], "w": [w], "1": [1], "11w": [1, 1, w]}[shape]
    stored = {"shape": [math.prod(dims)], "view": dims} if flat else {"shape": dims}
    net = network(
        [
            {"type": "Conv2d", "name": "conv", "out_channels": c, "kernel_size": 3, "padding": 1},
            {"type": "Parameter", "name": "p", **stored, "std": 0.02},
            {"type": merge, "name": "merge", "inputs": ["p", "conv"] if first else ["conv", "p"]},
            {"type": "Conv2d", "name": "after", "out_channels": 2, "kernel_size": 3},
        ],
        (2, h, w),
    )
    assert_checks(net)
    assert analyze(net).total_params == sum(p.numel() for p in build_model(net).parameters())


def test_std_draws_the_parameter_from_a_normal_distribution():
    torch.manual_seed(0)
    net = network(
        [{"type": "Parameter", "name": "p", "shape": [200, 50], "std": 0.5},
         {"type": "Add", "name": "add", "inputs": ["p", "input"]}],
        (200, 50),
    )  # fmt: skip
    tensor = build_model(net).get_parameter("p").detach()
    assert abs(tensor.mean().item()) < 0.02 and abs(tensor.std().item() - 0.5) < 0.02


@pytest.mark.parametrize(
    "layer, words",
    [
        ({"type": "Parameter", "name": "p", "shape": [3, 1, 1], "inputs": "input"}, "reads nothing"),
        (
            {"type": "Parameter", "name": "p", "shape": [3, 1, 1], "value": 1.0, "std": 0.1},
            "exclude each other",
        ),
        ({"type": "Parameter", "name": "p", "shape": [3, 1, 1], "repeat": 2}, "cannot be repeated"),
        ({"type": "Parameter", "name": "p", "shape": []}, "shape"),
        ({"type": "Parameter", "name": "p", "shape": [6], "view": [4, 1, 1]}, "give a view of the same size"),
    ],
)
def test_parameter_field_errors_name_the_fix(layer, words):
    with pytest.raises(S.SpecError) as error:
        network([layer, {"type": "Mul", "inputs": ["p", "input"]}])
    assert words in str(error.value)


def test_a_parameter_block_body_refuses_inputs():
    blocks = {"B": {"layers": [{"type": "Parameter", "name": "p", "shape": [3, 1, 1], "inputs": "input"},
                               {"type": "Mul", "inputs": ["p", "input"]}]}}  # fmt: skip
    with pytest.raises(S.SpecError, match="reads nothing"):
        network([{"type": "B"}], blocks=blocks)


def test_a_layer_that_reads_a_parameter_alone_is_an_error():
    analysis = analyze(
        network([{"type": "Parameter", "name": "p", "shape": [3, 1, 1]}, {"type": "ReLU", "name": "relu"}])
    )
    (error,) = analysis.errors
    assert "a Parameter" in error.message and "Mul or Add" in error.fix


@pytest.mark.parametrize("merge, inputs", [("Add", ["p", "q"]), ("Mul", ["p", "q"]), ("Cat", ["p", "input"])])
def test_a_merge_of_parameters_alone_or_a_cat_of_one_is_an_error(merge, inputs):
    layers = [{"type": "Parameter", "name": name, "shape": [3, 16, 16]} for name in ("p", "q")]
    (error,) = analyze(network([*layers, {"type": merge, "inputs": inputs}])).errors
    assert "no batch dim" in error.message and "with a tensor" in error.fix


def test_a_parameter_that_does_not_broadcast_is_an_error():
    analysis = analyze(
        network(
            [
                {"type": "Parameter", "name": "p", "shape": [5, 1, 1]},
                {"type": "Mul", "inputs": ["p", "input"]},
            ]
        )
    )
    (error,) = analysis.errors
    assert "does not broadcast" in error.message and "[3, 16, 16]" in error.fix


# --------------------------------------------------------------------------------------
# Permute


PERMS = [[0, 2, 3, 1], [0, 1, 3, 2], [0, 3, 2, 1], [0, 2, 1, 3], [0, 3, 1, 2]]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    dims=st.sampled_from(PERMS),
    c=st.integers(1, 4),
    h=st.integers(4, 9),
    w=st.integers(4, 9),
    norm=st.booleans(),
    act=st.sampled_from(["GELU", "ReLU", "Dropout"]),
)
def test_any_permutation_and_back_checks_against_torch(dims, c, h, w, norm, act):
    """Permute, a LayerNorm over the last dim, a pointwise layer, a Linear when channels are last,
    back to channels-first and a conv: shapes, MACs and fields against torch."""
    back = [dims.index(d) for d in range(4)]
    inner = [{"type": act}]
    if norm:
        inner.append({"type": "LayerNorm", "normalized_shape": [c, h, w][dims[3] - 1]})
    if dims[3] == 1:  # channels last: the pointwise convolution as a Linear
        inner.append({"type": "Linear", "out_features": 3})
    net = network(
        [
            {"type": "Conv2d", "out_channels": c, "kernel_size": 3, "stride": 2, "padding": 1},
            {"type": "Permute", "dims": dims},
            *inner,
            {"type": "Permute", "dims": back},
            {"type": "Conv2d", "out_channels": 2, "kernel_size": 3, "padding": 1},
        ],
        (2, 2 * h, 2 * w),
    )
    assert analyze(net).ok
    assert_checks(net)


def test_a_linear_over_the_channels_last_counts_positions_times_in_times_out():
    net = network([{"type": "Permute", "dims": [0, 2, 3, 1]}, {"type": "Linear", "out_features": 7},
                   {"type": "Permute", "dims": [0, 3, 1, 2]}])  # fmt: skip
    row = analyze(net).rows[1]
    assert row.output_shape == (16, 16, 7) and row.layout == (1, 2, 0)
    assert row.macs == 16 * 16 * 3 * 7 and analyze(net).rows[2].layout is None
    assert_checks(net)


def test_a_conv_on_a_permuted_tensor_says_to_permute_back():
    analysis = analyze(network([{"type": "Permute", "dims": [0, 2, 3, 1]},
                                {"type": "Conv2d", "out_channels": 4, "kernel_size": 3}]))  # fmt: skip
    (error,) = analysis.errors
    assert error.name == "conv2d_0" and "permute back to channels-first first" in error.fix


@pytest.mark.parametrize("dims", [[0, *p] for p in itertools.permutations([1, 2, 3]) if p != (1, 2, 3)])
def test_the_fix_for_a_permuted_input_is_the_permute_that_undoes_it(dims):
    layers = [{"type": "Permute", "dims": dims}, {"type": "Conv2d", "out_channels": 2, "kernel_size": 3}]
    (error,) = analyze(network(layers, (3, 8, 9))).errors
    fix = yaml.safe_load(error.fix.split("first: ")[1])
    fixed = analyze(network([layers[0], fix, layers[1]], (3, 8, 9)))
    assert fixed.ok and fixed.rows[1].output_shape == (3, 8, 9) and fixed.rows[1].layout is None


def test_a_linear_on_a_feature_map_still_asks_for_a_flatten():
    (error,) = analyze(network([{"type": "Linear", "out_features": 4}])).errors
    assert error.message == "Linear gets a 3×16×16 input; it needs a flat vector"
    assert error.fix == "add a Flatten layer before it"


def test_a_linear_over_a_spatial_last_dim_is_an_error():
    (error,) = analyze(
        network([{"type": "Permute", "dims": [0, 1, 3, 2]}, {"type": "Linear", "out_features": 4}])
    ).errors
    assert "spatial" in error.message and "[0, 2, 3, 1]" in error.fix


@pytest.mark.parametrize("dims, words", [([0, 2, 3], "is not an order"), ([1, 0, 2, 3], "moves the batch"),
                                         ([0, 2, 2, 1], "is not an order")])  # fmt: skip
def test_permute_errors(dims, words):
    (error,) = analyze(network([{"type": "Permute", "dims": dims}])).errors
    assert words in error.message


def test_merging_tensors_in_different_orders_is_an_error():
    (error,) = analyze(network([{"type": "Permute", "name": "p", "dims": [0, 1, 3, 2]},
                                {"type": "Add", "inputs": ["p", "input"]}])).errors  # fmt: skip
    assert "different orders" in error.message


def test_the_cli_reports_a_permuted_conv_without_a_traceback(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text(
        "input: [3, 16, 16]\nlayers:\n  - {type: Permute, dims: [0, 2, 3, 1]}\n"
        "  - {type: Conv2d, out_channels: 4, kernel_size: 3}\n",
        encoding="utf-8",
    )
    result = run_cli("shape", str(spec))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "permute back to channels-first first" in result.stdout + result.stderr


# --------------------------------------------------------------------------------------
# LayerNorm2d


def test_layernorm2d_is_torchvisions():
    torchvision_models()
    from torchvision.models.convnext import LayerNorm2d as Theirs

    torch.manual_seed(0)
    theirs, ours = Theirs(6, eps=1e-6), LayerNorm2d(6, eps=1e-6)
    nn.init.normal_(theirs.weight)
    nn.init.normal_(theirs.bias)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(2, 6, 5, 7)
    assert torch.equal(ours(x), theirs(x))
    net = network([{"type": "LayerNorm2d", "eps": 1e-6}], (6, 5, 7))
    assert analyze(net).total_params == 12
    assert_checks(net)


def test_layernorm2d_checks_its_channels():
    (error,) = analyze(network([{"type": "LayerNorm2d", "normalized_shape": 4}])).errors
    assert "normalized_shape=4 but the input has 3" in error.message


# --------------------------------------------------------------------------------------
# Export


def test_the_exported_cnblock_is_the_built_model(tmp_path):
    net = mini_convnext()
    file = tmp_path / "exported.py"
    file.write_text(export_source(net), encoding="utf-8")
    module = import_file(file)
    exported = module.T()
    built = build_model(net).eval()
    assert [(k, v.shape) for k, v in exported.state_dict().items()] == [
        (k, v.shape) for k, v in built.state_dict().items()
    ]
    assert torch.equal(exported.state_dict()["stage.1.layer_scale"], torch.full((8, 1, 1), 1e-6))
    exported.load_state_dict(built.state_dict(), strict=True)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(exported.eval()(x), built(x))


def test_top_level_parameters_export_as_the_built_model(tmp_path):
    net = network(
        [
            {"type": "Conv2d", "name": "conv", "out_channels": 3, "kernel_size": 3, "padding": 1},
            {"type": "Parameter", "name": "scale", "shape": [7], "std": 0.02},
            {"type": "Parameter", "name": "shift", "shape": [3, 1, 1], "value": 2},
            {"type": "Mul", "name": "mul", "inputs": ["conv", "scale"]},
            {"type": "Add", "name": "add", "inputs": ["mul", "shift"]},
        ],
        (2, 6, 7),
    )
    file = tmp_path / "top.py"
    file.write_text(export_source(net), encoding="utf-8")
    assert "scale = self.scale  # (7,)" in file.read_text(encoding="utf-8")
    module = import_file(file)
    exported, built = module.T(), build_model(net)
    assert torch.equal(exported.shift.detach(), torch.full((3, 1, 1), 2.0))
    exported.load_state_dict(built.state_dict(), strict=True)
    x = torch.randn(2, 2, 6, 7)
    with torch.no_grad():
        assert torch.equal(exported(x), built(x))
    assert_checks(net)


def test_a_parameter_read_through_a_view_exports_as_the_built_model(tmp_path):
    """Stored as (3,), read as (3, 1, 1): the state_dict holds (3,), forward multiplies per channel."""
    net = network(
        [
            {"type": "Conv2d", "name": "conv", "out_channels": 3, "kernel_size": 3, "padding": 1},
            {"type": "Parameter", "name": "gamma", "shape": [3], "view": [3, 1, 1], "std": 0.5},
            {"type": "Mul", "name": "mul", "inputs": ["conv", "gamma"]},
        ],
        (2, 6, 7),
    )
    rows = {row.name: row for row in analyze(net).rows}
    assert rows["gamma"].output_shape == (3, 1, 1) and rows["gamma"].params == 3
    file = tmp_path / "view.py"
    file.write_text(export_source(net), encoding="utf-8")
    assert "gamma = self.gamma.view(3, 1, 1)" in file.read_text(encoding="utf-8")
    module = import_file(file)
    exported, built = module.T(), build_model(net)
    assert built.state_dict()["gamma"].shape == exported.state_dict()["gamma"].shape == (3,)
    exported.load_state_dict(built.state_dict(), strict=True)
    x = torch.randn(2, 2, 6, 7)
    with torch.no_grad():
        per_channel = built.conv(x) * built.gamma.view(1, 3, 1, 1)
        assert torch.equal(exported(x), built(x)) and torch.equal(built(x), per_channel)
    assert_checks(net)


# --------------------------------------------------------------------------------------
# The shipped spec against torchvision


def _torchvision_tiny(device: str) -> nn.Module:
    torchvision_models()
    from torchvision.models import convnext_tiny

    with torch.device(device):
        return convnext_tiny(weights=None)


def test_convnext_tiny_is_torchvisions():
    from tests.test_torchvision import macs

    net = S.load_spec(SPECS / "convnext_tiny.yaml")
    analysis = analyze(net)
    theirs = _torchvision_tiny("meta")
    with torch.device("meta"):
        ours = build_model(net)
    assert [(k, tuple(v.shape)) for k, v in ours.state_dict().items()] == [
        (k, tuple(v.shape)) for k, v in theirs.state_dict().items()
    ]
    assert analysis.total_params == sum(p.numel() for p in theirs.parameters())
    assert analysis.total_macs == macs(theirs, tuple(net.input))
    # stochastic depth grows over the blocks as torchvision's does
    theirs_p = [
        (name, m.p, m.mode) for name, m in theirs.named_modules() if type(m).__name__ == "StochasticDepth"
    ]
    ours_p = [
        (name, m.p, m.mode) for name, m in ours.named_modules() if type(m).__name__ == "StochasticDepth"
    ]
    assert ours_p == theirs_p


@pytest.mark.slow
def test_convnext_tiny_loads_torchvisions_weights_and_gives_its_outputs():
    torch.manual_seed(0)
    net = S.load_spec(SPECS / "convnext_tiny.yaml")
    theirs = _torchvision_tiny("cpu").eval()
    ours = build_model(net, initialize=False).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(2, *net.input)
    with torch.no_grad():
        assert torch.equal(ours(x), theirs(x))


# --------------------------------------------------------------------------------------
# convcalc import


def test_convnext_tiny_imports_exactly():
    from tests.test_import import same_as_torchvision

    same_as_torchvision("convnext_tiny", outputs=False)


@pytest.mark.parametrize("name", ["convnext_small", "convnext_base", "convnext_large"])
def test_the_larger_convnexts_import_exactly(name):
    from tests.test_import import same_as_torchvision

    same_as_torchvision(name, outputs=False)


def test_an_imported_convnext_maps_each_module_to_its_own_type():
    """LayerNorm2d subclasses nn.LayerNorm with its own forward: it must become LayerNorm2d, and
    the layer scale a Parameter of its block, read by a Mul; the block's sum an Add."""
    from convcalc.importer import import_model
    from tests.test_import import torchvision

    network = import_model(torchvision("convnext_tiny"), (3, 224, 224), "convnext_tiny")
    rows = {row.name: row for row in analyze(network).rows}
    assert rows["features.0.1"].type == "LayerNorm2d" and rows["classifier.0"].type == "LayerNorm2d"
    assert rows["features.1.0.block.2"].type == "LayerNorm"  # the one over channels-last
    assert rows["features.1.0.block.1"].type == "Permute" and rows["features.1.0.block.1"].layer.dims == [
        0,
        2,
        3,
        1,
    ]
    assert rows["features.1.0.layer_scale"].type == "Parameter"
    assert rows["features.1.0.layer_scale"].output_shape == (96, 1, 1)
    analysis = analyze(network)
    reads = {row.type: [analysis.rows[i].name for i in row.inputs] for row in analysis.rows
             if row.path[:3] == ("features", "1", "0") and row.type in ("Mul", "Add")}  # fmt: skip
    assert reads["Mul"] == ["features.1.0.layer_scale", "features.1.0.block.6"]
    assert reads["Add"] == ["features.1.0.stochastic_depth", "features.0.1"]
    torchvision_p = [
        m.p for m in torchvision("convnext_tiny").modules() if type(m).__name__ == "StochasticDepth"
    ]
    assert [row.layer.p for row in rows.values() if row.type == "StochasticDepth"] == torchvision_p


def test_an_imported_convnext_passes_check_at_a_small_input():
    """convcalc check of the import (every layer: shapes, params, MACs, fields by the gradient
    probe, torchinfo) at 3×64×64, the same architecture as 224×224 at a fifth of the cost."""
    from convcalc.importer import import_model
    from tests.test_import import torchvision

    assert_checks(import_model(torchvision("convnext_tiny"), (3, 64, 64), "convnext_tiny"))


class Scaled(nn.Module):
    """A block that reads its own parameter (and a buffer) in forward, as CNBlock does."""

    def __init__(self, buffer: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.gamma = nn.Parameter(torch.full((4, 1, 1), 0.5))
        self.register_buffer("offset", torch.zeros(4, 1, 1))
        self.buffer = buffer

    def forward(self, x):
        y = self.gamma * self.conv(x)
        return y + self.offset if self.buffer else y


def test_a_parameter_read_in_forward_imports_with_its_value():
    from convcalc.importer import import_model

    network = import_model(Scaled(), (3, 8, 8), "scaled")
    (param,) = [row for row in analyze(network).rows if row.type == "Parameter"]
    assert param.name == "gamma" and param.layer.value == 0.5 and param.output_shape == (4, 1, 1)
    original = Scaled().eval()
    ours = build_model(network).eval()
    assert torch.equal(ours.get_parameter("gamma").detach(), original.gamma.detach())
    ours.load_state_dict(original.state_dict(), strict=False)  # the buffer is the original's own
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(ours(x), original(x))
    assert_checks(network)


def test_a_buffer_read_in_forward_stops_the_import():
    from convcalc.importer import ImportFailed, import_model

    with pytest.raises(
        ImportFailed, match="offset: forward reads a tensor attribute that is not a parameter"
    ):
        import_model(Scaled(buffer=True), (3, 8, 8), "scaled")


# --------------------------------------------------------------------------------------
# The designer and the drawing


def test_the_designer_shows_the_parameter_and_permute_rows():
    from convcalc.tui.app import ConvcalcApp, open_spec
    from tests.test_tui import pilot_test
    from tests.test_tui_graphs import SIZE, detail, go_to_row, names_shown

    @pilot_test
    async def run():
        app = ConvcalcApp(*open_spec(SPECS / "convnext_tiny.yaml"))
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            rows = {row.name: row for row in analyze(S.load_spec(SPECS / "convnext_tiny.yaml")).rows}
            assert "features.1.0.layer_scale" in names_shown(app)
            await go_to_row(pilot, "features.1.0.layer_scale")
            assert "96×1×1" in detail(app) and "reads nothing" in detail(app)
            await go_to_row(pilot, "features.1.0.block.1")
            shape = "×".join(map(str, rows["features.1.0.block.1"].output_shape))
            assert shape == "56×56×96" and shape in detail(app)

    run()


def test_convcalc_draw_draws_convnext(tmp_path):
    out = tmp_path / "convnext.svg"
    result = run_cli("draw", str(SPECS / "convnext_tiny.yaml"), "-o", str(out))
    assert result.returncode == 0, result.stderr
    svg = out.read_text(encoding="utf-8")
    assert "Permute" in svg or "permute" in svg


def test_convcalc_rf_refuses_a_parameter_or_a_permuted_layer_by_name(tmp_path):
    from convcalc.errors import ConvcalcError
    from convcalc.rf import find_layer

    analysis = analyze(mini_convnext())
    with pytest.raises(ConvcalcError, match="stage.0.layer_scale: its output is a Parameter"):
        find_layer(analysis, "stage.0.layer_scale")
    with pytest.raises(ConvcalcError, match="permuted .* the one after the Permute back"):
        find_layer(analysis, "stage.0.block.3")
    assert find_layer(analysis, "stage.0.block.6").name == "stage.0.block.6"


def test_a_view_of_another_size_in_a_spec_file_is_one_line_naming_the_layer(tmp_path):
    """The file path too (the plain validator hands a view to Pydantic, which checks its size)."""
    spec = tmp_path / "view.yaml"
    spec.write_text(
        "name: v\ninput: [3, 4, 4]\nlayers:\n"
        "  - {type: Parameter, name: gamma, shape: [3], view: [4, 1, 1]}\n"
        "  - {type: Mul, name: mul, inputs: [input, gamma]}\n",
        encoding="utf-8",
    )
    result = run_cli("shape", str(spec))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "gamma" in result.stderr and "give a view of the same size" in result.stderr
    spec.write_text(spec.read_text(encoding="utf-8").replace("[4, 1, 1]", "[3, 1, 1]"), encoding="utf-8")
    result = run_cli("shape", str(spec), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["layers"][0]["output_shape"] == [3, 1, 1]
