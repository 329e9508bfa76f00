"""How long the designer takes to re-render a 50-layer spec after an edit, against a frame.

Three timings per edit, in one headless app (``App.run_test``), medians over N edits:

* baseline: ``engine.analyze`` alone on the edited network;
* recompute: the designer's whole redraw (analyze + table of 50 rows + totals + formula);
* edit: the designer's whole handling of one edit of a field (validation, undo history,
  redraw, the editor's messages), called directly;
* no-op key: a key press that changes nothing (``end``), the pilot's own overhead;
* keystroke: a real key press in the editor's ``out_channels`` field until the app is idle
  again (validation, undo history, redraw and the screen update).

Then the same on ``specs/resnet50.yaml`` (a graph: blocks, groups, merges), editing a layer of
the ``Bottleneck`` block (every use changes) and folding a group row (``fold``).

Printed side by side with their ratios to the baseline and to a 60 Hz frame (16.7 ms).

Then the latency a user sees: from a key sent by the terminal driver to the first frame the app
composes that shows its effect (``App._display``, called with each screen update; headless, the
update is composed but not written), median and 95th percentile:

* digit: a digit typed into layer 0's ``out_channels`` until its output column shows it;
* next row: ↓ in the table until the editor shows the next layer's fields.

With ``--training``, instead: the UI thread's share of a core while the training screen runs
a short LeNet training (generated 28×28 digits in the MNIST IDX files, 2 epochs), read from
``/proc/self/task/*/stat`` per thread (the UI thread is the process's main thread; every other
thread is training: the worker and torch's), against the same run through ``train.train`` with
no UI, as ``convcalc train`` runs it (wall time and images/s side by side).

    .venv/bin/python bench/bench_tui.py [--edits 40]
    .venv/bin/python bench/bench_tui.py --training [--images 12000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

from textual import events
from textual.coordinate import Coordinate
from textual.widgets import DataTable

from convcalc.engine import analyze
from convcalc.spec import load_spec, network_from_data
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


class Frames:
    """Times the first composed frame after a key for which ``shown()`` holds."""

    def __init__(self, app: ConvcalcApp):
        self.shown = None
        self.at: asyncio.Future | None = None
        display = app._display

        def timed_display(screen, renderable) -> None:
            display(screen, renderable)
            if renderable is not None and self.at is not None and not self.at.done() and self.shown():
                self.at.set_result(time.perf_counter())

        app._display = timed_display

    async def key_to_frame(self, app: ConvcalcApp, key: str, shown) -> float:
        """Send ``key`` as the terminal driver does; seconds until a frame shows ``shown()``."""
        self.shown, self.at = shown, asyncio.get_running_loop().create_future()
        event = events.Key(key, key if len(key) == 1 else None)
        event.set_sender(app)
        start = time.perf_counter()
        app._driver.send_message(event)
        return await asyncio.wait_for(self.at, 30) - start


def cell_shows(table: DataTable, text: str):
    return lambda: str(table.get_cell_at(Coordinate(0, 5))) == text


def editor_shows(editor: LayerEditor, index: int):
    return lambda: editor.border_title.startswith(f"Layer {index} · ") and not editor.loading


async def latencies(keys: int) -> dict[str, list[float]]:
    app = ConvcalcApp(fifty_layers())
    times: dict[str, list[float]] = {"digit": [], "next row": []}
    async with app.run_test(size=(140, 45)) as pilot:
        await pilot.pause()
        frames = Frames(app)
        table = app.designer.query_one("#layers", DataTable)
        editor = app.designer.query_one(LayerEditor)
        await pilot.click("#field-out_channels")
        await pilot.press("end", "ctrl+u", "3")
        for i in range(keys):  # 3 -> 31 -> 3 -> 32 ...: layer 0's output changes on every key
            digit = str(1 + i % 2)
            await pilot.pause()
            shown = cell_shows(table, f"3{digit}×224×224")
            times["digit"].append(await frames.key_to_frame(app, digit, shown))
            await pilot.press("backspace")
        await pilot.press("escape")
        for i in range(min(keys, 48)):
            await pilot.pause()
            times["next row"].append(await frames.key_to_frame(app, "down", editor_shows(editor, i + 1)))
    return times


async def measure_graph(edits: int) -> dict[str, list[float]]:
    """ResNet-50 (175 layers under 24 group rows): the same timings for an edit of a block's
    layer (``Bottleneck.conv2``'s kernel_size, every use changes) and for folding a group."""
    from convcalc.tui import graphmodel
    from convcalc.tui.app import open_spec

    app = ConvcalcApp(*open_spec(Path(__file__).parent.parent / "specs" / "resnet50.yaml"))
    times: dict[str, list[float]] = {"analyze": [], "recompute": [], "edit": [], "fold": []}
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        screen = app.designer
        row = next(r.index for r in screen.analysis.rows if r.name == "layer1.1.conv2")
        for i in range(edits):
            start = time.perf_counter()
            analyze(screen.network)
            times["analyze"].append(time.perf_counter() - start)
            start = time.perf_counter()
            screen._recompute()
            times["recompute"].append(time.perf_counter() - start)
            values = {**graphmodel.raw_item(screen.network, row), "kernel_size": 3 if i % 2 else 5}
            values["padding"] = values["kernel_size"] // 2
            values.pop("type")
            start = time.perf_counter()
            await screen._edited(LayerEditor.Edited(row, "Conv2d", values, "kernel_size"))
            times["edit"].append(time.perf_counter() - start)
            assert screen.network.blocks["Bottleneck"].layers[3]["kernel_size"] == values["kernel_size"]
            start = time.perf_counter()
            screen.selected, screen.selected_group = row, None
            await screen.action_fold("toggle")  # layer1.1 folds, then unfolds on the next edit
            times["fold"].append(time.perf_counter() - start)
    return times


def report(title: str, times: dict[str, list[float]]) -> None:
    base = statistics.median(times["analyze"])
    print(title)
    print(f"{'':<12}{'ms':>9}{'× analyze':>12}{'× frame':>10}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<12}{median * 1000:>9.2f}{median / base:>12.1f}{median / FRAME:>10.2f}")


LENET = Path(__file__).resolve().parent.parent / "specs" / "lenet.yaml"
TICKS = os.sysconf("SC_CLK_TCK")


def thread_cpu() -> dict[int, float]:
    """CPU seconds (user + system) of each thread of this process, by thread id."""
    seconds = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended between the listing and the read
            continue
        seconds[int(task.name)] = (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime
    return seconds


def write_digits(folder: Path, train_images: int) -> None:
    """A learnable 10-class set in the four MNIST IDX files (as tests/test_tui_training.py)."""
    import torch

    from convcalc import data

    generator = torch.Generator().manual_seed(0)
    for images_file, labels_file, n in (
        (data.TRAIN_IMAGES, data.TRAIN_LABELS, train_images),
        (data.TEST_IMAGES, data.TEST_LABELS, 2000),
    ):
        labels = torch.arange(n) % 10
        images = torch.randint(0, 60, (n, 28, 28), generator=generator, dtype=torch.uint8)
        for i, label in enumerate(labels.tolist()):
            row, col = 2 + (label // 5) * 14, 2 + (label % 5) * 5
            images[i, row : row + 6, col : col + 6] = 255
        data.write_idx(folder / images_file, images)
        data.write_idx(folder / labels_file, labels.to(torch.uint8))


async def train_in_tui(folder: Path, out: Path, epochs: int) -> dict[str, float]:
    """Start a run on the training screen; CPU seconds of the UI thread and of the others."""
    app = ConvcalcApp(load_spec(LENET), None)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+t")
        screen = app.screen
        while screen.defaults is None:  # torch loads in a worker
            await pilot.pause(0.05)
        for selector, value in (("#data-dir", folder), ("#epochs", epochs), ("#out", out)):
            screen.query_one(selector).value = str(value)
        screen.query_one("#download").value = False
        await pilot.pause()
        bar = screen.query_one("#progress")
        before, start = thread_cpu(), time.perf_counter()
        screen.action_start()
        samples = []  # (wall, UI thread CPU, fraction done): this coroutine runs on the UI thread
        while screen.result is None:
            await asyncio.sleep(0.2)
            samples.append((time.perf_counter(), time.thread_time(), bar.progress / (bar.total or 1)))
        after, wall = thread_cpu(), time.perf_counter() - start
        result = screen.result
    spent = {tid: after[tid] - before.get(tid, 0.0) for tid in after}
    ui = spent.pop(os.getpid(), 0.0)  # the app runs its event loop in the main thread
    # while batches arrive (10% to 90% done): without the start (data, first draws) and the end
    steady = [(t, cpu) for t, cpu, done in samples if 0.1 <= done <= 0.9]
    share = (
        (steady[-1][1] - steady[0][1]) / (steady[-1][0] - steady[0][0]) if len(steady) > 1 else float("nan")
    )
    return {"wall": wall, "ui": ui, "steady": share, "training": sum(spent.values()),
            "images/s": result.images_per_second}  # fmt: skip


def train_without_ui(folder: Path, out: Path, epochs: int) -> dict[str, float]:
    from convcalc import train

    config = train.TrainConfig(data_dir=str(folder), epochs=epochs, out=str(out), download=False)
    start = time.perf_counter()
    result = train.train(load_spec(LENET), config, train.TrainCallbacks(), threading.Event())
    return {"wall": time.perf_counter() - start, "images/s": result.images_per_second}


def training_share(images: int, epochs: int = 2) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "data"
        write_digits(folder, images)
        plain = train_without_ui(folder, Path(tmp) / "plain.pt", epochs)
        tui = asyncio.run(train_in_tui(folder, Path(tmp) / "tui.pt", epochs))
    print(f"LeNet, {images:,} training images × {epochs} epochs, torch threads as `convcalc train` picks")
    print(f"{'':<8}{'wall s':>8}{'images/s':>10}{'UI thread':>22}{'while batches':>15}{'training':>10}")
    print(f"{'no UI':<8}{plain['wall']:>8.1f}{plain['images/s']:>10,.0f}")
    share = tui["ui"] / tui["wall"]
    print(
        f"{'TUI':<8}{tui['wall']:>8.1f}{tui['images/s']:>10,.0f}"
        f"{tui['ui']:>9.2f} s = {share:>5.1%} core{tui['steady']:>10.1%} core{tui['training']:>8.1f} s"
    )
    ratio = tui["images/s"] / plain["images/s"]
    print(f"TUI / no UI: wall {tui['wall'] / plain['wall']:.2f}×, images/s {ratio:.2f}×")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--edits", type=int, default=40)
    parser.add_argument("--training", action="store_true", help="the UI's CPU share while training, instead")
    parser.add_argument("--images", type=int, default=12000, help="training images for --training")
    args = parser.parse_args()
    if args.training:
        training_share(args.images)
        return
    report(f"50-layer spec, {args.edits} edits, medians", asyncio.run(measure(args.edits)))
    print()
    report(f"resnet50.yaml (graph), {args.edits} edits of a block's layer, medians",
           asyncio.run(measure_graph(args.edits)))  # fmt: skip
    waits = asyncio.run(latencies(args.edits))
    print(f"\nkey to screen, {args.edits} keys each")
    print(f"{'':<12}{'median ms':>11}{'p95 ms':>9}{'× frame':>10}")
    for name, values in waits.items():
        median, p95 = statistics.median(values), statistics.quantiles(values, n=20)[-1]
        print(f"{name:<12}{median * 1000:>11.1f}{p95 * 1000:>9.1f}{median / FRAME:>10.2f}")


if __name__ == "__main__":
    main()
