"""Pilot tests of the designer's "make this layer output H×W" dialog (``o``).

The fixes listed and their order are the solver's (``solve.solve_layer``, tested against torch
and brute force in ``test_solve.py``); here the app must offer them, apply the chosen one as one
undoable edit, and show every error in place. The applied layer is built in torch to check the
size it was asked for.
"""

from __future__ import annotations

import pytest
from textual.widgets import DataTable, Input, OptionList, Static

from convcalc.engine import analyze, fmt_shape
from convcalc.solve import SolveError, solve_layer
from convcalc.spec import load_spec, network_from_data
from convcalc.tui import model
from convcalc.tui.app import ConvcalcApp
from convcalc.tui.size_dialog import OutputSizeDialog
from convcalc.tui.wording import tui_text
from tests.test_tui import LENET, SIZE, app_for, assert_app_runs_without_torch, pilot_test, table_column


def status(app: ConvcalcApp) -> str:
    return str(app.screen.query_one("#solve-status", Static).visual)


def listed(app: ConvcalcApp) -> list[str]:
    fixes = app.screen.query_one("#solve-fixes", OptionList)
    return [str(option.prompt) for option in fixes.options] if fixes.display else []


async def open_dialog(pilot, row: int = 0) -> OutputSizeDialog:
    table = pilot.app.designer.query_one("#layers", DataTable)
    table.focus()
    table.move_cursor(row=row)
    await pilot.pause()
    await pilot.press("o")
    await pilot.pause()
    assert isinstance(pilot.app.screen, OutputSizeDialog)
    return pilot.app.screen


async def ask(pilot, text: str) -> None:
    """Type ``text`` as the wanted size, press enter and wait for the solver's worker."""
    await pilot.click("#solve-target")
    await pilot.press("end", "ctrl+u", *list(text), "enter")
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def torch_output_of_layer(network, index: int) -> tuple[int, ...]:
    """The (C, H, W) torch gives after layer ``index`` of ``network`` on a zero input."""
    import torch

    from convcalc.build import build_model

    torch.set_num_threads(1)
    built = build_model(network, initialize=False)
    with torch.no_grad():
        x = torch.zeros(1, *network.input)
        for module in list(built)[: index + 1]:
            x = module(x)
    return tuple(x.shape[1:])


@pilot_test
async def test_c1_made_28x28_by_the_first_fix_is_one_undo_step():
    original = load_spec(LENET)
    fixes = solve_layer(original.layers[0], (28, 28), (28, 28))
    app = app_for(LENET)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        dialog = await open_dialog(pilot)
        shown = " ".join(str(widget.visual) for widget in dialog.query(".dialog-text"))
        assert "input 1×28×28 → output 6×24×24" in shown and "6@5×5 s1 p0" in shown
        await ask(pilot, "28x28")
        options = listed(app)
        assert len(options) == min(len(fixes), model.MAX_SIZE_CHOICES) > 1
        descriptions = [fix.description for fix in fixes[: model.MAX_SIZE_CHOICES]]
        assert [option.split("  ")[0] for option in options] == descriptions
        assert f"{len(fixes)} settings give 28×28" in status(app)
        assert "exact" in options[0]
        await pilot.press("enter")  # the list has the focus, on the first fix
        await pilot.pause()
        assert app.screen is app.designer
        network = app.designer.network
        # only the fields the fix names changed, to the fix's values
        before, after = original.layers[0].model_dump(), network.layers[0].model_dump()
        assert {key for key in before if before[key] != after[key]} == set(fixes[0].changed)
        assert network.layers[1:] == original.layers[1:]
        assert analyze(network).rows[0].output_shape == (6, 28, 28)
        assert table_column(app, "output")[0] == "6×28×28"
        assert torch_output_of_layer(network, 0) == (6, 28, 28)
        # the rows below follow, as the engine computes them for the edited network
        assert table_column(app, "output") == [fmt_shape(r.output_shape) for r in analyze(network).rows]
        assert "●" in app.designer.sub_title
        await pilot.press("ctrl+z")
        await pilot.pause()
        assert app.designer.network == original
        assert table_column(app, "output")[0] == "6×24×24"
        assert "●" not in app.designer.sub_title
        await pilot.press("ctrl+y")
        await pilot.pause()
        assert app.designer.network == network


@pilot_test
async def test_pool_fix_chosen_lower_in_the_list_is_applied():
    original = load_spec(LENET)
    fixes = solve_layer(original.layers[2], (24, 24), (8, 8))  # s2: 6×24×24 → 6×8×8
    app = app_for(LENET)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await open_dialog(pilot, row=2)
        await ask(pilot, "8")
        assert len(listed(app)) >= 3
        await pilot.press("down", "down", "enter")
        await pilot.pause()
        network = app.designer.network
        before, after = original.layers[2].model_dump(), network.layers[2].model_dump()
        assert {key for key in before if before[key] != after[key]} == set(fixes[2].changed)
        assert {key: after[key] for key in fixes[2].fields} == fixes[2].fields
        assert torch_output_of_layer(network, 2) == (6, 8, 8)
        assert app.designer.selected == 2


