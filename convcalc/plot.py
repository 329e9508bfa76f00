"""``convcalc plot``: training curves from checkpoints' metrics (train and test loss, test
accuracy per epoch), several runs on one figure; also ``convcalc train --plot``.

The numbers are the ones ``convcalc train`` stored per epoch (``metrics.epochs``, see
``convcalc.train``); matplotlib (the ``plot`` extra) draws them, with its Agg backend, so no
display is needed.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from convcalc.errors import ConvcalcError

SUFFIXES = (".png", ".pdf", ".svg")
CURVES = ("epoch", "train_loss", "test_loss", "test_accuracy")  # what each epoch's record must hold


@dataclass(frozen=True)
class Run:
    label: str
    epochs: tuple[int, ...]
    train_loss: tuple[float, ...]
    test_loss: tuple[float, ...]
    test_accuracy: tuple[float, ...]  # 0 to 1


def check_output(path: str) -> str:
    """The format from ``path``'s suffix, and matplotlib importable: both checked before any work
    (``train --plot`` checks them before training)."""
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise ConvcalcError(
            f"{path}: unknown plot type {suffix or '(no suffix)'!r}; "
            "fix: end the file name in .png, .pdf or .svg"
        )
    _pyplot()
    return suffix[1:]


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only; never a window
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConvcalcError("plotting needs matplotlib; fix: pip install 'convcalc[plot]'") from None
    return plt


def run_of(path: str, checkpoint: dict[str, Any], name: str) -> Run:
    """The curves of one checkpoint (``train.load_checkpoint``'s dict), labelled ``name`` and its
    spec and data set; an error names the file and the field."""
    metrics = checkpoint.get("metrics")
    records = metrics.get("epochs") if isinstance(metrics, dict) else None
    if not isinstance(records, list):
        raise ConvcalcError(
            f"{path}: checkpoint field 'metrics.epochs' is missing; fix: give a file written by "
            "`convcalc train`"
        )
    if not records:
        raise ConvcalcError(
            f"{path}: no completed epoch to plot; fix: train it for an epoch at least "
            f"(convcalc train SPEC --resume {path})"
        )
    for index, record in enumerate(records):
        ok = isinstance(record, dict) and all(
            isinstance(record.get(k), int | float) and not isinstance(record.get(k), bool) for k in CURVES
        )
        if not ok:
            raise ConvcalcError(
                f"{path}: checkpoint field 'metrics.epochs.{index}' lacks numbers "
                f"{', '.join(CURVES)}; fix: give a file written by `convcalc train`"
            )
    spec, recipe = checkpoint.get("spec"), checkpoint.get("recipe")
    about = [
        v
        for v in (
            spec.get("name") if isinstance(spec, dict) else None,
            recipe.get("dataset") if isinstance(recipe, dict) else None,
        )
        if v
    ]
    label = f"{name} ({', '.join(map(str, about))})" if about else name
    return Run(label, *(tuple(r[k] for r in records) for k in CURVES))


def load_runs(paths: list[str]) -> list[Run]:
    from convcalc.train import load_checkpoint  # torch: only here

    stems = [Path(p).stem for p in paths]
    names = stems if len(set(stems)) == len(stems) else paths  # the same file name twice: the paths
    return [run_of(path, load_checkpoint(path), name) for path, name in zip(paths, names, strict=True)]


def figure(runs: list[Run], title: str | None = None) -> Any:
    """Loss (train solid, test dashed) and test accuracy per epoch; a colour per run."""
    plt = _pyplot()
    fig, (loss, accuracy) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    for k, run in enumerate(runs):
        colour = f"C{k % 10}"
        mark = "o" if len(run.epochs) <= 30 else None
        loss.plot(run.epochs, run.train_loss, color=colour, marker=mark, ms=3.5, label=f"{run.label}: train")
        loss.plot(
            run.epochs,
            _finite(run.test_loss),
            color=colour,
            ls="--",
            marker=mark,
            ms=3.5,
            label=f"{run.label}: test",
        )
        accuracy.plot(
            run.epochs,
            [100 * a for a in run.test_accuracy],
            color=colour,
            marker=mark,
            ms=3.5,
            label=run.label,
        )
    loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss (train solid, test dashed)")
    accuracy.set(xlabel="epoch", ylabel="test accuracy (%)", title="test accuracy")
    if all(v > 0 for run in runs for v in (*run.train_loss, *_finite(run.test_loss)) if v == v):
        loss.set_yscale("log")  # losses fall by orders of magnitude; a log axis shows the late epochs
    for ax in (loss, accuracy):
        ax.grid(True, alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    loss.legend(fontsize=8)
    accuracy.legend(fontsize=8, loc="lower right")
    fig.suptitle(title if title is not None else "training curves", fontweight="bold")
    return fig


def _finite(values: tuple[float, ...]) -> list[float]:
    return [v if math.isfinite(v) else math.nan for v in values]  # an inf loss would break the axis


def plot(paths: list[str], output: str, title: str | None = None) -> None:
    """Write the curves of the checkpoints at ``paths`` to ``output`` (atomically)."""
    from convcalc.files import write_atomically

    kind = check_output(output)
    fig = figure(load_runs(paths), title)
    buffer = io.BytesIO()
    fig.savefig(buffer, format=kind, dpi=150)
    _pyplot().close(fig)
    write_atomically(output, buffer.getvalue())
