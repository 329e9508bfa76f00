"""Modal dialogs of the designer: unsaved changes, a yes/no question, a file path, the network
header, a layer type."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DirectoryTree, Input, Label, OptionList, SelectionList, Static
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


class ConfirmDialog(ModalScreen[bool]):
    """A question with two answers: dismisses with True (``yes``) or False (``no``, Escape)."""

    BINDINGS = [Binding("escape", "dismiss(False)", "Cancel")]

    def __init__(self, title: str, question: str, yes: str, no: str = "Cancel"):
        super().__init__()
        self.title_text, self.question, self.yes, self.no = title, question, yes, no

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield Static(self.question, classes="dialog-text")
            with Horizontal(classes="dialog-buttons"):
                yield Button(self.yes, variant="warning", id="yes")
                yield Button(self.no, variant="primary", id="no")

    def on_mount(self) -> None:
        self.query_one("#no").focus()  # the safe answer is the default one

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


HELP = """\
[b]Layer table[/b]
  a  add a layer at the end        i  insert after the selected one
  c  duplicate      x, delete  delete      shift+↑ / shift+↓  move
  enter  edit the layer (the field changed most often first; escape returns)
  ↑ ↓ j k  move     home g / end G  first / last     pageup / pagedown  a page
  s  network name and input size   o  solve for an output size
  f  apply the engine's fix (a missing Flatten, a pool's padding; shown when there is one)
  space, ← / →  fold / unfold a group (block, Sequential)   n  what the layer or group reads
  p  show / hide the picture (feature-map boxes, the selected layer's field on the input)
[b]Anywhere[/b]
  ctrl+z / ctrl+y  undo / redo     ctrl+s  save      ctrl+r  save as
  ctrl+o  open      ctrl+n  new    ctrl+t  training screen   ctrl+p  commands
  ctrl+q  quit (asks about unsaved changes and unapplied edits)   f1, ?  this help
[b]Values[/b] (as in a spec file)
  3           one value for every axis      [3, 5] or 3x5   height, width
  same valid  padding by name               auto            padding for output_shape
  empty       the default (shown greyed)    true / false    switches
[b]Training screen[/b]
  ctrl+t  start     ctrl+b  stop (keeps the checkpoint)     escape  back (asks while running)
  ctrl+g  the settings again after a run    ctrl+l  below 120 columns: loss, accuracy or epochs
  resume  continue one of the spec's checkpoints, as `convcalc train --resume` does"""


class HelpDialog(ModalScreen[None]):
    """The keys and the value syntax (``?`` or F1)."""

    BINDINGS = [Binding("escape,f1,question_mark,q", "dismiss(None)", "Close")]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog dialog-wide"):
            yield Label("Keys and values", classes="dialog-title")
            yield Static(HELP, id="help-text", classes="dialog-text")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Close", variant="primary", id="close")

    def on_mount(self) -> None:
        self.query_one("#close").focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None)


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


class InputsDialog(ModalScreen[list[str]]):
    """Pick what a layer reads from the names it may read (``choices``: name and output shape);
    space picks or drops one, Enter applies. Dismisses with the names in the order picked (the
    order of a Cat), the ones already read first."""

    BINDINGS = [
        Binding("escape", "dismiss(None)", "Cancel"),
        Binding("enter", "apply", "Apply", priority=True),
    ]

    def __init__(self, title: str, choices: list[tuple[str, str]], current: list[str]):
        super().__init__()
        self.title_text, self.choices, self.current = title, choices, current

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield Static(
                "space: pick or drop · enter: apply · a merge reads two or more", classes="dialog-text"
            )
            yield SelectionList(
                *((f"{name:<20} {shape}", name, name in self.current) for name, shape in self.choices),
                id="input-names",
            )
            yield Static("", id="inputs-error", classes="field-error")

    def on_mount(self) -> None:
        names = self.query_one("#input-names", SelectionList)
        names.focus()
        picked = [name for name, _ in self.choices if name in self.current]
        names.highlighted = [name for name, _ in self.choices].index(picked[-1]) if picked else 0

    def action_apply(self) -> None:
        picked = list(self.query_one("#input-names", SelectionList).selected)
        if not picked:
            error = self.query_one("#inputs-error", Static)
            error.update("✗ pick at least one name (space)")
            error.display = True
            return
        kept = [name for name in self.current if name in picked]
        self.dismiss(kept + [name for name in picked if name not in kept])


