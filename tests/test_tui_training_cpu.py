"""The training screen's cost and its small-terminal layout (issue 12, points 4 and 5).

A plot is built only when its data changed, and then exactly as plotext draws it; the epoch
table changes once per epoch; the training thread posts progress at most twice a second and
still every batch's loss reaches the plot; the form folds into one line during a run; below
120 columns one view at a time (``ctrl+l``: loss, accuracy, epochs), snapshots at 80×24 and
100×30 (``tests/__snapshots__/test_tui_training_cpu/``, changed only with ``--snapshot-update``).

The runs here are scripted: ``train.train`` is replaced by a fixed run on a fake clock, so
messages, numbers and pictures are the same on every machine.
"""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console
from rich.text import Text
from textual_plotext.plot import Plot as Figure

pytest.importorskip("torch")  # the training screen loads convcalc.train when it opens

from textual.widgets import Select, Static  # noqa: E402

from convcalc import train  # noqa: E402
from convcalc.train import EpochMetrics, TrainResult  # noqa: E402
from convcalc.tui import training  # noqa: E402
from convcalc.tui.training import BatchDone, EpochDone, Plot, RunStarted, matrix_text  # noqa: E402
from tests.test_tui import pilot_test  # noqa: E402
from tests.test_tui_training import lenet_app, open_training, wait_for  # noqa: E402

pytestmark = pytest.mark.slow  # each test opens the training screen, which loads torch

EPOCHS, BATCHES = 3, 10
STEP = 0.125  # fake seconds per batch: exact in binary, so the spacing of messages is exact too
WIDE, SMALL, MEDIUM = (160, 48), (80, 24), (100, 30)


def scripted_loss(epoch: int, batch: int) -> float:
    return 2.3 / (1 + (epoch - 1) * BATCHES + batch) ** 0.7


def scripted_metrics(epoch: int) -> EpochMetrics:
    return EpochMetrics(epoch, 0.9 / epoch, 0.8 / epoch, 0.9 + 0.03 * epoch, 1.5, 5000.0)


