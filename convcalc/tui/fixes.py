"""The designer's ``f`` key: the engine's fix for an error, applied as an edit.

The engine marks the fixes that are plain edits with a ``FixAction`` (insert the missing
Flatten before a Linear, take the largest padding a pool accepts, leave a wrong in_channels out
so it is inferred); here such an action becomes a new, validated network. No textual, no torch.
"""

from __future__ import annotations

from convcalc.engine import Analysis
from convcalc.layers.base import Problem
from convcalc.spec import Network, network_from_data, spec_to_data


def fixable(analysis: Analysis, network: Network, selected: int) -> Problem | None:
    """The error ``f`` fixes: the selected layer's first error with an action, else the first
    such error of the network. None when there is none, or when rows are not one per item of
    ``layers`` (blocks, Sequential, repeat: an index would not name the layer to change)."""
    rows = analysis.rows
    if network.blocks or len(rows) != len(network.layers) or any(row.groups for row in rows):
        return None
    ordered = ([rows[selected]] if 0 <= selected < len(rows) else []) + list(rows)
    for row in ordered:
        for problem in row.errors:
            if problem.action is not None:
                return problem
    return None


def apply_fix(network: Network, problem: Problem) -> Network:
    """``network`` with ``problem``'s action applied (raises ``SpecError`` if the result is not a
    valid spec; the caller keeps the old network then)."""
    assert problem.action is not None and problem.index is not None
    data = spec_to_data(network)
    fields = dict(problem.action.fields)
    if problem.action.kind == "insert":
        data["layers"].insert(problem.index, fields)
    else:
        layer = data["layers"][problem.index]
        for key, value in fields.items():
            if value is None:
                layer.pop(key, None)
            else:
                layer[key] = value
    return network_from_data(data, source="fix")


def describe(problem: Problem) -> str:
    """What the key does, for the footer's notice: ``layer 7 (fc1): add a Flatten layer before it``."""
    return f"layer {problem.index} ({problem.name}): {problem.fix}"
