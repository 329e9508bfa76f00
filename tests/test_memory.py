"""Training memory (``convcalc memory``, ``convcalc check --memory``): the engine's model of what
autograd saves and what the optimizer keeps, against torch itself.

Torch is the oracle: ``saved_tensors_hooks`` records every tensor a training forward packs
(deduplicated by storage, parameters and buffers left out), the optimizer's state is read after
one real step; the engine must equal both exactly, at two batch sizes.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from convcalc import memory as M
from convcalc import spec as S
from convcalc.cli import _load
from convcalc.engine import analyze
from convcalc.errors import ConvcalcError
from convcalc.layers import REGISTRY
from convcalc.memcheck import BATCHES, measure_saved, measure_state, memory_comparisons
from tests.conftest import SHIPPED_SPECS, SPECS
from tests.test_graphs_vs_torch import graphs

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # 2 shared cores: one thread is faster

# Specs too large for CI at their own input run at a smaller one (same layers, same rules).
SMALLER = {
    **{name: (3, 32, 32) for name in ("densenet121", "googlenet", "mobilenet_v2", "mobilenet_v3_small",
                                      "resnet18", "resnet50", "vgg16")},
    "alexnet": (3, 64, 64), "r3d_18": (3, 4, 16, 16), "unet": (1, 188, 188),  # their smallest valid inputs
}  # fmt: skip


def _mismatches(comparisons) -> str:
    return "\n".join(str(c) for c in comparisons if not c.ok)


@pytest.mark.slow
@pytest.mark.parametrize("path", SHIPPED_SPECS, ids=lambda p: p.stem)
def test_shipped_specs_match_torch(path):
    network = _load(str(path), SMALLER.get(path.stem))
    analysis = analyze(network)
    if analysis.total_params < 20_000_000:
        comparisons = memory_comparisons(network, optimizers=("adam",))
        assert all(c.ok for c in comparisons), _mismatches(comparisons)
    else:  # VGG16, AlexNet, U-Net: an Adam step on their weights costs seconds; the rule is
        # the same per parameter tensor and checked on the others
        memory = M.training_memory(analysis)
        for batch in BATCHES:
            assert memory.saved_bytes(batch) == measure_saved(network, batch), batch


def test_every_optimizer_matches_torch():
    """Plain SGD keeps nothing, momentum one copy, Adam/AdamW two and a float32 step per tensor;
    a net with a weight-only LayerNorm and a bias-free Linear counts parameter tensors right."""
    network = S.network_from_data({"name": "opt", "input": [2, 6, 6], "layers": [
        {"type": "Conv2d", "out_channels": 3, "kernel_size": 3}, {"type": "BatchNorm2d"},
        {"type": "PReLU", "num_parameters": 3}, {"type": "LayerNorm", "normalized_shape": 4, "bias": False},
        {"type": "Flatten"}, {"type": "Linear", "out_features": 5, "bias": False},
    ]})  # fmt: skip
    analysis = analyze(network)
    for dtype in ("float32", "bfloat16"):
        buffers, grads, states = measure_state(network, M.OPTIMIZERS, dtype)
        for name in M.OPTIMIZERS:
            assert M.training_memory(analysis, name, dtype).optimizer_bytes == states[name], (name, dtype)
        assert M.training_memory(analysis, "adam", dtype).grad_bytes == grads
        assert M.training_memory(analysis, "adam", dtype).buffer_bytes == buffers
    assert M.training_memory(analysis, "sgd").optimizer_bytes == 0


# One small network per layer type: (input, layer); the layer reads a 1×1 conv (its input needs
# a gradient) or the network input itself (it does not: no graph unless the layer has weights).
_ACTS = ("ReLU", "ReLU6", "LeakyReLU", "ELU", "SELU", "CELU", "GELU", "SiLU", "Mish", "Hardswish",
         "Hardsigmoid", "Hardtanh", "Tanh", "Sigmoid", "Softplus", "Softsign", "Tanhshrink",
         "Identity")  # fmt: skip
CASES: list[tuple[list[int], dict]] = [
    *[([3, 6, 6], {"type": t}) for t in _ACTS],
    ([3, 6, 6], {"type": "GELU", "approximate": "tanh"}),
    ([5], {"type": "Linear", "out_features": 3}),
    ([5], {"type": "Linear", "out_features": 3, "bias": False}),
    ([3, 4, 4], {"type": "Flatten"}),
    ([12], {"type": "Unflatten", "dim": 1, "unflattened_size": [3, 4]}),
    ([3, 6, 6], {"type": "Softmax", "dim": 1}),
    ([3, 6, 6], {"type": "LogSoftmax", "dim": -1}),
    ([3, 6, 6], {"type": "PReLU"}),
    ([3, 6, 6], {"type": "PReLU", "num_parameters": 3}),
    ([4, 6, 6], {"type": "ChannelShuffle", "groups": 2}),
    ([4, 6, 6], {"type": "GroupNorm", "num_groups": 2}),
    ([4, 6, 6], {"type": "GroupNorm", "num_groups": 2, "affine": False}),
    ([4, 6, 6], {"type": "LayerNorm", "normalized_shape": [6, 6]}),
    ([4, 6, 6], {"type": "LayerNorm", "normalized_shape": 6, "elementwise_affine": False}),
    ([5], {"type": "BatchNorm1d"}),
    ([4, 6, 6], {"type": "Upsample", "scale_factor": 2, "mode": "bilinear"}),
    ([4, 6, 6], {"type": "Upsample", "size": 5, "mode": "bicubic"}),
    ([4, 6, 6], {"type": "Upsample", "scale_factor": 2, "mode": "nearest-exact"}),
    ([3, 8], {"type": "Upsample", "scale_factor": 2, "mode": "linear"}),
    ([3, 4, 4, 4], {"type": "Upsample", "scale_factor": 2, "mode": "trilinear"}),
    ([8, 6, 6], {"type": "PixelShuffle", "upscale_factor": 2}),
    ([2, 6, 6], {"type": "PixelUnshuffle", "downscale_factor": 2}),
    ([2, 6, 6], {"type": "Dropout", "p": 0.0}),
    ([2, 6, 6], {"type": "Dropout", "p": 1.0}),
    ([2, 6, 6], {"type": "AlphaDropout"}),
    ([2, 6, 6], {"type": "FeatureAlphaDropout"}),
    ([2, 6, 6], {"type": "Dropout2d", "p": 0.0}),
    ([2, 6, 6], {"type": "Dropout2d", "p": 1.0}),
    ([2, 6], {"type": "Dropout2d"}),  # a (C, L) input: torch warns, and drops channels as Dropout1d
    ([2, 6, 6], {"type": "StochasticDepth", "p": 0.2}),
    ([2, 6, 6], {"type": "StochasticDepth", "p": 0.2, "mode": "batch"}),
    ([2, 6, 6], {"type": "StochasticDepth", "p": 0.0}),
    ([2, 6, 6], {"type": "StochasticDepth", "p": 1.0}),
    ([4, 6, 6], {"type": "Chunk", "chunks": 2, "index": 1}),
    ([4, 6, 6], {"type": "Chunk", "chunks": 3, "index": 1, "dim": 2}),
    # timm's BatchNormAct2d: its activation keeps its input (SiLU), its output (ReLU) or nothing
    *[
        ([3, 6, 6], {"type": "BatchNormAct2d", "act": act})
        for act in ("ReLU", "SiLU", "Sigmoid", "GELU", None)
    ],
    ([3, 6, 6], {"type": "BatchNormAct2d", "act": "Hardswish", "affine": False}),
    ([4, 6, 6], {"type": "LayerNorm2d"}),
    ([4, 6, 6], {"type": "Permute", "dims": [0, 2, 3, 1]}),
    ([4, 6, 6], {"type": "Parameter", "shape": [4, 1, 1], "value": 1.0}),  # the output: a parameter
]
for _nd, _shape in ((1, [3, 8]), (2, [3, 6, 6]), (3, [3, 4, 4, 4])):
    CASES += [
        (_shape, {"type": f"Conv{_nd}d", "out_channels": 2, "kernel_size": 3, "padding": 1}),
        (_shape, {"type": f"ConvTranspose{_nd}d", "out_channels": 2, "kernel_size": 3, "stride": 2}),
        (_shape, {"type": f"MaxPool{_nd}d", "kernel_size": 2}),
        (_shape, {"type": f"AvgPool{_nd}d", "kernel_size": 2}),
        (_shape, {"type": f"AdaptiveAvgPool{_nd}d", "output_size": 1}),
        (_shape, {"type": f"AdaptiveAvgPool{_nd}d", "output_size": 3}),
        (_shape, {"type": f"AdaptiveMaxPool{_nd}d", "output_size": 1}),
        (_shape, {"type": f"AdaptiveMaxPool{_nd}d", "output_size": 3}),
        (_shape, {"type": f"BatchNorm{_nd}d"}),
        (_shape, {"type": f"BatchNorm{_nd}d", "affine": False, "track_running_stats": False}),
        (_shape, {"type": f"InstanceNorm{_nd}d"}),
        (_shape, {"type": f"InstanceNorm{_nd}d", "affine": True, "track_running_stats": True}),
        (_shape, {"type": f"Dropout{_nd}d"}),
        (_shape, {"type": "Dropout"}),
        *[
            (
                _shape,
                {"type": f"{kind}Pad{_nd}d", "padding": 1, **({"value": 2.0} if kind == "Constant" else {})},
            )
            for kind in ("Zero", "Constant", "Reflection", "Replication")
        ],  # fmt: skip
        (_shape, {"type": f"ZeroPad{_nd}d", "padding": -1}),
    ]
CASES += [  # merges: two or three inputs, one of them the network input (no gradient)
    ([3, 6, 6], {"type": "Add", "inputs": ["front", "input"]}),
    ([3, 6, 6], {"type": "Cat", "inputs": ["front", "input"]}),
    ([3, 6, 6], {"type": "Mul", "inputs": ["input", "front"]}),
    ([3, 6, 6], {"type": "Mul", "inputs": ["front", "front", "input"]}),
]
_MODES = [("float32", False), ("bfloat16", False), ("float16", False), ("float32", True)]


def test_the_cases_cover_every_layer_type():
    assert {layer["type"] for _, layer in CASES} == set(REGISTRY)


def _case_network(shape: list[int], layer: dict, front: bool) -> S.Network:
    if len(shape) == 1:
        conv = {"type": "Linear", "out_features": shape[0]}
    else:
        conv = {"type": f"Conv{len(shape) - 1}d", "out_channels": shape[0], "kernel_size": 1}
    layers = [{**conv, "name": "front"}] if front or "inputs" in layer else []
    return S.network_from_data({"name": "case", "input": shape, "layers": [*layers, {**layer, "name": "L"}]})


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning")  # Dropout2d on a (C, L) input warns
@pytest.mark.parametrize("mode", _MODES, ids=lambda m: "amp" if m[1] else m[0])
def test_every_layer_type_matches_torch(mode):
    dtype, amp = mode
    failures, unsupported = [], []
    for shape, layer in CASES:
        for front in (True, False):
            network = _case_network(shape, layer, front)
            memory = M.training_memory(analyze(network), "adam", dtype, amp)
            if dtype == "float32" and not amp:  # the state rules per type (parameter tensors, buffers)
                state = measure_state(network, ("adam",))
                mine = (memory.buffer_bytes, memory.grad_bytes, {"adam": memory.optimizer_bytes})
                if mine != state:
                    failures.append(f"{layer} front={front}: buffers, grads, Adam {mine} vs {state}")
            for batch in BATCHES:
                try:
                    theirs = measure_saved(network, batch, dtype, amp)
                except NotImplementedError:  # e.g. avg_pool3d has no bfloat16 kernel on CPU
                    unsupported.append(layer["type"])
                    break
                if memory.saved_bytes(batch) != theirs:
                    failures.append(
                        f"{layer} front={front} batch {batch}: {memory.saved_bytes(batch)} vs {theirs}"
                    )
    assert not failures, "\n".join(failures)
    assert set(unsupported) <= {"AvgPool3d"} and (dtype == "float32") == (not unsupported)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])  # fmt: skip
@given(graphs(), st.sampled_from(_MODES))
def test_random_graphs_match_torch(data, mode):
    network = S.network_from_data(data)
    dtype, amp = mode
    memory = M.training_memory(analyze(network), "sgd", dtype, amp)
    for batch in BATCHES:
        try:
            measured = measure_saved(network, batch, dtype, amp)
        except NotImplementedError:  # avg_pool3d has no bfloat16/float16 kernel on CPU
            reject()
        assert memory.saved_bytes(batch) == measured, (batch, mode)
    buffers, grads, states = measure_state(network, ("adam",), dtype)
    assert memory.grad_bytes == grads and memory.buffer_bytes == buffers
    assert M.training_memory(analyze(network), "adam", dtype, amp).optimizer_bytes == states["adam"]


def test_lenet_by_hand():
    """LeNet at batch 1, counted from its architecture (not from the code under test): conv1
    keeps the 1×28×28 input; each ReLU its output (6×24×24, 16×8×8, 120, 84); each max pool its
    int64 indices (6×12×12, 16×4×4); conv2 the first pool's output 6×12×12; f5 the flattened
    second pool's 256 (a view of it); f6 and the last Linear the ReLU outputs, already kept."""
    elements = 28 * 28 + 6 * 24 * 24 + 6 * 12 * 12 + 16 * 8 * 8 + 16 * 4 * 4 + 120 + 84
    indices = 6 * 12 * 12 + 16 * 4 * 4
    memory = M.training_memory(analyze(_load(str(SPECS / "lenet.yaml"))), "adam")
    assert memory.saved_bytes(1) == 4 * elements + 8 * indices
    params = 6 * 25 + 6 + 16 * 6 * 25 + 16 + 256 * 120 + 120 + 120 * 84 + 84 + 84 * 10 + 10
    assert memory.param_bytes == memory.grad_bytes == 4 * params
    assert memory.optimizer_bytes == 2 * 4 * params + 4 * 10  # 10 parameter tensors, a step each


