"""Image-classification data sets in the IDX format: reading, finding, downloading, verifying.

MNIST, Fashion-MNIST and KMNIST ship as four IDX files each (LeCun et al.'s format: a 4-byte
magic ``00 00 <type> <ndim>``, ``ndim`` big-endian uint32 sizes, then the values row-major),
usually gzipped. ``read_idx`` checks every one of those facts; a file that breaks one gets a
``DataError`` naming the file, never a crash or silent garbage.

Where files are looked for, in order (the first folder holding all four files wins):

1. ``data_dir`` (``--data-dir DIR``): the data set's folder itself;
2. ``$CONVCALC_DATA/<dataset>``: ``CONVCALC_DATA`` is a parent with one folder per data set;
3. ``${XDG_CACHE_HOME:-~/.cache}/convcalc/<dataset>``, where downloads go by default;
4. system folders, e.g. ``/usr/share/datasets/fashion-mnist`` of Debian's ``dataset-fashion-mnist``.

Missing files are downloaded into the first of 1-3, from the data set's mirrors one after
another; each file is streamed to a temporary name in that folder, its MD5 compared with the
published one, and only then renamed into place, so no partial or wrong file is ever left.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import math
import os
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from convcalc.errors import ConvcalcError


class DataError(ConvcalcError):
    """A data file is missing, unreadable or corrupt, or a download failed; the message says
    which file, where it was looked for, and how to provide it."""


# --------------------------------------------------------------------------------------------
# IDX files

_IDX_UINT8 = 0x08  # the only element type MNIST-style image and label files use
_IDX_TYPE_NAMES = {
    0x08: "uint8",
    0x09: "int8",
    0x0B: "int16",
    0x0C: "int32",
    0x0D: "float32",
    0x0E: "float64",
}


def _read_bytes(path: Path) -> bytes:
    """The file's content, gunzipped when its name ends in ``.gz``."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                return handle.read()
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except EOFError:
        raise DataError(
            f"{path}: truncated gzip stream (an interrupted download?); delete it and fetch it again"
        ) from None
    except (gzip.BadGzipFile, zlib.error) as error:
        raise DataError(f"{path}: not a valid gzip file ({error}); delete it and fetch it again") from None
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror or error})") from None


