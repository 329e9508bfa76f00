"""CIFAR-10: a small archive made here in the python-version format (a .tar.gz of pickled dicts,
``b"data"`` N×3072 uint8, ``b"labels"``), served from 127.0.0.1 as tests/test_download.py serves
MNIST: download success, checksum mismatch, truncation; reading, refusing a tampered pickle,
and a training run on it."""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import tarfile
from dataclasses import replace

import numpy as np
import pytest
import torch

from convcalc import data
from convcalc.data import DataError
from convcalc.spec import parse_spec
from convcalc.train import TrainConfig, train
from tests.conftest import run_cli
from tests.test_download import server  # noqa: F401 (the fixture)

PER_BATCH, TEST = 8, 6


def batches(seed: int = 0) -> dict[str, dict]:
    rng = np.random.default_rng(seed)
    out = {}
    for member, n in [*((name, PER_BATCH) for name in data.CIFAR_TRAIN), (data.CIFAR_TEST, TEST)]:
        out[member] = {
            b"batch_label": b"generated",
            b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
            b"labels": [int(v) for v in rng.integers(0, 10, size=n)],
        }
    return out


def archive(contents: dict[str, object]) -> bytes:
    """A .tar.gz of ``member -> pickled object`` (protocol 2, as the published batches)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for member, value in contents.items():
            body = pickle.dumps(value, protocol=2)
            info = tarfile.TarInfo(member)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return buffer.getvalue()


BATCHES = batches()
ARCHIVE = archive(BATCHES)


@pytest.fixture
def published(monkeypatch):
    info = data.DATASETS["cifar10"]
    md5 = {data.CIFAR_ARCHIVE: hashlib.md5(ARCHIVE).hexdigest()}
    monkeypatch.setitem(data.DATASETS, "cifar10", replace(info, md5=md5))
    monkeypatch.delenv("CONVCALC_DATA", raising=False)


def test_download_success_then_read(tmp_path, server, published):  # noqa: F811
    mirror = server.serve("kriz", {data.CIFAR_ARCHIVE: ARCHIVE})
    files = data.fetch("cifar10", tmp_path / "c", mirrors=[mirror])
    assert files == {data.CIFAR_ARCHIVE: tmp_path / "c" / data.CIFAR_ARCHIVE}
    assert [p.name for p in (tmp_path / "c").iterdir()] == [data.CIFAR_ARCHIVE]  # no .part left
    loaded = data.load("cifar10", tmp_path / "c", download=False)
    assert loaded.train_images.shape == (5 * PER_BATCH, 3, 32, 32) and loaded.test_images.shape == (
        TEST,
        3,
        32,
        32,
    )
    first = BATCHES[data.CIFAR_TRAIN[0]]
    # the format: a row holds 1024 red, then 1024 green, then 1024 blue values, each 32×32 row-major
    for image, channel, row, col in [(0, 0, 0, 0), (3, 1, 5, 31), (7, 2, 31, 7)]:
        expected = first[b"data"][image, channel * 1024 + row * 32 + col]
        assert int(loaded.train_images[image, channel, row, col]) == expected
    last = BATCHES[data.CIFAR_TRAIN[-1]]
    assert loaded.train_labels[-PER_BATCH:].tolist() == last[b"labels"]
    assert loaded.test_labels.tolist() == BATCHES[data.CIFAR_TEST][b"labels"]
    assert loaded.classes[0] == "airplane" and len(loaded.classes) == 10
    count = len(server.requests)
    data.fetch("cifar10", tmp_path / "c", mirrors=[mirror])
    assert len(server.requests) == count  # cached: not fetched again


def test_checksum_mismatch_with_the_published_md5(tmp_path, server, monkeypatch):  # noqa: F811
    monkeypatch.delenv("CONVCALC_DATA", raising=False)
    mirror = server.serve("kriz", {data.CIFAR_ARCHIVE: ARCHIVE})
    with pytest.raises(DataError, match="checksum mismatch.*expected c58f30108f718f92721af3b95e74349a"):
        data.fetch("cifar10", tmp_path / "c", mirrors=[mirror])
    assert not (tmp_path / "c").exists()


def test_truncated_download(tmp_path, server, published):  # noqa: F811
    mirror = server.serve("kriz", {data.CIFAR_ARCHIVE: ARCHIVE}, truncate=len(ARCHIVE) // 2)
    with pytest.raises(DataError, match="truncated") as error:
        data.fetch("cifar10", tmp_path / "c", mirrors=[mirror])
    assert "convcalc data fetch cifar10" in str(error.value) and data.CIFAR_ARCHIVE in str(error.value)
    assert not (tmp_path / "c").exists()


class Evil:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned",))


@pytest.mark.parametrize(
    "contents, message",
    [
        ({**BATCHES, data.CIFAR_TEST: Evil()}, "refusing to load posix.system"),
        (
            {k: v for k, v in BATCHES.items() if k != data.CIFAR_TEST},
            "no cifar-10-batches-py/test_batch inside",
        ),
        ({**BATCHES, data.CIFAR_TEST: {b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}}, "N×3072"),
        ({**BATCHES, data.CIFAR_TEST: {b"data": np.zeros((1, 3072), np.uint8), b"labels": [12]}}, "label 12"),
    ],
)
def test_a_bad_archive_is_named_and_never_runs_code(tmp_path, contents, message):
    path = tmp_path / data.CIFAR_ARCHIVE
    path.write_bytes(archive(contents))
    with pytest.raises(DataError, match=message) as error:
        data.read_cifar(path)
    assert str(path) in str(error.value)


def test_a_truncated_archive_on_disk(tmp_path):
    path = tmp_path / data.CIFAR_ARCHIVE
    path.write_bytes(ARCHIVE[: len(ARCHIVE) // 2])
    with pytest.raises(DataError, match="delete it and fetch it again"):
        data.read_cifar(path)


TINY = """name: tiny_cifar
input: [3, 32, 32]
layers:
  - {type: Conv2d, name: c1, out_channels: 4, kernel_size: 3, stride: 2, padding: 1}
  - {type: ReLU, name: r1}
  - {type: AdaptiveAvgPool2d, name: pool, output_size: 1}
  - {type: Flatten, name: flat}
  - {type: Linear, name: fc, out_features: 10}
"""


def test_train_and_cli_on_the_archive(tmp_path, one_torch_thread):
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / data.CIFAR_ARCHIVE).write_bytes(ARCHIVE)
    config = TrainConfig(
        dataset="cifar10", data_dir=str(tmp_path / "c"), epochs=1, batch_size=8, out=str(tmp_path / "r.pt")
    )
    result = train(parse_spec(TINY), config)
    assert len(result.epochs) == 1 and 0 <= result.test_accuracy <= 1
    assert torch.load(tmp_path / "r.pt", weights_only=True)["recipe"]["dataset"] == "cifar10"
    info = run_cli("data", "info", "cifar10", "--data-dir", str(tmp_path / "c"), "--json", timeout=120)
    assert info.returncode == 0, info.stderr
    (status,) = json.loads(info.stdout)["cifar10"]["files"]
    assert status["status"] == "unverified"  # parses, but not the published archive
    assert "46×3×32×32" in status["detail"] and "60000" in status["detail"]  # 5 × 8 + 6 images
