"""The designer on graph specs (blocks, ``Sequential`` groups, ``repeat``, ``inputs``, merges).

Expected values come from the spec edited as data, independently of the designer, and analysed
by the engine (itself checked against torch in ``test_graphs_vs_torch.py``), or from the
shipped files themselves.
"""

from __future__ import annotations

import copy
import re

import pytest
from textual.widgets import DataTable, Input, Static

from convcalc.engine import analyze, fmt_shape
from convcalc.graph import substitute
from convcalc.spec import LAYER_CLASSES, canonical_types, load_spec, network_from_data, spec_to_data
from convcalc.tui import graphmodel, model
from convcalc.tui.app import ConvcalcApp, open_spec
from convcalc.tui.dialogs import InputsDialog, LayerTypeDialog
from tests.conftest import SPECS
from tests.test_tui import pilot_test, table_column, totals, type_into

SIZE = (160, 48)
RESNET18 = SPECS / "resnet18.yaml"
ALL_SPECS = sorted(SPECS.glob("*.yaml"))
GRAPH_SPECS = [path for path in ALL_SPECS if graphmodel.has_structure(load_spec(path))]


def names_shown(app: ConvcalcApp) -> list[str]:
    return [name.strip() for name in table_column(app, "name")]


def detail(app: ConvcalcApp) -> str:
    return str(app.designer.query_one("#detail-text", Static).visual)


async def go_to_row(pilot, name: str) -> None:
    """Put the table cursor on the row called ``name`` (as ↓ would: the row is highlighted and
    the editor follows), then one real key down and up."""
    app = pilot.app
    table = app.designer.query_one("#layers", DataTable)
    target = names_shown(app).index(name)
    table.move_cursor(row=target + 1 if target + 1 < table.row_count else target - 1)
    await pilot.pause()
    await pilot.press("up" if target + 1 < table.row_count else "down")
    await pilot.pause()
    assert table.cursor_row == target


def edited(network, change):
    """``network`` after ``change(data)`` on its spec data, validated again."""
    data = copy.deepcopy(spec_to_data(network))
    change(data)
    return network_from_data(data)


def test_the_graph_specs_are_the_ones_with_structure():
    assert {p.stem for p in GRAPH_SPECS} >= {"resnet18", "resnet50", "densenet121", "googlenet", "unet",
                                              "se_resnet", "mobilenet_v2", "mobilenet_v3_small"}  # fmt: skip


@pytest.mark.parametrize("path", ALL_SPECS, ids=lambda p: p.stem)
def test_every_row_is_traced_to_the_item_that_makes_it(path):
    """The item ``locate`` names for each row, its block's parameters put in, validates to
    that row's layer: editing there edits that row."""
    network = load_spec(path)
    places = graphmodel.locate(network)
    assert len(places.nodes) == len(network.graph.nodes)
    for node, loc in zip(network.graph.nodes, places.nodes, strict=True):
        item = graphmodel.item_at(places.data, loc)
        if loc[0] == "blocks":  # the parameters of the innermost block use around the row
            use = [group for group in node.groups if group.kind != "Sequential"][-1]
            assert use.kind == loc[1]
            item = substitute(item, dict(network.graph.params[use.path]), "")
        item = canonical_types([item])[0]
        assert LAYER_CLASSES[item["type"]].model_validate(item) == node.layer, node.name


@pytest.mark.slow
@pilot_test
async def test_every_shipped_spec_opens_shows_every_layer_and_saves_back_equal(tmp_path):
    """Every shipped spec opens (no refusal); the table has a row per layer instance under its
    full name and a folding row per group; saving writes a spec that loads equal."""
    app = ConvcalcApp(*open_spec(RESNET18))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        for path in ALL_SPECS:
            original = load_spec(path)
            network, _ = open_spec(path)
            await app.designer.open_network(network, path)
            await pilot.pause()
            expected = analyze(original)
            shown = names_shown(app)
            groups = [name for name in shown if name.startswith("▾ ")]
            layers = [name for name in shown if not name.startswith("▾ ")]
            assert layers == [row.name for row in expected.rows], path.stem
            assert groups == [f"▾ {group.name}" for group in expected.groups], path.stem
            saved = tmp_path / path.name
            app.designer.save_to(saved)
            assert load_spec(saved) == original, path.stem
            assert not app.designer.dirty


