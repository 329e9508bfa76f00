"""The designer's picture of the network (``#picture``, key ``p``): the feature maps as a strip
of boxes, left to right as in the LeNet figure (LeCun et al. 1998, fig. 2), and the selected
layer's receptive field on the input grid, both in the terminal's own characters.

The boxes are ``convcalc draw --style blocks``'s (``blocks.stages``: a box per layer or folded
block, with the shape-keeping activations and norms that follow a layer inside its box; a graph
folded to its top level). A box is channels wide and height high, both log-scaled and clamped
so 224 and 7 fit in a few rows; half blocks give the height twice the rows' resolution. A flat
tensor (Flatten, Linear) is a thin bar, a 1-D map a box of channels × length, a 3-D map one of
channels × height with its depth in the label (``64@16×56×56``).

The field is the engine's (``RF.span``, as ``convcalc rf`` outlines it) of the selected
layer's centre unit, clipped to the input and shaded on the input scaled down by a whole
factor (1 cell = s×s positions; two cells per character with ``▀``). Pure functions of the
analysis rows: the widget only calls ``picture`` and shows the lines.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

from textual.color import Color
from textual.content import Content, Span
from textual.style import Style
from textual.widgets import Static

from convcalc.draw.blocks import Stage, shape_label, stages
from convcalc.draw.svg import FAMILIES, mix
from convcalc.engine import Analysis, LayerResult, fmt_num

STRIP_HALVES = 16  # the tallest box, in half rows (8 rows)
LABEL_LINES = 2  # under the strip: the shape, the name
GAP = 2  # between neighbouring columns of the strip
GRID_ROWS, GRID_COLS = 7, 40  # the input grid's largest size in characters (14 × 40 cells)
PANEL_GAP = 3  # between the strip and the field's panel
CAPTION = 40  # the field's numbers: the widest caption line but for a huge first line
ERROR, FIELD, INPUT = "#e5534b", "#3fb950", "#4d5566"


def box_height(size: int) -> int:
    """Half rows for a height (a flat tensor: its length): 1 at 1, 16 from 256 up, log-scaled."""
    return min(STRIP_HALVES, 1 + math.floor(15 * math.log2(max(size, 1)) / 8 + 0.5))


def box_width(channels: int) -> int:
    """Columns for a channel count: 2 at 1 channel, 8 from 2048 up, log-scaled."""
    return min(8, 2 + math.floor(math.log2(max(channels, 1)) / 2 + 0.5))


def box_size(shape: tuple[int, ...]) -> tuple[int, int]:
    """(columns, half rows) of a feature map's box; a flat tensor is a bar one column wide."""
    if len(shape) == 1:
        return 1, box_height(shape[0])
    return box_width(shape[0]), box_height(shape[-2] if len(shape) > 2 else shape[-1])


@dataclass(frozen=True)
class Box:
    """A stage placed on the strip: its column starts at ``x`` and is ``width`` wide."""

    x: int
    width: int
    cols: int  # the box itself, centred in the column
    halves: int  # its height in half rows, centred on the strip's middle
    label: str  # the shape (``6@24×24``), ``?`` when the engine could not compute it
    name: str
    colour: str
    bar: bool

    @property
    def left(self) -> int:
        return self.x + (self.width - self.cols) // 2

    @property
    def top(self) -> int:
        return (STRIP_HALVES - self.halves) // 2


def place(drawn: list[Stage]) -> list[Box]:
    """The strip's boxes left to right, each in a column as wide as its box or shape label."""
    out, x = [], 0
    for st in drawn:
        name = "input" if st.main is None else st.main.name
        if st.shape is None:
            cols, halves, label, colour = 1, 2, "?", ERROR
        else:
            (cols, halves), label = box_size(st.shape), shape_label(st.shape)
            colour = ERROR if st.main is not None and st.main.result.errors else FAMILIES[st.fam][0]
        width = max(cols, len(label), min(len(name), 7))
        bar = st.shape is not None and len(st.shape) == 1
        out.append(Box(x, width, cols, halves, label, name[:width], colour, bar))
        x += width + GAP
    return out


