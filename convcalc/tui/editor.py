"""The layer editor: a type selector and one input per field of the selected layer.

It knows nothing of the network: it shows a layer, reports what the user typed as messages
(``Edited``, ``TypeChanged``) and shows the errors the screen sends back ("attributes
down, messages up").
"""

from __future__ import annotations

import asyncio
from itertools import pairwise
from typing import Any, NamedTuple

from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.geometry import Size
from textual.message import Message
from textual.reactive import Reactive
from textual.widgets import Input, Label, Select, Static

from convcalc.engine import LayerResult
from convcalc.spec import LAYER_CLASSES
from convcalc.tui import model

_INFERRED = {"in_channels", "in_features", "num_features"}


def _placeholder(row: LayerResult, field: str) -> str:
    """What an empty input means for this row: the default, or what the engine inferred."""
    if field == "name":
        return f"auto: {row.name}"
    if field in _INFERRED:
        value = row.inferred.get(field)
        return f"inferred: {value}" if value is not None else "inferred"
    default = model.field_default(row.type, field)
    if default is ...:
        return "required"
    if default is None:
        return "= kernel_size" if field == "stride" else "default: none"
    return f"default: {model.format_value(default)}"


def _kind(row: LayerResult, field: str, raw: dict[str, Any] | None) -> str | tuple[str, ...]:
    """How the field is edited: ``"bool"``, a tuple of choices, or ``"text"``."""
    written = raw.get(field) if raw is not None else None
    if isinstance(written, str) and written.startswith("$"):  # a block parameter: text, not a choice
        return "text"
    return model.field_kind(row.type, field)


class FieldInput(Input):
    """An editor field. Input sets its virtual size to the text's width on every change, and a
    widget's virtual size relayouts the whole screen when it changes (9-25 ms a keystroke here,
    in the frame that shows the character). A field's size is fixed by its row, and the Input
    scrolls its text by the virtual size it holds, so a change only repaints."""

    virtual_size = Reactive(Size(0, 0), layout=False)


class _Field(NamedTuple):
    """One field's row (label and input) and the error line under it, filled per layer."""

    kind: str | tuple[str, ...]
    row: Horizontal
    widget: Input | Select
    error: Static

    @classmethod
    def new(cls, field: str, kind: str | tuple[str, ...]) -> _Field:
        widget: Input | Select
        if kind == "bool":
            widget = Select([("true", True), ("false", False)], allow_blank=False, compact=True)
        elif isinstance(kind, tuple):
            widget = Select([(choice, choice) for choice in kind], allow_blank=False, compact=True)
        else:
            widget = FieldInput(compact=True)
        widget.id = f"field-{field}"
        row = Horizontal(Label(field, classes="field-label"), widget, classes="field-row")
        return cls(kind, row, widget, Static("", id=f"error-{field}", classes="field-error"))


class _Frame(NamedTuple):
    """What a layer's editor always has: the empty-spec line, the note, the type selector,
    the whole layer's error line (last)."""

    empty: Static
    note: Static
    type_row: Horizontal
    type_select: Select
    layer_error: Static

    @classmethod
    def new(cls, type_name: str | None) -> _Frame:
        names = list(LAYER_CLASSES)
        select = Select(
            [(name, name) for name in names], value=type_name or names[0], allow_blank=False, compact=True,
            id="layer-type",
        )  # fmt: skip
        frame = cls(
            Static("No layers yet: press [b]a[/b] to add one.", classes="editor-empty"),
            Static("", id="layer-note", classes="field-note"),
            Horizontal(Label("type", classes="field-label"), select, classes="field-row"),
            select,
            Static("", id="error-layer", classes="field-error"),
        )
        frame.note.display = frame.type_row.display = False
        return frame

    def widgets(self) -> list[Any]:
        return [self.empty, self.note, self.type_row, self.layer_error]


