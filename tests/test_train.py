"""The training loop, checkpoints, evaluation, resume and cancel (convcalc.train), and the
`convcalc train` / `convcalc evaluate` / `convcalc data info` commands.

Data: a small generated, learnable set written as IDX files: each class is a bright 7×7 square
at its own place on a 28×28 canvas, with noise.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from convcalc import data
from convcalc.build import BuildError
from convcalc.spec import load_spec, network_from_data, parse_spec, spec_to_data
from convcalc.train import (
    EpochMetrics,
    TrainCallbacks,
    TrainConfig,
    TrainError,
    TrainResult,
    evaluate_checkpoint,
    load_checkpoint,
    train,
)
from tests.conftest import ROOT, SPECS, run_cli

LENET = SPECS / "lenet.yaml"
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def squares(n: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    labels = rng.integers(0, 10, size=n)
    images = rng.integers(0, 60, size=(n, 28, 28)).astype(np.uint8)
    for i, label in enumerate(labels):
        row, col = 2 + 9 * (label // 4), 2 + 8 * (label % 4)  # 10 places on a 3×4 grid
        images[i, row : row + 7, col : col + 7] = 200 + rng.integers(0, 55)
    return torch.from_numpy(images), torch.from_numpy(labels.astype(np.uint8))


def one_epoch_lenet(tmp_path_factory, n_train: int) -> tuple[Path, Path]:
    """(data folder, checkpoint): ``n_train`` generated squares (16 test images) and a real
    checkpoint of LeNet after one epoch of them in batches of 16, for the checkpoint tests."""
    rng = np.random.default_rng(0)
    folder = data.write_dataset(tmp_path_factory.mktemp("digits"), squares(n_train, rng), squares(16, rng))
    out = tmp_path_factory.mktemp("run") / "lenet.pt"
    torch.set_num_threads(1)
    train(load_spec(SPECS / "lenet.yaml"), TrainConfig(data_dir=str(folder), epochs=1, batch_size=16,
                                                      out=str(out), download=False))  # fmt: skip
    return folder, out


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    rng = np.random.default_rng(0)
    return data.write_dataset(tmp_path_factory.mktemp("squares"), squares(640, rng), squares(200, rng))


@pytest.fixture
def network():
    return load_spec(LENET)


def config(folder, tmp_path, **kw) -> TrainConfig:
    base = dict(data_dir=str(folder), epochs=2, batch_size=32, out=str(tmp_path / "run.pt"), download=False)
    return TrainConfig(**{**base, **kw})


def test_learns_the_generated_set_and_reports_through_callbacks(folder, tmp_path, network):
    calls = {"start": [], "batch": [], "epoch": []}
    callbacks = TrainCallbacks(
        on_start=lambda *a: calls["start"].append(a),
        on_batch=lambda *a: calls["batch"].append(a),
        on_epoch=lambda m: calls["epoch"].append(m),
    )
    result = train(network, config(folder, tmp_path), callbacks)
    assert isinstance(result, TrainResult) and not result.cancelled
    assert result.test_accuracy >= 0.95, result.epochs
    assert calls["start"] == [(2, 20)]  # 640 images / 32 per batch
    assert [(e, i) for e, i, _ in calls["batch"]] == [(e, i) for e in (1, 2) for i in range(20)]
    assert calls["epoch"] == result.epochs and [m.epoch for m in result.epochs] == [1, 2]
    assert all(
        isinstance(m, EpochMetrics) and m.images_per_second > 0 and m.seconds > 0 for m in result.epochs
    )
    # the epoch's train loss is the image-weighted mean of its batch losses (all batches full here)
    first = [loss for e, _, loss in calls["batch"] if e == 1]
    assert result.epochs[0].train_loss == pytest.approx(sum(first) / len(first))
    assert result.epochs[1].train_loss < result.epochs[0].train_loss
    assert result.checkpoint == str(tmp_path / "run.pt")


def test_checkpoint_loads_with_weights_only_and_evaluate_reproduces(folder, tmp_path, network):
    result = train(network, config(folder, tmp_path, epochs=1))
    checkpoint = torch.load(result.checkpoint, weights_only=True)
    assert checkpoint["spec"] == spec_to_data(network)
    assert network_from_data(checkpoint["spec"]) == network
    assert checkpoint["complete"] is True
    assert checkpoint["metrics"]["test_accuracy"] == result.test_accuracy
    assert checkpoint["metrics"]["epochs"] == [vars(m) for m in result.epochs]
    assert set(checkpoint["versions"]) == {"convcalc", "torch", "python"}
    assert checkpoint["state_dict"]["c1.weight"].shape == (6, 1, 5, 5)
    evaluated = evaluate_checkpoint(result.checkpoint, data_dir=str(folder), download=False)
    assert evaluated.test_accuracy == result.test_accuracy
    assert evaluated.test_loss == pytest.approx(result.test_loss, rel=1e-6)
    assert evaluated.images == 200 and evaluated.dataset == "mnist"
    assert [p.name for p in tmp_path.iterdir()] == ["run.pt"]  # no temporary file left


def test_same_seed_same_losses_other_seed_other_losses(folder, tmp_path, network):
    def losses(seed):
        result = train(network, config(folder, tmp_path, seed=seed, limit=320))
        return [(m.train_loss, m.test_loss) for m in result.epochs]

    assert losses(3) == losses(3)
    assert losses(3) != losses(4)


def test_cancel_then_resume_equals_an_uninterrupted_run(folder, tmp_path, network):
    straight = train(network, config(folder, tmp_path, out=str(tmp_path / "straight.pt")))
    cancel = threading.Event()

    def on_batch(epoch, index, loss):
        if (epoch, index) == (1, 6):
            cancel.set()  # honoured after this batch

    seen = []
    stopped = train(network, config(folder, tmp_path), TrainCallbacks(on_batch=on_batch), cancel)
    assert stopped.cancelled and stopped.epochs == [] and math.isnan(stopped.test_accuracy)
    checkpoint = load_checkpoint(stopped.checkpoint)
    assert checkpoint["progress"]["epochs_done"] == 0 and checkpoint["progress"]["batch"] == 7
    assert checkpoint["complete"] is False
    resumed = train(
        network,
        TrainConfig(data_dir=str(folder), resume=stopped.checkpoint, download=False),
        TrainCallbacks(on_batch=lambda *a: seen.append(a[:2])),
    )
    assert not resumed.cancelled and resumed.checkpoint == stopped.checkpoint
    assert seen[0] == (1, 7) and len(seen) == 2 * 20 - 7
    assert [(m.train_loss, m.test_loss, m.test_accuracy) for m in resumed.epochs] == [
        (m.train_loss, m.test_loss, m.test_accuracy) for m in straight.epochs
    ]


def test_cancel_after_an_epoch_and_resume_keeps_history(folder, tmp_path, network):
    cancel = threading.Event()
    first = train(
        network, config(folder, tmp_path, epochs=3), TrainCallbacks(on_epoch=lambda m: cancel.set()), cancel
    )
    assert first.cancelled and [m.epoch for m in first.epochs] == [1]
    assert first.test_accuracy == first.epochs[0].test_accuracy
    resumed = train(
        network, TrainConfig(data_dir=str(folder), resume=first.checkpoint, epochs=99, download=False)
    )
    assert [m.epoch for m in resumed.epochs] == [1, 2, 3]  # the checkpoint's recipe (3 epochs) wins
    assert resumed.epochs[0] == first.epochs[0]


def test_resume_with_another_spec_is_refused(folder, tmp_path, network):
    result = train(network, config(folder, tmp_path, epochs=1, limit=64))
    changed = spec_to_data(network)
    changed["layers"][7]["out_features"] = 100  # f5
    with pytest.raises(TrainError, match="other layers or input"):
        train(
            network_from_data(changed),
            TrainConfig(data_dir=str(folder), resume=result.checkpoint, download=False),
        )
    renamed = network.model_copy(update={"name": "renamed"})  # same layers: resumable
    resumed = train(renamed, TrainConfig(data_dir=str(folder), resume=result.checkpoint, download=False))
    assert resumed.epochs == result.epochs


def test_spec_must_fit_the_dataset_before_any_data_is_read(tmp_path, network):
    nowhere = str(tmp_path / "no-data-here")
    wrong_input = network.model_copy(update={"input": (3, 32, 32)})
    with pytest.raises(
        TrainError, match=r"takes 3×32×32 input, but mnist images are 1×28×28.*input: \[1, 28, 28\]"
    ):
        train(wrong_input, TrainConfig(data_dir=nowhere, download=False))
    data_ = spec_to_data(network)
    data_["layers"][-1]["out_features"] = 7
    with pytest.raises(TrainError, match="ends in 7, but a mnist classifier must end in 10 class scores"):
        train(network_from_data(data_), TrainConfig(data_dir=nowhere, download=False))
    data_["layers"][-1]["out_features"] = 10
    data_["layers"][0]["kernel_size"] = 40  # larger than the 28×28 input
    with pytest.raises(BuildError):
        train(network_from_data(data_), TrainConfig(data_dir=nowhere, download=False))


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("epochs", 0, "epochs must be at least 1"),
        ("batch_size", 0, "batch size must be at least 1"),
        ("lr", -1.0, "learning rate must be a positive"),
        ("optimizer", "rmsprop", "choose one of adam, adamw, sgd"),
        ("schedule", "step", "choose one of onecycle, cosine, constant"),
        ("dataset", "imagenet", "unknown dataset 'imagenet'"),  # cifar10 is one since issue 15
        ("limit", 0, "limit must be at least 1"),
    ],
)
def test_bad_options(tmp_path, network, field, value, message):
    with pytest.raises(data.DataError if field == "dataset" else TrainError, match=message):
        train(network, TrainConfig(data_dir=str(tmp_path), download=False, **{field: value}))


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_other_optimizers_learn(folder, tmp_path, network, optimizer):
    lr = 0.05 if optimizer == "sgd" else 3e-3
    result = train(network, config(folder, tmp_path, optimizer=optimizer, lr=lr, epochs=2))
    assert result.test_accuracy > 0.9, result.epochs


@pytest.mark.parametrize("empty", ["training", "test"])
def test_an_empty_split_is_a_clear_error(tmp_path, network, empty):
    rng = np.random.default_rng(1)
    none = (torch.zeros((0, 28, 28), dtype=torch.uint8), torch.zeros((0,), dtype=torch.uint8))
    splits = (none, squares(20, rng)) if empty == "training" else (squares(20, rng), none)
    folder = data.write_dataset(tmp_path / "zero", *splits)
    with pytest.raises(TrainError, match=f"the {empty} set has 0 images"):
        train(network, config(folder, tmp_path))
    assert not (tmp_path / "run.pt").exists()


def test_missing_data_is_a_clear_error(tmp_path, network, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CONVCALC_DATA", raising=False)
    with pytest.raises(data.DataError, match="not found: missing train-images-idx3-ubyte"):
        train(network, TrainConfig(data_dir=str(tmp_path / "empty"), download=False))


def test_convcalc_data_env_names_a_parent_folder(folder, tmp_path, network, monkeypatch):
    (tmp_path / "parent").mkdir()
    (tmp_path / "parent" / "mnist").symlink_to(folder, target_is_directory=True)
    monkeypatch.setenv("CONVCALC_DATA", str(tmp_path / "parent"))
    result = train(network, TrainConfig(epochs=1, limit=64, out=str(tmp_path / "e.pt"), download=False))
    assert len(result.epochs) == 1


def test_bad_checkpoints(tmp_path):
    with pytest.raises(TrainError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "none.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(TrainError, match=r"not a convcalc checkpoint \(a text file\)"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"state_dict": {}}, tmp_path / "foreign.pt")
    with pytest.raises(TrainError, match="not a convcalc checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")


# --- the commands ------------------------------------------------------------------------------


def test_cli_train_json_then_evaluate(folder, tmp_path):
    ckpt = tmp_path / "cli.pt"
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
    result = run_cli("train", str(LENET), *args, "--out", str(ckpt), "--json", timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"test_accuracy", "test_loss", "epochs", "images_per_second", "seconds", "checkpoint"} <= set(
        report
    )
    assert report["checkpoint"] == str(ckpt) and 0.95 <= report["test_accuracy"] <= 1
    assert [e["epoch"] for e in report["epochs"]] == [1, 2]
    for epoch in report["epochs"]:
        assert {"epoch", "train_loss", "test_accuracy", "seconds", "images_per_second"} <= set(epoch)
    assert "epoch 2/2" in result.stderr  # human lines go to stderr with --json
    evaluated = run_cli("evaluate", str(ckpt), "--data-dir", str(folder), "--json", timeout=120)
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["test_accuracy"] == report["test_accuracy"]
    text = run_cli("evaluate", str(ckpt), "--data-dir", str(folder), timeout=120)
    assert (
        f"test accuracy {report['test_accuracy']:.2%}" in text.stdout
        and "200 mnist test images" in text.stdout
    )


def test_cli_train_human_output_and_resume_rules(folder, tmp_path):
    ckpt = tmp_path / "h.pt"
    args = ["--data-dir", str(folder), "--batch-size", "64", "--threads", "1", "--out", str(ckpt)]
    result = run_cli("train", str(LENET), *args, "--epochs", "1", timeout=300)
    assert result.returncode == 0, result.stderr
    assert "epoch 1/1  train loss" in result.stdout and f"checkpoint: {ckpt}" in result.stdout
    refused = run_cli("train", str(LENET), "--resume", str(ckpt), "--epochs", "3", timeout=120)
    assert refused.returncode == 1 and "--epochs cannot be combined with --resume" in refused.stderr
    done = run_cli(
        "train", str(LENET), "--data-dir", str(folder), "--resume", str(ckpt), "--json", timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert [e["epoch"] for e in json.loads(done.stdout.splitlines()[-1])["epochs"]] == [1]  # already complete


def test_cli_spec_unfit_for_mnist(tmp_path):
    spec = tmp_path / "rgb.yaml"
    spec.write_text(LENET.read_text().replace("input: [1, 28, 28]", "input: [3, 32, 32]"))
    result = run_cli("train", str(spec), "--data-dir", str(tmp_path), "--no-download", timeout=120)
    assert result.returncode == 1
    assert "takes 3×32×32 input, but mnist images are 1×28×28" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_missing_data(tmp_path):
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "CONVCALC_DATA": ""}
    result = run_cli("train", str(LENET), "--data-dir", str(tmp_path / "none"), "--no-download", env=env)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "missing train-images-idx3-ubyte" in result.stderr and str(tmp_path / "none") in result.stderr


def test_cli_evaluate_bad_checkpoint(tmp_path):
    (tmp_path / "x.pt").write_text("nope")
    result = run_cli("evaluate", str(tmp_path / "x.pt"), timeout=120)
    assert result.returncode == 1 and "not a convcalc checkpoint (a text file)" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_data_info(folder, tmp_path):
    result = run_cli("data", "info", "mnist", "--data-dir", str(folder), "--json", timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)["mnist"]
    assert report["folder"] == str(folder) and report["complete"]
    assert {f["status"] for f in report["files"]} == {"unverified"}  # generated, not the published files
    table = run_cli("data", "info", "--json", env={"CONVCALC_DATA": str(tmp_path)}, timeout=120)
    assert set(json.loads(table.stdout)) == set(data.DATASETS)
    refused = run_cli("data", "info", "--data-dir", str(folder))
    assert refused.returncode == 1 and "give the DATASET" in refused.stderr


def test_ctrl_c_saves_a_checkpoint_and_exits_1(folder, tmp_path):
    """SIGINT to a real `convcalc train`: it stops after the batch, saves, exits 1, no traceback."""
    ckpt = tmp_path / "sig.pt"
    env = {"COLUMNS": "120", "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"}
    args = [
        "--data-dir",
        str(folder),
        "--epochs",
        "200",
        "--batch-size",
        "16",
        "--threads",
        "1",
        "--out",
        str(ckpt),
    ]
    process = subprocess.Popen(
        [sys.executable, "-m", "convcalc", "train", str(LENET), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )
    try:
        first = process.stdout.readline()  # the first epoch line: training is under way
        assert first.startswith("epoch 1/200"), first + process.stderr.read()
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 1, err
    assert "interrupted" in err and "--resume" in err and "Traceback" not in err
    checkpoint = torch.load(ckpt, weights_only=True)
    assert checkpoint["complete"] is False and checkpoint["progress"]["epochs_done"] >= 1
    assert not list(tmp_path.glob(".*.part"))


def test_cli_help_shows_the_library_defaults():
    """The CLI leaves unset recipe options to TrainConfig; its help must quote the same defaults."""
    text = " ".join(run_cli("train", "--help").stdout.split())
    defaults = TrainConfig()
    for option, value in [
        ("epochs", defaults.epochs),
        ("batch_size", defaults.batch_size),
        ("lr", defaults.lr),
        ("optimizer", defaults.optimizer),
        ("schedule", defaults.schedule),
        ("seed", defaults.seed),
    ]:
        assert f"[default: {value}]" in text, option


def test_cancel_before_the_first_batch_replaces_no_checkpoint(folder, tmp_path, network):
    previous = tmp_path / "run.pt"
    previous.write_bytes(b"an earlier run's checkpoint")
    cancel = threading.Event()
    cancel.set()
    result = train(network, config(folder, tmp_path), cancel=cancel)
    assert result.cancelled and result.checkpoint is None and result.epochs == []
    assert previous.read_bytes() == b"an earlier run's checkpoint"


RESIDUAL = """name: tiny_resnet
input: [1, 28, 28]
blocks:
  Res:
    params: {c: null}
    layers:
      - {type: Conv2d, name: conv1, out_channels: $c, kernel_size: 3, padding: 1, bias: false}
      - {type: BatchNorm2d, name: bn1}
      - {type: ReLU, name: relu}
      - {type: Conv2d, name: conv2, out_channels: $c, kernel_size: 3, padding: 1}
      - {type: Add, name: add, inputs: [conv2, input]}
