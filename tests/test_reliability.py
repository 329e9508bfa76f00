"""Reliability, part two (issue 17's checkpoints, output paths, empty data, Ctrl-C; issue 18's
"check first, import torch after" for ``train``): each hostile case ends in one message naming
the place and the fix, exit code 1, no traceback, nothing half-written.

Most commands run in this process (``tests.test_fuzz.run_captured``: the CLI's ``main``, no
traceback allowed); import order and signals need real processes.
"""

from __future__ import annotations

import copy
import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from convcalc import data
from convcalc.train import load_checkpoint
from tests.conftest import ROOT, SPECS
from tests.test_fuzz import run_captured
from tests.test_train import one_epoch_lenet

LENET = SPECS / "lenet.yaml"
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def lenet_run(tmp_path_factory):
    return one_epoch_lenet(tmp_path_factory, 32)


@pytest.fixture(scope="module")
def digits(lenet_run):
    return lenet_run[0]


@pytest.fixture(scope="module")
def real(lenet_run) -> dict:
    """A real checkpoint (LeNet, one epoch of 32 images) as ``torch.load`` gives it."""
    return torch.load(lenet_run[1], weights_only=True)


# --- checkpoints: every key missing, of a wrong type, or null --------------------------------------

# the mappings whose keys are varied too
NESTED = ("recipe", "normalize", "progress", "metrics", "data", "versions")
# What each command reads (convcalc.train.check_checkpoint); a missing OPTIONAL key takes a default.
EVALUATE_READS = {"format", "format_version", "spec", "state_dict", "recipe", "recipe.dataset",
                  "recipe.val_fraction", "recipe.resize", "recipe.augment", "normalize", "normalize.mean",
                  "normalize.std", "data", "data.classes", "data.data_dir", "scaler"}  # fmt: skip
OPTIONAL = {"recipe.val_fraction", "recipe.resize", "recipe.augment", "data", "data.classes",
            "data.data_dir", "scaler"}  # fmt: skip
NULLABLE = {"recipe.limit"}


def key_paths(checkpoint: dict) -> list[str]:
    paths = []
    for key, value in checkpoint.items():
        paths.append(key)
        if key in NESTED:
            paths += [f"{key}.{inner}" for inner in value]
    return paths


def resume_reads(checkpoint: dict) -> set[str]:
    every = set(key_paths(checkpoint))
    return EVALUATE_READS | {p for p in every if p.split(".")[0] in ("recipe", "progress")} | {
        "optimizer", "scheduler", "rng", "progress", "metrics", "metrics.epochs"}  # fmt: skip


def changed(checkpoint: dict, path: str, kind: str) -> dict:
    """A deep copy with the key at ``path`` deleted, set to None, or set to a value of another
    type ("3" for anything that is not a string, 3 for a string)."""
    copied = copy.deepcopy(checkpoint)
    *outer, last = path.split(".")
    record = copied
    for key in outer:
        record = record[key]
    if kind == "missing":
        del record[last]
    elif kind == "null":
        record[last] = None
    else:
        record[last] = 3 if isinstance(record[last], str) else "3"
    return copied


# The names of the variants (the checkpoint's real keys are listed once the fixture ran: here,
# the keys `convcalc train` writes today; test_every_key_is_a_variant checks the two agree).
RECIPE = ("dataset", "epochs", "batch_size", "lr", "optimizer", "schedule", "seed", "limit", "val_fraction",
          "resize", "augment")  # fmt: skip
PROGRESS = ("epochs_done", "batch", "loss_sum", "seen", "epoch_seconds")
WRITTEN = ["format", "format_version", "spec", "state_dict", "recipe", *(f"recipe.{k}" for k in RECIPE),
           "normalize", "normalize.mean", "normalize.std", "optimizer", "scheduler", "rng", "progress",
           *(f"progress.{k}" for k in PROGRESS), "complete", "metrics", "metrics.epochs",
           "metrics.test_accuracy", "metrics.test_loss", "versions", "versions.convcalc", "versions.torch",
           "versions.python", "scaler", "data", "data.classes",
           "data.data_dir"]  # fmt: skip
VARIANTS = [(path, kind) for path in WRITTEN for kind in ("missing", "wrong", "null")]


def test_every_key_is_a_variant(real):
    assert sorted(key_paths(real)) == sorted(WRITTEN)
    assert len(VARIANTS) >= 121