@pilot_test
async def test_group_rows_sum_their_layers_and_fold_with_space_left_and_right():
    app = ConvcalcApp(*open_spec(RESNET18))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        expected = analyze(load_spec(RESNET18))
        inside = [row for row in expected.rows if row.name.startswith("layer2.")]
        shown = names_shown(app)
        at = shown.index("▾ layer2")
        assert table_column(app, "params")[at] == f"{sum(row.params for row in inside):,}"
        assert table_column(app, "MACs")[at] == f"{sum(row.macs for row in inside):,}"
        assert table_column(app, "output")[at] == fmt_shape(inside[-1].output_shape)
        assert table_column(app, "type")[at] == "Sequential"
        await go_to_row(pilot, "▾ layer2")
        assert "group · layer2" in app.designer.query_one("#editor").border_title
        await pilot.press("space")
        await pilot.pause()
        shown = names_shown(app)
        assert "▸ layer2" in shown and not any(name.startswith("layer2.") for name in shown)
        assert len(shown) == len(expected.rows) + len(expected.groups) - len(inside) - 3  # 3 groups inside
        assert f"{expected.total_params:,}" in totals(app)  # the whole network's, folded or not
        await pilot.press("right")
        await pilot.pause()
        assert len(names_shown(app)) == len(expected.rows) + len(expected.groups)
        await go_to_row(pilot, "layer2.1.conv2")
        await pilot.press("left")  # on a layer: its innermost group folds, the cursor on its row
        await pilot.pause()
        assert "▸ layer2.1" in names_shown(app)
        assert app.designer.query_one("#layers", DataTable).cursor_row == names_shown(app).index("▸ layer2.1")


@pytest.mark.slow
@pilot_test
async def test_a_layer_of_a_block_is_edited_in_the_definition_for_every_use():
    original = load_spec(RESNET18)
    app = ConvcalcApp(*open_spec(RESNET18))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await go_to_row(pilot, "layer3.1.conv1")
        note = str(app.designer.query_one("#layer-note", Static).visual)
        uses = sum(1 for group in original.graph.groups if group.kind == "BasicBlock")
        assert f"block BasicBlock, used {uses} times" in note
        assert app.designer.query_one("#field-out_channels", Input).value == "$planes"  # as written
        await type_into(pilot, "#field-kernel_size", "5")
        await type_into(pilot, "#field-padding", "2")

        def change(data):
            data["blocks"]["BasicBlock"]["layers"][0].update(kernel_size=5, padding=2)

        expected = edited(original, change)
        assert app.designer.network == expected
        rows = analyze(expected).rows
        assert table_column(app, "params")[names_shown(app).index("layer1.0.conv1")] == f"{rows[4].params:,}"
        changed = [row.name for row in rows if row.name.endswith(".conv1") and row.layer.kernel_size == 5]
        assert len(changed) == uses  # every BasicBlock's conv1, no DownBlock's
        assert f"{analyze(expected).total_params:,}" in totals(app)
        assert "●" in app.designer.sub_title
        await pilot.press("escape", "ctrl+z", "ctrl+z")
        await pilot.pause()
        assert app.designer.network == original


