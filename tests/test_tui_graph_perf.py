"""The designer on graph specs (issue 12 point 7): what the faster redraw shows after an edit,
``o`` and ``f`` on a layer inside a block or group, and a group row's ``inputs``.

Expected numbers come from the engine (``analyze``, ``memory.training_memory``) on a spec
edited independently here, as plain data; torch builds the edited networks and decides their
shapes (the engine and memory model are themselves checked against torch elsewhere).
"""

from __future__ import annotations

import copy

import pytest
from textual.widgets import Input, SelectionList

from convcalc import memory, render
from convcalc.engine import analyze, fmt_shape
from convcalc.spec import network_from_data
from convcalc.tui.app import ConvcalcApp
from convcalc.tui.dialogs import InputsDialog
from convcalc.tui.size_dialog import OutputSizeDialog
from tests.test_tui import pilot_test, table_column, totals, type_into
from tests.test_tui_graphs import go_to_row, names_shown

torch = pytest.importorskip("torch")

SIZE = (160, 48)

# A residual block used twice (the second strided), its shortcut a Sequential that reads the
# block's input (as ResNet's `downsample`), then a head.
TINY_RES = {
    "name": "tiny_res",
    "input": [3, 16, 16],
    "blocks": {
        "Res": {
            "params": {"planes": None, "stride": 1},
            "layers": [
                {"type": "Conv2d", "name": "conv1", "out_channels": "$planes", "kernel_size": 3,
                 "stride": "$stride", "padding": 1},
                {"type": "ReLU", "name": "relu"},
                {"type": "Conv2d", "name": "conv2", "out_channels": "$planes", "kernel_size": 3,
                 "padding": 1},
                {"type": "Sequential", "name": "downsample", "inputs": "input", "layers": [
                    {"type": "Conv2d", "out_channels": "$planes", "kernel_size": 1, "stride": "$stride"},
                ]},
                {"type": "Add", "name": "add", "inputs": ["conv2", "downsample"]},
            ],
        }
    },
    "layers": [
        {"type": "Conv2d", "name": "stem", "out_channels": 8, "kernel_size": 3, "padding": 1},
        {"type": "Res", "name": "layer1", "planes": 8},
        {"type": "Res", "name": "layer2", "planes": 16, "stride": 2},
        {"type": "AdaptiveAvgPool2d", "name": "pool", "output_size": 1},
        {"type": "Flatten", "name": "flatten"},
        {"type": "Linear", "name": "fc", "out_features": 10},
    ],
}  # fmt: skip

# A block whose pool pads more than torch allows (every use fails), a block parameter for the
# kernel, and a head whose Linear reads a feature map.
BROKEN = {
    "name": "broken",
    "input": [3, 16, 16],
    "blocks": {
        "Down": {
            "params": {"c": None, "k": 3},
            "layers": [
                {"type": "Conv2d", "name": "conv", "out_channels": "$c", "kernel_size": "$k", "padding": 1},
                {"type": "ReLU", "name": "relu"},
                {"type": "MaxPool2d", "name": "pool", "kernel_size": 2, "padding": 3},
            ],
        }
    },
    "layers": [
        {"type": "Down", "name": "down1", "c": 8},
        {"type": "Down", "name": "down2", "c": 16},
        {"type": "Sequential", "name": "head", "layers": [
            {"type": "Linear", "name": "fc", "out_features": 10},
        ]},
    ],
}  # fmt: skip


def spec(data: dict, change=None):
    data = copy.deepcopy(data)
    if change is not None:
        change(data)
    return network_from_data(data)


def torch_output(network) -> tuple[int, ...]:
    """The output shape torch gives for ``network`` on a zero input (batch left out)."""
    from convcalc.build import build_model

    torch.set_num_threads(1)
    with torch.no_grad():
        return tuple(build_model(network, initialize=False)(torch.zeros(1, *network.input)).shape[1:])


def footer_keys(app: ConvcalcApp) -> set[str]:
    return {key.key for key in app.screen.query("FooterKey")}


def shown_layer_column(app: ConvcalcApp, column: str) -> dict[str, str]:
    """A column of the table by layer name (group rows left out)."""
    names = names_shown(app)
    return {
        name: cell for name, cell in zip(names, table_column(app, column), strict=True) if name[0] not in "▾▸"
    }


# --------------------------------------------------------------------------------------
# The redraw: after an edit the table and totals show exactly the edited spec


