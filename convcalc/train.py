"""The training loop: a spec's model trained on an in-memory image data set, fast and repeatable.

The whole data set sits in memory as one normalised float tensor ``(N, 1, 28, 28)``; each epoch
takes batches by index from a permutation seeded by (seed, epoch), so there is no per-sample
``Dataset``/``DataLoader`` work. Adam with a one-cycle learning-rate schedule (``bench/README.md``
has the measurements behind the defaults). The loop never prints: it reports through
``TrainCallbacks`` and stops after the current batch once ``cancel`` is set, so the CLI and the
TUI run exactly this code.

A checkpoint (written atomically after every epoch and on cancel) is a plain dict that loads
with ``torch.load(path, weights_only=True)``: ``state_dict``, ``spec`` (``spec_to_data``), the
recipe, the optimiser and schedule states, the position in the run, the metrics and versions.
Resuming from it continues the run exactly where it stopped.
"""

from __future__ import annotations

import math
import os
import platform
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from convcalc import __version__, data
from convcalc.build import build_model
from convcalc.engine import analyze, fmt_shape
from convcalc.errors import ConvcalcError
from convcalc.spec import Network, network_from_data, spec_to_data

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("onecycle", "cosine", "constant")
DEVICES = ("auto", "cpu", "cuda", "mps")
CHECKPOINT_FORMAT = "convcalc-checkpoint"
CHECKPOINT_VERSION = 1
_EVAL_BATCH = 1000
# The recipe: what a checkpoint pins; a resumed run keeps the checkpoint's values of these.
_RECIPE_FIELDS = ("dataset", "epochs", "batch_size", "lr", "optimizer", "schedule", "seed", "limit")


class TrainError(ConvcalcError):
    """A training request that cannot run: bad option, spec unfit for the data set, bad checkpoint."""


@dataclass(frozen=True)
class TrainConfig:
    dataset: str = "mnist"  # a name in data.DATASETS
    data_dir: str | None = None  # the data set's folder; None: $CONVCALC_DATA/<dataset>, then the cache
    epochs: int = 8  # total epochs of the run (chosen by measurement, bench/README.md)
    batch_size: int = 128
    lr: float = 5e-3  # the peak learning rate of the schedule (one-cycle: reached after 25% of the steps)
    optimizer: str = "adam"  # adam | adamw | sgd (momentum 0.9, Nesterov)
    seed: int = 0  # initial weights, batch order and dropout
    device: str = "auto"  # auto (cuda, then mps, then cpu) | cpu | cuda | mps
    threads: int | None = None  # torch CPU threads (process-wide); None: torch's default
    limit: int | None = None  # train on the first N training images only
    out: str | None = None  # checkpoint path; None: runs/<spec name>-<dataset>.pt in the working folder
    resume: str | None = None  # continue this checkpoint's run (its recipe wins over the fields above)
    schedule: str = "onecycle"  # onecycle | cosine (from lr down) | constant
    download: bool = True  # fetch missing data files from the data set's mirrors


@dataclass(frozen=True)
class EpochMetrics:
    epoch: int  # 1-based
    train_loss: float  # mean cross-entropy over the epoch's training images
    test_loss: float
    test_accuracy: float  # 0 to 1
    seconds: float  # this epoch's wall time: training and evaluation
    images_per_second: float  # training images per second of training


@dataclass(frozen=True)
class TrainResult:
    test_accuracy: float  # after the last completed epoch (NaN when none completed)
    test_loss: float
    epochs: list[EpochMetrics]  # the whole run's, a resumed run's earlier epochs included
    images_per_second: float  # training images per second of training, in this call
    seconds: float  # wall time of this call, data loading included
    checkpoint: str | None  # None: cancelled before the first batch of a new run (nothing saved)
    cancelled: bool


