"""One test per hostile input of issue 16 (and the ones fuzzing found) that used to end in a
traceback, a hang or a half-done run: each now ends in one message naming the file, the field
or the option and the fix, exit code 1, and nothing written.

Commands run in this process through ``tests.test_fuzz.run_captured`` (the CLI's ``main``,
bounded by a timer, asserting no traceback), except where a real process is the point.
"""

from __future__ import annotations

import copy
import errno
import math
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

from convcalc import data, solve
from convcalc.spec import load_spec
from convcalc.train import TrainConfig, TrainError, load_checkpoint, train
from tests.conftest import ROOT, SPECS
from tests.test_fuzz import run_captured
from tests.test_train import one_epoch_lenet, squares

LENET = SPECS / "lenet.yaml"
LONG = "x" * 300  # past the 255 bytes a file name may have on Linux file systems
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def lenet_run(tmp_path_factory):
    return one_epoch_lenet(tmp_path_factory, 48)


@pytest.fixture(scope="module")
def digits(lenet_run):
    return lenet_run[0]


@pytest.fixture(scope="module")
def checkpoint_file(lenet_run):
    """A real checkpoint: LeNet after one epoch of 48 images (3 batches of 16)."""
    return lenet_run[1]


@pytest.fixture
def saved(checkpoint_file, tmp_path):
    """``saved(change)``: the real checkpoint changed by ``change(dict)``, saved to a new file."""

    def write(change) -> str:
        checkpoint = copy.deepcopy(torch.load(checkpoint_file, weights_only=True))
        change(checkpoint)
        path = tmp_path / "changed.pt"
        torch.save(checkpoint, path)
        return str(path)

    return write


def without(*keys):
    def change(checkpoint):
        record = checkpoint
        for key in keys[:-1]:
            record = record[key]
        del record[keys[-1]]

    return change


def setting(*keys, value):
    def change(checkpoint):
        record = checkpoint
        for key in keys[:-1]:
            record = record[key]
        record[keys[-1]] = value

    return change


# --- train --out --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("out", "words"),
    [
        ("{tmp}", "is a folder; fix: give a checkpoint file, e.g. --out {tmp}/run.pt"),
        ("{tmp}/file/x.pt", "{tmp}/file is a file, not a folder"),
        ("{tmp}/file/a/b/x.pt", "{tmp}/file is a file, not a folder"),
        ("/sys/x.pt", "cannot write a checkpoint there"),
        ("/sys/a/b/x.pt", "cannot write a checkpoint there"),
        ("{tmp}/" + LONG + ".pt", "(File name too long)"),
        ("{tmp}/" + LONG + "/x.pt", "(File name too long)"),
        ("/", "is a folder"),
    ],
    ids=[
        "folder",
        "under-a-file",
        "deep-under-a-file",
        "sys",
        "deep-in-sys",
        "long-name",
        "long-folder",
        "root",
    ],
)
def test_train_out_that_cannot_be_written_is_refused_before_any_data_is_read(tmp_path, out, words):
    """No data folder exists: a refusal about --out proves it came before the data (and before
    an epoch of training, which the run used to lose to a traceback at the first save)."""
    (tmp_path / "file").write_text("a regular file")
    out, words = out.format(tmp=tmp_path), words.format(tmp=tmp_path)
    args = ["train", str(LENET), "--data-dir", str(tmp_path / "no-data"), "--no-download", "--out", out]
    code, text = run_captured(args)
    assert code == 1 and words in text and "fix:" in text, text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # no folder, no temporary file left


def test_a_nul_in_the_checkpoint_path_is_refused(tmp_path):
    with pytest.raises(TrainError, match="cannot hold a NUL character"):
        train(load_spec(LENET), TrainConfig(data_dir=str(tmp_path), out=str(tmp_path / "a\x00b.pt")))


def test_a_failed_save_is_a_message_and_leaves_no_part_file(digits, tmp_path, monkeypatch):
    def full(payload, target):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    out = tmp_path / "run.pt"
    with pytest.raises(TrainError, match=f"{out}: cannot write the checkpoint \\(No space left on device\\)"):
        train(load_spec(LENET), TrainConfig(data_dir=str(digits), epochs=1, out=str(out), download=False))
    assert list(tmp_path.iterdir()) == []


