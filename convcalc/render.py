"""Analysis -> what people read: a rich table, the JSON interface, ``--explain`` text.

Rendering only; every number comes from ``engine.analyze``. No torch, no textual.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.cells import cell_len
from rich.table import Table
from rich.text import Text

from convcalc.engine import Analysis, LayerResult, Problem, fmt_count, fmt_shape
from convcalc.engine import fmt_num as num
from convcalc.graph import NETWORK_INPUT


def axes(*values: float) -> str:
    """``5`` when every axis agrees, else ``5×7`` (height × width; D×H×W in 3-D)."""
    return num(values[0]) if len(set(values)) <= 1 else "×".join(num(v) for v in values)


def rf_text(row: LayerResult) -> tuple[str, str]:
    """(receptive field, jump) of a row as short text; dashes where nothing was computed."""
    if row.receptive_field is None:
        return "—", "—"
    if not row.receptive_field:
        return "", ""  # a flat input: no positions
    return axes(*(a.size for a in row.receptive_field)), axes(*(a.jump for a in row.receptive_field))


def human_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,} B" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def human_count(n: int) -> str:
    """Short counts for totals: 281.6 K, 15.47 G."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.4g} {unit}"
    return str(n)


@dataclass
class TableRow:
    """One line of the layer table: a layer, or a block or group folded by ``--depth``."""

    index: str
    name: str
    type: str
    settings: str
    reads: str
    output: str
    params: str
    macs: str
    rf: str
    jump: str
    style: str | None


def input_names(analysis: Analysis, row: LayerResult) -> list[str]:
    return ["input" if i == NETWORK_INPUT else analysis.rows[i].name for i in row.inputs]


@dataclass(frozen=True)
class Fold:
    """A layer, or (with ``depth``) a block or group nested deeper than ``depth`` levels folded
    into one: what the table's lines and ``convcalc draw``'s boxes show."""

    rows: tuple[LayerResult, ...]  # the layers inside, in order (one, for a layer)
    key: tuple[str, ...] | None  # the folded group's path; None for a single layer
    kind: str  # the layer's type, or the group's kind (a block's name, ``Sequential``)
    reads: int  # a folded group: the row it reads (NETWORK_INPUT: the network input)
    result: LayerResult  # the row whose output is its output

    @property
    def name(self) -> str:
        return self.result.name if self.key is None else ".".join(self.key)

    @property
    def done(self) -> bool:
        return all(r.output_shape is not None for r in self.rows)

    @property
    def params(self) -> int:
        return sum(r.params for r in self.rows)

    @property
    def macs(self) -> int:
        return sum(r.macs for r in self.rows)


def fold(analysis: Analysis, depth: int | None = None) -> list[Fold]:
    """The rows, with every block or group nested deeper than ``depth`` levels as one ``Fold``
    (in row order: a group sits where its first layer is)."""
    kinds = {group.path: group.kind for group in analysis.groups}
    out: list[Fold] = []
    folded: set[tuple[str, ...]] = set()
    for row in analysis.rows:
        path = row.path or (row.name,)
        if depth is None or len(path) <= depth:
            out.append(Fold((row,), None, row.type, row.inputs[0] if row.inputs else NETWORK_INPUT, row))
            continue
        key = path[:depth]
        if key in folded:
            continue
        folded.add(key)
        inside = tuple(r for r in analysis.rows if (r.path or (r.name,))[:depth] == key)
        first_in, last = analysis.bounds.get(key, (inside[0].inputs[0], inside[-1].index))
        result = analysis.rows[last] if last != NETWORK_INPUT else inside[-1]
        out.append(Fold(inside, key, kinds.get(key, "Sequential"), first_in, result))
    return out


def table_rows(analysis: Analysis, depth: int | None = None) -> list[TableRow]:
    """The table's lines; with ``depth``, every block or group nested deeper than ``depth``
    levels is one line: its path, kind, output, summed params and MACs, and the receptive
    field of its output."""
    out: list[TableRow] = []
    for unit in analysis.rows if depth is None else fold(analysis, depth):  # unfolded: no Fold to build
        row = unit if depth is None else unit.result
        if depth is None or unit.key is None:
            rf, jump = rf_text(row)
            done = row.output_shape is not None
            out.append(TableRow(
                str(row.index), row.name, row.type, row.summary,
                "" if row.straight else ", ".join(input_names(analysis, row)),
                output_text(row.output_shape), _count(row.params, done), _count(row.macs, done),
                rf, jump, "red" if row.errors else ("yellow" if row.warnings else None),
            ))  # fmt: skip
            continue
        inside, first_in = unit.rows, unit.reads
        rf, jump = rf_text(row)
        reads = (
            ""
            if first_in == inside[0].index - 1
            else "input"
            if first_in == NETWORK_INPUT
            else analysis.rows[first_in].name
        )
        errors, warnings = any(r.errors for r in inside), any(r.warnings for r in inside)
        out.append(TableRow(
            f"{inside[0].index}–{inside[-1].index}", unit.name, unit.kind,
            fmt_count(len(inside), "layer"), reads, output_text(row.output_shape),
            _count(unit.params, unit.done), _count(unit.macs, unit.done),
            rf, jump, "red" if errors else ("yellow" if warnings else None),
        ))  # fmt: skip
    return out


