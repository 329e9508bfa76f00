"""`convcalc memory`'s training peak against what a real training step uses, side by side.

For each spec and batch size, in a fresh process: build the model, run two steps of Adam
(forward, a sum as the loss, backward, step: the second step is the steady state, with the
optimizer's state already there), and measure

- on a GPU: ``torch.cuda.max_memory_allocated`` over the two steps (tensors only; the first
  conv keeps the input batch, as the engine counts it);
- on CPU: the growth of the process's peak RSS (``ru_maxrss``) from just before the model is
  built, after a tiny warm-up step (allocator and page overhead included: expect a ratio above 1).

The engine's number is ``convcalc.memory``'s training peak (parameters, buffers, gradients,
Adam state, saved activations, the largest gradient pair). Prints both and measured / engine.

    .venv/bin/python bench/bench_memory.py [SPEC ...] [--batch N]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPECS = ["lenet", "se_resnet", "resnet18", "mobilenet_v2", "vgg16"]


def measure(spec: str, batch: int) -> dict:
    """One run, in this process (called in a fresh one by ``main``)."""
    import resource

    import torch

    from convcalc.build import build_model, dummy_input
    from convcalc.spec import load_spec

    network = load_spec(str(ROOT / "specs" / f"{spec}.yaml"))
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    _warm_up(device)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    x = dummy_input(network, batch).to(device)  # counted: the first conv keeps it, as the engine says
    model = build_model(network).to(device).train()
    opt = torch.optim.Adam(model.parameters())
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    for _ in range(2):
        opt.zero_grad(set_to_none=False)  # keep the gradients allocated, as the engine counts them
        model(x).sum().backward()
        opt.step()
    if cuda:
        return {"measured": torch.cuda.max_memory_allocated(), "how": "cuda max allocated"}
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"measured": after - before, "how": "CPU peak RSS growth"}


def _warm_up(device: str) -> None:
    """One tiny training step first, so the libraries' one-time set-up (oneDNN, thread pools,
    code pages: ~90 MiB of RSS on CPU) is not counted as the network's."""
    import torch

    tiny = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 3), torch.nn.BatchNorm2d(1), torch.nn.MaxPool2d(2),
                               torch.nn.Flatten(), torch.nn.Linear(9, 1)).to(device)  # fmt: skip
    opt = torch.optim.Adam(tiny.parameters())
    tiny(torch.zeros(2, 1, 8, 8, device=device)).sum().backward()
    opt.step()


def engine_peak(spec: str, batch: int) -> int:
    from convcalc.engine import analyze
    from convcalc.memory import training_memory
    from convcalc.spec import load_spec

    memory = training_memory(analyze(load_spec(str(ROOT / "specs" / f"{spec}.yaml"))), "adam")
    return memory.training_peak(batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("specs", nargs="*", default=SPECS)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child[0], int(args.child[1]))))
        return
    from convcalc.render import human_bytes

    print(f"batch {args.batch}, Adam, float32; ratio = measured / engine")
    for spec in args.specs:
        out = subprocess.run(
            [sys.executable, __file__, "--child", spec, str(args.batch)],
            capture_output=True, text=True, check=True, cwd=ROOT,
        )  # fmt: skip
        result = json.loads(out.stdout)
        mine = engine_peak(spec, args.batch)
        measured = result["measured"]
        print(
            f"{spec:14} engine {human_bytes(mine):>11}   {result['how']} {human_bytes(measured):>11}"
            f"   ratio {measured / mine:5.2f}"
        )


if __name__ == "__main__":
    main()