def test_training_on_zero_images_through_the_cli(tmp_path):
    none = (torch.zeros((0, 28, 28), dtype=torch.uint8), torch.zeros((0,), dtype=torch.uint8))
    folder = data.write_dataset(tmp_path / "empty", none, squares(4, np.random.default_rng(0)))
    code, text = run_captured(["train", str(LENET), "--data-dir", str(folder), "--no-download",
                               "--out", str(tmp_path / "run.pt")])  # fmt: skip
    assert code == 1 and "the training set has 0 images" in text
    assert not (tmp_path / "run.pt").exists()


# --- checkpoints: evaluate and --resume ---------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (without("recipe"), "recipe", "is missing"),
        (without("normalize"), "normalize", "is missing"),
        (setting("state_dict", value=None), "state_dict", "is NoneType, not a mapping"),
        (setting("state_dict", value=[1, 2]), "state_dict", "is list, not a mapping"),
        (setting("recipe", value="mnist"), "recipe", "is str, not a mapping"),
        (without("recipe", "dataset"), "recipe.dataset", "is missing"),
        (setting("recipe", "dataset", value="cifar100"), "recipe.dataset", "names no data set"),
        (setting("recipe", "dataset", value=7), "recipe.dataset", "is int, not a string"),
        (setting("normalize", value=None), "normalize", "is NoneType, not a mapping"),
        (without("normalize", "std"), "normalize.std", "is missing"),
        (setting("normalize", "mean", value="0.1"), "normalize.mean", "is str, not a number"),
        (setting("normalize", "std", value=0.0), "normalize", "need finite, std > 0"),
        (setting("normalize", "mean", value=math.nan), "normalize", "need finite, std > 0"),
        (setting("recipe", "augment", value=5), "recipe.augment", "is int, not a tuple or a list"),
        (setting("recipe", "resize", value="yes"), "recipe.resize", "is str, not true or false"),
        (setting("data", value="runs"), "data", "is str, not a mapping"),
    ],
)
def test_evaluate_refuses_a_checkpoint_missing_what_it_reads(saved, digits, change, field, words):
    path = saved(change)
    with pytest.raises(TrainError, match=f"{path}: checkpoint field '{field}' .*{words}"):
        load_checkpoint(path)
    code, text = run_captured(["evaluate", path, "--data-dir", str(digits), "--no-download"])
    assert code == 1 and f"checkpoint field '{field}'" in text and "fix:" in text


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (without("optimizer"), "optimizer", "is missing"),
        (without("progress"), "progress", "is missing"),
        (without("scheduler"), "scheduler", "is missing"),
        (without("rng"), "rng", "is missing"),
        (without("metrics"), "metrics", "is missing"),
        (setting("optimizer", value=None), "optimizer", "is NoneType, not a mapping"),
        (setting("progress", value=[0]), "progress", "is list, not a mapping"),
        (setting("rng", value="seed"), "rng", "is str, not a tensor"),
        (without("recipe", "epochs"), "recipe.epochs", "is missing"),
        (setting("recipe", "lr", value="fast"), "recipe.lr", "is str, not a number"),
        (setting("recipe", "limit", value=1.5), "recipe.limit", "is float, not an integer or null"),
        (setting("recipe", "seed", value=True), "recipe.seed", "is bool, not an integer"),
        (without("progress", "batch"), "progress.batch", "is missing"),
        (setting("progress", "epochs_done", value="1"), "progress.epochs_done", "is str, not an integer"),
        (setting("progress", "epochs_done", value=-1), "progress.epochs_done", "is -1"),
        (setting("progress", "epochs_done", value=10**9), "progress.epochs_done", "in a run of 1"),
        (setting("progress", "batch", value=-3), "progress.batch", r"is -3 \(< 0\)"),
        (setting("metrics", "epochs", value="1"), "metrics.epochs", "is str, not a list"),
        (setting("metrics", "epochs", value=[{"epoch": 1}]), "metrics.epochs.0", "is not numbers named"),
    ],
)
def test_resume_refuses_a_checkpoint_missing_what_it_reads(saved, digits, change, field, words):
    """Evaluating needs less than resuming: the same file still evaluates."""
    path = saved(change)
    with pytest.raises(TrainError, match=f"{path}: checkpoint field '{field}' .*{words}"):
        train(load_spec(LENET), TrainConfig(data_dir=str(digits), resume=path, download=False))
    load_checkpoint(path)  # evaluate reads none of these
    code, text = run_captured(["train", str(LENET), "--resume", path, "--data-dir", str(digits)])
    assert code == 1 and f"checkpoint field '{field}'" in text


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (setting("recipe", "optimizer", value="rmsprop"), "recipe", "choose one of adam, adamw, sgd"),
        (setting("recipe", "lr", value=-1.0), "recipe", "learning rate must be a positive number"),
        (
            setting("state_dict", "c1.weight", value=torch.zeros(3)),
            "state_dict",
            "size mismatch for c1.weight",
        ),
        (setting("rng", value=torch.zeros(3)), "rng", "does not fit this model and recipe"),
        (
            setting("optimizer", value={"state": {}, "param_groups": []}),
            "optimizer",
            "different number of parameter groups",
        ),
    ],
)
def test_resume_refuses_state_that_does_not_fit_the_run(saved, digits, change, field, words):
    path = saved(change)
    with pytest.raises(TrainError, match=f"{path}: checkpoint field '{field}' .*{words}"):
        train(load_spec(LENET), TrainConfig(data_dir=str(digits), resume=path, download=False))


