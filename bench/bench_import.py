"""`convcalc import` coverage and speed over torchvision's builders.

For every builder in ``torchvision.models.list_models()`` of the classification, video and
segmentation modules: build it on the meta device (``weights=None``; on the CPU when its
constructor computes with tensors), import it, build the spec's model on meta, and compare
state_dict keys and shapes, params and MACs (FlopCounterMode on the original). Prints one row per
builder: ``ok`` with the import time, or the refusal (the op and module path it names).

torchvision is imported as the tests do (tests/conftest.py), since its C extension cannot load
on these machines.

``--speed``: the issue's whole-process comparison instead, ``convcalc import
torchvision.models:resnet50`` vs ``python -c "import torch, torchvision;
torchvision.models.resnet50()"``, alternating in fresh processes. Both sides run through the same
small wrapper that first registers the torchvision package without its ``__init__`` (the tests'
trick), so each pays the same for it; the medians and their ratio are printed.

    .venv/bin/python bench/bench_import.py [--only resnet18,mobilenet_v2]
    .venv/bin/python bench/bench_import.py --speed [--runs 9]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Registers torchvision as tests/conftest.py does, then runs one side (argv[1]).
WRAPPER = """
import importlib.util, sys, types
from pathlib import Path
found = importlib.util.find_spec("torchvision")
package = types.ModuleType("torchvision")
package.__path__ = [str(Path(found.origin).parent)]
sys.modules["torchvision"] = package
if sys.argv[1] == "torch":
    import torch, torchvision.models
    torchvision.models.resnet50()
else:
    sys.argv = ["convcalc", "import", "torchvision.models:resnet50", "--input", "3x224x224"]
    from convcalc.__main__ import run
    run()