def test_peak_is_affine_and_the_budget_is_solved():
    memory = M.training_memory(analyze(_load(str(SPECS / "resnet18.yaml"))), "adamw")
    fixed, slope = memory.training_peak(0), memory.per_sample_peak
    assert all(memory.training_peak(b) == fixed + slope * b for b in (1, 7, 300))
    budget = M.parse_bytes("8GiB")
    largest = memory.largest_batch(budget)
    assert memory.training_peak(largest) <= budget < memory.training_peak(largest + 1)
    with pytest.raises(ConvcalcError, match="smaller than the parameters.*by "):
        memory.largest_batch(memory.param_bytes)
    with pytest.raises(ConvcalcError, match="one sample needs"):
        memory.largest_batch(fixed + slope - 1)


@pytest.mark.parametrize(
    "text, value",
    [("8GiB", 8 * 2**30), ("500MB", 500 * 10**6), ("1024", 1024), ("1.5 KiB", 1536), ("3kb", 3000),
     ("2 TiB", 2 * 2**40), ("7B", 7)],
)  # fmt: skip
def test_parse_bytes(text, value):
    assert M.parse_bytes(text) == value


@pytest.mark.parametrize("text", ["", "GiB", "8 GB of RAM", "-1GB", "8XB", "0", "1e9"])
def test_parse_bytes_rejects(text):
    with pytest.raises(ConvcalcError, match="--budget"):
        M.parse_bytes(text)


