"""`convcalc check` on VGG16 against the naive way of measuring the same things, side by side.

- check:    ``convcalc.check.check(spec)``: build_model(initialize=False), one forward of a
            batch of 2 under no_grad with hooks and FlopCounterMode, torchinfo on the meta
            device, the gradient probe on the one-channel float64 skeleton.
- baseline: what one writes first: build_model() with PyTorch's weight initialisation, the
            forward of a batch of 2 with autograd on (hooks and FlopCounterMode), then
            torchinfo.summary on the same CPU model (its own forward). No receptive fields.

Each run is a fresh process (so imports and peak memory are per run); runs alternate. Prints
the median time of the work (imports excluded), the whole process time, peak RSS, and ratios.

    .venv/bin/python bench/bench_check.py [SPEC] [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_check(spec_path: str) -> None:
    from convcalc.check import check
    from convcalc.spec import load_spec

    report = check(load_spec(spec_path))
    assert report.ok, [str(c) for c in report.mismatches]


def run_baseline(spec_path: str) -> None:
    import torch
    import torchinfo
    from torch.utils.flop_counter import FlopCounterMode

    from convcalc.build import build_model, dummy_input
    from convcalc.spec import load_spec

    network = load_spec(spec_path)
    model = build_model(network)  # initialised weights
    shapes = {}
    for name, module in model.named_children():
        module.register_forward_hook(
            lambda _m, _i, out, name=name: shapes.__setitem__(name, tuple(out.shape))
        )
    with FlopCounterMode(display=False) as counter:
        model(dummy_input(network))
    params = sum(p.numel() for p in model.parameters())
    stats = torchinfo.summary(model, input_size=(2, *network.input), verbose=0)
    assert counter.get_total_flops() > 0 and params == stats.total_params and shapes
    del torch


VARIANTS = {"check": run_check, "baseline": run_baseline}


def one(variant: str, spec_path: str) -> None:
    """In the child: do the work once, print its time and the peak RSS as JSON."""
    start = time.perf_counter()
    VARIANTS[variant](spec_path)
    work = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print(json.dumps({"work_s": work, "peak_mib": peak_mib}))


def measure(variant: str, spec_path: str) -> dict:
    start = time.perf_counter()
    command = [sys.executable, __file__, "--one", variant, spec_path]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=True)
    data = json.loads(result.stdout.strip().splitlines()[-1])
    data["process_s"] = time.perf_counter() - start
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("spec", nargs="?", default=str(ROOT / "specs" / "vgg16.yaml"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--one", choices=list(VARIANTS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one(args.one, args.spec)
        return
    runs: dict[str, list[dict]] = {name: [] for name in VARIANTS}
    for _ in range(args.repeat):
        for name in VARIANTS:  # alternate, so both see the same machine load
            runs[name].append(measure(name, args.spec))
    median = {
        name: {key: statistics.median(r[key] for r in rs) for key in rs[0]} for name, rs in runs.items()
    }
    print(f"{Path(args.spec).name}, median of {args.repeat} fresh processes each")
    print(f"{'':10} {'work (s)':>9} {'process (s)':>12} {'peak RSS (MiB)':>15}")
    for name, m in median.items():
        print(f"{name:10} {m['work_s']:9.2f} {m['process_s']:12.2f} {m['peak_mib']:15.0f}")
    c, b = median["check"], median["baseline"]
    ratios = {key: b[key] / c[key] for key in ("work_s", "process_s", "peak_mib")}
    print(f"baseline / check: work {ratios['work_s']:.1f}×, process {ratios['process_s']:.1f}×, "
          f"peak memory {ratios['peak_mib']:.1f}×")  # fmt: skip


if __name__ == "__main__":
    main()
