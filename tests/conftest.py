"""Shared fixtures: paths to the shipped specs and a runner for the real ``convcalc`` command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import settings

# CI runs the same examples every time (a landing must not hinge on a lucky draw); local runs
# keep exploring new ones, and a failure prints the blob to reproduce it.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
# The real MNIST files some tests read: $CONVCALC_MNIST_DIR, else $CONVCALC_DATA/mnist (the
# product's own variable), else ../shared/data/mnist beside the checkout; absent, they skip.
MNIST_DIR = Path(
    os.environ.get("CONVCALC_MNIST_DIR")
    or (Path(os.environ["CONVCALC_DATA"]) / "mnist" if os.environ.get("CONVCALC_DATA") else None)
    or ROOT.parent / "shared" / "data" / "mnist"
).expanduser()
SHIPPED_SPECS = sorted(SPECS.glob("*.yaml"))


def run_cli(
    *args: str,
    cwd: Path | None = None,
    env: dict | None = None,
    timeout: float = 600,
    stdin: str | None = None,
):
    """Run ``python -m convcalc ARGS`` as a user would (``stdin``: text piped in); returns the
    CompletedProcess (text)."""
    full_env = {**os.environ, "COLUMNS": "120", "NO_COLOR": "1", **(env or {})}
    full_env.pop("FORCE_COLOR", None)
    return subprocess.run(
        [sys.executable, "-m", "convcalc", *args],
        capture_output=True, text=True, cwd=cwd or ROOT, env=full_env, timeout=timeout, input=stdin,
    )  # fmt: skip


@pytest.fixture
def cli():
    return run_cli


def pytest_addoption(parser):
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="Rewrite tests/golden/* from the current output (read the diff).",
    )


@pytest.fixture
def golden(request):
    """``golden(name, text)``: compare with tests/golden/NAME; rewrite it only with --update-golden."""

    def check(name: str, text: str) -> None:
        path = ROOT / "tests" / "golden" / name
        if request.config.getoption("--update-golden") or not path.exists():
            path.parent.mkdir(exist_ok=True)
            path.write_text(text, encoding="utf-8")
            if not request.config.getoption("--update-golden"):
                pytest.fail(f"{path} did not exist; wrote it: read it, then commit it")
        assert text == path.read_text(encoding="utf-8"), (
            f"output differs from {path} (--update-golden to accept)"
        )

    return check


@pytest.fixture
def one_torch_thread():
    """Run torch single-threaded for the test: on 2 shared cores two threads made small
    training runs 5-10× slower and far less steady."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def torchvision_models():
    """``torchvision.models``, importable on machines where torchvision's C extension cannot
    load (the registry's torchvision 0.28.0 is a CUDA build; these machines have CPU torch):
    the package is registered without running its ``__init__`` (which loads the extension),
    and its pure-Python models import and build. Tests only; product code imports torchvision
    normally. DEVELOPERS.md explains it."""
    import importlib
    import importlib.util
    import types

    if "torchvision" not in sys.modules:
        found = importlib.util.find_spec("torchvision")
        if found is None or found.origin is None:
            pytest.fail("torchvision is a test dependency: pip install -e '.[test]'")
        package = types.ModuleType("torchvision")
        package.__path__ = [str(Path(found.origin).parent)]
        sys.modules["torchvision"] = package
    return importlib.import_module("torchvision.models")