class LayerEditor(VerticalScroll):
    """Shows layer ``index`` of the network; ids: ``#layer-type``, ``#field-<name>``,
    ``#error-<name>`` (one error line per field) and ``#error-layer``."""

    class Edited(Message):
        """A field changed: the layer as typed (values may not validate)."""

        def __init__(self, index: int, type_name: str, values: dict[str, Any], field: str):
            super().__init__()
            self.index, self.type_name, self.values, self.field = index, type_name, values, field

    class TypeChanged(Message):
        def __init__(self, index: int, type_name: str):
            super().__init__()
            self.index, self.type_name = index, type_name

    class GroupEdited(Message):
        """A group row's field changed (``show_group``): every field as typed."""

        def __init__(self, values: dict[str, Any], field: str):
            super().__init__()
            self.values, self.field = values, field

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.index: int | None = None
        self.type_name: str | None = None
        self._loading = False
        self._rebuild = asyncio.Lock()  # a rebuild removes and mounts widgets: one at a time
        # The current layer's widgets by field ("layer": the whole layer's error line); kept
        # here because a DOM query per field on every keystroke costs milliseconds.
        self._inputs: dict[str, Input | Select] = {}
        self._errors: dict[str, Static] = {}
        self._raw: dict[str, Any] | None = None  # the layer as a graph spec writes it
        # Every field row mounted so far, shown or hidden: moving to another row refills them
        # (mounting ~30 widgets per move took ~650 ms on a 50-layer spec, bench/README.md).
        self._fields: dict[str, _Field] = {}
        self._frame: _Frame | None = None  # None while a group row's fields are shown

    def compose(self) -> ComposeResult:
        self._frame = _Frame.new(None)
        yield from self._frame.widgets()

    async def show_layer(
        self, index: int | None, row: LayerResult | None, raw: dict[str, Any] | None = None, note: str = ""
    ) -> None:
        """Show layer ``index`` (``None``: nothing selected) in the field rows, mounting those
        not shown before. ``raw``: the layer as written in a graph spec (``$planes`` in a
        block), shown instead of its values; ``note``: a line above the fields (what an edit
        changes)."""
        async with self._rebuild:
            self._loading = True
            self._raw = raw
            self.index = index
            self.type_name = row.type if row else None
            if self._frame is None:  # back from a group row's fields
                await self.remove_children()
                with self._quiet():
                    self._frame = _Frame.new(self.type_name)
                await self.mount_all(self._frame.widgets())
            if row is None:
                self._show_empty(self._frame)
                self._loading = False
                return
            await self._show_fields(self._frame, row, note)
            self.call_after_refresh(self._done_loading)

    async def show_group(self, title: str, text: str, fields: dict[str, tuple[str, str]]) -> None:
        """A group row of the table: ``text`` and one input per field (``#group-<name>``,
        from ``{name: (value, placeholder)}``); edits come back as ``GroupEdited``."""
        async with self._rebuild:
            self._loading = True
            self.index = self.type_name = None
            await self.remove_children()
            self._fields, self._frame = {}, None
            self._inputs, self._errors = {}, {}
            self.border_title = title
            widgets: list[Any] = [Static(text, classes="field-note")]
            for field, (value, placeholder) in fields.items():
                field_input = FieldInput(value, placeholder=placeholder, compact=True, id=f"group-{field}")
                self._inputs[field] = field_input
                self._errors[field] = Static("", id=f"error-{field}", classes="field-error")
                widgets += [Horizontal(Label(field, classes="field-label"), self._inputs[field],
                                       classes="field-row"), self._errors[field]]  # fmt: skip
            self._errors["layer"] = Static("", id="error-layer", classes="field-error")
            await self.mount_all([*widgets, self._errors["layer"]])
            self.call_after_refresh(self._done_loading)

    def _quiet(self):
        """Values set (and widgets made, for their mount) inside post no change messages: a
        refill is not an edit. Never await inside: the blocked set is shared with child tasks."""
        return self.prevent(Input.Changed, Select.Changed)

    def _show_empty(self, frame: _Frame) -> None:
        self.border_title = "Layer"
        self._inputs, self._errors = {}, {}
        frame.empty.display = True
        for widget in (frame.note, frame.type_row, frame.layer_error):
            widget.display = False
        for unit in self._fields.values():
            unit.row.display = unit.error.display = False

    async def _show_fields(self, frame: _Frame, row: LayerResult, note: str) -> None:
        fields = model.editable_fields(row.type)
        kinds = {field: _kind(row, field, self._raw) for field in fields}
        # a field whose input kind differs (a choice here, text there): its row is replaced
        stale = [
            self._fields.pop(f) for f in fields if f in self._fields and self._fields[f].kind != kinds[f]
        ]
        if stale:
            await self.remove_children([widget for unit in stale for widget in (unit.row, unit.error)])
        with self._quiet():
            new = {field: _Field.new(field, kinds[field]) for field in fields if field not in self._fields}
        if new:
            await self.mount_all(
                [w for unit in new.values() for w in (unit.row, unit.error)], before=frame.layer_error
            )
            self._fields.update(new)
        self.border_title = f"Layer {self.index} · {row.name}"
        shown = set(fields)
        with self._quiet():
            frame.type_select.value = row.type
            for field in fields:
                self._fill(row, field, self._fields[field].widget)
        for field, unit in self._fields.items():
            unit.row.display = field in shown
            if field not in shown:
                unit.error.display = False
        self._inputs = {field: self._fields[field].widget for field in fields}
        self._errors = {field: self._fields[field].error for field in fields} | {"layer": frame.layer_error}
        rows = [w for field in fields for w in (self._fields[field].row, self._fields[field].error)]
        self._order([frame.type_row, *rows, frame.layer_error])
        frame.empty.display = False
        frame.type_row.display = True
        if str(frame.note.visual) != note:
            frame.note.update(note)
        frame.note.display = bool(note)
        self.show_errors({})  # the error lines of the layer shown before

    def _order(self, widgets: list[Any]) -> None:
        """Put ``widgets`` in this order (the layer's fields in its type's order); moves only
        when they are not in it already."""
        position = {id(widget): index for index, widget in enumerate(self.children)}
        if all(position[id(a)] < position[id(b)] for a, b in pairwise(widgets)):
            return
        for before, widget in pairwise(widgets):
            self.move_child(widget, after=before)

    def _done_loading(self) -> None:
        self._loading = False

    @property
    def loading(self) -> bool:
        """True while the inputs are rebuilt (until the repaint after): a key for a field waits."""
        return self._loading

    def shown_fields(self) -> list[Input | Select]:
        """The inputs on screen in order, the type selector first (a DOM query for ``Input``
        also finds the hidden rows of other layer types)."""
        widgets = list(self._inputs.values())
        return [self._frame.type_select, *widgets] if self.index is not None and self._frame else widgets

    def _fill(self, row: LayerResult, field: str, widget: Input | Select) -> None:
        description = LAYER_CLASSES[row.type].model_fields[field].description
        if widget.tooltip != description:
            widget.tooltip = description
        if isinstance(widget, Select):
            widget.value = getattr(row.layer, field)
            return
        shown = (
            model.shown_value(row.layer, field)
            if self._raw is None
            else model.format_value(self._raw.get(field))
        )
        placeholder = _placeholder(row, field)
        if widget.placeholder != placeholder:
            widget.placeholder = placeholder
        widget.value = shown
        widget.cursor_position = len(shown)  # where a new Input puts it: typing appends

    def update_hints(self, row: LayerResult) -> None:
        """Refresh placeholders (inferred channels, auto name) after the network changed."""
        if self.index is None:  # a group row's fields (show_group), not a layer's
            return
        title = f"Layer {row.index} · {row.name}"
        if self.border_title != title:
            self.border_title = title
        for field, widget in self._inputs.items():
            if isinstance(widget, Input) and widget.placeholder != _placeholder(row, field):
                widget.placeholder = _placeholder(row, field)

    def show_errors(self, errors: dict[str, str]) -> None:
        """One message per field (``""``: the layer as a whole); fields not named are cleared."""
        for field, line in self._errors.items():
            message = errors.get("" if field == "layer" else field, "")
            text = f"✗ {message}" if message else ""
            if str(line.visual) != text:  # an update relayouts the screen: only on a change
                line.update(text)
                line.display = bool(message)
            widget = self._inputs.get(field)
            if widget is not None and widget.has_class("-invalid") != bool(message):
                widget.set_class(bool(message), "-invalid")

    def values(self) -> dict[str, Any]:
        """Every field as typed: parsed text, or the selected choice; None = not set."""
        assert self.type_name is not None
        values: dict[str, Any] = {}
        for field, widget in self._inputs.items():
            if isinstance(widget, Input):
                values[field] = model.parse_value(field, widget.value)
            else:
                value = widget.value
                values[field] = None if value == model.field_default(self.type_name, field) else value
        return values

    def _field_of(self, widget) -> str | None:
        widget_id = widget.id or ""
        return widget_id.removeprefix("field-") if widget_id.startswith("field-") else None

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        if (event.input.id or "").startswith("group-") and not self._loading:
            values = {name: model.parse_value(name, widget.value) for name, widget in self._inputs.items()}
            self.post_message(self.GroupEdited(values, event.input.id.removeprefix("group-")))
            return
        field = self._field_of(event.input)
        if field and not self._loading and self.index is not None:
            self.post_message(self.Edited(self.index, self.type_name, self.values(), field))

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        if self._loading or self.index is None:
            return
        if event.select.id == "layer-type":
            if event.value != self.type_name:
                self.post_message(self.TypeChanged(self.index, str(event.value)))
            return
        field = self._field_of(event.select)
        if field:
            self.post_message(self.Edited(self.index, self.type_name, self.values(), field))
