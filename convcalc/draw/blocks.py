"""``--style blocks``: feature maps as boxes in perspective, left to right, like the LeNet figure
(LeCun et al. 1998, fig. 2) and NN-SVG's AlexNet style.

A box is channels wide, height high and width deep (an oblique projection), each log-scaled so
VGG16's 224×224×64 and LeNet's 16×4×4 fit on one page; a flat tensor is a bar, a 1-D map a flat
strip, a 3-D map the box of its channels × height × width (the depth is in its label). A
conv's or pool's kernel is a small patch on its input's face with lines to its output. Layers
that keep the shape and only follow another (activations, dropout, batch norm) are listed under
that layer's box instead of getting one. A graph is drawn folded to its top level
(``render.fold``, as ``--depth 1``): a box per top-level layer or block, inputs from further
back as arcs over the boxes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

from convcalc.draw.svg import FAMILIES, Svg, family, mix, n, text_width
from convcalc.engine import Analysis, fmt_count, fmt_shape
from convcalc.graph import NETWORK_INPUT
from convcalc.render import Fold, fold

MARGIN = 24.0
NAME_SIZE, LINE_SIZE, SMALL_SIZE = 11.5, 10.5, 10.0
LINE_GAP = 14.0
BAR_WIDTH = 10.0
MIN_GAP = 34.0  # between one box's back and the next box's front: room for the kernel's lines
LABEL_GAP = 14.0  # between neighbouring labels
ARC_STEP = 15.0  # between stacked arcs
FOLLOWERS = ("activation", "norm")  # families drawn under the box they follow


def channels(c: int) -> float:
    return 4 + 5.5 * math.log2(c)


def side(v: int) -> float:
    return 12 + 15 * math.log2(v)


def bar(f: int) -> float:
    return 12 + 16 * math.log2(f)


def shape_label(shape: tuple[int, ...]) -> str:
    """``6@24×24`` as in the LeNet figure: channels @ the spatial sizes; a flat tensor's length."""
    return str(shape[0]) if len(shape) == 1 else f"{shape[0]}@{'×'.join(map(str, shape[1:]))}"


@dataclass
class Stage:
    """One box: the input, or a layer or folded block with the shape-keeping layers after it."""

    main: Fold | None  # None: the network input
    shape: tuple[int, ...]
    followers: list[Fold] = field(default_factory=list)
    show_params: bool = True
    x: float = 0.0  # the front face's left edge

    @property
    def folds(self) -> list[Fold]:
        return ([self.main] if self.main else []) + self.followers

    @property
    def fam(self) -> str:
        return "input" if self.main is None else family(self.main.kind)

    @cached_property
    def size(self) -> tuple[float, float, float, float]:
        """(front width, front height, depth dx, depth dy) in SVG units."""
        s = self.shape
        if len(s) == 1:
            return BAR_WIDTH, bar(s[0]), 4.0, 4.0
        if len(s) == 2:
            return channels(s[0]), side(s[1]), 0.0, 0.0  # a 1-D map: a flat strip
        depth = side(s[-1]) * 0.5 * math.sqrt(0.5)  # 45°, foreshortened by half
        return channels(s[0]), side(s[-2]), depth, depth

    @cached_property
    def lines(self) -> list[tuple[str, float, bool, bool]]:
        """(text, size, bold, muted) under the box."""
        if self.main is None:
            return [("input", NAME_SIZE, True, False)]
        m = self.main
        layers = fmt_count(len(m.rows), "layer")
        head = f"{m.kind} {m.result.summary}".strip() if m.key is None else f"{m.kind} · {layers}"
        out = [(m.name, NAME_SIZE, True, False), (head, LINE_SIZE, False, False)]
        if self.followers:
            out.append(("+ " + " + ".join(f.kind for f in self.followers), SMALL_SIZE, False, True))
        params = sum(f.params for f in self.folds)
        if self.show_params and params:
            out.append((f"{params:,} params", SMALL_SIZE, False, True))
        return out

    @cached_property
    def label_width(self) -> float:
        widths = [text_width(t, s, b) for t, s, b, _ in self.lines]
        return max([*widths, text_width(shape_label(self.shape), NAME_SIZE, True)])

    @property
    def extent(self) -> float:
        w, _, dx, _ = self.size
        return w + dx

    @property
    def centre(self) -> float:
        return self.x + self.extent / 2


def stages(analysis: Analysis, depth: int | None, show_params: bool) -> list[Stage]:
    out = [Stage(None, analysis.input_shape, show_params=show_params)]
    for unit in fold(analysis, depth):
        last = out[-1].folds[-1].result.index if out[-1].main else NETWORK_INPUT
        follows = (
            unit.key is None
            and out[-1].main is not None
            and family(unit.kind) in FOLLOWERS
            and unit.result.inputs == (last,)
            and unit.result.output_shape == out[-1].shape
        )
        if follows:
            out[-1].followers.append(unit)
        else:
            out.append(Stage(unit, unit.result.output_shape, show_params=show_params))
    return out


