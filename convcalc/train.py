"""The training loop: a spec's model trained on an in-memory image data set, fast and repeatable.

The whole data set sits in memory as one normalised float tensor ``(N, C, *spatial)``; each epoch
takes batches by index from a permutation seeded by (seed, epoch), so there is no per-sample
``Dataset``/``DataLoader`` work. Adam with a one-cycle learning-rate schedule (``bench/README.md``
has the measurements behind the defaults). The loop never prints: it reports through
``TrainCallbacks`` and stops after the current batch once ``cancel`` is set, so the CLI and the
TUI run exactly this code.

A checkpoint (written atomically after every epoch and on cancel) is a plain dict that loads
with ``torch.load(path, weights_only=True)``: ``state_dict``, ``spec`` (``spec_to_data``), the
recipe, the optimiser and schedule states, the position in the run, the metrics and versions.
Resuming from it continues the run exactly where it stopped.

Data sets: the registry's (``data.DATASETS``: the MNISTs, CIFAR-10) and ``folder`` (an image or
``.npy`` folder, ``convcalc.images``); every set sits in memory as ``(N, C, *spatial)``. Under
torchrun the run is shared by its processes (``convcalc.distributed`` says how).
"""

from __future__ import annotations

import codecs
import math
import os
import platform
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from convcalc import __version__, data, distributed, fastpath, images, threads
from convcalc.build import build_model
from convcalc.engine import fmt_shape
from convcalc.errors import ConvcalcError
from convcalc.files import write_atomically
from convcalc.preflight import FOLDER, TrainError, check_checkpoint_path, check_fit, default_checkpoint_path
from convcalc.spec import Network, network_from_data, spec_to_data

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("onecycle", "cosine", "constant")
DEVICES = ("auto", "cpu", "cuda", "mps")
CHECKPOINT_FORMAT = "convcalc-checkpoint"
CHECKPOINT_VERSION = 1
_EVAL_BATCH = 1000
# The recipe: what a checkpoint pins; a resumed run keeps the checkpoint's values of these.
_RECIPE_FIELDS = ("dataset", "epochs", "batch_size", "lr", "optimizer", "schedule", "seed", "limit",
                  "val_fraction", "resize", "augment")  # fmt: skip
AMP = ("bf16", "fp16")
_AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class TrainConfig:
    dataset: str = "mnist"  # a name in data.DATASETS, or "folder" (data_dir: one subfolder per class)
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
    val_fraction: float = 0.1  # folder without train/ and val/: this share of each class validates
    resize: bool = False  # folder: resize images to the spec's input (else other sizes are refused)
    augment: tuple[str, ...] = ()  # of images.AUGMENTATIONS ("flip", "crop"); none by default
    amp: str | None = None  # None (float32) | "bf16" | "fp16": autocast, fp16 with a GradScaler
    compile: bool = False  # torch.compile the training model
    channels_last: bool = True  # NHWC (NDHWC) memory for 2-D (3-D) inputs: faster oneDNN convolutions


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
    on_message: Callable[[str], None] | None = None  # a note for the user (e.g. data kept on the CPU)


@dataclass(frozen=True)
class EvalResult:
    dataset: str
    test_accuracy: float
    test_loss: float
    images: int
    checkpoint: str


# --------------------------------------------------------------------------------------------
# Checks


def check_network(network: Network, dataset: str, classes: int | None = None) -> None:
    """Raise ``TrainError`` unless ``network`` takes the data set's images and ends in one score
    per class; ``BuildError`` when the spec has errors. A ``folder`` takes the spec's input; its
    number of ``classes`` is known once it is read (None: only a 1-D output is checked)."""
    check_fit(network, dataset, classes)  # the part without torch (`convcalc train` runs it first)
    build_model(network, initialize=False)  # BuildError naming the layer when the spec is impossible


def check_dataset(name: str) -> None:
    """``DataError`` unless ``name`` is a data set of the registry or ``folder``."""
    if name != FOLDER and name not in data.DATASETS:
        raise data.DataError(
            f"unknown dataset {name!r}; choose one of: {', '.join([*data.DATASETS, FOLDER])}"
        )