def expected_words(path: str) -> str:
    if path == "format":
        return "not a convcalc checkpoint"
    if path == "format_version":
        return "checkpoint format version"
    return f"checkpoint field '{path}'"


def run_on(command: str, checkpoint_path: Path, digits: Path) -> tuple[int, str]:
    common = ["--data-dir", str(digits), "--no-download"]
    args = (["evaluate", str(checkpoint_path), *common] if command == "evaluate"
            else ["train", str(LENET), "--resume", str(checkpoint_path), *common])  # fmt: skip
    return run_captured(args)


@pytest.mark.slow
@pytest.mark.parametrize("command", ["evaluate", "resume"])
@pytest.mark.parametrize(("path", "kind"), VARIANTS, ids=[f"{p}-{k}" for p, k in VARIANTS])
def test_a_broken_key_is_named_by_evaluate_and_resume(real, digits, tmp_path, command, path, kind):
    """A key the command reads, broken: one line naming it and the fix, exit 1. A key it does
    not read: it runs (exit 0) or refuses with a message; never a traceback (run_captured)."""
    file = tmp_path / "changed.pt"
    torch.save(changed(real, path, kind), file)
    code, text = run_on(command, file, digits)
    reads = EVALUATE_READS if command == "evaluate" else resume_reads(real)
    broken = (
        path in reads
        and not (kind == "missing" and path in OPTIONAL)
        and not (kind == "null" and path in NULLABLE)
    )
    if broken:
        lines = text.strip().splitlines()
        assert code == 1 and len(lines) == 1 and expected_words(path) in lines[0], text
        assert "fix:" in lines[0], text
    else:
        assert code in (0, 1), text


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda c: c["recipe"].update(width=3), "checkpoint field 'recipe.width' is not a recipe field"),
        (lambda c: c["recipe"].update(epochs="3"), "checkpoint field 'recipe.epochs' is str, not an integer"),
        (lambda c: c["progress"].update(epochs_done=-5), "checkpoint field 'progress.epochs_done' is -5"),
        (lambda c: c["state_dict"].update({"c1.weight": [1.0]}), "checkpoint field 'state_dict' holds more"),
        (lambda c: c["data"].update(data_dir=7), "checkpoint field 'data.data_dir' is int, not a string"),
        (lambda c: c.update(scaler=[1]), "checkpoint field 'scaler' is list, not a mapping"),
    ],
    ids=[
        "recipe-extra-key",
        "recipe-epochs-text",
        "epochs-done-negative",
        "state-dict-list",
        "data-dir-int",
        "scaler-list",
    ],  # fmt: skip
)
def test_the_issues_checkpoints_are_named(real, digits, tmp_path, change, words):
    checkpoint = copy.deepcopy(real)
    change(checkpoint)
    torch.save(checkpoint, tmp_path / "changed.pt")
    code, text = run_on("resume", tmp_path / "changed.pt", digits)
    assert code == 1 and words in text and "fix:" in text, text


@pytest.mark.parametrize(
    ("content", "what"),
    [(b"hello\n", "a text file"), ("épochs: 3\n".encode(), "a text file"), (b"", "an empty file"),
     (b"\x00\x01\xfe\xff" * 10, "not a file torch writes")],
    ids=["text", "utf8-text", "empty", "binary"],
)  # fmt: skip
@pytest.mark.parametrize("command", ["evaluate", "resume", "plot", "rf"])
def test_a_file_that_is_no_checkpoint_says_what_it_is(digits, tmp_path, content, what, command):
    file = tmp_path / "notes.pt"
    file.write_bytes(content)
    if command in ("evaluate", "resume"):
        code, text = run_on(command, file, digits)
    elif command == "plot":
        code, text = run_captured(["plot", str(file), "-o", str(tmp_path / "curves.svg")])
    else:
        args = ["rf", str(LENET), "--layer", "c3", "--checkpoint", str(file), "-o", str(tmp_path / "f.svg")]
        code, text = run_captured(args)
    assert code == 1 and f"{file}: not a convcalc checkpoint ({what}); fix:" in text, text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.pt"]


# --- output paths: refused before the work ---------------------------------------------------------

