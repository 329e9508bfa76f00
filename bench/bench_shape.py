"""Whole-process time of `convcalc shape` vs the torch way of getting the same table.

Baseline: a fresh Python that imports torch and torchinfo, builds the same LeNet with torch.nn
and prints `torchinfo.summary` of it (what people run today to learn shapes and params).
Both run alternately in fresh processes, N times each; the medians and their ratio are printed.

    .venv/bin/python bench/bench_shape.py [--runs 15] [--spec specs/lenet.yaml]
"""

from __future__ import annotations

import argparse
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


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--spec", default="specs/lenet.yaml")
    args = parser.parse_args()
    ours_cmd = [sys.executable, "-m", "convcalc", "shape", args.spec]
    base_cmd = [sys.executable, "-c", BASELINE]
    timed(ours_cmd), timed(base_cmd)  # warm the file cache for both
    ours, base = [], []
    for _ in range(args.runs):
        ours.append(timed(ours_cmd))
        base.append(timed(base_cmd))
    o, b = statistics.median(ours), statistics.median(base)
    print(f"convcalc shape {args.spec}:           median {o * 1000:7.1f} ms  (min {min(ours) * 1000:.1f})")
    print(f"import torch, torchinfo + summary:   median {b * 1000:7.1f} ms  (min {min(base) * 1000:.1f})")
    print(f"speed-up (baseline / convcalc):      {b / o:.1f}x   target >= 10x, {args.runs} runs each")


if __name__ == "__main__":
    main()
