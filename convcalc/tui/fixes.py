"""The designer's ``f`` key: the engine's fix for an error, applied as an edit.

The engine marks the fixes that are plain edits with a ``FixAction`` (insert the missing
Flatten before a Linear, take the largest padding a pool accepts, leave a wrong in_channels out
so it is inferred); here such an action becomes a new, validated network. In a graph spec the
edit goes where the layer is written (``graphmodel.locate``): a block's layer in the block's
definition, so every use changes, as the designer's other edits do. No textual, no torch.
"""

from __future__ import annotations

import copy

from convcalc.engine import Analysis
from convcalc.errors import SpecError
from convcalc.layers.base import Problem
from convcalc.spec import Network, network_from_data
from convcalc.tui import graphmodel


def fixable(analysis: Analysis, network: Network, selected: int) -> Problem | None:
    """The error ``f`` fixes: the selected layer's first error with an action, else the first
    such error of the network. None when there is none; an action that sets a field written as a
    block parameter (``padding: $pad``: a value per use, not one edit) is not offered."""
    rows = analysis.rows
    ordered = ([rows[selected]] if 0 <= selected < len(rows) else []) + list(rows)
    for row in ordered:
        for problem in row.errors:
            if problem.action is not None and _one_edit(network, problem):
                return problem
    return None


def _one_edit(network: Network, problem: Problem) -> bool:
    if problem.index is None:
        return False
    try:
        item = graphmodel.raw_item(network, problem.index)
    except SpecError:  # the designer cannot tell where the layer is written
        return False
    if problem.action.kind == "insert":
        return True
    return not any(str(item.get(key, "")).startswith("$") for key, _ in problem.action.fields)


def apply_fix(network: Network, problem: Problem) -> tuple[Network, int]:
    """``network`` with ``problem``'s action applied where the layer is written, and the row to
    select (the changed layer, or the one put before it, in the problem's use of a block).
    Raises ``SpecError`` if the result is not a valid spec; the caller keeps the old network."""
    assert problem.action is not None and problem.index is not None
    places = graphmodel.locate(network)
    loc = places.nodes[problem.index]
    data = copy.deepcopy(places.data)  # the located data is shared: never changed in place
    fields = dict(problem.action.fields)
    item = graphmodel.item_at(data, loc)
    if problem.action.kind == "insert":
        if "inputs" in item:  # the new layer reads what the layer read, and the layer reads it
            fields["inputs"] = item.pop("inputs")
        graphmodel.item_at(data, loc[:-1]).insert(loc[-1], fields)
    else:
        for key, value in fields.items():
            if value is None:
                item.pop(key, None)
            else:
                item[key] = value
    fixed = network_from_data(data, source="fix")
    scope = network.graph.nodes[problem.index].path[:-1]
    rows = [
        node.index
        for node, place in zip(fixed.graph.nodes, graphmodel.locate(fixed).nodes, strict=True)
        if place == loc and node.path[:-1] == scope
    ]
    return fixed, rows[0] if rows else min(problem.index, len(fixed.graph.nodes) - 1)


def describe(problem: Problem) -> str:
    """What the key does, for the footer's notice: ``layer 7 (fc1): add a Flatten layer before it``."""
    return f"layer {problem.index} ({problem.name}): {problem.fix}"