def test_default_batch_is_trains():
    from convcalc.train import TrainConfig

    assert M.DEFAULT_BATCH == TrainConfig().batch_size


# --------------------------------------------------------------------------------------
# The command


def test_cli_table_and_totals(cli):
    result = cli("memory", "specs/lenet.yaml", "--batch-size", "4")
    assert result.returncode == 0, result.stderr
    for text in ("saved for backward at batch 4", "indices (int64)", "Optimizer state:", "Training peak:",
                 "Inference peak:", "indices (int64), output of relu_0 (counted above)"):  # fmt: skip
        assert text in result.stdout


def test_cli_json_adds_up(cli):
    result = cli(
        "memory", "specs/se_resnet.yaml", "--json", "--batch-size", "3", "--optimizer", "sgd-momentum"
    )
    data = json.loads(result.stdout)
    network = _load(str(SPECS / "se_resnet.yaml"))
    assert data["saved_bytes"] == measure_saved(network, 3)
    assert data["saved_bytes"] == sum(layer["saved_bytes"] for layer in data["layers"])
    assert data["optimizer_bytes"] == measure_state(network, ("sgd-momentum",))[2]["sgd-momentum"]
    parts = ("param_bytes", "buffer_bytes", "grad_bytes", "optimizer_bytes", "saved_bytes", "transient_bytes")
    assert data["training_peak_bytes"] == sum(data[key] for key in parts)