@dataclass
class TrainCallbacks:
    """Every callback is optional and called from the training thread."""

    on_start: Callable[[int, int], None] | None = None  # (total_epochs, batches_per_epoch)
    on_batch: Callable[[int, int, float], None] | None = None  # (epoch 1-based, batch_index 0-based, loss)
    on_epoch: Callable[[EpochMetrics], None] | None = None
    on_download: data.Progress | None = None  # (file, bytes so far, total bytes or None)


@dataclass(frozen=True)
class EvalResult:
    dataset: str
    test_accuracy: float
    test_loss: float
    images: int
    checkpoint: str


# --------------------------------------------------------------------------------------------
# Checks


def check_network(network: Network, dataset: str) -> None:
    """Raise ``TrainError`` unless ``network`` takes the data set's images and ends in one score
    per class; ``BuildError`` when the spec has errors."""
    info = data.dataset_info(dataset)
    c, h, w = info.input_shape
    if tuple(network.input) != info.input_shape:
        raise TrainError(
            f"spec {network.name!r} takes {fmt_shape(tuple(network.input))} input, but {dataset} images are "
            f"{fmt_shape(info.input_shape)}; set `input: [{c}, {h}, {w}]` in the spec"
        )
    analysis = analyze(network)
    if analysis.ok and analysis.output_shape != (len(info.classes),):
        raise TrainError(
            f"spec {network.name!r} ends in {fmt_shape(analysis.output_shape)}, but a {dataset} classifier "
            f"must end in {len(info.classes)} class scores; end it with Flatten and "
            f"Linear(out_features={len(info.classes)})"
        )
    build_model(network, initialize=False)  # BuildError naming the layer when the spec is impossible


def _check_config(config: TrainConfig) -> None:
    data.dataset_info(config.dataset)
    problems = []
    if config.epochs < 1:
        problems.append(f"epochs must be at least 1 (got {config.epochs})")
    if config.batch_size < 1:
        problems.append(f"batch size must be at least 1 (got {config.batch_size})")
    if not config.lr > 0 or not math.isfinite(config.lr):
        problems.append(f"learning rate must be a positive number (got {config.lr})")
    if config.optimizer not in OPTIMIZERS:
        problems.append(f"optimizer {config.optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")
    if config.schedule not in SCHEDULES:
        problems.append(f"schedule {config.schedule!r}: choose one of {', '.join(SCHEDULES)}")
    if config.device not in DEVICES:
        problems.append(f"device {config.device!r}: choose one of {', '.join(DEVICES)}")
    if config.threads is not None and config.threads < 1:
        problems.append(f"threads must be at least 1 (got {config.threads})")
    if config.limit is not None and config.limit < 1:
        problems.append(f"limit must be at least 1 (got {config.limit})")
    if problems:
        raise TrainError("; ".join(problems))


def resolve_device(name: str) -> torch.device:
    """``auto``: cuda, then mps, then cpu; a named device that is absent is a ``TrainError``."""
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if (name == "cuda" and not cuda) or (name == "mps" and not mps):
        raise TrainError(
            f"device {name!r} is not available on this machine (torch {torch.__version__}); "
            "use --device cpu or auto"
        )
    return torch.device(name)


def default_checkpoint_path(network: Network, dataset: str) -> str:
    """``runs/<spec name>-<dataset>.pt``; the name made safe for a file name (no path separators,
    NUL or other control characters, at most 100 characters), so it never leaves ``runs/``."""
    safe = (
        "".join(c if c.isalnum() or c in "-_." else "_" for c in network.name)[:100].strip(".") or "network"
    )
    return str(Path("runs") / f"{safe}-{dataset}.pt")