@pilot_test
async def test_a_block_edit_shows_the_edited_specs_rows_and_training_memory():
    app = ConvcalcApp(spec(TINY_RES), None)

    def kernel_7(data):
        data["blocks"]["Res"]["layers"][2].update(kernel_size=7, padding=3)

    expected = analyze(spec(TINY_RES, kernel_7))
    before = memory.training_memory(analyze(spec(TINY_RES))).training_peak(memory.DEFAULT_BATCH)
    after = memory.training_memory(expected).training_peak(memory.DEFAULT_BATCH)
    assert render.human_bytes(before) != render.human_bytes(after)  # else a stale figure would pass
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert f"train {render.human_bytes(before)} @128" in totals(app)
        await go_to_row(pilot, "layer1.conv2")
        await type_into(pilot, "#field-kernel_size", "7")
        await type_into(pilot, "#field-padding", "3")
        await pilot.pause()
        assert app.designer.network == spec(TINY_RES, kernel_7)  # both uses changed
        assert f"train {render.human_bytes(after)} @128" in totals(app)
        assert f"params {expected.total_params:,}" in totals(app)
        rows = {row.name: row for row in expected.rows}
        assert shown_layer_column(app, "RF") == {name: render.rf_text(row)[0] for name, row in rows.items()}
        assert shown_layer_column(app, "params") == {name: f"{row.params:,}" for name, row in rows.items()}
        assert shown_layer_column(app, "output") == {
            name: fmt_shape(row.output_shape) for name, row in rows.items()
        }
        assert torch_output(app.designer.network) == expected.output_shape == (10,)


@pilot_test
async def test_the_training_memory_follows_the_training_forms_batch_size():
    network = spec(TINY_RES)
    app = ConvcalcApp(network, None)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.designer.train_form["batch-size"] = "32"  # as the training screen leaves it
        app.designer.on_screen_resume()
        await pilot.pause()
        peak = memory.training_memory(analyze(network)).training_peak(32)
        assert f"train {render.human_bytes(peak)} @32" in totals(app)


# --------------------------------------------------------------------------------------
# f: the engine's fix, where the layer is written


@pilot_test
async def test_f_fixes_a_blocks_pool_in_the_block_then_adds_the_flatten_in_the_group():
    app = ConvcalcApp(spec(BROKEN), None)
    with pytest.raises(RuntimeError, match="pad should be at most half"):  # the pool of every use
        torch.nn.MaxPool2d(2, padding=3)(torch.zeros(1, 8, 16, 16))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert "f" in footer_keys(app)
        await pilot.press("f")
        await pilot.pause()

        def padding_1(data):
            data["blocks"]["Down"]["layers"][2]["padding"] = 1

        assert app.designer.network == spec(BROKEN, padding_1)  # in the block: both uses
        assert app.designer.analysis.rows[app.designer.selected].name == "down1.pool"
        assert "f" in footer_keys(app)  # the Linear of the head still reads a feature map
        await pilot.press("f")
        await pilot.pause()

        def flatten(data):
            padding_1(data)
            data["layers"][2]["layers"].insert(0, {"type": "Flatten"})

        fixed = app.designer.network
        assert fixed == spec(BROKEN, flatten)
        assert app.designer.analysis.rows[app.designer.selected].type == "Flatten"
        analysis = analyze(fixed)
        assert analysis.ok and "f" not in footer_keys(app)
        assert torch_output(fixed) == analysis.output_shape == (10,)
        await pilot.press("ctrl+z")
        await pilot.pause()
        assert app.designer.network == spec(BROKEN, padding_1)


def test_a_fix_of_a_field_written_as_a_block_parameter_is_not_offered():
    from convcalc.tui.fixes import fixable

    def channels_param(data):  # in_channels per use: `$cin`, wrong for the second use
        data["blocks"]["Down"]["params"]["cin"] = 3
        data["blocks"]["Down"]["layers"][0]["in_channels"] = "$cin"
        data["blocks"]["Down"]["layers"][2]["padding"] = 1
        data["layers"][2]["layers"].insert(0, {"type": "Flatten"})

    network = spec(BROKEN, channels_param)
    analysis = analyze(network)
    errors = [p for row in analysis.rows for p in row.errors]
    assert [(p.name, p.action is not None) for p in errors] == [("down2.conv", True)]  # in_channels=3
    assert fixable(analysis, network, 0) is None


@pilot_test
async def test_f_moves_a_layers_inputs_to_the_flatten_it_puts_before_it():
    def reads_down1(data):
        data["blocks"]["Down"]["layers"][2]["padding"] = 1
        data["layers"][2]["layers"][0]["inputs"] = "input"  # fc reads the head's input by name

    app = ConvcalcApp(spec(BROKEN, reads_down1), None)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("f")
        await pilot.pause()

        def flatten(data):
            reads_down1(data)
            fc = data["layers"][2]["layers"][0]
            data["layers"][2]["layers"].insert(0, {"type": "Flatten", "inputs": fc.pop("inputs")})

        assert app.designer.network == spec(BROKEN, flatten)
        assert torch_output(app.designer.network) == analyze(app.designer.network).output_shape == (10,)


# --------------------------------------------------------------------------------------
# o: the solver's settings, written where the layer is


async def ask(pilot, text: str) -> None:
    await pilot.click("#solve-target")
    await pilot.press("end", "ctrl+u", *list(text), "enter")
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


