"""Receptive fields after ops that mix a whole spatial axis (issue 17): Softmax/LogSoftmax over H
or W, LayerNorm, GroupNorm, InstanceNorm. Torch decides: ``probe_fields`` backpropagates from
every output unit of small drawn stacks, and each unit's set of input pixels must lie inside the
engine's span ``start + i·jump ± (RF−1)/2`` (rounded out to whole pixels where transposed
convolutions make it fractional); where the engine says a unit sees the whole axis, it must see
exactly that. And ``check`` must catch the rule broken on purpose (the old one: jump = RF, which
put every unit but the first outside the input).
"""

from __future__ import annotations

import itertools
import math
from unittest import mock

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from convcalc import spec as S
from convcalc.check import check, probe_fields
from convcalc.engine import analyze
from convcalc.layers import activation, base

SETTINGS = settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]
)

# The two cases: the softmax makes W (then H) whole; a 1×1 transposed conv with
# padding [1, 0] keeps the middle row, which (after the softmax) sees rows 0..2.
SOFTMAX_W = S.Network(name="softmax_w", input=(1, 4, 4), layers=[S.Softmax(dim=3)])
SOFTMAX_H_TRANSPOSED = S.Network(
    name="softmax_h_transposed",
    input=(1, 3, 1),
    layers=[S.Softmax(dim=2), S.ConvTranspose2d(out_channels=1, kernel_size=1, padding=(1, 0)), S.Flatten()],
)


def span(rf, i: int) -> tuple[float, float]:
    centre = rf.start + i * rf.jump
    return centre - (rf.size - 1) / 2, centre + (rf.size - 1) / 2


def every_unit(network: S.Network):
    """(row, unit, the probe's extent, the engine's span per axis) for every unit of every layer."""
    analysis = analyze(network)
    assert analysis.ok
    units = {
        row.index: [None]
        if len(row.output_shape) == 1
        else list(itertools.product(*(range(n) for n in row.output_shape[1:])))
        for row in analysis.rows
    }
    fields = probe_fields(network, units)
    for row in analysis.rows:
        for unit, got in zip(units[row.index], fields.get(row.index, []), strict=False):
            spans = [span(rf, 0 if unit is None else unit[a]) for a, rf in enumerate(row.receptive_field)]
            yield row, unit, got, spans


def test_softmax_over_w_makes_every_unit_see_the_whole_row():
    for row, unit, got, spans in every_unit(SOFTMAX_W):
        assert got == ((unit[0], unit[0]), (0, 3)), (row.name, unit)
        assert spans[1] == (0, 3)  # exact: columns 0..3 for every unit, (0, 1) included
        assert spans[0] == (unit[0], unit[0])
    assert check(SOFTMAX_W).ok


def test_a_transposed_conv_and_flatten_after_a_softmax_keep_the_whole_column():
    seen = {row.name: (got, spans) for row, unit, got, spans in every_unit(SOFTMAX_H_TRANSPOSED)}
    got, spans = seen["flatten_0"]
    assert got == ((0, 2), (0, 0))  # torch: rows 0..2
    assert spans[0] == (0, 2)
    assert check(SOFTMAX_H_TRANSPOSED).ok


def old_rule(rf, units, n_input):
    """The rule before issue 17: the whole axis as one unit of jump RF (as after a Flatten)."""
    return base.rf_global(rf, units, n_input)


@pytest.mark.parametrize("network", [SOFTMAX_W, SOFTMAX_H_TRANSPOSED], ids=lambda n: n.name)
def test_check_catches_the_old_rule(network):
    with mock.patch.object(activation, "rf_along", old_rule):
        report = check(network)
    assert not report.ok
    assert any(c.quantity.startswith("RF") and c.name == "softmax_0" for c in report.mismatches)


def test_check_catches_a_softmax_that_leaves_the_field_alone():
    """A rule that forgets the mixing (the field of a pointwise op) is too small: caught."""
    with mock.patch.object(activation, "rf_along", lambda rf, units, n_input: rf):
        report = check(SOFTMAX_W)
    assert not report.ok


