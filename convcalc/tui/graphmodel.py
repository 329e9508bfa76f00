"""The designer's view of a graph spec: where each table row's layer is written in the spec,
the group rows (blocks and ``Sequential``s) and edits at those places.

A spec with blocks, groups or ``repeat`` expands into more rows than it has items: ResNet-50's
175 layers come from 14 items and two block definitions. The designer edits the *items*: a
layer of a block body is written once (``blocks.Bottleneck.layers.0``) and edited there, so an
edit changes every use. ``locate`` walks the spec's data in the order ``graph.expand`` does
(depth first, ``repeat`` copies in a row) and gives, for every node and every group of the
expanded graph, the place (a ``Loc``) of the item that made it; it checks the walk against
the graph itself, node by node, so a row is never edited at the wrong place.

Every edit is a pure function ``Network -> Network`` on the spec's data (``spec_to_data``),
validated again as a whole (``network_from_data``). No textual, no torch.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any, NamedTuple

from convcalc.engine import Analysis, LayerResult, fmt_count, fmt_shape
from convcalc.graph import NETWORK_INPUT, Group, substitute
from convcalc.spec import LAYER_CLASSES, Network, SpecError, canonical_type, network_from_data, spec_to_data
from convcalc.tui import model

# A place in the spec's data: ("layers", 4, "layers", 1) is the second item of the fifth item's
# group; ("blocks", "Bottleneck", "layers", 2) the third layer of a block's definition.
Loc = tuple[str | int, ...]
MERGES = ("Add", "Cat", "Mul")
_PATTERN = re.compile(r"\{[in]\}")


@dataclass(frozen=True)
class Places:
    """Where the items behind a network's graph are written: ``nodes[i]`` for row ``i``,
    ``groups[j]`` for ``graph.groups[j]``."""

    nodes: tuple[Loc, ...]
    groups: tuple[Loc, ...]
    data: dict[str, Any]  # the spec's data these places index (not to be changed in place)


def has_structure(network: Network) -> bool:
    """The spec uses blocks, ``Sequential`` groups or ``repeat``: its rows are not its items."""
    return bool(network.blocks) or any(
        item.type not in LAYER_CLASSES or getattr(item, "repeat", 1) != 1 for item in network.layers
    )


_CACHE: list[tuple[Network, Places]] = []  # the last network located (the designer asks often)


def locate(network: Network) -> Places:
    """The places of ``network``'s nodes and groups; ``SpecError`` when the walk and the graph
    disagree (a spec the designer would otherwise edit at the wrong place)."""
    if _CACHE and _CACHE[0][0] is network:
        return _CACHE[0][1]
    data = spec_to_data(network)
    walk = _Walk(data)
    walk.items(data["layers"], ("layers",), {})
    graph = network.graph
    if walk.kinds != [node.layer.type for node in graph.nodes] or walk.group_kinds != [
        g.kind for g in graph.groups
    ]:
        raise SpecError([
            f"{network.name}: the designer cannot tell which item of the spec makes each layer; "
            "edit it as text, and look at it with `convcalc shape --depth 1`"
        ])  # fmt: skip
    places = Places(tuple(walk.nodes), tuple(walk.groups), data)
    _CACHE[:] = [(network, places)]
    return places


class _Walk:
    """The items in ``graph.expand``'s order: a leaf layer is a node, a ``Sequential`` or a
    block use a group (a named ``repeat`` first makes a ``Sequential`` of its copies)."""

    def __init__(self, data: dict[str, Any]):
        self.data, self.blocks = data, data.get("blocks", {})
        self.nodes: list[Loc] = []
        self.kinds: list[str] = []  # each node's type (a block may write `type: $act`)
        self.groups: list[Loc] = []
        self.group_kinds: list[str] = []

    def items(self, items: list[Any], prefix: Loc, params: dict[str, Any]) -> None:
        for position, raw in enumerate(items):
            loc = (*prefix, position)
            item = substitute(raw, params, "") if params else raw
            repeat, name = item.get("repeat", 1), item.get("name")
            if repeat > 1 and isinstance(name, str) and not _PATTERN.search(name):
                self._group(loc, "Sequential")
            for _ in range(repeat):
                self._one(item, loc)

    def _group(self, loc: Loc, kind: str) -> None:
        self.groups.append(loc)
        self.group_kinds.append(kind)

    def _one(self, item: dict[str, Any], loc: Loc) -> None:
        kind = canonical_type(item["type"])
        if kind == "Sequential":
            self._group(loc, kind)
            self.items(item["layers"], (*loc, "layers"), {})
        elif kind in self.blocks:
            self._group(loc, kind)
            block = self.blocks[kind]
            defaults = block["params"] if isinstance(block["params"], dict) else {}
            given = {
                key: value for key, value in item.items() if key not in ("type", "name", "inputs", "repeat")
            }
            self.items(block["layers"], ("blocks", kind, "layers"), {**defaults, **given})
        else:
            self.nodes.append(loc)
            self.kinds.append(kind)


def item_at(data: dict[str, Any], loc: Loc) -> Any:
    value: Any = data
    for key in loc:
        value = value[key]
    return value


def raw_item(network: Network, index: int) -> dict[str, Any]:
    """Row ``index``'s item as written (``$planes`` where a block body says so)."""
    places = locate(network)
    return item_at(places.data, places.nodes[index])


