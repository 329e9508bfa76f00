"""Pilot tests of the designer (``convcalc tui``): real key presses against the real app.

Expected numbers come from the engine on an independently edited spec (the engine itself is
checked against torch in the engine tests), or from LeNet's well-known 44,426 parameters.
"""

from __future__ import annotations

import asyncio
import functools
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input, Static

from convcalc.engine import analyze, fmt_shape
from convcalc.spec import load_spec, network_from_data, spec_to_data
from convcalc.tui import model
from convcalc.tui.app import ConvcalcApp, open_spec
from convcalc.tui.dialogs import LayerTypeDialog, PathDialog, UnsavedDialog
from tests.conftest import SPECS

LENET = SPECS / "lenet.yaml"
SIZE = (140, 42)


def pilot_test(test):
    """Run an ``async def`` test in its own event loop (no pytest async plugin needed)."""

    @functools.wraps(test)
    def run(*args, **kwargs):
        asyncio.run(test(*args, **kwargs))

    return run


def app_for(path: Path | None) -> ConvcalcApp:
    network, spec_path = open_spec(path)
    return ConvcalcApp(network, spec_path)


def table_column(app: ConvcalcApp, column: str) -> list[str]:
    table = app.designer.query_one("#layers", DataTable)
    return [str(cell) for cell in table.get_column(column)]


def totals(app: ConvcalcApp) -> str:
    return str(app.designer.query_one("#totals", Static).visual)


def with_layer(network, index: int, **fields):
    """``network`` with fields of layer ``index`` replaced, validated from plain data."""
    data = spec_to_data(network)
    data["layers"][index].update(fields)
    return network_from_data(data)


async def type_into(pilot, selector: str, text: str) -> None:
    """Focus an input, clear it with real keys, type ``text``."""
    await pilot.click(selector)
    await pilot.press("end", "ctrl+u", *list(text))
    await pilot.pause()


@pilot_test
async def test_lenet_opens_with_its_params_and_shapes():
    app = app_for(LENET)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert "44,426" in totals(app)
        assert table_column(app, "name")[0] == "c1"
        assert table_column(app, "output")[0] == "6×24×24"
        expected = analyze(load_spec(LENET))
        assert table_column(app, "output") == [fmt_shape(row.output_shape) for row in expected.rows]
        assert table_column(app, "params") == [f"{row.params:,}" for row in expected.rows]
        assert "✓ 12 layers, no errors" in totals(app)


@pilot_test
async def test_changing_a_kernel_size_changes_the_shapes_below():
    app = app_for(LENET)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await type_into(pilot, "#field-kernel_size", "3")
        expected = analyze(with_layer(load_spec(LENET), 0, kernel_size=3))
        assert table_column(app, "output")[0] == "6×26×26"
        assert table_column(app, "output") == [fmt_shape(row.output_shape) for row in expected.rows]
        assert f"{expected.total_params:,}" in totals(app)
        assert app.designer.network.layers[0].kernel_size == 3
        assert "●" in app.designer.sub_title  # unsaved


@pilot_test
async def test_a_pair_value_and_a_string_value_are_parsed():
    app = app_for(LENET)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await type_into(pilot, "#field-kernel_size", "3x5")
        assert app.designer.network.layers[0].kernel_size == (3, 5)
        assert table_column(app, "output")[0] == fmt_shape(
            analyze(with_layer(load_spec(LENET), 0, kernel_size=[3, 5])).rows[0].output_shape
        )
        await type_into(pilot, "#field-padding", "same")
        assert app.designer.network.layers[0].padding == "same"
        assert table_column(app, "output")[0] == "6×28×28"