@pytest.mark.slow
def test_cli_budget_and_curve(cli, tmp_path):
    png = tmp_path / "curve.png"
    result = cli("memory", "specs/lenet.yaml", "--budget", "64MiB", "--json", "-o", str(png))
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    largest = data["largest_batch_size"]
    peaks = {}
    for batch in (largest, largest + 1):  # the peak at those batches, from the command itself
        peaks[batch] = json.loads(
            cli("memory", "specs/lenet.yaml", "--json", "--batch-size", str(batch)).stdout
        )
    assert peaks[largest]["training_peak_bytes"] <= 64 * 2**20 < peaks[largest + 1]["training_peak_bytes"]
    curve = {p["batch_size"]: p["training_peak_bytes"] for p in data["curve"]}
    assert curve[largest] == peaks[largest]["training_peak_bytes"] and 1 in curve
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list(tmp_path.iterdir()) == [png]  # nothing half-written beside it


@pytest.mark.parametrize(
    "args, message",
    [
        (["--budget", "lots"], "--budget 'lots': not a size"),
        (["--budget", "10KiB"], "smaller than the parameters"),
        (["-o", "x.png"], "give --budget too"),
        (["--amp", "--dtype", "bfloat16"], "--amp keeps float32 parameters"),
        (["--budget", "1GiB", "-o", "/no/such/folder/x.png"], "folder /no/such/folder does not exist; fix:"),
        (["--budget", "1GiB", "-o", "curve.svg"], "ending in .png"),
    ],
)
def test_cli_errors(cli, args, message, tmp_path):
    result = cli("memory", str(SPECS / "lenet.yaml"), *args, cwd=tmp_path)
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_cli_budget_gap_is_named(cli):
    memory = M.training_memory(analyze(_load(str(SPECS / "lenet.yaml"))), "adam")
    short = memory.state_bytes - 1000
    result = cli("memory", "specs/lenet.yaml", "--budget", str(short))
    assert result.returncode == 1 and "by 1,000 B" in result.stderr


