"""Hostile input through the CLI entry point (issue 16): mutated specs and random bytes to
``shape`` and ``export`` end in exit 0 or 1, never another exception (a traceback to a user),
and every source ``export`` writes compiles."""

from __future__ import annotations

import contextlib
import io
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convcalc.cli import main
from tests.conftest import SHIPPED_SPECS

TEXTS = [path.read_text(encoding="utf-8") for path in SHIPPED_SPECS if path.stat().st_size < 6000]


INSERTS = [b"\x00", b"\x1e", b"-1", b"99999999999", b"[", b"}", b"&a ", b"*a", b"\n  - {type: Add}",
           b"inputs: nope, ", b"repeat: 0, ", b": :"]  # fmt: skip


@st.composite
def mutated(draw):
    text = draw(st.sampled_from(TEXTS))
    data = bytearray(text.encode())
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "duplicate", "junk"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[at:at] = draw(st.sampled_from(INSERTS))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 20))]
        elif kind == "duplicate":
            data[at:at] = data[at : at + draw(st.integers(1, 60))]
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
    return bytes(data)


def run(argv: list[str], stdin: bytes) -> int:
    """``main(argv)`` in this process with ``stdin``; the exit code (0 when it returns)."""
    out, err = io.StringIO(), io.StringIO()
    fake_stdin = io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8", errors="strict")
    old = sys.stdin
    sys.stdin = fake_stdin
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main(argv)
    except SystemExit as exit:
        return exit.code if isinstance(exit.code, int) else 1
    finally:
        sys.stdin = old
    return 0


@pytest.mark.slow
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_specs_never_crash_shape(data):
    assert run(["shape", "-", "--json"], data) in (0, 1)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_specs_never_crash_shape_quick(data):
    assert run(["shape", "-"], data) in (0, 1)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_random_bytes_never_crash_shape(data):
    assert run(["shape", "-"], data) in (0, 1)


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_what_export_writes_compiles(tmp_path_factory, data):
    target = tmp_path_factory.mktemp("export") / "model.py"
    code = run(["export", "-", "-o", str(target)], data)
    assert code in (0, 1)
    if code == 0:
        compile(target.read_text(encoding="utf-8"), str(target), "exec")
