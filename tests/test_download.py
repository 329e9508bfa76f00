"""Downloads against a local HTTP server on 127.0.0.1 serving generated files (never the internet).

The data sets' published MD5s are swapped for those of the generated files, so the real
verification code runs unchanged.
"""

from __future__ import annotations

import gzip
import hashlib
import threading
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import torch

from convcalc import data
from convcalc.data import DataError
from tests.conftest import run_cli


def _files() -> dict[str, bytes]:
    """The four gzipped IDX files of a small generated data set, by name."""
    rng = np.random.default_rng(1)
    out = {}
    for file, shape in ((data.TRAIN_IMAGES, (20, 28, 28)), (data.TRAIN_LABELS, (20,)),
                        (data.TEST_IMAGES, (6, 28, 28)), (data.TEST_LABELS, (6,))):  # fmt: skip
        values = rng.integers(0, 10 if len(shape) == 1 else 256, size=shape, dtype=np.uint8)
        header = bytes([0, 0, 8, len(shape)]) + b"".join(n.to_bytes(4, "big") for n in shape)
        out[f"{file}.gz"] = gzip.compress(header + values.tobytes(), mtime=0)
    return out


FILES = _files()


class Server:
    """Serves ``routes[path] = (status, body, declared_length)`` on 127.0.0.1; counts requests."""

    def __init__(self):
        self.routes: dict[str, tuple[int, bytes, int | None]] = {}
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                server.requests.append(self.path)
                status, body, length = server.routes.get(self.path, (404, b"not found", None))
                self.send_response(status)
                self.send_header("Content-Length", str(len(body) if length is None else length))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()
                self.close_connection = True  # a short body then ends the response early

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def serve(self, prefix: str, files: dict[str, bytes], truncate: int | None = None) -> str:
        """Serve ``files`` under ``/prefix/``; ``truncate``: send only that many bytes of each body
        while declaring the full length. Returns the mirror's base URL."""
        for name, body in files.items():
            self.routes[f"/{prefix}/{name}"] = (200, body[:truncate] if truncate else body, len(body))
        return f"{self.base}/{prefix}/"


@pytest.fixture
def server():
    s = Server()
    s.thread.start()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


@pytest.fixture
def published(monkeypatch):
    """mnist's published MD5s become those of the generated files; no other folder is searched."""
    info = data.DATASETS["mnist"]
    md5 = {name: hashlib.md5(body).hexdigest() for name, body in FILES.items()}
    monkeypatch.setitem(data.DATASETS, "mnist", replace(info, md5=md5, system_dirs=()))
    monkeypatch.delenv("CONVCALC_DATA", raising=False)


def test_download_success(tmp_path, server, published):
    mirror = server.serve("good", FILES)
    seen = []
    files = data.fetch("mnist", tmp_path / "mnist", mirrors=[mirror], progress=lambda *a: seen.append(a))
    assert {p.name for p in files.values()} == set(FILES)
    for path in files.values():
        assert path.read_bytes() == FILES[path.name]
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == sorted(FILES)  # no .part left
    assert seen[-1][0] in FILES and seen[-1][1] == seen[-1][2]  # progress reached the declared total
    loaded = data.load("mnist", tmp_path / "mnist", download=False)
    assert tuple(loaded.train_images.shape) == (20, 28, 28)
    # present files are not fetched again
    count = len(server.requests)
    data.fetch("mnist", tmp_path / "mnist", mirrors=[mirror])
    assert len(server.requests) == count


def test_checksum_mismatch_is_rejected_and_nothing_left(tmp_path, server, published):
    tampered = dict(FILES)
    name = f"{data.TRAIN_IMAGES}.gz"
    tampered[name] = gzip.compress(gzip.decompress(FILES[name])[:-1] + b"\x07", mtime=0)  # one pixel differs
    mirror = server.serve("bad", tampered)
    with pytest.raises(DataError, match="checksum mismatch") as error:
        data.fetch("mnist", tmp_path / "d", mirrors=[mirror])
    assert name in str(error.value) and mirror in str(error.value)
    assert not (tmp_path / "d" / name).exists()
    assert not any(p.name.endswith(".part") for p in tmp_path.rglob("*"))


