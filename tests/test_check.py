"""`convcalc check`: the engine against the real model, and check's power to catch a wrong engine.

Every shipped spec and hypothesis-drawn stacks of 3 to 12 layers must pass; a deliberately wrong
engine value (monkeypatched into the analysis check reads) must be reported, naming the layer
and the quantity, with exit code 1 from the command.
"""

from __future__ import annotations

import dataclasses
import json
from unittest import mock

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import convcalc.check as check_module
from convcalc import engine
from convcalc import spec as S
from convcalc.build import BuildError, build_model
from convcalc.check import check, probe_fields, report_json, report_text
from convcalc.cli import main
from convcalc.engine import RF, analyze
from tests.conftest import SHIPPED_SPECS, SPECS, run_cli

torch.set_num_threads(1)


# seconds each
HEAVY = {"densenet121", "googlenet", "r3d_18", "resnet50", "unet", "vgg16", "alexnet", "convnext_tiny"}


@pytest.mark.parametrize(
    "path",
    [pytest.param(p, marks=pytest.mark.slow) if p.stem in HEAVY else p for p in SHIPPED_SPECS],
    ids=lambda p: p.stem,
)
def test_every_shipped_spec_passes_check(path):
    network = S.load_spec(path)
    report = check(network)
    assert report.ok, "\n".join(str(c) for c in report.mismatches)
    rf = {1: ["RF L"], 2: ["RF H", "RF W"], 3: ["RF D", "RF H", "RF W"]}[len(network.input) - 1]
    quantities = {c.quantity.split(" (")[0] for c in report.comparisons}
    assert {"output shape", "params", "buffers", "MACs", *rf, "torchinfo output shape",
            "total params", "total MACs", "torchinfo total params"} <= quantities  # fmt: skip
    for row in report.analysis.rows:  # every layer is compared on every quantity
        compared = {c.quantity.split(" (")[0] for c in report.for_layer(row.index)}
        assert compared >= {"output shape", "MACs", rf[0]}, row.name


# --------------------------------------------------------------------------------------
# Hypothesis: random valid stacks of 3 to 12 layers


def pairs(elements):
    return st.one_of(elements, st.tuples(elements, elements))


channels = st.integers(1, 4)
POINTWISE = [S.ReLU(), S.LeakyReLU(negative_slope=0.2), S.ELU(), S.GELU(), S.SiLU(), S.Tanh(), S.Sigmoid(),
             S.Identity(), S.Dropout(p=0.3), S.Softmax(dim=1), S.LogSoftmax()]  # fmt: skip


@st.composite
def spatial_layer(draw):
    kind = draw(
        st.sampled_from(["conv", "conv", "convT", "max", "avg", "adaptive", "bn", "pointwise", "drop2d"])
    )
    if kind == "conv":
        groups = draw(st.sampled_from([1, 1, 2]))
        return S.Conv2d(
            out_channels=groups * draw(channels), kernel_size=draw(pairs(st.integers(1, 5))),
            stride=draw(pairs(st.integers(1, 3))), dilation=draw(pairs(st.integers(1, 2))), groups=groups,
            padding=draw(st.one_of(pairs(st.integers(0, 2)), st.just("same"), st.just("valid"))),
            bias=draw(st.booleans()),
        )  # fmt: skip
    if kind == "convT":
        s, d = draw(pairs(st.integers(1, 3))), draw(pairs(st.integers(1, 2)))
        op = tuple(draw(st.integers(0, max(a, b) - 1)) for a, b in zip(S.pair(s), S.pair(d), strict=True))
        return S.ConvTranspose2d(
            out_channels=draw(channels), kernel_size=draw(pairs(st.integers(1, 4))), stride=s, dilation=d,
            padding=draw(pairs(st.integers(0, 2))), output_padding=op, bias=draw(st.booleans()),
        )  # fmt: skip
    if kind in ("max", "avg"):
        k = draw(st.tuples(st.integers(1, 4), st.integers(1, 4)))
        common = dict(kernel_size=k, stride=draw(st.none() | pairs(st.integers(1, 3))),
                      padding=(draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2))),
                      ceil_mode=draw(st.booleans()))  # fmt: skip
        if kind == "max":
            return S.MaxPool2d(**common, dilation=draw(pairs(st.integers(1, 2))))
        return S.AvgPool2d(**common, count_include_pad=draw(st.booleans()))
    if kind == "adaptive":
        cls = draw(st.sampled_from([S.AdaptiveAvgPool2d, S.AdaptiveMaxPool2d]))
        return cls(output_size=draw(pairs(st.integers(1, 6))))
    if kind == "bn":
        return S.BatchNorm2d(affine=draw(st.booleans()), track_running_stats=draw(st.booleans()))
    if kind == "drop2d":
        return S.Dropout2d(p=0.2)
    return draw(st.sampled_from(POINTWISE))


@st.composite
def flat_layer(draw):
    if draw(st.booleans()):
        return S.Linear(out_features=draw(st.integers(1, 12)), bias=draw(st.booleans()))
    return draw(st.sampled_from(POINTWISE))