@pilot_test
async def test_an_impossible_size_shows_the_solvers_message_and_the_app_goes_on():
    original = load_spec(LENET)
    with pytest.raises(SolveError) as expected:
        solve_layer(original.layers[0], (28, 28), (100, 100))
    app = app_for(LENET)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await open_dialog(pilot)
        await ask(pilot, "100")
        assert isinstance(app.screen, OutputSizeDialog)
        assert f"✗ {tui_text(str(expected.value))}" in status(app)  # the solver's, in the TUI's words
        assert "nearest reachable:" in status(app) and "--transposed" not in status(app)
        assert listed(app) == []
        # bad text and no text: the dialog says what to type
        await ask(pilot, "14xq")
        assert "'14xq' is not an output size" in status(app)
        await ask(pilot, "0")
        assert "positive integers" in status(app)
        await ask(pilot, "")
        assert "type the wanted output size first" in status(app)
        # a good size lists fixes; typing again drops them (they were for the old size)
        await ask(pilot, "14")
        assert listed(app)
        await pilot.click("#solve-target")
        await pilot.press("end", "backspace")
        await pilot.pause()
        assert listed(app) == []
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is app.designer and app.designer.network == original
        assert not app.designer.history.can_undo  # nothing was recorded
        # the designer goes on: an ordinary edit still works
        await pilot.click("#field-kernel_size")
        await pilot.press("end", "ctrl+u", "3")
        await pilot.pause()
        assert table_column(app, "output")[0] == "6×26×26"


@pilot_test
async def test_a_layer_without_size_settings_says_so():
    relu = load_spec(LENET).layers[1]
    with pytest.raises(SolveError) as expected:
        solve_layer(relu, (24, 24), (12, 12))
    app = app_for(LENET)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        dialog = await open_dialog(pilot, row=1)
        assert "relu_0 (ReLU)" in str(dialog.query_one(".dialog-title", Static).visual)
        assert f"✗ {expected.value}" in status(app)
        assert "has no size settings" in status(app)
        assert dialog.query_one("#solve-target", Input).disabled
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is app.designer


@pilot_test
async def test_adaptive_pool_gets_its_output_size():
    network = network_from_data(
        {
            "name": "gap",
            "input": [3, 32, 32],
            "layers": [
                {"type": "Conv2d", "out_channels": 8, "kernel_size": 3},
                {"type": "AdaptiveAvgPool2d", "output_size": 1},
            ],
        }
    )
    app = ConvcalcApp(network)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await open_dialog(pilot, row=1)
        await ask(pilot, "1")
        assert "already outputs 1×1: nothing to change" in status(app)
        await ask(pilot, "3x5")
        assert [option.split("  ")[0] for option in listed(app)] == ["output_size → 3×5"]
        await pilot.press("enter")
        await pilot.pause()
        assert app.designer.network.layers[1].output_size == (3, 5)
        assert torch_output_of_layer(app.designer.network, 1) == (8, 3, 5)


@pilot_test
async def test_padding_auto_is_replaced_by_the_fixs_numbers():
    network = network_from_data(
        {
            "name": "auto",
            "input": [1, 28, 28],
            "layers": [
                {
                    "type": "Conv2d",
                    "out_channels": 4,
                    "kernel_size": 5,
                    "padding": "auto",
                    "output_shape": [28, 28],
                }
            ],
        }
    )
    app = ConvcalcApp(network)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await open_dialog(pilot)
        await ask(pilot, "14")
        await pilot.press("enter")
        await pilot.pause()
        layer = app.designer.network.layers[0]
        assert layer.output_shape is None and isinstance(layer.padding, int | tuple)
        assert torch_output_of_layer(app.designer.network, 0) == (4, 14, 14)


@pilot_test
async def test_a_layer_after_a_broken_one_cannot_be_sized():
    network = network_from_data(
        {
            "name": "broken",
            "input": [1, 8, 8],
            "layers": [
                {"type": "Conv2d", "out_channels": 4, "kernel_size": 9},  # larger than 8×8
                {"type": "MaxPool2d", "kernel_size": 2},
            ],
        }
    )
    app = ConvcalcApp(network)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        dialog = await open_dialog(pilot, row=1)
        assert "input size is unknown" in status(app)
        assert dialog.query_one("#solve-target", Input).disabled
        await pilot.press("escape")
        # the broken layer itself can be solved: its input is known
        await open_dialog(pilot, row=0)
        await ask(pilot, "8")
        await pilot.press("enter")
        await pilot.pause()
        assert analyze(app.designer.network).ok
        assert torch_output_of_layer(app.designer.network, 0) == (4, 8, 8)


def test_snapshot_of_the_dialog_listing_fixes(snap_compare):
    """pytest-textual-snapshot: c1 asked for 14×14 (the SVG changes only with --snapshot-update)."""

    async def ask_14(pilot) -> None:
        await pilot.press("o")
        await pilot.pause()
        await ask(pilot, "14x14")

    app = ConvcalcApp(load_spec(LENET), LENET.relative_to(LENET.parent.parent))
    assert snap_compare(app, terminal_size=(130, 36), run_before=ask_14)


@pytest.mark.parametrize(
    ("text", "size"),
    [("14", (14, 14)), ("14x16", (14, 16)), ("14×16", (14, 16)), (" 7, 9 ", (7, 9)), ("3 5", (3, 5))],
)
def test_parse_output_size(text, size):
    assert model.parse_output_size(text) == size


@pytest.mark.parametrize("text", ["", "x", "14x", "0", "-3", "1x2x3", "2.5", "14xq"])
def test_parse_output_size_refuses(text):
    with pytest.raises(ValueError, match="is not an output size: give the wanted height×width"):
        model.parse_output_size(text)


def test_the_output_size_dialog_never_imports_torch(tmp_path):
    """Open the dialog, solve and apply in a fresh process: torch stays unloaded."""
    steps = """
        await pilot.press("o")
        await pilot.pause()
        await pilot.press(*"14x14", "enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        assert app.designer.network.layers[0].stride == 2, "the fix was not applied"
"""
    assert_app_runs_without_torch(steps, tmp_path)