def block_of(loc: Loc) -> str | None:
    return str(loc[1]) if loc[0] == "blocks" else None


def where_text(network: Network, index: int) -> str:
    """What an edit of row ``index`` changes, for the editor: ``block Bottleneck, used 12 times``."""
    places = locate(network)
    loc = places.nodes[index]
    block, count = block_of(loc), places.nodes.count(loc)
    if block is not None:
        used = sum(1 for group in network.graph.groups if group.kind == block)
        times = "time" if used == 1 else "times"
        return f"block {block}, used {used} {times}: an edit here changes every use"
    if count > 1:
        return f"repeated: an edit changes all {count} copies"
    return ""


# --------------------------------------------------------------------------------------
# Edits at a place


def _validated(data: dict[str, Any]) -> Network:
    try:
        return network_from_data(data, source="editor")
    except SpecError as error:
        raise model.FieldErrors.from_problems(error.problems) from None


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value


def _container(data: dict[str, Any], loc: Loc) -> list[Any]:
    return item_at(data, loc[:-1])


def edit_node(network: Network, index: int, type_name: str, values: dict[str, Any]) -> Network:
    """Row ``index``'s item replaced by ``type_name(**values)`` (None values left out), where it
    is written: in a block's definition, every use changes. ``FieldErrors`` when not valid."""
    places = locate(network)
    loc = places.nodes[index]
    data = _copy(places.data)
    written = item_at(data, loc)["type"]
    if type_name == network.graph.nodes[index].layer.type and str(written).startswith("$"):
        type_name = written  # the block's `type: $act` stays a parameter
    _container(data, loc)[loc[-1]] = {"type": type_name, **{k: v for k, v in values.items() if v is not None}}
    return _validated(data)


def change_type(network: Network, index: int, type_name: str) -> Network:
    """Row ``index``'s item as a ``type_name``, keeping the fields both types have (and its
    ``name``, ``inputs``, ``repeat``) when they validate, else only those three."""
    old = raw_item(network, index)
    if network.graph.nodes[index].layer.type == type_name:
        return network
    cls = LAYER_CLASSES[type_name]
    kept = {key: value for key, value in old.items() if key in cls.model_fields and key != "type"}
    starter = {**model.STARTER_FIELDS.get(type_name, {})}
    try:
        return edit_node(network, index, type_name, {**starter, **kept})
    except model.FieldErrors:
        structure = {key: old[key] for key in ("name", "inputs", "repeat") if key in old}
        return edit_node(network, index, type_name, {**starter, **structure})


