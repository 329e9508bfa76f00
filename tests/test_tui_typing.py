"""Every keystroke goes where it was typed (issue 12, point 2): keys sent all at once, as a
loaded machine delivers a burst typed while the app was busy, with the designer's analysis slowed
down; then every field is checked. Also: focus stays in the field after undo and redo."""

from __future__ import annotations

import asyncio
import time
import unicodedata

import pytest
from textual import events
from textual.app import _character_to_key
from textual.keys import _get_unicode_name_from_key

import convcalc.tui.designer as designer_module
from convcalc.engine import analyze
from convcalc.tui.app import ConvcalcApp, open_spec
from tests.test_tui import LENET, SIZE, app_for, pilot_test

CLEAR = ["end", "ctrl+u"]  # empty the focused input


@pytest.fixture(params=[0.05, 0.2], ids=["analysis 50 ms", "analysis 200 ms"])
def slow_analysis(request, monkeypatch):
    """The designer's ``analyze`` sleeps first, as on a machine busy with other work."""

    def slow(network):
        time.sleep(request.param)
        return analyze(network)

    monkeypatch.setattr(designer_module, "analyze", slow)


def key_event(key: str) -> events.Key:
    """The event the terminal driver sends for ``key`` (as ``App._press_keys`` builds it)."""
    if len(key) == 1 and not key.isalnum():
        key = _character_to_key(key)
    try:
        char = unicodedata.lookup(_get_unicode_name_from_key(key))
    except KeyError:
        char = key if len(key) == 1 else None
    return events.Key(key, char)


async def type_at_once(app: ConvcalcApp, keys: list[str]) -> None:
    """Send every key before the app handles any, then wait until it has handled them all."""
    for key in keys:
        event = key_event(key)
        event.set_sender(app)
        app._driver.send_message(event)
    quiet, waited = 0, 0.0
    while quiet < 5:  # five polls in a row with nothing queued anywhere
        await asyncio.sleep(0.05)
        waited += 0.05
        assert waited < 60, "the app never finished the keys"
        pending = len(app._keys) + sum(
            node._message_queue.qsize() for node in app.screen.walk_children(with_self=True)
        )
        quiet = 0 if pending or app.designer.busy else quiet + 1


def new_app() -> ConvcalcApp:
    network, path = open_spec(None)
    return ConvcalcApp(network, path)


@pytest.mark.slow  # 10-25 s: every key waits for a slowed analysis
@pilot_test
async def test_the_issues_sequence_typed_at_once(slow_analysis):
    """`a Enter a Down Down Enter a Enter Enter Tab Tab 6 4 Escape`: conv, pool, conv, then
    "64" two fields after out_channels (in torch's order: kernel_size, stride). It put 4 into
    `name`; sent all at once, a second Enter closed the type picker twice."""
    app = new_app()
    keys = ["a", "enter", "a", "down", "down", "enter", "a", "enter"]
    keys += ["enter", "tab", "tab", "6", "4", "escape"]
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await type_at_once(app, keys)
        layers = app.designer.network.layers
        assert [layer.type for layer in layers] == ["Conv2d", "MaxPool2d", "Conv2d"]
        assert layers[2].stride == 64
        assert layers[2].model_dump(exclude={"stride"}) == layers[0].model_dump(exclude={"stride"})
        assert layers[1].kernel_size == 2 and layers[1].stride is None  # the picker's new pool, untouched
        assert app.focused is app.designer.query_one("#layers")


@pytest.mark.slow  # 10-25 s: every key waits for a slowed analysis
@pilot_test
async def test_fields_typed_at_once_after_picking_types(slow_analysis):
    """A conv set field by field ("same" into padding, which once went half into groups), then a
    layer whose type is changed in the editor's type list and "64" typed three fields on (it
    went into in_channels), then `i` and a field of the inserted layer."""
    app = new_app()
    keys = ["a", "enter", "enter", *CLEAR, "3", "2", "tab", *CLEAR, "5", "tab", "tab", *CLEAR, *"same"]
    keys += ["escape", "a", "enter", "enter", "shift+tab", "shift+tab", "shift+tab"]  # to the type
    keys += ["enter", *"lin", "enter", "tab", "tab", "tab", *CLEAR, "6", "4", "escape"]
    keys += ["up", "i", *"batchn", "enter", "enter", *"bn1", "escape"]
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await type_at_once(app, keys)
        conv, bn, linear = app.designer.network.layers
        assert (conv.type, conv.out_channels, conv.kernel_size, conv.padding) == ("Conv2d", 32, 5, "same")
        assert (conv.stride, conv.groups, conv.in_channels, conv.name) == (1, 1, None, None)
        assert (bn.type, bn.name) == ("BatchNorm2d", "bn1")
        assert (linear.type, linear.out_features) == ("Linear", 64)
        assert (linear.in_features, linear.name) == (None, None)
        assert app.designer.invalid is None


@pilot_test
async def test_undo_and_redo_keep_the_focus_in_the_field():
    app = app_for(LENET)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("enter", *CLEAR, "3", "2")  # layer 0's out_channels: 6 -> 32
        await pilot.pause()
        field = app.designer.query_one("#field-out_channels")
        assert app.designer.network.layers[0].out_channels == 32
        await pilot.press("ctrl+z")
        await pilot.pause()
        assert app.designer.network.layers[0].out_channels == 6
        assert app.focused is not None and app.focused.id == "field-out_channels"
        assert app.focused.value == "6"
        await pilot.press("ctrl+y")
        await pilot.pause()
        assert app.focused is not None and app.focused.id == "field-out_channels"
        assert app.focused.value == "32" and app.designer.network.layers[0].out_channels == 32
        await pilot.press("tab", *CLEAR, "7")  # typing goes on in the field below
        await pilot.pause()
        assert app.designer.network.layers[0].kernel_size == 7
        assert field is app.designer.query_one("#field-out_channels")  # refilled in place, not remounted
