"""The designer screen: the layer table, the layer editor, the formulas and the totals.

State is ``self.history.current`` (an immutable ``Network``); every edit pushes a new one,
then ``_recompute`` runs ``engine.analyze`` and redraws. No torch on this path.
"""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
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

    def action_first_layer(self) -> None:
        if self.row_count:
            self.move_cursor(row=0)

    def action_last_layer(self) -> None:
        if self.row_count:
            self.move_cursor(row=self.row_count - 1)


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
        self.analysis: Analysis = analyze(network)
        self.selected = 0
        self.invalid: tuple[int, str] | None = None  # (row, message) of an edit that does not validate
        # the training form as last left (input id -> text), kept between visits of the screen
        self.train_form: dict[str, str] = {}
        self._shown: list[list[Text]] = []  # the table's cells as last drawn
        self._shown_results: list[tuple] = []  # what they show (GraphRows._table_keys)
        self._init_graph_rows()
        self._picture_chosen = False  # `p` pressed: the picture no longer follows the screen's height
        self._fix_offered = False  # the footer shows `f Fix`

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
            editor = LayerEditor(id="editor")
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
    def dirty(self) -> bool:
        return self.network != self.saved

    @property
    def busy(self) -> bool:
        """The editor is being rebuilt: the app holds the next key until it is (``app._settled``)."""
        editors = self.query(LayerEditor)  # none before compose and after unmount
        return bool(editors) and editors.first().loading

    def _update_title(self) -> None:
        name = str(self.path) if self.path else "unsaved spec"
        title, sub_title = f"convcalc · {self.network.name}", f"{name}{' ●' if self.dirty else ''}"
        if (self.title, self.sub_title) != (title, sub_title):
            self.title, self.sub_title = title, sub_title

    def _recompute(self) -> None:
        """Analyse the current network and redraw the table, totals and formula."""
        self.analysis = analyze(self.network)
        self.selected = min(self.selected, max(0, len(self.analysis.rows) - 1))
        if self.selected_group is not None and self.selected_group >= len(self.analysis.groups):
            self.selected_group = None
        self._fill_table()
        self._update_totals()
        self._update_detail()
        self._update_picture()
        self._update_title()
        offered = fixes.fixable(self.analysis, self.network, self.selected) is not None
        if offered != self._fix_offered:  # the footer shows `f Fix` only while there is one
            self._fix_offered = offered
            self._refresh_footer()

    def _row_cells(self, row: LayerResult) -> list[Text]:
        invalid = self.invalid is not None and self.invalid[0] == row.index
        style = "bold red" if row.errors or invalid else ("yellow" if row.warnings else "")
        mark = "✗" if row.errors or invalid else ("!" if row.warnings else "")
        done = row.output_shape is not None
        rf, _ = render.rf_text(row)
        cells = (
            mark, str(row.index), row.name, row.type, row.summary, fmt_shape(row.output_shape),
            f"{row.params:,}" if done else "—", f"{row.macs:,}" if done else "—", rf,
        )  # fmt: skip
        return [
            Text(
                cell,
                style=style,
                justify="right" if label in ("#", "output", "params", "MACs", "RF") else "left",
            )
            for label, cell in zip(COLUMNS, cells, strict=True)
        ]

    def _fill_table(self) -> None:
        """Show the analysis in the table: when the number of layers is unchanged only the
        cells that changed are rewritten (an edit usually changes a few columns)."""
        table = self.query_one("#layers", DataTable)
        results = self._table_keys()
        same_count = len(results) == len(self._shown)
        rows = [
            self._shown[i] if same_count and self._shown_results[i] == key else self._key_cells(key)
            for i, key in enumerate(results)
        ]
        if len(rows) == len(self._shown):
            for r, (new, old) in enumerate(zip(rows, self._shown, strict=True)):
                if new is old:
                    continue
                for c, (cell, before) in enumerate(zip(new, old, strict=True)):
                    if cell.plain != before.plain or cell.style != before.style:
                        # widening a column relayouts the table: only when the text needs it
                        wider = cell.cell_len > table.ordered_columns[c].content_width
                        table.update_cell_at(Coordinate(r, c), cell, update_width=wider)
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
        if a.ok:  # at the training form's batch size (its default until the form says otherwise)
            batch = self.train_batch
            train = memory.training_memory(a).training_peak(batch)
            text.append("   train ", "dim").append(render.human_bytes(train), "bold")
            text.append(f" @{batch}", "dim")
        # one line, cropped to the screen: wrapped, it pushed the error line below off the bar
        text.truncate(max(1, self.size.width - 2), overflow="ellipsis")
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
            self._fill_table()
            self._update_totals()
            return
        was_invalid = self.invalid is not None
        self.invalid = None
        if self.history.push(network, group=(event.index, event.field)):
            self._recompute()
        elif was_invalid:
            self._fill_table()
            self._update_totals()
        row = self._current_row()
        if row is not None:
            editor.update_hints(row)
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
        if self.has_structure:  # the solver's fixes are whole stacks, by layer (model.size_choices)
            self.notify(
                "o sizes the layers of a plain stack; in a spec with blocks or groups type the fields "
                "(the formula pane shows the arithmetic)",
                title="Output size",
                timeout=6,
            )
            return
        index = row.index

        async def done(choice: model.SizeChoice | None) -> None:
            if choice is None or choice.network is None:
                return
            await self._apply(choice.network)
            self._refresh_footer()
            self.notify(f"Layer {index}: {choice.fix.description} (ctrl+z undoes)", timeout=4)

        self.app.push_screen(OutputSizeDialog(self.network, row), done)

    async def action_fix(self) -> None:
        """Apply the engine's fix for the selected layer's error (else the first fixable one) as
        one undo step, and select the layer it changed."""
        problem = fixes.fixable(self.analysis, self.network, self.selected)
        if problem is None:
            return
        try:
            network = fixes.apply_fix(self.network, problem)
        except SpecError as error:
            self.notify(str(error), title="Fix not applied", severity="error", timeout=8)
            return
        self.selected = problem.index  # the layer changed, or the Flatten put before it
        await self._apply(network)  # no group: one undo step of its own
        self.notify(f"{fixes.describe(problem)} (ctrl+z undoes)", title="Fixed", timeout=4)

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
