"""Ctrl-C at any moment of a ``convcalc`` process: exit 1 with a one-line message, nothing half-written.

Stdlib only: ``install()`` runs first thing in the entry point (``convcalc.__main__``), before click,
rich or torch is imported. Python's own handler raises ``KeyboardInterrupt`` wherever the main thread
is; in the middle of an import that leaves a half-initialised C extension behind ("cannot load module
more than once per process" on the next import), inside a callback from torch's C++ it turns into a
``c10::Error`` and SIGABRT, and after ``main`` has returned nothing catches it, so Python kills itself
with SIGINT (exit 130). This handler never raises: it ends the process at once with ``os._exit(1)``
after printing the message. Two kinds of work change that:

- ``graceful()`` (training): the first signal only sets an event, and the loop stops after the
  current batch and saves; the second ends the process at once.
- ``deferred()`` (writing a file): a signal waits until the block is over, so a file being written
  is finished and renamed into place (and its temporary file gone) before the process ends.

Without ``install()`` (the library, the tests, the TUI: ``python_default()``) nothing changes but
inside ``graceful()``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator

MESSAGE = "interrupted (Ctrl-C): stopped before finishing; nothing was written"
_SHOW_CURSOR = "\x1b[?25h"  # a progress bar hides the terminal's cursor while it runs

_state = {"installed": False, "message": MESSAGE, "deferred": 0, "pending": False, "cancel": None}
_temporary: set[str] = set()  # files being written that an interrupt must not leave behind


def install() -> None:
    """The process-wide SIGINT handler (the entry point's, once)."""
    _state["installed"] = True
    signal.signal(signal.SIGINT, _on_signal)


def python_default() -> None:
    """Python's own SIGINT handler again (``KeyboardInterrupt``): for the TUI, whose app must put
    the terminal back before the process ends (Ctrl-C there is a key, SIGINT only comes from kill)."""
    _state["installed"] = False
    signal.signal(signal.SIGINT, signal.default_int_handler)


def remove_if_interrupted(path: str | os.PathLike) -> None:
    """``path``, a temporary file being written (a download), is deleted if an interrupt ends the
    process before ``forget(path)``: the ``finally`` that would delete it does not run."""
    _temporary.add(os.fspath(path))


def forget(path: str | os.PathLike) -> None:
    _temporary.discard(os.fspath(path))


def exit_now(message: str | None = None) -> None:
    """Print ``message`` (default: the current one) on stderr and end the process with exit code 1,
    without unwinding: no ``finally`` or ``atexit`` code runs, so nothing can raise on the way out
    (the temporary files of ``remove_if_interrupted`` are deleted first)."""
    for path in list(_temporary):
        with contextlib.suppress(OSError):
            os.unlink(path)
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    text = f"error: {message or _state['message']}\n"
    if _isatty(2):
        text = _SHOW_CURSOR + "\r" + text
    with contextlib.suppress(OSError):
        os.write(2, text.encode("utf-8", "replace"))
    os._exit(1)


def done() -> None:
    """The command is over (its exit code decided): from now on SIGINT is ignored. Python's
    finalization puts every Python-level handler back to the system's default before the process
    is gone, so a Ctrl-C in those last milliseconds (a second one after training stopped) killed
    the process by signal (exit 130) instead of exit 1; an ignored signal stays ignored there."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


def _on_signal(signum, frame) -> None:
    cancel: threading.Event | None = _state["cancel"]
    if cancel is not None and not cancel.is_set():
        cancel.set()  # graceful(): the loop stops after the current batch
    elif _state["deferred"]:
        _state["pending"] = True  # deferred(): acted on when the block ends
    else:
        exit_now()


@contextlib.contextmanager
def graceful(
    message: str, after: str | None = None, signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)
) -> Iterator[threading.Event]:
    """An event the first of ``signals`` sets (the work stops at its next safe point and saves);
    a second one ends the process at once, printing ``message``; once the block is over, an
    interrupt prints ``after`` (default: what it printed before). Main thread only."""
    cancel = threading.Event()
    previous = {number: signal.signal(number, _on_signal) for number in signals}
    outer = (_state["cancel"], after or _state["message"])
    _state["cancel"] = cancel
    _state["message"] = message
    try:
        yield cancel
    finally:
        _state["cancel"], _state["message"] = outer
        for number, old in previous.items():
            signal.signal(number, old)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """A block an interrupt does not cut short (a file being written): a signal during it (the
    second one inside ``graceful()``) ends the process right after it. A no-op outside the main
    thread (Python runs signal handlers in the main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _state["deferred"] += 1
    try:
        yield
    finally:
        _state["deferred"] -= 1
        if not _state["deferred"] and _state["pending"]:
            exit_now()
