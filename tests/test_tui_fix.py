"""The designer's ``f`` key (issue 12, point 3): the engine's fix for an error applied as one undo
step; offered in the footer only while there is one. torch says which networks are broken: it
refuses the layer before the fix and builds the fixed one with the engine's shapes."""

from __future__ import annotations

import pytest

from convcalc.engine import analyze
from convcalc.spec import load_spec, network_from_data, spec_to_data
from convcalc.tui.app import ConvcalcApp
from convcalc.tui.fixes import fixable
from tests.test_tui import LENET, SIZE, pilot_test

torch = pytest.importorskip("torch")


def footer_keys(app: ConvcalcApp) -> set[str]:
    return {key.key for key in app.screen.query("FooterKey")}


def app_with(**changes) -> ConvcalcApp:
    """LeNet with ``layers`` edited: ``drop=i`` removes layer i, ``set_i={...}`` updates it."""
    data = spec_to_data(load_spec(LENET))
    for key, fields in changes.items():
        if key == "drop":
            del data["layers"][fields]
        else:
            data["layers"][int(key.removeprefix("set_"))].update(fields)
    return ConvcalcApp(network_from_data(data), None)


def torch_output(network) -> tuple[int, ...]:
    """The output shape of ``network`` built from torch.nn modules."""
    from convcalc.build import build_model

    model = build_model(network)
    with torch.no_grad():
        return tuple(model(torch.zeros(1, *network.input)).shape[1:])


@pilot_test
async def test_f_inserts_the_missing_flatten_as_one_undo_step():
    app = app_with(drop=6)  # LeNet without its Flatten: f5 (a Linear) gets 16×4×4
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        broken = app.designer.network
        with pytest.raises(RuntimeError, match="cannot be multiplied"):  # f5 on c3-s4's 16×4×4 map
            torch.nn.Linear(256, 120)(torch.zeros(1, 16, 4, 4))
        assert "f" in footer_keys(app)
        await pilot.press("f")
        await pilot.pause()
        assert app.designer.network == load_spec(LENET)  # the Flatten is back where it was
        assert torch_output(app.designer.network) == analyze(app.designer.network).output_shape == (10,)
        assert app.designer.selected == 6  # the inserted Flatten is selected
        assert "f" not in footer_keys(app)  # nothing left to fix: not offered
        await pilot.press("ctrl+z")
        await pilot.pause()
        assert app.designer.network == broken and "f" in footer_keys(app)


@pilot_test
async def test_f_takes_the_largest_padding_a_pool_accepts():
    app = app_with(set_2={"padding": 3, "kernel_size": 4, "stride": 2})  # s2: padding 3 > 4 // 2
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        with pytest.raises(RuntimeError, match="pad should be at most half"):  # s2 on c1's 6×24×24
            torch.nn.MaxPool2d(4, 2, padding=3)(torch.zeros(1, 6, 24, 24))
        await pilot.press("f")
        await pilot.pause()
        fixed = app.designer.network
        assert fixed.layers[2].padding == 2
        analysis = analyze(fixed)
        assert analysis.ok and torch_output(fixed) == analysis.output_shape == (10,)


@pilot_test
async def test_f_on_another_row_fixes_the_first_error_and_then_the_next():
    """A wrong in_channels on c3 (row 3) hides the missing Flatten below it (f5's input is
    unknown); with the cursor on row 0, `f` leaves in_channels out (inferred), then the next `f`
    inserts the Flatten the first fix revealed."""
    app = app_with(set_3={"in_channels": 5}, drop=6)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert [row.index for row in analyze(app.designer.network).rows if row.errors] == [3]
        await pilot.press("f")
        await pilot.pause()
        layers = app.designer.network.layers
        assert layers[3].in_channels is None and layers[6].type == "Linear"
        assert app.designer.selected == 3 and "f" in footer_keys(app)
        await pilot.press("f")
        await pilot.pause()
        assert app.designer.network == load_spec(LENET)
        assert torch_output(app.designer.network) == (10,)


def test_only_errors_with_an_action_are_offered():
    lenet = load_spec(LENET)
    assert fixable(analyze(lenet), lenet, 0) is None
    data = spec_to_data(lenet)
    data["layers"][0]["kernel_size"] = 29  # larger than the 28×28 input: the fix is a choice
    too_large = network_from_data(data)
    assert not analyze(too_large).ok and fixable(analyze(too_large), too_large, 0) is None
