"""A data set from a folder: one subfolder per class, of images (PNG/JPEG) or ``.npy`` arrays.

Two layouts (``--data-dir DIR`` with ``--dataset folder``)::

    DIR/<class>/<file>                          split into training and validation by val_fraction
    DIR/train/<class>/<file>, DIR/val/<class>/<file>    the split as given

Classes are the subfolders' names, sorted (label 0 is the first). Hidden files and folders and
files of other kinds are ignored. The split by ``val_fraction`` is stratified (that fraction of
each class, rounded, at least one image of a class of two or more) and seeded by a fixed seed,
not the run's ``--seed``: the same folder always gives the same validation set, so runs with
other seeds and ``convcalc evaluate`` measure on the same images.

Images (2-D specs only) are read with Pillow and converted to the spec's channels: 1 channel is
grayscale (Pillow's ``L``), 3 is RGB; other channel counts are refused. An image of another size
than the spec's input is refused, naming the sizes, unless ``resize`` (bilinear, to exactly H×W,
the aspect ratio not kept). A file Pillow cannot decode is refused: every corrupt file is named
(the first ten) and nothing trains, so a run never silently trains on fewer images than the
folder holds. ``.npy`` arrays (any spec; 1-D and 3-D specs need them) must have the spec's input
shape (C×L, C×D×H×W; or without the channel axis when C is 1); they are taken as float32 as
they are, never resized.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from convcalc.data import DataError, Dataset

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
ARRAY_SUFFIX = ".npy"
SPLIT_SEED = 0  # the fixed seed of the validation split (see the module docstring)
_NAMED = 10  # at most this many bad files are named in one message


def load_folder(
    folder: str | os.PathLike,
    input_shape: tuple[int, ...],
    val_fraction: float = 0.1,
    resize: bool = False,
) -> Dataset:
    """The folder's training and validation splits, shaped ``(N, *input_shape)``: uint8 for
    images, float32 for ``.npy`` arrays; see the module docstring."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: no such folder; --data-dir names a folder with one subfolder per class")
    train_dir, val_dir = root / "train", root / "val"
    if train_dir.is_dir() != val_dir.is_dir():
        present, absent = ("train", "val") if train_dir.is_dir() else ("val", "train")
        raise DataError(
            f"{root}: has {present}/ but no {absent}/; give both (each with one subfolder per class), "
            "or put the class folders directly in it"
        )
    if train_dir.is_dir():
        classes = _classes(train_dir)
        val_classes = _classes(val_dir)
        if val_classes != classes:
            raise DataError(
                f"{val_dir}: classes {', '.join(val_classes)} differ from {train_dir}'s "
                f"({', '.join(classes)}); both need the same class folders"
            )
        train_files, val_files = _files(train_dir, classes), _files(val_dir, classes)
    else:
        classes = _classes(root)
        train_files, val_files = _split(_files(root, classes), val_fraction)
    kind = _kind(root, train_files + val_files)
    read = _read_arrays if kind == ARRAY_SUFFIX else _read_images
    x, y = read(train_files + val_files, input_shape, resize)  # one pass: every bad file in one message
    n = len(train_files)
    return Dataset("folder", root, tuple(classes), x[:n], y[:n], x[n:], y[n:])


def _classes(folder: Path) -> list[str]:
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(
            f"{folder}: no class folders inside; put each class's files in a subfolder of its own"
        )
    return classes


def _files(folder: Path, classes: list[str]) -> list[tuple[Path, int]]:
    """(file, label) of every image or array in the class folders; an empty class is an error."""
    found = []
    for label, name in enumerate(classes):
        files = sorted(
            p
            for p in (folder / name).iterdir()
            if p.is_file()
            and not p.name.startswith(".")
            and p.suffix.lower() in (*IMAGE_SUFFIXES, ARRAY_SUFFIX)
        )
        if not files:
            raise DataError(
                f"{folder / name}: class {name!r} has no images (.png, .jpg, .jpeg) or .npy arrays; "
                "add some or remove the folder"
            )
        found += [(file, label) for file in files]
    return found


def _split(files: list[tuple[Path, int]], val_fraction: float) -> tuple[list, list]:
    """Stratified, seeded: per class, a fixed-seed permutation; its first share goes to validation."""
    generator = torch.Generator().manual_seed(SPLIT_SEED)
    train, val = [], []
    for label in sorted({label for _, label in files}):
        members = [item for item in files if item[1] == label]
        count = round(len(members) * val_fraction)
        if val_fraction > 0 and len(members) >= 2:
            count = min(max(count, 1), len(members) - 1)  # a class keeps at least one training image
        order = torch.randperm(len(members), generator=generator).tolist()
        val += [members[i] for i in sorted(order[:count])]
        train += [members[i] for i in sorted(order[count:])]
    return train, val


def _kind(root: Path, files: list[tuple[Path, int]]) -> str:
    kinds = {ARRAY_SUFFIX if path.suffix.lower() == ARRAY_SUFFIX else "image" for path, _ in files}
    if len(kinds) > 1:
        raise DataError(
            f"{root}: holds both images and .npy arrays; a data set is one or the other "
            "(images are scaled from 0-255, arrays taken as they are)"
        )
    return kinds.pop()


def _refuse(problems: list[str], what: str, fix: str) -> None:
    if problems:
        named = "; ".join(problems[:_NAMED]) + (
            f"; and {len(problems) - _NAMED} more" if len(problems) > _NAMED else ""
        )
        raise DataError(f"{len(problems)} {what}: {named}; {fix}")