@pilot_test
async def test_an_invalid_value_shows_its_error_and_the_app_goes_on():
    app = app_for(LENET)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        before = app.designer.network
        await type_into(pilot, "#field-kernel_size", "-1")
        error = app.designer.query_one("#error-kernel_size", Static)
        assert error.display and "invalid value -1" in str(error.visual)
        assert app.designer.query_one("#field-kernel_size", Input).has_class("-invalid")
        assert app.designer.network == before  # the invalid edit never reaches the network
        assert table_column(app, "mark")[0] == "✗"
        assert "✗ layer 0: invalid value -1" in totals(app)
        # a required field left empty, then a duplicate name: each message beside its field
        await type_into(pilot, "#field-out_channels", "")
        assert "required field is missing" in str(
            app.designer.query_one("#error-out_channels", Static).visual
        )
        await type_into(pilot, "#field-out_channels", "6")
        await type_into(pilot, "#field-kernel_size", "5")
        await type_into(pilot, "#field-name", "c3")
        assert "already used by layer 3" in str(app.designer.query_one("#error-name", Static).visual)
        # fixing the values clears the errors and the app still edits
        await type_into(pilot, "#field-name", "c1")
        await type_into(pilot, "#field-kernel_size", "7")
        assert not app.designer.query_one("#error-kernel_size", Static).display
        assert table_column(app, "mark")[0] == ""
        assert table_column(app, "output")[0] == "6×22×22"


@pilot_test
async def test_an_impossible_network_is_shown_in_place():
    app = app_for(LENET)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await type_into(pilot, "#field-kernel_size", "29")  # larger than the 28×28 input
        expected = analyze(with_layer(load_spec(LENET), 0, kernel_size=29))
        assert expected.errors, "the engine must call a 29×29 kernel on 28×28 impossible"
        assert app.designer.network.layers[0].kernel_size == 29  # valid spec, impossible network
        assert table_column(app, "mark")[0] == "✗"
        assert table_column(app, "output")[0] == "—"
        layer_error = app.designer.query_one("#error-layer", Static)
        assert layer_error.display and expected.rows[0].errors[0].message in str(layer_error.visual)
        assert f"✗ {expected.errors[0]}" in totals(app)
        await pilot.press("ctrl+z")
        await pilot.pause()
        assert table_column(app, "output")[0] == "6×24×24"


@pilot_test
async def test_add_delete_move_duplicate_undo_redo():
    app = app_for(LENET)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        original = load_spec(LENET)
        designer = app.designer
        # add a Dropout at the end through the type picker
        await pilot.press("a")
        await pilot.pause()
        assert isinstance(app.screen, LayerTypeDialog)
        await pilot.press(*list("Drop"))  # type-to-search is not needed: walk the list
        picker = app.screen.query_one("#layer-types")
        picker.highlighted = [option.id for option in picker.options].index("Dropout")
        await pilot.press("enter")
        await pilot.pause()
        assert [layer.type for layer in designer.network.layers][-1] == "Dropout"
        assert table_column(app, "type")[-1] == "Dropout"
        assert designer.selected == 12
        # delete it again
        await pilot.press("escape", "x")
        await pilot.pause()
        assert designer.network == original
        # move c1 below its ReLU, then duplicate the ReLU now on top
        designer.query_one("#layers").focus()
        designer.query_one("#layers", DataTable).move_cursor(row=0)
        await pilot.pause()
        await pilot.press("shift+down")
        await pilot.pause()
        assert [layer.name for layer in designer.network.layers[:2]] == [None, "c1"]
        assert designer.selected == 1
        assert table_column(app, "name")[:2] == ["relu_0", "c1"]
        await pilot.press("up", "c")
        await pilot.pause()
        assert [layer.type for layer in designer.network.layers[:3]] == ["ReLU", "ReLU", "Conv2d"]
        # three undos bring back the file's network; redo re-applies the last undone edit
        await pilot.press("ctrl+z", "ctrl+z")
        await pilot.pause()
        assert designer.network == original
        assert table_column(app, "name")[:2] == ["c1", "relu_0"]
        await pilot.press("ctrl+y")
        await pilot.pause()
        assert designer.network == model.move_layer(original, 0, 1)
        await pilot.press("ctrl+z")
        await pilot.pause()
        assert designer.network == original
        assert "●" not in designer.sub_title  # back to what is on disk