def selected_stage(drawn: list[Stage], row_index: int | None) -> int:
    """The box that holds the selected row (a follower's or a folded block's; 0: the input)."""
    for k, st in enumerate(drawn):
        if any(r.index == row_index for f in st.folds for r in f.rows):
            return k
    return 0


_BOX = {(True, True): "█", (True, False): "▀", (False, True): "▄"}
_BAR = {(True, True): "▐", (True, False): "▝", (False, True): "▗"}

Cell = tuple[str, Style | None]
BLANK: Cell = (" ", None)


@cache
def style(color: str | None = None, bgcolor: str | None = None, **flags: bool) -> Style:
    """One Style object per look: cells that share it join into one span (``to_content``), and
    no colour is parsed again for every cell of every update."""
    return Style(
        foreground=Color.parse(color) if color else None,
        background=Color.parse(bgcolor) if bgcolor else None,
        **flags,
    )


@cache
def box_colours(colour: str, chosen: bool) -> tuple[Style, Style, Style | None]:
    """(fill, shape label, name label): the selected box brighter, its labels reversed; the
    others' fill dimmed towards the grid's grey."""
    if chosen:
        bright = mix(colour, "#ffffff", 0.3)
        label = style(bright, bold=True, reverse=True)
        return style(bright), label, label
    return style(mix(colour, INPUT, 0.45)), style(colour, bold=True), None