def _check_config(config: TrainConfig) -> None:
    check_dataset(config.dataset)
    problems = []
    if config.dataset == FOLDER and not config.data_dir:
        problems.append("--dataset folder needs --data-dir DIR (a folder with one subfolder per class)")
    if not 0 <= config.val_fraction < 1:
        problems.append(f"val fraction must be at least 0 and below 1 (got {config.val_fraction})")
    unknown = [name for name in config.augment if name not in images.AUGMENTATIONS]
    if unknown:
        problems.append(f"augment {', '.join(unknown)}: choose from {', '.join(images.AUGMENTATIONS)}")
    if config.amp is not None and config.amp not in AMP:
        problems.append(f"amp {config.amp!r}: choose one of {', '.join(AMP)}")
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


# --------------------------------------------------------------------------------------------
# Checkpoints


def load_checkpoint(path: str | os.PathLike, resume: bool = False) -> dict[str, Any]:
    """A checkpoint written by ``train``, loaded with ``weights_only=True``; ``TrainError`` when
    the file is missing, unreadable, not a convcalc checkpoint, or lacks what evaluating it
    (``resume``: continuing its run) needs (``check_checkpoint``)."""
    kind = _not_a_torch_file(path)
    if kind:
        raise TrainError(
            f"{path}: not a convcalc checkpoint ({kind}); fix: give a .pt file written by `convcalc train`"
        )
    try:
        with warnings.catch_warnings():  # "Detected pickle protocol 4" (a foreign pickle): ours says it
            warnings.simplefilter("ignore")
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
        raise TrainError(
            f"{path}: not a convcalc checkpoint (its 'format' is not {CHECKPOINT_FORMAT!r}); fix: give a "
            "file written by `convcalc train`"
        )
    if checkpoint.get("format_version") != CHECKPOINT_VERSION:
        raise TrainError(
            f"{path}: checkpoint format version {checkpoint.get('format_version')!r}, this convcalc "
            f"reads version {CHECKPOINT_VERSION}; fix: use the convcalc that wrote it, or train again"
        )
    check_checkpoint(checkpoint, str(path), resume)
    return checkpoint


def _not_a_torch_file(path: str | os.PathLike) -> str | None:
    """What the file is ("an empty file", "a text file", "not a file torch writes") when it
    cannot be one ``torch.save`` wrote: a zip archive, or a pickle in torch's legacy format; None
    when it may be (or cannot be read: ``torch.load`` then says why)."""
    try:
        with open(path, "rb") as file:
            head = file.read(4096)
    except OSError:
        return None
    if head.startswith((b"PK\x03\x04", b"\x80")):  # zip (torch >= 1.6); pickle protocol 2+ (legacy)
        return None
    if not head:
        return "an empty file"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head)  # a character cut at 4096 bytes is fine
    except UnicodeDecodeError:
        return "not a file torch writes"
    return "a text file" if b"\x00" not in head else "not a file torch writes"


# What each use of a checkpoint reads, and its type: evaluate rebuilds the model and normalises
# the test images; a resumed run also restores the optimiser, schedule, random state, position
# and history. A file that lacks one, or holds a wrong type, is refused before anything runs.
_EVALUATE_FIELDS = {"spec": dict, "state_dict": dict, "recipe": dict, "normalize": dict}
_RESUME_FIELDS = {"optimizer": dict, "scheduler": dict, "rng": torch.Tensor, "progress": dict,
                  "metrics": dict}  # fmt: skip
_NORMALIZE_FIELDS = {"mean": float, "std": float}
_RECIPE_TYPES = {"dataset": str, "epochs": int, "batch_size": int, "lr": float, "optimizer": str,
                 "schedule": str, "seed": int, "limit": (int, type(None))}  # fmt: skip
# recipe fields a checkpoint may lack (written before they existed: the defaults apply), and the
# `data` a folder run records (where it read, for evaluate)
_RECIPE_OPTIONAL = {"val_fraction": float, "resize": bool, "augment": (tuple, list)}
_OPTIONAL_FIELDS = {"data": dict, "scaler": dict}
_DATA_FIELDS = {"classes": list, "data_dir": str}
_PROGRESS_FIELDS = {"epochs_done": int, "batch": int, "loss_sum": float, "seen": int, "epoch_seconds": float}
_KIND_NAMES = {dict: "a mapping", torch.Tensor: "a tensor", int: "an integer", float: "a number",
               str: "a string", list: "a list", tuple: "a tuple", bool: "true or false",
               type(None): "null"}  # fmt: skip