def field_setter(network: Network, index: int):
    """For ``o``: a function of fields (the solver's fix) to the network with them set on row
    ``index``'s item where it is written; ``FieldErrors`` for a field the item writes as a
    block parameter (``stride: $stride``: a value per use, set on the group row)."""
    raw, layer = raw_item(network, index), network.graph.nodes[index].layer
    block = block_of(locate(network).nodes[index])

    def setter(fields: dict[str, Any]) -> Network:
        # the solver gives every size field; one it leaves as it was stays as written (`$k`)
        fields = {key: value for key, value in fields.items() if not _same(value, getattr(layer, key))}
        params = {key: raw[key] for key in fields if str(raw.get(key, "")).startswith("$")}
        if params:
            raise model.FieldErrors({
                key: f"{value} is a parameter of block {block}: set it on the block's use (its group row)"
                for key, value in params.items()
            })  # fmt: skip
        values = {key: value for key, value in raw.items() if key != "type"} | fields
        return edit_node(network, index, network.graph.nodes[index].layer.type, values)

    return setter


def _same(a: Any, b: Any) -> bool:
    """One size setting however written: ``3`` is ``[3, 3]``."""
    x, y = (list(v) if isinstance(v, (list, tuple)) else [v] for v in (a, b))
    return x == y or (len(set(map(str, x))) == len(set(map(str, y))) == 1 and x[0] == y[0])


def _place(places: Places, index: int | None, group: int | None) -> Loc:
    """The item of group ``group`` (a group row), else of row ``index``."""
    return places.groups[group] if group is not None else places.nodes[index]


def _first_row(network: Network, loc: Loc, near: int) -> int:
    """The row of the item at ``loc`` (the first row of its group, for a group) nearest ``near``."""
    places = locate(network)
    rows = [i for i, place in enumerate(places.nodes) if place[: len(loc)] == loc]
    return min(rows, key=lambda i: (abs(i - near), i)) if rows else min(near, len(places.nodes) - 1)


def insert_after(
    network: Network, index: int | None, item: dict[str, Any], group: int | None = None
) -> tuple[Network, int]:
    """``item`` right after the item of row ``index`` (or of group row ``group``) in the same
    list, ``None``: at the end of the network's layers; the new network and the new item's row."""
    places = locate(network)
    data = _copy(places.data)
    if index is None:
        loc: Loc = ("layers", len(data["layers"]))
    else:
        after = _place(places, index, group)
        loc = (*after[:-1], after[-1] + 1)
    _container(data, loc).insert(loc[-1], item)
    new = _validated(data)
    return new, _first_row(new, loc, index if index is not None else len(places.nodes))


def delete_node(network: Network, index: int, group: int | None = None) -> Network:
    """The item of row ``index`` (or group row ``group``) removed where it is written: from the
    block, for a block's layer (every use loses it)."""
    places = locate(network)
    loc = _place(places, index, group)
    data = _copy(places.data)
    del _container(data, loc)[loc[-1]]
    return _validated(data)


def move_node(network: Network, index: int, offset: int, group: int | None = None) -> tuple[Network, int]:
    """The item of row ``index`` (or group row ``group``) swapped with its neighbour ``offset``
    (±1) in its own list; the new network and the moved item's row."""
    places = locate(network)
    loc = _place(places, index, group)
    data = _copy(places.data)
    items = _container(data, loc)
    target = loc[-1] + offset
    if not 0 <= target < len(items):
        return network, index
    items[loc[-1]], items[target] = items[target], items[loc[-1]]
    new = _validated(data)
    return new, _first_row(new, (*loc[:-1], target), index)


def duplicate_node(network: Network, index: int, group: int | None = None) -> tuple[Network, int]:
    """A copy of the item of row ``index`` (or group row ``group``) right after it; a named
    item's copy gets a fresh name (``conv1_2``)."""
    places = locate(network)
    loc = _place(places, index, group)
    item = _copy(item_at(places.data, loc))  # the cached data is never changed in place
    if isinstance(item.get("name"), str):
        taken = {other.get("name") for other in _container(places.data, loc)}
        base, n = re.sub(r"_\d+$", "", item["name"]), 2
        while f"{base}_{n}" in taken:
            n += 1
        item["name"] = f"{base}_{n}"
    return insert_after(network, index, item, group)


# --------------------------------------------------------------------------------------
# The table: layer rows under foldable group rows


class Line(NamedTuple):
    """One line of the table: layer row ``row``, or the header of ``analysis.groups[group]``
    (a named tuple: ResNet-50 makes 199 of them on every redraw)."""

    depth: int  # how many groups enclose it
    row: int | None = None
    group: int | None = None


