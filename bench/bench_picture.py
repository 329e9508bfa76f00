"""What the designer's picture (``#picture``) costs per update, against the engine's analysis.

For a 50-layer stack (``bench_tui.fifty_layers``) and ResNet-50 (175 layers, folded to its
blocks), medians over N updates at the width the picture has at 160 columns:

* analyze: ``engine.analyze`` of the network (what every edit already pays; the baseline);
* picture: ``picture.picture`` and ``to_content``, the pure rows → lines functions (an
  edit: a new analysis);
* widget: ``NetworkPicture.show`` with a fresh analysis in a headless designer, until the
  widget holds the new lines (picture + ``Static.update``), painting excluded;
* select: ``show`` with the same analysis and another selected row (moving in the table).

Times are CPU time of this thread (``time.thread_time``) and wall time: on the shared 2-core
machine the wall time is partly waiting for a core.

    .venv/bin/python bench/bench_picture.py [--updates 200]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_tui import fifty_layers  # noqa: E402

from convcalc.engine import analyze  # noqa: E402
from convcalc.spec import load_spec  # noqa: E402
from convcalc.tui.app import ConvcalcApp  # noqa: E402
from convcalc.tui.picture import NetworkPicture, picture, to_content  # noqa: E402

SPECS = Path(__file__).parent.parent / "specs"


def median_ms(run, n: int) -> tuple[float, float]:
    """(CPU, wall) milliseconds, medians over ``n`` calls of ``run(i)``."""
    cpu, wall = [], []
    for i in range(n):
        c, w = time.thread_time(), time.perf_counter()
        run(i)
        cpu.append(time.thread_time() - c)
        wall.append(time.perf_counter() - w)
    return statistics.median(cpu) * 1000, statistics.median(wall) * 1000


async def measure(network, n: int) -> dict[str, tuple[float, float]]:
    analyses = [analyze(network) for _ in range(n)]  # distinct objects: no cache hit
    rows = len(analyses[0].rows)
    out = {"analyze": median_ms(lambda i: analyze(network), n)}
    async with ConvcalcApp(network).run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        widget = pilot.app.designer.query_one(NetworkPicture)
        width = widget.content_size.width
        out["picture"] = median_ms(lambda i: to_content(picture(analyses[i], i % rows, width)), n)
        out["widget"] = median_ms(lambda i: widget.show(analyses[i], 0), n)
        out["select"] = median_ms(lambda i: widget.show(analyses[-1], i % rows), n)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--updates", type=int, default=200)
    args = parser.parse_args()
    networks = (("50-layer stack", fifty_layers()), ("resnet50", load_spec(SPECS / "resnet50.yaml")))
    for name, network in networks:
        times = asyncio.run(measure(network, args.updates))
        base = times["analyze"][0]
        print(f"{name}, {args.updates} updates, medians")
        print(f"{'':<10}{'CPU ms':>8}{'× analyze':>11}{'wall ms':>9}")
        for what, (cpu, wall) in times.items():
            print(f"{what:<10}{cpu:>8.3f}{cpu / base:>11.2f}{wall:>9.3f}")


if __name__ == "__main__":
    main()