def checkpoint_field_error(path: str, field: str, problem: str) -> TrainError:
    return TrainError(
        f"{path}: checkpoint field {field!r} {problem}; fix: use the file as `convcalc train` wrote it, "
        "or train again"
    )


def _is(value: Any, kind: type | tuple[type, ...]) -> bool:
    """``isinstance``, where a number is never a bool and a float field takes an int too."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool):
        return bool in kinds
    return isinstance(value, kinds) or (float in kinds and isinstance(value, int))


def _check_fields(
    path: str, record: dict, types: dict[str, Any], prefix: str = "", required: bool = True
) -> None:
    for key, kind in types.items():
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if key not in record:
            if not required:
                continue
            raise checkpoint_field_error(path, prefix + key, "is missing")
        if not _is(record[key], kind):
            wanted = " or ".join(_KIND_NAMES[k] for k in kinds)
            raise checkpoint_field_error(path, prefix + key, f"is {type(record[key]).__name__}, not {wanted}")


def check_checkpoint(checkpoint: dict[str, Any], path: str, resume: bool = False) -> None:
    """``TrainError`` naming the file and the field unless the checkpoint holds what evaluating
    it (``resume``: continuing its run) reads, with the right types and usable values."""
    _check_fields(path, checkpoint, {**_EVALUATE_FIELDS, **(_RESUME_FIELDS if resume else {})})
    _check_fields(path, checkpoint, _OPTIONAL_FIELDS, required=False)
    _check_fields(path, checkpoint["recipe"], _RECIPE_TYPES if resume else {"dataset": str}, "recipe.")
    _check_fields(path, checkpoint["recipe"], _RECIPE_OPTIONAL, "recipe.", required=False)
    unknown = sorted(map(str, set(checkpoint["recipe"]) - set(_RECIPE_FIELDS)))
    if unknown:
        raise checkpoint_field_error(
            path, f"recipe.{unknown[0]}", f"is not a recipe field (they are {', '.join(_RECIPE_FIELDS)})"
        )
    _check_fields(path, checkpoint.get("data", {}), _DATA_FIELDS, "data.", required=False)
    tensors = all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in checkpoint["state_dict"].items()
    )
    if not tensors:
        raise checkpoint_field_error(path, "state_dict", "holds more than names and tensors")
    try:
        check_dataset(checkpoint["recipe"]["dataset"])
    except data.DataError as error:
        raise checkpoint_field_error(path, "recipe.dataset", f"names no data set ({error})") from None
    _check_fields(path, checkpoint["normalize"], _NORMALIZE_FIELDS, "normalize.")
    mean, std = checkpoint["normalize"]["mean"], checkpoint["normalize"]["std"]
    if not (math.isfinite(mean) and math.isfinite(std) and std > 0):
        raise checkpoint_field_error(path, "normalize", f"is mean {mean}, std {std}: need finite, std > 0")
    if not resume:
        return
    _check_fields(path, checkpoint["progress"], _PROGRESS_FIELDS, "progress.")
    _check_fields(path, checkpoint["metrics"], {"epochs": list}, "metrics.")
    done, epochs = checkpoint["progress"]["epochs_done"], checkpoint["recipe"]["epochs"]
    if not 0 <= done <= epochs or len(checkpoint["metrics"]["epochs"]) != done:
        history = len(checkpoint["metrics"]["epochs"])
        raise checkpoint_field_error(
            path, "progress.epochs_done", f"is {done}, with {history} epochs of metrics in a run of {epochs}"
        )
    for name in ("batch", "seen"):
        if checkpoint["progress"][name] < 0:
            raise checkpoint_field_error(path, f"progress.{name}", f"is {checkpoint['progress'][name]} (< 0)")
    names = {f.name for f in fields(EpochMetrics)}
    for index, record in enumerate(checkpoint["metrics"]["epochs"]):
        numbers = isinstance(record, dict) and all(_is(v, float) for v in record.values())
        if not numbers or set(record) != names:
            raise checkpoint_field_error(
                path, f"metrics.epochs.{index}", f"is not numbers named {', '.join(sorted(names))}"
            )


def _reason(error: Exception) -> str:
    """The line of a torch error that says what is wrong (``load_state_dict`` puts it second)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].endswith(":"):  # "Error(s) in loading state_dict for Sequential:"
        return lines[1]
    return lines[0] if lines else type(error).__name__