def window(boxes: list[Box], selected: int, width: int) -> int:
    """The strip's first column shown: 0 if it fits, else about ``width`` columns around the
    selected box, starting at a column's edge (no label cut on the left) unless the selected
    box would not fit."""
    total = boxes[-1].x + boxes[-1].width
    box = boxes[selected]
    x0 = min(max(0, box.x + box.width // 2 - width // 2), max(0, total - width))
    edge = next((b.x for b in boxes if b.x >= x0), x0)
    return edge if box.x + box.width <= edge + width and edge <= box.x else x0


def strip_cells(boxes: list[Box], selected: int, x0: int, width: int) -> list[list[Cell]]:
    """Columns ``x0`` .. ``x0 + width`` of the strip as rows of (character, style): the boxes,
    then the shape and name lines; ``‹``/``›`` where the strip goes on."""
    rows: list[list[Cell]] = [[BLANK] * width for _ in range(STRIP_HALVES // 2 + LABEL_LINES)]

    def put(row: list[Cell], start: int, cells: list[Cell]) -> None:
        lo, hi = max(start, x0), min(start + len(cells), x0 + width)
        if lo < hi:
            row[lo - x0 : hi - x0] = cells[lo - start : hi - start]

    for k, box in enumerate(boxes):
        if box.x >= x0 + width or box.x + box.width <= x0:
            continue
        fill, shape_style, name_style = box_colours(box.colour, k == selected)
        chars, top, bottom = _BAR if box.bar else _BOX, box.top, box.top + box.halves
        for r in range(top // 2, (bottom + 1) // 2):
            inside = (top <= 2 * r < bottom, top <= 2 * r + 1 < bottom)
            put(rows[r], box.left, [(chars[inside], fill)] * box.cols)
        labels = ((box.label, shape_style), (box.name, name_style))
        for line, (text, look) in zip(rows[STRIP_HALVES // 2 :], labels, strict=True):
            put(line, box.x + (box.width - len(text)) // 2, [(ch, look) for ch in text])
    middle, more = STRIP_HALVES // 4, style(bold=True, dim=True)
    if x0 > 0:
        rows[middle][0] = ("‹", more)
    if x0 + width < boxes[-1].x + boxes[-1].width:
        rows[middle][-1] = ("›", more)
    return rows


def to_content(rows: list[list[Cell]]) -> Content:
    """The rows as one Content, a span per run of cells of one style (not one per cell)."""
    lines, spans, offset = [], [], 0
    for cells in rows:
        line = "".join([cell[0] for cell in cells])
        start, look = 0, None
        for i, (_, s) in enumerate(cells):
            if s is not look:
                if look is not None:
                    spans.append(Span(offset + start, offset + i, look))
                start, look = i, s
        if look is not None:
            spans.append(Span(offset + start, offset + len(cells), look))
        lines.append(line)
        offset += len(line) + 1
    return Content("\n".join(lines), spans)


# The receptive field ---------------------------------------------------------------------


def centre_unit(row: LayerResult) -> tuple[int, ...]:
    """The unit drawn: the output's centre; a flat output's units all see one field (index 0)."""
    sizes = row.output_shape[1:] if row.output_shape else ()
    n = len(row.receptive_field or ())
    return tuple(s // 2 for s in sizes) if len(sizes) == n else (0,) * n


def scale(sizes: tuple[int, ...]) -> int:
    """Input positions per cell side: the smallest whole factor that fits the grid."""
    rows = 1 if len(sizes) == 1 else sizes[-2]
    return max(1, math.ceil(rows / (2 * GRID_ROWS)), math.ceil(sizes[-1] / GRID_COLS))


def field_cells(
    span: tuple[tuple[float, float], ...], sizes: tuple[int, ...], s: int
) -> tuple[tuple[int, int], ...] | None:
    """(first, last) cell per axis holding a position of the field clipped to the input (cell
    p holds positions p·s .. p·s + s − 1); None when the field misses the input."""
    out = []
    for (a, b), n in zip(span, sizes, strict=True):
        lo, hi = max(0, math.ceil(a)), min(n - 1, math.floor(b))
        if lo > hi:
            return None
        out.append((lo // s, hi // s))
    return tuple(out)


def grid(sizes: tuple[int, ...], cells: tuple[tuple[int, int], ...] | None, s: int) -> list[list[bool]]:
    """The input's H×W (a 1-D input: its length, 4 cells high) as cells, True inside the field;
    a 3-D input's field is the same on every depth slice it covers."""
    if len(sizes) == 1:
        h, w = 4, math.ceil(sizes[0] / s)
        rect = ((0, h - 1), cells[0]) if cells else None
    else:
        h, w = math.ceil(sizes[-2] / s), math.ceil(sizes[-1] / s)
        rect = cells[-2:] if cells else None
    if rect is None:
        return [[False] * w for _ in range(h)]
    (r0, r1), (c0, c1) = rect
    return [[r0 <= r <= r1 and c0 <= c <= c1 for c in range(w)] for r in range(h)]


def grid_cells(shaded: list[list[bool]]) -> list[list[Cell]]:
    """Two grid rows per character: ``▀`` in the top cell's colour on the bottom cell's."""
    colour = {True: FIELD, False: INPUT}
    out = []
    for r in range(0, len(shaded), 2):
        top, bottom = shaded[r], shaded[r + 1] if r + 1 < len(shaded) else None
        out.append([
            ("▀", style(colour[t], colour[bottom[c]] if bottom else None)) for c, t in enumerate(top)
        ])  # fmt: skip
    return out


def _range(a: float, b: float) -> str:
    return f"{fmt_num(a)}..{fmt_num(b)}"


def field_caption(row: LayerResult, unit: tuple[int, ...], sizes: tuple[int, ...], s: int) -> list[str]:
    """``RF 16×16 at rows 6..21, cols 6..21``; the unit, jump and grid scale (at most
    ``CAPTION`` wide: a long name is cut); a 3-D field's depth and the slice shown."""
    fields = row.receptive_field
    span = tuple(rf.span(u) for rf, u in zip(fields, unit, strict=True))
    size = "×".join(fmt_num(rf.size) for rf in fields)
    bound = " (bound)" if row.regime == "bound" else ""
    if len(span) == 1:
        lines = [f"RF {size} at {_range(*span[0])}{bound}"]
    else:
        (r0, r1), (c0, c1) = span[-2:]
        lines = [f"RF {size} at rows {_range(r0, r1)}, cols {_range(c0, c1)}{bound}"]
    cell = f"cell {s if len(span) == 1 else f'{s}×{s}'}"
    if row.output_shape is not None and len(row.output_shape) == 1:
        rest = f": every unit · {cell}"  # a flat output: each unit sees the union (no jump)
    else:
        jump = "×".join(dict.fromkeys(fmt_num(rf.jump) for rf in fields))
        rest = f" ({','.join(map(str, unit))}) · jump {jump} · {cell}"
    room = CAPTION - len(rest)
    lines.append((row.name if len(row.name) <= room else row.name[: max(1, room - 1)] + "…") + rest)
    if len(span) == 3:
        lines.append(f"depth {_range(*span[0])}, slice {_slice(span[0], sizes[0])} shown")
    return lines


def _slice(span: tuple[float, float], depth: int) -> int:
    """The depth slice through the field's centre (``convcalc rf`` draws the same one)."""
    return min(depth - 1, max(0, round((span[0] + span[1]) / 2)))


def field_panel(analysis: Analysis, row: LayerResult | None) -> list[list[Cell]]:
    """The input grid with ``row``'s field shaded, and the numbers under it."""
    sizes = analysis.input_shape[1:]
    if not sizes:
        return [[(ch, None) for ch in "a flat input: no positions to see"]]
    s = scale(sizes)
    if row is None or not row.receptive_field:
        why = "add a layer to see its field" if row is None else f"{row.name}: no field (shape unknown)"
        return [*grid_cells(grid(sizes, None, s)), [(ch, style(dim=True)) for ch in why]]
    unit = centre_unit(row)
    span = tuple(rf.span(u) for rf, u in zip(row.receptive_field, unit, strict=True))
    shown = grid(sizes, field_cells(span, sizes, s), s)
    caption = [[(ch, style(FIELD, bold=True) if i == 0 else None) for ch in line]
               for i, line in enumerate(field_caption(row, unit, sizes, s))]  # fmt: skip
    return [*grid_cells(shown), *caption]


# The whole picture -----------------------------------------------------------------------


def picture(analysis: Analysis, selected: int | None, width: int) -> list[list[Cell]]:
    """The picture as rows of (character, style): the strip, cropped to what the field's panel
    leaves of ``width``, beside the panel."""
    drawn = stages(analysis, None if analysis.straight else 1, show_params=False)
    boxes = place(drawn)
    chosen = selected_stage(drawn, selected)
    row = analysis.rows[selected] if selected is not None and 0 <= selected < len(analysis.rows) else None
    panel = field_panel(analysis, row)
    panel_width = max(len(line) for line in panel)
    room = max(8, width - panel_width - PANEL_GAP)
    strip = strip_cells(boxes, chosen, window(boxes, chosen, room), room)
    height = max(len(strip), len(panel))
    blank: list[Cell] = [BLANK] * len(strip[0])
    gap: list[Cell] = [BLANK] * PANEL_GAP
    return [
        (strip[i] if i < len(strip) else blank) + gap + (panel[i] if i < len(panel) else [])
        for i in range(height)
    ]


class NetworkPicture(Static):
    """Shows ``picture`` for the designer's analysis and selected row; redrawn on every edit,
    selection and resize while shown."""

    def __init__(self, **kwargs) -> None:
        super().__init__("", **kwargs)
        self._state: tuple[Analysis, int | None] | None = None
        self._shown: tuple[Analysis, int | None, int] | None = None  # what the lines show
        self._lines = 0

    def show(self, analysis: Analysis, selected: int | None) -> None:
        self._state = (analysis, selected)
        self.redraw()

    def redraw(self) -> None:
        if self._state is None or not self.display:
            return  # hidden: drawn when shown again
        width = self.content_size.width or 100  # before the first layout
        analysis, selected = self._state
        shown = self._shown
        if shown is not None and shown[0] is analysis and shown[1:] == (selected, width):
            return  # an analysis is immutable: the same object draws the same picture
        rows = picture(analysis, selected, width)
        self.update(to_content(rows), layout=shown is None or len(rows) != self._lines)
        self._shown, self._lines = (analysis, selected, width), len(rows)

    def on_resize(self) -> None:
        self.redraw()
