"""The designer's key-to-screen path (issue 12, point 2; bench/README.md "Key to screen"): the
frame that shows a typed character comes before the edit's redraw, edits share one redraw,
nothing reads the analysis of the network before an edit, the layer table renders only the
cells that changed (and the same cells a plain DataTable renders), and typing into a field
does not relayout the screen. Counts of calls, never times."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.text import Text
from textual.app import App
from textual.coordinate import Coordinate
from textual.screen import Screen
from textual.widgets import DataTable, Input

import convcalc.tui.designer as designer_module
from bench.bench_tui import fifty_layers  # the bench's 50-layer spec, measured there
from convcalc.engine import analyze, fmt_shape
from convcalc.tui.app import ConvcalcApp
from convcalc.tui.designer import LayerTable
from convcalc.tui.editor import LayerEditor
from tests.test_tui import pilot_test

SIZE = (140, 45)  # as bench/bench_tui.py: the picture shown, about a dozen table rows
_ESCAPE = re.compile(r"\x1b\[(\d+);(\d+)H|\x1b\[[0-9;:?]*[A-Za-z]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")


def first_block():
    """The 50-layer spec's first Conv-BN-ReLU: where the spec's size does not matter."""
    return fifty_layers().model_copy(update={"layers": fifty_layers().layers[:3]})


class Terminal:
    """The characters a terminal shows: each composed update written as the driver writes it."""

    def __init__(self, app: App, size: tuple[int, int]):
        self.lines = [[" "] * size[0] for _ in range(size[1])]
        self.frames = 0
        display = app._display

        def shown(screen, update) -> None:
            display(screen, update)
            if update is not None:
                self.write(update.render_segments(app.console))
                self.frames += 1
                self.after_frame()

        app._display = shown
        self.after_frame = lambda: None

    def write(self, sequence: str) -> None:
        x = y = at = 0
        for match in [*_ESCAPE.finditer(sequence), None]:
            text = sequence[at : match.start() if match else len(sequence)].replace("\n", "")
            for char in text:
                if 0 <= y < len(self.lines) and 0 <= x < len(self.lines[y]):
                    self.lines[y][x] = char
                x += 1
            if match is not None:
                at = match.end()
                if match.group(1):
                    y, x = int(match.group(1)) - 1, int(match.group(2)) - 1

    def text_of(self, widget) -> str:
        region = widget.region
        return "".join(self.lines[region.y][region.x : region.right])


def counting_analyze(monkeypatch) -> list:
    """The designer's ``analyze``, recording each network it is given."""
    seen = []

    def counted(network):
        seen.append(network)
        return analyze(network)

    monkeypatch.setattr(designer_module, "analyze", counted)
    return seen


@pilot_test
async def test_the_typed_digit_is_on_screen_before_the_edit_is_analysed(monkeypatch):
    app = ConvcalcApp(fifty_layers())
    terminal = Terminal(app, SIZE)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.click("#field-out_channels")
        await pilot.press("end", "ctrl+u", "3")
        await pilot.pause()
        field = app.designer.query_one("#field-out_channels")
        seen = counting_analyze(monkeypatch)
        at_echo = []  # how many networks were analysed when a frame first showed "37" in the field

        def after_frame() -> None:
            if not at_echo and "37" in terminal.text_of(field):
                at_echo.append(len(seen))

        terminal.after_frame = after_frame
        await pilot.press("7")
        await pilot.pause()
        edited = [network for network in seen if network.layers[0].out_channels == 37]
        assert at_echo == [0], "the frame with the typed digit waited for the edit's analysis"
        assert len(edited) == 1  # then analysed once, and drawn
        row = app.designer.query_one("#layers", DataTable).get_row_at(0)
        assert str(row[5]) == fmt_shape(analyze(edited[0]).rows[0].output_shape) == "37×224×224"


