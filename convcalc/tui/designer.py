"""The designer screen: the layer table, the layer editor, the formulas and the totals.

State is ``self.history.current`` (an immutable ``Network``); every edit pushes a new one,
then ``_recompute`` runs ``engine.analyze`` and redraws. No torch on this path.
"""

from __future__ import annotations

import operator
from pathlib import Path

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.cache import LRUCache
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.coordinate import Coordinate
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from convcalc import memory, render
from convcalc.engine import Analysis, LayerResult, analyze, fmt_count, fmt_shape
from convcalc.errors import ConvcalcError, SpecError
from convcalc.spec import Network, load_spec
from convcalc.tui import fixes, graphmodel, model
from convcalc.tui.dialogs import (
    ConfirmDialog,
    HelpDialog,
    LayerTypeDialog,
    NetworkDialog,
    PathDialog,
    UnsavedDialog,
)
from convcalc.tui.editor import LayerEditor
from convcalc.tui.graphscreen import GraphRows
from convcalc.tui.picture import NetworkPicture
from convcalc.tui.size_dialog import OutputSizeDialog
from convcalc.tui.wording import tui_text

_MOVE = Binding.Group("Move", compact=True)
_UNDO = Binding.Group("Undo/redo", compact=True)
COLUMNS = ("", "#", "name", "type", "settings", "output", "params", "MACs", "RF")
_JUSTIFY = tuple("right" if label in ("#", "output", "params", "MACs", "RF") else "left" for label in COLUMNS)
_OFF_ROW = Coordinate(-2, 0)  # on no row, header (-1) included
PICTURE_MIN_HEIGHT = 44  # rows: from here the picture (12) leaves the table a dozen layers

# What Enter on a row edits first: the field people change first (else the first field).
PRIMARY_FIELDS = ("out_channels", "out_features", "kernel_size", "output_size", "p", "scale_factor",
                  "num_groups", "padding", "normalized_shape", "negative_slope", "dim")  # fmt: skip


