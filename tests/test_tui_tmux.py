"""``convcalc tui specs/lenet.yaml`` in a real terminal (tmux): it draws, and Ctrl+Q quits."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]

CONVCALC = Path(sys.executable).with_name("convcalc")


def tmux(socket: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["tmux", "-L", socket, *args], capture_output=True, text=True, timeout=30)


def wait_until(condition, timeout: float = 60.0) -> bool:
    """Poll ``condition`` (a cap for a slow machine, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def test_tui_starts_in_a_real_terminal_and_quits_on_ctrl_q():
    socket = f"convcalc-test-{os.getpid()}"  # a private tmux server: other sessions are untouched
    command = f"cd {ROOT} && {CONVCALC} tui specs/lenet.yaml; echo exit=$?; sleep 30"
    try:
        started = tmux(socket, "new-session", "-d", "-s", "tui", "-x", "120", "-y", "36", command)
        assert started.returncode == 0, started.stderr

        def screen() -> str:
            return tmux(socket, "capture-pane", "-p", "-t", "tui").stdout

        assert wait_until(lambda: "44,426" in screen()), screen()
        text = screen()
        assert "c1" in text and "6×24×24" in text and "Layer 0 · c1" in text
        tmux(socket, "send-keys", "-t", "tui", "C-q")
        assert wait_until(lambda: "exit=0" in screen()), screen()
        assert "Traceback" not in screen()
    finally:
        tmux(socket, "kill-server")
