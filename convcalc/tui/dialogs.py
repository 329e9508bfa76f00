"""Modal dialogs of the designer: unsaved changes, a file path, the network header, a layer type."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DirectoryTree, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from convcalc.errors import ConvcalcError
from convcalc.spec import LAYER_CLASSES
from convcalc.tui import model


class UnsavedDialog(ModalScreen[str]):
    """Unsaved changes: dismisses with ``"save"``, ``"discard"`` or ``"cancel"``."""

    BINDINGS = [Binding("escape", "dismiss('cancel')", "Cancel")]

    def __init__(self, question: str, discard_label: str = "Discard"):
        super().__init__()
        self.question = question
        self.discard_label = discard_label

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Unsaved changes", classes="dialog-title")
            yield Static(self.question, classes="dialog-text")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save", variant="primary", id="save")
                yield Button(self.discard_label, variant="error", id="discard")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#save").focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id)


class _SpecFiles(DirectoryTree):
    """Folders and spec files (.yaml, .yml, .json) only."""

    def filter_paths(self, paths):
        return [
            path for path in paths
            if not path.name.startswith(".") and (path.is_dir() or path.suffix in (".yaml", ".yml", ".json"))
        ]  # fmt: skip


class PathDialog(ModalScreen[Path]):
    """Ask for a file path and run ``action(path)``; a ``ConvcalcError`` it raises is shown here
    and the dialog stays open. Dismisses with the path once the action succeeded."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, title: str, initial: str, action: Callable[[Path], None], browse: bool = False):
        super().__init__()
        self.title_text, self.initial, self.action, self.browse = title, initial, action, browse

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog dialog-wide"):
            yield Label(self.title_text, classes="dialog-title")
            if self.browse:
                yield _SpecFiles(Path.cwd(), id="files")
            yield Input(self.initial, placeholder="path/to/spec.yaml", id="path")
            yield Static("", id="path-error", classes="field-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("OK", variant="primary", id="ok")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#path", Input).focus()

    def on_directory_tree_file_selected(self, event: DirectoryTree.FileSelected) -> None:
        path = event.path
        try:
            path = path.relative_to(Path.cwd())
        except ValueError:
            pass
        self.query_one("#path", Input).value = str(path)
        self._run()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._run()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "ok":
            self._run()
        else:
            self.dismiss(None)

    def _run(self) -> None:
        text = self.query_one("#path", Input).value.strip()
        error = self.query_one("#path-error", Static)
        if not text:
            error.update("✗ give a file path")
            return
        path = Path(text).expanduser()
        try:
            self.action(path)
        except ConvcalcError as exc:
            error.update(f"✗ {exc}")
            return
        self.dismiss(path)


class NetworkDialog(ModalScreen[tuple[str, tuple[int, int, int]]]):
    """The network's name and input size (C×H×W)."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, name: str, input_shape: tuple[int, int, int]):
        super().__init__()
        self.network_name, self.input_shape = name, input_shape

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Network", classes="dialog-title")
            with Horizontal(classes="field-row"):
                yield Label("name", classes="field-label")
                yield Input(self.network_name, id="network-name", compact=True)
            with Horizontal(classes="field-row"):
                yield Label("input C×H×W", classes="field-label")
                yield Input("x".join(map(str, self.input_shape)), id="input-size", compact=True)
            yield Static("", id="network-error", classes="field-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("OK", variant="primary", id="ok")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#input-size", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._finish()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "ok":
            self._finish()
        else:
            self.dismiss(None)

    def _finish(self) -> None:
        error = self.query_one("#network-error", Static)
        name = self.query_one("#network-name", Input).value.strip()
        if not name:
            error.update("✗ give the network a name")
            return
        try:
            shape = model.parse_input_size(self.query_one("#input-size", Input).value)
        except ValueError as exc:
            error.update(f"✗ {exc}")
            return
        self.dismiss((name, shape))


# One line of help per type in the picker.
_TYPE_HINTS = {
    "Conv2d": "convolution", "ConvTranspose2d": "transposed convolution (upsampling)",
    "MaxPool2d": "max pooling", "AvgPool2d": "average pooling",
    "AdaptiveAvgPool2d": "average pool to a fixed size", "AdaptiveMaxPool2d": "max pool to a fixed size",
    "BatchNorm2d": "batch normalisation", "Dropout": "dropout", "Dropout2d": "channel dropout",
    "Flatten": "C×H×W → features", "Linear": "fully connected",
}  # fmt: skip


class LayerTypeDialog(ModalScreen[str]):
    """Pick the type of a new layer; dismisses with the type name."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, title: str):
        super().__init__()
        self.title_text = title

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield OptionList(
                *(
                    Option(f"{name:<18} [dim]{_TYPE_HINTS.get(name, 'activation / other')}[/dim]", id=name)
                    for name in LAYER_CLASSES
                ),
                id="layer-types",
            )

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)