def _save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """``torch.save`` through ``files.write_atomically`` (a temporary ``.part`` file in the same
    folder, then a rename): never half a file, the old checkpoint whole until then. A failure
    (disk full, folder gone) is a ``TrainError`` naming the file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, lambda file: torch.save(payload, file), "run.pt", ".part", "the checkpoint")
    except OSError as error:  # the folder could not be made
        raise TrainError(f"{path}: cannot write the checkpoint ({error.strerror or error})") from None
    except ConvcalcError as error:
        raise TrainError(str(error)) from None


def _versions() -> dict[str, str]:
    return {"convcalc": __version__, "torch": str(torch.__version__), "python": platform.python_version()}


# --------------------------------------------------------------------------------------------
# The loop


# Channels-last (NHWC) memory: oneDNN's convolutions and max-pooling run faster on it than on
# NCHW for these small-channel networks (bench/README.md); values and results are the same.
# 3-D inputs get the same in NDHWC; 1-D ones have no such format.
_MEMORY_FORMATS = {4: torch.channels_last, 5: torch.channels_last_3d}


def memory_format(input_shape: tuple[int, ...], channels_last: bool = True) -> torch.memory_format | None:
    """The memory format of a batch of ``input_shape`` inputs (None: torch's default)."""
    return _MEMORY_FORMATS.get(len(input_shape) + 1) if channels_last else None


def _scaled(images: torch.Tensor) -> torch.Tensor:
    """float values: uint8 pixels divided by 255, float arrays as they are."""
    return images.float() / 255.0 if images.dtype == torch.uint8 else images.float()


def _statistics(images: torch.Tensor) -> tuple[float, float]:
    """One mean and one standard deviation over every value of the training split (all channels)."""
    values = _scaled(images)
    return float(values.mean()), float(values.std()) or 1.0


def _normalise(
    images: torch.Tensor,
    mean: float,
    std: float,
    device: torch.device,
    fmt: torch.memory_format | None = None,
) -> torch.Tensor:
    """``(N, C, *spatial)`` -> float on ``device``, zero mean and unit variance (the training
    set's), in memory format ``fmt``."""
    x = ((_scaled(images) - mean) / std).to(device)
    return x.contiguous(memory_format=fmt) if fmt is not None else x.contiguous()


def load_data(
    config: TrainConfig,
    input_shape: tuple[int, ...],
    progress: data.Progress | None = None,
    world: distributed.World = distributed.ONE,
    device: torch.device | None = None,
) -> data.Dataset:
    """The run's data set with images ``(N, C, *spatial)`` (IDX files' ``(N, H, W)`` get C = 1).
    With more than one process, rank 0 downloads what is missing before the others look."""
    if config.dataset == FOLDER:
        return images.load_folder(config.data_dir, input_shape, config.val_fraction, config.resize)
    dataset, failure = None, None
    if world.rank == 0 or not config.download:
        try:
            dataset = data.load(config.dataset, config.data_dir, download=config.download, progress=progress)
        except data.DataError as error:
            failure = error
    if world.size > 1 and config.download:  # the others wait for rank 0's download, and its outcome
        (ok,) = distributed.all_reduce_sum([float(failure is None)], device or torch.device("cpu"))
        if failure is None and not ok:
            raise data.DataError(
                f"{config.dataset}: rank 0 could not load the data set (its message says why)"
            )
        if dataset is None and failure is None:
            dataset = data.load(config.dataset, config.data_dir, download=False)
    if failure is not None:
        raise failure
    if dataset.train_images.dim() == 3:  # IDX: (N, H, W), one channel
        dataset = replace(
            dataset,
            train_images=dataset.train_images.unsqueeze(1),
            test_images=dataset.test_images.unsqueeze(1),
        )
    return dataset


def _check_not_empty(dataset: data.Dataset, name: str, counts: dict[str, int]) -> None:
    """``TrainError`` when a split has no image (valid files of 0 images; an accuracy over none
    would be 0/0)."""
    for split, count in counts.items():
        if count == 0:
            raise TrainError(
                f"{name} in {dataset.folder}: the {split} set has 0 images; give files with at least "
                "one image (or another --data-dir)"
            )


def fits_on(device: torch.device, nbytes: int) -> bool:
    """Whether ``nbytes`` of data can stay on ``device`` beside the model (CUDA: within 80% of
    the free memory); the CPU and MPS (shared memory) always."""
    if device.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes <= 0.8 * free


def _optimizer(name: str, parameters, lr: float) -> torch.optim.Optimizer:
    # fused: one kernel per parameter instead of ~10 ops each (Adam was 9% of a LeNet step on the CPU,
    # bench/README.md); a checkpoint saved unfused resumes unfused (its param_groups say so)
    if name == "adam":
        return torch.optim.Adam(parameters, lr=lr, fused=True)
    if name == "adamw":
        return torch.optim.AdamW(parameters, lr=lr, fused=True)
    return torch.optim.SGD(parameters, lr=lr, momentum=0.9, nesterov=True)


def _scheduler(name: str, optimizer: torch.optim.Optimizer, total_steps: int):
    if name == "onecycle":
        # cycle_momentum would swing Adam's beta1 too; off keeps Adam's defaults (measured: no gain).
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=[g["lr"] for g in optimizer.param_groups],
            total_steps=total_steps,
            # OneCycleLR divides by zero when pct_start × total_steps - 1 is 0 (4 steps): 0.3 then
            pct_start=0.25 if total_steps != 4 else 0.3,
            cycle_momentum=False,
        )
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)