@dataclass(frozen=True)
class Sums:
    """Running totals over the rows, so a group's sums are two lookups: ``params[i]`` is the
    params of rows ``0 .. i-1``."""

    params: tuple[int, ...]
    macs: tuple[int, ...]
    errors: tuple[int, ...]  # rows with an error
    warnings: tuple[int, ...]
    unknown: tuple[int, ...]  # rows without an output shape

    def of(self, name: str, span: range) -> int:
        running = getattr(self, name)
        return running[span.stop] - running[span.start]


_SPANS: list[tuple[Analysis, dict[tuple[str, ...], range], Sums]] = []  # of the last analysis asked


def spans(analysis: Analysis) -> dict[tuple[str, ...], range]:
    """Each group's rows (contiguous: the expansion is depth first), by group path."""
    return _cached(analysis)[1]


def sums(analysis: Analysis) -> Sums:
    return _cached(analysis)[2]


def _cached(analysis: Analysis) -> tuple[Analysis, dict[tuple[str, ...], range], Sums]:
    if not (_SPANS and _SPANS[0][0] is analysis):
        _SPANS[:] = [(analysis, _spans(analysis), _sums(analysis))]
    return _SPANS[0]


def _spans(analysis: Analysis) -> dict[tuple[str, ...], range]:
    first: dict[tuple[str, ...], int] = {}
    last: dict[tuple[str, ...], int] = {}
    for row in analysis.rows:
        for group in row.groups:
            first.setdefault(group.path, row.index)
            last[group.path] = row.index
    return {path: range(first[path], last[path] + 1) for path in first}


def _sums(analysis: Analysis) -> Sums:
    def running(values) -> tuple[int, ...]:
        return (0, *itertools.accumulate(values))

    rows = analysis.rows
    return Sums(
        running(r.params for r in rows), running(r.macs for r in rows),
        running(bool(r.errors) for r in rows), running(bool(r.warnings) for r in rows),
        running(r.output_shape is None for r in rows),
    )  # fmt: skip


def table_lines(analysis: Analysis, folded: frozenset[tuple[str, ...]] | set) -> list[Line]:
    """The table's lines: a header before each group's rows, its rows left out when it (or a
    group around it) is folded."""
    index = {group.path: j for j, group in enumerate(analysis.groups)}
    lines: list[Line] = []
    open_: list[Group] = []
    shut: int | None = None  # the depth of the outermost folded group open here
    last: tuple[Group, ...] | None = None
    for row in analysis.rows:
        groups = row.groups
        if groups is not last:  # the rows of one scope share their tuple of groups
            keep = 0
            while keep < min(len(open_), len(groups)) and open_[keep] == groups[keep]:
                keep += 1
            del open_[keep:]
            if shut is not None and shut >= keep:
                shut = None
            for group in groups[keep:]:
                if shut is None:
                    lines.append(Line(len(open_), None, index[group.path]))
                    if group.path in folded:
                        shut = len(open_)
                open_.append(group)
            last = groups
        if shut is None:
            lines.append(Line(len(groups), row.index))
    return lines


def group_cells(analysis: Analysis, line: Line, folded: bool, span: range) -> tuple[str, ...]:
    """A group row's cells (mark, #, name, type, settings, output, params, MACs): its rows'
    sums, the output of its last row, ``▸``/``▾`` folded or not."""
    group = analysis.groups[line.group]
    total = sums(analysis)
    mark = "✗" if total.of("errors", span) else ("!" if total.of("warnings", span) else "")
    out = analysis.rows[analysis.bounds[group.path][1]]
    params = analysis.params.get(group.path)
    settings = " ".join(f"{k}={model.format_value(v)}" for k, v in params.items()) if params else ""
    settings = settings or fmt_count(len(span), "layer")
    if reads := group_reads(analysis, line.group):
        settings += f" ← {reads}"
    done = not total.of("unknown", span)
    return (
        mark, "", f"{'  ' * line.depth}{'▸' if folded else '▾'} {group.name}", group.kind,
        settings, fmt_shape(out.output_shape),
        f"{total.of('params', span):,}" if done else "—",
        f"{total.of('macs', span):,}" if done else "—",
    )  # fmt: skip


