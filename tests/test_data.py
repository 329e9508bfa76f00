"""IDX files, the data-set search order, loading and inspecting (convcalc.data).

The IDX oracle is the format's definition (LeCun et al., "THE MNIST DATABASE" page): bytes built
here by hand with ``struct``, independently of ``write_idx``.
"""

from __future__ import annotations

import gzip
import hashlib
import struct
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from convcalc import data
from convcalc.data import DataError
from tests.conftest import MNIST_DIR

SHARED_MNIST = MNIST_DIR  # $CONVCALC_MNIST_DIR, $CONVCALC_DATA/mnist or ../shared/data/mnist
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


def idx_bytes(values: np.ndarray) -> bytes:
    """IDX by the book: 0x0000, type 0x08 (uint8), rank, big-endian uint32 sizes, row-major data."""
    return (
        struct.pack(">HBB", 0, 0x08, values.ndim)
        + struct.pack(f">{values.ndim}I", *values.shape)
        + values.tobytes()
    )


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.mark.parametrize("shape", [(5, 28, 28), (3, 4, 7), (11,), (0,), (2, 3, 4, 5)])
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_of_hand_built_file(tmp_path, rng, shape, gz):
    values = rng.integers(0, 256, size=shape, dtype=np.uint8)
    raw = idx_bytes(values)
    path = tmp_path / ("x.gz" if gz else "x")
    path.write_bytes(gzip.compress(raw) if gz else raw)
    result = data.read_idx(path)
    assert result.dtype == torch.uint8 and tuple(result.shape) == shape
    assert np.array_equal(result.numpy(), values)


@pytest.mark.parametrize("gz", [False, True])
def test_write_idx_writes_the_standard_bytes_and_round_trips(tmp_path, rng, gz):
    values = rng.integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    path = data.write_idx(tmp_path / ("y.gz" if gz else "y"), torch.from_numpy(values))
    raw = gzip.decompress(path.read_bytes()) if gz else path.read_bytes()
    assert raw == idx_bytes(values)
    assert torch.equal(data.read_idx(path, ndim=3), torch.from_numpy(values))
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left


def test_truncated_payload_names_the_file(tmp_path, rng):
    raw = idx_bytes(rng.integers(0, 256, size=(10, 28, 28), dtype=np.uint8))
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(raw[:-100])
    with pytest.raises(DataError, match="truncated") as error:
        data.read_idx(path)
    assert str(path) in str(error.value) and "7840 values" in str(error.value)


def test_truncated_gzip_stream(tmp_path, rng):
    packed = gzip.compress(idx_bytes(rng.integers(0, 256, size=(50, 28, 28), dtype=np.uint8)))
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(DataError, match="truncated gzip") as error:
        data.read_idx(path)
    assert str(path) in str(error.value)


def test_truncated_header(tmp_path):
    path = tmp_path / "labels"
    path.write_bytes(struct.pack(">HBB", 0, 8, 3) + struct.pack(">I", 5))  # rank 3, one size
    with pytest.raises(DataError, match="truncated header"):
        data.read_idx(path)
    path.write_bytes(b"\x00\x00")
    with pytest.raises(DataError, match="too short"):
        data.read_idx(path)


def test_wrong_magic(tmp_path):
    path = tmp_path / "labels"
    path.write_bytes(b"\x12\x34\x08\x01" + struct.pack(">I", 2) + b"\x01\x02")
    with pytest.raises(DataError, match="wrong magic number 0x12340801") as error:
        data.read_idx(path)
    assert str(path) in str(error.value)


def test_gzipped_file_without_gz_name_is_explained(tmp_path, rng):
    path = tmp_path / "labels"
    path.write_bytes(gzip.compress(idx_bytes(rng.integers(0, 10, size=(5,), dtype=np.uint8))))
    with pytest.raises(DataError, match="still gzipped"):
        data.read_idx(path)


def test_not_gzip_with_gz_name(tmp_path):
    path = tmp_path / "labels.gz"
    path.write_bytes(b"plain text, not gzip")
    with pytest.raises(DataError, match="not a valid gzip file"):
        data.read_idx(path)


