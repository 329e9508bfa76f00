"""``--style graph``: one node per layer (or per block folded by ``--depth``), top to bottom,
edges labelled with the tensor they carry, blocks as nested frames; and the same diagram as
Graphviz source (``-o net.dot``).

The nodes are ``render.fold``'s units, so a folded block shows the numbers that
``convcalc shape --depth N`` prints for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from convcalc.draw import layout as L
from convcalc.draw.svg import FAMILIES, THEMES, Svg, family, n, text_width
from convcalc.engine import Analysis, fmt_count, fmt_shape
from convcalc.graph import NETWORK_INPUT
from convcalc.render import Fold, fold

NAME_SIZE, LINE_SIZE, SMALL_SIZE = 12.5, 11.0, 10.0
LINE_GAP = 14.5  # baseline to baseline
PAD_X, PAD_Y = 12.0, 8.0  # inside a node
GAP_X, GAP_Y = 26.0, 34.0  # between nodes (GAP_Y holds an edge's label)
FRAME_PAD, FRAME_LABEL = 9.0, 15.0  # a frame's margin round its members; its label's band
MARGIN = 24.0


@dataclass
class Unit:
    """A drawn node: the network input, a layer or a folded block."""

    fold: Fold | None  # None: the network input
    lines: list[tuple[str, float, bool, bool]]  # (text, size, bold, muted)
    fam: str
    groups: tuple[tuple[str, ...], ...]  # the enclosing groups' paths, outermost first

    @cached_property
    def width(self) -> float:
        return 2 * PAD_X + max(text_width(t, s, b) for t, s, b, _ in self.lines)

    @cached_property
    def height(self) -> float:
        return 2 * PAD_Y + NAME_SIZE + LINE_GAP * (len(self.lines) - 1) - 3

    @property
    def title(self) -> str:
        return " | ".join(t for t, *_ in self.lines)


@dataclass
class Diagram:
    units: list[Unit]  # the input first, then in topological order
    edges: dict[tuple[int, int], str]  # (from, to) -> the tensor's shape text
    kinds: dict[tuple[str, ...], str]  # group path -> kind, for the frames


def counts(params: int, macs: int) -> str:
    return f"{params:,} params · {macs:,} MACs"


def diagram(analysis: Analysis, depth: int | None, show_params: bool) -> Diagram:
    units = [
        Unit(
            None,
            [("input", NAME_SIZE, True, False), (fmt_shape(analysis.input_shape), LINE_SIZE, False, False)],
            "input",
            (),
        )
    ]
    where: dict[int, int] = {}  # row index -> unit
    for unit in fold(analysis, depth):
        row = unit.result
        if unit.key is None:
            head = f"{row.type} {row.summary}".strip()
            groups = tuple(g.path for g in row.groups)
        else:
            head = f"{unit.kind} · {fmt_count(len(unit.rows), 'layer')}"
            groups = tuple(g.path for g in unit.rows[0].groups if len(g.path) < len(unit.key))
        lines = [
            (unit.name, NAME_SIZE, True, False),
            (head, LINE_SIZE, False, False),
            ("→ " + fmt_shape(row.output_shape), LINE_SIZE, False, True),
        ]
        if show_params and (unit.params or unit.macs):
            lines.append((counts(unit.params, unit.macs), SMALL_SIZE, False, True))
        units.append(Unit(unit, lines, family(unit.kind), groups))
        for r in unit.rows:
            where[r.index] = len(units) - 1
    edges: dict[tuple[int, int], str] = {}
    for k, unit in enumerate(units[1:], start=1):
        for r in unit.fold.rows:
            for i in r.inputs:
                src = 0 if i == NETWORK_INPUT else where[i]
                shape = analysis.input_shape if i == NETWORK_INPUT else analysis.rows[i].output_shape
                if src != k:
                    edges.setdefault((src, k), fmt_shape(shape))
    return Diagram(units, edges, {g.path: g.kind for g in analysis.groups})


def draw_graph(
    svg: Svg, analysis: Analysis, depth: int | None, show_params: bool, top: float, heading_width: float
) -> tuple[float, float, list[str], list[str]]:
    """Draw the diagram below ``top``; returns (width, height, families drawn, notes for the
    legend)."""
    d = diagram(analysis, depth, show_params)
    nodes = [L.Node(u.width, u.groups) for u in d.units]
    lay = L.layout(nodes, list(d.edges), GAP_X, FRAME_PAD + 3)
    paths = sorted({p for u in d.units for p in u.groups}, key=len, reverse=True)  # innermost first
    ys = _layer_tops(d, lay, paths, top)
    band = _band_heights(d, lay)

    def box(k: int) -> tuple[float, float, float, float]:
        node, unit = lay.nodes[k], d.units[k]
        y = ys[node.layer] + (band[node.layer] - unit.height) / 2
        return node.x - unit.width / 2, y, unit.width, unit.height

    left = min(r[0] for r in [*_frames(d, paths, box).values(), *map(box, range(len(d.units)))])
    left = min([left, *(a for a, _ in _label_extents(d, lay, box, ys, band))])
    for node in lay.nodes:
        node.x += MARGIN - left
    frames = _frames(d, paths, box)
    theme = svg.theme
    for path in reversed(paths):  # outer frames first, so inner ones paint over them
        x0, y0, x1, y1 = frames[path]
        svg.open(title=".".join(path), cls="frame")
        svg.rect(
            x0,
            y0,
            x1 - x0,
            y1 - y0,
            theme.frame_fill if len(path) % 2 else theme.background,
            theme.frame,
            rx=7,
            dash="4 3",
        )
        svg.text(x0 + 8, y0 + FRAME_LABEL - 1, _frame_label(d, path), SMALL_SIZE, theme.muted, bold=True)
        svg.close()
    for (v, w), label in d.edges.items():
        _edge(svg, lay, v, w, box, ys, band, label)
    for k, unit in enumerate(d.units):
        x, y, w, h = box(k)
        svg.open(title=unit.title, cls="node")
        svg.rect(x, y, w, h, theme.fill(unit.fam), theme.stroke(unit.fam), rx=5, width=1.2)
        ty = y + PAD_Y + NAME_SIZE - 2
        for text, size, bold, muted in unit.lines:
            svg.text(x + w / 2, ty, text, size, theme.muted if muted else theme.text, "middle", bold)
            ty += LINE_GAP
        svg.close()
    right = max(
        [box(k)[0] + box(k)[2] for k in range(len(d.units))]
        + [r[2] for r in frames.values()]
        + [b for _, b in _label_extents(d, lay, box, ys, band)]
    )
    bottom = ys[-1] + band[-1]
    fams = [f for f in FAMILIES if any(u.fam == f for u in d.units)]
    return max(right + MARGIN, heading_width), bottom + MARGIN, fams, []


def _band_heights(d: Diagram, lay: L.Layout) -> list[float]:
    return [max((d.units[k].height for k in layer if k < len(d.units)), default=0.0) for layer in lay.layers]


def _frame_label(d: Diagram, path: tuple[str, ...]) -> str:
    return f"{path[-1]} · {d.kinds.get(path, 'Sequential')}"


def _frames(d: Diagram, paths: list[tuple[str, ...]], box) -> dict[tuple[str, ...], tuple[float, ...]]:
    """Each group's frame (x0, y0, x1, y1), innermost first: round its members and inner frames,
    a margin per nesting level and a band on top for its label."""
    members: dict[tuple, list[tuple[float, ...]]] = {}
    for k, unit in enumerate(d.units):
        if unit.groups:
            x, y, w, h = box(k)
            members.setdefault(unit.groups[-1], []).append((x, y, x + w, y + h))
    frames: dict[tuple[str, ...], tuple[float, ...]] = {}
    for path in paths:
        rects = members.get(path, []) + [r for p, r in frames.items() if p[: len(path)] == path]
        x0 = min(r[0] for r in rects) - FRAME_PAD
        x1 = max(
            max(r[2] for r in rects) + FRAME_PAD,
            x0 + text_width(_frame_label(d, path), SMALL_SIZE, True) + 16,
        )
        y0 = min(r[1] for r in rects) - FRAME_PAD - FRAME_LABEL
        frames[path] = (x0, y0, x1, max(r[3] for r in rects) + FRAME_PAD)
    return frames


def _layer_tops(d: Diagram, lay: L.Layout, frames: list, top: float) -> list[float]:
    """Each layer's top y: room above it for the frames starting there, below the frames ending."""
    first: dict[tuple, int] = {}
    last: dict[tuple, int] = {}
    for k, unit in enumerate(d.units):
        layer = lay.nodes[k].layer
        for p in unit.groups:
            first[p] = min(first.get(p, layer), layer)
            last[p] = max(last.get(p, layer), layer)
    band = _band_heights(d, lay)
    ys, y = [], top
    for li in range(len(lay.layers)):
        starts = sum(1 for p in frames if first.get(p) == li)
        ends = sum(1 for p in frames if last.get(p) == li - 1)
        y += (GAP_Y if li else 0) + (FRAME_PAD + FRAME_LABEL) * starts + FRAME_PAD * ends
        ys.append(y)
        y += band[li]
    return ys