class LayerTable(DataTable):
    """The layer table: Home/End and g/G go to the first and last layer, j/k move (as in less
    and vim), PageUp/PageDown a page (DataTable's own)."""

    BINDINGS = [
        Binding("question_mark", "screen.help", "Help", show=False),
        Binding("home,g", "first_layer", "First", show=False),
        Binding("end,G", "last_layer", "Last", show=False),
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        # group rows of a graph spec (without groups ←/→ scroll sideways, as before)
        Binding("space", "screen.fold('toggle')", "Fold", show=False),
        Binding("left", "screen.fold('close')", "Fold", show=False),
        Binding("right", "screen.fold('open')", "Unfold", show=False),
    ]

    def __init__(self, *args, **kwargs):
        # (row, column, look) -> (the cell's value, its rendered lines). DataTable keys its own
        # cell cache by a count of all updates, so rewriting one cell re-rendered every visible
        # cell in the next frame (90 at 140×45, most of a digit's ~100 ms, bench/README.md).
        # Holding the value makes `is` a safe test: its id cannot be reused while held.
        self._cells: LRUCache[tuple, tuple[object, list]] = LRUCache(10000)  # before: init clears it
        self._rows: LRUCache[tuple, tuple[tuple, tuple]] = LRUCache(1000)  # (row, look) -> (cells, lines)
        super().__init__(*args, **kwargs)

    def _render_cell(self, row_index, column_index, base_style, width, cursor=False, hover=False):
        if column_index < 0:  # row labels (none here): DataTable's own cache
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        if row_index < 0:  # the header
            row_key, value, height = None, self.ordered_columns[column_index].label, self.header_height
        else:
            row_key = self._row_locations.get_key(row_index)
            value = self._data[row_key][self._column_locations.get_key(column_index)]
            height = self.rows[row_key].height
        look = (row_key, row_index, column_index, base_style, width, cursor, hover, height,
                self.show_cursor, self._show_hover_cursor, self._pseudo_class_state)  # fmt: skip
        held = self._cells.get(look)
        if held is not None and held[0] is value:
            return held[1]
        lines = super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        self._cells[look] = (value, lines)
        return lines

    def _render_line_in_row(self, row_key, line_no, base_style, cursor_location, hover_location):
        # A row cursor paints a line by "is the cursor (the mouse) on this row", but DataTable
        # keys its row cache by both positions (a move re-rendered every visible row) and by
        # the update count (an edit, too). Any position off the row draws the same, so all of
        # them are passed as one; a row whose cells are the same objects draws the same.
        if self.cursor_type != "row" or self.fixed_columns or self._labelled_row_exists:
            return super()._render_line_in_row(row_key, line_no, base_style, cursor_location, hover_location)
        row = self._row_locations.get(row_key) if row_key in self._row_locations else -1  # -1: header
        cursor_location = Coordinate(row, 0) if cursor_location.row == row else _OFF_ROW
        hover_location = Coordinate(row, 0) if hover_location.row == row else _OFF_ROW
        columns = self.ordered_columns
        values = self._data.get(row_key)
        cells = tuple(values.values()) if values is not None else tuple(column.label for column in columns)
        height = self.rows[row_key].height if values is not None else self.header_height
        look = (row_key, row, line_no, height, base_style, cursor_location, hover_location, self.show_cursor,
                self._show_hover_cursor, self._pseudo_class_state, self.size.width,
                tuple(column.get_render_width(self) for column in columns))  # fmt: skip
        held = self._rows.get(look)
        if held is not None and len(held[0]) == len(cells) and all(map(operator.is_, held[0], cells)):
            return held[1]
        lines = super()._render_line_in_row(row_key, line_no, base_style, cursor_location, hover_location)
        self._rows[look] = (cells, lines)
        return lines

    def notify_style_update(self) -> None:
        self._cells.clear()  # a theme or CSS change: every look changes (as DataTable clears its caches)
        self._rows.clear()
        super().notify_style_update()

    def _clear_caches(self) -> None:
        self._cells.clear()
        self._rows.clear()
        super()._clear_caches()

    def action_first_layer(self) -> None:
        if self.row_count:
            self.move_cursor(row=0)

    def action_last_layer(self) -> None:
        if self.row_count:
            self.move_cursor(row=self.row_count - 1)

    _holding: bool | None = None  # in ``update_cells``: True once a repaint was asked for

    def update_cells(self, changes: list[tuple[int, int, Text]]) -> None:
        """Rewrite cells (line, column, text) with one repaint: ``update_cell`` repaints the
        table for each cell (an edit of a ResNet-50 block's kernel rewrites 250 RF cells). A
        column is widened only when a text needs it (that relayouts the table)."""
        rows, columns = self.ordered_rows, self.ordered_columns
        self._holding = False
        try:
            for line, column, cell in changes:
                wider = cell.cell_len > columns[column].content_width
                self.update_cell(rows[line].key, columns[column].key, cell, update_width=wider)
        finally:
            held, self._holding = self._holding, None
        if held:
            self.refresh()

    def refresh(self, *regions, **kwargs) -> LayerTable:
        if self._holding is not None and not regions and not kwargs:  # update_cell's plain repaint
            self._holding = True
            return self
        return super().refresh(*regions, **kwargs)


