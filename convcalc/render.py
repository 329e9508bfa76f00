"""Analysis -> what people read: a rich table, the JSON interface, ``--explain`` text.

Rendering only; every number comes from ``engine.analyze``. No torch, no textual.
"""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text

from convcalc.engine import Analysis, LayerResult, Problem, fmt_shape
from convcalc.engine import fmt_num as num


def axes(h: float, w: float) -> str:
    """``5`` when both axes agree, else ``5×7`` (height × width)."""
    return num(h) if h == w else f"{num(h)}×{num(w)}"


def rf_text(row: LayerResult) -> tuple[str, str]:
    """(receptive field, jump) of a row as short text; dashes where nothing was computed."""
    if row.receptive_field is None:
        return "—", "—"
    h, w = row.receptive_field
    return axes(h.size, w.size), axes(h.jump, w.jump)


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


def layer_table(analysis: Analysis) -> Table:
    """One row per layer: #, name, type, settings, output shape, params, MACs, RF, jump."""
    title = Text(f"{analysis.name}: input {fmt_shape(analysis.input_shape)}")  # the name is text, not markup
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("name", no_wrap=True)
    table.add_column("type", no_wrap=True)
    table.add_column("settings", no_wrap=True)
    table.add_column("output", justify="right")
    table.add_column("params", justify="right")
    table.add_column("MACs", justify="right")
    table.add_column("RF", justify="right")
    table.add_column("jump", justify="right")
    for row in analysis.rows:
        rf, jump = rf_text(row)
        style = "red" if row.errors else ("yellow" if row.warnings else None)
        done = row.output_shape is not None
        table.add_row(
            str(row.index), row.name, row.type, row.summary, fmt_shape(row.output_shape),
            f"{row.params:,}" if done else "—", f"{row.macs:,}" if done else "—", rf, jump, style=style,
        )  # fmt: skip
    return table


def totals_text(analysis: Analysis) -> Text:
    lines = [
        f"Output shape:       {fmt_shape(analysis.output_shape)}",
        f"Total params:       {analysis.total_params:,} ({human_bytes(analysis.param_bytes)} as float32)",
        f"Trainable params:   {analysis.trainable_params:,}",
        f"MACs per sample:    {analysis.total_macs:,} ({human_count(analysis.total_macs)}); "
        f"FLOPs = 2·MACs = {analysis.total_flops:,}",
        f"Activation memory:  {human_bytes(analysis.total_memory_bytes)} per sample (forward, float32)",
    ]
    return Text("\n".join(lines))


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
        "output_shape": list(analysis.output_shape) if analysis.output_shape else None,
        "total_params": analysis.total_params,
        "trainable_params": analysis.trainable_params,
        "total_macs": analysis.total_macs,
        "warnings": [_problem_json(p) for p in analysis.warnings],
        "errors": [_problem_json(p) for p in analysis.errors],
    }
