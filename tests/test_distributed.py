"""More than one process (convcalc.distributed): the gradient arithmetic of a shared batch, and
real two-process runs through `convcalc train --nproc 2` (torchrun's elastic agent, gloo on
127.0.0.1 at a free port) on the generated squares of tests/test_train.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from convcalc import data, distributed
from convcalc.spec import load_spec
from convcalc.train import TrainConfig, evaluate_checkpoint, load_checkpoint, train
from tests.conftest import ROOT, SPECS
from tests.test_train import squares

LENET = SPECS / "lenet.yaml"
ENV = {**os.environ, "COLUMNS": "120", "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"}


@settings(max_examples=40, deadline=None)
@given(total=st.integers(1, 40), size=st.integers(1, 5))
def test_shards_cover_the_batch_once_and_their_gradients_average_to_the_batch_gradient(total, size):
    """DDP averages the N processes' gradients; with ``shard``'s factors that average is the
    gradient of the whole batch's mean loss, whatever the batch and the number of processes."""
    torch.manual_seed(total * 10 + size)
    model = torch.nn.Linear(5, 3)
    x, y = torch.randn(total, 5), torch.randint(0, 3, (total,))
    whole = torch.autograd.grad(F.cross_entropy(model(x), y), model.weight)[0]
    averaged, covered = torch.zeros_like(whole), []
    for rank in range(size):
        positions, weight = distributed.shard(total, distributed.World(rank, size))
        loss = F.cross_entropy(model(x[positions]), y[positions]) * weight
        averaged += torch.autograd.grad(loss, model.weight)[0] / size  # DDP's all-reduce mean
        covered += positions.tolist() if weight > 0 else []
    assert sorted(covered) == list(range(total))
    torch.testing.assert_close(averaged, whole, rtol=1e-5, atol=1e-6)


def test_without_nproc_keeps_the_rest_of_the_command_line():
    from convcalc.cli import _without_nproc

    assert _without_nproc(["train", "s.yaml", "--nproc", "2", "--epochs", "3", "--nproc=4", "--json"]) == [
        "train", "s.yaml", "--epochs", "3", "--json",
    ]  # fmt: skip


def test_launch_puts_the_signal_handlers_back(capfd):
    """torchrun's agent leaves handlers that raise its SignalException: a Ctrl-C after a
    ``--nproc`` run would be a traceback instead of convcalc's one line."""

    def ours(number, frame):  # stands for convcalc.interrupts' handler
        pass

    before = {number: signal.signal(number, ours) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        assert distributed.launch(1, ["--version"]) == 0
        assert "convcalc, version" in capfd.readouterr().out
        assert signal.getsignal(signal.SIGINT) is ours and signal.getsignal(signal.SIGTERM) is ours
    finally:
        for number, handler in before.items():
            signal.signal(number, handler)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    rng = np.random.default_rng(0)
    return data.write_dataset(tmp_path_factory.mktemp("squares"), squares(640, rng), squares(200, rng))


def command(folder, out, epochs, *extra) -> list[str]:
    return [
        sys.executable, "-m", "convcalc", "train", str(LENET), "--data-dir", str(folder), "--epochs",
        str(epochs), "--batch-size", "32", "--schedule", "constant", "--lr", "3e-3", "--threads", "1",
        "--out", str(out), "--nproc", "2", *extra,
    ]  # fmt: skip


@pytest.mark.slow
def test_two_processes_learn_as_one_then_stop_on_ctrl_c_and_resume_in_one(folder, tmp_path, one_torch_thread):
    """Two processes: the accuracy band of one, the same numbers for the same seed, one
    loadable checkpoint; Ctrl-C to the launcher leaves a whole checkpoint that one process
    resumes (the position is counted in global batches, the same at any number of processes)."""
    network = load_spec(LENET)
    base = dict(data_dir=str(folder), batch_size=32, schedule="constant", lr=3e-3, download=False)
    alone = train(network, TrainConfig(**base, epochs=2, out=str(tmp_path / "one.pt")))

    run = subprocess.run(
        command(folder, tmp_path / "two.pt", 2, "--json"),
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert (
        report["test_accuracy"] >= 0.95
        and abs(report["test_accuracy"] - alone.epochs[1].test_accuracy) <= 0.03
    )
    # the global batch is the batch of one process: the losses agree up to the order of float sums
    assert report["epochs"][0]["train_loss"] == pytest.approx(alone.epochs[0].train_loss, rel=1e-3)
    assert [line for line in run.stdout.splitlines() if line.startswith("{")] == [run.stdout.splitlines()[-1]]
    assert run.stderr.count("epoch 2/2") == 1  # rank 0 reports, rank 1 is silent
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.pt", "two.pt"]  # no .part, no second file
    checkpoint = torch.load(tmp_path / "two.pt", weights_only=True)
    assert checkpoint["complete"] and checkpoint["metrics"]["test_accuracy"] == report["test_accuracy"]
    evaluated = evaluate_checkpoint(tmp_path / "two.pt", data_dir=str(folder), download=False)
    assert evaluated.test_accuracy == report["test_accuracy"]

    process = subprocess.Popen(
        command(folder, tmp_path / "stopped.pt", 8), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=ENV, cwd=ROOT,
    )  # fmt: skip
    try:
        first = process.stdout.readline()
        assert first.startswith("epoch 1/8"), first + process.stderr.read()
        process.send_signal(signal.SIGINT)  # the agent forwards it to both processes
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 1 and "interrupted" in err and "Traceback" not in err, err
    stopped = load_checkpoint(tmp_path / "stopped.pt", resume=True)
    assert not stopped["complete"] and 1 <= stopped["progress"]["epochs_done"] < 8
    # same seed, same number of processes: epoch 1 is the very same as the first run's
    assert stopped["metrics"]["epochs"][0]["train_loss"] == report["epochs"][0]["train_loss"]
    assert stopped["metrics"]["epochs"][0]["test_loss"] == report["epochs"][0]["test_loss"]
    assert not list(tmp_path.glob(".*.part"))

    done = stopped["progress"]["epochs_done"]
    resumed = train(
        network, TrainConfig(data_dir=str(folder), resume=str(tmp_path / "stopped.pt"), download=False)
    )
    assert [m.epoch for m in resumed.epochs] == list(range(1, 9)) and not resumed.cancelled
    assert resumed.epochs[done - 1].train_loss == stopped["metrics"]["epochs"][done - 1]["train_loss"]
    assert resumed.test_accuracy >= 0.95