EDGE_LABEL_SIZE = 9.5


def _route(lay: L.Layout, v: int, w: int, box, ys, band) -> list[tuple[float, float]]:
    """The edge's points: v's bottom, down each dummy's layer, w's top (above the arrowhead)."""
    _, y, _, h = box(v)
    points = [(lay.nodes[v].x, y + h)]
    for k in lay.chains.get((v, w), []):
        node = lay.nodes[k]
        points += [(node.x, ys[node.layer]), (node.x, ys[node.layer] + band[node.layer])]
    return [*points, (lay.nodes[w].x, box(w)[1] - 5)]


def _label_at(lay: L.Layout, v: int, w: int, points: list[tuple[float, float]]) -> tuple[float, float, str]:
    """Where the edge's shape goes: beside the middle of its last stretch (a long edge: of its
    last straight run), on the side it comes from, so two edges into one node keep apart."""
    (x1, y1), (x2, y2) = points[-2], points[-1]
    long = bool(lay.chains.get((v, w)))
    if long:
        (x1, y1), (x2, y2) = points[-3], (points[-3][0], points[-2][1])
    left = x1 < x2 - 1 or (long and x1 < lay.nodes[w].x)
    return (x1 + x2) / 2 + (-5 if left else 5), (y1 + y2) / 2 + 3, "end" if left else "start"


