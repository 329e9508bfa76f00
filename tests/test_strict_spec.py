"""The spec accepts what torch accepts, and no more than it claims (issue 17).

Torch decides: each value the issue found refused is built as the real ``torch.nn`` module and
run, and ``check`` compares the engine with it; ConvTranspose2d ``dilation: 0`` stays refused
because torch refuses it at forward. Bool fields take only true/false, and the size options
(``--input``, ``solve --in``, ``rf --unit``) only ASCII digits.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from convcalc import spec as S
from convcalc.check import check
from convcalc.engine import analyze
from convcalc.errors import SpecError
from tests.conftest import run_cli

ACCEPTED = {  # the layer as the spec writes it -> the torch module it must equal
    "BatchNorm2d momentum: null": (
        {"type": "BatchNorm2d", "momentum": None},
        nn.BatchNorm2d(3, momentum=None),
    ),
    "AdaptiveAvgPool2d output_size: [null, 3]": (
        {"type": "AdaptiveAvgPool2d", "output_size": [None, 3]},
        nn.AdaptiveAvgPool2d((None, 3)),
    ),
}


def network(layer: dict, input_shape=(3, 8, 8)) -> S.Network:
    return S.network_from_data({"name": "t", "input": list(input_shape), "layers": [layer]}, "t.yaml", [4])


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_what_torch_accepts_is_accepted_and_checks(case):
    layer, module = ACCEPTED[case]
    net = network(layer)
    report = check(net)
    assert report.ok, "\n".join(str(c) for c in report.mismatches)
    expected = module(torch.zeros(2, 3, 8, 8)).shape[1:]
    assert report.analysis.output_shape == tuple(expected)


@pytest.mark.parametrize("nd", [1, 2])
def test_batchnorm_eps_zero_is_refused_because_torch_refuses_it_when_training(nd):
    module = getattr(nn, f"BatchNorm{nd}d")(3, eps=0)
    x = torch.randn(2, 3, 4) if nd == 1 else torch.randn(2, 3, 4, 4)
    with pytest.raises(ValueError, match="eps must be positive during training"):
        module(x)
    module.eval()(x)  # eval runs: the spec's field itself is valid, the network is not trainable
    analysis = analyze(network({"type": f"BatchNorm{nd}d", "eps": 0}, tuple(x.shape[1:])))
    assert [p.message for p in analysis.errors] == ["eps=0: torch's batch_norm refuses it when training"]


def test_momentum_null_keeps_a_cumulative_average_in_the_built_model():
    from convcalc.build import build_model

    model = build_model(network({"type": "BatchNorm2d", "momentum": None}))
    assert model[0].momentum is None


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_transposed_dilation_zero_is_refused_because_torch_refuses_it(nd):
    module = getattr(nn, f"ConvTranspose{nd}d")(1, 1, 3, dilation=0)
    with pytest.raises(RuntimeError, match="dilation should be greater than zero"):
        module(torch.zeros(1, 1, *(4,) * nd))
    shape = (1, *(4,) * nd)
    with pytest.raises(SpecError, match="dilation"):
        network({"type": f"ConvTranspose{nd}d", "out_channels": 1, "kernel_size": 3, "dilation": 0}, shape)


@pytest.mark.parametrize("value", ["yes", 1, "true", 0, "1"])
@pytest.mark.parametrize("field", ["bias", "ceil_mode"])
def test_bool_fields_take_only_true_and_false(field, value):
    layer = {"type": "Conv2d", "out_channels": 2, "kernel_size": 3, "bias": value}
    if field == "ceil_mode":
        layer = {"type": "MaxPool2d", "kernel_size": 2, "ceil_mode": value}
    with pytest.raises(SpecError, match=field):
        network(layer)


@pytest.mark.parametrize("quoted", ['"yes"', "1"])
def test_the_shape_command_refuses_a_non_bool(tmp_path, quoted):
    path = tmp_path / "t.yaml"
    layer = f"{{type: Conv2d, out_channels: 2, kernel_size: 3, bias: {quoted}}}"
    path.write_text(f"name: t\ninput: [3, 8, 8]\nlayers:\n  - {layer}\n")
    result = run_cli("shape", str(path))
    assert result.returncode == 1
    assert "field 'bias'" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "value", ["1_0x28x28", "２８x28", "1x28x２８", " 1x28x28", "1x28x28 ", "+1x28x28", "1x٢٨x28"]
)
def test_input_takes_ascii_digits_only(value):
    assert int("1_0") == 10 and int("２８") == 28  # what int() alone would have let through
    result = run_cli("shape", "specs/lenet.yaml", "--input", value)
    assert result.returncode == 1
    # one line naming the option (click's usage path said "Invalid value" without naming it)
    assert result.stderr.startswith(f"error: --input {value!r}: ") and result.stderr.count("\n") == 1
    assert "positive integers" in result.stderr


def test_input_still_takes_sizes():
    result = run_cli("shape", "specs/lenet.yaml", "--input", "1x32x32", "--json")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("value", ["2_8", "２８", "28x3_2"])
def test_solve_in_takes_ascii_digits_only(value):
    result = run_cli("solve", "--in", value, "--out", "14")
    assert result.returncode == 1
    assert "is not a size" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("value", ["1_0,3", "１,3", "1,3 ,"])
def test_rf_unit_takes_ascii_digits_only(value):
    from convcalc.errors import ConvcalcError
    from convcalc.rf import parse_unit

    row = analyze(S.load_spec("specs/lenet.yaml")).rows[0]
    assert parse_unit("10,3", row) == (10, 3)
    with pytest.raises(ConvcalcError, match="give 2 integers"):
        parse_unit(value, row)