@pilot_test
async def test_inputs_are_shown_and_picked_from_the_earlier_layers_of_the_scope():
    original = load_spec(RESNET18)
    app = ConvcalcApp(*open_spec(RESNET18))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        at = names_shown(app).index("layer1.0.add")
        assert table_column(app, "settings")[at] == "← bn2, input"
        await go_to_row(pilot, "layer1.0.add")
        assert "input (maxpool): 64×56×56" in detail(app) and "rule: Add" in detail(app)
        await pilot.press("n")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, InputsDialog)
        assert [name for name, _ in dialog.choices] == ["input", "conv1", "bn1", "relu", "conv2", "bn2"]
        # the cursor starts on the last name read (bn2): drop it, pick relu instead
        await pilot.press("space")  # drops bn2
        await pilot.press("up", "up", "space")  # picks relu
        await pilot.press("enter")
        await pilot.pause()

        def change(data):
            data["blocks"]["BasicBlock"]["layers"][5]["inputs"] = ["input", "relu"]

        assert app.designer.network == edited(original, change)
        assert table_column(app, "settings")[at] == "← input, relu"
        await pilot.press("o")  # an Add has no size settings: the dialog gives the solver's refusal
        await pilot.pause()
        assert app.screen.refusal is not None and app.screen.query_one("#solve-target").disabled
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is app.designer and app.designer.network == edited(original, change)