@pilot_test
async def test_typing_a_number_is_one_undo_step_and_type_change_keeps_fields():
    app = app_for(LENET)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await type_into(pilot, "#field-out_channels", "128")
        assert app.designer.network.layers[0].out_channels == 128
        await pilot.press("ctrl+z")
        await pilot.pause()
        assert app.designer.network == load_spec(LENET)
        # c1 as a MaxPool2d keeps kernel_size 5 and its name
        app.designer.query_one("#layer-type").value = "MaxPool2d"
        await pilot.pause()
        layer = app.designer.network.layers[0]
        assert (layer.type, layer.kernel_size, layer.name) == ("MaxPool2d", 5, "c1")
        assert table_column(app, "output")[0] == "1×5×5"
        assert app.designer.query("#field-ceil_mode")  # the editor shows the new type's fields


@pilot_test
async def test_input_size_dialog():
    app = app_for(LENET)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("s")
        await pilot.pause()
        await pilot.press("end", "ctrl+u", *list("3x32x32"), "enter")
        await pilot.pause()
        assert app.designer.network.input == (3, 32, 32)
        expected = analyze(load_spec(LENET), (3, 32, 32))
        assert table_column(app, "output") == [fmt_shape(row.output_shape) for row in expected.rows]
        # a bad size keeps the dialog open with its message
        await pilot.press("s")
        await pilot.pause()
        await pilot.press("end", "ctrl+u", *list("3x0"), "enter")
        await pilot.pause()
        assert "three positive integers" in str(app.screen.query_one("#network-error", Static).visual)


@pilot_test
async def test_new_spec_starts_empty_on_28x28_and_adds_a_first_layer(tmp_path):
    app = app_for(None)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.designer.network.input == (1, 28, 28) and not app.designer.network.layers
        assert "in 1×28×28 → out 1×28×28" in totals(app)
        await pilot.press("a")
        await pilot.pause()
        await pilot.press("enter")  # the first type: Conv2d
        await pilot.pause()
        assert table_column(app, "output") == ["16×28×28"]
        assert app.designer.query_one("#field-out_channels", Input).value == "16"


@pilot_test
async def test_save_and_reload_round_trip(tmp_path):
    spec = tmp_path / "lenet.yaml"
    shutil.copy(LENET, spec)
    app = app_for(spec)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await type_into(pilot, "#field-kernel_size", "3x5")
        await type_into(pilot, "#field-stride", "2")
        await pilot.press("ctrl+s")
        await pilot.pause()
        edited = app.designer.network
        assert "●" not in app.designer.sub_title
        # save as: a second file, which the designer then edits
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert isinstance(app.screen, PathDialog)
        other = tmp_path / "copy.yaml"
        await pilot.press("end", "ctrl+u", *list(str(other)), "enter")
        await pilot.pause()
        assert app.designer.path == other
    assert load_spec(spec) == edited
    assert load_spec(other) == edited
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.yaml", "lenet.yaml"]  # no temp files left
    # a new app on the saved file shows the same analysis
    app = app_for(spec)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert table_column(app, "output") == [fmt_shape(r.output_shape) for r in analyze(edited).rows]