NAME_256 = "n" * 253 + ".py"  # one past the 255 bytes a file name may have on Linux file systems
WRITERS = {
    # the input of each does not exist: a message about the output proves it came first
    "export": ["export", "missing.yaml", "-o"],
    "import": ["import", "missing_module:Net", "-o"],
    "draw": ["draw", "missing.yaml", "-o"],
    "memory": ["memory", "missing.yaml", "--budget", "1GiB", "-o"],
    "plot": ["plot", "missing.pt", "-o"],
    "rf": ["rf", "missing.yaml", "--layer", "c3", "-o"],
    "train": ["train", str(LENET), "--data-dir", "missing", "--no-download", "--out"],
    "train-plot": ["train", str(LENET), "--data-dir", "missing", "--no-download", "--plot"],
}
SUFFIXES = {"export": ".py", "import": ".yaml", "draw": ".svg", "memory": ".png", "plot": ".svg",
            "rf": ".svg", "train": ".pt", "train-plot": ".svg"}  # fmt: skip
BAD_PATHS = {
    "folder": ("{tmp}/folder{suffix}", "is a folder; fix: give"),
    "under-a-file": ("{tmp}/file/x{suffix}", "{tmp}/file is a file, not a folder; fix:"),
    "sys": ("/sys/x{suffix}", "cannot write"),
    "long-name": ("{tmp}/" + "n" * 260 + "{suffix}", "(File name too long); fix: choose a shorter path"),
}


@pytest.mark.parametrize("where", BAD_PATHS)
@pytest.mark.parametrize("command", WRITERS)
def test_an_output_that_cannot_be_written_is_refused_before_the_work(tmp_path, monkeypatch, command, where):
    monkeypatch.chdir(tmp_path)
    (tmp_path / f"folder{SUFFIXES[command]}").mkdir()
    (tmp_path / "file").write_text("a regular file")
    before = sorted(p.name for p in tmp_path.iterdir())
    path, words = (text.format(tmp=tmp_path, suffix=SUFFIXES[command]) for text in BAD_PATHS[where])
    code, text = run_captured([*WRITERS[command], path])
    assert code == 1 and words in text and "missing" not in text, text
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no probe or temporary file left


@pytest.mark.parametrize("length", [253, 255])
def test_export_writes_a_name_as_long_as_the_file_system_takes(tmp_path, length):
    target = tmp_path / ("m" * (length - 3) + ".py")
    code, text = run_captured(["export", str(LENET), "-o", str(target)])
    assert code == 0, text
    compile(target.read_text(encoding="utf-8"), "model.py", "exec")
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # the temporary file was renamed


def test_train_saves_to_a_254_character_name(digits, tmp_path):
    """The issue's traceback at the first save: the temporary name was 14 characters longer."""
    out = tmp_path / ("r" * 251 + ".pt")
    code, text = run_captured(
        ["train", str(LENET), "--data-dir", str(digits), "--epochs", "1", "--out", str(out)]
    )
    assert code == 0, text
    assert load_checkpoint(out)["complete"] and [p.name for p in tmp_path.iterdir()] == [out.name]


def test_export_to_a_name_one_too_long_is_a_message(tmp_path):
    code, text = run_captured(["export", str(LENET), "-o", str(tmp_path / NAME_256)])
    assert code == 1 and "(File name too long); fix: choose a shorter path" in text, text
    assert list(tmp_path.iterdir()) == []


def test_tui_with_a_name_too_long_is_a_message(tmp_path):
    code, text = run_captured(["tui", str(tmp_path / ("t" * 256 + ".yaml"))])
    assert code == 1 and "File name too long" in text and "fix:" in text, text


# --- empty data ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def empty_idx(tmp_path_factory):
    none = (torch.zeros(0, 28, 28, dtype=torch.uint8), torch.zeros(0, dtype=torch.uint8))
    return data.write_dataset(tmp_path_factory.mktemp("empty"), none, none)


def test_training_on_idx_files_of_zero_images_is_a_message(empty_idx, tmp_path):
    args = [
        "train",
        str(LENET),
        "--data-dir",
        str(empty_idx),
        "--no-download",
        "--out",
        str(tmp_path / "r.pt"),
    ]
    code, text = run_captured(args)
    assert code == 1 and "the training set has 0 images; give files with at least one image" in text, text
    assert list(tmp_path.iterdir()) == []


def test_evaluating_on_zero_test_images_is_a_message(real, empty_idx, tmp_path):
    torch.save(real, tmp_path / "run.pt")
    code, text = run_captured(["evaluate", str(tmp_path / "run.pt"), "--data-dir", str(empty_idx)])
    assert code == 1 and "the test set has 0 images" in text, text


