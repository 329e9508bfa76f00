"""Messages written for the command line, reworded for the TUI at the point where it shows them.

The data, training and solver modules name the CLI's flags (``pass --data-dir DIR``, ``use
--device cpu``, ``(--transposed)``), which mean nothing on a screen of fields and keys. ``tui_text``
replaces each such phrase with the TUI's control; the CLI keeps its own wording. No textual.
"""

from __future__ import annotations

import re

# (pattern, replacement), applied in order; every phrase the modules use that names a flag.
_PHRASES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        # data.py / train.py, shown on the training screen (its fields: data folder, device, limit)
        (r"pass --data-dir DIR \(the folder holding the files\) or set CONVCALC_DATA=DIR",
         "set the data folder (the folder holding the files), or start convcalc with CONVCALC_DATA=DIR"),
        (r"give --data-dir \(or CONVCALC_DATA\) a folder", "set the data folder to a folder"),
        (r"pass --data-dir DIR", "set the data folder to a folder you can write"),
        (r"\(or another --data-dir\)", "(or another data folder)"),
        (r"--dataset folder needs --data-dir DIR", "the dataset 'folder' needs a data folder"),
        (r"use --device cpu or auto", "choose device cpu or auto"),
        (r"\(and --limit\)", "(and limit)"),
        # solve.py, shown in the output-size dialog (o) and, for padding: auto, in the designer
        (r"upsample with a ConvTranspose2d \(--transposed\)",
         "upsample with a ConvTranspose2d (change the layer's type in the editor)"),
        (r"downsample with a Conv2d or a pool \(without --transposed\)",
         "downsample with a Conv2d or a pool (change the layer's type in the editor)"),
        (r" \(leave out --(?:kernel|stride|dilation)\)", ""),
        (r"give the kernel_size or the stride \(--kernel, --stride\)",
         "set the layer's kernel_size or stride in the editor first"),
        (r"\(convcalc solve --in \d+ --out \d+[^)]*? lists the layers that can\)",
         "(o on this layer lists the settings that can)"),
    )
)  # fmt: skip


def tui_text(message: str) -> str:
    """``message`` with the CLI's flags replaced by the TUI's controls."""
    if "--" not in message and "convcalc solve" not in message:  # the common case: nothing to do
        return message
    for pattern, replacement in _PHRASES:
        message = pattern.sub(replacement, message)
    return message