@pilot_test
async def test_edits_before_a_frame_share_one_redraw(monkeypatch):
    app = ConvcalcApp(fifty_layers())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = app.designer
        seen = counting_analyze(monkeypatch)
        values = screen.query_one(LayerEditor).values()
        for channels in (40, 41, 42):
            await screen._edited(
                LayerEditor.Edited(0, "Conv2d", {**values, "out_channels": channels}, "out_channels")
            )
        assert seen == []  # nothing analysed before the frame
        assert screen.network.layers[0].out_channels == 42  # but the spec (save, quit) holds the edit
        await pilot.pause()
        assert [network.layers[0].out_channels for network in seen] == [42]
        table = screen.query_one("#layers", DataTable)
        expected = analyze(screen.network)
        assert [str(cell) for cell in table.get_column("output")] == [
            fmt_shape(row.output_shape) for row in expected.rows
        ]
        assert f"{expected.total_params:,}" in str(screen.query_one("#totals").visual)


@pilot_test
async def test_reading_the_analysis_before_the_redraw_gets_the_edited_network():
    """A click or a command between an edit and its frame acts on the edited network."""
    app = ConvcalcApp(fifty_layers())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = app.designer
        values = screen.query_one(LayerEditor).values()
        await screen._edited(LayerEditor.Edited(0, "Conv2d", {**values, "out_channels": 5}, "out_channels"))
        assert screen.analysis.rows[0].output_shape == (5, 224, 224)
        expected = analyze(screen.network)  # (rows hold callables: compared by what they show)
        assert [row.output_shape for row in screen.analysis.rows] == [
            row.output_shape for row in expected.rows
        ]
        assert screen.analysis.total_params == expected.total_params
        table = screen.query_one("#layers", DataTable)
        assert str(table.get_cell_at(Coordinate(1, 5))) == "5×224×224"  # drawn with it


@pilot_test
async def test_an_invalid_edit_marks_its_row_after_the_frame_and_a_valid_one_clears_it():
    app = ConvcalcApp(first_block())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.click("#field-kernel_size")
        await pilot.press("end", "ctrl+u", "0")  # kernel_size 0: does not validate
        await pilot.pause()
        screen = app.designer
        table = screen.query_one("#layers", DataTable)
        assert screen.invalid is not None and screen.invalid[0] == 0
        assert str(table.get_cell_at(Coordinate(0, 0))) == "✗"
        assert "✗ layer 0:" in str(screen.query_one("#totals").visual)
        assert screen.query_one("#error-kernel_size").display  # the field's own message stays
        await pilot.press("backspace", "5")
        await pilot.pause()
        assert screen.invalid is None and screen.network.layers[0].kernel_size == 5
        assert str(table.get_cell_at(Coordinate(0, 0))) == ""
        assert str(table.get_cell_at(Coordinate(0, 5))) == "32×222×222"


@pilot_test
async def test_typing_into_a_field_does_not_relayout_the_screen(monkeypatch):
    layouts = []
    refresh_layout = Screen._refresh_layout

    def counted(self, *args, **kwargs):
        layouts.append(self)
        return refresh_layout(self, *args, **kwargs)

    monkeypatch.setattr(Screen, "_refresh_layout", counted)
    app = ConvcalcApp(first_block())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.click("#field-out_channels")
        await pilot.press("end", "backspace", "1")  # 31: the title's "unsaved" mark (a relayout)
        await pilot.pause()
        layouts.clear()
        for key in ("backspace", "3", "backspace", "4"):  # 3, 33, 3, 34: no text wider than before
            await pilot.press(key)
            await pilot.pause()
        assert app.designer.network.layers[0].out_channels == 34
        assert layouts == []


@pilot_test
async def test_a_long_name_scrolls_inside_its_field():
    """The fields keep Input's own scrolling (their virtual size no longer relayouts)."""
    app = ConvcalcApp(first_block())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.click("#field-name")
        field = app.designer.query_one("#field-name", Input)
        field.value = "a_rather_long_layer_name_" * 2  # 50 characters in a field of 26 (a paste)
        await pilot.press("end", "s")  # and one typed at its end
        await pilot.pause()
        name = "a_rather_long_layer_name_" * 2 + "s"
        assert app.designer.network.layers[0].name == name
        assert field.scroll_x > 0 and field.scroll_x + field.content_size.width > len(name)  # the cursor
        await pilot.press("home")
        await pilot.pause()
        assert field.scroll_x == 0


def count_cell_renders(monkeypatch) -> list:
    rendered = []
    render_cell = DataTable._render_cell

    def counted(self, row_index, column_index, *args, **kwargs):
        rendered.append((row_index, column_index))
        return render_cell(self, row_index, column_index, *args, **kwargs)

    monkeypatch.setattr(DataTable, "_render_cell", counted)
    return rendered