def test_cli_needs_no_torch(cli):
    code = ("import sys; from convcalc.cli import main\n"
            "try: main(['memory', 'specs/lenet.yaml', '--json'])\n"
            "except SystemExit: pass\n"
            "assert 'torch' not in sys.modules, 'torch was imported'")  # fmt: skip
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=SPECS.parent)
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_check_memory(cli):
    result = cli("check", "specs/lenet.yaml", "--memory", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    quantities = {c["quantity"] for c in json.loads(result.stdout)["network"]}
    assert {
        "saved activation bytes, batch 2",
        "gradient bytes",
        "optimizer state bytes (adamw)",
    } <= quantities


def test_inference_peak_of_a_chain():
    """A plain stack frees each tensor after the next layer: the fullest step holds the input
    (the caller keeps it), one layer's input and its output."""
    network = S.network_from_data({"name": "chain", "input": [1, 8, 8], "layers": [
        {"type": "Conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},  # 4×8×8
        {"type": "Conv2d", "out_channels": 2, "kernel_size": 3, "padding": 1},  # 2×8×8
    ]})  # fmt: skip
    memory = M.training_memory(analyze(network))
    assert memory.inference_per_sample == 4 * (64 + 4 * 64 + 2 * 64)
    assert memory.inference_peak(2) == memory.param_bytes + 2 * 4 * (64 + 256 + 128)
    assert math.isclose(memory.inference_peak(0), memory.param_bytes)


def test_torch_sees_the_same_network_input():
    """The network input is kept by the first conv (it does not need a gradient, but its
    weight does): the engine counts it, and torch's record holds its storage."""
    network = S.network_from_data({"name": "one", "input": [3, 5, 5], "layers": [
        {"type": "Conv2d", "out_channels": 2, "kernel_size": 5}]})  # fmt: skip
    assert measure_saved(network, 2) == 2 * 3 * 25 * 4
    assert M.training_memory(analyze(network)).saved_bytes(2) == 2 * 3 * 25 * 4
    assert torch.is_grad_enabled()


@pytest.mark.slow
def test_cli_target(cli, tmp_path):
    """A ``package.module:name`` TARGET is imported (as for ``convcalc import``) and measured."""
    (tmp_path / "tiny_nets.py").write_text(
        "from torch import nn\n\n\n"
        "class Net(nn.Sequential):\n"
        "    def __init__(self):\n"
        "        super().__init__(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),\n"
        "                         nn.Flatten(), nn.Linear(36, 3))\n"
    )
    target = f"{tmp_path / 'tiny_nets.py'}:Net"
    result = cli("memory", target, "--input", "1x8x8", "--json", "--batch-size", "3")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["saved_bytes"] == measure_saved(_load(target, (1, 8, 8)), 3)


def test_cli_impossible_spec(cli):
    spec = "name: bad\ninput: [1, 4, 4]\nlayers:\n  - {type: Conv2d, out_channels: 2, kernel_size: 5}\n"
    result = cli("memory", "-", stdin=spec)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "layer 0" in result.stderr and "below 1" in result.stderr


def test_forward_transient():
    """A pool on a large input: the input (the caller's, which no conv keeps) and the conv's
    output are alive and unsaved at the conv; its gradient pair is only the 64-element output's
    (the pool's output needs no gradient). So the transient is the forward's: 4,096 + 64."""
    network = S.network_from_data({"name": "pool_first", "input": [1, 64, 64], "layers": [
        {"type": "MaxPool2d", "kernel_size": 8, "name": "pool"},
        {"type": "Conv2d", "out_channels": 1, "kernel_size": 1, "name": "conv"},
    ]})  # fmt: skip
    memory = M.training_memory(analyze(network))
    assert memory.saved_bytes(1) == 4 * 64 == measure_saved(network, 2) // 2
    assert memory.transient_bytes(3) == 3 * 4 * (4096 + 64)
    assert memory.transient_where == "forward at conv"


def test_mul_of_three_broadcasts_its_partial_product():
    """(2, 1, 5) · (2, 4, 1) · (2, 4, 5): the first product is a new 2×4×5 tensor, which the
    second product keeps (its partner needs a gradient)."""
    network = S.network_from_data({"name": "mul3", "input": [2, 4, 5], "layers": [
        {"type": "Conv2d", "out_channels": 2, "kernel_size": 1, "name": "c"},
        {"type": "AdaptiveAvgPool2d", "output_size": [1, None], "name": "rows"},
        {"type": "AdaptiveAvgPool2d", "output_size": [None, 1], "inputs": "c", "name": "cols"},
        {"type": "Mul", "inputs": ["rows", "cols", "c"], "name": "m"},
    ]})  # fmt: skip
    memory = M.training_memory(analyze(network))
    for batch in BATCHES:
        assert memory.saved_bytes(batch) == measure_saved(network, batch)
    assert any(t.what == "partial product" and t.per_sample == 40 for t in memory.saved)