def _read_images(
    files: list[tuple[Path, int]], input_shape: tuple[int, ...], resize: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 ``(N, C, H, W)`` and int64 ``(N,)``: every image read, converted and size-checked."""
    try:
        from PIL import Image
    except ImportError:
        raise DataError("reading images needs Pillow: pip install 'convcalc[images]'") from None
    if len(input_shape) != 3:
        raise DataError(
            f"images are 2-D, the spec's input {'×'.join(map(str, input_shape))} is not C×H×W; "
            "for 1-D and 3-D specs give .npy arrays of that shape"
        )
    channels, height, width = input_shape
    if channels not in (1, 3):
        raise DataError(
            f"the spec takes {channels} input channels; images become 1 (grayscale) or 3 (RGB): "
            "set the spec's input channels to 1 or 3, or give .npy arrays"
        )
    mode = "L" if channels == 1 else "RGB"
    arrays, corrupt, wrong = [], [], []
    for path, _ in files:
        try:
            with Image.open(path) as image:
                image = image.convert(mode)  # decodes the whole file: a truncated one fails here
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
            corrupt.append(f"{path} ({str(error) or type(error).__name__})")
            continue
        if image.size != (width, height):
            if not resize:
                wrong.append(f"{path} is {image.size[1]}×{image.size[0]}")
                continue
            image = image.resize((width, height), Image.Resampling.BILINEAR)
        pixels = np.asarray(image, dtype=np.uint8)  # (H, W) or (H, W, 3)
        arrays.append(pixels[None] if channels == 1 else pixels.transpose(2, 0, 1))
    _refuse(corrupt, "corrupt or unreadable image(s)", "delete or replace them")
    _refuse(
        wrong,
        f"image(s) not {height}×{width} (H×W, the spec's input)",
        f"pass --resize to resize every image to {height}×{width}, or change the spec's input",
    )
    return _stack(arrays, files, input_shape, np.uint8)


def _read_arrays(
    files: list[tuple[Path, int]], input_shape: tuple[int, ...], resize: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """float32 ``(N, *input_shape)`` and int64 ``(N,)`` from ``.npy`` files of the input's shape."""
    if resize:
        raise DataError(
            "--resize resizes images; .npy arrays are taken as they are: give them the spec's input shape"
        )
    shape = "×".join(map(str, input_shape))
    arrays, corrupt, wrong = [], [], []
    for path, _ in files:
        try:
            array = np.load(path, allow_pickle=False)  # no pickles: an .npy file cannot run code
        except (OSError, ValueError, EOFError) as error:
            corrupt.append(f"{path} ({error})")
            continue
        if input_shape[0] == 1 and array.shape == tuple(input_shape[1:]):
            array = array[None]  # one channel, stored without its axis
        if array.shape != tuple(input_shape):
            wrong.append(f"{path} is {'×'.join(map(str, array.shape)) or 'a scalar'}")
        elif not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
            corrupt.append(f"{path} (holds {array.dtype}, not numbers)")
        elif not np.isfinite(array.astype(np.float32)).all():
            corrupt.append(f"{path} (holds NaN or infinite values)")
        else:
            arrays.append(array.astype(np.float32))
    _refuse(corrupt, "unreadable .npy file(s)", "delete or replace them")
    _refuse(
        wrong, f"array(s) not {shape} (the spec's input)", f"save them as {shape} arrays, or change the spec"
    )
    return _stack(arrays, files, input_shape, np.float32)


def _stack(
    arrays: list, files: list, input_shape: tuple[int, ...], dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    stacked = np.stack(arrays) if arrays else np.zeros((0, *input_shape), dtype=dtype)
    return torch.from_numpy(stacked), torch.tensor([label for _, label in files], dtype=torch.int64)


# --------------------------------------------------------------------------------------------
# Augmentation, on whole batches of normalised tensors

AUGMENTATIONS = ("flip", "crop")
CROP_PADDING = 4  # pixels of zeros (the mean, after normalisation) around an image before cropping


def augment(
    x: torch.Tensor, names: tuple[str, ...], generator: torch.Generator, total: int, positions: torch.Tensor
) -> torch.Tensor:
    """``x`` ``(B, C, H, W)`` with a random horizontal flip (probability 1/2) and/or a random
    H×W crop of the image padded by ``CROP_PADDING``, each image its own draw.

    The draws are made for the whole global batch of ``total`` images from ``generator`` and
    ``positions`` (``(B,)``) picks this process's images from it, so the augmentation of an
    image does not depend on the number of processes.
    """
    flips = (torch.rand(total, generator=generator) < 0.5)[positions].to(x.device)  # (B,)
    offsets = torch.randint(0, 2 * CROP_PADDING + 1, (total, 2), generator=generator)[positions]
    if "crop" in names:
        b, _, h, w = x.shape
        padded = F.pad(x, (CROP_PADDING,) * 4)  # (B, C, H + 8, W + 8)
        offsets = offsets.to(x.device)
        rows = offsets[:, :1] + torch.arange(h, device=x.device)  # (B, H)
        cols = offsets[:, 1:] + torch.arange(w, device=x.device)  # (B, W)
        batch = torch.arange(b, device=x.device)[:, None, None]
        x = padded[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)  # (B, H, W, C) -> NCHW
    if "flip" in names:
        x = torch.where(flips[:, None, None, None], x.flip(3), x)
    return x
