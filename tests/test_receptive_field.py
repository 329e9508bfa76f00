"""Receptive fields against a gradient probe (issue 2): torch decides which pixels a unit sees.

Hypothesis draws conv/pool stacks (kernel, stride, padding incl. same/valid, dilation, ceil_mode,
non-square) on random inputs. ``probe_fields`` backpropagates from single output units through
a positive-weight, single-channel float64 copy of the stack; the engine says unit i's field on
an axis spans start + i·jump ± (size−1)/2. An end of that span inside the input must be exactly
the probe's end; an end outside the input is clipped (the probe's end then lies inside the
clipped span: a dilated or strided field has holes, so the first pixel reached can sit a little
inside the edge). For units whose whole span is inside the input, size and start are therefore
checked exactly.

The probe itself is checked against the real torch.nn modules: with all-ones weights and
nonnegative inputs, a one-hot input pixel reaches exactly the output units that see it, max
pools included, so the connectivity of the real stack must equal the probe's.
"""

from __future__ import annotations

from unittest import mock

import pytest
import torch
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from torch import nn

from convcalc import engine
from convcalc import spec as S
from convcalc.build import module_kwargs
from convcalc.check import check, probe_fields
from convcalc.engine import RF, analyze

torch.set_num_threads(1)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def pairs(elements):
    return st.one_of(elements, st.tuples(elements, elements))


@st.composite
def conv(draw):
    return S.Conv2d(
        out_channels=draw(st.integers(1, 3)),
        kernel_size=draw(pairs(st.integers(1, 5))),
        stride=draw(pairs(st.integers(1, 3))),
        padding=draw(st.one_of(pairs(st.integers(0, 3)), st.sampled_from(["same", "valid"]))),
        dilation=draw(pairs(st.integers(1, 3))),
    )


@st.composite
def pool(draw):
    k = draw(st.tuples(st.integers(1, 4), st.integers(1, 4)))
    padding = (draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2)))
    stride = draw(st.none() | pairs(st.integers(1, 3)))
    ceil_mode = draw(st.booleans())
    if draw(st.booleans()):
        return S.MaxPool2d(kernel_size=k, stride=stride, padding=padding, ceil_mode=ceil_mode,
                           dilation=draw(pairs(st.integers(1, 3))))  # fmt: skip
    return S.AvgPool2d(kernel_size=k, stride=stride, padding=padding, ceil_mode=ceil_mode,
                       count_include_pad=draw(st.booleans()))  # fmt: skip


@st.composite
def stacks(draw, max_size: int = 40):
    layers = draw(st.lists(st.one_of(conv(), pool()), min_size=1, max_size=5))
    size = (draw(st.integers(4, max_size)), draw(st.integers(4, max_size)))
    network = S.Network(name="drawn", input=(1, *size), layers=layers)
    analysis = analyze(network)
    assume(analysis.ok)  # stacks the engine rejects (output below 1, ...) have no fields
    return network, analysis


def span(rf, i: int) -> tuple[float, float]:
    """The engine's field of unit i on one axis: start + i·jump ± (size−1)/2."""
    centre = rf.start + i * rf.jump
    return centre - (rf.size - 1) / 2, centre + (rf.size - 1) / 2


def units_on_axis(rf, out: int, n: int) -> list[int]:
    """The first and last unit, and the first and last whose whole field lies inside the input."""
    inside = [i for i in range(out) if rf.start + i * rf.jump - (rf.size - 1) / 2 >= 0
              and rf.start + i * rf.jump + (rf.size - 1) / 2 <= n - 1]  # fmt: skip
    return sorted({0, out - 1, *inside[:1], *inside[-1:]})


