"""The training screen: train the designed network with the same loop as ``convcalc train``.

torch is imported off the UI thread: a worker loads ``convcalc.train`` when the screen opens
(the form shows ``TrainConfig()``'s defaults once it is there), and ``train.train`` runs in a
``@work(thread=True)`` worker that reports through ``TrainCallbacks`` -> thread-safe
``post_message``. Stop sets the loop's cancel ``Event``; the loop then saves its checkpoint.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.style import Style
from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, Input, Label, ProgressBar, Select, Static
from textual_plotext import PlotextPlot

from convcalc import render
from convcalc.engine import analyze, fmt_shape
from convcalc.errors import ConvcalcError
from convcalc.spec import Network
from convcalc.tui.wording import tui_text

# The form's choices: train.TrainConfig's values (``amp``: "" is float32)
_OPTIMIZERS = ("adam", "adamw", "sgd")
_SCHEDULES = ("onecycle", "cosine", "constant")
_PRECISIONS = [("float32", ""), ("bfloat16 autocast", "bf16"), ("float16 autocast", "fp16")]


def _pairs(options) -> list[tuple[str, str]]:
    return [(option, option) for option in options]


# at most 2 progress messages a second from the training thread: each repaints the progress box
# (at 10 a second the UI thread took ~15% of a core, at 4 about 5%: bench/README.md)
_BATCH_UPDATE_SECONDS = 0.5
# the loss plot is redrawn at most once a second while batches arrive (an epoch's end: always);
# a plotext build of a 160×48 screen's plot costs 10-40 ms of the UI thread (bench/README.md)
_PLOT_SECONDS = 1.0
EPOCH_TABLE_ROWS = 12  # the epoch table's last rows: the form column has room for a dozen
# below 120 columns one view at a time under the progress (ctrl+l): a plot or the epoch table
VIEWS = ("loss", "accuracy", "epochs")


class Plot(PlotextPlot):
    """A ``PlotextPlot`` that builds its picture only after ``replot()`` or a change of size or
    theme (Textual calls ``render()`` again on every relayout or repaint of the screen), and turns
    plotext's character matrix into a ``Text`` directly: plotext's own ``build()`` writes the
    matrix as ANSI text that ``Text.from_ansi`` then parses back, together half of a plot's cost
    (the matrix is the other half; a plot is most of the UI's cost while training)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.version = 0  # bumped by replot(): the data or axes changed
        self.builds = 0  # plotext builds so far
        self._built: tuple[tuple, Any] | None = None

    def replot(self) -> None:
        self.version += 1
        self.refresh()

    def render(self):
        key = (self.version, self.size, self.app.theme, self.theme)
        if self._built is None or self._built[0] != key:
            self.builds += 1
            self._built = (key, self._build())
        return self._built[1]

    def _build(self) -> Text:
        """``PlotextPlot.render`` without the ANSI round trip: the same size and theme, then
        plotext's matrix (``build()`` but for ``set_canvas``) taken run by run of one colour."""
        width, height = self.size
        figure = self.plt
        figure.plotsize(width, height)
        figure._set_size(width, height)  # as PlotextPlot.render does (textual-plotext issue 5)
        figure.theme(self._get_plotext_theme_name(self.app.theme))
        figure._set_sizes()
        figure._build_matrix()
        return matrix_text(figure.monitor.matrix)


class SteadyFooter(Footer):
    """A ``Footer`` that rebuilds its keys only when the keys it shows change: Textual's
    recomposes (mounting every key anew) on each focus change and ``refresh_bindings``, which
    was the biggest part of the UI's cost at a run's start."""

    shown: tuple = ()

    def bindings_changed(self, screen: Screen) -> None:
        palette = self.app.COMMAND_PALETTE_BINDING
        shown = tuple(
            (binding, enabled, tooltip)
            for (_, binding, enabled, tooltip) in screen.active_bindings.values()
            if binding.show or binding.key == palette
        )
        if shown == self.shown and self._bindings_ready:
            return
        if self.app.app_focus and self.is_attached and screen is self.screen:
            self.shown = shown  # else Footer skips this one too: the next change must not
        super().bindings_changed(screen)


# Messages from the worker threads (post_message is thread-safe) ----------------------------


@dataclass
class TrainerReady(Message):
    defaults: Any  # TrainConfig()
    datasets: list[str]
    devices: list[str]  # "auto", "cpu" and the accelerators torch sees


@dataclass
class TrainerFailed(Message):
    message: str


@dataclass
class RunStarted(Message):
    epochs: int
    batches: int


@dataclass
class BatchDone(Message):
    epoch: int  # 1-based
    batch: int  # 0-based
    loss: float
    images_per_second: float
    # every batch's (epoch as a fraction, loss) since the last message, this one's last; empty:
    # this batch's only (messages come twice a second, the plot shows every batch)
    losses: tuple[tuple[float, float], ...] = ()


@dataclass
class EpochDone(Message):
    metrics: Any  # EpochMetrics


@dataclass
class Downloading(Message):
    file: str
    done: int
    total: int | None


@dataclass
class RunFinished(Message):
    result: Any  # TrainResult


@dataclass
class TrainerNote(Message):
    text: str  # train.TrainCallbacks.on_message: the thread choice, data kept on the CPU, ...


class TrainingScreen(Screen):
    """Train ``network``; ids: ``#dataset #data-dir #epochs #batch-size #lr #limit #out``,
    ``#start #stop``, ``#progress``, ``#train-stats``, ``#train-error``, ``#train-result``;
    ``#train-fields`` folds into ``#train-settings`` once a run starts (``ctrl+g`` unfolds)."""

    BINDINGS = [
        Binding("escape", "back", "Designer"),
        Binding("ctrl+t", "start", "Start"),
        Binding("ctrl+b", "stop", "Stop"),
        Binding("ctrl+g", "settings", "Settings"),  # shown while the fields are folded (a run started)
        Binding("ctrl+l", "next_view", "Loss/Acc/Epochs"),  # shown below 120 columns: one view at a time
    ]

    def __init__(self, network: Network):
        super().__init__()
        self.network = network
        self.analysis = analyze(network)
        self.running = False
        self.cancel = threading.Event()
        self.defaults: Any = None
        self.result: Any = None
        self.after_stop: Any = None  # what to do once a run stopped on leaving has ended
        self.batch_losses: list[tuple[float, float]] = []  # (epoch as a fraction, loss)
        self.epochs: list[Any] = []  # EpochMetrics
        self.total_epochs = 0
        self.batches = 0
        self.started_at, self.plotted_at = 0.0, 0.0  # this run's start; the plots' last redraw
        self.first_done: int | None = None  # batches done when this run's first batch came in
        self.view = VIEWS[0]  # below 120 columns: what shows under the progress
        self.folded = False  # the fields folded into #train-settings (from a run's start on)

    # Layout -----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="train-body"):
            with VerticalScroll(id="train-form"):
                yield Static(self._spec_line(), id="train-spec")
                with Vertical(id="train-fields"):
                    yield from self._fields()
                yield Static("", id="train-settings")
                with Horizontal(id="train-buttons"):
                    yield Button("Start", id="start", variant="success", disabled=True)
                    yield Button("Stop", id="stop", variant="error", disabled=True)
                yield Static("", id="train-result")
                yield Static("", id="epoch-table")
            with Vertical(id="train-main"):
                with Vertical(id="progress-box"):
                    yield ProgressBar(id="progress", total=1, show_eta=False)
                    yield Static("Loading PyTorch…", id="train-stats")
                yield Static("", id="train-error", classes="field-error")
                yield Plot(id="loss-plot", classes="plot")
                yield Plot(id="accuracy-plot", classes="plot")
        yield SteadyFooter(compact=True)

    def _fields(self) -> ComposeResult:
        """The form's fields, one row each (folded away into ``#train-settings`` during a run)."""
        yield self._row("dataset", Select([], id="dataset", compact=True, allow_blank=True, prompt="…"))
        yield self._row("data folder", Input(id="data-dir", compact=True, placeholder="auto"))
        yield self._row(
            "download",
            Select([("yes", True), ("no", False)], id="download", compact=True, allow_blank=False),
        )
        yield self._row("epochs", Input(id="epochs", compact=True, type="integer"))
        yield self._row("batch size", Input(id="batch-size", compact=True, type="integer"))
        yield self._row("learning rate", Input(id="lr", compact=True, type="number"))
        yield self._row(
            "optimizer", Select(_pairs(_OPTIMIZERS), id="optimizer", compact=True, allow_blank=False)
        )
        yield self._row(
            "schedule", Select(_pairs(_SCHEDULES), id="schedule", compact=True, allow_blank=False)
        )
        yield self._row("seed", Input(id="seed", compact=True, type="integer"))
        yield self._row("device", Select(_pairs(["auto"]), id="device", compact=True, allow_blank=False))
        yield self._row("precision", Select(_PRECISIONS, id="precision", compact=True, allow_blank=False))
        yield self._row("limit", Input(id="limit", compact=True, type="integer", placeholder="all images"))
        yield self._row("checkpoint", Input(id="out", compact=True))
        yield self._row(
            "resume", Select([("no: a new run", "")], id="resume", compact=True, allow_blank=False)
        )

    @staticmethod
    def _row(label: str, widget) -> Horizontal:
        return Horizontal(Label(label, classes="field-label"), widget, classes="field-row")

    def _spec_line(self) -> Text:
        a = self.analysis
        text = Text()
        text.append(self.network.name, "bold")
        text.append(f"\n{fmt_shape(a.input_shape)} → {fmt_shape(a.output_shape)}", "dim")
        text.append(f"\n{a.total_params:,} params · {render.human_count(a.total_macs)} MACs", "dim")
        return text

    def on_mount(self) -> None:
        self.title = f"convcalc · train {self.network.name}"
        self.query_one("#train-form").border_title = "Training"
        self.query_one("#progress-box").border_title = "Progress"
        self.query_one("#loss-plot").border_title = "Loss"
        self.query_one("#accuracy-plot").border_title = "Test accuracy"
        self.query_one("#train-settings").display = False
        self.query_one("#train-result").display = False  # until a run ends: no empty row
        self.query_one("#train-body").add_class(f"-view-{self.view}")
        # a screen pushed after start-up gets no Resize in a real terminal, and so none of the
        # app's breakpoint classes (-narrow: the form above the plots): one resize sets them
        self.post_message(events.Resize.from_dimensions(self.app.size, None))
        self._draw_plots()
        self._load_trainer()

    # Loading torch and the defaults --------------------------------------------------------

    @work(thread=True, group="load-trainer")
    def _load_trainer(self) -> None:
        try:
            from convcalc import data, train
        except Exception as error:  # torch missing or broken: say so in the app
            self.post_message(TrainerFailed(f"cannot load PyTorch: {error}"))
            return
        import torch

        devices = ["auto", "cpu", *(["cuda"] if torch.cuda.is_available() else [])]
        mps = getattr(torch.backends, "mps", None)
        devices += ["mps"] if mps is not None and mps.is_available() else []
        self.post_message(TrainerReady(train.TrainConfig(), [*data.DATASETS, train.FOLDER], devices))

    @on(TrainerReady)
    def _ready(self, event: TrainerReady) -> None:
        self.defaults = event.defaults
        select = self.query_one("#dataset", Select)
        select.set_options([(name, name) for name in event.datasets])
        select.value = event.defaults.dataset
        self.query_one("#download", Select).value = event.defaults.download
        self.query_one("#epochs", Input).value = str(event.defaults.epochs)
        self.query_one("#batch-size", Input).value = str(event.defaults.batch_size)
        self.query_one("#lr", Input).value = f"{event.defaults.lr:g}"
        self.query_one("#seed", Input).value = str(event.defaults.seed)
        self.query_one("#device", Select).set_options(_pairs(event.devices))
        for key in ("optimizer", "schedule", "device"):
            self.query_one(f"#{key}", Select).value = getattr(event.defaults, key)
        for key, text in self._kept_form().items():  # the form as the last visit left it
            widget = self.query_one(f"#{key}")
            if isinstance(widget, Input):
                widget.value = text
            elif any(value == text for _, value in widget._options):
                widget.value = text
        self._update_out_placeholder()
        self.query_one("#start", Button).disabled = False
        self._stats("Ready: press Start.")
        if self.focused is None or self.focused.id == "train-form":
            select.focus()  # the first field, not the form around it

    @on(TrainerNote)
    def _note(self, event: TrainerNote) -> None:
        """What `convcalc train` says on stderr (e.g. `threads: 1 of 2 (...)`), as a notice."""
        self.notify(tui_text(event.text), title="Training", timeout=8)

    @on(TrainerFailed)
    def _failed(self, event: TrainerFailed) -> None:
        self.running = False
        self._set_running(False)
        self._fold(False)  # a setting to fix, most likely
        error = self.query_one("#train-error", Static)
        error.update(f"✗ {tui_text(event.message)}")  # the data and training modules speak of flags
        error.display = True
        self._stats("Not running.")

    @on(Select.Changed, "#dataset")
    def _update_out_placeholder(self) -> None:
        dataset = self.query_one("#dataset", Select).value
        if self.defaults is not None and isinstance(dataset, str):
            from convcalc import train

            default = Path(train.default_checkpoint_path(self.network, dataset))
            self.query_one("#out", Input).placeholder = str(default)
            self._list_checkpoints(default)

    def _list_checkpoints(self, default: Path) -> None:
        """Resume offers this spec's checkpoints for the data set (``runs/<name>-<dataset>*.pt``,
        the default path and the new names runs take beside it), newest first."""
        try:
            found = sorted(default.parent.glob(f"{default.stem}*.pt"), key=lambda f: -f.stat().st_mtime)
        except OSError:
            found = []
        select = self.query_one("#resume", Select)
        select.set_options([("no: a new run", ""), *((str(f), str(f)) for f in found)])
        select.value = ""

    # Start and stop ----------------------------------------------------------------------

    def _config(self):
        """The form as a ``TrainConfig``; ValueError naming the field when a value is wrong."""
        from dataclasses import replace

        def number(selector: str, label: str, kind, optional: bool = False):
            text = self.query_one(selector, Input).value.strip()
            if not text and optional:
                return None
            try:
                value = kind(text)
            except ValueError:
                raise ValueError(
                    f"{label}: {text!r} is not a {'whole ' if kind is int else ''}number"
                ) from None
            if not value > 0 or not math.isfinite(value):
                raise ValueError(f"{label}: must be greater than 0 (got {text})")
            return value

        seed_text = self.query_one("#seed", Input).value.strip()
        if not seed_text.isdigit():
            raise ValueError(f"seed: {seed_text!r} is not a whole number of 0 or more")
        seed = int(seed_text)
        data_dir = self.query_one("#data-dir", Input).value.strip() or None
        out = self.query_one("#out", Input).value.strip() or None
        return replace(
            self.defaults,
            dataset=self.query_one("#dataset", Select).value,
            data_dir=data_dir,
            download=self.query_one("#download", Select).value,
            epochs=number("#epochs", "epochs", int),
            batch_size=number("#batch-size", "batch size", int),
            lr=number("#lr", "learning rate", float),
            limit=number("#limit", "limit", int, optional=True),
            out=out,
            optimizer=self.query_one("#optimizer", Select).value,
            schedule=self.query_one("#schedule", Select).value,
            seed=seed,
            device=self.query_one("#device", Select).value,
            amp=self.query_one("#precision", Select).value or None,
        )

    def action_start(self) -> None:
        if self.running or self.defaults is None:
            return
        error = self.query_one("#train-error", Static)
        try:
            config = self._config()
        except ValueError as exc:
            error.update(f"✗ {exc}")
            error.display = True
            return
        error.display = False
        self._unless_unsaved_spec(lambda: self._start(self._new_or_resumed(config)))

    def _new_or_resumed(self, config):
        """Resume continues the chosen checkpoint in place, as ``--resume`` does; a new run never
        replaces a checkpoint: when its path exists, it writes the first free ``NAME-2.pt``, ...."""
        from dataclasses import replace

        from convcalc import train

        resume = self.query_one("#resume", Select).value
        if isinstance(resume, str) and resume:
            return replace(config, resume=resume)
        out = Path(config.out or train.default_checkpoint_path(self.network, config.dataset))
        free, n = out, 2
        while free.exists():
            free, n = out.with_name(f"{out.stem}-{n}{out.suffix}"), n + 1
        if free != out:
            self.notify(
                f"{out} exists and is kept; this run writes {free}", title="New checkpoint", timeout=8
            )
        return replace(config, out=str(free))

    def _unless_unsaved_spec(self, proceed) -> None:
        """Start now, or after the designer offers to save its changes first: a checkpoint holds
        the spec it trained, so ``convcalc train SPEC --resume`` continues it only if SPEC's
        file is that spec."""
        designer = getattr(self.app, "designer", None)
        if designer is None:
            proceed()
            return
        where = str(designer.path) if designer.path else "SPEC"
        why = f"Then `convcalc train {where} --resume` can continue this run from the command line."
        designer.unless_unsaved("Train", proceed, "Train without saving", why)

    def _start(self, config) -> None:
        self.query_one("#train-result", Static).display = False
        self.query_one("#epoch-table", Static).update("")
        shown = bool(self.batch_losses or self.epochs)  # the last run's plots, to be cleared
        self.batch_losses, self.epochs, self.result = [], [], None
        self.cancel = threading.Event()
        self.running = True
        self.query_one("#train-settings", Static).update(settings_line(config))
        self._fold(True)
        self._set_running(True)
        self._stats("Loading data…")
        if shown:
            self._draw_plots()
        self._train(config, self.cancel)

    def action_stop(self) -> None:
        if self.running and not self.cancel.is_set():
            self.stop_training()
            self.query_one("#stop", Button).disabled = True
            self._stats("Stopping after this batch; saving the checkpoint…")

    def stop_training(self) -> None:
        """Ask the loop to stop after the current batch (it saves its checkpoint)."""
        self.cancel.set()

    def _set_running(self, running: bool) -> None:
        self.query_one("#start", Button).disabled = running or self.defaults is None
        self.query_one("#stop", Button).disabled = not running
        self.refresh_bindings()  # Settings: not while running

    def _fold(self, folded: bool) -> None:
        """Fold the fields into the one-line ``#train-settings`` (a run started) or unfold them.
        Folded, they cannot change during a run without disabling each (a restyle of ~70
        widgets, most of the UI's cost at a start), and below 120 columns the plots get the room."""
        if self.folded == folded:
            return
        self.folded = folded
        fields = self.query_one("#train-fields")
        if folded and self.focused is not None and fields in self.focused.ancestors:
            self.set_focus(None)  # keys go to the screen's bindings, not to a hidden field
        fields.display = not folded
        self.query_one("#train-settings").display = folded
        self.refresh_bindings()
        if not folded:
            self._update_out_placeholder()  # resume offers the checkpoints written meanwhile

    def action_settings(self) -> None:
        """Unfold the fields after a run (to change them, or pick the checkpoint under resume)."""
        self._fold(False)
        self.query_one("#dataset", Select).focus()

    def action_next_view(self) -> None:
        body = self.query_one("#train-body")
        body.remove_class(f"-view-{self.view}")
        self.view = VIEWS[(VIEWS.index(self.view) + 1) % len(VIEWS)]
        body.add_class(f"-view-{self.view}")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "settings":
            return self.folded and not self.running
        if action == "next_view":
            return self.has_class("-narrow")
        return True

    def on_resize(self) -> None:
        self.refresh_bindings()  # the breakpoint classes (-narrow) may have changed

    @on(Button.Pressed, "#start")
    def _start_pressed(self) -> None:
        self.action_start()

    @on(Button.Pressed, "#stop")
    def _stop_pressed(self) -> None:
        self.action_stop()

    def action_back(self) -> None:
        if not self.running:
            self.app.pop_screen()
            return
        self.confirm_stop("go back to the designer", self.app.pop_screen)

    def confirm_stop(self, then: str, proceed) -> None:
        """Leaving a running training asks first; yes stops it and goes on once the run has
        ended and saved its checkpoint (after the current batch), so nothing runs on unseen."""
        from convcalc.tui.dialogs import ConfirmDialog

        def answered(yes: bool | None) -> None:
            if not yes:
                return
            if self.running:
                self.after_stop = proceed
                self.action_stop()
            else:
                proceed()

        question = (
            f"Training is running. Stop it and {then}? It stops after this batch and saves its checkpoint."
        )
        self.app.push_screen(
            ConfirmDialog("Stop training?", question, "Stop training", "Keep training"), answered
        )

    def on_unmount(self) -> None:
        self.cancel.set()

    _KEPT = ("dataset", "data-dir", "epochs", "batch-size", "lr", "optimizer", "schedule", "seed", "device",
             "precision", "limit", "out")  # fmt: skip

    def _kept_form(self) -> dict[str, str]:
        designer = getattr(self.app, "designer", None)
        return getattr(designer, "train_form", {})

    @on(Input.Changed)
    def _keep_form(self, event: Input.Changed) -> None:
        """Every change of a text field is kept for the next visit (and the designer's totals
        bar shows training memory at the batch size typed here)."""
        if self.defaults is not None and event.input.id in self._KEPT:
            self._kept_form()[event.input.id] = event.value

    @on(Select.Changed)
    def _keep_choice(self, event: Select.Changed) -> None:
        if self.defaults is not None and event.select.id in self._KEPT and isinstance(event.value, str):
            self._kept_form()[event.select.id] = event.value

    # The worker --------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="train")
    def _train(self, config, cancel: threading.Event) -> None:
        """Runs ``train.train`` (the loop of ``convcalc train``) in a thread."""
        from convcalc import train

        state = {"last": 0.0, "epoch_start": time.perf_counter(), "batches": 0}
        losses: list[tuple[float, float]] = []  # the batches since the last BatchDone

        def on_start(epochs: int, batches: int) -> None:
            state["epoch_start"], state["batches"] = time.perf_counter(), batches
            self.post_message(RunStarted(epochs, batches))

        def on_batch(epoch: int, batch: int, loss: float) -> None:
            now = time.perf_counter()
            if batch == 0:
                state["epoch_start"] = now
            losses.append((epoch - 1 + (batch + 1) / max(state["batches"], 1), loss))
            if now - state["last"] >= _BATCH_UPDATE_SECONDS or batch == state["batches"] - 1:
                state["last"] = now
                elapsed = now - state["epoch_start"]
                rate = (batch + 1) * config.batch_size / elapsed if elapsed > 0 else 0.0
                self.post_message(BatchDone(epoch, batch, loss, rate, tuple(losses)))
                losses.clear()

        def on_epoch(metrics) -> None:
            self.post_message(EpochDone(metrics))

        def on_download(file: str, done: int, total: int | None) -> None:
            self.post_message(Downloading(file, done, total))

        callbacks = train.TrainCallbacks(
            on_start=on_start,
            on_batch=on_batch,
            on_epoch=on_epoch,
            on_download=on_download,
            on_message=lambda text: self.post_message(TrainerNote(text)),
        )
        try:
            result = train.train(self.network, config, callbacks, cancel)
        except ConvcalcError as error:
            self.post_message(TrainerFailed(str(error)))
            return
        except Exception as error:  # e.g. out of memory: shown in the app, not as a traceback
            self.post_message(TrainerFailed(f"training failed: {type(error).__name__}: {error}"))
            return
        self.post_message(RunFinished(result))

    # Progress ------------------------------------------------------------------------------

    @on(RunStarted)
    def _run_started(self, event: RunStarted) -> None:
        self.total_epochs, self.batches = event.epochs, event.batches
        self.started_at, self.first_done, self.plotted_at = time.perf_counter(), None, 0.0
        self.query_one("#progress", ProgressBar).update(total=event.epochs * event.batches, progress=0)
        self._stats(f"Epoch 1/{event.epochs} starting…")

    def _stats(self, text: str | Text) -> None:
        """The progress box's two lines (a fixed height: no relayout of the screen)."""
        self.query_one("#train-stats", Static).update(text, layout=False)

    @on(Downloading)
    def _downloading(self, event: Downloading) -> None:
        size = f"{render.human_bytes(event.done)}" + (
            f" of {render.human_bytes(event.total)}" if event.total else ""
        )
        self._stats(f"Downloading {event.file}: {size}")

    @on(BatchDone)
    def _batch_done(self, event: BatchDone) -> None:
        done = (event.epoch - 1) * self.batches + event.batch + 1
        self.query_one("#progress", ProgressBar).update(progress=done)
        here = (event.epoch - 1 + (event.batch + 1) / max(self.batches, 1), event.loss)
        self.batch_losses += event.losses or [here]
        stats = Text()
        stats.append(f"Epoch {event.epoch}/{self.total_epochs}", "bold")
        stats.append(f" · batch {event.batch + 1}/{self.batches}")
        stats.append(f" · loss {event.loss:.4f}")
        stats.append(f" · {event.images_per_second:,.0f} images/s", "cyan")
        now = time.perf_counter()
        if self.first_done is None:  # a resumed run starts past 0: its rate counts from here
            self.first_done = done - 1
        elapsed, ran = now - self.started_at, done - self.first_done
        left = (self.total_epochs * self.batches - done) * elapsed / ran if ran else 0.0
        stats.append(f"\n{_clock(elapsed)} elapsed · about {_clock(left)} left", "dim")
        if self.cancel.is_set():
            stats.append(" · stopping…", "yellow")
        self._stats(stats)
        if now - self.plotted_at >= _PLOT_SECONDS:
            self.plotted_at = now
            self._draw_plots(accuracy=False)  # a batch changes the loss plot only

    @on(EpochDone)
    def _epoch_done(self, event: EpochDone) -> None:
        self.epochs.append(event.metrics)
        self._draw_plots()
        self._show_epochs()

    def _show_epochs(self) -> None:
        """The epoch table: train loss, test loss, test accuracy and time of each epoch."""
        from rich.table import Table

        table = Table(box=None, padding=(0, 1), header_style="dim", pad_edge=False)
        for header in ("epoch", "train", "test", "acc", "time"):
            table.add_column(header, justify="right")
        for m in self.epochs[-EPOCH_TABLE_ROWS:]:
            table.add_row(str(m.epoch), f"{m.train_loss:.4f}", f"{m.test_loss:.4f}", f"{m.test_accuracy:.2%}",
                          f"{m.seconds:.1f}s")  # fmt: skip
        self.query_one("#epoch-table", Static).update(table)

    @on(RunFinished)
    def _finished(self, event: RunFinished) -> None:
        result = self.result = event.result
        self.running = False
        self._set_running(False)
        text = Text()
        # lines of at most 36 characters: the form column's width from 120 columns on
        if result.cancelled:
            text.append("Stopped", "bold yellow")
            text.append(f" after {len(result.epochs)} complete epoch(s).\n")
        else:
            text.append("Finished", "bold green")
            text.append(f" {len(result.epochs)} epoch(s) in {result.seconds:.1f} s.\n")
        if result.epochs:
            text.append("Test accuracy ")
            text.append(f"{result.test_accuracy:.2%}", "bold")
            text.append(f" · loss {result.test_loss:.4f}\n")
        text.append(f"{result.images_per_second:,.0f} images/s\n", "cyan")
        if result.checkpoint is None:  # cancelled before the first batch: nothing was replaced
            text.append("No checkpoint written")
        else:
            text.append("Checkpoint ")
            text.append(str(result.checkpoint), "bold")
        self.query_one("#train-result", Static).update(text)
        self.query_one("#train-result", Static).display = True
        self._stats(
            "Stopped: the checkpoint is kept; to continue it, ctrl+g (settings), then pick it under resume."
            if result.cancelled
            else "Done."
        )
        if not self.folded:  # else when the fields unfold: listing rebuilds the Select's options
            self._update_out_placeholder()  # resume now offers the checkpoint just written
        if self.after_stop is not None:  # the run was stopped to leave the screen or quit
            proceed, self.after_stop = self.after_stop, None
            self.notify("Training stopped; the checkpoint is kept.", timeout=4)
            proceed()

    def _draw_plots(self, accuracy: bool = True) -> None:
        """Give the loss plot and (``accuracy``) the accuracy plot their data: each is built
        again when next shown (a whole plotext build, the UI's biggest cost while training)."""
        loss = self.query_one("#loss-plot", Plot)
        plt = loss.plt
        plt.clear_data()
        plt.xlabel("epoch")
        if self.batch_losses:
            plt.plot(
                [x for x, _ in self.batch_losses],
                [y for _, y in self.batch_losses],
                label="train (batch)",
                marker="braille",
            )
        if self.epochs:  # after the batch losses, as big points only: drawn above their noise
            plt.scatter(
                [m.epoch for m in self.epochs], [m.test_loss for m in self.epochs], label="test", marker="●"
            )
        if self.total_epochs:
            plt.xlim(0, self.total_epochs)
        loss.replot()
        if accuracy:
            self._draw_accuracy()

    def _draw_accuracy(self) -> None:
        accuracy = self.query_one("#accuracy-plot", Plot)
        plt = accuracy.plt
        plt.clear_data()
        plt.xlabel("epoch")
        plt.ylabel("%")
        if self.epochs:
            values = [100 * m.test_accuracy for m in self.epochs]
            epochs = [m.epoch for m in self.epochs]
            plt.plot(epochs, values, marker="braille")
            plt.scatter(epochs, values, marker="●")
            # from a round floor below the worst epoch to 100%: one point or a 3-point gain is not
            # blown up to fill the plot (90.95% alone read as a 44-132% axis)
            plt.ylim(accuracy_floor(values), 100)
        if self.total_epochs:
            plt.xlim(1, max(self.total_epochs, 2))
        accuracy.replot()


def matrix_text(matrix) -> Text:
    """A plotext matrix (rows bottom up; per cell a character and its foreground, style and
    background) as the ``Text`` that ``Text.from_ansi`` makes of plotext's ANSI canvas."""
    text = Text()
    for row in reversed(matrix.Rows):
        markers = matrix.marker[row]
        colors = list(zip(matrix.fullground[row], matrix.style[row], matrix.background[row], strict=True))
        start = 0
        for col in range(1, matrix.cols + 1):
            if col == matrix.cols or colors[col] != colors[start]:
                text.append("".join(markers[start:col]), _cell_style(colors[start]))
                start = col
        text.append("\n")
    return text


@functools.lru_cache(maxsize=256)
def _cell_style(colors: tuple) -> Style | None:
    """The rich style of plotext's (foreground, style, background): plotext's own ANSI codes,
    decoded by rich, so that both read a colour name, a 256-colour number or RGB the same way."""
    from plotext._utility import ansi_end, colors_to_ansi

    spans = Text.from_ansi(colors_to_ansi(*colors) + "x" + ansi_end).spans
    return spans[0].style if spans else None


def settings_line(config) -> Text:
    """The run's settings on one line, for the folded form: ``mnist · 8 epochs · batch 128 ·
    adam lr 0.005 onecycle · seed 0 · auto float32 → runs/lenet-mnist.pt``."""
    text = Text(f"{config.dataset} · {config.epochs} epochs · batch {config.batch_size}", "bold")
    text.append(f" · {config.optimizer} lr {config.lr:g} {config.schedule} · seed {config.seed}")
    precision = next(label for label, amp in _PRECISIONS if amp == (config.amp or ""))
    text.append(f" · {config.device} {precision}")
    if config.limit:
        text.append(f" · {config.limit:,} images")
    text.append(f" · resume {config.resume}" if config.resume else f" → {config.out}", "dim")
    return text


def accuracy_floor(percents: list[float]) -> float:
    """The accuracy axis's floor: 10 points under the worst value, down to a multiple of 10
    (90.95 -> 80, 97.5 -> 80, 42 -> 30), never below 0."""
    return max(0.0, math.floor((min(percents) - 10) / 10) * 10)


def _clock(seconds: float) -> str:
    """``42 s``, ``3:07``, ``1:02:09``."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
