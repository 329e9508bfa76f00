"""Writing output files atomically: the one way every command writes a file it was told to.

Stdlib only (``convcalc draw`` and ``convcalc memory`` never import torch). Data goes to a
temporary file in the target's folder, then ``os.replace`` puts it in place, so a failure (full
disk, Ctrl-C, a renderer's error) never leaves half a file and the old file stays whole. The new
file gets the old file's mode, or the mode a plain ``open()`` would give (``mkstemp`` makes it
0600). Every failure is a ``ConvcalcError`` naming the path and the fix.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

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
    ``.<name>.<random><suffix>`` beside it."""
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
        fd, temp = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=suffix)
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


def _umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it; put it back at once
    os.umask(mask)
    return mask