def read_idx(path: str | os.PathLike, ndim: int | None = None) -> torch.Tensor:
    """The uint8 tensor stored in the IDX file ``path`` (raw or ``.gz``), shaped as its header says.

    ``ndim``, when given, is the number of dimensions the caller needs (3 for images, 1 for labels).
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise DataError(
            f"{path}: {len(data)} bytes, too short for an IDX header (4 bytes at least); truncated?"
        )
    if data[0] != 0 or data[1] != 0:
        raise DataError(
            f"{path}: wrong magic number 0x{data[:4].hex()} (an IDX file starts 0x0000 then type and rank); "
            "not an IDX file" + (" (still gzipped? name it .gz)" if data[:2] == b"\x1f\x8b" else "")
        )
    dtype, rank = data[2], data[3]
    if dtype != _IDX_UINT8:
        name = _IDX_TYPE_NAMES.get(dtype, f"unknown type 0x{dtype:02x}")
        raise DataError(f"{path}: holds {name} values; convcalc reads uint8 IDX files (type 0x08)")
    if ndim is not None and rank != ndim:
        raise DataError(f"{path}: has {rank} dimension(s), expected {ndim} (images are N×H×W, labels N)")
    header = 4 + 4 * rank
    if len(data) < header:
        raise DataError(f"{path}: truncated header ({len(data)} of {header} bytes)")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(rank))
    expected = math.prod(shape)
    payload = len(data) - header
    if payload < expected:
        raise DataError(
            f"{path}: truncated: the header promises {'×'.join(map(str, shape))} = {expected} values, "
            f"the file holds {payload}; delete it and fetch it again"
        )
    if payload > expected:
        raise DataError(
            f"{path}: {payload - expected} bytes after the {'×'.join(map(str, shape))} values the header "
            "declares; a corrupt file"
        )
    if expected == 0:
        return torch.empty(shape, dtype=torch.uint8)
    return torch.frombuffer(bytearray(data), dtype=torch.uint8, offset=header, count=expected).reshape(shape)


def write_idx(path: str | os.PathLike, values: torch.Tensor) -> Path:
    """Write a uint8 tensor as an IDX file (gzipped when ``path`` ends in ``.gz``), atomically."""
    path = Path(path)
    if values.dtype != torch.uint8:
        raise ValueError(f"write_idx writes uint8 tensors, got {values.dtype}")
    header = bytes([0, 0, _IDX_UINT8, values.dim()]) + b"".join(n.to_bytes(4, "big") for n in values.shape)
    data = header + values.contiguous().numpy().tobytes()
    if path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    _atomic_write(path, data)
    return path


def write_dataset(
    folder: str | os.PathLike,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    gz: bool = False,
) -> Path:
    """Write (images ``(N, H, W)``, labels ``(N,)``) uint8 pairs as the four files of a data set
    in ``folder`` (e.g. generated data for tests, or a subset of a real set)."""
    folder = Path(folder)
    suffix = ".gz" if gz else ""
    for (images, labels), (images_file, labels_file) in zip(
        (train, test), ((TRAIN_IMAGES, TRAIN_LABELS), (TEST_IMAGES, TEST_LABELS)), strict=True
    ):
        write_idx(folder / f"{images_file}{suffix}", images)
        write_idx(folder / f"{labels_file}{suffix}", labels)
    return folder


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------------------------
# The registry

TRAIN_IMAGES, TRAIN_LABELS = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"
TEST_IMAGES, TEST_LABELS = "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"
FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)


@dataclass(frozen=True)
class DatasetInfo:
    """One data set: where to get its four files and what they hold."""

    name: str
    title: str
    homepage: str
    mirrors: tuple[str, ...]  # base URLs, tried in order; a file's URL is mirror + "<file>.gz"
    md5: dict[str, str]  # "<file>.gz" -> the published MD5 of the gzipped file
    classes: tuple[str, ...]
    sizes: dict[str, int]  # file -> number of examples
    input_shape: tuple[int, int, int] = (1, 28, 28)  # C×H×W of one image
    system_dirs: tuple[str, ...] = field(default=())  # found without being told (OS packages)


# Mirrors and MD5s as published by the data sets' authors (and used by torchvision.datasets).
DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo(
        name="mnist",
        title="MNIST handwritten digits",
        homepage="http://yann.lecun.com/exdb/mnist/",
        mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
        md5={
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
        classes=tuple("0123456789"),
        sizes={TRAIN_IMAGES: 60000, TRAIN_LABELS: 60000, TEST_IMAGES: 10000, TEST_LABELS: 10000},
    ),
    "fashion-mnist": DatasetInfo(
        name="fashion-mnist",
        title="Fashion-MNIST (Zalando article images)",
        homepage="https://github.com/zalandoresearch/fashion-mnist",
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        md5={
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
        classes=(
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
        sizes={TRAIN_IMAGES: 60000, TRAIN_LABELS: 60000, TEST_IMAGES: 10000, TEST_LABELS: 10000},
        system_dirs=("/usr/share/datasets/fashion-mnist",),  # Debian's dataset-fashion-mnist
    ),
    "kmnist": DatasetInfo(
        name="kmnist",
        title="Kuzushiji-MNIST (cursive Japanese hiragana)",
        homepage="https://github.com/rois-codh/kmnist",
        mirrors=("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
        md5={
            "train-images-idx3-ubyte.gz": "bdb82020997e1d708af4cf47b453dcf7",
            "train-labels-idx1-ubyte.gz": "e144d726b3acfaa3e44228e80efcd344",
            "t10k-images-idx3-ubyte.gz": "5c965bf0a639b31b8f53240b1b52f4d7",
            "t10k-labels-idx1-ubyte.gz": "7320c461ea6c1c855c0b718fb2a4b134",
        },
        classes=("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
        sizes={TRAIN_IMAGES: 60000, TRAIN_LABELS: 60000, TEST_IMAGES: 10000, TEST_LABELS: 10000},
    ),
}


def dataset_info(name: str) -> DatasetInfo:
    try:
        return DATASETS[name]
    except KeyError:
        raise DataError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}") from None


# --------------------------------------------------------------------------------------------
# Finding files


def cache_root() -> Path:
    """``${XDG_CACHE_HOME:-~/.cache}/convcalc``: one folder per data set below it."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "convcalc"


def search_dirs(name: str, data_dir: str | os.PathLike | None = None) -> list[Path]:
    """The folders looked in for data set ``name``, in order (see the module docstring)."""
    info = dataset_info(name)
    dirs: list[Path] = []
    if data_dir is not None:
        dirs.append(Path(data_dir).expanduser())
    if os.environ.get("CONVCALC_DATA"):
        dirs.append(Path(os.environ["CONVCALC_DATA"]).expanduser() / name)
    dirs.append(cache_root() / name)
    dirs.extend(Path(d) for d in info.system_dirs)
    return dirs


def download_dir(name: str, data_dir: str | os.PathLike | None = None) -> Path:
    """Where missing files of ``name`` are downloaded: the first user folder of ``search_dirs``."""
    return search_dirs(name, data_dir)[0]