# --------------------------------------------------------------------------------------------
# Checkpoints


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """A checkpoint written by ``train``, loaded with ``weights_only=True``; ``TrainError`` when
    the file is missing, unreadable or not a convcalc checkpoint."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise TrainError(f"{path}: no such checkpoint") from None
    except Exception as error:  # torch raises many types for a corrupt or foreign file
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        reason = first.split(". ")[0]  # torch's weights_only message goes on about unsafe loading
        raise TrainError(
            f"{path}: not a readable checkpoint ({reason}); fix: give a file written by `convcalc train`"
        ) from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise TrainError(f"{path}: not a convcalc checkpoint (written by `convcalc train`)")
    if checkpoint.get("format_version") != CHECKPOINT_VERSION:
        raise TrainError(
            f"{path}: checkpoint format version {checkpoint.get('format_version')}, this convcalc "
            f"reads version {CHECKPOINT_VERSION}"
        )
    return checkpoint


def _save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename: never half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _versions() -> dict[str, str]:
    return {"convcalc": __version__, "torch": str(torch.__version__), "python": platform.python_version()}


# --------------------------------------------------------------------------------------------
# The loop


# Channels-last (NHWC) memory: oneDNN's convolutions and max-pooling run faster on it than on
# NCHW for these small-channel networks (bench/README.md); values and results are the same.
_MEMORY_FORMAT = torch.channels_last


def _normalise(images: torch.Tensor, mean: float, std: float, device: torch.device) -> torch.Tensor:
    """uint8 ``(N, H, W)`` -> float ``(N, 1, H, W)`` on ``device``, zero mean and unit variance
    (the training set's), in the loop's memory format."""
    x = ((images.float() / 255.0 - mean) / std).unsqueeze(1)
    return x.to(device).contiguous(memory_format=_MEMORY_FORMAT)


def _optimizer(name: str, parameters, lr: float) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(parameters, lr=lr)
    if name == "adamw":
        return torch.optim.AdamW(parameters, lr=lr)
    return torch.optim.SGD(parameters, lr=lr, momentum=0.9, nesterov=True)


def _scheduler(name: str, optimizer: torch.optim.Optimizer, total_steps: int):
    if name == "onecycle":
        # cycle_momentum would swing Adam's beta1 too; off keeps Adam's defaults (measured: no gain).
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=[g["lr"] for g in optimizer.param_groups],
            total_steps=total_steps,
            pct_start=0.25,
            cycle_momentum=False,
        )
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)


def evaluate_model(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of ``model`` on normalised ``images``, in eval mode."""
    was_training = model.training
    model.eval()
    loss_sum, correct = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(images), _EVAL_BATCH):
            logits = model(images[start : start + _EVAL_BATCH])  # (B, classes)
            target = labels[start : start + _EVAL_BATCH]
            loss_sum += float(F.cross_entropy(logits, target, reduction="sum"))
            correct += int((logits.argmax(dim=1) == target).sum())
    model.train(was_training)
    n = max(len(images), 1)
    return loss_sum / n, correct / n


@dataclass
class _Progress:
    """Where a run stands: epochs finished, and inside the current epoch, batches done."""

    epochs_done: int = 0
    batch: int = 0  # next batch of epoch epochs_done + 1
    loss_sum: float = 0.0  # training loss summed over the images of the current epoch so far
    seen: int = 0
    epoch_seconds: float = 0.0  # time already spent in the current epoch before a cancel
    history: list[EpochMetrics] = field(default_factory=list)