class DesignerScreen(GraphRows, Screen):
    """Edit a network; ``path`` is where it is saved (None: not saved yet)."""

    BINDINGS = [
        Binding("a", "add", "Add"),
        Binding("i", "insert", "Insert"),
        Binding("c", "duplicate", "Duplicate"),
        Binding("x,delete", "delete", "Delete"),
        Binding("shift+up", "move(-1)", "Move up", key_display="⇧↑", group=_MOVE),
        Binding("shift+down", "move(1)", "Move down", key_display="⇧↓", group=_MOVE),
        Binding("s", "network", "Input"),
        Binding("p", "picture", "Picture", show=False),  # in the help (f1): the footer is full at 130
        Binding("o", "output_size", "Output"),
        Binding("f", "fix", "Fix"),  # shown only while an error has a fix the engine can apply
        Binding("n", "inputs", "Inputs", show=False),
        Binding("ctrl+t", "train", "Train"),
        Binding("ctrl+z", "undo", "Undo", group=_UNDO),
        Binding("ctrl+y", "redo", "Redo", group=_UNDO),
        Binding("ctrl+o", "open", "Open"),
        Binding("ctrl+s", "save", "Save"),
        Binding("ctrl+r", "save_as", "Save as"),
        Binding("ctrl+n", "new", "New", show=False),
        Binding("f1", "help", "Help"),
        Binding("escape", "focus_table", "Table", show=False),
    ]

    def __init__(self, network: Network, path: Path | None):
        super().__init__()
        self.history = model.History(network)
        self.saved = network  # what is on disk at `path`; unsaved changes = current != saved
        self.path = path
        self._redraw_pending = False  # an edit's redraw waits for the frame that shows the key (_edited)
        self._editor: LayerEditor | None = None  # from compose on
        self._analysis: Analysis = analyze(network)
        self._analysed = network  # the network `_analysis` is of
        self.selected = 0
        self.invalid: tuple[int, str] | None = None  # (row, message) of an edit that does not validate
        # the training form as last left (input id -> text), kept between visits of the screen
        self.train_form: dict[str, str] = {}
        self._shown: list[list[Text]] = []  # the table's cells as last drawn
        self._shown_results: list[tuple] = []  # what they show (GraphRows._table_keys)
        self._init_graph_rows()
        self._picture_chosen = False  # `p` pressed: the picture no longer follows the screen's height
        self._fix_offered = False  # the footer shows `f Fix`
        self._train: tuple[Analysis, int, int] | None = None  # (analysis, batch, its training peak)

    # ----------------------------------------------------------------------------------
    # Layout

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="main"):
            with Vertical(id="left"):
                table = LayerTable(id="layers", cursor_type="row", zebra_stripes=True)
                table.border_title = "Layers"
                yield table
                detail = VerticalScroll(Static("", id="detail-text"), id="detail")
                detail.border_title = "Formula"
                yield detail
                picture = NetworkPicture(id="picture")
                picture.border_title = "Picture · receptive field"
                yield picture
            editor = self._editor = LayerEditor(id="editor")
            editor.border_title = "Layer"
            yield editor
        yield Static("", id="totals")
        yield Footer(compact=True)

    async def on_mount(self) -> None:
        table = self.query_one("#layers", DataTable)
        for label in COLUMNS:
            justify = "right" if label in ("#", "output", "params", "MACs", "RF") else "left"
            table.add_column(Text(label, justify=justify), key=label or "mark")
        self._recompute()
        await self._load_editor()
        table.focus()

    # ----------------------------------------------------------------------------------
    # State

    @property
    def network(self) -> Network:
        return self.history.current

    @property
    def analysis(self) -> Analysis:
        """The analysis on screen. An edit's redraw still waiting for its frame is done first: a
        click or a command never acts on the network as it was before the edit."""
        if self._redraw_pending:
            self._redraw()
        return self._analysis

    @property
    def dirty(self) -> bool:
        return self.network != self.saved

    @property
    def busy(self) -> bool:
        """The editor is being rebuilt: the app holds the next key until it is (``app._settled``)."""
        # held since compose: a DOM query here took 5 ms, on every check of every key's wait
        return self._editor is not None and self._editor.loading

    def _update_title(self) -> None:
        name = str(self.path) if self.path else "unsaved spec"
        title, sub_title = f"convcalc · {self.network.name}", f"{name}{' ●' if self.dirty else ''}"
        if (self.title, self.sub_title) != (title, sub_title):
            self.title, self.sub_title = title, sub_title

    def _recompute(self) -> None:
        """Analyse the current network and redraw the table, totals and formula."""
        self._redraw_pending = False  # this is the redraw a pending one would do
        self._analysis, self._analysed = analyze(self.network), self.network
        self.selected = min(self.selected, max(0, len(self.analysis.rows) - 1))
        if self.selected_group is not None and self.selected_group >= len(self.analysis.groups):
            self.selected_group = None
        self._fill_table()
        self._update_totals()
        self._update_detail()
        self.call_after_refresh(self._update_picture)  # 2 ms for ResNet-50: after the table's frame
        self._update_title()
        offered = fixes.fixable(self.analysis, self.network, self.selected) is not None
        if offered != self._fix_offered:  # the footer shows `f Fix` only while there is one
            self._fix_offered = offered
            self._refresh_footer()

    def _row_cells(self, row: LayerResult) -> tuple[list[str], str]:
        """A layer row's cells as text, and their style."""
        invalid = self.invalid is not None and self.invalid[0] == row.index
        style = "bold red" if row.errors or invalid else ("yellow" if row.warnings else "")
        mark = "✗" if row.errors or invalid else ("!" if row.warnings else "")
        done = row.output_shape is not None
        rf, _ = render.rf_text(row)
        cells = [
            mark, str(row.index), row.name, row.type, row.summary, fmt_shape(row.output_shape),
            f"{row.params:,}" if done else "—", f"{row.macs:,}" if done else "—", rf,
        ]  # fmt: skip
        return cells, style

    @staticmethod
    def _texts(cells: list[str], style: str, old: list[Text] | None) -> list[Text]:
        """A line's cells as the table shows them, the unchanged ones of ``old`` kept (a Text
        each is most of the cost of a line that changed: an RF edit changes 150 of ResNet-50's)."""
        if old is None or old[0].style != style:  # a line's cells share one style
            return [Text(cell, style=style, justify=_JUSTIFY[c]) for c, cell in enumerate(cells)]
        return [
            before if before.plain == cell else Text(cell, style=style, justify=_JUSTIFY[c])
            for c, (cell, before) in enumerate(zip(cells, old, strict=True))
        ]

    def _fill_table(self) -> None:
        """Show the analysis in the table: when the number of layers is unchanged only the
        cells that changed are rewritten (an edit usually changes a few columns)."""
        table = self.query_one("#layers", DataTable)
        results = self._table_keys()
        same_count = len(results) == len(self._shown)
        rows = [
            self._shown[i]
            if same_count and self._shown_results[i] == key
            else self._texts(*self._key_cells(key), self._shown[i] if same_count else None)
            for i, key in enumerate(results)
        ]
        if len(rows) == len(self._shown):
            table.update_cells([
                (r, c, cell)
                for r, (new, old) in enumerate(zip(rows, self._shown, strict=True))
                if new is not old
                for c, (cell, before) in enumerate(zip(new, old, strict=True))
                if cell is not before
            ])  # fmt: skip
        else:
            table.clear()
            table.add_rows(rows)
        self._shown, self._shown_results = rows, results
        table.border_title = f"Layers · input {fmt_shape(self.network.input)}"
        if rows and table.cursor_row != (line := self._cursor_line()):
            table.move_cursor(row=line, animate=False)

    @property
    def train_batch(self) -> int:
        """The training form's batch size, as last left there; else ``convcalc train``'s default."""
        text = self.train_form.get("batch-size", "")
        return int(text) if text.isdigit() and 0 < int(text) < 2**31 else memory.DEFAULT_BATCH

    def on_screen_resume(self) -> None:
        self._update_totals()  # back from the training screen: its batch size may have changed

    def _update_totals(self) -> None:
        a = self.analysis
        text = Text()
        text.append("in ", "dim").append(fmt_shape(a.input_shape), "bold")
        text.append(" → out ", "dim").append(fmt_shape(a.output_shape), "bold")
        text.append("   params ", "dim").append(f"{a.total_params:,}", "bold")
        text.append(f" ({render.human_bytes(a.param_bytes)})", "dim")
        text.append("   MACs ", "dim").append(render.human_count(a.total_macs), "bold")
        text.append("   outputs ", "dim").append(render.human_bytes(a.total_memory_bytes), "bold")
        text.append("/sample", "dim")
        width = max(1, self.size.width - 2)
        if a.ok and text.cell_len < width:  # at the training form's batch size (its default until
            # the form says otherwise); counted after the frame, until then the last count shows
            if not self._counted(a, self.train_batch):
                self.call_after_refresh(self._count_training)
            if self._train is not None:
                text.append("   train ", "dim").append(render.human_bytes(self._train[2]), "bold")
                text.append(f" @{self._train[1]}", "dim")
        # one line, cropped to the screen: wrapped, it pushed the error line below off the bar
        text.truncate(width, overflow="ellipsis")
        text.append("\n")
        if self.invalid is not None:
            text.append(f"✗ layer {self.invalid[0]}: {self.invalid[1]}", "bold red")
        elif a.errors:
            more = f" (+{len(a.errors) - 1} more)" if len(a.errors) > 1 else ""
            text.append(f"✗ {tui_text(str(a.errors[0]))}{more}", "bold red")
        elif a.warnings:
            more = f" (+{len(a.warnings) - 1} more)" if len(a.warnings) > 1 else ""
            text.append(f"! {tui_text(str(a.warnings[0]))}{more}", "yellow")
        else:
            text.append(f"✓ {fmt_count(len(a.rows), 'layer')}, no errors", "green")
        totals = self.query_one("#totals", Static)
        if str(totals.visual) != text.plain:
            totals.update(text, layout=False)  # fixed height: no relayout of the screen

    def _count_training(self) -> None:
        """The totals bar's training memory (``memory.training_memory``: 3 ms for ResNet-50, a
        fifth of a frame), once per analysis and batch size, after the frame that shows an edit."""
        a, batch = self.analysis, self.train_batch
        if a.ok and not self._counted(a, batch):
            self._train = (a, batch, memory.training_memory(a).training_peak(batch))
            self._update_totals()

    def _counted(self, analysis: Analysis, batch: int) -> bool:
        # `is`: two analyses compare equal field by field, a walk of every row
        return self._train is not None and self._train[0] is analysis and self._train[1] == batch

    @on(events.Resize)
    def _fit_totals(self) -> None:
        self._update_totals()  # cropped to the new width

    def _current_row(self) -> LayerResult | None:
        rows = self.analysis.rows
        return rows[self.selected] if rows else None

    def _update_detail(self) -> None:
        row = self._current_row()
        text = Text()
        if self.selected_group is not None:
            text = self._group_detail()
        elif row is None:
            text.append("Add a layer (a) to see its formulas here.", "dim")
        else:
            lines = render.explain_row(row)
            text.append(lines[0] + "\n", "bold")
            for line in lines[1:]:
                text.append(line + "\n")
            if row.receptive_field is not None:
                rf, jump = render.rf_text(row)
                text.append(f"    receptive field {rf}, jump {jump}\n", "cyan")
            self._merge_detail(text, row)
            for mark, style, problems in (("✗", "bold red", row.errors), ("!", "yellow", row.warnings)):
                for problem in problems:
                    fix = f"; fix: {tui_text(problem.fix)}" if problem.fix else ""
                    text.append(f"{mark} {problem.message}{fix}\n", style)
        detail = self.query_one("#detail-text", Static)
        if text.plain != str(detail.visual):
            # the formula's line count can change: relayout only then
            detail.update(text, layout=text.plain.count("\n") != str(detail.visual).count("\n"))

    async def _load_editor(self) -> None:
        self.invalid = None
        editor = self.query_one(LayerEditor)
        if self.selected_group is not None:
            fields = graphmodel.group_fields(self.network, self.selected_group)
            await editor.show_group(*self._group_note(), fields)
        elif self.has_structure and self.analysis.rows:  # the layer as written, and what an edit changes
            raw = graphmodel.raw_item(self.network, self.selected)
            note = graphmodel.where_text(self.network, self.selected)
            await editor.show_layer(self.selected, self._current_row(), raw, note)
        else:
            await editor.show_layer(self.selected if self.analysis.rows else None, self._current_row())
        self._show_row_problems()

    def _show_row_problems(self) -> None:
        """The engine's messages for the selected layer, under its fields."""
        row = self._current_row()
        if row is None:
            return
        messages = [f"{p.message}" + (f"; fix: {tui_text(p.fix)}" if p.fix else "") for p in row.errors]
        self.query_one(LayerEditor).show_errors({"": "\n✗ ".join(messages)} if messages else {})

    async def _apply(self, network: Network, group: object | None = None, reload_editor: bool = True) -> None:
        if not self.history.push(network, group):
            return
        self.invalid = None
        self._recompute()
        if reload_editor:
            await self._load_editor()

    # ----------------------------------------------------------------------------------
    # Events

    @on(DataTable.RowHighlighted, "#layers")
    async def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.cursor_row != event.data_table.cursor_row:
            return  # stale: a refill after a change of the line count moved the cursor on since
        row, group = self._line_at(event.cursor_row)
        shown = self.query_one(LayerEditor).index
        if (row, group) == (self.selected, self.selected_group) and shown == (row if group is None else None):
            return
        self.selected, self.selected_group = row, group
        self.history.seal()
        dropped = self.invalid
        await self._load_editor()
        if dropped is not None:  # never silently: the typed text did not validate, so it is not kept
            self.notify(
                f"layer {dropped[0]}: {dropped[1]}", title="Edit not applied", severity="warning", timeout=6
            )
            self._fill_table()
            self._update_totals()
        self._update_detail()
        self._update_picture()

    @on(DataTable.RowSelected, "#layers")
    def _row_selected(self) -> None:
        """Enter on a row: edit the field people change first (``PRIMARY_FIELDS``), else the
        first one."""
        editor = self.query_one(LayerEditor)
        widgets = {widget.id: widget for widget in editor.shown_fields() if widget.id != "layer-type"}
        for name in PRIMARY_FIELDS:
            if f"field-{name}" in widgets:
                widgets[f"field-{name}"].focus()
                return
        if widgets:
            next(iter(widgets.values())).focus()

    @on(LayerEditor.Edited)
    async def _edited(self, event: LayerEditor.Edited) -> None:
        editor = self.query_one(LayerEditor)
        try:
            edit = graphmodel.edit_node if self.has_structure else model.edit_layer
            network = edit(self.network, event.index, event.type_name, event.values)
        except model.FieldErrors as errors:
            editor.show_errors(errors.errors)
            self.invalid = (event.index, next(iter(errors.errors.values())))
            self._redraw_after_frame()
            return
        was_invalid = self.invalid is not None
        self.invalid = None
        if self.history.push(network, group=(event.index, event.field)) or was_invalid:
            self._redraw_after_frame()

    def _redraw_after_frame(self) -> None:
        """Redraw after the next frame, which then shows the typed character alone (a digit's
        redraw, analysis to picture, and its frame took ~100 ms on a 50-layer spec); edits made
        before it share one redraw. Keys wait for it (``ConvcalcApp._settled``: it is a
        screen callback), so each goes to the widget the state before it put in front."""
        if not self._redraw_pending:
            self._redraw_pending = True
            self.call_after_refresh(self._redraw)

    def _redraw(self) -> None:
        if not self._redraw_pending:  # done already (``analysis`` was read, or a recompute ran)
            return
        if self._analysed is not self.network:
            self._recompute()
        else:  # only the invalid mark changed
            self._redraw_pending = False
            self._fill_table()
            self._update_totals()
        row = self._current_row()
        if row is not None:
            self.query_one(LayerEditor).update_hints(row)
        if self.invalid is None:  # else the editor shows the field's own error
            self._show_row_problems()

    @on(LayerEditor.TypeChanged)
    async def _type_changed(self, event: LayerEditor.TypeChanged) -> None:
        change = graphmodel.change_type if self.has_structure else model.change_type
        try:
            await self._apply(change(self.network, event.index, event.type_name))
        except model.FieldErrors as errors:  # a block's layer whose new type does not fit every use
            self.notify(str(errors), title="Type not changed", severity="error", timeout=8)
        self.query_one("#layer-type").focus()

    # ----------------------------------------------------------------------------------
    # Actions

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        needs_layer = {"insert", "duplicate", "delete", "move", "output_size", "inputs"}
        if action in needs_layer and not self.network.layers:
            return None  # shown dimmed in the footer
        if action == "undo" and not self.history.can_undo:
            return None
        if action == "redo" and not self.history.can_redo:
            return None
        if action == "fix":
            return fixes.fixable(self.analysis, self.network, self.selected) is not None
        return True

    def _refresh_footer(self) -> None:
        self.refresh_bindings()

    def _nd(self) -> int:
        """The network input's spatial dims (the type picker lists those types first)."""
        return max(1, len(self.network.input) - 1)

    def action_help(self) -> None:
        self.app.push_screen(HelpDialog())

    async def add_layer(self, type_name: str) -> None:
        """Add a layer of ``type_name`` at the end (the command palette's "Add a layer")."""
        await self._add_at(len(self.network.layers))(type_name)

    def action_add(self) -> None:
        self.app.push_screen(
            LayerTypeDialog("Add a layer at the end", self._nd()), self._add_at(len(self.network.layers))
        )

    def action_insert(self) -> None:
        after = self.analysis.groups[self.selected_group].name if self.selected_group is not None else None
        self.app.push_screen(
            LayerTypeDialog(f"Insert a layer after {after or f'layer {self.selected}'}", self._nd()),
            self._add_at(self.selected + 1, after=self.selected),
        )

    def _add_at(self, index: int, after: int | None = None):
        """Add at ``index`` of a plain stack; in a graph (or a merge, given its inputs) after row
        ``after``'s item (or the selected group), ``None``: at the end."""

        async def add(type_name: str | None) -> None:
            if type_name is None:
                return
            if self.has_structure or type_name in graphmodel.MERGES:
                group = self.selected_group if after is not None else None
                item = graphmodel.new_item(type_name, self.analysis, after, group)
                try:
                    network, self.selected = graphmodel.insert_after(self.network, after, item, group)
                except model.FieldErrors as errors:
                    self.notify(str(errors), title="Not added", severity="error", timeout=8)
                    return
            else:
                network = model.insert_layer(self.network, index, model.new_layer(type_name))
                self.selected = index
            self.selected_group = None
            await self._apply(network)
            self._refresh_footer()

        return add

    async def _apply_graph(self, edit, *args) -> None:
        """A graph edit of the selected row (or group row); its error is shown, nothing changes."""
        try:
            result = edit(self.network, self.selected, *args, group=self.selected_group)
        except model.FieldErrors as errors:
            self.notify(str(errors), title="Not changed", severity="error", timeout=8)
            return
        network, self.selected = result if isinstance(result, tuple) else (result, self.selected)
        self.selected_group = None
        await self._apply(network)
        self._refresh_footer()

    async def action_delete(self) -> None:
        if self.has_structure:
            await self._apply_graph(graphmodel.delete_node)
            return
        await self._apply(model.delete_layer(self.network, self.selected))
        self._refresh_footer()

    async def action_duplicate(self) -> None:
        if self.has_structure:
            await self._apply_graph(graphmodel.duplicate_node)
            return
        network = model.duplicate_layer(self.network, self.selected)
        self.selected += 1
        await self._apply(network)

    async def action_move(self, offset: int) -> None:
        if self.has_structure:
            await self._apply_graph(graphmodel.move_node, offset)
            return
        target = self.selected + offset
        if not 0 <= target < len(self.network.layers):
            return
        network = model.move_layer(self.network, self.selected, offset)
        self.selected = target
        await self._apply(network)

    async def action_undo(self) -> None:
        if self.history.undo():
            await self._after_history()

    async def action_redo(self) -> None:
        if self.history.redo():
            await self._after_history()

    async def _after_history(self) -> None:
        field = self.focused.id if self.focused is not None and self.focused.id else None
        self.invalid = None
        self._recompute()
        await self._load_editor()
        self._refresh_footer()
        if field is not None and field.startswith(("field-", "layer-type")):  # the rebuilt editor's
            # same field keeps the focus (typing and Tab go on from it), else its first field
            shown = self.query_one(LayerEditor).shown_fields()
            widgets = [widget for widget in shown if widget.id == field] or shown
            if widgets:
                widgets[0].focus()

    def action_network(self) -> None:
        async def done(result) -> None:
            if result is not None:
                name, shape = result
                await self._apply(model.set_header(self.network, name, shape))

        self.app.push_screen(NetworkDialog(self.network.name, self.network.input), done)

    def action_output_size(self) -> None:
        """Offer the solver's settings that make the selected layer output a wanted H×W."""
        row = self._current_row()
        if row is None:
            return
        if self.selected_group is not None:
            self.notify("o sizes a layer: pick one of the group's layers (→ unfolds)", title="Output size")
            return
        index, apply, where = row.index, None, ""
        if self.has_structure:  # the fix goes where the layer is written: a block's, every use
            apply = graphmodel.field_setter(self.network, index)
            where = graphmodel.where_text(self.network, index)

        async def done(choice: model.SizeChoice | None) -> None:
            if choice is None or choice.network is None:
                return
            await self._apply(choice.network)
            self._refresh_footer()
            self.notify(f"Layer {index}: {choice.fix.description} (ctrl+z undoes)", timeout=4)

        self.app.push_screen(OutputSizeDialog(self.network, row, apply, where), done)

    async def action_fix(self) -> None:
        """Apply the engine's fix for the selected layer's error (else the first fixable one) as
        one undo step, and select the layer it changed."""
        problem = fixes.fixable(self.analysis, self.network, self.selected)
        if problem is None:
            return
        where = graphmodel.where_text(self.network, problem.index) if self.has_structure else ""
        try:
            network, self.selected = fixes.apply_fix(self.network, problem)  # the layer changed,
            # or the Flatten put before it
        except SpecError as error:
            self.notify(str(error), title="Fix not applied", severity="error", timeout=8)
            return
        self.selected_group = None
        await self._apply(network)  # no group: one undo step of its own
        where = f"; {where}" if where else ""
        self.notify(f"{fixes.describe(problem)}{where} (ctrl+z undoes)", title="Fixed", timeout=4)

    def _update_picture(self) -> None:
        self.query_one(NetworkPicture).show(self.analysis, self.selected if self.analysis.rows else None)

    def action_picture(self) -> None:
        """Show or hide the picture (``p``); shown at first on screens with room for it."""
        picture = self.query_one(NetworkPicture)
        self._picture_chosen = True
        picture.display = not picture.display
        picture.redraw()

    @on(events.Resize)
    def _picture_fits(self, event: events.Resize) -> None:
        if not self._picture_chosen:  # until `p` decides: shown only where the table keeps its rows
            picture = self.query_one(NetworkPicture)
            picture.display = event.size.height >= PICTURE_MIN_HEIGHT
            picture.redraw()

    def action_focus_table(self) -> None:
        self.query_one("#layers").focus()

    # Files -------------------------------------------------------------------------

    def save_to(self, path: Path) -> None:
        """Write the current network to ``path`` (raises ``SaveError``)."""
        model.write_spec(self.network, path)
        self.saved, self.path = self.network, path
        self._update_title()
        self.notify(f"Saved {path}", timeout=3)

    def action_save(self) -> None:
        self._unless_invalid("Save", "Save anyway", self._save)

    def _save(self) -> None:
        if self.path is None:
            self.action_save_as()
            return
        try:
            self.save_to(self.path)
        except ConvcalcError as error:
            self.notify(str(error), title="Not saved", severity="error", timeout=10)

    def _unless_invalid(self, what: str, anyway: str, proceed) -> None:
        """Run ``proceed`` now, or after asking: a field shows an edit that did not validate, so
        the network (what would be saved, or lost on quitting) does not hold it."""
        if self.invalid is None:
            proceed()
            return
        index, message = self.invalid
        question = (
            f"{what}: layer {index} shows an edit that is not applied ({message}); "
            "the spec holds that layer's last valid values."
        )
        self.app.push_screen(
            ConfirmDialog("Unapplied edit", question, anyway, "Go back and fix it"),
            lambda yes: proceed() if yes else None,
        )

    def action_save_as(self, then=None) -> None:
        initial = str(self.path) if self.path else f"{self.network.name}.yaml"

        def after(path: Path | None) -> None:
            if path is not None and then is not None:
                then()

        self.app.push_screen(PathDialog("Save as", initial, self.save_to), after)

    async def open_network(self, network: Network, path: Path | None) -> None:
        self.history = model.History(network)
        self.saved, self.path, self.selected, self.invalid = network, path, 0, None
        self._init_graph_rows()
        self._recompute()
        await self._load_editor()
        self._refresh_footer()

    def action_open(self) -> None:
        def load(path: Path) -> None:
            network = model.editable(load_spec(path), path)  # a SpecError is shown in the dialog
            self.app.call_later(self.open_network, network, path)

        self.unless_unsaved(
            "Open another spec", lambda: self.app.push_screen(PathDialog("Open spec", "", load, browse=True))
        )

    def action_new(self) -> None:
        def new() -> None:
            self.app.call_later(self.open_network, Network(name="network", input=model.NEW_INPUT), None)

        self.unless_unsaved("Start a new spec", new)

    def unless_unsaved(self, what: str, proceed, discard_label: str = "Discard", why: str = "") -> None:
        """Run ``proceed`` now, or after asking what to do with unsaved changes (``why``: a
        sentence after the question)."""
        if not self.dirty:
            proceed()
            return
        where = str(self.path) if self.path else "this new spec"

        def answered(choice: str | None) -> None:
            if choice == "discard":
                proceed()
            elif choice == "save":
                if self.path is None:
                    self.action_save_as(then=proceed)
                    return
                try:
                    self.save_to(self.path)
                except ConvcalcError as error:
                    self.notify(str(error), title="Not saved", severity="error", timeout=10)
                    return
                proceed()

        self.app.push_screen(
            UnsavedDialog(
                f"{what}: save the changes to {where} first?{' ' + why if why else ''}", discard_label
            ),
            answered,
        )

    def request_quit(self) -> None:
        self._unless_invalid(
            "Quit",
            "Quit anyway",
            lambda: self.unless_unsaved("Quit", self.app.exit, discard_label="Quit without saving"),
        )

    def action_train(self) -> None:
        from convcalc.tui.training import TrainingScreen

        if self.analysis.errors:
            self.notify(
                f"{self.analysis.errors[0]}", title="Fix the network before training", severity="error"
            )
            return
        self.app.push_screen(TrainingScreen(self.network))
