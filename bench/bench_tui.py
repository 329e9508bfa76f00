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
the ``Bottleneck`` block (every use changes) and folding a group row (``fold``); there also
``changed``: the recompute after that layer's kernel changed (the RF of every row after it and
the params of every use change), and ``to idle``: from it until the app is idle again (its
screen update and work deferred until after it).

Printed side by side with their ratios to the baseline and to a 60 Hz frame (16.7 ms).

Then the latency a user sees (``--keys``: only this part): from a key sent as the terminal driver
sends it to the first frame that shows its effect on the screen. Each composed update
(``App._display``) is turned into the bytes a terminal driver would write (``render_segments``,
timed) and applied to a character grid (``Terminal``), which the checks read; median and 95th
percentile:

* digit: a digit typed into layer 0's ``out_channels`` until the field shows it; ``digit, all``:
  until layer 0's output cell and the totals' parameter count show the edited network as well;
* next row: ↓ in the table until the new row is drawn in the cursor's colours; ``next row, all``:
  until the editor's title and the formula pane show that layer.

With ``--training``, instead: the UI thread's share of a core while the training screen runs
a short LeNet training (generated 28×28 digits in the MNIST IDX files, 2 epochs), read from
``/proc/self/task/*/stat`` per thread (the UI thread is the process's main thread; every other
thread is training: the worker and torch's), against the same run through ``train.train`` with
no UI, as ``convcalc train`` runs it (wall time and images/s side by side).

    .venv/bin/python bench/bench_tui.py [--edits 40] [--graph | --keys]
    .venv/bin/python bench/bench_tui.py --training [--images 12000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import tempfile
import threading
import time
from pathlib import Path

from textual import events
from textual.widgets import DataTable

from convcalc.engine import analyze
from convcalc.spec import load_spec, network_from_data, spec_to_data
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
            screen._redraw()  # what the edit leaves for after the frame that shows the key
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


# ESC [ y ; x H (the compositor's cursor moves), SGR styles, other CSI and OSC sequences
_ESCAPE = re.compile(
    r"\x1b\[(\d+);(\d+)H|(\x1b\[[0-9;:]*m)|\x1b\[[0-9;:?]*[A-Za-z]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"
)


class Terminal:
    """What a terminal shows: each composed update applied as the driver writes it (its
    ``render_segments``), so a check reads the screen, not the widgets' state."""

    def __init__(self, width: int, height: int):
        self.text = [[" "] * width for _ in range(height)]
        self.style = [[""] * width for _ in range(height)]  # the SGR sequence each cell was drawn in

    def write(self, sequence: str) -> None:
        x = y = 0
        style = ""
        at = 0
        for match in _ESCAPE.finditer(sequence):
            x = self._put(sequence[at : match.start()], x, y, style)
            at = match.end()
            if match.group(1):
                y, x = int(match.group(1)) - 1, int(match.group(2)) - 1
            elif match.group(3):
                style = "" if match.group(3) == "\x1b[0m" else match.group(3)
        self._put(sequence[at:], x, y, style)

    def _put(self, text: str, x: int, y: int, style: str) -> int:
        if not 0 <= y < len(self.text):
            return x + len(text)
        line, styles = self.text[y], self.style[y]
        for char in text.replace("\n", ""):
            if 0 <= x < len(line):
                line[x], styles[x] = char, style
            x += 1  # the designer draws no wide characters
        return x

    def line(self, y: int, x1: int = 0, x2: int | None = None) -> str:
        return "".join(self.text[y][x1:x2])


class Frames:
    """Times the frames after a key: the first one whose screen shows ``echo()`` (the key's own
    effect: the typed character, the cursor on the new row) and the first that shows ``done()``
    as well (everything the key changes)."""

    def __init__(self, app: ConvcalcApp, size: tuple[int, int]):
        self.echo = self.done = None
        self.times: dict[str, float] = {}
        self.finished: asyncio.Future | None = None
        self.terminal = Terminal(*size)
        display = app._display

        def timed_display(screen, update) -> None:
            display(screen, update)
            if update is None:
                return
            sequence = update.render_segments(app.console)  # what the terminal driver would write
            at = time.perf_counter()
            self.terminal.write(sequence)
            if self.finished is None or self.finished.done():
                return
            if "echo" not in self.times and self.echo(self.terminal):
                self.times["echo"] = at
            if "echo" in self.times and self.done(self.terminal):
                self.times["done"] = at
                self.finished.set_result(None)

        app._display = timed_display

    async def key_to_frames(self, app: ConvcalcApp, key: str, echo, done) -> tuple[float, float]:
        """Send ``key`` as the terminal driver does; seconds until a frame shows ``echo(terminal)``
        and until one shows ``done(terminal)``."""
        self.echo, self.done, self.times = echo, done, {}
        self.finished = asyncio.get_running_loop().create_future()
        event = events.Key(key, key if len(key) == 1 else None)
        event.set_sender(app)
        start = time.perf_counter()
        app._driver.send_message(event)
        await asyncio.wait_for(self.finished, 30)
        return self.times["echo"] - start, self.times["done"] - start


def _text_at(widget, terminal: Terminal, dy: int = 0) -> str:
    """The screen text on the widget's line ``dy`` (0: its first), within the widget."""
    region = widget.region
    return terminal.line(region.y + dy, region.x, region.right)


def _table_line(table: DataTable, row: int) -> int:
    return table.content_region.y + table.header_height + row - round(table.scroll_y)


def _digit_checks(app: ConvcalcApp, digit: str):
    """A digit typed after ``3`` into layer 0's out_channels: the field shows ``3<digit>``; done
    when layer 0's output cell and the totals' parameter count show the new network."""
    screen = app.designer
    field, table, totals = (screen.query_one(s) for s in ("#field-out_channels", "#layers", "#totals"))
    data = spec_to_data(screen.network)
    data["layers"][0]["out_channels"] = int("3" + digit)
    params = f"{analyze(network_from_data(data)).total_params:,}"
    output = f"3{digit}×224×224"

    def echo(terminal: Terminal) -> bool:
        return f"3{digit}" in _text_at(field, terminal)

    def done(terminal: Terminal) -> bool:
        line = terminal.line(_table_line(table, 0), table.region.x, table.region.right)
        return output in line and f"params {params} " in _text_at(totals, terminal)

    return echo, done


def _next_row_checks(app: ConvcalcApp, row: int, cursor_style: str):
    """↓ in the table onto ``row``: its line in the cursor's colours (``cursor_style``); done
    when the editor's title and the formula pane show that layer."""
    screen = app.designer
    table, editor, detail = (screen.query_one(s) for s in ("#layers", "#editor", "#detail"))

    def echo(terminal: Terminal) -> bool:
        return terminal.style[_table_line(table, row)][table.content_region.x] == cursor_style

    def done(terminal: Terminal) -> bool:
        formula = _text_at(detail, terminal, 1)  # under the pane's top border
        return f"Layer {row} · " in _text_at(editor, terminal) and f"[{row}] " in formula

    return echo, done


async def latencies(keys: int) -> dict[str, list[float]]:
    app = ConvcalcApp(fifty_layers())
    frames = Frames(app, (140, 45))  # before the first frame: the terminal holds the whole screen
    times: dict[str, list[float]] = {"digit": [], "digit, all": [], "next row": [], "next row, all": []}
    async with app.run_test(size=(140, 45)) as pilot:
        await pilot.pause()
        table = app.designer.query_one("#layers", DataTable)
        await pilot.click("#field-out_channels")
        await pilot.press("end", "ctrl+u", "3")
        for i in range(keys):  # 3 -> 31 -> 3 -> 32 ...: layer 0's output changes on every key
            digit = str(1 + i % 2)
            await pilot.pause()
            echo, done = _digit_checks(app, digit)
            seconds = await frames.key_to_frames(app, digit, echo, done)
            times["digit"].append(seconds[0])
            times["digit, all"].append(seconds[1])
            await pilot.press("backspace")
        await pilot.press("escape")
        await pilot.pause()
        x = table.content_region.x
        cursor_style = frames.terminal.style[_table_line(table, 0)][x]
        assert cursor_style != frames.terminal.style[_table_line(table, 1)][x], "no cursor on row 0"
        for i in range(min(keys, 48)):
            await pilot.pause()
            echo, done = _next_row_checks(app, i + 1, cursor_style)
            seconds = await frames.key_to_frames(app, "down", echo, done)
            times["next row"].append(seconds[0])
            times["next row, all"].append(seconds[1])
    return times


async def measure_graph(edits: int) -> dict[str, list[float]]:
    """ResNet-50 (175 layers under 24 group rows): the same timings for an edit of a block's
    layer (``Bottleneck.conv2``'s kernel_size, every use changes) and for folding a group."""
    from convcalc.tui import graphmodel
    from convcalc.tui.app import open_spec

    app = ConvcalcApp(*open_spec(Path(__file__).parent.parent / "specs" / "resnet50.yaml"))
    times: dict[str, list[float]] = {
        "analyze": [], "recompute": [], "changed": [], "to idle": [], "edit": [], "fold": []
    }  # fmt: skip
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        screen = app.designer
        row = next(r.index for r in screen.analysis.rows if r.name == "layer1.1.conv2")

        def kernel(k: int) -> dict:  # conv2 with kernel k, padded to keep the size
            values = {**graphmodel.raw_item(screen.network, row), "kernel_size": k, "padding": k // 2}
            values.pop("type")
            return values

        for _ in range(edits):
            start = time.perf_counter()
            analyze(screen.network)
            times["analyze"].append(time.perf_counter() - start)
            start = time.perf_counter()
            screen._recompute()
            times["recompute"].append(time.perf_counter() - start)
            # the recompute of an edit: the network changed (RF and params of many rows with it)
            screen.history.push(graphmodel.edit_node(screen.network, row, "Conv2d", kernel(7)))
            start = time.perf_counter()
            screen._recompute()
            times["changed"].append(time.perf_counter() - start)
            await pilot.pause()  # the screen update and whatever the recompute left for after it
            times["to idle"].append(time.perf_counter() - start)
            values = kernel(5)  # 5 and 7, never the saved 3: the title's "unsaved" mark stays
            start = time.perf_counter()
            await screen._edited(LayerEditor.Edited(row, "Conv2d", values, "kernel_size"))
            screen._redraw()  # what the edit leaves for after the frame that shows the key
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


def write_digits(folder: Path, train_images: int, test_images: int = 2000) -> None:
    """A learnable 10-class data set of 28×28 images in the four MNIST IDX files: class c is a
    bright 6×6 square at one of ten places, on noise (tests/test_tui_training.py's too)."""
    import torch

    from convcalc import data

    generator = torch.Generator().manual_seed(0)
    for images_file, labels_file, n in (
        (data.TRAIN_IMAGES, data.TRAIN_LABELS, train_images),
        (data.TEST_IMAGES, data.TEST_LABELS, test_images),
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
    parser.add_argument("--graph", action="store_true", help="only the resnet50.yaml part")
    parser.add_argument("--keys", action="store_true", help="only the key-to-screen part")
    args = parser.parse_args()
    if args.training:
        training_share(args.images)
        return
    if args.keys:
        key_to_screen(args.edits)
        return
    if args.graph:
        report(f"resnet50.yaml (graph), {args.edits} edits of a block's layer, medians",
               asyncio.run(measure_graph(args.edits)))  # fmt: skip
        return
    report(f"50-layer spec, {args.edits} edits, medians", asyncio.run(measure(args.edits)))
    print()
    report(f"resnet50.yaml (graph), {args.edits} edits of a block's layer, medians",
           asyncio.run(measure_graph(args.edits)))  # fmt: skip
    print()
    key_to_screen(args.edits)


def key_to_screen(keys: int) -> None:
    waits = asyncio.run(latencies(keys))
    print(f"key to screen, {keys} keys each; load average {os.getloadavg()[0]:.1f}")
    print(f"{'':<15}{'median ms':>11}{'p95 ms':>9}{'× frame':>10}")
    for name, values in waits.items():
        median, p95 = statistics.median(values), statistics.quantiles(values, n=20)[-1]
        print(f"{name:<15}{median * 1000:>11.1f}{p95 * 1000:>9.1f}{median / FRAME:>10.2f}")


if __name__ == "__main__":
    main()