def find_file(folder: Path, file: str) -> Path | None:
    """``folder/file`` or ``folder/file.gz``, whichever exists (the raw file first)."""
    for candidate in (folder / file, folder / f"{file}.gz"):
        if candidate.is_file():
            return candidate
    return None


def locate(name: str, data_dir: str | os.PathLike | None = None) -> dict[str, Path] | None:
    """The four files of ``name`` from the first folder that holds all of them, or None."""
    for folder in search_dirs(name, data_dir):
        found = {file: find_file(folder, file) for file in FILES}
        if all(found.values()):
            return found  # type: ignore[return-value]
    return None


def missing_message(name: str, data_dir: str | os.PathLike | None = None, reason: str = "") -> str:
    """What is missing, where it was looked for, and how to provide it."""
    info = dataset_info(name)
    dirs = search_dirs(name, data_dir)
    target = dirs[0]
    missing = [f"{file}(.gz)" for file in FILES if find_file(target, file) is None]
    lines = [
        f"{info.title} ({name}) not found: missing {', '.join(missing)}",
        "looked in: " + "; ".join(str(d) for d in dirs),
    ]
    if reason:
        lines.append(reason)
    lines += [
        "to provide them, either:",
        f"  - run `convcalc data fetch {name}` where the internet is reachable (downloads into {target}), or",
        f"  - copy the four files (raw or .gz, from {info.homepage}) into {target}, or",
        f"  - pass --data-dir DIR (the folder holding the files) or set CONVCALC_DATA=DIR (with a {name}/ "
        "folder inside)",
    ]
    if name == "fashion-mnist":
        lines.append("  - on Debian/Ubuntu: apt-get install dataset-fashion-mnist")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Downloading

Progress = Callable[[str, int, int | None], None]  # (file name, bytes so far, total bytes or None)
_CHUNK = 1 << 16