def test_resume_on_a_training_set_of_another_size_is_refused_not_crashed(saved, tmp_path):
    """The one-cycle schedule plans epochs × batches steps: 3 batches of 16 here. On 80
    images a resumed run would have 5 and stop with torch's ValueError at the 4th step."""
    path = saved(setting("progress", value={"epochs_done": 0, "batch": 1, "loss_sum": 2.3, "seen": 16,
                                            "epoch_seconds": 0.1}))  # fmt: skip
    torch.save({**torch.load(path, weights_only=True), "metrics": {"epochs": []}}, path)
    rng = np.random.default_rng(1)
    other = data.write_dataset(tmp_path / "more", squares(80, rng), squares(16, rng))
    with pytest.raises(TrainError, match=r"plans 3 steps, this run has 1 epochs × 5 batches"):
        train(load_spec(LENET), TrainConfig(data_dir=str(other), resume=path, download=False))


def test_evaluate_names_the_mismatching_weight(saved, digits):
    """torch's first line is 'Error(s) in loading state_dict for Sequential:'; the message
    gives the line after it."""
    path = saved(setting("state_dict", "c3.bias", value=torch.zeros(5)))
    code, text = run_captured(["evaluate", path, "--data-dir", str(digits), "--no-download"])
    assert code == 1 and "size mismatch for c3.bias" in text


