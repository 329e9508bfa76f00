"""Fast keyboard building and help in the designer (issue 12, points 3 and 6): type-to-filter in
the Add picker, Enter on the field people change first, Home/End/g/G/j/k in the table, help on
F1 and ``?``, the app's commands in the command palette, and a 10-layer CNN in at most 45 keys."""

from __future__ import annotations

import pytest
from textual.widgets import Input, OptionList

from convcalc.engine import analyze
from convcalc.spec import LAYER_CLASSES
from convcalc.tui.dialogs import HelpDialog, LayerTypeDialog, matching_types
from tests.test_tui import LENET, SIZE, app_for, pilot_test


@pytest.mark.parametrize(
    ("text", "nd", "first"),
    [("co", 2, "Conv2d"), ("co", 1, "Conv1d"), ("co", 3, "Conv3d"), ("re", 2, "ReLU"), ("ma", 2, "MaxPool2d"),
     ("fl", 2, "Flatten"), ("li", 2, "Linear"), ("fully", 2, "Linear"), ("BATCHN", 1, "BatchNorm1d"),
     ("upsampl", 2, "Upsample"), ("", 2, "Conv2d")],
)  # fmt: skip
def test_the_filter_puts_the_wanted_type_first(text, nd, first):
    assert matching_types(text, nd)[0] == first


def test_the_filter_finds_by_name_then_by_hint_and_loses_nothing():
    assert sorted(matching_types("")) == sorted(LAYER_CLASSES)
    assert set(matching_types("pool")) >= {"MaxPool2d", "AvgPool1d", "AdaptiveMaxPool3d"}
    assert matching_types("fully connected") == ["Linear"]  # only its hint says so
    assert matching_types("no such layer") == []


@pilot_test
async def test_typing_in_the_add_picker_filters_and_enter_adds():
    app = app_for(LENET)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        count = len(app.designer.network.layers)
        await pilot.press("a")
        await pilot.pause()
        assert isinstance(app.screen, LayerTypeDialog)
        assert isinstance(app.focused, Input)  # typing goes to the filter at once
        await pilot.press(*"avgp")
        await pilot.pause()
        options = app.screen.query_one("#layer-types", OptionList)
        shown = [options.get_option_at_index(i).id for i in range(options.option_count)]
        assert shown[0] == "AvgPool2d" and all("avgp" in name.lower() for name in shown)
        await pilot.press("down", "enter")  # the second match
        await pilot.pause()
        layers = app.designer.network.layers
        assert len(layers) == count + 1 and layers[-1].type == shown[1]


@pilot_test
async def test_enter_edits_the_field_people_change_first():
    app = app_for(LENET)  # conv, relu, pool, conv, relu, pool, flatten, linear, ...
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        expected = {"Conv2d": "field-out_channels", "MaxPool2d": "field-kernel_size",
                    "Linear": "field-out_features", "ReLU": "field-name",
                    "Flatten": "field-name"}  # fmt: skip
        seen = set()
        for index, layer in enumerate(app.designer.network.layers):
            if layer.type not in expected or layer.type in seen:
                continue
            seen.add(layer.type)
            app.designer.query_one("#layers").focus()
            app.designer.query_one("#layers").move_cursor(row=index)
            await pilot.pause()
            await pilot.press("enter")
            await pilot.pause()
            assert app.focused.id == expected[layer.type], layer.type
        assert seen == set(expected)


@pilot_test
async def test_home_end_g_G_j_k_move_in_the_table():
    app = app_for(LENET)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        last = len(app.designer.network.layers) - 1
        for keys, row in (("end", last), ("home", 0), ("j", 1), ("j", 2), ("k", 1), ("G", last), ("g", 0)):
            await pilot.press(keys)
            await pilot.pause()
            assert app.designer.selected == row, keys


@pilot_test
async def test_f1_and_question_mark_show_the_keys_and_the_value_syntax():
    app = app_for(LENET)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        for key in ("f1", "question_mark"):
            await pilot.press(key)
            await pilot.pause()
            assert isinstance(app.screen, HelpDialog), key
            text = str(app.screen.query_one("#help-text").visual)
            assert "3x5" in text and "same" in text and "ctrl+s" in text and "home g" in text
            await pilot.press("escape")
            await pilot.pause()
            assert app.screen is app.designer


@pilot_test
async def test_the_command_palette_has_the_apps_commands():
    app = app_for(LENET)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        commands = {command.title: command for command in app.get_system_commands(app.designer)}
        assert {"Save", "Save as", "Open a spec", "Train", "Undo", "Help", "Add Linear"} <= set(commands)
        assert {f"Add {name}" for name in LAYER_CLASSES} <= set(commands)
        count = len(app.designer.network.layers)
        await commands["Add Dropout"].callback()
        await pilot.pause()
        assert len(app.designer.network.layers) == count + 1
        assert app.designer.network.layers[-1].type == "Dropout"


@pilot_test
async def test_a_ten_layer_cnn_takes_at_most_45_keys(tmp_path):
    """From a new spec on 1×28×28: conv, relu, pool, conv, relu, pool, flatten, linear 120,
    relu, linear 10, every key counted."""
    app = app_for(tmp_path / "cnn.yaml")
    keys = [*"aco", "enter", *"are", "enter", *"ama", "enter"] * 2
    keys += [*"afl", "enter", *"ali", "enter", "enter", *"120", "escape", *"are", "enter", *"ali", "enter"]
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        for key in keys:
            await pilot.press(key)
            await pilot.pause()
        network = app.designer.network
    assert len(keys) <= 45
    types = [layer.type for layer in network.layers]
    assert types == ["Conv2d", "ReLU", "MaxPool2d"] * 2 + ["Flatten", "Linear", "ReLU", "Linear"]
    analysis = analyze(network)
    assert analysis.ok and analysis.rows[7].output_shape == (120,) and analysis.output_shape == (10,)
