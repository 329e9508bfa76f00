"""The training model (convcalc.fastpath): ReLU → MaxPool run as MaxPool → ReLU must give the
unmodified model's outputs and parameter gradients, share its weights, and leave alone what it
cannot prove the same (a ReLU read twice, another pool, another activation).

Exactness, ties included: the tests fill the weights, inputs and output gradients with small
integers, so every value is an exact integer in float32 (no rounding, whatever order a kernel
sums in) and a pooling window often holds equal maxima or only values <= 0: the cases where
choosing the wrong element of a window would show. ``torch.equal`` then decides.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch import nn

from convcalc import fastpath
from convcalc import spec as S
from convcalc import train as training
from convcalc.build import GraphModule, build_model
from convcalc.data import write_dataset
from convcalc.engine import analyze
from convcalc.spec import load_spec
from convcalc.train import TrainConfig, train
from tests.conftest import SPECS
from tests.test_graphs_vs_torch import graphs
from tests.test_train import squares

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SIZES = {1: st.integers(8, 30), 2: st.integers(6, 14), 3: st.integers(4, 7)}


def integer_valued(model: nn.Module, seed: int) -> nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randint(-2, 3, p.shape, generator=generator))
    return model


def outputs_and_grads(model: nn.Module, x: torch.Tensor, grad_out: torch.Tensor):
    """The forward output and the parameters' (and a grad-requiring input's) gradients for
    upstream gradient ``grad_out``."""
    model.zero_grad(set_to_none=True)
    x.grad = None
    out = model(x)
    out.backward(grad_out)
    if x.requires_grad:
        return out.detach(), {"<input>": x.grad.clone(), **_parameter_grads(model)}
    return out.detach(), _parameter_grads(model)


def _parameter_grads(model: nn.Module) -> dict[str, torch.Tensor]:
    # a layer whose output nothing reads gets no gradient (None): both models must agree on that too
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def assert_same_results(model: nn.Module, fast: nn.Module, input_shape, seed: int = 0) -> None:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randint(-2, 3, (3, *input_shape), generator=generator).float()
    grad_out = torch.randint(-2, 3, model(x).shape, generator=generator).float()
    out, grads = outputs_and_grads(model, x, grad_out)
    fast_out, fast_grads = outputs_and_grads(fast, x, grad_out)
    assert torch.equal(out, fast_out)
    assert grads.keys() == fast_grads.keys()
    for name in grads:
        assert torch.equal(grads[name], fast_grads[name]), name


def swapped(model: nn.Module) -> list[str]:
    """Names of the in-place ReLUs the rewrite put after a max-pool, anywhere in ``model``."""
    return [name for name, m in model.named_modules() if isinstance(m, nn.ReLU) and m.inplace]


@st.composite
def pooled_stacks(draw):
    """Conv → ReLU → MaxPool (any kernel, stride, ceil_mode; padding or dilation), once or twice,
    then a Linear head, in 1-D, 2-D or 3-D."""
    nd = draw(st.sampled_from([1, 2, 2, 3]))
    size = [draw(st.integers(1, 3)), *(draw(SIZES[nd]) for _ in range(nd))]
    layers: list[dict] = []
    for _ in range(draw(st.integers(1, 2))):
        k, padding = draw(st.integers(1, 3)), draw(st.integers(0, 1))
        padding = min(padding, k // 2)
        # not padded and dilated: a window may then read padding only (left alone, see
        # test_padded_dilated_pool_is_left_alone), and torch 2.13's backward of such a window
        # corrupts the heap: the built model itself aborts the process
        dilation = 1 if padding else draw(st.integers(1, 2))
        layers += [
            {"type": f"Conv{nd}d", "out_channels": draw(st.integers(1, 4)),
             "kernel_size": draw(st.integers(1, 3))},
            {"type": "ReLU"},
            {"type": f"MaxPool{nd}d", "kernel_size": k, "stride": draw(st.integers(1, 3)),
             "padding": padding, "dilation": dilation,
             "ceil_mode": draw(st.booleans())},
        ]  # fmt: skip
    layers += [{"type": "Flatten"}, {"type": "Linear", "out_features": 3}]
    data = {"name": "stack", "input": size, "layers": layers}
    try:
        assume(analyze(S.network_from_data(data)).ok)
    except S.SpecError:
        assume(False)
    return data


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]
)
@given(pooled_stacks(), st.integers(0, 2**16))
def test_swapped_stack_gives_the_same_outputs_and_gradients(data, seed):
    network = S.network_from_data(data)
    model = integer_valued(build_model(network), seed)
    fast = fastpath.training_model(model)
    assert len(swapped(fast)) == sum(layer["type"] == "ReLU" for layer in data["layers"])
    assert not swapped(model)  # the built model is left as it was
    assert_same_results(model, fast, tuple(network.input), seed)


def test_lenet_shares_its_weights_and_state_dict():
    model = build_model(load_spec(SPECS / "lenet.yaml"))
    fast = fastpath.training_model(model)
    assert [type(m).__name__ for m in fast][:6] == [
        "Conv2d",
        "MaxPool2d",
        "ReLU",
        "Conv2d",
        "MaxPool2d",
        "ReLU",
    ]
    assert [type(m).__name__ for m in model][:3] == ["Conv2d", "ReLU", "MaxPool2d"]
    assert list(fast.state_dict()) == list(model.state_dict())
    for (name, p), (_, q) in zip(model.named_parameters(), fast.named_parameters(), strict=True):
        assert p is q, name  # the optimiser steps the built model's own tensors
    assert_same_results(integer_valued(model, 1), fast, (1, 28, 28))


def test_ties_agree_in_channels_last():
    """Training's memory format (NHWC kernels pick a window's maximum their own way) on tie-heavy
    integer data."""
    model = integer_valued(build_model(load_spec(SPECS / "lenet.yaml")), 4).to(
        memory_format=torch.channels_last
    )
    fast = fastpath.training_model(model)
    assert_same_results(model, fast, (1, 28, 28), 4)


def test_float_inputs_agree_in_channels_last():
    """Training's own setting: random float32 weights and data, channels-last, batch 128."""
    model = build_model(load_spec(SPECS / "lenet.yaml")).to(memory_format=torch.channels_last)
    fast = fastpath.training_model(model)
    x = torch.randn(128, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    grad_out = torch.randn(128, 10)
    out, grads = outputs_and_grads(model, x, grad_out)
    fast_out, fast_grads = outputs_and_grads(fast, x, grad_out)
    assert torch.equal(out, fast_out)
    for name in grads:
        torch.testing.assert_close(fast_grads[name], grads[name], rtol=1e-5, atol=1e-6)


def graph(layers: list[dict], output: str) -> S.Network:
    return S.network_from_data({"name": "g", "input": [2, 10, 10], "layers": layers, "output": output})


CONV = {"type": "Conv2d", "name": "conv", "out_channels": 3, "kernel_size": 3, "padding": 1}


def test_graph_relu_read_only_by_the_pool_is_swapped_and_the_pool_may_be_read_twice():
    network = graph(
        [CONV, {"type": "ReLU", "name": "relu"},
         {"type": "MaxPool2d", "name": "pool", "kernel_size": 2, "inputs": "relu"},
         {"type": "Conv2d", "name": "left", "out_channels": 3, "kernel_size": 1, "inputs": "pool"},
         {"type": "Add", "name": "add", "inputs": ["left", "pool"]}],
        "add",
    )  # fmt: skip
    model = integer_valued(build_model(network), 2)
    fast = fastpath.training_model(model)
    assert isinstance(fast, GraphModule) and type(fast) is type(model)
    assert swapped(fast) == ["relu"]
    assert_same_results(model, fast, (2, 10, 10), 2)


def test_a_graph_rewritten_keeps_its_parameters_views():
    """A Parameter stored (3,) and read (3, 1, 1) beside a swapped ReLU -> MaxPool: the
    rewritten graph reads it through the same view (timm's ConvNeXt gamma)."""
    network = graph(
        [CONV, {"type": "ReLU", "name": "relu"},
         {"type": "MaxPool2d", "name": "pool", "kernel_size": 2, "inputs": "relu"},
         {"type": "Parameter", "name": "gamma", "shape": [3], "view": [3, 1, 1], "std": 1.0},
         {"type": "Mul", "name": "mul", "inputs": ["pool", "gamma"]}],
        "mul",
    )  # fmt: skip
    model = integer_valued(build_model(network), 2)
    fast = fastpath.training_model(model)
    assert swapped(fast) == ["relu"] and fast._views == {"gamma": (3, 1, 1)}
    assert_same_results(model, fast, (2, 10, 10), 2)


def test_graph_relu_read_by_two_layers_is_left_alone():
    network = graph(
        [CONV, {"type": "ReLU", "name": "relu"},
         {"type": "MaxPool2d", "name": "pool", "kernel_size": 2, "inputs": "relu"},
         {"type": "Conv2d", "name": "side", "out_channels": 3, "kernel_size": 2, "stride": 2,
          "inputs": "relu"},
         {"type": "Add", "name": "add", "inputs": ["side", "pool"]}],
        "add",
    )  # fmt: skip
    model = build_model(network)
    assert fastpath.training_model(model) is model


def test_graph_relu_that_is_the_output_is_left_alone():
    layers = [CONV, {"type": "ReLU", "name": "relu"}]
    network = graph(layers, "relu")
    model = build_model(network)
    assert fastpath.training_model(model) is model


def test_padded_dilated_pool_is_left_alone():
    """Its window at -1 and 1 on a 1-wide input reads padding alone: -inf, where a ReLU after the
    pool would give 0; the rewrite must not apply. (The engine refuses such a pool in a spec, so
    the model is made in torch: the rule is also the fastpath's own.)"""
    pool = {"type": "MaxPool2d", "kernel_size": 2, "stride": 1, "padding": 1, "dilation": 2}
    refused = S.network_from_data({"name": "s", "input": [1, 1, 1], "layers": [{"type": "ReLU"}, pool]})
    assert "holds padding only" in analyze(refused).errors[0].message
    model = nn.Sequential(nn.ReLU(), nn.MaxPool2d(2, stride=1, padding=1, dilation=2))
    x = torch.ones(1, 1, 1, 1)
    assert torch.equal(model(x), torch.full((1, 1, 1, 1), -torch.inf))
    assert torch.equal(nn.Sequential(model[1], nn.ReLU())(x), torch.zeros(1, 1, 1, 1))  # swapped: wrong
    assert fastpath.training_model(model) is model


@pytest.mark.parametrize(
    "layers",
    [
        [{"type": "ReLU"}, {"type": "AvgPool2d", "kernel_size": 2}],  # relu(mean) != mean(relu)
        [{"type": "LeakyReLU"}, {"type": "MaxPool2d", "kernel_size": 2}],  # only ReLU is rewritten
        [{"type": "MaxPool2d", "kernel_size": 2}, {"type": "ReLU"}],  # already in the fast order
        [
            {"type": "ReLU"},
            {"type": "Conv2d", "out_channels": 2, "kernel_size": 1},
            {"type": "MaxPool2d", "kernel_size": 2},
        ],  # fmt: skip
    ],
)
def test_other_stacks_are_left_alone(layers):
    model = build_model(S.network_from_data({"name": "s", "input": [2, 8, 8], "layers": layers}))
    assert fastpath.training_model(model) is model


def test_nested_block_is_rewritten_inside():
    """A block's Sequential inside a graph: the chain inside it is swapped, its weights shared."""
    data = {
        "name": "nested", "input": [2, 12, 12],
        "blocks": {"Down": {"layers": [
            {"type": "Conv2d", "name": "conv", "out_channels": 3, "kernel_size": 3},
            {"type": "ReLU", "name": "relu"}, {"type": "MaxPool2d", "name": "pool", "kernel_size": 2}]}},
        "layers": [{"type": "Down", "name": "down"},
                   {"type": "Conv2d", "name": "skip", "out_channels": 3, "kernel_size": 4, "stride": 2,
                    "inputs": "input"},
                   {"type": "Add", "name": "add", "inputs": ["down", "skip"]}],
        "output": "add",
    }  # fmt: skip
    network = S.network_from_data(data)
    model = integer_valued(build_model(network), 3)
    fast = fastpath.training_model(model)
    assert swapped(fast) == ["down.relu"]
    assert fast.down.conv is model.down.conv
    assert_same_results(model, fast, (2, 12, 12), 3)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]
)
@given(graphs())
def test_random_graphs_train_the_same(data):
    """Any graph the spec allows (norms, merges, blocks, 1-3-D): the same outputs and gradients,
    the input's included (a graph may have no parameter on the way to its output)."""
    network = S.network_from_data(data)
    model = build_model(network)
    fast = fastpath.training_model(model)
    x = torch.randn(2, *network.input, generator=torch.Generator().manual_seed(0)).requires_grad_()
    out, grads = outputs_and_grads(model, x, torch.ones_like(model(x)))
    fast_out, fast_grads = outputs_and_grads(fast, x, torch.ones_like(out))
    torch.testing.assert_close(fast_out, out, rtol=0, atol=0)
    assert fast_grads.keys() == grads.keys()
    for name in grads:
        torch.testing.assert_close(fast_grads[name], grads[name], rtol=1e-5, atol=1e-6)


def test_train_ends_with_the_weights_of_the_unmodified_model(tmp_path, monkeypatch):
    """Two epochs of `train` with and without the rewrite: the same weights and accuracy."""
    rng = np.random.default_rng(0)
    folder = write_dataset(tmp_path / "digits", squares(256, rng), squares(64, rng))
    config = TrainConfig(data_dir=str(folder), epochs=2, batch_size=32, download=False, threads=1)

    def run(name: str):
        result = train(load_spec(SPECS / "lenet.yaml"), replace(config, out=str(tmp_path / name)))
        return result, training.load_checkpoint(tmp_path / name)["state_dict"]

    fast_result, fast_weights = run("fast.pt")
    monkeypatch.setattr(fastpath, "training_model", lambda model: model)
    result, weights = run("plain.pt")
    assert fast_result.test_accuracy == result.test_accuracy
    assert fast_weights.keys() == weights.keys()
    for name in weights:
        torch.testing.assert_close(fast_weights[name], weights[name], rtol=1e-4, atol=1e-5)