def test_failing_mirror_then_a_good_one(tmp_path, server, published):
    broken = server.serve("broken", {})  # every file 404
    good = server.serve("good", FILES)
    files = data.fetch("mnist", tmp_path / "d", mirrors=[broken, good])
    assert all(path.read_bytes() == FILES[path.name] for path in files.values())
    assert [r for r in server.requests if r.startswith("/broken/")]  # the first mirror was tried
    assert {r.split("/")[-1] for r in server.requests if r.startswith("/good/")} == set(FILES)


def test_every_mirror_failing_lists_each_reason_and_how_to_provide(tmp_path, server, published):
    broken = server.serve("broken", {})
    with pytest.raises(DataError) as error:
        data.fetch("mnist", tmp_path / "d", mirrors=[broken, "http://127.0.0.1:9/nothing/"])
    message = str(error.value)
    assert "HTTP 404" in message and "unreachable" in message
    assert "convcalc data fetch mnist" in message and str(tmp_path / "d") in message
    assert not (tmp_path / "d").exists()  # the folder the download created is removed again


def test_truncated_response(tmp_path, server, published):
    mirror = server.serve("short", FILES, truncate=100)
    with pytest.raises(DataError, match="truncated"):
        data.fetch("mnist", tmp_path / "d", mirrors=[mirror])
    assert not (tmp_path / "d").exists()


def test_failed_download_keeps_a_folder_that_existed_before(tmp_path, server, published):
    (tmp_path / "d").mkdir()
    with pytest.raises(DataError):
        data.fetch("mnist", tmp_path / "d", mirrors=[server.serve("broken", {})])
    assert (tmp_path / "d").is_dir() and list((tmp_path / "d").iterdir()) == []


def test_failed_download_leaves_no_empty_nested_cache_folders(tmp_path, server, published):
    target = tmp_path / "cache" / "convcalc" / "mnist"
    with pytest.raises(DataError):
        data.download_file([server.serve("broken", {}) + "/x.gz"], target / "x.gz", "0" * 32)
    assert list(tmp_path.iterdir()) == []


def test_download_only_the_missing_files(tmp_path, server, published):
    folder = tmp_path / "d"
    folder.mkdir()
    kept = f"{data.TEST_LABELS}.gz"
    (folder / kept).write_bytes(FILES[kept])
    data.fetch("mnist", folder, mirrors=[server.serve("good", FILES)])
    assert f"/good/{kept}" not in server.requests and len(server.requests) == 3


def test_cli_fetch_checksum_mismatch(tmp_path, server):
    """The real command with the real published MD5s: generated files are rejected, nothing kept."""
    mirror = server.serve("m", FILES)
    result = run_cli(
        "data", "fetch", "kmnist", "--data-dir", str(tmp_path / "k"), "--mirror", mirror, timeout=120
    )
    assert result.returncode == 1, result.stderr
    assert "checksum mismatch" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "k").exists()  # no empty cache folder left behind (issue 18)


def test_train_downloads_missing_files(tmp_path, server, published, monkeypatch):
    """``train`` with download=True fetches through ``data.load``: the same path as the CLI."""
    from convcalc.spec import load_spec
    from convcalc.train import TrainConfig, train
    from tests.conftest import SPECS

    info = data.DATASETS["mnist"]
    monkeypatch.setitem(data.DATASETS, "mnist", replace(info, mirrors=(server.serve("good", FILES),)))
    torch.set_num_threads(1)
    config = TrainConfig(data_dir=str(tmp_path / "d"), epochs=1, batch_size=8, out=str(tmp_path / "c.pt"))
    result = train(load_spec(SPECS / "lenet.yaml"), config)
    assert len(result.epochs) == 1 and sorted(p.name for p in (tmp_path / "d").iterdir()) == sorted(FILES)
