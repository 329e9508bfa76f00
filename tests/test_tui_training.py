"""The training screen: a real run of ``train.train`` in the app's worker thread, on a small
generated IDX data set; start, progress, stop; a run to the end checked against an independent
evaluation of its checkpoint; the data module's message when files are missing."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from rich.console import Console

torch = pytest.importorskip("torch")

from textual.widgets import Input, ProgressBar, Select, Static  # noqa: E402

from bench.bench_tui import write_digits  # noqa: E402
from convcalc import data, train  # noqa: E402
from convcalc.spec import load_spec  # noqa: E402
from convcalc.tui.app import ConvcalcApp  # noqa: E402
from convcalc.tui.dialogs import UnsavedDialog  # noqa: E402
from convcalc.tui.training import EPOCH_TABLE_ROWS, TrainingScreen  # noqa: E402
from convcalc.tui.wording import tui_text  # noqa: E402
from tests.conftest import SPECS  # noqa: E402
from tests.test_tui import SIZE, pilot_test  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture
def digits(tmp_path):
    """640 training and 200 test images of the bench's learnable squares (bench_tui.write_digits)."""
    folder = tmp_path / "data"
    write_digits(folder, 640, 200)
    return folder


async def wait_for(pilot, condition, timeout: float = 120.0) -> None:
    """Let the app run until ``condition()`` holds (a generous cap, not a timing assertion)."""
    waited = 0.0
    while not condition():
        if waited > timeout:
            raise AssertionError("the app did not reach the expected state")
        await pilot.pause(0.05)
        waited += 0.05


async def open_training(pilot, app: ConvcalcApp) -> TrainingScreen:
    await pilot.pause()
    await pilot.press("ctrl+t")
    await pilot.pause()
    screen = app.screen
    assert isinstance(screen, TrainingScreen)
    await wait_for(pilot, lambda: screen.defaults is not None)
    await pilot.pause()
    return screen


def fill(screen: TrainingScreen, **fields: str) -> None:
    for selector, value in fields.items():
        screen.query_one(f"#{selector.replace('_', '-')}", Input).value = value


def lenet_app() -> ConvcalcApp:
    path = SPECS / "lenet.yaml"
    return ConvcalcApp(load_spec(path), path)


@pilot_test
async def test_defaults_are_train_configs():
    app = lenet_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_training(pilot, app)
        defaults = train.TrainConfig()
        assert screen.query_one("#dataset", Select).value == defaults.dataset
        assert screen.query_one("#epochs", Input).value == str(defaults.epochs)
        assert screen.query_one("#batch-size", Input).value == str(defaults.batch_size)
        assert float(screen.query_one("#lr", Input).value) == defaults.lr
        assert not screen.query_one("#start").disabled and screen.query_one("#stop").disabled
        assert screen.focused is screen.query_one("#dataset", Select)  # typing starts at the form
        assert screen._config() == replace(
            defaults, data_dir=None, out=None
        )  # the form says train's defaults


@pilot_test
async def test_optimizer_schedule_seed_device_precision_and_data_sets_reach_the_run():
    app = lenet_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_training(pilot, app)
        datasets = [value for _, value in screen.query_one("#dataset", Select)._options]
        assert {"mnist", "fashion-mnist", "kmnist", "cifar10", "folder"} <= set(datasets)
        devices = [value for _, value in screen.query_one("#device", Select)._options]
        assert devices[:2] == ["auto", "cpu"] and ("cuda" in devices) == torch.cuda.is_available()
        for key, value in (
            ("optimizer", "sgd"),
            ("schedule", "cosine"),
            ("device", "cpu"),
            ("precision", "bf16"),
        ):
            screen.query_one(f"#{key}", Select).value = value
        fill(screen, seed="7")
        await pilot.pause()
        config = screen._config()
        assert (config.optimizer, config.schedule, config.seed, config.device, config.amp) == (
            "sgd",
            "cosine",
            7,
            "cpu",
            "bf16",
        )
        fill(screen, seed="-1")
        with pytest.raises(ValueError, match="seed"):
            screen._config()


@pilot_test
async def test_start_shows_progress_and_stop_keeps_the_checkpoint(digits, tmp_path):
    app = lenet_app()
    checkpoint = tmp_path / "stopped.pt"
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_training(pilot, app)
        fill(screen, data_dir=str(digits), epochs="500", batch_size="32", out=str(checkpoint))
        await pilot.click("#start")
        await wait_for(pilot, lambda: screen.batch_losses)
        bar = screen.query_one("#progress", ProgressBar)
        assert bar.total == 500 * 20 and 0 < bar.progress < bar.total
        assert "images/s" in str(screen.query_one("#train-stats", Static).visual)
        assert screen.query_one("#start").disabled and not screen.query_one("#stop").disabled
        await pilot.click("#stop")
        await wait_for(pilot, lambda: screen.result is not None)
        result = screen.result
        assert result.cancelled and len(result.epochs) < 500
        assert checkpoint.exists() and result.checkpoint == str(checkpoint)
        saved = train.load_checkpoint(checkpoint)
        assert saved["complete"] is False
        text = str(screen.query_one("#train-result", Static).visual)
        assert "Stopped" in text and str(checkpoint) in text
        assert not screen.query_one("#start").disabled  # ready for another run


