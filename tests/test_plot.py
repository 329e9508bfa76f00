"""`convcalc plot` and `convcalc train --plot`: the curves of real checkpoints (two short runs
on the generated squares data set of tests/test_train.py), the pixels of the written PNG, errors."""

from __future__ import annotations

import io
import subprocess
import sys
from contextlib import redirect_stderr

import numpy as np
import pytest
import torch
from PIL import Image

from convcalc import data, plot
from convcalc.spec import load_spec
from convcalc.train import TrainConfig, train
from tests.conftest import ROOT, SPECS, run_cli
from tests.test_train import squares

LENET = SPECS / "lenet.yaml"
MPL_BLUE, MPL_ORANGE = (0x1F, 0x77, 0xB4), (0xFF, 0x7F, 0x0E)  # matplotlib's C0 and C1


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    rng = np.random.default_rng(1)
    return data.write_dataset(tmp_path_factory.mktemp("squares"), squares(256, rng), squares(96, rng))


@pytest.fixture(scope="module")
def runs(folder, tmp_path_factory):
    """Two real checkpoints: 3 epochs (seed 0) and 2 epochs (seed 1)."""
    out = tmp_path_factory.mktemp("runs")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    paths = []
    for seed, epochs in ((0, 3), (1, 2)):
        path = out / f"seed{seed}.pt"
        config = TrainConfig(data_dir=str(folder), epochs=epochs, batch_size=32, seed=seed, out=str(path),
                             download=False)  # fmt: skip
        train(load_spec(LENET), config)
        paths.append(str(path))
    torch.set_num_threads(threads)
    return paths


def stored(path: str) -> list[dict]:
    return torch.load(path, weights_only=True)["metrics"]["epochs"]


def test_figure_holds_every_runs_stored_metrics(runs):
    fig = plot.figure(plot.load_runs(runs))
    loss, accuracy = fig.axes
    lines = {line.get_label(): line for line in loss.get_lines() + accuracy.get_lines()}
    for path in runs:
        epochs = stored(path)
        name = next(label for label in lines if label.startswith(path.rsplit("/", 1)[1][:-3] + " ("))
        run = name.split(":")[0]
        assert list(lines[f"{run}: train"].get_xdata()) == [e["epoch"] for e in epochs]
        assert list(lines[f"{run}: train"].get_ydata()) == [e["train_loss"] for e in epochs]
        assert list(lines[f"{run}: test"].get_ydata()) == [e["test_loss"] for e in epochs]
        assert list(lines[run].get_ydata()) == [100 * e["test_accuracy"] for e in epochs]
        assert "(lenet, mnist)" in run
    assert loss.get_yscale() == "log"


def convcalc(*args: str) -> tuple[int, str]:
    """``convcalc ARGS`` in this process (torch and matplotlib are loaded once): exit code, stderr."""
    from convcalc.cli import main

    with pytest.raises(SystemExit) as exit, redirect_stderr(io.StringIO()) as err:
        main(list(args))
    return exit.value.code, err.getvalue()


def test_cli_plot_png_has_both_runs_colours(runs, tmp_path):
    out = tmp_path / "curves.png"
    code, err = convcalc("plot", *runs, "-o", str(out), "--title", "two seeds")
    assert code == 0, err
    image = np.asarray(Image.open(out).convert("RGB")).astype(int)
    assert image.shape[1] > 1000
    for colour in (MPL_BLUE, MPL_ORANGE):
        assert (np.abs(image - colour).max(axis=2) <= 8).sum() > 200, colour
    assert list(tmp_path.iterdir()) == [out]  # no temporary file left


@pytest.mark.parametrize("suffix", [".pdf", ".svg"])
def test_cli_plot_other_formats(runs, tmp_path, suffix):
    out = tmp_path / f"curves{suffix}"
    assert convcalc("plot", runs[0], "-o", str(out))[0] == 0
    assert out.read_bytes()[:5] in (b"%PDF-", b"<?xml")


def test_same_file_names_are_told_apart_by_path(runs, tmp_path):
    copy = tmp_path / "seed0.pt"
    copy.write_bytes(open(runs[0], "rb").read())
    labels = [run.label for run in plot.load_runs([runs[0], str(copy)])]
    assert labels[0].startswith(runs[0]) and labels[1].startswith(str(copy))


def test_errors(runs, tmp_path):
    not_ckpt = tmp_path / "notes.pt"
    not_ckpt.write_text("hello")
    cases = [
        (
            [runs[0], "-o", str(tmp_path / "c.bmp")],
            "unknown plot type '.bmp'; fix: end the file name in .png",
        ),
        ([str(not_ckpt), "-o", str(tmp_path / "c.png")], "not a convcalc checkpoint (a text file)"),
        ([str(tmp_path / "none.pt"), "-o", str(tmp_path / "c.png")], "no such checkpoint"),
        ([runs[0], "-o", str(tmp_path / "no" / "c.png")], "does not exist; fix: create it"),
    ]
    for args, message in cases:
        code, err = convcalc("plot", *args)
        assert code == 1 and message in err and "Traceback" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.pt"]


def test_a_checkpoint_without_epochs_is_refused(runs):
    checkpoint = torch.load(runs[0], weights_only=True)
    checkpoint["metrics"]["epochs"] = []
    with pytest.raises(plot.ConvcalcError, match="no completed epoch to plot"):
        plot.run_of("x.pt", checkpoint, "x")
    checkpoint["metrics"]["epochs"] = [{"epoch": 1, "train_loss": "low"}]
    with pytest.raises(plot.ConvcalcError, match=r"'metrics.epochs.0' lacks numbers"):
        plot.run_of("x.pt", checkpoint, "x")


def test_without_matplotlib_says_what_to_install(runs, tmp_path):
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "from convcalc.cli import main\n"
        f"main(['plot', {runs[0]!r}, '-o', {str(tmp_path / 'c.png')!r}])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 1 and "pip install 'convcalc[plot]'" in result.stderr, result.stderr


@pytest.mark.slow
def test_train_plot_writes_the_curves_and_checks_the_name_first(folder, tmp_path):
    args = [
        "--data-dir",
        str(folder),
        "--epochs",
        "2",
        "--batch-size",
        "32",
        "--threads",
        "1",
        "--no-download",
    ]
    bad = run_cli(
        "train", str(LENET), *args, "--out", str(tmp_path / "a.pt"), "--plot", str(tmp_path / "c.gif")
    )
    assert bad.returncode == 1 and "unknown plot type '.gif'" in bad.stderr
    assert not (tmp_path / "a.pt").exists()  # refused before training
    out = tmp_path / "curves.png"
    result = run_cli(
        "train", str(LENET), *args, "--out", str(tmp_path / "b.pt"), "--plot", str(out), timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert f"plot: {out}" in result.stdout
    image = np.asarray(Image.open(out).convert("RGB")).astype(int)
    assert (np.abs(image - MPL_BLUE).max(axis=2) <= 8).sum() > 200