# One line of help per type in the picker.
_TYPE_HINTS = {
    "Conv2d": "convolution", "ConvTranspose2d": "transposed convolution (upsampling)",
    "MaxPool2d": "max pooling", "AvgPool2d": "average pooling",
    "AdaptiveAvgPool2d": "average pool to a fixed size", "AdaptiveMaxPool2d": "max pool to a fixed size",
    "BatchNorm2d": "batch normalisation", "Dropout": "dropout", "Dropout2d": "channel dropout",
    "Flatten": "C×H×W → features", "Linear": "fully connected",
}  # fmt: skip


class LayerTypeDialog(ModalScreen[str]):
    """Pick the type of a new layer; dismisses with the type name. Typing filters the list (by
    name, then by the hint), ↑/↓ move in it, Enter takes the highlighted type."""

    BINDINGS = [
        Binding("escape", "dismiss(None)", "Cancel"),
        Binding("down", "move(1)", "Next", show=False, priority=True),
        Binding("up", "move(-1)", "Previous", show=False, priority=True),
    ]

    def __init__(self, title: str, nd: int = 2):
        super().__init__()
        self.title_text, self.nd = title, nd

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield Input(placeholder="type to filter: conv, pool, relu…", id="type-filter")
            yield OptionList(*self._options(""), id="layer-types")

    def _options(self, text: str) -> list[Option]:
        return [
            Option(f"{name:<18} [dim]{_TYPE_HINTS.get(name, 'activation / other')}[/dim]", id=name)
            for name in matching_types(text, self.nd)
        ]

    def on_mount(self) -> None:
        self.query_one("#type-filter", Input).focus()
        self.query_one("#layer-types", OptionList).highlighted = 0

    def on_input_changed(self, event: Input.Changed) -> None:
        options = self.query_one("#layer-types", OptionList)
        options.clear_options()
        options.add_options(self._options(event.value))
        options.highlighted = 0 if options.option_count else None

    def on_input_submitted(self, event: Input.Submitted) -> None:
        options = self.query_one("#layer-types", OptionList)
        if options.highlighted is not None:
            self.dismiss(options.get_option_at_index(options.highlighted).id)

    def action_move(self, step: int) -> None:
        options = self.query_one("#layer-types", OptionList)
        if options.option_count:
            options.highlighted = ((options.highlighted or 0) + step) % options.option_count

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)


# The types people add most, first among equal matches ("re" finds ReLU before ReflectionPad2d).
_COMMON = ("Conv2d", "ReLU", "MaxPool2d", "BatchNorm2d", "Linear", "Flatten", "Dropout", "AvgPool2d",
           "AdaptiveAvgPool2d", "ConvTranspose2d", "Add", "Cat", "Mul", "Sigmoid", "SiLU", "GELU",
           "LeakyReLU", "Softmax", "Upsample", "Dropout2d", "Identity")  # fmt: skip


def matching_types(text: str, nd: int = 2) -> list[str]:
    """The layer types for a filter text: names starting with it, then names containing it,
    then types whose hint contains it; within each, the network's dimensionality (``nd``: Conv2d
    before Conv1d on images) and the common types first. Case-insensitive; an empty text lists
    every type that way."""
    text = text.strip().lower()
    names = list(LAYER_CLASSES)

    def rank(name: str) -> tuple[int, int, int]:
        lower = name.lower()
        group = 0 if lower.startswith(text) else 1 if text in lower else 2
        suffix = name[-2:] if name[-2:] in ("1d", "2d", "3d") else None
        as_2d = f"{name[:-2]}2d" if suffix else name
        common = _COMMON.index(as_2d) if as_2d in _COMMON else len(_COMMON) + names.index(name)
        return group, int(suffix is not None and suffix != f"{nd}d"), common

    found = [n for n in names if text in n.lower() or text in _TYPE_HINTS.get(n, "").lower()]
    return sorted(found, key=rank)
