"""``convcalc draw``: pictures of a network, every number from ``engine.analyze``.

SVG is written directly (``svg.py``), in two styles: ``blocks`` (feature maps as boxes in
perspective, ``blocks.py``) and ``graph`` (a layered DAG with blocks as frames, ``graph.py``,
laid out by ``layout.py``); Graphviz source from the same diagram; PNG and PDF through
cairosvg, the ``draw`` extra. No torch: drawing a spec file starts as fast as ``convcalc shape``.
"""

from __future__ import annotations

import re
from pathlib import Path

from convcalc.draw import blocks, graph
from convcalc.draw.svg import THEMES, Svg, legend, text_width
from convcalc.engine import Analysis, fmt_shape
from convcalc.errors import ConvcalcError

SUFFIXES = (".svg", ".png", ".pdf", ".dot")
TITLE_SIZE, SUBTITLE_SIZE = 18.0, 11.5
PNG_SCALE = 2.0  # pixels per SVG unit in a PNG: sharp on high-density screens
CAIRO_MAX = 32_000  # cairo's image surfaces hold at most 32,767 pixels a side (DenseNet-121 is 40,000 tall)


def output_kind(path: str) -> str:
    """``svg``, ``png``, ``pdf`` or ``dot`` from the output's suffix (``-``: SVG on stdout)."""
    if path == "-":
        return "svg"
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise ConvcalcError(
            f"{path}: unknown picture type {suffix or '(no suffix)'!r}; fix: end the file name in "
            ".svg, .png, .pdf or .dot (or give -o - for SVG on stdout)"
        )
    return suffix[1:]


def refuse_errors(analysis: Analysis) -> None:
    """A spec with engine errors is not drawn: its first error (and how many more) instead."""
    if analysis.errors:
        more = len(analysis.errors) - 1
        rest = f" (and {more} more: `convcalc shape SPEC` lists them)" if more else ""
        raise ConvcalcError(f"cannot draw it: {analysis.errors[0]}{rest}")


def default_style(analysis: Analysis) -> str:
    return "blocks" if analysis.straight else "graph"


def heading(analysis: Analysis, title: str | None, show_params: bool) -> tuple[str, str]:
    sub = f"input {fmt_shape(analysis.input_shape)} → output {fmt_shape(analysis.output_shape)}"
    if show_params:
        sub += f" · {analysis.total_params:,} params · {analysis.total_macs:,} MACs per sample"
    return title if title is not None else analysis.name, sub


def svg_text(
    analysis: Analysis,
    style: str,
    depth: int | None = None,
    title: str | None = None,
    show_params: bool = True,
    theme: str = "light",
) -> str:
    """The picture as an SVG document."""
    refuse_errors(analysis)
    svg = Svg(THEMES[theme])
    name, sub = heading(analysis, title, show_params)
    margin = graph.MARGIN
    svg.text(margin, margin + 14, name, TITLE_SIZE, svg.theme.text, bold=True)
    svg.text(margin, margin + 34, sub, SUBTITLE_SIZE, svg.theme.muted)
    head_width = 2 * margin + max(text_width(name, TITLE_SIZE, True), text_width(sub, SUBTITLE_SIZE))
    legend_at = len(svg.parts)  # the legend goes here once the drawing knows its families and width
    top = margin + 62
    drawer = graph.draw_graph if style == "graph" else blocks.draw_blocks
    width, height, families, notes = drawer(svg, analysis, depth, show_params, top + 44, head_width)
    drawing = svg.parts[legend_at:]
    del svg.parts[legend_at:]
    below = legend(svg, margin, top, families, width - 2 * margin, notes)
    extra = max(0.0, below - (top + 44))
    if extra:  # a wrapped legend or notes: move the drawing down
        svg.add(f'<g transform="translate(0,{extra:.1f})">')
        svg.parts += drawing
        svg.close()
    else:
        svg.parts += drawing
    return svg.document(width, height + extra, f"{name}: {sub}")


def dot_text(
    analysis: Analysis, depth: int | None = None, title: str | None = None, show_params: bool = True
) -> str:
    refuse_errors(analysis)
    name, sub = heading(analysis, title, show_params)
    return graph.dot_source(analysis, depth, show_params, f"{name}\n{sub}")


def convert(svg: str, kind: str) -> bytes:
    """SVG text as PNG or PDF bytes (cairosvg: the ``draw`` extra)."""
    try:
        import cairosvg
    except ImportError:  # also OSError-free: cairosvg finds libcairo lazily, below
        raise ConvcalcError(
            f"writing .{kind} needs cairosvg; fix: pip install 'convcalc[draw]' (or write .svg)"
        ) from None
    try:
        if kind == "png":
            size = re.search(r'<svg [^>]*width="([0-9.]+)" height="([0-9.]+)"', svg)
            longest = max(float(size[1]), float(size[2])) if size else 1.0
            return cairosvg.svg2png(bytestring=svg.encode("utf-8"), scale=min(PNG_SCALE, CAIRO_MAX / longest))
        return cairosvg.svg2pdf(bytestring=svg.encode("utf-8"))
    except OSError as error:  # libcairo itself missing
        raise ConvcalcError(
            f"writing .{kind} needs the cairo library ({error}); fix: install libcairo2 (e.g. apt install "
            "libcairo2) or write .svg"
        ) from None
