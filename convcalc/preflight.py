"""What ``convcalc train`` checks before it imports torch: the spec against the data set, the
checkpoint path, the data's presence. Importing torch takes seconds; a request that cannot run
is refused before that (issue 18: 8 s to say the data is missing).

No torch here (``tests/test_reliability.py`` checks it): ``spec``, ``engine``, ``data``'s file
finding and ``files``' probe only. ``convcalc.train`` runs the same checks again for callers
of the library (the TUI), together with those that need torch (the model, the checkpoint).
"""

from __future__ import annotations

from pathlib import Path

from convcalc import data
from convcalc.engine import Analysis, analyze, fmt_shape
from convcalc.errors import ConvcalcError
from convcalc.files import check_writable

FOLDER = "folder"  # the data set of --data-dir DIR with one subfolder per class (convcalc.images)


class TrainError(ConvcalcError):
    """A training request that cannot run: bad option, spec unfit for the data set, bad checkpoint."""


def check_fit(network, dataset: str, classes: int | None = None) -> Analysis:
    """The spec's analysis; ``TrainError`` unless ``network`` takes the data set's images and
    ends in one score per class. A ``folder`` takes the spec's input; its number of ``classes``
    is known once it is read (None: only a 1-D output is checked). Engine errors are left to
    the caller (``train.check_network`` builds the model, which names them)."""
    if dataset != FOLDER:
        info = data.dataset_info(dataset)
        c, h, w = info.input_shape
        classes = len(info.classes)
        if tuple(network.input) != info.input_shape:
            raise TrainError(
                f"spec {network.name!r} takes {fmt_shape(tuple(network.input))} input, but {dataset} images "
                f"are {fmt_shape(info.input_shape)}; set `input: [{c}, {h}, {w}]` in the spec"
            )
    analysis = analyze(network)
    if analysis.ok and (len(analysis.output_shape) != 1 or classes not in (None, analysis.output_shape[0])):
        wanted = classes if classes is not None else "N"
        raise TrainError(
            f"spec {network.name!r} ends in {fmt_shape(analysis.output_shape)}, but a {dataset} classifier "
            f"must end in {wanted} class scores; end it with Flatten and Linear(out_features={wanted})"
        )
    return analysis


def default_checkpoint_path(network, dataset: str) -> str:
    """``runs/<spec name>-<dataset>.pt``; the name made safe for a file name (no path separators,
    NUL or other control characters, at most 100 characters), so it never leaves ``runs/``."""
    safe = (
        "".join(c if c.isalnum() or c in "-_." else "_" for c in network.name)[:100].strip(".") or "network"
    )
    return str(Path("runs") / f"{safe}-{dataset}.pt")


def check_checkpoint_path(out: str | Path) -> None:
    """``TrainError`` unless a checkpoint can be written at ``out`` (its folders may be missing:
    the first save makes them); ``files.check_writable`` says what is tried."""
    try:
        check_writable(out, "--out", "run.pt", "checkpoint", make_folders=True)
    except ConvcalcError as error:
        raise TrainError(str(error)) from None


def check_request(
    network,
    dataset: str,
    data_dir: str | None,
    download: bool,
    out: str | None,
    resume: str | None,
    probe: bool = True,
) -> str:
    """The checkpoint path of the run; before that, ``ConvcalcError`` when the spec does not fit
    the data set or has errors (a resumed run: checked against its checkpoint, in ``train``),
    the checkpoint cannot be written (``probe``: tried; False in the processes of a distributed
    run but the first, which writes), or the data is not there and will not be downloaded."""
    if not resume:
        analysis = check_fit(network, dataset)
        if analysis.errors:  # the text build.BuildError would give, without building
            raise ConvcalcError("\n".join(str(problem) for problem in analysis.errors))
    path = out or resume or default_checkpoint_path(network, dataset)
    if probe:
        check_checkpoint_path(path)
    if dataset == FOLDER:
        if data_dir and not Path(data_dir).is_dir():
            raise data.DataError(
                f"{data_dir}: no such folder; --data-dir names a folder with one subfolder per class"
            )
    elif not resume and not download and data.locate(dataset, data_dir) is None:
        raise data.DataError(data.missing_message(dataset, data_dir))
    return path