@st.composite
def networks(draw):
    n_layers = draw(st.integers(3, 12))
    n_flat = draw(st.integers(0, n_layers - 1))  # layers after a Flatten
    layers = draw(st.lists(spatial_layer(), min_size=n_layers - n_flat, max_size=n_layers - n_flat))
    if n_flat:
        layers[-1] = S.Flatten()  # the last spatial layer's place
        layers += draw(st.lists(flat_layer(), min_size=n_flat, max_size=n_flat))
    size = (draw(st.integers(1, 4)), draw(st.integers(3, 20)), draw(st.integers(3, 20)))
    network = S.Network(name="drawn", input=size, layers=layers)
    assume(analyze(network).ok)  # stacks the engine rejects are covered by the engine's own tests
    return network


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]
)
@given(networks())
def test_drawn_stacks_pass_check(network):
    report = check(network)
    assert len(report.analysis.rows) >= 3
    assert report.ok, "\n".join(str(c) for c in report.mismatches)


@pytest.mark.parametrize("size, units", [((8, 8), 1), ((8, 12), 2), ((12, 12), 2)])
def test_each_unit_is_probed_once(size, units):
    # an 8×8 kernel on an H×W input gives (H-7)×(W-7) units, all inside the input: the units
    # probed are the first and the last (the picked ones and the corners coincide); a 1×1
    # output has one, which was compared four times over
    network = S.Network.model_validate(
        {"input": [1, *size], "layers": [{"type": "Conv2d", "out_channels": 2, "kernel_size": 8}]}
    )
    report = check(network)
    quantities = [c.quantity for c in report.for_layer(0) if c.quantity.startswith("RF")]
    assert report.ok and len(quantities) == 2 * units  # one comparison per axis per unit


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]
)
@given(networks())
def test_drawn_stacks_pass_check_with_the_closed_form_field_bounds(network):
    """Past engine.EXACT_STEPS the engine bounds uneven fields (ConvTranspose2d, adaptive pools)
    in closed form instead of window by window: torch's probe must still find them inside."""
    with mock.patch.object(engine, "EXACT_STEPS", 0):
        report = check(network)
    assert report.ok, "\n".join(str(c) for c in report.mismatches)


# --------------------------------------------------------------------------------------
# A wrong engine must be caught, by layer and quantity


def _lenet():
    return S.load_spec(SPECS / "lenet.yaml")


def _wrong_engine(monkeypatch, index: int, **changes):
    """Make check read an analysis whose row ``index`` carries ``changes``."""

    def wrong_analyze(network, input_shape=None):
        analysis = analyze(network, input_shape)
        rows = list(analysis.rows)
        rows[index] = rows[index]._replace(**changes)
        return dataclasses.replace(analysis, rows=tuple(rows))

    monkeypatch.setattr(check_module, "analyze", wrong_analyze)


def _row(index: int):
    return analyze(_lenet()).rows[index]


WRONG = {  # quantity named in the report -> the wrong value planted in layer 3 (c3) of lenet
    "MACs": lambda row: {"macs": row.macs + 1},
    "params": lambda row: {"weight_params": row.weight_params - 16},
    "buffers": lambda row: {"buffers": 1},
    "output shape": lambda row: {"output_shape": (16, 7, 8)},
    "torchinfo output shape": lambda row: {"output_shape": (16, 8, 9)},
    "RF H": lambda row: {"receptive_field": (RF(13, 2, 6.5), row.receptive_field[1])},
    "RF W": lambda row: {"receptive_field": (row.receptive_field[0], RF(14, 2, 7.0))},
}


@pytest.mark.parametrize("quantity", list(WRONG))
def test_a_wrong_engine_value_is_named(monkeypatch, quantity):
    row = _row(3)
    _wrong_engine(monkeypatch, 3, **WRONG[quantity](row))
    report = check(_lenet())
    assert not report.ok
    named = [c for c in report.mismatches if c.index == 3 and c.quantity.split(" (")[0] == quantity]
    assert named, f"no {quantity} mismatch for layer 3 in {[str(c) for c in report.mismatches]}"
    assert all(c.index == 3 or c.index is None for c in report.mismatches)  # the other layers agree
    assert str(named[0]).startswith(f"layer 3 (c3): {quantity}")


def test_the_mismatch_message_gives_both_numbers(monkeypatch):
    row = _row(3)
    _wrong_engine(monkeypatch, 3, macs=row.macs + 1)
    report = check(_lenet())
    message = f"layer 3 (c3): MACs engine {row.macs + 1:,} vs torch {row.macs:,}"
    assert message in [str(c) for c in report.mismatches]
    assert message in report_text(report)
    assert message in report_json(report)["mismatches"]