@SETTINGS
@given(stacks())
def test_engine_fields_match_the_gradient_probe(drawn):
    network, analysis = drawn
    n = network.input[1:]
    wanted = {}
    for row in analysis.rows:
        per_axis = [units_on_axis(row.receptive_field[a], row.output_shape[1 + a], n[a]) for a in (0, 1)]
        wanted[row.index] = [(i, j) for i in per_axis[0] for j in per_axis[1]]
    fields = probe_fields(network, wanted)
    exact_units = 0  # units whose size and start were checked exactly
    for row in analysis.rows:
        for unit, field in zip(wanted[row.index], fields[row.index], strict=True):
            if field is None:  # no pixel reached: only for a unit not inside the input on some axis
                spans = [span(row.receptive_field[a], unit[a]) for a in (0, 1)]
                assert any(lo < 0 or hi > n[a] - 1 for a, (lo, hi) in enumerate(spans)), f"{row.index} {unit}"
                continue
            for a in (0, 1):
                rf, (first, last) = row.receptive_field[a], field[a]
                centre = rf.start + unit[a] * rf.jump
                lo, hi = span(rf, unit[a])
                where = f"layer {row.index} axis {a} unit {unit[a]}: engine {(lo, hi)} torch {(first, last)}"
                assert first == lo if lo >= 0 else first >= 0, where
                assert last == hi if hi <= n[a] - 1 else last <= n[a] - 1, where
                if lo >= 0 and hi <= n[a] - 1:
                    exact_units += 1
                    assert last - first + 1 == rf.size, where
                    assert (first + last) / 2 == centre, where
    event(f"units checked exactly: {'some' if exact_units else 'none (every field clipped)'}")


def real_reach(network: S.Network, analysis) -> list[torch.Tensor]:
    """Per layer, a (H·W input pixels, output H·W) boolean matrix: which units each pixel reaches
    through the real torch.nn modules (one channel, all-ones weights, no bias)."""
    _, h, w = network.input
    x = torch.eye(h * w, dtype=torch.float64).reshape(h * w, 1, h, w)
    reach = []
    with torch.no_grad():
        for row in analysis.rows:
            kwargs = module_kwargs(row.layer, {})
            if row.type == "Conv2d":
                kwargs.update(in_channels=1, out_channels=1, bias=False)
            module = getattr(nn, row.type)(**kwargs).double()
            if row.type == "Conv2d":
                module.weight.fill_(1.0)
            x = module(x)
            reach.append((x[:, 0] > 0).reshape(h * w, -1))
    return reach


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stacks(max_size=14))
def test_probe_connects_exactly_what_the_real_modules_connect(drawn):
    network, analysis = drawn
    reach = real_reach(network, analysis)
    _, h, w = network.input
    for row, real in zip(analysis.rows, reach, strict=True):
        oh, ow = row.output_shape[1:]
        units = [(i, j) for i in range(oh) for j in range(ow)]
        fields = probe_fields(network, {row.index: units})[row.index]
        for u, field in enumerate(fields):
            pixels = real[:, u].nonzero().flatten()
            rows, cols = pixels // w, pixels % w
            expected = (
                ((int(rows.min()), int(rows.max())), (int(cols.min()), int(cols.max())))
                if len(pixels)
                else None
            )
            assert field == expected, (
                f"layer {row.index} ({row.layer!r}) unit {units[u]}: probe {field}, torch {expected}"
            )


@pytest.mark.parametrize("dim", [2, 3, -1, -2])
def test_softmax_over_a_spatial_axis_sees_that_whole_axis(dim):
    network = S.Network(input=(1, 8, 9), layers=[S.Conv2d(out_channels=2, kernel_size=3), S.Softmax(dim=dim)])
    report = check(network)
    assert report.ok, "\n".join(str(c) for c in report.mismatches)
    axis = dim % 4 - 2
    assert report.analysis.rows[1].receptive_field[axis].size == (8, 9)[axis]
    assert report.analysis.rows[1].receptive_field[1 - axis].size == 3


