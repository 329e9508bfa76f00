"""Whole-process time of `convcalc shape` vs the torch way of getting the same table.

Baseline: a fresh Python that imports torch and torchinfo, builds the same LeNet with torch.nn
and prints `torchinfo.summary` of it (what people run today to learn shapes and params).
Both run alternately in fresh processes, N times each; the medians and their ratio are printed.

`--floor` also times what any process built on convcalc's dependencies pays before doing any
work (the Python interpreter; click, rich and PyYAML; pydantic with one one-field model), so the
ratio can be read against the best ratio those libraries allow.

    .venv/bin/python bench/bench_shape.py [--runs 15] [--spec specs/lenet.yaml] [--floor]

The `convcalc` console script next to this Python is timed (what users run). Children run
without PYTHONDONTWRITEBYTECODE, so bytecode caches are written once and used, as on a
normal install.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

BASELINE = """
import torch, torchinfo
from torch import nn
model = nn.Sequential(
    nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2, 2),
    nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2, 2),
    nn.Flatten(), nn.Linear(16 * 4 * 4, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
)
print(torchinfo.summary(model, input_size=(1, 1, 28, 28), verbose=0))
"""

ONE_MODEL = "from pydantic import BaseModel\nclass M(BaseModel):\n    x: int\n"
FLOOR = {
    "floor: python -c pass": "pass",
    "floor: import click, rich, yaml": "import click, rich.console, rich.table, yaml",
    "floor: pydantic + one model": ONE_MODEL,
    "floor: all four + one model": "import click, rich.console, rich.table, yaml\n" + ONE_MODEL,
}
ENV = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env=ENV, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def convcalc_command() -> list[str]:
    script = shutil.which("convcalc", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "convcalc"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--spec", default="specs/lenet.yaml")
    parser.add_argument("--floor", action="store_true", help="also time the dependencies' import floor")
    args = parser.parse_args()
    commands = {
        f"convcalc shape {args.spec}": [*convcalc_command(), "shape", args.spec],
        "import torch, torchinfo + summary": [sys.executable, "-c", BASELINE],
    }
    if args.floor:
        commands.update({label: [sys.executable, "-c", code] for label, code in FLOOR.items()})
    times: dict[str, list[float]] = {label: [] for label in commands}
    for cmd in commands.values():
        timed(cmd)  # warm the file cache and write bytecode caches
    for _ in range(args.runs):
        for label, cmd in commands.items():
            times[label].append(timed(cmd))
    medians = {label: statistics.median(values) for label, values in times.items()}
    ours, base = list(medians.values())[:2]
    print(f"{args.runs} runs each, alternating; medians (min); speed-up = baseline / row")
    for label, median in medians.items():
        print(
            f"{label:38s} {median * 1000:7.1f} ms  ({min(times[label]) * 1000:7.1f})"
            f"  speed-up {base / median:5.1f}x"
        )
    print(f"target: convcalc shape >= 10x, i.e. <= {base * 100:.0f} ms here; now {base / ours:.1f}x")


if __name__ == "__main__":
    main()
