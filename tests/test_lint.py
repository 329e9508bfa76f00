"""The code base stays lint-clean (ruff, configured in pyproject.toml; it comes with [test])."""

import subprocess
import sys

from tests.conftest import ROOT


def test_ruff_check_passes():
    command = [sys.executable, "-m", "ruff", "check", "convcalc", "tests", "bench"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_package_imports_from_anywhere():
    command = [sys.executable, "-c", "import convcalc.cli"]
    result = subprocess.run(command, cwd="/", capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