def _count(n: int, done: bool) -> str:
    return f"{n:,}" if done else "—"


def layer_table(analysis: Analysis, depth: int | None = None) -> Table:
    """One row per layer (or folded block, with ``depth``): #, name, type, settings, what it
    reads (graphs only), output shape, params, MACs, RF, jump."""
    title = Text(f"{analysis.name}: input {fmt_shape(analysis.input_shape)}")  # the name is text, not markup
    table = Table(title=title, title_justify="left")
    lines = table_rows(analysis, depth)
    show_reads = any(line.reads for line in lines)
    # numbers are never cut: their columns are as wide as their longest value
    widths = {attr: max([len(getattr(line, attr)) for line in lines] + [1])
              for attr in ("index", "output", "params", "macs", "rf", "jump")}  # fmt: skip
    table.add_column("#", justify="right", no_wrap=True, min_width=widths["index"])
    table.add_column("name", no_wrap=True)
    table.add_column("type", no_wrap=True)
    table.add_column("settings", no_wrap=True)
    if show_reads:
        table.add_column("reads", no_wrap=True)
    for header, attr in (
        ("output", "output"),
        ("params", "params"),
        ("MACs", "macs"),
        ("RF", "rf"),
        ("jump", "jump"),
    ):
        table.add_column(header, justify="right", no_wrap=True, min_width=widths[attr])
    # as wide as its cells need (callers piping it widen the console to this; rich never goes
    # beyond the console's width): each column its longest cell, plus the borders
    cells = [[line.index, line.name, line.type, line.settings, *([line.reads] if show_reads else []),
              line.output, line.params, line.macs, line.rf, line.jump] for line in lines]  # fmt: skip
    natural = [
        max([len(str(column.header))] + [len(row[i]) for row in cells])
        for i, column in enumerate(table.columns)
    ]
    table.min_width = sum(width + 3 for width in natural) + 1
    for line in lines:
        reads = [line.reads] if show_reads else []
        cells = [line.index, line.name, line.type, line.settings, *reads, line.output, line.params, line.macs]
        table.add_row(*cells, line.rf, line.jump, style=line.style)
    return table


_HEADERS = ("#", "name", "type", "settings", "reads", "output", "params", "MACs", "RF", "jump")
_RIGHT = {"#", "output", "params", "MACs", "RF", "jump"}


def table_lines(analysis: Analysis, depth: int | None = None) -> list[tuple[str, str | None]]:
    """``layer_table`` as plain lines, each with its style (None, or its row's colour): the same
    characters rich prints for it when it fits (rich's HEAVY_HEAD box, every column as wide as
    its longest cell, one space of padding), in one pass. ``rich.Table`` lays a 10,000-layer
    table out in about 18 s (1.8 ms a row); this takes a few hundredths of one. The title is
    the one difference: never wrapped, and without rich's trailing spaces."""
    lines = table_rows(analysis, depth)
    headers = [h for h in _HEADERS if h != "reads" or any(line.reads for line in lines)]
    attrs = ["macs" if h == "MACs" else "index" if h == "#" else h.lower() for h in headers]
    cells = [[getattr(line, attr) for attr in attrs] for line in lines]
    width: dict[str, int] = {}  # cell text -> terminal cells (a deep stack repeats most texts)
    for text in {v for row in cells for v in row} | set(headers):
        width[text] = cell_len(text)
    widths = [max([width[h]] + [width[row[i]] for row in cells]) for i, h in enumerate(headers)]
    right = [h in _RIGHT for h in headers]

    def line(values: list[str]) -> str:
        padded = (
            " " * (w - width[v]) + v if r else v + " " * (w - width[v])
            for v, w, r in zip(values, widths, right, strict=True)
        )
        return "│ " + " │ ".join(padded) + " │"

    def rule(left: str, middle: str, right_end: str, fill: str) -> str:
        return left + middle.join(fill * (w + 2) for w in widths) + right_end

    out: list[tuple[str, str | None]] = [
        (f"{analysis.name}: input {fmt_shape(analysis.input_shape)}", None),
        (rule("┏", "┳", "┓", "━"), None),
        (line(headers).replace("│", "┃"), "bold"),
        (rule("┡", "╇", "┩", "━"), None),
    ]
    out += [(line(row), source.style) for row, source in zip(cells, lines, strict=True)]
    out.append((rule("└", "┴", "┘", "─"), None))
    return out


