"""Snapshot tests (pytest-textual-snapshot) of the designer and the training screen.

The SVGs live in ``tests/__snapshots__/test_tui_snapshots/``; they change only with
``pytest tests/test_tui_snapshots.py --snapshot-update``, after reading the diff report.
Everything shown is deterministic: the training screen's run is fed fixed metrics.
"""

from __future__ import annotations

from convcalc.spec import load_spec
from convcalc.tui.app import ConvcalcApp
from tests.conftest import SPECS

SIZE = (130, 36)
LENET = SPECS / "lenet.yaml"


def lenet_app() -> ConvcalcApp:
    return ConvcalcApp(load_spec(LENET), LENET.relative_to(SPECS.parent))


def test_designer_lenet(snap_compare):
    assert snap_compare(lenet_app(), terminal_size=SIZE, press=["down", "down", "down"])


def test_designer_impossible_layer(snap_compare):
    async def kernel_too_large(pilot):
        await pilot.click("#field-kernel_size")
        await pilot.press("end", "ctrl+u", "2", "9", "escape")
        await pilot.pause()

    assert snap_compare(lenet_app(), terminal_size=SIZE, run_before=kernel_too_large)


def test_designer_invalid_value(snap_compare):
    async def bad_stride(pilot):
        await pilot.click("#field-stride")
        await pilot.press("0", "escape")
        await pilot.pause()

    assert snap_compare(lenet_app(), terminal_size=SIZE, run_before=bad_stride)


async def _open_training(pilot) -> None:
    await pilot.press("ctrl+t")
    await pilot.pause()
    while pilot.app.screen.defaults is None:  # torch loads in a worker thread
        await pilot.pause(0.05)
    await pilot.pause()


def test_training_screen_ready(snap_compare):
    assert snap_compare(lenet_app(), terminal_size=SIZE, run_before=_open_training)


def test_training_screen_after_a_run(snap_compare):
    """A run's messages with fixed numbers, as the worker posts them."""
    from convcalc.train import EpochMetrics, TrainResult
    from convcalc.tui.training import BatchDone, EpochDone, RunFinished, RunStarted

    async def fixed_run(pilot) -> None:
        await _open_training(pilot)
        screen = pilot.app.screen
        epochs = []
        screen.post_message(RunStarted(3, 10))
        for epoch in (1, 2, 3):
            for batch in range(10):
                loss = 2.3 / (1 + (epoch - 1) * 10 + batch) ** 0.7
                screen.post_message(BatchDone(epoch, batch, loss, 5000.0))
            metrics = EpochMetrics(epoch, 0.9 / epoch, 0.8 / epoch, 0.9 + 0.03 * epoch, 1.5, 5000.0)
            epochs.append(metrics)
            screen.post_message(EpochDone(metrics))
        result = TrainResult(0.99, 0.8 / 3, epochs, 5000.0, 4.5, "runs/lenet-mnist.pt", False)
        screen.post_message(RunFinished(result))
        await pilot.pause()
        await pilot.pause()

    assert snap_compare(lenet_app(), terminal_size=SIZE, run_before=fixed_run)