def test_check_catches_a_misplaced_field_after_a_transposed_conv():
    """Positions after a transposed conv are a bound, but the union after a Flatten must still
    hold what torch sees: a field moved off the input is caught there."""
    from convcalc.layers import conv

    real = conv.rf_transposed

    def moved(rf, k, s, p, d):
        out = real(rf, k, s, p, d)
        return out._replace(start=out.start + 1.5)

    with mock.patch.object(conv, "rf_transposed", moved):
        report = check(SOFTMAX_H_TRANSPOSED)
    assert any(c.name == "flatten_0" and c.rule == "within" for c in report.mismatches)


# --------------------------------------------------------------------------------------
# Drawn stacks: every unit of every layer against the probe


def pairs(elements):
    return st.one_of(elements, st.tuples(elements, elements))


@st.composite
def mixing(draw):
    kind = draw(
        st.sampled_from(["Softmax", "LogSoftmax", "Softmax", "LayerNorm", "GroupNorm", "InstanceNorm"])
    )
    if kind in ("Softmax", "LogSoftmax"):
        return getattr(S, kind)(dim=draw(st.sampled_from([None, 1, 2, 3, -1, -2])))
    if kind == "GroupNorm":
        return S.GroupNorm(num_groups=1)
    if kind == "InstanceNorm":
        return S.InstanceNorm2d()
    return "LayerNorm"  # its normalized_shape depends on the shape above: filled in by `stacks`


@st.composite
def windowed(draw):
    kind = draw(st.sampled_from(["conv", "pool", "transposed"]))
    if kind == "conv":
        return S.Conv2d(out_channels=1, kernel_size=draw(pairs(st.integers(1, 3))),
                        stride=draw(pairs(st.integers(1, 2))), padding=draw(pairs(st.integers(0, 2))),
                        dilation=draw(pairs(st.integers(1, 2))))  # fmt: skip
    if kind == "pool":
        k = draw(st.tuples(st.integers(1, 3), st.integers(1, 3)))
        padding = (draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2)))
        return S.MaxPool2d(kernel_size=k, stride=draw(pairs(st.integers(1, 2))), padding=padding)
    k, stride = draw(pairs(st.integers(1, 3))), draw(pairs(st.integers(1, 3)))
    padding = draw(pairs(st.integers(0, 1)))
    return S.ConvTranspose2d(out_channels=1, kernel_size=k, stride=stride, padding=padding)


@st.composite
def stacks(draw):
    layers = draw(st.lists(st.one_of(mixing(), windowed()), min_size=1, max_size=4))
    if not any(not isinstance(layer, S._Layer) or "Softmax" in layer.type or "Norm" in layer.type
               for layer in layers):  # fmt: skip
        layers.insert(draw(st.integers(0, len(layers))), S.Softmax(dim=draw(st.sampled_from([2, 3, -1]))))
    if draw(st.booleans()):
        layers.append(S.Flatten())
    size = (1, draw(st.integers(1, 6)), draw(st.integers(1, 6)))
    built = []
    for layer in layers:  # a LayerNorm over the last dim (W) or the last two (H, W) of the shape above
        if layer == "LayerNorm":
            shape = analyze(S.Network(name="drawn", input=size, layers=built)).output_shape if built else size
            assume(shape is not None and len(shape) == 3)
            layer = S.LayerNorm(normalized_shape=list(shape[-draw(st.integers(1, 2)) :]))
        built.append(layer)
    network = S.Network(name="drawn", input=size, layers=built)
    analysis = analyze(network)
    assume(analysis.ok)
    # every unit is probed (one batch element each): keep the maps small
    assume(all(math.prod(row.output_shape) <= 144 for row in analysis.rows))
    return network


@SETTINGS
@given(stacks())
@pytest.mark.slow
def test_every_unit_sees_only_what_the_engine_says(network):
    for row, unit, got, spans in every_unit(network):
        if got is None:
            continue  # a unit whose windows lie in the padding sees nothing: any span bounds that
        for a, ((lo, hi), (p_lo, p_hi)) in enumerate(zip(spans, got, strict=True)):
            assert math.floor(lo + 1e-9) <= p_lo and p_hi <= math.ceil(hi - 1e-9), (
                f"{row.name} unit {unit} axis {a}: engine {lo}..{hi}, torch {p_lo}..{p_hi}"
            )


@SETTINGS
@given(stacks())
@pytest.mark.slow
def test_drawn_stacks_with_mixing_pass_check(network):
    report = check(network)
    assert report.ok, "\n".join(str(c) for c in report.mismatches)