def count_row_renders(monkeypatch) -> list:
    """The rows DataTable draws anew (it asks for the row's style only then)."""
    rendered = []
    row_style = DataTable._get_row_style

    def counted(self, row_index, *args, **kwargs):
        rendered.append(row_index)
        return row_style(self, row_index, *args, **kwargs)

    monkeypatch.setattr(DataTable, "_get_row_style", counted)
    return rendered


@pilot_test
async def test_an_edit_renders_only_the_changed_cells_and_a_move_two_rows(monkeypatch):
    app = ConvcalcApp(fifty_layers())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = app.designer
        table = screen.query_one("#layers", DataTable)
        before = [table.get_row_at(r) for r in range(table.row_count)]
        rendered = count_cell_renders(monkeypatch)
        values = screen.query_one(LayerEditor).values()
        await screen._edited(LayerEditor.Edited(0, "Conv2d", {**values, "out_channels": 20}, "out_channels"))
        await pilot.pause()
        changed = {
            (r, c)
            for r in range(table.row_count)
            for c, cell in enumerate(table.get_row_at(r))
            if cell is not before[r][c]
        }
        assert changed and set(rendered) <= changed  # 20×224×224 etc.: layer 0's and its neighbours'
        visible = {r for r, _ in rendered}
        assert visible and max(visible) < table.size.height  # the rows on screen only
        rendered.clear()
        await pilot.press("escape", "down")  # the cursor from layer 0 to layer 1
        await pilot.pause()
        assert {r for r, _ in rendered} <= {0, 1}
        last = table.scrollable_content_region.height - table.header_height - 1  # the last row shown
        table.move_cursor(row=last, animate=False)
        await pilot.pause()
        rows = count_row_renders(monkeypatch)
        await pilot.press("down")  # the table scrolls a line: every line is drawn again
        await pilot.pause()
        assert table.scroll_y == 1
        assert rows and set(rows) <= {last, last + 1}  # but only the cursor's rows are rendered


class Tables(App):
    """A LayerTable and a plain DataTable, the same size, side by side."""

    CSS = "DataTable { width: 50; height: 10; }"

    def compose(self):
        yield LayerTable(id="ours", cursor_type="row", zebra_stripes=True)
        yield DataTable(id="theirs", cursor_type="row", zebra_stripes=True)


operation = st.one_of(
    st.tuples(
        st.just("cell"), st.integers(0, 29), st.integers(0, 2), st.text("ab×12 ", max_size=12), st.booleans()
    ),
    st.tuples(st.just("move"), st.integers(0, 29)),
    st.tuples(st.just("hover"), st.integers(0, 11)),
    st.tuples(st.just("scroll"), st.integers(0, 25)),
)


@pytest.mark.slow  # 10-15 s: a pair of tables mounted per example
@settings(max_examples=20, deadline=None)
@given(st.lists(operation, min_size=1, max_size=8))
def test_the_layer_table_draws_what_a_data_table_draws(operations):
    @pilot_test
    async def run():
        app = Tables()
        async with app.run_test(size=(100, 12)) as pilot:
            tables = [app.query_one("#ours", DataTable), app.query_one("#theirs", DataTable)]
            for table in tables:
                table.add_columns("#", "output", "RF")
                table.add_rows([[Text(str(r), justify="right"), Text("1×28×28"), "3"] for r in range(30)])
            app.set_focus(None)  # a focused table draws its header and cursor in other colours
            await pilot.pause()
            for op in operations:
                for table in tables:
                    if op[0] == "cell":
                        table.update_cell_at(Coordinate(op[1], op[2]), Text(op[3]), update_width=op[4])
                    elif op[0] == "move":
                        table.move_cursor(row=op[1], animate=False)
                    elif op[0] == "hover":
                        table.hover_coordinate = Coordinate(op[1], 0)
                    else:
                        table.scroll_to(y=op[1], animate=False)
                await pilot.pause()
                ours, theirs = (table.render_lines(table.size.region) for table in tables)
                assert [list(strip) for strip in ours] == [list(strip) for strip in theirs]

    run()
