"""build_model: one torch.nn module per spec layer, named by the spec, sizes from the engine."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from convcalc import spec as S
from convcalc.build import BuildError, build_model, dummy_input, module_kwargs
from convcalc.engine import analyze
from tests.conftest import SPECS

torch.set_num_threads(1)


def test_modules_are_named_and_sized_by_the_spec():
    network = S.load_spec(SPECS / "lenet.yaml")
    analysis = analyze(network)
    model = build_model(network)
    assert [name for name, _ in model.named_children()] == [row.name for row in analysis.rows]
    assert isinstance(model.c1, nn.Conv2d) and isinstance(model.output, nn.Linear)
    for row in analysis.rows:
        module = getattr(model, row.name)
        for field, value in row.inferred.items():  # in_channels / in_features from the engine
            assert getattr(module, field) == value
    with torch.no_grad():
        out = model(dummy_input(network))
    assert tuple(out.shape) == (2, *analysis.output_shape)


def test_uninitialised_build_has_the_same_structure():
    network = S.load_spec(SPECS / "decoder.yaml")
    fresh, empty = build_model(network), build_model(network, initialize=False)
    assert {k: v.shape for k, v in fresh.state_dict().items()} == {
        k: v.shape for k, v in empty.state_dict().items()
    }
    assert all(p.device.type == "cpu" for p in empty.parameters())
    for module in empty.modules():
        if isinstance(module, nn.BatchNorm2d):  # real running statistics, so eval mode works
            assert torch.equal(module.running_var, torch.ones_like(module.running_var))
    empty.eval()
    with torch.no_grad():
        assert torch.isfinite(empty[1](torch.zeros(2, *analyze(network).rows[0].output_shape))).all()


def test_invalid_network_raises_build_error_with_the_engines_messages():
    network = S.parse_spec("input: [1, 4, 4]\nlayers:\n  - {type: Conv2d, out_channels: 2, kernel_size: 9}\n")
    with pytest.raises(BuildError) as error:
        build_model(network)
    assert str(error.value) == "\n".join(str(p) for p in analyze(network).errors)


def test_module_kwargs_are_the_constructors():
    layer = S.MaxPool2d(kernel_size=(2, 3), stride=2, ceil_mode=True, name="pool")
    kwargs = module_kwargs(layer, {})
    assert kwargs == {"kernel_size": (2, 3), "stride": 2, "padding": 0, "dilation": 1, "ceil_mode": True}
    nn.MaxPool2d(**kwargs)  # torch accepts every one of them
    assert module_kwargs(S.Linear(out_features=3), {"in_features": 7})["in_features"] == 7