# --- long and impossible folders ----------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["data", "info", "mnist", "--data-dir", LONG],
        ["data", "fetch", "mnist", "--data-dir", LONG, "--mirror", "http://127.0.0.1:9/"],
        ["train", str(LENET), "--data-dir", LONG, "--no-download", "--out", "{tmp}/run.pt"],
        ["evaluate", "{ckpt}", "--data-dir", LONG],
    ],
    ids=["data-info", "data-fetch", "train", "evaluate"],
)
def test_a_data_folder_name_the_file_system_refuses(checkpoint_file, tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    args = [arg.format(tmp=tmp_path, ckpt=checkpoint_file) for arg in args]
    code, text = run_captured(args)
    assert code == 1 and "cannot look in this folder (File name too long)" in text
    assert list(tmp_path.iterdir()) == []


# --- solve ----------------------------------------------------------------------------------------


def test_solve_channels_past_int32_after_widening():
    code, text = run_captured(["solve", "--in", "28", "--rf", "100", "--channels", "300000000"])
    assert code == 1 and "give --channels up to 268,435,455" in text


def test_solve_rf_1_is_a_one_layer_stack_not_an_index_error():
    (stack,) = solve.rf_stacks(1, (1, 28, 28), limit=1)
    assert stack.receptive_field == 3 and len(stack.layers) == 2  # conv3 and its ReLU


def test_an_unreachable_field_on_a_huge_input_is_refused_at_once():
    """It used to search every stack: over two minutes for 10⁶ pixels (the timer stops it at 60 s)."""
    code, text = run_captured(["solve", "--in", "1000000", "--rf", "100000000"], limit=60)
    assert code == 1 and "the largest is" in text


def test_a_reachable_field_on_a_huge_input_is_refused_past_the_search_limit():
    code, text = run_captured(["solve", "--in", "1000000", "--rf", "1000000"], limit=60)
    assert code == 1 and f"more than {solve.RF_SEARCH_LIMIT:,} partial stacks" in text


@pytest.mark.parametrize("hw", [(5, 5), (13, 13), (28, 28), (32, 17)])
def test_the_largest_field_is_what_the_unpruned_search_reaches(hw, monkeypatch):
    """``largest_field`` refuses targets before the search and ``_reach`` prunes inside it: both
    rest on the greedy bound, so the check runs the search with the bound disabled."""
    largest = solve.largest_field(hw)
    assert solve.rf_stacks(int(largest), (3, *hw), limit=1)
    monkeypatch.setattr(solve, "_reach", lambda *args: math.inf)
    assert solve.rf_stacks(int(largest) + 1, (3, *hw), limit=1) == []
    assert solve.rf_stacks(int(largest), (3, *hw), limit=1)


# --- import ---------------------------------------------------------------------------------------

MODULES = {
    "exits.py": "import sys\nsys.exit(3)\n",
    "raises.py": "raise RuntimeError('broken at import')\n",
    "not_module.py": "def make():\n    return 42\n",
}


@pytest.mark.parametrize(
    ("target", "words"),
    [
        ("sys:exit", "its code called sys.exit(None)"),
        ("{dir}/exits.py:Net", "its code called sys.exit(3)"),
        ("{dir}/raises.py:Net", "cannot import {dir}/raises.py (RuntimeError: broken at import)"),
        ("{dir}/not_module.py:make", "make() returned a int, not an nn.Module"),
        ("torch.nn:Conv2d", "pass its arguments with --arg"),
    ],
)
def test_hostile_import_targets_are_messages(tmp_path, target, words):
    for name, source in MODULES.items():
        (tmp_path / name).write_text(source)
    target, words = target.format(dir=tmp_path), words.format(dir=tmp_path)
    code, text = run_captured(["import", target, "--input", "1x8x8", "-o", str(tmp_path / "out.yaml")])
    assert code == 1 and words in text, text
    assert not (tmp_path / "out.yaml").exists()


@pytest.mark.parametrize(
    "value", ["[", "*a", "!!python/object:os.system", "9" * 4400], ids=["flow", "alias", "tag", "4400-digits"]
)
def test_import_arg_values_that_are_not_yaml(value):
    code, text = run_captured(["import", "torch.nn:Linear", "--arg", f"in_features={value}"])
    assert code == 1 and "VALUE is not a YAML value" in text


@pytest.mark.slow
def test_an_import_that_never_returns_ends_with_ctrl_c(tmp_path):
    """Importing runs the target's code, as Python's import does, with no time limit of
    convcalc's (a model file may take long to build); Ctrl-C ends it cleanly."""
    (tmp_path / "loops.py").write_text("print('importing', flush=True)\nwhile True:\n    pass\n")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "convcalc", "import", f"{tmp_path / 'loops.py'}:Net"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert process.stdout.readline() == "importing\n"
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 1 and "interrupted" in err and "Traceback" not in err


# --- tui ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        (LONG + ".yaml", None, "cannot open or create it (File name too long)"),
        ("nul.yaml", b"name: a\x00b\ninput: [1, 28, 28]\nlayers: []\n", "nul.yaml"),
    ],
    ids=["long-name", "nul"],
)
def test_the_tui_refuses_before_the_app_starts(tmp_path, monkeypatch, name, content, words):
    from convcalc.tui.app import ConvcalcApp

    def started(app):
        pytest.fail("the app started")

    monkeypatch.setattr(ConvcalcApp, "run", started)
    if content is not None:
        (tmp_path / name).write_bytes(content)
    code, text = run_captured(["tui", str(tmp_path / name)])
    assert code == 1 and words in text, text