@pytest.fixture
def scripted(monkeypatch, tmp_path):
    """``train.train`` replaced by a fixed run of EPOCHS × BATCHES on a fake clock that moves
    STEP per batch (the screen's only clock, ``time.perf_counter``). It writes an empty
    checkpoint file, and waits for ``hold`` (set by default) after the first epoch. Returns the
    run's ``posted`` messages as ``(fake time, message)`` and ``hold``; the working folder is
    ``tmp_path``, so the default checkpoint path is free."""
    monkeypatch.chdir(tmp_path)
    clock = [0.0]
    monkeypatch.setattr(training, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
    run = SimpleNamespace(posted=[], hold=threading.Event(), clock=clock)
    run.hold.set()

    def fake_train(network, config, callbacks, cancel):
        callbacks.on_start(EPOCHS, BATCHES)
        epochs = []
        for epoch in range(1, EPOCHS + 1):
            for batch in range(BATCHES):
                clock[0] += STEP
                callbacks.on_batch(epoch, batch, scripted_loss(epoch, batch))
            epochs.append(scripted_metrics(epoch))
            callbacks.on_epoch(epochs[-1])
            run.hold.wait(60)
        Path(config.out).parent.mkdir(parents=True, exist_ok=True)
        Path(config.out).write_bytes(b"")
        last = epochs[-1]
        return TrainResult(last.test_accuracy, last.test_loss, epochs, 5000.0, 4.5, config.out, False)

    monkeypatch.setattr(train, "train", fake_train)
    return run


def record_posts(screen, run) -> None:
    post = screen.post_message

    def recorded(message):
        run.posted.append((run.clock[0], message))
        return post(message)

    screen.post_message = recorded


async def scripted_run(pilot, run) -> None:
    """Open the training screen and run the scripted training to its end with Start."""
    screen = await open_training(pilot, pilot.app)
    record_posts(screen, run)
    screen.query_one("#epochs").value = str(EPOCHS)  # as the scripted run has (the form says so)
    await pilot.press("ctrl+t")
    await wait_for(pilot, lambda: screen.result is not None)
    await pilot.pause()


def shown(screen, selector: str) -> bool:
    widget = screen.query_one(selector)
    region = widget.region
    return widget.display and region.height > 0 and region.bottom <= screen.size.height


def plain(plot: Plot) -> str:
    return plot.render().plain


def fresh(plot: Plot) -> str:
    """What plotext itself draws for the plot's data now, at its size (``PlotextPlot.render``)."""
    return Text.from_ansi(plot.plt.build()).plain


# plotext's matrix as Text: the same picture as its own ANSI canvas ------------------------------


@settings(max_examples=25, deadline=None)
@given(
    losses=st.lists(st.floats(0.01, 10), min_size=1, max_size=60),
    accuracies=st.lists(st.floats(0, 100), min_size=1, max_size=8),
    size=st.tuples(st.integers(20, 150), st.integers(6, 40)),
    theme=st.sampled_from(["default", "dark", "pro", "matrix", "girly", "clear"]),  # names, 256, RGB
)
def test_matrix_text_draws_what_plotexts_canvas_draws(losses, accuracies, size, theme):
    figure = Figure()
    figure.theme(theme)
    figure.plotsize(*size)
    figure.plot(list(range(len(losses))), losses, label="train (batch)", marker="braille")
    figure.scatter(list(range(len(accuracies))), accuracies, label="test", marker="●")
    expected = Text.from_ansi(figure.build())  # builds the matrix, then writes it as ANSI text
    mine = matrix_text(figure.monitor.matrix)
    console = Console(width=size[0] + 10, color_system="truecolor", force_terminal=True)
    assert mine.plain == expected.plain
    assert list(console.render(mine)) == list(console.render(expected))


# Plots, epoch table and messages ----------------------------------------------------------------


def epoch_rows(table: Static) -> list[list[str]]:
    console = Console(width=40, record=True)
    console.print(table.content)
    return [line.split() for line in console.export_text().splitlines()[1:] if line.strip()]


@pilot_test
async def test_plots_are_built_when_their_data_changes_and_the_epoch_table_once_per_epoch():
    app = lenet_app()
    async with app.run_test(size=WIDE) as pilot:
        screen = await open_training(pilot, app)
        loss, accuracy = screen.query_one("#loss-plot", Plot), screen.query_one("#accuracy-plot", Plot)
        table, updates = screen.query_one("#epoch-table", Static), []
        update = table.update
        table.update = lambda content="", **kw: (updates.append(content), update(content, **kw))
        screen.post_message(RunStarted(EPOCHS, BATCHES))
        pictures = []
        for epoch in range(1, EPOCHS + 1):
            for batch in range(BATCHES):
                screen.post_message(BatchDone(epoch, batch, scripted_loss(epoch, batch), 5000.0))
            screen.post_message(EpochDone(scripted_metrics(epoch)))
            await pilot.pause()
            await pilot.pause()
            # what the plots show is what plotext draws for the data now: no stale picture
            assert (plain(loss), plain(accuracy)) == (fresh(loss), fresh(accuracy))
            pictures.append((plain(loss), plain(accuracy)))
            assert len(updates) == epoch  # the table: once per epoch, not per batch, with its numbers
            assert epoch_rows(table) == [
                [str(m.epoch), f"{m.train_loss:.4f}", f"{m.test_loss:.4f}", f"{m.test_accuracy:.2%}"]
                + [f"{m.seconds:.1f}s"]
                for m in map(scripted_metrics, range(1, epoch + 1))
            ]
        assert len(set(pictures)) == EPOCHS  # each epoch changed both plots
        assert len({accuracy for _, accuracy in pictures}) == EPOCHS
        builds = (loss.builds, accuracy.builds)
        screen.refresh(layout=True)  # a relayout repaints every widget
        for widget in screen.query("*"):
            widget.refresh()
        await pilot.pause()
        await pilot.pause()
        assert (loss.builds, accuracy.builds) == builds  # repainted from the built picture
        assert (plain(loss), plain(accuracy)) == pictures[-1]
        await pilot.resize_terminal(150, 44)  # a new size is a new picture
        await pilot.pause()
        await pilot.pause()
        assert loss.builds > builds[0] and plain(loss) == fresh(loss) != pictures[-1][0]


@pilot_test
async def test_two_progress_messages_a_second_carry_every_batchs_loss(scripted):
    app = lenet_app()
    async with app.run_test(size=WIDE) as pilot:
        await scripted_run(pilot, scripted)
        screen = app.screen
        sent = [(at, m) for at, m in scripted.posted if isinstance(m, BatchDone)]
        assert len(sent) < EPOCHS * BATCHES / 3  # far fewer messages than batches
        for (before, _), (at, message) in zip(sent, sent[1:], strict=False):
            assert at - before >= 0.5 or message.batch == BATCHES - 1  # ≤ 2 a second, and each epoch's end
        assert [(m.epoch, m.batch) for _, m in sent if m.batch == BATCHES - 1] == [
            (epoch, BATCHES - 1) for epoch in range(1, EPOCHS + 1)
        ]
        # yet the plot has every batch, in order, at its place on the epoch axis
        assert screen.batch_losses == [
            (epoch - 1 + (batch + 1) / BATCHES, scripted_loss(epoch, batch))
            for epoch in range(1, EPOCHS + 1)
            for batch in range(BATCHES)
        ]
        assert [m.epoch for m in screen.epochs] == list(range(1, EPOCHS + 1))
        loss = screen.query_one("#loss-plot", Plot)
        assert plain(loss) == fresh(loss)
        # from 120 columns both plots and the table show, and ctrl+l (one view) is not offered
        assert not screen.check_action("next_view", ())
        await pilot.press("ctrl+l")
        await pilot.pause()
        for selector in ("#loss-plot", "#accuracy-plot", "#epoch-table"):
            assert shown(screen, selector)
        await pilot.resize_terminal(*SMALL)
        await pilot.pause()
        assert screen.check_action("next_view", ())


# The form folds during a run ----------------------------------------------------------------


@pilot_test
async def test_the_form_folds_into_one_line_during_a_run_and_unfolds_with_ctrl_g(scripted):
    scripted.hold.clear()  # the run waits after its first epoch
    app = lenet_app()
    async with app.run_test(size=WIDE) as pilot:
        screen = await open_training(pilot, app)
        fields, line = screen.query_one("#train-fields"), screen.query_one("#train-settings", Static)
        assert fields.display and not line.display
        screen.query_one("#epochs").value = "5"
        screen.query_one("#optimizer", Select).value = "sgd"
        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: len(screen.epochs) == 1)
        assert not fields.display and line.display and screen.focused is None
        shown = str(line.visual)
        for part in ("mnist", "5 epochs", "batch 128", "sgd lr 0.005", "seed 0", "runs/lenet-mnist.pt"):
            assert part in shown
        assert not screen.check_action("settings", ())  # the settings cannot change during a run
        await pilot.press("ctrl+g")
        await pilot.pause()
        assert not fields.display
        scripted.hold.set()
        await wait_for(pilot, lambda: screen.result is not None)
        await pilot.pause()
        assert not fields.display  # the run's plots keep the room until asked
        assert screen.check_action("settings", ())
        await pilot.press("ctrl+g")
        await pilot.pause()
        assert fields.display and not line.display
        assert screen.focused is screen.query_one("#dataset")
        resume = [value for _, value in screen.query_one("#resume", Select)._options]
        assert str(Path("runs/lenet-mnist.pt")) in resume  # the checkpoint just written


