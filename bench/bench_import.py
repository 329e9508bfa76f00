"""`convcalc import` coverage and speed over torchvision's builders.

For every builder in ``torchvision.models.list_models()`` of the classification, video and
segmentation modules: build it on the meta device (``weights=None``; on the CPU when its
constructor computes with tensors), import it, build the spec's model on meta, and compare
state_dict keys and shapes, params and MACs (FlopCounterMode on the original). Prints one row per
builder: ``ok`` with the import time, or the refusal (the op and module path it names).

torchvision is imported as the tests do (tests/conftest.py), since its C extension cannot load
on these machines.

    .venv/bin/python bench/bench_import.py [--only resnet18,mobilenet_v2]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", help="comma-separated builder names")
    args = parser.parse_args()
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from convcalc.build import build_model
    from convcalc.engine import analyze
    from convcalc.importer import ImportFailed, import_model
    from tests.conftest import torchvision_models

    models = torchvision_models()
    import torchvision.models.segmentation as segmentation
    import torchvision.models.video as video

    groups = {"classification": models, "video": video, "segmentation": segmentation}
    wanted = set(args.only.split(",")) if args.only else None
    counts = {"ok": 0, "refused": 0, "mismatch": 0}
    for label, module in groups.items():
        for name in models.list_models(module=module):
            if wanted and name not in wanted:
                continue
            builder = models.get_model_builder(name)
            shape = (3, 16, 112, 112) if label == "video" else (3, 224, 224)
            warnings.simplefilter("ignore")
            kwargs = {"weights": None, **({"weights_backbone": None} if label == "segmentation" else {})}
            try:
                with torch.device("meta"):
                    original = builder(**kwargs)  # never a download: no weights, no backbone weights
            except Exception:  # noqa: BLE001 - a constructor computing with tensors: build it for real
                original = builder(**kwargs)
            start = time.perf_counter()
            try:
                network = import_model(original, shape, name)
            except (ImportFailed, Exception) as error:  # noqa: BLE001 - a crash is a finding too
                counts["refused"] += 1
                print(f"{label:<15} {name:<28} refused: {str(error)[:150]}")
                continue
            seconds = time.perf_counter() - start
            analysis = analyze(network)
            with torch.device("meta"):
                ours = build_model(network)
            device = next(original.parameters()).device
            counter = FlopCounterMode(display=False)
            original.eval()
            with counter, torch.no_grad():
                original(torch.zeros(1, *shape, device=device))
            same = (
                {k: tuple(v.shape) for k, v in ours.state_dict().items()}
                == {k: tuple(v.shape) for k, v in original.state_dict().items()}
                and analysis.total_params == sum(p.numel() for p in original.parameters())
                and analysis.total_macs == counter.get_total_flops() / 2
            )
            counts["ok" if same else "mismatch"] += 1
            verdict = "ok" if same else "MISMATCH"
            print(f"{label:<15} {name:<28} {verdict:<9} import {seconds * 1000:6.0f} ms, "
                  f"{analysis.total_params:>11,} params, {analysis.total_macs:>15,} MACs")  # fmt: skip
    print(
        f"\n{counts['ok']} imported and equal, {counts['refused']} refused, {counts['mismatch']} mismatched"
    )


if __name__ == "__main__":
    main()
