"""Whole-process time of `convcalc shape` on a big spec (issue 17: 10,000 layers took 18 s).

A spec of N layers (Conv2d 3×3 padding 1 and ReLU, alternating, on 3×32×32) is written to a
temporary folder; then, alternately in fresh processes, R times each:

- `convcalc shape BIG` (the table drawn line by line) and `convcalc shape BIG --json`;
- the old way: the same reading and analysis, then the table through `rich.Table` as `shape`
  printed it before issue 17 (the cyclic collector on), in a fresh Python;
- `python -c "import torch"`: what any torch-based tool pays before its first line of work.

Wall time and CPU time (user + system, of the child) are medians; on a shared machine CPU time
is the steadier of the two. Ratios are against the old way.

    .venv/bin/python bench/bench_big.py [--layers 10000] [--runs 5] [--no-old]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CONVCALC = str(Path(sys.executable).with_name("convcalc"))

OLD_WAY = """
import sys
from rich.console import Console
from rich.measure import Measurement
from convcalc import render, specfile
from convcalc.engine import analyze
data, _ = specfile.parse_text(specfile.read_spec(sys.argv[1]), sys.argv[1])
analysis = analyze(specfile.plain_network(data))
console = Console(highlight=False, emoji=False, width=120)
table = render.layer_table(analysis)
console.width = max(120, Measurement.get(console, console.options.update_width(1_000_000), table).maximum)
console.print(table)
console.print(render.totals_text(analysis))
"""


def write_spec(folder: Path, n: int) -> Path:
    layers = [{"type": "Conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1} if i % 2 == 0
              else {"type": "ReLU"} for i in range(n)]  # fmt: skip
    path = folder / f"big{n}.yaml"
    path.write_text(yaml.safe_dump({"name": f"big{n}", "input": [3, 32, 32], "layers": layers}))
    return path


def run(command: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one child process, its output thrown away."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, cwd=ROOT)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--no-old", action="store_true", help="skip the old way (18 s a run at 10,000 layers)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        spec = str(write_spec(Path(folder), args.layers))
        commands = {
            f"convcalc shape ({args.layers:,} layers)": [CONVCALC, "shape", spec],
            "convcalc shape --json": [CONVCALC, "shape", spec, "--json"],
            'python -c "import torch"': [sys.executable, "-c", "import torch"],
        }
        if not args.no_old:
            commands["old way: rich.Table (baseline)"] = [sys.executable, "-c", OLD_WAY, spec]
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for _ in range(args.runs):  # alternating, so a busy moment of the machine hits every command
            for name, command in commands.items():
                times[name].append(run(command))
    medians = {name: (statistics.median(w for w, _ in t), statistics.median(c for _, c in t))
               for name, t in times.items()}  # fmt: skip
    base = medians.get("old way: rich.Table (baseline)")
    print(f"{os.cpu_count()} CPUs, median of {args.runs} runs          wall        CPU   CPU vs old way")
    for name, (wall, cpu) in medians.items():
        ratio = f"{base[1] / cpu:6.1f}× faster" if base and cpu else ""
        print(f"  {name:<40} {wall * 1000:8.0f} ms {cpu * 1000:8.0f} ms   {ratio}")


if __name__ == "__main__":
    main()