def test_trailing_bytes_wrong_type_and_wrong_rank(tmp_path, rng):
    values = rng.integers(0, 256, size=(4, 3), dtype=np.uint8)
    path = tmp_path / "f"
    path.write_bytes(idx_bytes(values) + b"\x00\x00")
    with pytest.raises(DataError, match="2 bytes after"):
        data.read_idx(path)
    path.write_bytes(struct.pack(">HBB", 0, 0x0D, 1) + struct.pack(">I", 1) + b"\x00" * 4)
    with pytest.raises(DataError, match="float32"):
        data.read_idx(path)
    path.write_bytes(idx_bytes(values))
    with pytest.raises(DataError, match="2 dimension.*expected 3"):
        data.read_idx(path, ndim=3)


def _images(rng, n, size=28):
    return torch.from_numpy(rng.integers(0, 256, size=(n, size, size), dtype=np.uint8))


def _labels(rng, n, classes=10):
    return torch.from_numpy(rng.integers(0, classes, size=(n,), dtype=np.uint8))


def test_load_count_mismatch(tmp_path, rng):
    data.write_dataset(tmp_path, (_images(rng, 5), _labels(rng, 4)), (_images(rng, 3), _labels(rng, 3)))
    with pytest.raises(DataError, match="4 labels for the 5 images") as error:
        data.load("mnist", tmp_path, download=False)
    assert "train-labels-idx1-ubyte" in str(error.value)


def test_load_label_out_of_range_and_wrong_image_size(tmp_path, rng):
    data.write_dataset(
        tmp_path,
        (_images(rng, 5), _labels(rng, 5)),
        (_images(rng, 3), torch.tensor([1, 10, 3], dtype=torch.uint8)),
    )
    with pytest.raises(
        DataError, match="t10k-labels-idx1-ubyte: label 10 out of range; mnist has 10 classes"
    ):
        data.load("mnist", tmp_path, download=False)
    data.write_dataset(tmp_path, (_images(rng, 5, 32), _labels(rng, 5)), (_images(rng, 3), _labels(rng, 3)))
    with pytest.raises(DataError, match="images are 32×32, mnist images are 28×28"):
        data.load("mnist", tmp_path, download=False)