def _arcs(analysis: Analysis, drawn: list[Stage]) -> list[tuple[int, int, str]]:
    """(from stage, to stage, shape) for every input that is not the box just before."""
    where = {r.index: k for k, st in enumerate(drawn) for f in st.folds for r in f.rows}
    arcs = []
    for k, st in enumerate(drawn[1:], start=1):
        seen = set()
        for f in st.folds:
            for r in f.rows:
                for i in r.inputs:
                    src = 0 if i == NETWORK_INPUT else where[i]
                    if src < k - 1 and src not in seen:
                        seen.add(src)
                        shape = analysis.input_shape if i == NETWORK_INPUT else analysis.rows[i].output_shape
                        arcs.append((src, k, fmt_shape(shape)))
    return arcs


def draw_blocks(
    svg: Svg, analysis: Analysis, depth: int | None, show_params: bool, top: float, heading_width: float
) -> tuple[float, float, list[str], list[str]]:
    """Draw the boxes below ``top``; returns (width, height, families drawn, notes for the legend)."""
    if depth is None and not analysis.straight:
        depth = 1
    drawn = stages(analysis, depth, show_params)
    arcs = _arcs(analysis, drawn)
    _place(drawn)
    rise = max(st.size[1] / 2 + st.size[3] for st in drawn)  # the tallest box's reach above the centre line
    cy = top + max(_levels(arcs), default=0) * ARC_STEP * 0.75 + (30 if arcs else 0) + rise + 22
    _draw_arcs(svg, drawn, arcs, cy, cy - rise - 24)
    for st in drawn:
        _box(svg, st, cy)
    for prev, st in zip(drawn, drawn[1:], strict=False):
        _connect(svg, prev, st, cy)
    base = cy + max(st.size[1] / 2 for st in drawn) + 20
    for st in drawn:
        _labels(svg, st, cy, base)
    bottom = base + LINE_GAP * max(len(st.lines) for st in drawn)
    right = max(st.centre + max(st.extent, st.label_width) / 2 for st in drawn) + MARGIN
    fams = [f for f in FAMILIES if any(st.fam == f for st in drawn)]
    return max(right, heading_width), bottom + MARGIN - 8, fams, _notes(analysis, drawn, depth)


def _notes(analysis: Analysis, drawn: list[Stage], depth: int | None) -> list[str]:
    ranks = {len(st.shape) for st in drawn}
    notes = [
        "sizes log-scaled: box width ∝ log channels, height ∝ log height, depth ∝ log width; "
        "bars ∝ log features"
    ]
    if 2 in ranks:
        notes.append("1-D maps are flat strips: width ∝ log channels, height ∝ log length")
    if 4 in ranks:
        notes.append("3-D maps are drawn as channels × height × width; their depth D is in the label C@D×H×W")
    if not analysis.straight:
        notes.append(
            f"a graph, drawn folded to --depth {depth}: one box per layer or block at that depth, "
            "inputs from further back as arcs; --style graph draws every layer"
        )
    return notes


def _place(drawn: list[Stage]) -> None:
    """x of every box: a gap for the kernel lines, and room for neighbouring labels."""
    x = MARGIN + max(0.0, (drawn[0].label_width - drawn[0].extent) / 2)
    drawn[0].x = x
    for prev, st in zip(drawn, drawn[1:], strict=False):
        by_box = prev.x + prev.extent + MIN_GAP
        by_label = prev.centre + (prev.label_width + st.label_width) / 2 + LABEL_GAP - st.extent / 2
        st.x = max(by_box, by_label)


def _box(svg: Svg, st: Stage, cy: float) -> None:
    theme = svg.theme
    w, h, dx, dy = st.size
    x, y = st.x, cy - h / 2
    fill, stroke = theme.fill(st.fam), theme.stroke(st.fam)
    names = "; ".join(f"{f.name} ({f.kind}) → {fmt_shape(f.result.output_shape)}" for f in st.folds)
    svg.open(title=names or f"input {fmt_shape(st.shape)}", cls="box")
    if dx:
        top, side = (
            (mix(fill, "#ffffff", 0.16), mix(fill, "#000000", 0.3))
            if theme.dark
            else (mix(fill, "#ffffff", 0.45), mix(fill, "#000000", 0.14))
        )  # light from above
        svg.polygon([(x, y), (x + dx, y - dy), (x + w + dx, y - dy), (x + w, y)], top, stroke)
        svg.polygon(
            [(x + w, y), (x + w + dx, y - dy), (x + w + dx, y + h - dy), (x + w, y + h)], side, stroke
        )
    svg.rect(x, y, w, h, fill, stroke)
    svg.text(st.centre, y - dy - 7, shape_label(st.shape), NAME_SIZE, theme.text, "middle", bold=True)
    svg.close()