def evaluate_model(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    world: distributed.World = distributed.ONE,
    device: torch.device | None = None,
) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of ``model`` on normalised ``images``, in eval mode. With
    more than one process each evaluates its share (every N-th image) and the sums are added."""
    was_training = model.training
    model.eval()
    loss_sum, correct = 0.0, 0
    mine, mine_labels = images[world.rank :: world.size], labels[world.rank :: world.size]  # views
    with torch.inference_mode():
        for start in range(0, len(mine), _EVAL_BATCH):
            logits = model(mine[start : start + _EVAL_BATCH].to(device or images.device))  # (B, classes)
            target = mine_labels[start : start + _EVAL_BATCH].to(logits.device)
            loss_sum += float(F.cross_entropy(logits.float(), target, reduction="sum"))
            correct += int((logits.argmax(dim=1) == target).sum())
    model.train(was_training)
    if world.size > 1:
        loss_sum, correct = distributed.all_reduce_sum([loss_sum, correct], device or images.device)
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
    checkpoint = load_checkpoint(config.resume, resume=True) if config.resume else None
    if checkpoint is not None:
        if _layers(checkpoint["spec"]) != _layers(spec_to_data(network)):
            raise TrainError(
                f"{config.resume}: this checkpoint was trained from spec "
                f"{checkpoint['spec'].get('name')!r} with other layers or input; resume it "
                "with the spec it was trained from"
            )
        recipe = {k: v for k, v in checkpoint["recipe"].items() if k in _RECIPE_FIELDS}
        config = TrainConfig(**{**asdict(config), **recipe})
        try:
            _check_config(config)
        except ConvcalcError as error:
            problem = f"holds a value no run takes ({error})"
            raise checkpoint_field_error(config.resume, "recipe", problem) from None
    check_network(network, config.dataset)
    if config.augment and len(network.input) != 3:
        raise TrainError(
            f"--augment flips and crops images; spec {network.name!r} takes "
            f"{fmt_shape(tuple(network.input))} input, not C×H×W: drop --augment"
        )
    world = distributed.current()
    device = resolve_device(config.device)
    if device.type == "cuda" and world.size > 1:
        device = torch.device("cuda", world.local_rank)  # one GPU per process on each machine
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    out = Path(
        config.out or (config.resume if checkpoint else default_checkpoint_path(network, config.dataset))
    )
    if world.rank == 0:  # the one process that saves (the others' probes would race its folders)
        check_checkpoint_path(out)

    dataset = load_data(config, tuple(network.input), callbacks.on_download, world, device)
    if config.dataset == FOLDER:  # its classes are known now
        check_network(network, config.dataset, len(dataset.classes))
    train_images = dataset.train_images[: config.limit] if config.limit else dataset.train_images
    train_labels = dataset.train_labels[: len(train_images)]
    _check_not_empty(
        dataset, config.dataset, {"training": len(train_images), "test": len(dataset.test_images)}
    )
    if checkpoint is not None:
        mean, std = checkpoint["normalize"]["mean"], checkpoint["normalize"]["std"]
    else:
        mean, std = _statistics(train_images)
    fmt = memory_format(tuple(network.input), config.channels_last)
    # the whole set stays on the device when it fits (4 bytes a value), else batches are copied over
    nbytes = 4 * (train_images.numel() + dataset.test_images.numel())
    fits = fits_on(device, nbytes)
    store = device if fits else torch.device("cpu")
    if not fits and callbacks.on_message:
        callbacks.on_message(
            f"the data set ({nbytes / 2**30:.1f} GiB as float32) does not fit in {device}'s free memory; "
            "it stays in CPU memory and each batch is copied over"
        )
    x = _normalise(train_images, mean, std, store, fmt)  # (N, C, *spatial)
    y = train_labels.to(store)
    test_x = _normalise(dataset.test_images, mean, std, store, fmt)
    test_y = dataset.test_labels.to(store)
    if store != device and device.type == "cuda":
        x, test_x = x.pin_memory(), test_x.pin_memory()  # asynchronous copies to the GPU

    torch.manual_seed(config.seed)
    model = build_model(network).to(device, memory_format=fmt) if fmt else build_model(network).to(device)
    optimizer = _optimizer(config.optimizer, model.parameters(), config.lr)
    amp_dtype = _AMP_DTYPES.get(config.amp)
    # fp16's narrow range needs loss scaling; bf16 has float32's range (the scaler is then a no-op)
    scaler = torch.amp.GradScaler(device.type, enabled=config.amp == "fp16")
    batches = math.ceil(len(x) / config.batch_size)
    scheduler = _scheduler(config.schedule, optimizer, config.epochs * batches)
    progress = _Progress()
    if checkpoint is not None:
        restore = {"state_dict": model.load_state_dict, "optimizer": optimizer.load_state_dict,
                   "scheduler": scheduler.load_state_dict, "rng": torch.set_rng_state}  # fmt: skip
        for name, load in restore.items():
            try:
                load(checkpoint[name])
            except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as error:
                raise checkpoint_field_error(
                    config.resume, name, f"does not fit this model and recipe ({_reason(error)})"
                ) from None
        planned = checkpoint["scheduler"].get("total_steps", checkpoint["scheduler"].get("T_max"))
        if planned is not None and planned != config.epochs * batches:  # a step past the plan raises
            raise TrainError(
                f"{config.resume}: checkpoint field 'scheduler' plans {planned} steps, this run has "
                f"{config.epochs} epochs × {batches} batches: the training set is another size; fix: "
                "resume with the data (and --limit) the run started with"
            )
        if scaler.is_enabled() and checkpoint.get("scaler"):  # fp16's loss scale as it had grown
            scaler.load_state_dict(checkpoint["scaler"])
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
        if world.rank != 0:  # one file per run: rank 0's (every process holds the same weights)
            return
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
                "scaler": scaler.state_dict() if scaler.is_enabled() else {},
                # a folder's classes (label i is classes[i]) and where it was: `evaluate` finds it there
                "data": {"classes": list(dataset.classes), "data_dir": str(dataset.folder)},
            },
        )

    # the same layers and weights, ReLU → MaxPool run as MaxPool → ReLU: exact and faster (fastpath.py)
    forward = fastpath.training_model(model)
    if world.size > 1:  # built after the restore: DDP starts every process from rank 0's weights
        forward = nn.parallel.DistributedDataParallel(
            forward, device_ids=[device.index] if device.type == "cuda" else None
        )
    if config.compile:
        forward = torch.compile(forward)

    def stop_requested() -> bool:
        return cancel is not None and cancel.is_set()

    chooser = _thread_chooser(config, device, world)

    def tell(note: str | None) -> None:
        if note and callbacks.on_message:
            callbacks.on_message(note)

    if callbacks.on_start:
        callbacks.on_start(config.epochs, batches)
    trained_images, train_seconds, cancelled, saved, agreed = 0, 0.0, False, False, False
    model.train()
    while progress.epochs_done < config.epochs:
        epoch = progress.epochs_done + 1
        # the same permutation in every process: each takes its share of each batch (distributed.shard)
        order = torch.randperm(
            len(x), generator=torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
        )
        order = order.to(store)
        tick = time.perf_counter()
        epoch_images = 0
        if chooser:
            tell(chooser.start_epoch(batches - progress.batch))
        # more than one process: stop when the last batch's all-reduce said one of them was asked to
        while progress.batch < batches and not (cancelled := agreed if world.size > 1 else stop_requested()):
            step_started = time.perf_counter()
            if chooser:
                chooser.before_step()
            index = order[progress.batch * config.batch_size : (progress.batch + 1) * config.batch_size]
            positions, weight = distributed.shard(len(index), world)
            mine = index if world.size == 1 else index[positions.to(store)]
            batch = x[mine].to(device, non_blocking=True)  # (B, C, *spatial); a no-op when x is there
            if config.augment:
                seed = (config.seed * 1_000_003 + epoch) * 1_000_003 + progress.batch
                generator = torch.Generator().manual_seed(seed % 2**63)
                batch = images.augment(batch, config.augment, generator, len(index), positions)
            with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                loss = F.cross_entropy(forward(batch), y[mine].to(device, non_blocking=True))
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss * weight if world.size > 1 else loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            if world.size > 1:  # the whole batch's loss, and whether any process was asked to stop
                total, stops = distributed.all_reduce_sum(
                    [loss.item() * len(mine) * (weight > 0), float(stop_requested())], device
                )
                value, agreed = total / len(index), stops > 0
            else:
                value = loss.item()  # waits for the step: the time below is the step's
            if chooser:
                tell(chooser.after_step(time.perf_counter() - step_started))
            progress.loss_sum += value * len(index)
            progress.seen += len(index)
            epoch_images += len(index)
            progress.batch += 1
            if callbacks.on_batch:
                callbacks.on_batch(epoch, progress.batch - 1, value)
        train_time = time.perf_counter() - tick
        trained_images += epoch_images
        train_seconds += train_time
        cancelled = cancelled or (agreed if world.size > 1 else stop_requested())  # during the last batch
        if cancelled:  # the epoch's evaluation waits for the resumed run
            progress.epoch_seconds += train_time
            break
        test_loss, test_accuracy = evaluate_model(model, test_x, test_y, world, device)
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
    if chooser:
        chooser.finish()
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


def _thread_chooser(config: TrainConfig, device: torch.device, world: distributed.World):
    """Without ``--threads``, on the CPU, in one process: a ``threads.Chooser`` that times the
    candidate counts each epoch (None otherwise: torch's count stays; torchrun's processes get
    one thread each from its OMP_NUM_THREADS=1, and a GPU run hardly uses the CPU's threads)."""
    if config.threads is not None or device.type != "cpu" or world.size > 1:
        return None
    limit = torch.get_num_threads()  # the caller's (or torch's) count is the most to use
    return threads.Chooser(lambda: threads.this_machine(limit), torch.set_num_threads)


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
        raise TrainError(f"{path}: weights do not fit the spec inside ({_reason(error)})") from None
    return network, model.eval()


def evaluate_checkpoint(
    path: str | os.PathLike,
    data_dir: str | None = None,
    device: str = "auto",
    download: bool = True,
    progress: data.Progress | None = None,
) -> EvalResult:
    """The test accuracy and loss of the model in checkpoint ``path`` (rebuilt from the spec
    inside) on the test set of the data set it was trained on (a folder's: its validation
    split, from the folder the run read unless ``data_dir``)."""
    checkpoint = load_checkpoint(path)
    network, model = model_from_checkpoint(checkpoint, str(path))
    recipe = checkpoint["recipe"]
    dataset_name = recipe["dataset"]
    if dataset_name == FOLDER and data_dir is None:
        data_dir = checkpoint.get("data", {}).get("data_dir")
    known = {k: recipe[k] for k in ("val_fraction", "resize") if k in recipe}
    config = TrainConfig(dataset=dataset_name, data_dir=data_dir, download=download, **known)
    target = resolve_device(device)
    dataset = load_data(config, tuple(network.input), progress)
    _check_not_empty(dataset, dataset_name, {"test": len(dataset.test_images)})
    mean, std = checkpoint["normalize"]["mean"], checkpoint["normalize"]["std"]
    fmt = memory_format(tuple(network.input))
    model = model.to(target, memory_format=fmt) if fmt else model.to(target)
    test_loss, test_accuracy = evaluate_model(
        model, _normalise(dataset.test_images, mean, std, target, fmt), dataset.test_labels.to(target)
    )
    return EvalResult(dataset_name, test_accuracy, test_loss, len(dataset.test_images), str(path))