def short_name(analysis: Analysis, row: LayerResult, i: int) -> str:
    """Input ``i`` of ``row`` as its ``inputs`` names it: ``input`` for its scope's input,
    ``bn3`` for a layer of its scope, ``downsample`` for a group's output; else the full name."""
    return _scope_name(analysis, row.path[:-1], i)


def _scope_name(analysis: Analysis, scope: tuple[str, ...], i: int) -> str:
    if i == NETWORK_INPUT or (scope and analysis.bounds[scope][0] == i):
        return "input"
    other = analysis.rows[i]
    if other.path[: len(scope)] != scope:
        return other.name
    for group in reversed(other.groups):  # the outermost group of the scope that ends at it
        if group.path[:-1] == scope and analysis.bounds[group.path][1] == i:
            return group.path[-1]
    return other.path[-1] if len(other.path) == len(scope) + 1 else other.name


def reads_text(analysis: Analysis, row: LayerResult) -> str:
    """``← bn3, layer1.0.relu3`` for a row that does not read the row above; else empty."""
    if row.straight or (row.index == 0 and row.inputs == (NETWORK_INPUT,)):
        return ""
    return "← " + ", ".join(short_name(analysis, row, i) for i in row.inputs)


_RULES = {
    "Add": "Add sums elementwise: every input must have the same shape, and the output has it",
    "Mul": "Mul multiplies elementwise, broadcasting: each dim, from the right, equal or 1 (a C×1×1 gate)",
    "Cat": "Cat joins along dim {dim} (1: channels): every other dim must match; the sizes along it add up",
}


def merge_lines(analysis: Analysis, row: LayerResult) -> list[str]:
    """For the formula pane: what the row reads (name and shape of each input) and, for a
    merge, its rule and output."""
    if row.straight and row.type not in MERGES:
        return []
    lines = ["reads:"]
    for i, shape in zip(row.inputs, row.input_shapes, strict=True):
        full = (
            ""
            if i == NETWORK_INPUT or short_name(analysis, row, i) == analysis.rows[i].name
            else f" ({analysis.rows[i].name})"
        )
        lines.append(f"    {short_name(analysis, row, i)}{full}: {fmt_shape(shape)}")
    if row.type in MERGES:
        lines.append("rule: " + _RULES[row.type].format(dim=getattr(row.layer, "dim", 1)))
        lines.append(
            f"output: {fmt_shape(row.output_shape)}" if row.output_shape else "output: none (see the error)"
        )
    return lines


# --------------------------------------------------------------------------------------
# Inputs: the names a layer may read


Choice = tuple[str, "tuple[int, ...] | None"]  # a name a layer may read, and its output shape


def scope_choices(analysis: Analysis, scope: tuple[str, ...], before: int) -> list[Choice]:
    """The names an item of ``scope`` placed before row ``before`` may read, with each one's
    output shape: ``input`` (the scope's input), then the scope's earlier items (layers and
    groups, by their names in the scope) in order."""
    rows = analysis.rows
    start = analysis.input_shape
    if scope:
        read = analysis.bounds[scope][0]
        start = analysis.input_shape if read == NETWORK_INPUT else rows[read].output_shape
    found = [(analysis.bounds[g.path][1], g.path[-1]) for g in analysis.groups if g.path[:-1] == scope]
    found += [(row.index, row.path[-1]) for row in rows if row.path[:-1] == scope]
    return [
        ("input", start),
        *((name, rows[out].output_shape) for out, name in sorted(found) if out < before),
    ]


def input_choices(analysis: Analysis, index: int) -> list[Choice]:
    """What row ``index``'s item may name in ``inputs`` (the layers above it in its scope)."""
    return scope_choices(analysis, analysis.rows[index].path[:-1], index)