layers:
  - {type: Conv2d, name: stem, out_channels: 8, kernel_size: 3, stride: 2, padding: 1}
  - {type: Res, name: stage, c: 8, repeat: 2}
  - {type: MaxPool2d, name: pool, kernel_size: 2}
  - {type: Conv2d, name: side, out_channels: 8, kernel_size: 1, inputs: stem}
  - {type: MaxPool2d, name: side_pool, kernel_size: 2}
  - {type: Cat, name: both, inputs: [pool, side_pool]}
  - {type: Flatten, name: flatten}
  - {type: Linear, name: fc, out_features: 10}
"""


def test_a_graph_network_trains_checkpoints_and_evaluates(folder, tmp_path):
    """Blocks, repeat, a branch and Cat: the generated GraphModule learns and its checkpoint
    (nested module names) evaluates to the same accuracy."""
    network = parse_spec(RESIDUAL)
    result = train(network, config(folder, tmp_path, epochs=2))
    assert result.test_accuracy >= 0.9, result.epochs
    checkpoint = torch.load(result.checkpoint, weights_only=True)
    assert "stage.1.conv2.weight" in checkpoint["state_dict"]
    assert network_from_data(checkpoint["spec"]) == network
    evaluated = evaluate_checkpoint(result.checkpoint, data_dir=str(folder), download=False)
    assert evaluated.test_accuracy == result.test_accuracy


@pytest.mark.parametrize("name", ["../escape", "a/b\\c", "nul\x00here", "x" * 200, "..."])
def test_the_default_checkpoint_path_stays_in_runs(name):
    from convcalc.train import default_checkpoint_path

    network = (
        network_from_data({"name": name, "input": [1, 28, 28], "layers": []}) if "\x00" not in name else None
    )
    if network is None:  # a NUL cannot even be in a spec name that YAML reads; build it directly
        network = load_spec(LENET).model_copy(update={"name": name})
    path = default_checkpoint_path(network, "mnist")
    assert path.startswith("runs/") and "/" not in path[len("runs/") :] and "\x00" not in path
    assert len(path) < 130