@pytest.mark.parametrize(
    ("unflattened", "spatial"),
    [((4, 196), S.Conv1d(out_channels=2, kernel_size=3)), ((1, 4, 14, 14), S.MaxPool3d(kernel_size=2)),
     ((1, 2, 2, 196), S.Conv3d(out_channels=1, kernel_size=(1, 1, 3))),
     ((4, 196), S.AvgPool1d(kernel_size=4)), ((4, 196), S.Upsample(scale_factor=2))],
)  # fmt: skip
def test_layers_on_axes_that_are_not_the_inputs_keep_the_union(unflattened, spatial):
    """Flatten, then Unflatten to another number of spatial axes: the units already see the
    union of the input, and so do the units of a conv or pool on those axes (this raised an
    IndexError inside the engine); the gradient probe agrees."""
    network = S.Network(
        input=(1, 28, 28), layers=[S.Flatten(), S.Unflatten(dim=1, unflattened_size=unflattened), spatial]
    )
    report = check(network)
    assert report.ok, "\n".join(str(c) for c in report.mismatches)
    assert report.analysis.rows[2].receptive_field == report.analysis.rows[1].receptive_field
    assert [r.size for r in report.analysis.rows[2].receptive_field] == [28, 28]


@pytest.mark.parametrize(("n", "out"), [(1, 2), (5, 3), (7, 4), (13, 5), (6, 4)])
def test_adaptive_pool_first_and_last_windows_are_exact(n, out):
    """Uneven adaptive windows: the engine's size is an upper bound, but the first and the last
    unit's fields (centre ± (size−1)/2 around the true window centres) must contain the probe's."""
    network = S.Network(input=(1, n, n), layers=[S.AdaptiveAvgPool2d(output_size=out)])
    rf = analyze(network).rows[0].receptive_field[0]
    fields = probe_fields(network, {0: [(0, 0), (out - 1, out - 1)]})[0]
    for unit, got in zip((0, out - 1), fields, strict=True):
        lo, hi = got[0]
        centre = rf.start + unit * rf.jump
        assert centre == (lo + hi) / 2, f"unit {unit}: engine centre {centre}, torch field {lo}..{hi}"
        assert hi - lo + 1 <= rf.size


def window_slack_by_definition(n: int, out: int) -> float:
    """rf_adaptive's slack straight from its definition: over every run of neighbouring units
    j..i, the distance between the farthest input pixels their windows see, minus (i−j)·step."""
    windows = [engine.adaptive_window(n, out, i) for i in range(out)]
    first_end = windows[0][1]
    step = ((n - first_end + n - 1) / 2 - (first_end - 1) / 2) / (out - 1)
    return max(
        max(windows[k][1] - 1 for k in range(j, i + 1))
        - min(windows[k][0] for k in range(j, i + 1))
        - (i - j) * step
        for j in range(out)
        for i in range(j, out)
    )


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 60), st.integers(2, 60))
def test_adaptive_slack_is_its_definition_and_the_closed_form_bounds_it(n, out):
    exact = engine.rf_adaptive(RF(1, 1, 0.0), n, out).size - 1
    assert exact == pytest.approx(window_slack_by_definition(n, out), abs=1e-9)
    with mock.patch.object(engine, "EXACT_STEPS", 0):
        bound = engine.rf_adaptive(RF(1, 1, 0.0), n, out).size - 1
    assert bound >= exact - 1e-9 and (bound == exact if n % out == 0 else bound <= -(-n // out) + 1)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 7), st.integers(1, 6), st.integers(0, 6), st.integers(1, 3))
def test_transposed_closed_form_bound_holds(k, s, p, d):
    exact = engine.rf_transposed(RF(1, 1, 0.0), k, s, p, d)
    with mock.patch.object(engine, "EXACT_STEPS", 0):
        bound = engine.rf_transposed(RF(1, 1, 0.0), k, s, p, d)
    assert (bound.jump, bound.start) == (exact.jump, exact.start)
    assert bound.size >= exact.size - 1e-9


def test_huge_windows_take_the_closed_form():
    """An output_size or stride typed into the TUI one digit at a time must not stall it: these
    are computed in closed form (the window-by-window work would take hours)."""
    wide = S.Network(input=(1, 12, 12), layers=[S.AdaptiveAvgPool2d(output_size=10**9)])
    assert analyze(wide).rows[0].receptive_field[0].size == 3  # r = 1 + slack, slack < ⌈12/10⁹⌉ + 1
    strided = S.Network(
        input=(1, 4, 4), layers=[S.ConvTranspose2d(out_channels=1, kernel_size=3, stride=10**6)]
    )
    assert analyze(strided).rows[0].receptive_field[0].size == 1 + 2 / 10**6