# Below 120 columns: one view at a time ---------------------------------------------------------


@pilot_test
async def test_ctrl_l_shows_loss_accuracy_and_epochs_in_turn_and_the_plot_is_readable(scripted):
    size = SMALL  # 100×30: the snapshot below
    app = lenet_app()
    async with app.run_test(size=size) as pilot:
        await scripted_run(pilot, scripted)
        screen = app.screen
        views = []
        for _ in range(4):
            views.append(tuple(shown(screen, s) for s in ("#loss-plot", "#accuracy-plot", "#epoch-table")))
            plot = screen.query_one("#loss-plot" if views[-1][0] else "#accuracy-plot")
            if plot.display:  # readable: the whole width, 9 rows of 24 (5 of them data; was 1-2)
                assert plot.size.width >= size[0] - 4 and plot.size.height >= 9
            await pilot.press("ctrl+l")
            await pilot.pause()
        assert views == [
            (True, False, False),
            (False, True, False),
            (False, False, True),
            (True, False, False),
        ]
        await pilot.press("ctrl+l")  # four presses ended on the accuracy plot: now the epochs
        await pilot.pause()
        table = screen.query_one("#epoch-table", Static)
        assert table.region.bottom <= size[1] and table.size.height == EPOCHS + 1  # every epoch in view
        for button in ("#start", "#stop"):
            assert shown(screen, button)


# Snapshots ------------------------------------------------------------------------------------


def after_the_run(*keys: str):
    async def run_before(pilot) -> None:
        await scripted_run(pilot, pilot.app.scripted)
        await pilot.press(*keys)
        await pilot.pause()

    return run_before


def scripted_app(run):
    app = lenet_app()
    app.scripted = run
    return app


@pytest.mark.parametrize(
    ("size", "keys"),
    [(SMALL, ()), (SMALL, ("ctrl+l", "ctrl+l")), (MEDIUM, ())],
    ids=["80x24-loss", "80x24-epochs", "100x30-loss"],  # the accuracy view: the pilot test above
)
def test_snapshot_after_a_run(snap_compare, scripted, size, keys):
    assert snap_compare(scripted_app(scripted), terminal_size=size, run_before=after_the_run(*keys))


@pilot_test
async def test_the_runs_notes_are_shown(scripted, monkeypatch):
    """What `convcalc train` says on stderr (the thread choice, data kept on the CPU) reaches
    the training screen as a notice (TrainCallbacks.on_message)."""
    run_scripted = train.train
    note = "threads: 1 of 2 (a batch took 1 9.6 ms, 2 48.3 ms; load average 3.52 on 2 cores)"

    def noting(network, config, callbacks, cancel):
        callbacks.on_message(note)
        return run_scripted(network, config, callbacks, cancel)

    monkeypatch.setattr(train, "train", noting)
    app = lenet_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await scripted_run(pilot, scripted)
        assert [n.message for n in app._notifications if n.title == "Training"] == [note]