def totals_text(analysis: Analysis) -> Text:
    # Any layer left uncomputed (an error there or above): no total means anything, so "—"
    done = all(row.output_shape is not None for row in analysis.rows)

    def total(n: int, text: str) -> str:
        return f"{n:,} ({text})" if done else "—"

    param_bytes = f"{human_bytes(analysis.param_bytes)} as float32"
    lines = [
        f"Output shape:       {output_text(analysis.output_shape)}",
        f"Total params:       {total(analysis.total_params, param_bytes)}",
        f"Trainable params:   {analysis.trainable_params:,}" if done else "Trainable params:   —",
        f"MACs per sample:    {total(analysis.total_macs, human_count(analysis.total_macs))}"
        + (f"; FLOPs = 2·MACs = {analysis.total_flops:,}" if done else ""),
        f"Output memory:      {human_bytes(analysis.total_memory_bytes)} per sample (every layer's output, "
        "float32; what training keeps: convcalc memory)"
        if done
        else "Output memory:      —",
    ]
    return Text("\n".join(lines))


def output_text(shape: tuple[int, ...] | None) -> str:
    """An output shape as the table prints it: a flat one (Flatten, Linear) as ``25,088``."""
    return f"{shape[0]:,}" if shape is not None and len(shape) == 1 else fmt_shape(shape)


def problems_text(problems: tuple[Problem, ...], label: str) -> str:
    return "\n".join(f"{label}: {problem}" for problem in problems)


def explain_row(row: LayerResult) -> list[str]:
    """The formulas of one layer with its numbers put in (what ``--explain`` prints)."""
    head = f"[{row.index}] {row.name} ({row.type}{' ' + row.summary if row.summary else ''}): "
    head += f"{fmt_shape(row.input_shape)} → {fmt_shape(row.output_shape)}"
    return [head, *(f"    {line}" for line in row.explain)]


def explain_text(analysis: Analysis) -> str:
    return "\n".join(line for row in analysis.rows for line in explain_row(row))


def _rf_list(row: LayerResult, attr: str) -> list[float] | None:
    if row.receptive_field is None:
        return None
    return [_json_num(getattr(axis, attr)) for axis in row.receptive_field]


def _json_num(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def _problem_json(problem: Problem) -> dict[str, Any]:
    return {"index": problem.index, "name": problem.name, "message": str(problem)}


def to_json(analysis: Analysis) -> dict[str, Any]:
    """The stable machine interface of ``convcalc shape --json`` (documented in the README)."""
    return {
        "name": analysis.name,
        "input_shape": list(analysis.input_shape),
        "layers": [
            {
                "index": row.index,
                "name": row.name,
                "type": row.type,
                "inputs": input_names(analysis, row),
                "output_shape": list(row.output_shape) if row.output_shape else None,
                "params": row.params,
                "trainable_params": row.trainable_params,
                "macs": row.macs,
                "memory_bytes": row.memory_bytes,
                "receptive_field": _rf_list(row, "size"),
                "jump": _rf_list(row, "jump"),
                "start": _rf_list(row, "start"),
                "warnings": [str(w) for w in row.warnings],
            }
            for row in analysis.rows
        ],
        "groups": [
            {
                "name": group.name,
                "type": group.kind,
                "output": None
                if (end := analysis.bounds.get(group.path, (0, NETWORK_INPUT))[1]) == NETWORK_INPUT
                else analysis.rows[end].name,
            }
            for group in analysis.groups
        ],
        "output": analysis.output_row.name if analysis.output_row else "input",
        "output_shape": list(analysis.output_shape) if analysis.output_shape else None,
        "total_params": analysis.total_params,
        "trainable_params": analysis.trainable_params,
        "total_macs": analysis.total_macs,
        "warnings": [_problem_json(p) for p in analysis.warnings],
        "errors": [_problem_json(p) for p in analysis.errors],
    }