@pilot_test
async def test_o_sizes_a_blocks_layer_in_the_block_for_every_use():
    def working(data):  # BROKEN with both fixes made
        data["blocks"]["Down"]["layers"][2]["padding"] = 1
        data["layers"][2]["layers"].insert(0, {"type": "Flatten"})

    app = ConvcalcApp(spec(BROKEN, working), None)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await go_to_row(pilot, "down1.conv")
        await pilot.press("escape", "o")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, OutputSizeDialog)
        assert "block Down, used 2 times" in str(dialog.query_one(".dialog-text").visual)
        await ask(pilot, "8x8")
        choices = dialog.choices
        assert choices
        for choice in choices:  # a kernel change would override `$k` for every use: refused
            refused = "kernel_size" in choice.fix.changed
            assert (choice.network is None) == refused, choice.fix.changed
            if refused:
                assert "$k is a parameter of block Down" in choice.problem
        assert any(choice.network is None for choice in choices)
        chosen = next(choice for choice in choices if choice.network is not None)
        await pilot.press("enter")
        await pilot.pause()

        def sized(data):
            working(data)
            data["blocks"]["Down"]["layers"][0].update({k: chosen.fix.fields[k] for k in chosen.fix.changed})

        assert app.designer.network == spec(BROKEN, sized)
        conv = torch.nn.Conv2d(3, 8, **chosen.fix.fields)  # every size setting of the fixed layer
        assert tuple(conv(torch.zeros(1, 3, 16, 16)).shape[2:]) == (8, 8)
        rows = {row.name: row for row in app.designer.analysis.rows}
        assert rows["down1.conv"].output_shape == (8, 8, 8)
        assert rows["down2.conv"].output_shape[1:] != rows["down2.conv"].input_shape[1:]  # every use
        assert torch_output(app.designer.network) == analyze(app.designer.network).output_shape


# --------------------------------------------------------------------------------------
# A group row's inputs


@pilot_test
async def test_a_group_rows_inputs_are_shown_and_picked_from_the_earlier_names():
    app = ConvcalcApp(spec(TINY_RES), None)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await go_to_row(pilot, "▾ layer1.downsample")
        assert app.designer.query_one("#group-inputs", Input).value == "input"
        settings = dict(zip(names_shown(app), table_column(app, "settings"), strict=True))
        assert settings["▾ layer1.downsample"].endswith("← input")
        assert settings["▾ layer1"] == "planes=8 stride=1"  # reads the row above: nothing said
        await pilot.press("escape", "n")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, InputsDialog)
        names = dialog.query_one("#input-names", SelectionList)
        assert [option.value for option in names.options] == ["input", "conv1", "relu", "conv2"]
        assert names.selected == ["input"]
        await pilot.press("space", "down", "down", "space", "enter")  # drop input, pick relu
        await pilot.pause()

        def reads_relu(data):
            data["blocks"]["Res"]["layers"][3]["inputs"] = "relu"

        assert app.designer.network == spec(TINY_RES, reads_relu)
        assert app.designer.query_one("#group-inputs", Input).value == "relu"
        settings = dict(zip(names_shown(app), table_column(app, "settings"), strict=True))
        assert settings["▾ layer1.downsample"].endswith("← relu")
        # every use reads its relu: layer2's, already strided, is strided again by the shortcut
        rows = {row.name: row for row in app.designer.analysis.rows}
        assert rows["layer1.add"].output_shape == (8, 16, 16)
        assert rows["layer2.add"].errors and "✗" in totals(app)
        shortcut = torch.nn.Conv2d(16, 16, 1, stride=2)(torch.zeros(1, *rows["layer2.relu"].output_shape))
        with pytest.raises(RuntimeError, match="must match"):
            torch.zeros(1, *rows["layer2.conv2"].output_shape) + shortcut
        await pilot.press("ctrl+z")
        await pilot.pause()
        assert app.designer.network == spec(TINY_RES)
        assert torch_output(app.designer.network) == analyze(app.designer.network).output_shape == (10,)


@pilot_test
async def test_a_group_rows_inputs_can_be_typed():
    app = ConvcalcApp(spec(TINY_RES), None)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await go_to_row(pilot, "▾ layer1.downsample")
        await type_into(pilot, "#group-inputs", "conv1")
        await pilot.pause()

        def reads(name):
            def change(data):
                shortcut = data["blocks"]["Res"]["layers"][3]
                shortcut.pop("inputs")
                if name:
                    shortcut["inputs"] = name

            return change

        assert app.designer.network == spec(TINY_RES, reads("conv1"))
        # ctrl+u empties the field (valid: the item above, conv2), then a name the block lacks
        await type_into(pilot, "#group-inputs", "nope")
        assert app.designer.network == spec(TINY_RES, reads(None))  # its last valid state
        assert "nope" in str(app.designer.query_one("#error-inputs").visual)
        settings = dict(zip(names_shown(app), table_column(app, "settings"), strict=True))
        assert settings["▾ layer1.downsample"] == "1 layer"
