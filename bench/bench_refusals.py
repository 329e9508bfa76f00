"""How long `convcalc train` takes to refuse a request it cannot run (issue 18: 8 s to say the
data is missing, 4 s to say the spec's input does not fit), against `python -c "import torch"`
(what every refusal used to cost at least), alternating in fresh processes.

Each case's median whole-process time and its ratio to the torch import are printed; a ratio
well under 1 means the refusal came before torch loaded.

    .venv/bin/python bench/bench_refusals.py [--runs 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LENET = str(ROOT / "specs" / "lenet.yaml")


def cases(tmp: Path) -> dict[str, list[str]]:
    train = [sys.executable, "-m", "convcalc", "train"]
    return {
        "data missing (--no-download)": [*train, LENET, "--data-dir", str(tmp / "none"), "--no-download"],
        "input does not fit (cifar10)": [
            *train,
            LENET,
            "--dataset",
            "cifar10",
            "--data-dir",
            str(tmp / "none"),
        ],
        "--out is a folder": [*train, LENET, "--out", str(tmp)],
        "--out cannot be written": [*train, LENET, "--out", "/sys/run.pt"],
    }


def seconds(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, capture_output=True, cwd=ROOT, check=False)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    runs = parser.parse_args().runs
    baseline = [sys.executable, "-c", "import torch"]
    with tempfile.TemporaryDirectory() as folder:
        for name, command in cases(Path(folder)).items():
            times = {"refusal": [], "torch": []}
            for _ in range(runs):  # alternating: a change of load hits both sides alike
                times["refusal"].append(seconds(command))
                times["torch"].append(seconds(baseline))
            refusal, torch = statistics.median(times["refusal"]), statistics.median(times["torch"])
            print(f"{name:32} {refusal:6.2f} s   import torch {torch:6.2f} s   ratio {refusal / torch:5.2f}")


if __name__ == "__main__":
    main()
