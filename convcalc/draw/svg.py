"""SVG written directly: a small element writer, the themes, layer families' colours and a text
width estimate for layout (no font is loaded: widths are DejaVu Sans advances, rounded up).

Every string from a spec goes through ``escape``/``attr`` (names may hold ``<&"``). Numbers are
written with one decimal, so the same analysis always gives the same bytes (the golden test).
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from convcalc.layers import REGISTRY

FONT = "DejaVu Sans, Verdana, Helvetica, Arial, sans-serif"

# DejaVu Sans advance widths in ems, by character class (its digits are 0.636, lower case about
# 0.6, capitals about 0.7); an estimate a little too wide is harmless, too narrow overlaps.
_NARROW = set("ijl.,:;'|!·")
_SEMI = set("frt()-[] ")
_WIDE = set("mwMW@%")
_ARROWS = set("×→–—")


def text_width(text: str, size: float, bold: bool = False) -> float:
    ems = 0.0
    for ch in text:
        if ch in _NARROW:
            ems += 0.32
        elif ch in _SEMI:
            ems += 0.41
        elif ch in _WIDE:
            ems += 0.98
        elif ch in _ARROWS:
            ems += 0.84
        elif ch.isupper():
            ems += 0.74
        else:
            ems += 0.64
    return ems * size * (1.1 if bold else 1.0)


def n(value: float) -> str:
    """A coordinate: one decimal, no trailing ``.0``."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def attr(value: str) -> str:
    return quoteattr(value)


