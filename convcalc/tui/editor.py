"""The layer editor: a type selector and one input per field of the selected layer.

It knows nothing of the network: it shows a layer, reports what the user typed as messages
(``Edited``, ``TypeChanged``) and shows the errors the screen sends back ("attributes
down, messages up").
"""

from __future__ import annotations

import asyncio
from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
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

    def compose(self) -> ComposeResult:
        yield Static("No layers yet: press [b]a[/b] to add one.", classes="editor-empty")

    async def show_layer(
        self, index: int | None, row: LayerResult | None, raw: dict[str, Any] | None = None, note: str = ""
    ) -> None:
        """Rebuild the inputs for layer ``index`` (``None``: nothing selected). ``raw``: the
        layer as written in a graph spec (``$planes`` in a block), shown instead of its values;
        ``note``: a line above the fields (what an edit changes)."""
        async with self._rebuild:
            self._raw = raw
            await self._show_layer(index, row)
            if note and row is not None:
                await self.mount(Static(note, id="layer-note", classes="field-note"), before=0)

    async def show_group(self, title: str, text: str, fields: dict[str, tuple[str, str]]) -> None:
        """A group row of the table: ``text`` and one input per field (``#group-<name>``,
        from ``{name: (value, placeholder)}``); edits come back as ``GroupEdited``."""
        async with self._rebuild:
            self._loading = True
            self.index = self.type_name = None
            await self.remove_children()
            self._inputs, self._errors = {}, {}
            self.border_title = title
            widgets: list[Any] = [Static(text, classes="field-note")]
            for field, (value, placeholder) in fields.items():
                self._inputs[field] = Input(value, placeholder=placeholder, compact=True, id=f"group-{field}")
                self._errors[field] = Static("", id=f"error-{field}", classes="field-error")
                widgets += [Horizontal(Label(field, classes="field-label"), self._inputs[field],
                                       classes="field-row"), self._errors[field]]  # fmt: skip
            self._errors["layer"] = Static("", id="error-layer", classes="field-error")
            await self.mount_all([*widgets, self._errors["layer"]])
            self.call_after_refresh(self._done_loading)

    async def _show_layer(self, index: int | None, row: LayerResult | None) -> None:
        self._loading = True
        self.index = index
        self.type_name = row.type if row else None
        await self.remove_children()
        self._inputs, self._errors = {}, {}
        if row is None:
            self.border_title = "Layer"
            await self.mount(Static("No layers yet: press [b]a[/b] to add one.", classes="editor-empty"))
            self._loading = False
            return
        self.border_title = f"Layer {index} · {row.name}"
        widgets = [
            Horizontal(
                Label("type", classes="field-label"),
                Select(
                    [(name, name) for name in LAYER_CLASSES],
                    value=row.type,
                    allow_blank=False,
                    compact=True,
                    id="layer-type",
                ),
                classes="field-row",
            )
        ]
        for field in model.editable_fields(row.type):
            self._inputs[field] = self._input(row, field)
            self._errors[field] = Static("", id=f"error-{field}", classes="field-error")
            widgets.append(
                Horizontal(Label(field, classes="field-label"), self._inputs[field], classes="field-row")
            )
            widgets.append(self._errors[field])
        self._errors["layer"] = Static("", id="error-layer", classes="field-error")
        widgets.append(self._errors["layer"])
        await self.mount_all(widgets)
        self.call_after_refresh(self._done_loading)

    def _done_loading(self) -> None:
        self._loading = False

    @property
    def loading(self) -> bool:
        """True while the inputs are rebuilt (until the repaint after): a key for a field waits."""
        return self._loading

    def _input(self, row: LayerResult, field: str):
        kind = model.field_kind(row.type, field)
        description = LAYER_CLASSES[row.type].model_fields[field].description
        value = getattr(row.layer, field)
        written = self._raw.get(field) if self._raw is not None else None
        if isinstance(written, str) and written.startswith("$"):  # a block parameter: text, not a choice
            kind = "text"
        if kind == "bool":
            widget = Select([("true", True), ("false", False)], value=value, allow_blank=False, compact=True)
        elif isinstance(kind, tuple):
            widget = Select(
                [(choice, choice) for choice in kind], value=value, allow_blank=False, compact=True
            )
        else:
            shown = (
                model.shown_value(row.layer, field)
                if self._raw is None
                else model.format_value(self._raw.get(field))
            )
            widget = Input(value=shown, placeholder=_placeholder(row, field), compact=True)
        widget.id = f"field-{field}"
        widget.tooltip = description
        return widget

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