def test_a_wrong_engine_value_fails_the_command(monkeypatch, capsys):
    row = _row(3)
    _wrong_engine(monkeypatch, 3, macs=row.macs + 1)
    with pytest.raises(SystemExit) as exit_info:
        main(["check", str(SPECS / "lenet.yaml")])
    assert exit_info.value.code == 1
    out = capsys.readouterr().out
    assert "✗" in out and f"layer 3 (c3): MACs engine {row.macs + 1:,} vs torch {row.macs:,}" in out


def test_command_passes_and_json(tmp_path):
    result = run_cli("check", "specs/lenet.yaml")
    assert result.returncode == 0, result.stderr
    assert "✓" in result.stdout and "✗" not in result.stdout and "agree" in result.stdout
    result = run_cli("check", "specs/lenet.yaml", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    analysis = analyze(_lenet())
    assert data["ok"] is True and data["mismatches"] == []
    assert [layer["name"] for layer in data["layers"]] == [row.name for row in analysis.rows]
    first = {c["quantity"]: c for c in data["layers"][0]["comparisons"]}
    engine_shape = list(analysis.rows[0].output_shape)
    assert first["output shape"] == {
        "quantity": "output shape", "engine": engine_shape, "torch": engine_shape, "ok": True, "rule": "equal"
    }  # fmt: skip


def test_invalid_spec_is_a_clean_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: bad\ninput: [1, 4, 4]\nlayers:\n  - {type: Conv2d, out_channels: 2, kernel_size: 7}\n"
    )
    result = run_cli("check", str(bad))
    assert result.returncode == 1
    assert "layer 0 (conv2d_0, Conv2d)" in result.stderr and "Traceback" not in result.stderr
    with pytest.raises(BuildError):
        check(S.load_spec(bad))
    result = run_cli("check", str(tmp_path / "missing.yaml"), "--json")
    assert result.returncode == 1 and "no such file" in result.stderr and "Traceback" not in result.stderr


# --------------------------------------------------------------------------------------
# What FlopCounterMode counts, compared like with like


@pytest.mark.parametrize(
    "layer",
    [
        S.Conv2d(out_channels=6, kernel_size=3, groups=2, bias=True),
        S.ConvTranspose2d(out_channels=4, kernel_size=(3, 2), stride=2, groups=2, bias=True),
        S.Linear(out_features=5, bias=True),
        S.Linear(out_features=5, bias=False),
    ],  # fmt: skip
    ids=["conv", "conv-transpose", "linear", "linear-no-bias"],
)
def test_flop_counter_counts_two_flops_per_mac_without_bias(layer):
    """The engine's convention (bias not counted) is FlopCounterMode's: by hand, with the bias
    switched off and on, the count does not move and equals 2·MACs."""
    prefix = [S.Flatten()] if isinstance(layer, S.Linear) else []
    network = S.Network(input=(4, 6, 5), layers=[*prefix, layer])
    module = getattr(build_model(network), S.layer_names(network)[-1])
    x = torch.zeros(3, *network.input)
    counts = []
    for bias in (module.bias, None):
        module.bias = bias
        with FlopCounterMode(display=False) as counter:
            nn.Sequential(*build_model(network)[:-1], module)(x)
        counts.append(counter.get_total_flops())
    assert counts[0] == counts[1] == 2 * 3 * analyze(network).rows[-1].macs


def test_probe_union_for_flat_outputs():
    """A Linear's unit sees the union of the fields before the Flatten, clipped to the input:
    a 1×1 conv with stride 2 and padding 1 on 5 pixels sees pixels 1 and 3 only."""
    network = S.Network(input=(1, 5, 5), layers=[S.Conv2d(out_channels=1, kernel_size=1, stride=2, padding=1),
                                                 S.Flatten(), S.Linear(out_features=3)])  # fmt: skip
    fields = probe_fields(network, {0: [(0, 0), (1, 2)], 2: [None]})
    assert fields[0] == [None, ((1, 1), (3, 3))]  # unit (0, 0) sits in the padding
    assert fields[2] == [((1, 3), (1, 3))]


def test_a_pool_after_an_uneven_transposed_conv_stays_within_the_bound():
    """Found by hypothesis: neighbouring outputs of a stride-3 ConvTranspose2d can come from
    inputs a whole unit apart, so the field of a pool over them is not r + (k−1)·j/s."""
    network = S.Network(
        input=(1, 3, 3),
        layers=[
            S.AvgPool2d(kernel_size=1, stride=2),
            S.ConvTranspose2d(out_channels=1, kernel_size=(1, 3), stride=(1, 3), padding=(0, 2), bias=False),
            S.AvgPool2d(kernel_size=(1, 2)),
        ],
    )
    report = check(network)
    assert report.ok, "\n".join(str(c) for c in report.mismatches)


@pytest.mark.parametrize("command", ["check", "summary"])
def test_a_forward_larger_than_the_machine_is_refused_before_torch_allocates(command):
    result = run_cli(command, "specs/lenet.yaml", "--input", "1x100000x100000")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "needs about" in result.stderr and "GiB" in result.stderr and "smaller --input" in result.stderr
