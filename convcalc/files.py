"""Writing output files atomically: the one way every command writes a file it was told to.

Stdlib only (``convcalc draw`` and ``convcalc memory`` never import torch). Data goes to a
temporary file in the target's folder, then ``os.replace`` puts it in place, so a failure (full
disk, Ctrl-C, a renderer's error) never leaves half a file and the old file stays whole. The new
file gets the old file's mode, or the mode a plain ``open()`` would give (``mkstemp`` makes it
0600). Every failure is a ``ConvcalcError`` naming the path and the fix.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from convcalc import interrupts
from convcalc.errors import ConvcalcError


def write_atomically(
    path: str | Path,
    data: str | bytes | Callable[[BinaryIO], None],
    example: str = "",
    suffix: str = ".tmp",
    what: str = "",
) -> None:
    """Write ``data`` (text as UTF-8, bytes, or a function writing into the open binary file,
    e.g. ``torch.save``) to ``path``; ``example`` names a file for the "is a folder" fix,
    ``what`` the thing written in messages ("the checkpoint"); the temporary file is
    ``.<name>.<random><suffix>`` beside it, the name cut short (``_temp_prefix``). A Ctrl-C
    meanwhile ends the process once the file is in place (``interrupts.deferred``)."""
    with interrupts.deferred():
        _write_atomically(path, data, example, suffix, what)


def _write_atomically(path: str | Path, data, example: str, suffix: str, what: str) -> None:
    target = Path(path)
    folder = target.parent
    try:
        is_dir, folder_ok = target.is_dir(), folder.is_dir()
    except OSError as error:  # e.g. a file name longer than the file system allows
        raise ConvcalcError(
            f"{path}: cannot use this path ({error.strerror}); fix: choose a shorter path"
        ) from None
    if is_dir:
        raise ConvcalcError(f"{path}: is a folder; fix: give a file name, e.g. {target / (example or 'out')}")
    if not folder_ok:
        raise ConvcalcError(
            f"{path}: the folder {folder} does not exist; fix: create it or choose another path"
        )
    try:
        fd, temp = tempfile.mkstemp(dir=folder, prefix=_temp_prefix(target), suffix=suffix)
    except OSError as error:
        raise ConvcalcError(
            f"{path}: cannot write in {folder} ({error.strerror}); fix: choose another path"
        ) from None
    try:
        with os.fdopen(fd, "wb") as file:
            if callable(data):
                data(file)
            else:
                file.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.chmod(temp, target.stat().st_mode & 0o777 if target.exists() else 0o666 & ~_umask())
        os.replace(temp, target)
    except OSError as error:
        Path(temp).unlink(missing_ok=True)
        written = f"cannot write {what}" if what else "cannot write"
        raise ConvcalcError(
            f"{path}: {written} ({error.strerror or error}); fix: choose another path"
        ) from None
    except BaseException:  # a writer's own error, or Ctrl-C: nothing half-written stays behind
        Path(temp).unlink(missing_ok=True)
        raise


def _temp_prefix(target: Path) -> str:
    """``.<first 16 characters of the name>.``: with mkstemp's 8 random characters and a suffix
    the temporary name stays far below the 255 bytes a file name may have, whatever the target's
    length (a 253-character target name must still be writable)."""
    return f".{target.name[:16]}."


def check_writable(
    path: str | Path, option: str = "-o", example: str = "out", what: str = "", make_folders: bool = False
) -> None:
    """``ConvcalcError`` now, before any work, unless a file can be written at ``path``: not a
    folder, no NUL, a name the file system takes, in a folder that exists (``make_folders``: or
    can be made, as the checkpoint's folders are) and can be written. It makes what the write
    will make (the folders, the file itself when new) and removes it again. ``option``,
    ``example`` and ``what`` go into the message ("is a folder; fix: give a checkpoint file,
    e.g. --out runs/run.pt")."""
    target = Path(path)
    kind = f"a {what}" if what else "a file"
    if "\x00" in str(path):
        raise ConvcalcError(
            f"{str(path)!r}: a path cannot hold a NUL character; fix: give {option} another path"
        )
    try:
        if target.is_dir():
            name = f"{kind} file" if what else "a file name"
            raise ConvcalcError(f"{path}: is a folder; fix: give {name}, e.g. {option} {target / example}")
        missing = [p for p in (target.parent, *target.parent.parents) if not p.exists()]  # innermost first
        if missing and not make_folders:
            raise ConvcalcError(
                f"{path}: the folder {target.parent} does not exist; fix: create it or give {option} "
                "another path"
            )
        existing = target.parent.parents[len(missing) - 1] if missing else target.parent
        if not existing.is_dir():
            raise ConvcalcError(
                f"{path}: {existing} is a file, not a folder; fix: give {option} a path in a folder"
            )
        try:
            _try_write(target)
        finally:
            for made in missing:
                with contextlib.suppress(OSError):
                    made.rmdir()
    except OSError as error:
        reason = error.strerror or str(error)
        if error.errno == errno.ENAMETOOLONG:
            raise ConvcalcError(
                f"{path}: cannot use this path ({reason}); fix: choose a shorter path"
            ) from None
        raise ConvcalcError(
            f"{path}: cannot write {kind} there ({reason}); fix: give {option} a path in a folder you "
            "can write"
        ) from None


def _try_write(target: Path) -> None:
    """Make ``target``'s folders and the file itself (a new one) or a temporary file beside it (an
    existing one, which stays as it is), then remove what was made."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        fd, probe = tempfile.mkstemp(dir=target.parent, prefix=_temp_prefix(target), suffix=".probe")
    else:
        fd, probe = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), str(target)
    os.close(fd)
    os.unlink(probe)


def _umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it; put it back at once
    os.umask(mask)
    return mask