"""
SIDES = {
    "torch": 'python -c "import torch, torchvision; torchvision.models.resnet50()"',
    "convcalc": "convcalc import torchvision.models:resnet50 --input 3x224x224",
}


def speed(runs: int) -> None:
    times: dict[str, list[float]] = {side: [] for side in SIDES}
    for _ in range(runs):
        for side in SIDES:  # alternating, so both see the same load
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", WRAPPER, side], check=True, stdout=subprocess.DEVNULL)
            times[side].append(time.perf_counter() - start)
    base = statistics.median(times["torch"])
    print(f"whole process, {runs} runs each, alternating; medians (min); ratio = row / torch side")
    for side, command in SIDES.items():
        median = statistics.median(times[side])
        print(f"  {command:<72} {median * 1000:7.1f} ms  ({min(times[side]) * 1000:7.1f})  "
              f"ratio {median / base:5.2f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", help="comma-separated builder names")
    parser.add_argument("--speed", action="store_true", help="time convcalc import of resnet50 instead")
    parser.add_argument("--runs", type=int, default=9, help="runs of each side for --speed")
    parser.add_argument("--timm", action="store_true", help="timm's families (the first model of each)")
    args = parser.parse_args()
    if args.speed:
        speed(args.runs)
        return
    if args.timm:
        timm_coverage(set(args.only.split(",")) if args.only else None)
        return
    from tests.conftest import torchvision_models

    models = torchvision_models()
    import torchvision.models.segmentation as segmentation
    import torchvision.models.video as video

    groups = {"classification": models, "video": video, "segmentation": segmentation}
    wanted = set(args.only.split(",")) if args.only else None
    counts = {"ok": 0, "ok_aux": 0, "refused": 0, "mismatch": 0}
    for label, module in groups.items():
        for name in models.list_models(module=module):
            if wanted and name not in wanted:
                continue
            verdict, text = compare(models.get_model_builder(name), name, label, {})
            if (
                verdict == "refused" and "aux_logits=false" in text
            ):  # GoogLeNet, Inception-v3: the fix it names
                verdict, again = compare(models.get_model_builder(name), name, label, {"aux_logits": False})
                text = f"{again} (with --arg aux_logits=false; refused with the aux heads)"
                verdict = "ok_aux" if verdict == "ok" else verdict
            counts[verdict] += 1
            print(f"{label:<15} {name:<28} {text[:200]}")
    print(
        f"\n{counts['ok']} imported and equal, {counts['ok_aux']} more with --arg aux_logits=false, "
        f"{counts['refused']} refused, {counts['mismatch']} mismatched"
    )


def timm_coverage(wanted: set[str] | None) -> None:
    """One row per timm model family (``timm.list_modules()``): its first model, as
    ``timm.create_model(name, pretrained=False)`` builds it, at 3×224×224."""
    from tests.conftest import torchvision_models

    torchvision_models()  # timm imports torchvision: registered first, as the tests do
    import timm

    counts = {"ok": 0, "refused": 0, "mismatch": 0, "skipped": 0}
    for family in timm.list_modules():
        names = timm.list_models(module=family)
        if not names or (wanted and names[0] not in wanted):
            continue
        verdict, text = compare(lambda name=names[0], **_: timm.create_model(name, pretrained=False),
                                names[0], "timm", {})  # fmt: skip
        counts[verdict] += 1
        print(f"{family:<24} {names[0]:<28} {text[:200]}")
    print(f"\n{sum(counts.values())} families: {counts['ok']} imported and equal, {counts['refused']} "
          f"refused, {counts['mismatch']} mismatched, {counts['skipped']} not run at 224×224")  # fmt: skip


# s3d's AvgPool3d(2, 7, 7) needs torchvision's min_size (224, 224); the other video models take 112
SHAPES = {"video": (3, 16, 112, 112), "classification": (3, 224, 224), "segmentation": (3, 224, 224),
          "timm": (3, 224, 224)}  # fmt: skip
SHAPE_OF = {"s3d": (3, 16, 224, 224)}


def compare(builder, name: str, label: str, extra: dict) -> tuple[str, str]:
    """("ok" | "refused" | "mismatch", the row's text) for one builder."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from convcalc.build import build_model
    from convcalc.engine import analyze
    from convcalc.importer import import_model

    shape = SHAPE_OF.get(name, SHAPES[label])
    warnings.simplefilter("ignore")
    kwargs = {"weights": None, **({"weights_backbone": None} if label == "segmentation" else {}), **extra}
    try:
        with torch.device("meta"):
            original = builder(**kwargs)  # never a download: no weights, no backbone weights
    except Exception:  # noqa: BLE001 - a constructor computing with tensors: build it for real
        original = builder(**kwargs)
    start = time.perf_counter()
    try:
        network = import_model(original, shape, name)
    except Exception as error:  # noqa: BLE001 - ImportFailed, and a crash is a finding too
        return "refused", f"refused: {error}"
    seconds = time.perf_counter() - start
    analysis = analyze(network)
    with torch.device("meta"):
        ours = build_model(network)
    device = next(original.parameters()).device
    counter = FlopCounterMode(display=False)
    original.eval()
    try:
        with counter, torch.no_grad():
            original(torch.zeros(1, *shape, device=device))
    except Exception as error:  # noqa: BLE001 - a timm model made for another input size
        return "skipped", f"skipped: the original does not run at this size ({type(error).__name__})"
    same = (
        {k: tuple(v.shape) for k, v in ours.state_dict().items()}
        == {k: tuple(v.shape) for k, v in original.state_dict().items()}
        and analysis.total_params == sum(p.numel() for p in original.parameters())
        and analysis.total_macs == counter.get_total_flops() / 2
    )
    verdict = "ok" if same else "MISMATCH"
    return ("ok" if same else "mismatch"), (
        f"{verdict:<9} import {seconds * 1000:6.0f} ms, {analysis.total_params:>11,} params, "
        f"{analysis.total_macs:>15,} MACs"
    )


if __name__ == "__main__":
    main()
