"""How long the designer takes to re-render a 50-layer spec after an edit, against a frame.

Three timings per edit, in one headless app (``App.run_test``), medians over N edits:

* baseline: ``engine.analyze`` alone on the edited network;
* recompute: the designer's whole redraw (analyze + table of 50 rows + totals + formula);
* edit: the designer's whole handling of one edit of a field (validation, undo history,
  redraw, the editor's messages), called directly;
* no-op key: a key press that changes nothing (``end``), the pilot's own overhead;
* keystroke: a real key press in the editor's ``out_channels`` field until the app is idle
  again (validation, undo history, redraw and the screen update).

Printed side by side with their ratios to the baseline and to a 60 Hz frame (16.7 ms).

    .venv/bin/python bench/bench_tui.py [--edits 40]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from convcalc.engine import analyze
from convcalc.spec import network_from_data
from convcalc.tui.app import ConvcalcApp
from convcalc.tui.editor import LayerEditor

FRAME = 1 / 60


def fifty_layers():
    """Conv-BN-ReLU blocks with a pool every third block: 50 layers on 3×224×224."""
    layers = []
    while len(layers) < 48:
        layers += [{"type": "Conv2d", "out_channels": 32, "kernel_size": 3, "padding": 1},
                   {"type": "BatchNorm2d"}, {"type": "ReLU"}]  # fmt: skip
        if len(layers) % 9 == 0:
            layers.append({"type": "MaxPool2d", "kernel_size": 2})
    layers = layers[:48] + [{"type": "Flatten"}, {"type": "Linear", "out_features": 10}]
    return network_from_data({"name": "fifty", "input": [3, 224, 224], "layers": layers})


async def measure(edits: int) -> dict[str, list[float]]:
    network = fifty_layers()
    assert len(network.layers) == 50
    app = ConvcalcApp(network)
    times: dict[str, list[float]] = {
        "analyze": [], "recompute": [], "edit": [], "no-op key": [], "keystroke": []
    }  # fmt: skip
    async with app.run_test(size=(140, 45)) as pilot:
        await pilot.pause()
        screen = app.designer
        await pilot.click("#field-out_channels")
        for i in range(edits):
            start = time.perf_counter()
            analyze(screen.network)
            times["analyze"].append(time.perf_counter() - start)
            start = time.perf_counter()
            screen._recompute()
            times["recompute"].append(time.perf_counter() - start)
            values = {**screen.query_one(LayerEditor).values(), "out_channels": 16 + i % 2}
            start = time.perf_counter()
            await screen._edited(LayerEditor.Edited(0, "Conv2d", values, "out_channels"))
            times["edit"].append(time.perf_counter() - start)
            digit = "4" if i % 2 else "8"  # 32 -> 324 / 328: a real change on every press
            await pilot.press("end", "ctrl+u", "3", "2")
            await pilot.pause()
            start = time.perf_counter()
            await pilot.press("end")  # the pilot's own cost: a key that changes nothing
            await pilot.pause()
            times["no-op key"].append(time.perf_counter() - start)
            start = time.perf_counter()
            await pilot.press(digit)
            await pilot.pause()
            times["keystroke"].append(time.perf_counter() - start)
            assert screen.network.layers[0].out_channels == int("32" + digit)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--edits", type=int, default=40)
    args = parser.parse_args()
    times = asyncio.run(measure(args.edits))
    base = statistics.median(times["analyze"])
    print(f"50-layer spec, {args.edits} edits, medians")
    print(f"{'':<12}{'ms':>9}{'× analyze':>12}{'× frame':>10}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<12}{median * 1000:>9.2f}{median / base:>12.1f}{median / FRAME:>10.2f}")


if __name__ == "__main__":
    main()