def _kernel(st: Stage) -> tuple[int, ...] | None:
    """The kernel of a single conv or pool layer, one size per spatial axis (None: no window)."""
    if st.main is None or st.main.key is not None or st.fam not in ("conv", "pool"):
        return None
    k = getattr(st.main.result.layer, "kernel_size", None)  # adaptive pools have none
    if k is None:
        return None
    return tuple(k) if isinstance(k, list | tuple) else (k,) * (len(st.shape) - 1)


def _connect(svg: Svg, prev: Stage, st: Stage, cy: float) -> None:
    """A kernel patch on the input's side face with lines to one unit of the output; otherwise a
    plain arrow from box to box."""
    theme = svg.theme
    pw, ph, pdx, pdy = prev.size
    kernel = _kernel(st)
    w, h, _, _ = st.size
    target = (st.x + w * 0.5, cy - h * 0.1)  # one unit of the output, on its front face
    if kernel and len(prev.shape) >= 2:
        up = -2 if len(prev.shape) > 2 else -1  # the axis drawn upright: a map's height, a strip's length
        kh = min(0.5, max(0.06, kernel[up] / prev.shape[up]))  # the patch's share of the face
        kw = min(0.5, max(0.12, kernel[-1] / prev.shape[-1])) if pdx else 0.0
        t0, u0 = 0.3, 0.35
        face = (prev.x + pw, cy - ph / 2)  # the side face's top front corner

        def at(u: float, t: float) -> tuple[float, float]:
            return face[0] + u * pdx, face[1] + t * ph - u * pdy

        if pdx:
            corners = [at(u0, t0), at(u0 + kw, t0), at(u0 + kw, t0 + kh), at(u0, t0 + kh)]
        else:  # a strip: a patch on its right edge
            x0, y0 = prev.x + pw - 4, cy - ph / 2 + t0 * ph
            corners = [(x0, y0), (x0 + 4, y0), (x0 + 4, y0 + kh * ph), (x0, y0 + kh * ph)]
        stroke = theme.stroke(st.fam)
        svg.open(title=f"{st.main.name}: {'×'.join(map(str, kernel))} window", cls="kernel")
        svg.polygon(corners, mix(theme.fill(st.fam), stroke, 0.5), stroke, 0.8)
        for cx, cyy in corners:
            svg.line(cx, cyy, *target, stroke, 0.7)
        svg.close()
    else:
        x0, x1 = prev.x + pw + pdx + 4, st.x - 5
        if x1 > x0 + 6:
            svg.line(x0, cy, x1 - 5, cy, theme.edge, 1.1)
            svg.polygon([(x1 - 6, cy - 3.5), (x1, cy), (x1 - 6, cy + 3.5)], theme.edge, theme.edge)


def _labels(svg: Svg, st: Stage, cy: float, base: float) -> None:
    theme = svg.theme
    y = base
    for text, size, bold, muted in st.lines:
        svg.text(st.centre, y, text, size, theme.muted if muted else theme.text, "middle", bold)
        y += LINE_GAP


def _levels(arcs: list[tuple[int, int, str]]) -> list[int]:
    """Each arc's height step: one above the highest shorter arc it overlaps, so nested arcs
    (U-Net's skips) stack and separate ones stay low."""
    order = sorted(range(len(arcs)), key=lambda k: arcs[k][1] - arcs[k][0])
    levels = [0] * len(arcs)
    for pos, k in enumerate(order):
        a, b, _ = arcs[k]
        below = [levels[j] for j in order[:pos] if arcs[j][0] < b and a < arcs[j][1]]
        levels[k] = 1 + max(below, default=0)
    return levels


def _draw_arcs(svg: Svg, drawn: list[Stage], arcs: list[tuple[int, int, str]], cy: float, low: float) -> None:
    """Dashed arcs over the boxes from an earlier box to the one that reads it."""
    theme = svg.theme
    for (a, b, shape), level in zip(arcs, _levels(arcs), strict=True):
        xa, xb = drawn[a].centre, drawn[b].centre
        ya, yb = (cy - st.size[1] / 2 - st.size[3] - 24 for st in (drawn[a], drawn[b]))
        top = low - ARC_STEP * level - 8  # the control points' height; the curve peaks 3/4 of the way
        peak = 0.25 * max(ya, yb) + 0.75 * top
        svg.open(
            title=f"{drawn[b].folds[0].name} reads {drawn[a].folds[-1].name if a else 'the input'} ({shape})",
            cls="arc",
        )
        svg.path(
            f"M{n(xa)},{n(ya)} C{n(xa)},{n(top)} {n(xb)},{n(top)} {n(xb)},{n(yb - 5)}",
            theme.edge,
            1.1,
            dash="5 3",
        )
        svg.polygon([(xb - 3.5, yb - 6), (xb + 3.5, yb - 6), (xb, yb)], theme.edge, theme.edge)
        svg.text((xa + xb) / 2, peak - 3, shape, 9.5, theme.muted, "middle")
        svg.close()