def _edge(svg: Svg, lay: L.Layout, v: int, w: int, box, ys, band, label: str) -> None:
    """A smooth path from v's bottom through its dummies to w's top, an arrowhead, the label."""
    points = _route(lay, v, w, box, ys, band)
    d = f"M{n(points[0][0])},{n(points[0][1])}"
    for (x1, y1), (x2, y2) in zip(points, points[1:], strict=False):
        if x1 == x2 or abs(y2 - y1) < 1:
            d += f" L{n(x2)},{n(y2)}"
        else:
            mid = (y1 + y2) / 2
            d += f" C{n(x1)},{n(mid)} {n(x2)},{n(mid)} {n(x2)},{n(y2)}"
    theme = svg.theme
    svg.open(cls="edge")
    svg.path(d, theme.edge, 1.2)
    ex, ey = points[-1]
    svg.polygon([(ex - 4, ey - 1), (ex + 4, ey - 1), (ex, ey + 5)], theme.edge, theme.edge)
    x, y, anchor = _label_at(lay, v, w, points)
    svg.text(x, y, label, EDGE_LABEL_SIZE, theme.muted, anchor)
    svg.close()


def _label_extents(d: Diagram, lay: L.Layout, box, ys, band) -> list[tuple[float, float]]:
    """(left, right) of every edge label, so the drawing's bounds hold them."""
    out = []
    for (v, w), label in d.edges.items():
        x, _, anchor = _label_at(lay, v, w, _route(lay, v, w, box, ys, band))
        width = text_width(label, EDGE_LABEL_SIZE)
        out.append((x - width, x) if anchor == "end" else (x, x + width))
    return out


def dot_source(analysis: Analysis, depth: int | None, show_params: bool, title: str) -> str:
    """The diagram as Graphviz source: nodes with the same lines, groups as nested clusters."""
    d = diagram(analysis, depth, show_params)

    def q(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'

    out = [
        f"digraph {q(analysis.name)} {{",
        f'  label={q(title)}; labelloc=t; fontname="Helvetica";',
        '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10];',
        '  edge [fontname="Helvetica", fontsize=9];',
    ]
    tree: dict[tuple, list] = {}
    for k, unit in enumerate(d.units):
        tree.setdefault(unit.groups[-1] if unit.groups else (), []).append(k)
    children: dict[tuple, set] = {}
    for unit in d.units:
        for parent, child in zip(((), *unit.groups), unit.groups, strict=False):
            children.setdefault(parent, set()).add(child)

    def emit(path: tuple, indent: str) -> None:
        for k in tree.get(path, []):
            unit = d.units[k]
            out.append(
                f"{indent}n{k} [label={q(chr(10).join(t for t, *_ in unit.lines))}, "
                f"fillcolor={q(THEMES['light'].fill(unit.fam))}];"
            )
        for child in sorted(children.get(path, ())):
            out.append(f"{indent}subgraph {q('cluster_' + '.'.join(child))} {{")
            out.append(
                f"{indent}  label={q(child[-1] + ' · ' + d.kinds.get(child, 'Sequential'))}; style=dashed;"
            )
            emit(child, indent + "  ")
            out.append(f"{indent}}}")

    emit((), "  ")
    for (v, w), label in d.edges.items():
        out.append(f"  n{v} -> n{w} [label={q(label)}];")
    out.append("}")
    return "\n".join(out) + "\n"