@pilot_test
async def test_a_merge_added_with_the_picker_reads_the_previous_and_the_last_matching_layer():
    layers = [{"type": "Conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1}, {"type": "ReLU"},
              {"type": "Conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1},
              {"type": "Conv2d", "out_channels": 4, "kernel_size": 1}]  # fmt: skip
    network = network_from_data({"name": "res", "input": [1, 8, 8], "layers": layers})
    app = ConvcalcApp(network)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await go_to_row(pilot, "conv2d_1")
        await pilot.press("i")
        await pilot.pause()
        assert isinstance(app.screen, LayerTypeDialog)
        await pilot.press(*"add", "enter")
        await pilot.pause()
        expected = network_from_data(
            {"name": "res", "input": [1, 8, 8],
             "layers": [*layers[:3], {"type": "Add", "inputs": ["conv2d_1", "relu_0"]}, layers[3]]}
        )  # fmt: skip
        assert app.designer.network == expected
        assert table_column(app, "type")[3] == "Add" and app.designer.selected == 3
        assert table_column(app, "output")[3] == "8×8×8"
        text = detail(app)
        assert "conv2d_1: 8×8×8" in text and "relu_0: 8×8×8" in text and "rule: Add" in text
        # a Cat at the end joins the 4-channel output with the last 8×8 map: 4 + 8 channels
        await pilot.press("a", *"cat", "enter")
        await pilot.pause()
        cat = app.designer.network.layers[-1]
        assert cat.type == "Cat" and cat.inputs == ["conv2d_2", "add_0"]
        assert table_column(app, "output")[-1] == "12×8×8"
        assert "4 + 8 = 12 along dim 1" in detail(app)


@pilot_test
async def test_repeat_is_a_field_and_makes_copies():
    original = load_spec(RESNET18)
    app = ConvcalcApp(*open_spec(RESNET18))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await go_to_row(pilot, "relu")
        await type_into(pilot, "#field-repeat", "3")
        await pilot.press("escape")
        await pilot.pause()

        def change(data):
            data["layers"][2]["repeat"] = 3

        expected = edited(original, change)
        assert app.designer.network == expected
        # a named item repeated is a Sequential of that name holding 0, 1, 2 (as torch names them)
        assert names_shown(app)[:7] == ["conv1", "bn1", "▾ relu", "relu.0", "relu.1", "relu.2", "maxpool"]
        assert (
            len(app.designer.analysis.rows) == len(analyze(expected).rows) == len(analyze(original).rows) + 2
        )


def test_group_and_merge_places_survive_edits():
    """Insert, delete, move and duplicate work on the item where it is written."""
    network = load_spec(RESNET18)
    rows = analyze(network).rows
    conv2 = next(row.index for row in rows if row.name == "layer1.0.conv2")
    moved, at = graphmodel.move_node(network, conv2, -1)
    assert moved.blocks["BasicBlock"].layers[2]["name"] == "conv2" and analyze(moved).rows[at].name.endswith(
        "conv2"
    )
    deleted = graphmodel.delete_node(network, next(r.index for r in rows if r.name == "layer1.0.relu"))
    assert [layer["name"] for layer in deleted.blocks["BasicBlock"].layers].count("relu") == 0
    copied, at = graphmodel.duplicate_node(network, conv2)
    assert analyze(copied).rows[at].name == "layer1.0.conv2_2"
    with pytest.raises(model.FieldErrors, match="already used"):
        graphmodel.edit_node(
            network, conv2, "Conv2d", {"name": "conv1", "out_channels": 64, "kernel_size": 3}
        )


def test_the_merge_rules_are_explained():
    analysis = analyze(load_spec(SPECS / "unet.yaml"))
    cat = next(row for row in analysis.rows if row.type == "Cat")
    lines = graphmodel.merge_lines(analysis, cat)
    assert re.search(r"rule: Cat joins along dim 1", "\n".join(lines))
    for name, shape in zip(cat.inputs, cat.input_shapes, strict=True):
        assert any(line.endswith(fmt_shape(shape)) for line in lines), name
    assert lines[-1] == f"output: {fmt_shape(cat.output_shape)}"


def test_designer_resnet18_opened(snap_compare):
    """ResNet-18 opened at 160×48: group rows with fold markers, full names, totals."""
    network, _ = open_spec(RESNET18)
    assert snap_compare(ConvcalcApp(network, RESNET18.relative_to(SPECS.parent)), terminal_size=SIZE)


@pilot_test
async def test_a_group_row_edits_repeat_and_block_parameters_of_its_item():
    """On a group row the editor holds the item's name, repeat and block parameters."""
    original = load_spec(RESNET18)
    app = ConvcalcApp(*open_spec(RESNET18))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await go_to_row(pilot, "▾ layer1")  # {type: BasicBlock, name: layer1, planes: 64, repeat: 2}
        assert app.designer.query_one("#group-repeat", Input).value == "2"
        assert app.designer.query_one("#group-planes", Input).value == "64"
        await type_into(pilot, "#group-repeat", "3")

        def change(data):
            data["layers"][4]["repeat"] = 3

        expected = edited(original, change)
        assert app.designer.network == expected
        assert "▾ layer1.2" in names_shown(app)
        assert f"{analyze(expected).total_params:,}" in totals(app)
        await type_into(pilot, "#group-repeat", "0")
        assert "greater than or equal to 1" in str(app.designer.query_one("#error-repeat", Static).visual)
        # the invalid value never reaches the network: it holds the last valid one (empty: repeat 1)
        assert app.designer.network == edited(original, lambda data: data["layers"][4].pop("repeat"))
        assert "✗" in totals(app)
        await pilot.press("escape", "ctrl+z")
        await pilot.pause()
        assert app.designer.network == original


def test_a_type_written_as_a_block_parameter_stays_one():
    """MobileNetV3's blocks write their activation as ``type: $act``: an edit of another field
    keeps the parameter (every use keeps its own activation)."""
    network = load_spec(SPECS / "mobilenet_v3_small.yaml")
    places = graphmodel.locate(network)
    index = next(
        i for i, loc in enumerate(places.nodes) if graphmodel.item_at(places.data, loc)["type"] == "$act"
    )
    row = analyze(network).rows[index]
    values = {**graphmodel.raw_item(network, index), "name": "act_renamed"}
    del values["type"]
    edited_network = graphmodel.edit_node(network, index, row.type, values)
    loc = places.nodes[index]
    assert graphmodel.item_at(spec_to_data(edited_network), loc) == {"type": "$act", **values}
    # the same activations, use by use (a literal type would give every use the same one)
    assert [r.type for r in analyze(edited_network).rows] == [r.type for r in analyze(network).rows]
