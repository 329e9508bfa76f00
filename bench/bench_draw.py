"""`convcalc draw` speed: the whole process against `convcalc shape` of the same spec, and the
drawing alone (analysis, layout, SVG) against the analysis alone, in this process.

Target (issue 13): `convcalc draw specs/vgg16.yaml -o x.svg` in at most 1 s, whole process,
without torch; densenet121's and resnet50's graph layouts well under 1 s. The baseline is
`convcalc shape` of the same spec (same start-up, same analysis), run alternately in fresh
processes; in-process rows time `draw.svg_text` against `engine.analyze` (N runs, medians).

    .venv/bin/python bench/bench_draw.py [--runs 11]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
ENV = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}


def convcalc() -> list[str]:
    script = shutil.which("convcalc", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "convcalc"]


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env=ENV, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def whole_process(runs: int, out: str) -> None:
    cases = {
        "convcalc draw specs/vgg16.yaml -o x.svg": [*convcalc(), "draw", "specs/vgg16.yaml", "-o", out],
        "convcalc shape specs/vgg16.yaml (baseline)": [*convcalc(), "shape", "specs/vgg16.yaml"],
        "convcalc draw specs/densenet121.yaml -o x.svg": [
            *convcalc(),
            "draw",
            "specs/densenet121.yaml",
            "-o",
            out,
        ],
        "convcalc shape specs/densenet121.yaml": [*convcalc(), "shape", "specs/densenet121.yaml"],
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(runs):  # alternating, so a busy moment hits every row alike
        for name, cmd in cases.items():
            times[name].append(timed(cmd))
    base = statistics.median(times["convcalc shape specs/vgg16.yaml (baseline)"])
    print(f"whole process, {runs} runs each, alternating; medians (min); ratio = row / shape of vgg16")
    for name, values in times.items():
        median = statistics.median(values)
        print(
            f"  {name:<48} {1000 * median:7.1f} ms  ({1000 * min(values):7.1f})  ratio {median / base:5.2f}"
        )
    print(
        f"  target: draw of vgg16 <= 1000 ms; now {1000 * statistics.median(times[next(iter(cases))]):.0f} ms"
    )


def in_process(runs: int) -> None:
    from convcalc import draw
    from convcalc.cli import _load
    from convcalc.engine import analyze

    print(f"in process, {runs} runs each; medians; ratio = (analyze + draw) / analyze")
    for spec, style in (
        ("vgg16", "blocks"),
        ("resnet50", "graph"),
        ("densenet121", "graph"),
        ("googlenet", "graph"),
    ):
        network = _load(f"specs/{spec}.yaml", plain=True)
        analysed, drawn = [], []
        for _ in range(runs):
            start = time.perf_counter()
            analysis = analyze(network)
            middle = time.perf_counter()
            draw.svg_text(analysis, style)
            end = time.perf_counter()
            analysed.append(middle - start)
            drawn.append(end - start)
        a, d = statistics.median(analysed), statistics.median(drawn)
        name = f"{spec} --style {style}"
        print(
            f"  {name:<30} analyze {1000 * a:6.1f} ms  analyze + draw {1000 * d:6.1f} ms  ratio {d / a:5.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=11)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        whole_process(args.runs, str(Path(folder) / "x.svg"))
    in_process(args.runs)


if __name__ == "__main__":
    main()
