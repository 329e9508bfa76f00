"""Messages in the TUI speak of its controls, not the CLI's flags (issue 12, point 6): the data,
training and solver modules' own messages, reworded by ``tui_text`` where the TUI shows them."""

from __future__ import annotations

import re

import pytest
from textual.widgets import Input, Static

from convcalc import data
from convcalc.engine import analyze
from convcalc.solve import SolveError
from convcalc.spec import load_spec, network_from_data, spec_to_data
from convcalc.tui import model
from convcalc.tui.wording import tui_text
from tests.test_tui import LENET, SIZE, app_for, pilot_test, totals

FLAG = re.compile(r"--[a-z]|convcalc solve")


def solver_message(network, index: int, input_shape, target) -> str:
    with pytest.raises(SolveError) as caught:
        model.size_choices(network, index, input_shape, target)
    return str(caught.value)


def auto_padding_lenet():
    """LeNet whose c1 asks padding: auto for a 27×27 output with stride 2: unreachable."""
    data_ = spec_to_data(load_spec(LENET))
    data_["layers"][0].update(padding="auto", output_shape=[27, 27], stride=2)
    return network_from_data(data_)


def test_the_data_modules_missing_files_message(tmp_path):
    message = data.missing_message("mnist", str(tmp_path))
    assert "--data-dir" in message  # the CLI's wording stays as it is
    shown = tui_text(message)
    assert not FLAG.search(shown) and "set the data folder" in shown
    assert shown.splitlines()[0] == message.splitlines()[0]  # what is missing is said as before


def test_the_training_modules_messages():
    train = pytest.importorskip("convcalc.train")
    torch = pytest.importorskip("torch")
    with pytest.raises(train.TrainError) as folder:
        train._check_config(train.TrainConfig(dataset=train.FOLDER, data_dir=None))
    assert "needs a data folder" in tui_text(str(folder.value)) and not FLAG.search(
        tui_text(str(folder.value))
    )
    if not torch.cuda.is_available():
        with pytest.raises(train.TrainError) as device:
            train.resolve_device("cuda")
        assert tui_text(str(device.value)).endswith("choose device cpu or auto")


def test_the_solvers_messages():
    lenet = load_spec(LENET)
    up = solver_message(lenet, 0, (1, 28, 28), (56, 56))  # a conv cannot double its input
    transposed = model.edit_layer(
        lenet, 0, "ConvTranspose2d", {"out_channels": 6, "kernel_size": 2, "stride": 2}
    )
    down = solver_message(transposed, 0, (1, 28, 28), (10, 10))
    for message in (up, down):
        assert "--transposed" in message
        assert not FLAG.search(tui_text(message)) and "change the layer's type in the editor" in tui_text(
            message
        )
    engine = str(analyze(auto_padding_lenet()).errors[0])
    assert "convcalc solve --in 28 --out 27" in engine
    assert tui_text(engine).endswith("(o on this layer lists the settings that can)")


def test_messages_without_flags_are_left_alone():
    for message in ("epochs: must be greater than 0 (got 0)", str(analyze(load_spec(LENET)).rows[0].layer)):
        assert tui_text(message) == message


@pilot_test
async def test_the_output_size_dialog_and_the_designer_show_the_tui_wording():
    app = app_for(LENET)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("o")
        await pilot.pause()
        app.screen.query_one("#solve-target", Input).value = "56x56"
        await pilot.press("enter")
        status = app.screen.query_one("#solve-status", Static)
        for _ in range(200):  # the solver runs in a worker thread
            if str(status.visual).startswith("✗"):
                break
            await pilot.pause(0.05)
        shown = str(status.visual)
        assert shown.startswith("✗ no Conv2d") and "change the layer's type in the editor" in shown
        assert not FLAG.search(shown)
        await pilot.press("escape")
        await app.designer._apply(auto_padding_lenet())
        await pilot.pause()
        assert "o on this layer lists the settings" in totals(app) and not FLAG.search(totals(app))