@pilot_test
async def test_a_run_to_the_end_reports_its_test_accuracy(digits, tmp_path):
    app = lenet_app()
    checkpoint = tmp_path / "done.pt"
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_training(pilot, app)
        fill(screen, data_dir=str(digits), epochs="3", batch_size="32", lr="0.003", out=str(checkpoint))
        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: screen.result is not None)
        result = screen.result
        assert not result.cancelled and [m.epoch for m in result.epochs] == [1, 2, 3]
        assert [m.epoch for m in screen.epochs] == [1, 2, 3]  # every epoch reached the plots
        bar = screen.query_one("#progress", ProgressBar)
        assert bar.progress == bar.total == 3 * 20
        # the accuracy shown is that of the saved model, evaluated independently
        evaluated = train.evaluate_checkpoint(checkpoint, data_dir=str(digits), device="cpu", download=False)
        assert math.isclose(evaluated.test_accuracy, result.test_accuracy)
        assert evaluated.test_accuracy > 0.5  # the squares are easy to tell apart
        text = str(screen.query_one("#train-result", Static).visual)
        assert f"{result.test_accuracy:.2%}" in text and str(checkpoint) in text


@pilot_test
async def test_missing_data_shows_the_data_modules_message(tmp_path):
    app = lenet_app()
    empty = tmp_path / "empty"
    empty.mkdir()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_training(pilot, app)
        fill(screen, data_dir=str(empty), out=str(tmp_path / "x.pt"))
        screen.query_one("#download", Select).value = False
        await pilot.click("#start")
        error = screen.query_one("#train-error", Static)
        await wait_for(pilot, lambda: error.display and not screen.running)
        shown = str(error.visual)  # the data module's message, in the TUI's words
        assert shown == f"✗ {tui_text(data.missing_message('mnist', str(empty)))}"
        assert "set the data folder" in shown and "--data-dir" not in shown
        assert not (tmp_path / "x.pt").exists()
        assert not screen.query_one("#start").disabled  # the app goes on


@pilot_test
async def test_bad_settings_and_unfit_specs_are_reported(digits, tmp_path):
    app = lenet_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_training(pilot, app)
        fill(screen, data_dir=str(digits), epochs="0")
        await pilot.click("#start")
        await pilot.pause()
        assert "epochs: must be greater than 0" in str(screen.query_one("#train-error", Static).visual)
        assert not screen.running
        await pilot.press("escape")
        # a 3×32×32 input does not take 1×28×28 digits: the training module says so
        designer = app.designer
        await designer._apply(designer.network.model_copy(update={"input": (3, 32, 32)}))
        await open_training(pilot, app)
        screen = app.screen
        fill(screen, data_dir=str(digits), epochs="1", out=str(tmp_path / "y.pt"))  # the form kept "0"
        await pilot.click("#start")
        await pilot.pause()
        assert isinstance(app.screen, UnsavedDialog)  # the edited spec is not saved: asked first
        await pilot.click("#discard")  # train without saving
        error = screen.query_one("#train-error", Static)
        await wait_for(pilot, lambda: error.display and not screen.running)
        assert "set `input: [1, 28, 28]` in the spec" in str(error.visual)


@pytest.mark.parametrize(("percents", "floor"), [([90.95], 80), ([97.5, 99.1], 80), ([42.0], 30), ([3.0], 0)])
def test_the_accuracy_axis_starts_at_a_round_floor_under_the_worst_epoch(percents, floor):
    from convcalc.tui.training import accuracy_floor

    assert accuracy_floor(percents) == floor


@pilot_test
async def test_the_dashboard_shows_an_epoch_table_elapsed_and_eta(digits, tmp_path):
    app = lenet_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_training(pilot, app)
        fill(screen, data_dir=str(digits), epochs="200", batch_size="64", out=str(tmp_path / "d.pt"))
        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: len(screen.epochs) >= 2)  # 198 epochs to go: still running
        stats = str(screen.query_one("#train-stats", Static).visual)
        assert "elapsed" in stats and "left" in stats
        await pilot.press("ctrl+b")
        await wait_for(pilot, lambda: screen.result is not None)
        assert len(screen.result.epochs) >= 2
        console = Console(width=40, record=True)
        console.print(screen.query_one("#epoch-table", Static).content)
        rows = [line.split() for line in console.export_text().splitlines() if line.strip()]
        assert rows[0] == ["epoch", "train", "test", "acc", "time"]
        shown = screen.result.epochs[-EPOCH_TABLE_ROWS:]  # the last dozen (an idle machine runs more)
        assert [row[:4] for row in rows[1:]] == [  # one row per epoch, the run's own numbers
            [str(m.epoch), f"{m.train_loss:.4f}", f"{m.test_loss:.4f}", f"{m.test_accuracy:.2%}"]
            for m in shown
        ]