def mix(a: str, b: str, t: float) -> str:
    """The colour ``t`` of the way from ``a`` to ``b`` (``#rrggbb``)."""
    ca = [int(a[i : i + 2], 16) for i in (1, 3, 5)]
    cb = [int(b[i : i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(x + (y - x) * t):02x}" for x, y in zip(ca, cb, strict=True))


# Base colour per family (the module in convcalc.layers that computes the type, plus "input",
# "block" for a folded group and "reshape" for Flatten/Unflatten); the legend's words.
FAMILIES = {
    "input": ("#6e7781", "input"),
    "conv": ("#3b6fd8", "convolution"),
    "pool": ("#d9731e", "pooling"),
    "norm": ("#b89600", "normalisation"),
    "activation": ("#7d8794", "activation, dropout"),
    "linear": ("#2f9e57", "linear"),
    "reshape": ("#1b998b", "flatten"),
    "permute": ("#1b998b", "permute"),  # a reshape too: its colour
    "merge": ("#8250df", "merge (add, cat, mul)"),
    "pad": ("#bf3989", "padding"),
    "resample": ("#0f8fa8", "resampling"),
    "block": ("#4d5b70", "block (folded)"),
    "parameter": ("#9a6700", "parameter"),
}


def family(type_name: str) -> str:
    if type_name in ("Flatten", "Unflatten"):
        return "reshape"
    if type_name in ("Permute", "Parameter", "LayerNorm2d"):  # layers/tensor.py holds them
        return {"Permute": "permute", "Parameter": "parameter", "LayerNorm2d": "norm"}[type_name]
    entry = REGISTRY.get(type_name)
    if entry is None:  # a block's or Sequential's name: a folded group
        return "block"
    return entry.analyze.__module__.rsplit(".", 1)[-1]


@dataclass(frozen=True)
class Theme:
    background: str
    text: str
    muted: str
    edge: str
    frame: str
    frame_fill: str
    fill_mix: float  # how far a family's fill is from its base colour towards the background
    dark: bool

    def fill(self, fam: str) -> str:
        return mix(FAMILIES[fam][0], self.background, self.fill_mix)

    def stroke(self, fam: str) -> str:
        base = FAMILIES[fam][0]
        return mix(base, "#ffffff", 0.25) if self.dark else base


THEMES = {
    "light": Theme("#ffffff", "#1f2328", "#59636e", "#8c959f", "#c4ccd5", "#f6f8fa", 0.78, False),
    "dark": Theme("#0d1117", "#e6edf3", "#9198a1", "#6e7681", "#3d444d", "#151b23", 0.62, True),
}


class Svg:
    """Elements appended in drawing order; ``document`` wraps them."""

    def __init__(self, theme: Theme):
        self.theme = theme
        self.parts: list[str] = []

    def add(self, text: str) -> None:
        self.parts.append(text)

    def rect(
        self,
        x: float,
        y: float,
        w: float,
        h: float,
        fill: str,
        stroke: str = "none",
        rx: float = 0,
        width: float = 1,
        dash: str | None = None,
    ) -> None:
        extra = f' stroke-dasharray="{dash}"' if dash else ""
        self.add(
            f'<rect x="{n(x)}" y="{n(y)}" width="{n(w)}" height="{n(h)}" rx="{n(rx)}" fill="{fill}" '
            f'stroke="{stroke}" stroke-width="{n(width)}"{extra}/>'
        )

    def polygon(self, points: list[tuple[float, float]], fill: str, stroke: str, width: float = 1) -> None:
        pts = " ".join(f"{n(x)},{n(y)}" for x, y in points)
        self.add(
            f'<polygon points="{pts}" fill="{fill}" stroke="{stroke}" stroke-width="{n(width)}" '
            'stroke-linejoin="round"/>'
        )

    def line(
        self,
        x1: float,
        y1: float,
        x2: float,
        y2: float,
        stroke: str,
        width: float = 1,
        dash: str | None = None,
    ) -> None:
        extra = f' stroke-dasharray="{dash}"' if dash else ""
        self.add(
            f'<line x1="{n(x1)}" y1="{n(y1)}" x2="{n(x2)}" y2="{n(y2)}" stroke="{stroke}" '
            f'stroke-width="{n(width)}"{extra}/>'
        )

    def path(
        self, d: str, stroke: str, width: float = 1, fill: str = "none", dash: str | None = None
    ) -> None:
        extra = f' stroke-dasharray="{dash}"' if dash else ""
        self.add(f'<path d="{d}" fill="{fill}" stroke="{stroke}" stroke-width="{n(width)}"{extra}/>')

    def text(
        self,
        x: float,
        y: float,
        text: str,
        size: float,
        fill: str,
        anchor: str = "start",
        bold: bool = False,
        italic: bool = False,
    ) -> None:
        style = (' font-weight="bold"' if bold else "") + (' font-style="italic"' if italic else "")
        self.add(
            f'<text x="{n(x)}" y="{n(y)}" font-size="{n(size)}" fill="{fill}" '
            f'text-anchor="{anchor}"{style}>{escape(text)}</text>'
        )

    def open(self, title: str | None = None, cls: str | None = None) -> None:
        self.add(f"<g{f' class={attr(cls)}' if cls else ''}>")
        if title:
            self.add(f"<title>{escape(title)}</title>")

    def close(self) -> None:
        self.add("</g>")

    def document(self, width: float, height: float, title: str) -> str:
        head = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{n(width)}" height="{n(height)}" '
            f'viewBox="0 0 {n(width)} {n(height)}" font-family={attr(FONT)}>\n'
            f"<title>{escape(title)}</title>\n"
            f'<rect width="100%" height="100%" fill="{self.theme.background}"/>\n'
        )
        return head + "\n".join(self.parts) + "\n</svg>\n"


def legend(svg: Svg, x: float, y: float, families: list[str], max_width: float, notes: list[str]) -> float:
    """Colour swatches with their families' words, wrapped at ``max_width``, then ``notes`` (one
    line each); returns the y below it."""
    theme, size = svg.theme, 11
    cx = x
    for fam in families:
        words = FAMILIES[fam][1]
        width = 16 + text_width(words, size) + 18
        if cx + width > x + max_width and cx > x:
            cx, y = x, y + 18
        svg.rect(cx, y - 9, 11, 11, theme.fill(fam), theme.stroke(fam), rx=2)
        svg.text(cx + 16, y, words, size, theme.muted)
        cx += width
    for note in notes:
        y += 17
        svg.text(x, y, note, size, theme.muted, italic=True)
    return y + 10
