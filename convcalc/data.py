"""Image-classification data sets: reading, finding, downloading, verifying.

MNIST, Fashion-MNIST and KMNIST ship as four IDX files each (LeCun et al.'s format: a 4-byte
magic ``00 00 <type> <ndim>``, ``ndim`` big-endian uint32 sizes, then the values row-major),
usually gzipped. ``read_idx`` checks every one of those facts; a file that breaks one gets a
``DataError`` naming the file, never a crash or silent garbage. CIFAR-10 ships as one archive,
``cifar-10-python.tar.gz``, of pickled batches (``read_cifar``); it is read from the archive
itself, never unpacked, so a folder holds either the whole verified archive or nothing.

Where files are looked for, in order (the first folder holding all of a data set's files wins):

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
import io
import math
import os
import pickle
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from convcalc import interrupts
from convcalc.errors import ConvcalcError

if TYPE_CHECKING:
    import torch


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
    import torch  # here: finding and checking files needs no torch (`train` checks before it loads torch)

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
    import torch

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
    interrupts.remove_if_interrupted(tmp)  # a Ctrl-C ends the process without this function's except
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        interrupts.forget(tmp)


# --------------------------------------------------------------------------------------------
# The registry

TRAIN_IMAGES, TRAIN_LABELS = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"
TEST_IMAGES, TEST_LABELS = "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"
FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)
CIFAR_ARCHIVE = "cifar-10-python.tar.gz"
# the members of the archive: five training batches of 10,000 images and the test batch
CIFAR_TRAIN = tuple(f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6))
CIFAR_TEST = "cifar-10-batches-py/test_batch"


@dataclass(frozen=True)
class DatasetInfo:
    """One data set: where to get its files and what they hold."""

    name: str
    title: str
    homepage: str
    mirrors: tuple[str, ...]  # base URLs, tried in order; a file's URL is mirror + remote(file)
    md5: dict[str, str]  # remote(file) -> the published MD5 of the downloaded file
    classes: tuple[str, ...]
    sizes: dict[str, int]  # file -> number of examples
    input_shape: tuple[int, int, int] = (1, 28, 28)  # C×H×W of one image
    system_dirs: tuple[str, ...] = field(default=())  # found without being told (OS packages)
    files: tuple[str, ...] = FILES  # what a complete folder holds (IDX files: raw or .gz)
    format: str = "idx"  # "idx": four IDX files, fetched gzipped | "cifar": one python-version archive

    def remote(self, file: str) -> str:
        """The name ``file`` is downloaded as (and verified under): IDX files come gzipped."""
        return f"{file}.gz" if self.format == "idx" else file


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
    "cifar10": DatasetInfo(
        name="cifar10",
        title="CIFAR-10 (32×32 colour photos, 10 classes)",
        homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
        mirrors=("https://www.cs.toronto.edu/~kriz/",),
        md5={CIFAR_ARCHIVE: "c58f30108f718f92721af3b95e74349a"},
        classes=(
            "airplane",
            "automobile",
            "bird",
            "cat",
            "deer",
            "dog",
            "frog",
            "horse",
            "ship",
            "truck",
        ),
        sizes={CIFAR_ARCHIVE: 60000},
        input_shape=(3, 32, 32),
        files=(CIFAR_ARCHIVE,),
        format="cifar",
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
        try:
            if candidate.is_file():
                return candidate
        except OSError as error:  # e.g. a folder name longer than the file system allows
            raise DataError(
                f"{folder}: cannot look in this folder ({error.strerror or error}); fix: give --data-dir "
                "(or CONVCALC_DATA) a folder that exists and can be read"
            ) from None
    return None


def locate(name: str, data_dir: str | os.PathLike | None = None) -> dict[str, Path] | None:
    """The files of ``name`` from the first folder that holds all of them, or None."""
    files = dataset_info(name).files
    for folder in search_dirs(name, data_dir):
        found = {file: find_file(folder, file) for file in files}
        if all(found.values()):
            return found  # type: ignore[return-value]
    return None


def missing_message(name: str, data_dir: str | os.PathLike | None = None, reason: str = "") -> str:
    """What is missing, where it was looked for, and how to provide it."""
    info = dataset_info(name)
    dirs = search_dirs(name, data_dir)
    target = dirs[0]
    suffix = "(.gz)" if info.format == "idx" else ""
    missing = [f"{file}{suffix}" for file in info.files if find_file(target, file) is None]
    lines = [
        f"{info.title} ({name}) not found: missing {', '.join(missing)}",
        "looked in: " + "; ".join(str(d) for d in dirs),
    ]
    if reason:
        lines.append(reason)
    lines += [
        "to provide them, either:",
        f"  - run `convcalc data fetch {name}` where the internet is reachable (downloads into {target}), or",
        f"  - copy {_what_to_copy(info)}{info.homepage}) into {target}, or",
        f"  - pass --data-dir DIR (the folder holding the files) or set CONVCALC_DATA=DIR (with a {name}/ "
        "folder inside)",
    ]
    if name == "fashion-mnist":
        lines.append("  - on Debian/Ubuntu: apt-get install dataset-fashion-mnist")
    return "\n".join(lines)


def _what_to_copy(info: DatasetInfo) -> str:
    return (
        "the four files (raw or .gz, from "
        if info.format == "idx"
        else f"{info.files[0]} (as downloaded from "
    )


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
    interrupts.remove_if_interrupted(tmp)  # a Ctrl-C ends the process without the finally below
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
        interrupts.forget(tmp)


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
    for file in info.files:
        if find_file(target, file) is not None:
            continue
        remote = info.remote(file)
        try:
            download_file(
                [base.rstrip("/") + "/" + remote for base in bases],
                target / remote,
                info.md5[remote],
                progress,
            )
        except DataError as error:
            raise DataError(missing_message(name, data_dir, reason=str(error))) from None
        except OSError as error:  # the target folder itself cannot be written
            raise DataError(
                f"cannot write into {target} ({error.strerror or error}); pass --data-dir DIR"
            ) from None
    return {file: find_file(target, file) for file in info.files}  # type: ignore[misc]


# --------------------------------------------------------------------------------------------
# Loading


# --------------------------------------------------------------------------------------------
# CIFAR-10's python-version archive

# What a CIFAR batch may name when unpickled: numpy's array reconstruction, nothing else, so a
# tampered archive in a --data-dir cannot run code (plain pickle.load would run anything).
_CIFAR_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # how protocol-2 pickles store bytes
}


class _BatchUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _CIFAR_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _cifar_batch(archive: tarfile.TarFile, path: Path, member: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch of the archive: uint8 images ``(N, 3, 32, 32)`` and int64 labels ``(N,)``.

    A batch is a pickled dict (Python 2's, hence ``encoding="bytes"``): ``b"data"`` an N×3072
    uint8 array, each row the 1024 red, then green, then blue values of a 32×32 image row-major;
    ``b"labels"`` N ints 0-9.
    """
    import numpy as np
    import torch

    try:
        handle = archive.extractfile(member)
    except KeyError:
        raise DataError(f"{path}: no {member} inside; not the CIFAR-10 python-version archive") from None
    try:
        batch = _BatchUnpickler(io.BytesIO(handle.read()), encoding="bytes").load()
        images, labels = np.asarray(batch[b"data"]), np.asarray(batch[b"labels"], dtype=np.int64)
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError, AttributeError) as error:
        raise DataError(f"{path}: {member} is not a CIFAR batch ({type(error).__name__}: {error})") from None
    if images.dtype != np.uint8 or images.ndim != 2 or images.shape[1] != 3072 or len(labels) != len(images):
        raise DataError(
            f"{path}: {member} holds {images.dtype} data of shape {images.shape} and {len(labels)} labels; "
            "a CIFAR batch holds N×3072 uint8 values and N labels"
        )
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{path}: {member} has label {int(labels.max())}; CIFAR-10's are 0 to 9")
    return torch.from_numpy(images.reshape(-1, 3, 32, 32).copy()), torch.from_numpy(labels)