@pilot_test
async def test_open_shows_a_broken_spec_error_in_the_dialog(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("input: [1, 28, 28]\nlayers:\n  - {type: Conv2d, kernel_size: 3}\n")
    app = app_for(None)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+o")
        await pilot.pause()
        await pilot.press(*list(str(broken)), "enter")
        await pilot.pause()
        message = str(app.screen.query_one("#path-error", Static).visual)
        assert "out_channels" in message and "required field is missing" in message
        await pilot.press("end", "ctrl+u", *list(str(LENET)), "enter")
        await pilot.pause()
        assert app.designer.path == LENET and "44,426" in totals(app)


@pilot_test
async def test_save_into_a_missing_folder_is_reported_and_nothing_is_lost(tmp_path):
    app = app_for(None)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+s")  # never saved: asks for a path
        await pilot.pause()
        await pilot.press("end", "ctrl+u", *list(str(tmp_path / "nope" / "x.yaml")), "enter")
        await pilot.pause()
        assert "does not exist" in str(app.screen.query_one("#path-error", Static).visual)
        assert isinstance(app.screen, PathDialog)


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    spec = tmp_path / "lenet.yaml"
    shutil.copy(LENET, spec)
    old = spec.read_text()

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(model.os, "fsync", broken_fsync)
    with pytest.raises(
        model.SaveError, match=r"could not save \(No space left on device\); the old file is unchanged"
    ):
        model.write_spec(load_spec(LENET), spec)
    assert spec.read_text() == old
    assert [p.name for p in tmp_path.iterdir()] == ["lenet.yaml"]


@pilot_test
async def test_quit_with_unsaved_changes_asks():
    app = app_for(LENET)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await type_into(pilot, "#field-out_channels", "8")
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert isinstance(app.screen, UnsavedDialog)
        await pilot.press("escape")  # cancel
        await pilot.pause()
        assert app.screen is app.designer and app.designer.network.layers[0].out_channels == 8
        await pilot.press("ctrl+q")
        await pilot.pause()
        await pilot.click("#discard")
        await pilot.pause()
        assert app._exit


@pilot_test
async def test_quit_without_changes_does_not_ask():
    app = app_for(LENET)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert app._exit


@pilot_test
async def test_fifty_layers_render():
    layers = [{"type": "Conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1}, {"type": "ReLU"}] * 25
    network = network_from_data({"name": "deep", "input": [3, 32, 32], "layers": layers})
    app = ConvcalcApp(network)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert len(table_column(app, "name")) == 50
        await type_into(pilot, "#field-out_channels", "4")
        expected = analyze(with_layer(network, 0, out_channels=4))
        assert table_column(app, "params") == [f"{row.params:,}" for row in expected.rows]


def assert_app_runs_without_torch(steps: str, tmp_path) -> None:
    """Run ``steps`` (the body of ``async with app.run_test(...) as pilot:``, indented 8) on
    lenet in a fresh process and check that textual was loaded and torch never was."""
    script = f"""
import asyncio, sys
from convcalc.tui.app import ConvcalcApp, open_spec

async def main():
    app = ConvcalcApp(*open_spec({str(LENET)!r}))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
{steps}
asyncio.run(main())
print("torch" in sys.modules, "textual" in sys.modules)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True"]


def test_the_designer_never_imports_torch(tmp_path):
    """Open, edit and re-analyse a spec in a fresh process: torch stays unloaded."""
    steps = """
        await pilot.click("#field-kernel_size")
        await pilot.press("end", "ctrl+u", "3", "a")
        await pilot.pause()
        assert app.designer.network.layers[0].kernel_size == 3, "the edit did not happen"
        assert len(app.designer.network.layers) == 12
"""
    assert_app_runs_without_torch(steps, tmp_path)


@pytest.mark.parametrize("type_name", sorted(model.LAYER_CLASSES))
def test_every_layer_type_can_be_added_and_analysed(type_name):
    """The type picker offers every layer type; each starts valid, and on an input of its
    dimensionality the engine either analyses it or names the problem (never raises)."""
    layer = model.new_layer(type_name)
    nd = 1 if "1d" in type_name else 3 if "3d" in type_name else 2
    size = {1: [4, 16], 2: [4, 16, 16], 3: [4, 8, 8, 8]}[nd]
    inputs = ["input", "input"] if type_name in ("Add", "Mul", "Cat") else None
    data = {"input": size, "layers": [{**spec_to_data_layer(layer), "inputs": inputs}]}
    analysis = analyze(network_from_data(data))
    assert analysis.rows[0].type == type_name
    assert analysis.ok or analysis.errors[0].message, type_name


def spec_to_data_layer(layer) -> dict:
    return layer.model_dump(exclude_defaults=True) | {"type": layer.type}