@pytest.mark.parametrize("gz", [False, True])
def test_load_generated_dataset(tmp_path, rng, gz):
    train = (_images(rng, 6), _labels(rng, 6))
    test = (_images(rng, 4), _labels(rng, 4))
    data.write_dataset(tmp_path, train, test, gz=gz)
    loaded = data.load("kmnist", tmp_path, download=False)
    assert torch.equal(loaded.train_images, train[0]) and torch.equal(loaded.test_images, test[0])
    assert loaded.train_labels.dtype == torch.int64 and torch.equal(loaded.test_labels, test[1].long())
    assert loaded.folder == tmp_path and loaded.classes[1] == "ki"


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No $CONVCALC_DATA, a cache under tmp_path, and no system folders."""
    monkeypatch.delenv("CONVCALC_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for name, info in data.DATASETS.items():
        monkeypatch.setitem(data.DATASETS, name, replace(info, system_dirs=()))
    return tmp_path


def test_search_order(isolated, monkeypatch, rng):
    monkeypatch.setenv("CONVCALC_DATA", str(isolated / "env"))
    dirs = data.search_dirs("mnist", isolated / "explicit")
    assert dirs == [
        isolated / "explicit",
        isolated / "env" / "mnist",
        isolated / "cache" / "convcalc" / "mnist",
    ]
    assert data.locate("mnist", isolated / "explicit") is None
    pairs = lambda n: ((_images(rng, n), _labels(rng, n)), (_images(rng, 2), _labels(rng, 2)))  # noqa: E731
    data.write_dataset(isolated / "cache" / "convcalc" / "mnist", *pairs(3))
    assert len(data.load("mnist", isolated / "explicit", download=False).train_images) == 3
    data.write_dataset(isolated / "env" / "mnist", *pairs(4))
    assert len(data.load("mnist", isolated / "explicit", download=False).train_images) == 4
    data.write_dataset(isolated / "explicit", *pairs(5), gz=True)
    assert len(data.load("mnist", isolated / "explicit", download=False).train_images) == 5
    # a folder missing one file is passed over
    (isolated / "explicit" / f"{data.TEST_LABELS}.gz").unlink()
    assert len(data.load("mnist", isolated / "explicit", download=False).train_images) == 4


def test_fashion_mnist_system_folder_is_found_without_being_told(monkeypatch, tmp_path):
    monkeypatch.delenv("CONVCALC_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert data.search_dirs("fashion-mnist")[-1] == DEBIAN_FASHION
    assert DEBIAN_FASHION not in data.search_dirs("mnist")


def test_missing_message_says_what_where_and_how(isolated):
    with pytest.raises(DataError) as error:
        data.load("fashion-mnist", isolated / "mine", download=False)
    message = str(error.value)
    for file in data.FILES:
        assert file in message
    assert (
        str(isolated / "mine") in message
        and str(isolated / "cache" / "convcalc" / "fashion-mnist") in message
    )
    assert "convcalc data fetch fashion-mnist" in message and "--data-dir" in message
    assert "CONVCALC_DATA" in message and "apt-get install dataset-fashion-mnist" in message


def test_unknown_dataset():
    with pytest.raises(DataError, match="unknown dataset 'cifar'.*mnist, fashion-mnist, kmnist"):
        data.dataset_info("cifar")


def test_inspect_statuses(isolated, monkeypatch, rng):
    folder = isolated / "d"
    data.write_dataset(
        folder, (_images(rng, 6), _labels(rng, 6)), (_images(rng, 4), _labels(rng, 4)), gz=True
    )
    gz = folder / f"{data.TRAIN_LABELS}.gz"
    published = hashlib.md5(gz.read_bytes()).hexdigest()  # pretend our generated file is the published one
    info = data.DATASETS["mnist"]
    monkeypatch.setitem(data.DATASETS, "mnist", replace(info, md5={**info.md5, gz.name: published}))
    (folder / f"{data.TEST_LABELS}.gz").unlink()
    corrupt = folder / f"{data.TEST_IMAGES}.gz"
    corrupt.write_bytes(corrupt.read_bytes()[:40])
    where, statuses = data.inspect("mnist", folder)
    by_file = {s.file: s for s in statuses}
    assert where == folder
    assert by_file[data.TRAIN_LABELS].status == "ok"
    assert by_file[data.TRAIN_IMAGES].status == "unverified"
    assert "not the published 60000" in by_file[data.TRAIN_IMAGES].detail
    assert by_file[data.TEST_IMAGES].status == "corrupt" and str(corrupt) in by_file[data.TEST_IMAGES].detail
    assert by_file[data.TEST_LABELS].status == "missing" and by_file[data.TEST_LABELS].path is None


# --- the real files ----------------------------------------------------------------------------

PUBLISHED = data.DATASETS["mnist"].md5


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason=f"{SHARED_MNIST} is absent (set CONVCALC_MNIST_DIR)")
@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_shared_mnist_files_match_published_md5_and_parse(name):
    path = SHARED_MNIST / name
    if not path.exists():
        pytest.skip(f"{path} is absent")
    assert hashlib.md5(path.read_bytes()).hexdigest() == PUBLISHED[name]
    values = data.read_idx(path)
    n = 60000 if name.startswith("train") else 10000
    if "images" in name:
        assert tuple(values.shape) == (n, 28, 28)
        assert int(values.max()) == 255 and int(values.min()) == 0
    else:
        assert tuple(values.shape) == (n,)
        assert torch.bincount(values.long(), minlength=10).min() > n // 20  # all ten digits, roughly balanced


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason=f"{SHARED_MNIST} is absent (set CONVCALC_MNIST_DIR)")
def test_inspect_shared_mnist_reports_ok():
    folder, statuses = data.inspect("mnist", SHARED_MNIST)
    present = [s for s in statuses if s.path is not None]
    assert present and all(s.status == "ok" for s in present)


@pytest.mark.skipif(not DEBIAN_FASHION.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_debian_fashion_mnist_loads():
    loaded = data.load("fashion-mnist", DEBIAN_FASHION, download=False)
    assert tuple(loaded.train_images.shape) == (60000, 28, 28) and tuple(loaded.test_images.shape) == (
        10000,
        28,
        28,
    )
    assert torch.equal(torch.bincount(loaded.train_labels), torch.full((10,), 6000))  # balanced by design