def read_cifar(
    path: str | os.PathLike,
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """(train, test) of the CIFAR-10 python-version archive ``path``, each (images, labels)."""
    import torch

    path = Path(path)
    try:
        with tarfile.open(path, "r:gz") as archive:
            train = [_cifar_batch(archive, path, member) for member in CIFAR_TRAIN]
            test = _cifar_batch(archive, path, CIFAR_TEST)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (tarfile.TarError, EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise DataError(
            f"{path}: not a readable .tar.gz ({error or type(error).__name__}); delete it and fetch it again"
        ) from None
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror or error})") from None
    images, labels = zip(*train, strict=True)
    return (torch.cat(images), torch.cat(labels)), test


@dataclass(frozen=True)
class Dataset:
    """A data set in memory: images ``(N, H, W)`` (one channel, as in IDX files) or
    ``(N, C, *spatial)``, uint8 (pixels 0-255) or float32 (``.npy`` arrays, taken as they are);
    int64 labels ``(N,)``."""

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
    if info.format == "cifar":
        path = files[CIFAR_ARCHIVE]
        (train_images, train_labels), (test_images, test_labels) = read_cifar(path)
        return Dataset(name, path.parent, info.classes, train_images, train_labels, test_images, test_labels)
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
    for file in info.files:
        path = find_file(folder, file)
        if path is None:
            where = f"no {file} or {file}.gz" if info.format == "idx" else f"no {file}"
            statuses.append(FileStatus(file, None, None, "missing", where))
            continue
        size = path.stat().st_size
        if path.suffix == ".gz" and md5sum(path) == info.md5.get(path.name):
            statuses.append(FileStatus(file, path, size, "ok", "MD5 matches the published checksum"))
            continue
        try:
            if info.format == "cifar":
                (train, _), (test, _) = read_cifar(path)
                dims = (len(train) + len(test), *train.shape[1:])  # both splits together
            else:
                dims = tuple(read_idx(path, ndim=3 if "images" in file else 1).shape)
        except DataError as error:
            statuses.append(FileStatus(file, path, size, "corrupt", str(error)))
            continue
        shape = "×".join(map(str, dims))
        if dims[0] != info.sizes[file]:
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