def train(
    network: Network,
    config: TrainConfig,
    callbacks: TrainCallbacks | None = None,
    cancel: threading.Event | None = None,
) -> TrainResult:
    """Train ``network`` as ``config`` says; see the module docstring. Never prints."""
    started = time.perf_counter()
    callbacks = callbacks or TrainCallbacks()
    _check_config(config)
    checkpoint = load_checkpoint(config.resume) if config.resume else None
    if checkpoint is not None:
        if _layers(checkpoint["spec"]) != _layers(spec_to_data(network)):
            raise TrainError(
                f"{config.resume}: this checkpoint was trained from spec "
                f"{checkpoint['spec'].get('name')!r} with other layers or input; resume it "
                "with the spec it was trained from"
            )
        recipe = {**{k: getattr(config, k) for k in _RECIPE_FIELDS}, **checkpoint["recipe"]}
        config = TrainConfig(**{**asdict(config), **recipe})
    check_network(network, config.dataset)
    device = resolve_device(config.device)
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    out = Path(
        config.out or (config.resume if checkpoint else default_checkpoint_path(network, config.dataset))
    )

    dataset = data.load(
        config.dataset, config.data_dir, download=config.download, progress=callbacks.on_download
    )
    train_images = dataset.train_images[: config.limit] if config.limit else dataset.train_images
    train_labels = dataset.train_labels[: len(train_images)]
    for split, count in (("training", len(train_images)), ("test", len(dataset.test_images))):
        if count == 0:
            raise TrainError(
                f"{config.dataset} in {dataset.folder}: the {split} set has 0 "
                "images; give IDX files with at least one image (or another --data-dir)"
            )
    if checkpoint is not None:
        mean, std = checkpoint["normalize"]["mean"], checkpoint["normalize"]["std"]
    else:
        pixels = train_images.float() / 255.0
        mean, std = float(pixels.mean()), float(pixels.std()) or 1.0
    x = _normalise(train_images, mean, std, device)  # (N, 1, 28, 28)
    y = train_labels.to(device)
    test_x = _normalise(dataset.test_images, mean, std, device)
    test_y = dataset.test_labels.to(device)

    torch.manual_seed(config.seed)
    model = build_model(network).to(device, memory_format=_MEMORY_FORMAT)
    optimizer = _optimizer(config.optimizer, model.parameters(), config.lr)
    batches = math.ceil(len(x) / config.batch_size)
    scheduler = _scheduler(config.schedule, optimizer, config.epochs * batches)
    progress = _Progress()
    if checkpoint is not None:
        model.load_state_dict(checkpoint["state_dict"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        torch.set_rng_state(checkpoint["rng"])
        position = checkpoint["progress"]
        progress = _Progress(
            position["epochs_done"],
            position["batch"],
            position["loss_sum"],
            position["seen"],
            position["epoch_seconds"],
            [EpochMetrics(**m) for m in checkpoint["metrics"]["epochs"]],
        )

    def save() -> None:
        last = progress.history[-1] if progress.history else None
        _save_checkpoint(
            out,
            {
                "format": CHECKPOINT_FORMAT,
                "format_version": CHECKPOINT_VERSION,
                "spec": spec_to_data(network),
                "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                "recipe": {k: getattr(config, k) for k in _RECIPE_FIELDS},
                "normalize": {"mean": mean, "std": std},
                "optimizer": _to_cpu(optimizer.state_dict()),
                "scheduler": scheduler.state_dict(),
                "rng": torch.get_rng_state(),
                "progress": {
                    "epochs_done": progress.epochs_done,
                    "batch": progress.batch,
                    "loss_sum": progress.loss_sum,
                    "seen": progress.seen,
                    "epoch_seconds": progress.epoch_seconds,
                },
                "complete": progress.epochs_done == config.epochs,
                "metrics": {
                    "epochs": [asdict(m) for m in progress.history],
                    "test_accuracy": last.test_accuracy if last else None,
                    "test_loss": last.test_loss if last else None,
                },
                "versions": _versions(),
            },
        )

    if callbacks.on_start:
        callbacks.on_start(config.epochs, batches)
    trained_images, train_seconds, cancelled, saved = 0, 0.0, False, False
    model.train()
    while progress.epochs_done < config.epochs:
        epoch = progress.epochs_done + 1
        order = torch.randperm(
            len(x), generator=torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
        )
        order = order.to(device)
        tick = time.perf_counter()
        epoch_images = 0
        while progress.batch < batches and not (cancelled := cancel is not None and cancel.is_set()):
            index = order[progress.batch * config.batch_size : (progress.batch + 1) * config.batch_size]
            loss = F.cross_entropy(model(x[index]), y[index])  # x[index]: (B, 1, 28, 28)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            value = loss.item()
            progress.loss_sum += value * len(index)
            progress.seen += len(index)
            epoch_images += len(index)
            progress.batch += 1
            if callbacks.on_batch:
                callbacks.on_batch(epoch, progress.batch - 1, value)
        train_time = time.perf_counter() - tick
        trained_images += epoch_images
        train_seconds += train_time
        cancelled = cancelled or (cancel is not None and cancel.is_set())  # set during the last batch
        if cancelled:  # the epoch's evaluation waits for the resumed run
            progress.epoch_seconds += train_time
            break
        test_loss, test_accuracy = evaluate_model(model, test_x, test_y)
        seconds = progress.epoch_seconds + time.perf_counter() - tick
        metrics = EpochMetrics(
            epoch,
            progress.loss_sum / max(progress.seen, 1),
            test_loss,
            test_accuracy,
            seconds,
            epoch_images / train_time if train_time > 0 else 0.0,
        )
        progress = _Progress(epoch, 0, 0.0, 0, 0.0, [*progress.history, metrics])
        save()
        saved = True
        if callbacks.on_epoch:
            callbacks.on_epoch(metrics)
    checkpoint_path: str | None = str(out)
    if cancelled and not trained_images and not saved:
        checkpoint_path = config.resume  # stopped before a single batch: nothing new, no file replaced
    elif cancelled or not saved:
        save()
    last = progress.history[-1] if progress.history else None
    return TrainResult(
        test_accuracy=last.test_accuracy if last else math.nan,
        test_loss=last.test_loss if last else math.nan,
        epochs=list(progress.history),
        images_per_second=trained_images / train_seconds if train_seconds > 0 else 0.0,
        seconds=time.perf_counter() - started,
        checkpoint=checkpoint_path,
        cancelled=cancelled,
    )


def _layers(spec_data: dict[str, Any]) -> tuple[Any, Any]:
    """What a checkpoint's weights depend on: the input and the layers (not the spec's name)."""
    return list(spec_data.get("input", [])), spec_data.get("layers")


def _to_cpu(value: Any) -> Any:
    """An optimiser state dict with every tensor on the CPU (a checkpoint loads anywhere)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_cpu(v) for v in value]
    return value


# --------------------------------------------------------------------------------------------
# Evaluation


def model_from_checkpoint(
    checkpoint: dict[str, Any], path: str = "<checkpoint>"
) -> tuple[Network, nn.Module]:
    """The spec inside a checkpoint and its model with the trained weights, in eval mode."""
    try:
        network = network_from_data(checkpoint["spec"], source=f"{path} (spec inside)")
        model = build_model(network, initialize=False)
        model.load_state_dict(checkpoint["state_dict"])
    except KeyError as error:
        raise TrainError(f"{path}: checkpoint lacks {error}; not written by `convcalc train`?") from None
    except RuntimeError as error:  # state_dict and spec disagree
        raise TrainError(
            f"{path}: weights do not fit the spec inside ({str(error).splitlines()[0]})"
        ) from None
    return network, model.eval()


def evaluate_checkpoint(
    path: str | os.PathLike,
    data_dir: str | None = None,
    device: str = "auto",
    download: bool = True,
    progress: data.Progress | None = None,
) -> EvalResult:
    """The test accuracy and loss of the model in checkpoint ``path`` (rebuilt from the spec
    inside) on the test set of the data set it was trained on."""
    checkpoint = load_checkpoint(path)
    _, model = model_from_checkpoint(checkpoint, str(path))
    dataset_name = checkpoint["recipe"]["dataset"]
    target = resolve_device(device)
    dataset = data.load(dataset_name, data_dir, download=download, progress=progress)
    mean, std = checkpoint["normalize"]["mean"], checkpoint["normalize"]["std"]
    model = model.to(target, memory_format=_MEMORY_FORMAT)
    test_loss, test_accuracy = evaluate_model(
        model, _normalise(dataset.test_images, mean, std, target), dataset.test_labels.to(target)
    )
    return EvalResult(dataset_name, test_accuracy, test_loss, len(dataset.test_images), str(path))