def default_inputs(
    analysis: Analysis, type_name: str, index: int | None, group: int | None = None
) -> list[str]:
    """A new merge's ``inputs``, the merge placed after row ``index`` (or group row ``group``;
    ``None``: at the end of the network): what it follows, and the latest earlier name whose
    output fits that one's (the same shape; for Cat the same but channels); else ``input``."""
    if group is not None:
        path = analysis.groups[group].path
        scope, before = path[:-1], analysis.bounds[path][1] + 1
    elif index is not None:
        scope, before = analysis.rows[index].path[:-1], index + 1
    else:
        scope, before = (), len(analysis.rows)
    *earlier, (previous, shape) = scope_choices(analysis, scope, before)
    fits = [
        name
        for name, other in earlier
        if shape is not None and other is not None and _fits(type_name, shape, other)
    ]
    return [previous, fits[-1] if fits else "input"]


def _fits(type_name: str, shape: tuple[int, ...], other: tuple[int, ...]) -> bool:
    if type_name == "Cat":
        return len(shape) == len(other) and shape[1:] == other[1:]
    return shape == other


def new_item(
    type_name: str, analysis: Analysis, index: int | None, group: int | None = None
) -> dict[str, Any]:
    """A new item of ``type_name`` as data, to follow row ``index`` (or group row ``group``;
    ``None``: at the end): a merge gets its default ``inputs``."""
    layer = model.new_layer(type_name)
    item = {"type": type_name, **layer.model_dump(exclude_defaults=True, exclude={"type"})}
    if type_name in MERGES:
        item["inputs"] = default_inputs(analysis, type_name, index, group)
    return item


def with_inputs(network: Network, index: int, names: list[str]) -> Network:
    """Row ``index``'s item reading ``names`` (one name is written alone, as in a spec)."""
    item = dict(raw_item(network, index))
    item["inputs"] = names[0] if len(names) == 1 else list(names)
    del item["type"]
    return edit_node(network, index, network.graph.nodes[index].layer.type, item)


# --------------------------------------------------------------------------------------
# A group row's own fields: name, repeat and, for a block use, the block's parameters


def group_fields(network: Network, group: int) -> dict[str, tuple[str, str]]:
    """The fields of the item that makes group ``group``: each as (text as written, placeholder)."""
    places = locate(network)
    item = item_at(places.data, places.groups[group])
    block = network.blocks.get(canonical_type(item["type"]))
    params = block.params if block is not None else {}
    if isinstance(params, list):
        params = dict.fromkeys(params)
    fields = {"name": "auto", "repeat": "default: 1"}
    fields |= {key: "required" if default is None else f"default: {model.format_value(default)}"
               for key, default in params.items()}  # fmt: skip
    fields["inputs"] = "default: the item above"  # as a layer's: n picks from the earlier names
    return {field: (model.format_value(item.get(field)), hint) for field, hint in fields.items()}


def group_inputs(network: Network, analysis: Analysis, group: int) -> tuple[list[Choice], list[str]]:
    """For ``n`` on a group row: the names its item may read (those before it in its scope)
    and the ones it reads now (its ``inputs`` as written, else the item above)."""
    places = locate(network)
    written = item_at(places.data, places.groups[group]).get("inputs")
    path = analysis.groups[group].path
    choices = scope_choices(analysis, path[:-1], spans(analysis)[path].start)
    return choices, [written] if isinstance(written, str) else list(written or [choices[-1][0]])


def group_reads(analysis: Analysis, group: int) -> str:
    """``input`` for a group that does not read the row above it (ResNet's ``downsample``
    reads its block's input), as its item's ``inputs`` names it; else empty."""
    path = analysis.groups[group].path
    read, first = analysis.bounds[path][0], spans(analysis)[path].start
    if read == first - 1 or (first == 0 and read == NETWORK_INPUT):
        return ""
    return _scope_name(analysis, path[:-1], read)


def edit_group(network: Network, group: int, values: dict[str, Any]) -> Network:
    """The item of group ``group`` with ``values`` (None: the field left out, its default);
    ``FieldErrors`` by field when the spec does not validate."""
    places = locate(network)
    loc = places.groups[group]
    data = _copy(places.data)
    item = item_at(data, loc)
    for field, value in values.items():
        if value is None:
            item.pop(field, None)
        else:
            item[field] = value
    return _validated(data)
