"""The designer's "make this layer output H×W" dialog over ``solve.solve_layer``.

Type the wanted size and press Enter: the solver runs in a worker thread (asking a 28×28 conv
for 1×1 finds ~280,000 settings and takes seconds), the dialog lists the first of them, and
Enter on one dismisses with it; the designer applies it as one undoable edit. No torch.
"""

from __future__ import annotations

import functools

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList, Static
from textual.widgets.option_list import Option
from textual.worker import Worker, WorkerState

from convcalc.engine import LayerResult, fmt_shape
from convcalc.solve import SolveError
from convcalc.spec import Network
from convcalc.tui import model
from convcalc.tui.wording import tui_text

HINT = "Type the wanted height×width and press enter: the solver lists the settings that give it."
HELP = "enter: list · ↑↓ enter: apply (one undo step) · tab: edit the size · esc: cancel"


class OutputSizeDialog(ModalScreen[model.SizeChoice]):
    """Ask for layer ``row.index``'s wanted output size; dismisses with the chosen
    ``SizeChoice`` (its ``network`` is the edited network) or None. In a graph spec ``apply``
    writes a fix where the layer is written and ``where`` says what that changes
    (``graphmodel.where_text``)."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, network: Network, row: LayerResult, apply=None, where: str = ""):
        super().__init__()
        self.network, self.row, self.apply, self.where = network, row, apply, where
        self.refusal = model.solve_refusal(network, row.index, row.input_shape)
        self.choices: list[model.SizeChoice] = []
        self._worker: Worker | None = None  # the solve running now, for ``self._target``
        self._target: tuple[int, int] | None = None

    def compose(self) -> ComposeResult:
        row = self.row
        with Vertical(classes="dialog dialog-solve"):
            yield Label(f"Output size of layer {row.index} · {row.name} ({row.type})", classes="dialog-title")
            layer = Text()
            layer.append("input ", "dim").append(fmt_shape(row.input_shape), "bold")
            layer.append(" → output ", "dim").append(fmt_shape(row.output_shape), "bold")
            if row.output_shape is None:
                layer.append(" (error)", "red")
            if row.summary:
                layer.append("   settings ", "dim").append(row.summary, "bold")
            if self.where:
                layer.append(f"\n{self.where}", "yellow")
            yield Static(layer, classes="dialog-text")
            with Horizontal(classes="field-row"):
                yield Label("wanted H×W", classes="field-label")
                yield Input(
                    placeholder=f"e.g. {self._example()}",
                    id="solve-target",
                    compact=True,
                    disabled=self.refusal is not None,
                )
            yield Static(id="solve-status")
            yield Static(id="solve-header")
            yield OptionList(id="solve-fixes")
            yield Static(HELP, id="solve-help")

    def _example(self) -> str:
        """A size to suggest: half the input's height and width (a typical downsampling)."""
        shape = self.row.input_shape
        if shape is None or len(shape) != 3:
            return "14x14"
        return f"{max(1, shape[1] // 2)}x{max(1, shape[2] // 2)}"

    def on_mount(self) -> None:
        self.query_one("#solve-fixes").display = False
        self.query_one("#solve-header").display = False
        if self.refusal is not None:
            self._status(Text(f"✗ {tui_text(self.refusal)}", "bold red"))
            self.query_one(".field-row").display = False  # nothing to type
            self.query_one("#solve-help", Static).update("esc: close")
        else:
            self._status(Text(HINT, "dim"))
            self.query_one("#solve-target", Input).focus()

    def _status(self, text: Text) -> None:
        self.query_one("#solve-status", Static).update(text)

    def _clear_list(self) -> None:
        self.choices = []
        fixes = self.query_one("#solve-fixes", OptionList)
        fixes.clear_options()
        fixes.display = False
        self.query_one("#solve-header").display = False

    # ----------------------------------------------------------------------------------
    # Solving

    def on_input_changed(self, event: Input.Changed) -> None:
        """A changed size makes the listed settings stale: they go until Enter solves again."""
        if self.choices or self._worker is not None:
            if self._worker is not None:
                self._worker.cancel()
                self._worker = None
            self._clear_list()
            self._status(Text(HINT, "dim"))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        self._clear_list()
        if not text:
            self._status(Text("✗ type the wanted output size first, e.g. " + self._example(), "bold red"))
            return
        try:
            target = model.parse_output_size(text)
        except ValueError as error:
            self._status(Text(f"✗ {error}", "bold red"))
            return
        shape = self.row.input_shape
        self._status(Text(f"solving {fmt_shape(shape[1:])} → {fmt_shape(target)} …", "dim"))
        solve = functools.partial(model.size_choices, self.network, self.row.index, shape, target, self.apply)
        self._target = target
        self._worker = self.run_worker(
            functools.partial(_catch_solve_error, solve), thread=True, exclusive=True, group="solve"
        )

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker is not self._worker or event.state != WorkerState.SUCCESS:
            return
        self._worker = None
        target, result = self._target, event.worker.result
        if isinstance(result, SolveError):  # worded for the command line: the flags reworded
            self._status(Text(f"✗ {tui_text(str(result))}", "bold red"))
            return
        choices, total = result
        self._show(choices, total, target)

    def _show(self, choices: list[model.SizeChoice], total: int, target: tuple[int, int]) -> None:
        current = self.row.output_shape
        already = current is not None and tuple(current[1:]) == target
        status = Text()
        if not choices:
            status.append(f"✓ the layer already outputs {fmt_shape(target)}: nothing to change", "green")
            self._status(status)
            return
        if already:
            status.append(f"The layer already outputs {fmt_shape(target)}; other settings that do: ", "dim")
        found = f"{total:,} setting{'s' if total > 1 else ''} give {fmt_shape(target)}"
        status.append(found, "bold")
        status.append(", fewest changed fields first, exact first", "dim")
        if total > len(choices):
            status.append(f"; the first {len(choices)} listed", "dim")
        self._status(status)
        self.choices = choices
        widths = (
            max(len("change"), *(len(c.fix.description) for c in choices)),
            max(len("settings"), *(len(c.summary) for c in choices)),
            max(len("output"), *(len(fmt_shape(c.output_shape)) for c in choices)),
        )
        header = self.query_one("#solve-header", Static)
        header.update(Text(_columns(("change", "settings", "output"), widths), "bold dim"))
        header.display = True
        fixes = self.query_one("#solve-fixes", OptionList)
        fixes.add_options(_option(i, choice, widths) for i, choice in enumerate(choices))
        fixes.display = True
        fixes.highlighted = next((i for i, c in enumerate(choices) if c.network is not None), None)
        fixes.focus()

    # ----------------------------------------------------------------------------------
    # Applying

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        choice = self.choices[int(event.option.id)]
        if choice.network is not None:
            self.dismiss(choice)


def _catch_solve_error(solve):
    """Run ``solve`` in the worker; a ``SolveError`` is a result to show, not a crash."""
    try:
        return solve()
    except SolveError as error:
        return error


def _columns(cells: tuple[str, ...], widths: tuple[int, ...]) -> str:
    return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True))


def _option(index: int, choice: model.SizeChoice, widths: tuple[int, int, int]) -> Option:
    line = Text(_columns((choice.fix.description, choice.summary, fmt_shape(choice.output_shape)), widths))
    if choice.network is None:
        line.append(f"  ✗ {choice.problem}", "red")
        return Option(line, id=str(index), disabled=True)
    note = choice.note
    line.append("  ")
    line.append(note, "green" if note == "exact" else "yellow")  # exact; checkerboard: yellow
    return Option(line, id=str(index))
