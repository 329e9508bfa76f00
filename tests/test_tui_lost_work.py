"""No lost work in the TUI (issue 12, point 1): a run never replaces a checkpoint, Resume
continues one, leaving or quitting a running training asks, training offers to save the spec
first, and an edit that does not validate is never saved, quit on or dropped without a word.
Each of these failed before: Start overwrote the last checkpoint, Escape stopped a run, Ctrl+S
and Ctrl+Q went ahead, and moving to another row dropped the typed text silently."""

from __future__ import annotations

import shutil
import threading

import pytest

torch = pytest.importorskip("torch")

from textual.widgets import Input, Select  # noqa: E402

from convcalc import train  # noqa: E402
from convcalc.spec import load_spec  # noqa: E402
from convcalc.tui.app import ConvcalcApp  # noqa: E402
from convcalc.tui.dialogs import ConfirmDialog, UnsavedDialog  # noqa: E402
from tests.conftest import SPECS  # noqa: E402
from tests.test_tui import SIZE, pilot_test, type_into  # noqa: E402
from tests.test_tui_training import digits, fill, lenet_app, open_training, wait_for  # noqa: E402, F401

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture
def images(digits):  # noqa: F811 (the imported fixture, requested by name)
    """The training screen tests' small generated MNIST-format data set."""
    return digits


def lenet_copy(tmp_path) -> ConvcalcApp:
    path = tmp_path / "net.yaml"
    shutil.copy(SPECS / "lenet.yaml", path)
    return ConvcalcApp(load_spec(path), path)


def recorded_notes(screen) -> list[str]:
    """Replace ``screen.notify`` with a recorder of (title: message)."""
    notes: list[str] = []
    screen.notify = lambda message, title="", **kwargs: notes.append(f"{title}: {message}")
    return notes


@pilot_test
async def test_a_new_run_never_replaces_a_checkpoint(images, tmp_path):
    app = lenet_app()
    kept = tmp_path / "run.pt"
    kept.write_bytes(b"last week's model")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_training(pilot, app)
        notes = recorded_notes(screen)
        fill(screen, data_dir=str(images), epochs="1", batch_size="64", limit="128", out=str(kept))
        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: screen.result is not None)
        assert kept.read_bytes() == b"last week's model"
        assert screen.result.checkpoint == str(tmp_path / "run-2.pt")
        assert train.load_checkpoint(tmp_path / "run-2.pt")["complete"]
        assert any(f"{kept} exists and is kept" in note for note in notes)


@pilot_test
async def test_resume_lists_the_checkpoint_and_continues_it(images, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default checkpoints go to runs/ here
    app = lenet_app()
    cancel = threading.Event()  # a run stopped after its first epoch, as Stop leaves one
    stopped = train.train(
        app.designer.network,
        train.TrainConfig(data_dir=str(images), epochs=3, batch_size=64, limit=256, download=False),
        train.TrainCallbacks(on_epoch=lambda metrics: cancel.set()),
        cancel,
    )
    assert stopped.cancelled
    assert stopped.checkpoint == train.default_checkpoint_path(app.designer.network, "mnist")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_training(pilot, app)
        fill(screen, data_dir=str(images))
        resume = screen.query_one("#resume", Select)
        assert stopped.checkpoint in [value for _, value in resume._options]
        resume.value = stopped.checkpoint
        await pilot.pause()
        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: screen.result is not None)
        done = screen.result
        assert not done.cancelled and [m.epoch for m in done.epochs] == [1, 2, 3]
        assert done.epochs[0] == stopped.epochs[0]  # the stopped run's first epoch, kept
        assert done.checkpoint == stopped.checkpoint  # continued in place, as --resume does
        assert train.load_checkpoint(done.checkpoint)["complete"]


@pilot_test
async def test_leaving_or_quitting_a_running_training_asks(images, tmp_path):
    app = lenet_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_training(pilot, app)
        fill(screen, data_dir=str(images), epochs="500", batch_size="32", out=str(tmp_path / "long.pt"))
        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: screen.batch_losses)
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("escape")  # keep training
        await pilot.pause()
        assert app.screen is screen and screen.running and not screen.cancel.is_set()
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.click("#no")
        await pilot.pause()
        assert app.screen is screen and screen.running
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.click("#yes")  # stop and go back
        await wait_for(pilot, lambda: screen.result is not None)  # the run ends, then the screen goes
        await wait_for(pilot, lambda: app.screen is app.designer)
        assert screen.result.cancelled and screen.result.checkpoint == str(tmp_path / "long.pt")
        assert train.load_checkpoint(tmp_path / "long.pt")["complete"] is False


@pilot_test
async def test_training_offers_to_save_the_spec_first(images, tmp_path):
    app = lenet_copy(tmp_path)
    path = tmp_path / "net.yaml"
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await type_into(pilot, "#field-out_channels", "8")
        assert app.designer.dirty
        screen = await open_training(pilot, app)
        out = str(tmp_path / "a.pt")
        fill(screen, data_dir=str(images), epochs="1", batch_size="64", limit="128", out=out)
        await pilot.press("ctrl+t")
        await pilot.pause()
        assert isinstance(app.screen, UnsavedDialog) and not screen.running
        await pilot.click("#save")
        await wait_for(pilot, lambda: screen.result is not None)
        assert not app.designer.dirty
        assert load_spec(path).layers[0].out_channels == 8  # the file holds what was trained
        assert train.load_checkpoint(tmp_path / "a.pt")["spec"]["layers"][0]["out_channels"] == 8


@pilot_test
async def test_save_and_quit_ask_while_a_field_shows_an_error(tmp_path):
    app = lenet_copy(tmp_path)
    path = tmp_path / "net.yaml"
    before = path.read_text()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await type_into(pilot, "#field-kernel_size", "-1")
        assert app.designer.invalid is not None and not app.designer.dirty
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("escape")  # go back and fix it
        await pilot.pause()
        assert path.read_text() == before
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog) and app.is_running  # not quit on an unapplied edit
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is app.designer and app.is_running


@pilot_test
async def test_moving_to_another_row_says_the_edit_was_not_applied(tmp_path):
    app = lenet_copy(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        notes = recorded_notes(app.designer)
        await type_into(pilot, "#field-kernel_size", "-1")
        app.designer.query_one("#layers").focus()
        await pilot.press("down")
        await pilot.pause()
        assert app.designer.selected == 1 and app.designer.invalid is None
        assert any(note.startswith("Edit not applied: layer 0") and "-1" in note for note in notes)


@pilot_test
async def test_the_form_is_kept_between_visits_and_sets_the_memory_batch():
    app = lenet_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_training(pilot, app)
        fill(screen, epochs="3", batch_size="32", lr="0.01")
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is app.designer
        totals = str(app.designer.query_one("#totals").visual)
        assert "@32" in totals and "@128" not in totals  # training memory at the form's batch size
        screen = await open_training(pilot, app)
        values = {key: screen.query_one(f"#{key}", Input).value for key in ("epochs", "batch-size", "lr")}
        assert values == {"epochs": "3", "batch-size": "32", "lr": "0.01"}
