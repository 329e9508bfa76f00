"""Wording of the training command's closing line (issue 18: `after 1 epochs`)."""

from types import SimpleNamespace

import pytest

from convcalc.cli import _result_line


def _result(epochs_done: int) -> SimpleNamespace:
    history = [SimpleNamespace(epoch=e) for e in range(1, epochs_done + 1)]
    return SimpleNamespace(
        epochs=history, test_accuracy=0.5, test_loss=1.0, seconds=2.0, images_per_second=1000.0
    )


def test_one_epoch_is_singular():
    line = _result_line(_result(1))
    assert "after 1 epoch," in line
    assert "epochs" not in line


@pytest.mark.parametrize("count", [2, 3, 10])
def test_several_epochs_are_plural(count):
    assert f"after {count} epochs," in _result_line(_result(count))
