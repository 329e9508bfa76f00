"""The designer's graph rows: group rows that fold, the table line of each layer, the editor and
the formula pane for a group, and the inputs picker. A mixin of ``DesignerScreen`` (which owns
``network``, ``analysis``, ``selected`` and the table), so the screen stays one class while
this part of it lives apart; the rules themselves are in ``graphmodel`` (no widgets there).

A spec without groups has one table line per layer, in order: for it every method here is the
identity the designer had before (line ``i`` is layer ``i``).
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from convcalc import render
from convcalc.engine import LayerResult, fmt_shape
from convcalc.tui import graphmodel
from convcalc.tui.dialogs import InputsDialog


class GraphRows:
    """Fold state and line bookkeeping of the layer table."""

    def _init_graph_rows(self) -> None:
        self.folded: set[tuple[str, ...]] = set()  # paths of the groups shown as one row
        self.selected_group: int | None = None  # the group row under the cursor (analysis.groups)
        self._lines: list[graphmodel.Line] | None = None  # None: one line per layer

    @property
    def has_structure(self) -> bool:
        return graphmodel.has_structure(self.network)

    # The table ----------------------------------------------------------------------

    def _table_keys(self) -> list[tuple]:
        """What each table line shows, cheap to compare with the last drawing (a key per line:
        equal keys, equal cells): a layer row's shown fields (not the row itself, whose explain
        callables never compare equal), a group row's cells."""
        analysis = self.analysis
        invalid = self.invalid[0] if self.invalid else None
        rows = analysis.rows
        if not analysis.groups:
            self._lines = None
            return [self._row_key(row, invalid, 0) for row in rows]
        self._lines = graphmodel.table_lines(analysis, self.folded)
        spans = graphmodel.spans(analysis)
        keys: list[tuple] = []
        for line in self._lines:
            if line.row is not None:
                keys.append(self._row_key(rows[line.row], invalid, line.depth))
            else:
                path = analysis.groups[line.group].path
                cells = graphmodel.group_cells(analysis, line, path in self.folded, spans[path])
                out = rows[analysis.bounds[path][1]]
                keys.append((None, (*cells, render.rf_text(out)[0])))
        return keys

    def _row_key(self, row: LayerResult, invalid: int | None, depth: int) -> tuple:
        shown = (row.name, row.layer, row.inferred, row.output_shape, row.params, row.macs,
                 row.receptive_field, row.regime, bool(row.errors), bool(row.warnings))  # fmt: skip
        return (row.index, shown, row.index == invalid, depth, graphmodel.reads_text(self.analysis, row))

    def _key_cells(self, key: tuple) -> tuple[list[str], str]:
        """A table line's cells as text, and their style."""
        if key[0] is None:
            return list(key[1]), "bold"
        index, _, _, depth, reads = key
        cells, style = self._row_cells(self.analysis.rows[index])
        if depth:
            cells[2] = "  " * depth + cells[2]
        if reads:
            cells[4] = f"{cells[4]} {reads}".strip()
        return cells, style

    def _cursor_line(self) -> int:
        """The table line of the selection: its group row, its layer, or the folded group
        that hides the layer."""
        if self._lines is None:
            return self.selected
        hidden = None
        for number, line in enumerate(self._lines):
            if self.selected_group is not None:
                if line.group == self.selected_group:
                    return number
            elif line.row == self.selected:
                return number
            elif line.group is not None and self.selected in graphmodel.spans(self.analysis).get(
                self.analysis.groups[line.group].path, ()
            ):
                hidden = number if hidden is None else hidden
        return hidden if hidden is not None else 0

    def _line_at(self, number: int) -> tuple[int, int | None]:
        """(layer row, group) of table line ``number``: a group row selects its first layer."""
        if self._lines is None or number >= len(self._lines):
            return number, None
        line = self._lines[number]
        if line.group is None:
            return line.row, None
        return graphmodel.spans(self.analysis)[self.analysis.groups[line.group].path].start, line.group

    # Folding --------------------------------------------------------------------------

    async def action_fold(self, how: str) -> None:
        """``toggle``, ``close`` or ``open`` the group row under the cursor, or (on a layer)
        close the innermost group around it, leaving the cursor on that group's row."""
        table = self.query_one("#layers", DataTable)
        if self._lines is None:
            if how in ("close", "open"):  # no groups: ←/→ scroll sideways, as in any table
                table.action_scroll_left() if how == "close" else table.action_scroll_right()
            return
        group = self.selected_group
        if group is None:
            row = self.analysis.rows[self.selected]
            if not row.groups or how == "open":
                return
            group = self.analysis.groups.index(row.groups[-1])
        path = self.analysis.groups[group].path
        fold = path not in self.folded if how == "toggle" else how == "close"
        if fold == (path in self.folded) and self.selected_group == group:
            return
        self.folded.add(path) if fold else self.folded.discard(path)
        moved = self.selected_group != group
        self.selected_group = group
        self.selected = graphmodel.spans(self.analysis)[path].start
        self._fill_table()
        self._update_detail()
        if moved:  # the cursor went from a layer to its group's row
            self.history.seal()
            await self._load_editor()

    # The editor and the formula pane for a group row ----------------------------------

    def _group_note(self) -> tuple[str, str]:
        """The editor's title and text for the selected group row."""
        analysis = self.analysis
        group = analysis.groups[self.selected_group]
        span = graphmodel.spans(analysis)[group.path]
        read, out = analysis.bounds[group.path]
        shape_in = analysis.input_shape if read < 0 else analysis.rows[read].output_shape
        shape_out = analysis.rows[out].output_shape
        kind = "group" if group.kind == "Sequential" else f"block {group.kind}"
        used = sum(1 for other in analysis.groups if other.kind == group.kind)
        lines = [
            f"{kind}: {len(span)} layers, {fmt_shape(shape_in)} → {fmt_shape(shape_out)}",
            f"params {sum(analysis.rows[i].params for i in span):,}",
        ]
        if group.kind != "Sequential":
            lines.append(f"block {group.kind} is used {used} {'time' if used == 1 else 'times'}; "
                         "its layers are edited once for every use")  # fmt: skip
        lines.append("space folds or unfolds the group, ← folds, → unfolds")
        return f"{kind} · {group.name}", "\n".join(lines)

    async def on_layer_editor_group_edited(self, event) -> None:
        """A group row's name, repeat or block parameter typed: applied to the item that makes
        the group (one undo step per field), or its error shown beside the field."""
        editor = self.query_one("#editor")
        try:
            network = graphmodel.edit_group(self.network, self.selected_group, event.values)
        except graphmodel.model.FieldErrors as errors:
            editor.show_errors(errors.errors)
            self.invalid = (self.selected, next(iter(errors.errors.values())))
            self._update_totals()
            return
        self.invalid = None
        editor.show_errors({})
        loc = graphmodel.locate(self.network).groups[self.selected_group]
        if self.history.push(network, group=("group", loc, event.field)):
            # the same item's (first) group: a repeat of 1 or a new name changes the groups
            self.selected_group = graphmodel.locate(network).groups.index(loc)
            self._recompute()

    def _group_detail(self) -> Text:
        """The formula pane for a group row: what the group does and how to fold it."""
        title, note = self._group_note()
        return Text(title + "\n", "bold").append(note + "\n", "")

    def _merge_detail(self, text: Text, row: LayerResult) -> None:
        """Below the engine's lines: what the row reads (each input's name and shape) and, for a
        merge, its rule and output."""
        for line in graphmodel.merge_lines(self.analysis, row):
            text.append(line + "\n", "magenta")

    # Inputs ---------------------------------------------------------------------------

    def action_inputs(self) -> None:
        """Pick what the selected layer (or group row) reads from the names it may read (its scope's)."""
        if self.selected_group is not None:
            self._group_inputs()
            return
        row = self._current_row()
        if row is None:
            return
        choices = graphmodel.input_choices(self.analysis, row.index)
        current = [graphmodel.short_name(self.analysis, row, i) for i in row.inputs]
        index = row.index

        async def done(names: list[str] | None) -> None:
            if not names or names == current:
                return
            try:
                network = graphmodel.with_inputs(self.network, index, names)
            except graphmodel.model.FieldErrors as errors:
                self.notify(str(errors), title="Inputs not changed", severity="error", timeout=8)
                return
            await self._apply(network)

        self.app.push_screen(
            InputsDialog(f"What {row.name} reads", [(n, fmt_shape(s)) for n, s in choices], current), done
        )

    def _group_inputs(self) -> None:
        """``n`` on a group row: what the block use or ``Sequential`` reads, set on its item."""
        group = self.selected_group
        choices, current = graphmodel.group_inputs(self.network, self.analysis, group)
        loc = graphmodel.locate(self.network).groups[group]

        async def done(names: list[str] | None) -> None:
            if not names or names == current:
                return
            inputs = names[0] if len(names) == 1 else names
            try:
                network = graphmodel.edit_group(self.network, group, {"inputs": inputs})
            except graphmodel.model.FieldErrors as errors:
                self.notify(str(errors), title="Inputs not changed", severity="error", timeout=8)
                return
            self.selected_group = graphmodel.locate(network).groups.index(loc)
            await self._apply(network)

        name = self.analysis.groups[group].name
        self.app.push_screen(
            InputsDialog(f"What {name} reads", [(n, fmt_shape(s)) for n, s in choices], current), done
        )