@pytest.mark.parametrize("layout", ["no-class-folders", "empty-class-folders"])
def test_training_on_an_image_folder_without_images_is_a_message(tmp_path, layout):
    images = tmp_path / "images"
    images.mkdir()
    if layout == "empty-class-folders":
        (images / "cat").mkdir()
        (images / "dog").mkdir()
    args = [
        "train",
        str(LENET),
        "--dataset",
        "folder",
        "--data-dir",
        str(images),
        "--out",
        str(tmp_path / "r.pt"),
    ]
    code, text = run_captured(args)
    assert code == 1 and str(images) in text and ("no class folders" in text or "has no images" in text), text
    assert not (tmp_path / "r.pt").exists()


# --- train checks before torch loads -----------------------------------------------------------------


def imported_modules(stderr: str) -> set[str]:
    """The modules ``python -X importtime`` listed (one line each: ``import time: self | cum | name``)."""
    return {m.group(1) for m in re.finditer(r"^import time:.*\|\s*([\w.]+)\s*$", stderr, re.MULTILINE)}


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--data-dir", "{tmp}/none", "--no-download"], "(mnist) not found: missing train-images"),
        (["--dataset", "cifar10", "--data-dir", "{tmp}/none"], "takes 1×28×28 input, but cifar10 images"),
        (["--out", "{tmp}"], "is a folder; fix: give a checkpoint file"),
        (["--out", "/sys/run.pt"], "cannot write a checkpoint there"),
        (["--dataset", "folder", "--data-dir", "{tmp}/none"], "no such folder"),
    ],
    ids=["data-missing", "input-does-not-fit", "out-folder", "out-unwritable", "folder-missing"],
)
def test_train_refuses_before_it_imports_torch(tmp_path, args, words):
    command = [sys.executable, "-X", "importtime", "-m", "convcalc", "train", str(LENET),
               *(a.format(tmp=tmp_path) for a in args)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    modules = imported_modules(result.stderr)
    assert result.returncode == 1 and words in result.stderr and "Traceback" not in result.stderr
    assert "convcalc.spec" in modules and "torch" not in modules  # the listing is real, and has no torch


def test_an_unfit_spec_names_its_layer_before_torch(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text(
        "name: bad\ninput: [1, 28, 28]\nlayers:\n  - {type: Conv2d, out_channels: 4, kernel_size: 40}\n"
    )
    command = [sys.executable, "-X", "importtime", "-m", "convcalc", "train", str(spec), "--no-download"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "kernel" in result.stderr and "torch" not in imported_modules(result.stderr)


# --- Ctrl-C at any moment ----------------------------------------------------------------------------


class Run:
    """``convcalc train`` in a process of its own: stdout a pipe (a few lines), stderr a file
    (``-X importtime`` writes a line per module, more than a pipe holds)."""

    def __init__(self, folder: Path, out: Path, *extra: str, importtime: bool = False):
        self.out, self.errors = out, out.with_name("stderr.txt")
        flags = ["-X", "importtime"] if importtime else []
        command = [sys.executable, *flags, "-m", "convcalc", "train", str(LENET), "--data-dir", str(folder),
                   "--no-download", "--threads", "1", "--batch-size", "8", "--out", str(out),
                   *extra]  # fmt: skip
        env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "120"}
        with self.errors.open("w") as errors:
            self.process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=errors, text=True, cwd=ROOT, env=env
            )
        self.seen: list[str] = []

    def wait_for_stdout(self, words: str) -> None:
        for line in self.process.stdout:
            self.seen.append(line)
            if words in line:
                return  # else the process ended first: the caller's assertions say so

    def wait_for_stderr(self, words: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while words not in self.errors.read_text() and self.process.poll() is None:
            assert time.monotonic() < deadline, f"no {words!r} on stderr"
            time.sleep(0.01)

    def interrupt(self) -> None:
        self.process.send_signal(signal.SIGINT)

    def assert_interrupted(self, lines: int = 1) -> str:
        """Exit 1, a one-line message (``lines``: one per interrupt) saying it was interrupted,
        no traceback, and any checkpoint left loads (whole); the message."""
        self.process.wait(timeout=300)
        stderr = self.errors.read_text()
        text = "".join(self.seen) + self.process.stdout.read() + stderr
        assert self.process.returncode == 1, (self.process.returncode, text)
        assert "Traceback" not in text and "more than once" not in text and "c10::Error" not in text, text
        messages = [line for line in stderr.strip().splitlines() if not line.startswith("import time:")]
        assert 1 <= len(messages) <= lines and all("interrupted" in m for m in messages), text
        if self.out.exists():
            load_checkpoint(self.out, resume=True)
        left = [p.name for p in self.out.parent.iterdir() if p.name.startswith(".")]
        assert not left, f"a temporary file was left: {left}"
        return "\n".join(messages)


def test_an_interrupt_waits_for_the_file_being_written_and_removes_a_download_part(tmp_path):
    """A Ctrl-C while ``write_atomically`` writes: the file is finished and renamed, then the
    process ends (exit 1, the message); a registered temporary file (a download's) is deleted."""
    script = f"""
import os, signal
from convcalc import interrupts
from convcalc.files import write_atomically
interrupts.install()
part = {str(tmp_path / ".download.part")!r}
open(part, "w").close()
interrupts.remove_if_interrupted(part)
def writer(file):
    file.write(b"who")
    os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C with the file half written
    file.write(b"le")
write_atomically({str(tmp_path / "out.txt")!r}, writer)
print("went on")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and result.stderr.startswith("error: interrupted"), result.stderr
    assert "went on" not in result.stdout
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"] and (
        tmp_path / "out.txt"
    ).read_text() == "whole"


def test_a_ctrl_c_once_the_command_is_over_is_ignored_not_death_by_signal():
    """Python's finalization resets a Python-level SIGINT handler to the system's default, so a
    Ctrl-C in the last milliseconds (the second one of a stopped training) killed the process
    (exit 130); once the command is over, SIGINT is ignored and the exit code stays the command's."""
    script = f"""
import os, signal, sys
sys.argv = ["convcalc", "shape", {str(LENET)!r}]
from convcalc.__main__ import run
try:
    run()
except SystemExit as done:
    code = done.code
os.kill(os.getpid(), signal.SIGINT)
print("ignored" if signal.getsignal(signal.SIGINT) is signal.SIG_IGN else "handled", code)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.splitlines()[-1] == "ignored 0", result


# seconds after the handler went in: amid the imports of click, rich, pydantic, torch
STARTUP_DELAYS = (0.0, 0.5, 1.5)


@pytest.mark.slow
def test_ctrl_c_at_any_moment_exits_1_with_a_message(digits, tmp_path):
    """Several runs at once (their imports take most of the time): interrupted during start-up at
    several delays, during training (once; twice), and after the last epoch while ``--plot``
    draws. Start-up delays count from the import of ``convcalc.interrupts`` (``-X importtime``
    says when): before it, Python is still importing ``site``, and a Ctrl-C there is Python's."""
    runs = {}
    for delay in STARTUP_DELAYS:
        (tmp_path / f"start-{delay}").mkdir()
        runs[delay] = Run(digits, tmp_path / f"start-{delay}" / "run.pt", "--epochs", "300", importtime=True)
    for name in ("during", "twice", "after"):
        (tmp_path / name).mkdir()
        extra = ("--epochs", "1", "--plot", str(tmp_path / name / "curves.png")) if name == "after" else ()
        runs[name] = Run(digits, tmp_path / name / "run.pt", *(extra or ("--epochs", "300")))

    def interrupt(key) -> None:  # each run in a thread of its own: its signal comes when it is due
        run = runs[key]
        if key in STARTUP_DELAYS:
            run.wait_for_stderr("| convcalc.interrupts\n")  # the handler goes in right after
            time.sleep(key)
        else:
            run.wait_for_stdout("epoch 1/")
        run.interrupt()
        if key == "twice":
            time.sleep(0.05)
            run.interrupt()

    with ThreadPoolExecutor(len(runs)) as pool:
        list(pool.map(interrupt, runs))
    messages = {key: run.assert_interrupted(lines=2 if key == "twice" else 1) for key, run in runs.items()}
    assert "stopped after the current batch; checkpoint saved to" in messages["during"]
    assert load_checkpoint(runs["during"].out, resume=True)["progress"]["epochs_done"] >= 1
    assert "training had ended" in messages["after"] or "after the last epoch" in messages["after"]
    assert load_checkpoint(runs["after"].out)["complete"] is True
