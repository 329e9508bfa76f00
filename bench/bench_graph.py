"""Graphs: how fast convcalc analyses deep and branching specs, against torchinfo.

1. In-process: ``engine.analyze`` of a 1,000-layer stack and of ``specs/resnet50.yaml`` (parsed
   and validated once), median of N runs; the baseline, in the same process, is
   ``torchinfo.summary`` of torchvision's resnet50 on the meta device (no weights, no memory).
2. Whole process: ``convcalc shape specs/resnet50.yaml`` vs a fresh Python doing
   ``import torch, torchvision, torchinfo`` and ``torchinfo.summary(resnet50())`` (CPU, the
   weights initialised as a user's script would), alternating, N runs each; medians and ratio.

torchvision is imported the way the tests do (tests/conftest.py: its C extension cannot load
on these machines), which skips its ``__init__``: the baseline is, if anything, a little faster
than on a user's machine.

    .venv/bin/python bench/bench_graph.py [--runs 9]
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
sys.path.insert(0, str(ROOT))

TORCHVISION = """
import importlib.util, sys, types
from pathlib import Path
found = importlib.util.find_spec("torchvision")
package = types.ModuleType("torchvision")
package.__path__ = [str(Path(found.origin).parent)]
sys.modules["torchvision"] = package
"""
BASELINE = (
    TORCHVISION
    + """
import torch, torchinfo
from torchvision.models import resnet50
print(torchinfo.summary(resnet50(), input_size=(1, 3, 224, 224), verbose=0))
"""
)
ENV = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}


def median_ms(function, runs: int) -> float:
    function()  # warm
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def in_process(runs: int) -> None:
    import torch
    import torchinfo

    from convcalc import specfile
    from convcalc.engine import analyze

    block = [{"type": "Conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1}, {"type": "BatchNorm2d"},
             {"type": "ReLU"}, {"type": "Dropout", "p": 0.1}]  # fmt: skip
    deep = specfile.plain_network({"name": "deep", "input": [8, 32, 32], "layers": block * 250})
    text = specfile.read_spec(ROOT / "specs" / "resnet50.yaml")
    resnet = specfile.plain_network(specfile.parse_text(text, "resnet50.yaml")[0])
    exec(TORCHVISION, {})
    from torchvision.models import resnet50

    with torch.device("meta"):
        model = resnet50()

    def baseline() -> None:
        torchinfo.summary(model, input_size=(1, 3, 224, 224), device="meta", verbose=0)

    base = median_ms(baseline, runs)
    print(f"in-process, median of {runs}:")
    print(f"  torchinfo.summary(resnet50) on meta        {base:8.1f} ms  (baseline)")
    for label, network in (("analyze 1,000-layer stack", deep), ("analyze resnet50.yaml", resnet)):
        ms = median_ms(lambda network=network: analyze(network), runs)
        print(f"  {label:<42} {ms:8.1f} ms  ({base / ms:.0f}× faster)")
    parse = median_ms(lambda: specfile.plain_network(specfile.parse_text(text, "x")[0]), runs)
    print(f"  read + validate + expand resnet50.yaml     {parse:8.1f} ms")


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env=ENV, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def whole_process(runs: int) -> None:
    script = shutil.which("convcalc", path=str(Path(sys.executable).parent))
    ours_cmd = [script] if script else [sys.executable, "-m", "convcalc"]
    ours_cmd += ["shape", "specs/resnet50.yaml"]
    theirs_cmd = [sys.executable, "-c", BASELINE]
    timed(ours_cmd), timed(theirs_cmd)  # warm caches
    ours, theirs = [], []
    for _ in range(runs):
        ours.append(timed(ours_cmd))
        theirs.append(timed(theirs_cmd))
    a, b = statistics.median(ours), statistics.median(theirs)
    print(f"whole process, median of {runs}:")
    print(
        f"  {'python: import torch, torchvision, torchinfo; summary(...)':<68} {b * 1000:7.0f} ms  (baseline)"
    )
    print(f"  {'convcalc shape specs/resnet50.yaml':<68} {a * 1000:7.0f} ms  ({b / a:.1f}× faster)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    in_process(args.runs)
    whole_process(args.runs)


if __name__ == "__main__":
    main()
