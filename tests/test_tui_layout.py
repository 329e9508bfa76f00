"""Any terminal from 80×24 up (issue 12, point 4): the designer and the training screen at 80×24,
100×30 and 160×48, as snapshots (``tests/__snapshots__/test_tui_layout/``, changed only with
``--snapshot-update`` after looking at them) and as checks of what must stay in view: the
table's output, params and RF columns, the error line under the totals, Start and Stop."""

from __future__ import annotations

import pytest
from textual.widgets import Button, DataTable, Static

from convcalc.spec import load_spec
from convcalc.tui.app import ConvcalcApp
from tests.conftest import SPECS
from tests.test_tui import pilot_test

LENET = SPECS / "lenet.yaml"
SIZES = [(80, 24), (100, 30), (160, 48)]
size_ids = pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])


def lenet_app() -> ConvcalcApp:
    return ConvcalcApp(load_spec(LENET), LENET.relative_to(SPECS.parent))


async def kernel_too_large(pilot) -> None:
    """Layer 0's kernel 29 on the 28×28 input: an error with a long message."""
    await pilot.press("enter", "tab", "end", "ctrl+u", "2", "9", "escape")
    await pilot.pause()


async def open_training(pilot) -> None:
    await pilot.press("ctrl+t")
    await pilot.pause()
    while pilot.app.screen.defaults is None:  # torch loads in a worker thread
        await pilot.pause(0.05)
    await pilot.pause()


def inside(widget, size: tuple[int, int]) -> bool:
    """The widget is drawn whole on a ``size`` screen (not scrolled or pushed off)."""
    region = widget.region
    return region.width > 0 and region.height > 0 and region.right <= size[0] and region.bottom <= size[1]


@size_ids
def test_designer_lenet(snap_compare, size):
    assert snap_compare(lenet_app(), terminal_size=size)


@size_ids
def test_designer_with_an_error(snap_compare, size):
    assert snap_compare(lenet_app(), terminal_size=size, run_before=kernel_too_large)


@pytest.mark.slow  # loads torch
@size_ids
def test_training_screen(snap_compare, size):
    pytest.importorskip("torch")
    assert snap_compare(lenet_app(), terminal_size=size, run_before=open_training)


@size_ids
@pilot_test
async def test_output_params_rf_and_the_error_line_stay_in_view(size):
    app = lenet_app()
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        await kernel_too_large(pilot)
        table = app.designer.query_one("#layers", DataTable)
        shown = table.scrollable_content_region.width
        right = 0
        for column in table.ordered_columns:
            right += column.get_render_width(table)
            if str(column.label) in ("output", "params", "RF"):
                assert right <= shown, f"{column.label} is cut at {size}"
        totals = app.designer.query_one("#totals", Static)
        assert inside(totals, size)
        lines = str(totals.visual).splitlines()
        assert len(lines) == 2 and lines[1].startswith("✗ layer 0 (c1, Conv2d): output size")
        assert len(lines[0]) <= size[0] - 2  # the totals line never wraps over the error line
        assert inside(app.designer.query_one("#editor"), size)


@pytest.mark.slow  # loads torch
@size_ids
@pilot_test
async def test_start_and_stop_are_in_view(size):
    pytest.importorskip("torch")
    app = lenet_app()
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        await open_training(pilot)
        for button in app.screen.query(Button):
            assert inside(button, size), f"{button.id} is off screen at {size}"
        assert inside(app.screen.query_one("#loss-plot"), size)
        form, plots = app.screen.query_one("#train-form"), app.screen.query_one("#train-main")
        if size[0] < 120:  # the form above the plots
            assert form.region.bottom <= plots.region.y
        else:  # beside them
            assert form.region.right <= plots.region.x
