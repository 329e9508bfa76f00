"""Shared fixtures: paths to the shipped specs and a runner for the real ``convcalc`` command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
SHIPPED_SPECS = sorted(SPECS.glob("*.yaml"))


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 600):
    """Run ``python -m convcalc ARGS`` as a user would; returns the CompletedProcess (text)."""
    full_env = {**os.environ, "COLUMNS": "120", "NO_COLOR": "1", **(env or {})}
    full_env.pop("FORCE_COLOR", None)
    return subprocess.run(
        [sys.executable, "-m", "convcalc", *args],
        capture_output=True, text=True, cwd=cwd or ROOT, env=full_env, timeout=timeout,
    )  # fmt: skip


@pytest.fixture
def cli():
    return run_cli