def md5sum(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_file(
    urls: list[str], dest: Path, md5: str, progress: Progress | None = None, timeout: float = 30.0
) -> Path:
    """Fetch ``dest`` from the first of ``urls`` that delivers the whole file with MD5 ``md5``.

    The bytes go to a temporary file beside ``dest`` that is renamed only once complete and
    verified; on any failure it is deleted and the next URL tried. All failing -> ``DataError``
    listing each URL's reason.
    """
    created = [folder for folder in (dest.parent, *dest.parent.parents) if not folder.exists()]
    dest.parent.mkdir(parents=True, exist_ok=True)
    failures = []
    for url in urls:
        try:
            _download_one(url, dest, md5, progress, timeout)
            return dest
        except _DownloadFailed as error:
            failures.append(f"{url}: {error}")
    for folder in created:  # innermost first: a failed download leaves no empty cache folder
        try:
            folder.rmdir()
        except OSError:
            break  # not empty (another file landed there) or not ours to remove
    raise DataError(f"could not download {dest.name}:\n  " + "\n  ".join(failures))


class _DownloadFailed(Exception):
    pass


def _download_one(url: str, dest: Path, md5: str, progress: Progress | None, timeout: float) -> None:
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        digest, received = hashlib.md5(), 0
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                if progress is not None:
                    progress(dest.name, received, total)
        if total is not None and received != total:
            raise _DownloadFailed(f"truncated: received {received} of {total} bytes")
        if digest.hexdigest() != md5:
            raise _DownloadFailed(
                f"checksum mismatch: MD5 {digest.hexdigest()}, expected {md5}; file rejected"
            )
        os.replace(tmp, dest)
    except urllib.error.HTTPError as error:
        raise _DownloadFailed(f"HTTP {error.code} {error.reason}") from None
    except urllib.error.URLError as error:
        raise _DownloadFailed(f"unreachable ({error.reason})") from None
    except http.client.IncompleteRead as error:
        raise _DownloadFailed(
            f"truncated: connection closed after {received + len(error.partial)} bytes"
        ) from None
    except (OSError, http.client.HTTPException, ValueError) as error:
        raise _DownloadFailed(f"{type(error).__name__}: {error}") from None
    finally:
        tmp.unlink(missing_ok=True)  # gone already when renamed into place


def fetch(
    name: str,
    data_dir: str | os.PathLike | None = None,
    mirrors: list[str] | None = None,
    progress: Progress | None = None,
) -> dict[str, Path]:
    """Make sure the four files of ``name`` exist somewhere ``locate`` looks, downloading the
    missing ones into ``download_dir``; returns the files. ``mirrors`` replaces the data set's
    public mirrors (e.g. an internal mirror)."""
    info = dataset_info(name)
    found = locate(name, data_dir)
    if found is not None:
        return found
    target = download_dir(name, data_dir)
    bases = list(mirrors) if mirrors else list(info.mirrors)
    for file in FILES:
        if find_file(target, file) is not None:
            continue
        gz = f"{file}.gz"
        try:
            download_file(
                [base.rstrip("/") + "/" + gz for base in bases], target / gz, info.md5[gz], progress
            )
        except DataError as error:
            raise DataError(missing_message(name, data_dir, reason=str(error))) from None
        except OSError as error:  # the target folder itself cannot be written
            raise DataError(
                f"cannot write into {target} ({error.strerror or error}); pass --data-dir DIR"
            ) from None
    return {file: find_file(target, file) for file in FILES}  # type: ignore[misc]


# --------------------------------------------------------------------------------------------
# Loading


@dataclass(frozen=True)
class Dataset:
    """A data set in memory: uint8 images ``(N, H, W)`` and int64 labels ``(N,)``."""

    name: str
    folder: Path
    classes: tuple[str, ...]
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor


def load(
    name: str = "mnist",
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    progress: Progress | None = None,
) -> Dataset:
    """Data set ``name`` from the first folder holding its files, downloaded when missing
    (``download=False``: a ``DataError`` saying how to provide them instead)."""
    info = dataset_info(name)
    files = fetch(name, data_dir, progress=progress) if download else locate(name, data_dir)
    if files is None:
        raise DataError(missing_message(name, data_dir))
    splits = []
    for images_file, labels_file in ((TRAIN_IMAGES, TRAIN_LABELS), (TEST_IMAGES, TEST_LABELS)):
        images = read_idx(files[images_file], ndim=3)
        labels = read_idx(files[labels_file], ndim=1)
        if tuple(images.shape[1:]) != info.input_shape[1:]:
            raise DataError(
                f"{files[images_file]}: images are {images.shape[1]}×{images.shape[2]}, {name} images are "
                f"{info.input_shape[1]}×{info.input_shape[2]}"
            )
        if len(images) != len(labels):
            raise DataError(
                f"{files[labels_file]}: {len(labels)} labels for the {len(images)} images of "
                f"{files[images_file].name}; the two files must come from the same release"
            )
        if len(labels) and int(labels.max()) >= len(info.classes):
            raise DataError(
                f"{files[labels_file]}: label {int(labels.max())} out of range; {name} has "
                f"{len(info.classes)} classes (0 to {len(info.classes) - 1})"
            )
        splits.append((images, labels.long()))
    (train_images, train_labels), (test_images, test_labels) = splits
    return Dataset(
        name, files[TRAIN_IMAGES].parent, info.classes, train_images, train_labels, test_images, test_labels
    )


# --------------------------------------------------------------------------------------------
# Inspecting


@dataclass(frozen=True)
class FileStatus:
    file: str
    path: Path | None  # None when missing
    size: int | None
    status: str  # "ok" | "missing" | "unverified" | "corrupt"
    detail: str


def inspect(name: str, data_dir: str | os.PathLike | None = None) -> tuple[Path, list[FileStatus]]:
    """Where data set ``name`` is, and each file's state: its MD5 is the published one (ok), or
    it parses with the right size but is a repacked or uncompressed copy (unverified), or it is
    corrupt or missing. The folder is the one ``load`` would use, else the download folder."""
    info = dataset_info(name)
    files = locate(name, data_dir)
    folder = next(iter(files.values())).parent if files else download_dir(name, data_dir)
    statuses = []
    for file in FILES:
        path = find_file(folder, file)
        if path is None:
            statuses.append(FileStatus(file, None, None, "missing", f"no {file} or {file}.gz"))
            continue
        size = path.stat().st_size
        if path.suffix == ".gz" and md5sum(path) == info.md5[path.name]:
            statuses.append(FileStatus(file, path, size, "ok", "MD5 matches the published checksum"))
            continue
        try:
            values = read_idx(path, ndim=3 if "images" in file else 1)
        except DataError as error:
            statuses.append(FileStatus(file, path, size, "corrupt", str(error)))
            continue
        shape = "×".join(map(str, values.shape))
        if len(values) != info.sizes[file]:
            statuses.append(
                FileStatus(
                    file,
                    path,
                    size,
                    "unverified",
                    f"parses ({shape}), not the published {info.sizes[file]} examples",
                )
            )
        else:
            why = "uncompressed" if path.suffix != ".gz" else "repacked (MD5 of the .gz differs)"
            statuses.append(FileStatus(file, path, size, "unverified", f"parses ({shape}); {why} copy"))
    return folder, statuses
