"""The spec's structure: blocks, ``Sequential`` groups, ``repeat``, references between layers.

``expand`` turns a spec's ``layers`` (and its ``blocks``) into a flat list of ``Node``s in
topological order, the graph the engine walks (in the manner of ``torch.fx``'s ``Graph``: each
node names its inputs). No pydantic, no torch: a caller passes ``make_item``, which validates
one layer written as data (block bodies are data until their parameters are substituted).

The language, in short (README, "Graphs and blocks"):

- A layer reads the layer above it, or ``inputs: name`` / ``inputs: [a, b]``: earlier layers of
  the same scope by name, ``input`` for the scope's input (the network's, a block's, a group's).
- ``{type: Sequential, layers: [...]}`` groups layers like ``nn.Sequential``: unnamed members
  are named by position (``0``, ``1``, ...), so module paths read like torchvision's
  (``layer1.0.conv1``).
- ``blocks: {Name: {params: {channels: null, stride: 1}, layers: [...]}}`` defines a reusable
  block; ``{type: Name, channels: 64}`` uses it (a parameter whose default is null must be
  given). In a block, ``$channels`` stands for a parameter's value and ``${channels * 4}`` for
  integer arithmetic on parameters (+ - * // % and parentheses).
- ``repeat: N`` applies an item N times in a chain; a named one becomes a ``Sequential`` of
  that name holding ``0`` .. ``N−1``; a name with ``{n}`` (or ``{i}``) names the copies in place:
  ``denselayer{n}`` is ``denselayer1`` .. ``denselayerN`` (``{i}`` counts from 0).
"""

from __future__ import annotations

import ast
import difflib
import keyword
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from convcalc.errors import SpecError
from convcalc.specfile import LAYER_NAME, MODULE_ATTRIBUTES

NETWORK_INPUT = -1  # the index that stands for the network's input in Node.inputs
STRUCTURE_KEYS = ("name", "inputs", "repeat")  # what every item may have besides its own fields
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_NODES = 200_000  # a spec that expands past this is refused (repeat: 10**9 would hang)
MAX_DEPTH = 50  # groups and blocks nested deeper than this are refused (torchvision's deepest: 5)
SOURCES = ("Parameter",)  # layer types that read nothing (a learnable tensor of their own)


@dataclass(frozen=True)
class Group:
    """A block use or a ``Sequential``: its module path and kind (``Sequential`` or the block)."""

    path: tuple[str, ...]
    kind: str

    @property
    def name(self) -> str:
        return ".".join(self.path)


@dataclass(frozen=True)
class Node:
    """One layer of the expanded graph."""

    index: int
    path: tuple[str, ...]  # module path: ("layer1", "0", "conv1")
    layer: Any  # the validated layer (fields by torch.nn name)
    inputs: tuple[int, ...]  # producing nodes; NETWORK_INPUT for the network's input
    groups: tuple[Group, ...] = ()  # enclosing groups, outermost first
    where: str = ""  # for messages: "layer 3" or "block Bottleneck, layer 2, used as layer1.0"

    @cached_property
    def name(self) -> str:
        return ".".join(self.path)


@dataclass
class Graph:
    nodes: list[Node] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)
    output: int = NETWORK_INPUT  # the node whose output is the network's
    warnings: list[str] = field(default_factory=list)
    # group path -> (the node it reads, the node whose output is the group's)
    bounds: dict[tuple[str, ...], tuple[int, int]] = field(default_factory=dict)
    params: dict[tuple[str, ...], dict[str, Any]] = field(default_factory=dict)  # of each block use

    @property
    def straight(self) -> bool:
        """A plain stack: every node reads the one before it, no groups."""
        return not self.groups and all(n.inputs == (n.index - 1,) for n in self.nodes)


class _Scope:
    def __init__(self, path: tuple[str, ...], input_index: int, groups: tuple[Group, ...], positional: bool,
                 label: str):  # fmt: skip
        self.path, self.input_index, self.groups = path, input_index, groups
        self.positional, self.label = positional, label
        self.names: dict[str, int] = {}
        self.counters: dict[str, int] = {}
        self.position = 0


def expand(
    network: Any,
    make_item: Callable[[dict, str], Any],
    source: str = "<spec>",
    layer_types: Any = None,
) -> Graph:
    """The graph of ``network`` (attributes ``layers``, ``blocks``, ``output``); ``SpecError``
    lists every structural problem, each naming the place and the fix. ``layer_types``: the
    known layer type names (for did-you-mean on a type that is neither a layer nor a block)."""
    return _Expander(network, make_item, source, layer_types).run()


class _Expander:
    def __init__(self, network: Any, make_item: Callable[[dict, str], Any], source: str, layer_types: Any):
        self.network, self.make_item, self.source = network, make_item, source
        self.layer_types = list(layer_types) if layer_types is not None else None
        self.blocks = dict(getattr(network, "blocks", None) or {})
        self.graph = Graph()
        self.errors: list[str] = []
        self.active: list[str] = []  # blocks being expanded (a block may not use itself)

    def run(self) -> Graph:
        for name in self.blocks:
            if not _IDENTIFIER.match(name) or name == "Sequential":
                self.errors.append(f"{self.source}: blocks: {name!r} is not a usable block name; "
                                   "use a Python identifier such as Bottleneck")  # fmt: skip
        top = _Scope((), NETWORK_INPUT, (), positional=False, label="")
        last = self.scope(list(self.network.layers), top)
        output = getattr(self.network, "output", None)
        if output is not None:
            if output in top.names:
                last = top.names[output]
            else:
                self.errors.append(f"{self.source}: output: {self._unknown(output, top)}")
        self.graph.output = last
        if self.errors:
            raise SpecError(self.errors)
        self._warn_unused()
        return self.graph

    # ----------------------------------------------------------------------------------

    def scope(self, items: list[Any], scope: _Scope) -> int:
        later = {_get(item, "name") for item in items if isinstance(_get(item, "name"), str)}
        previous = scope.input_index
        for position, raw in enumerate(items):
            where = f"{scope.label}layer {position}"
            item = self._item(raw, where)
            if item is None:
                continue
            inputs = self._inputs(item, scope, previous, later, where)
            if inputs is None:
                continue
            repeat = _get(item, "repeat") or 1
            name = _get(item, "name")
            pattern = isinstance(name, str) and ("{i}" in name or "{n}" in name)
            if name is not None and not pattern and not self._name_ok(name, scope, where, _get(item, "type")):
                continue
            if len(self.graph.nodes) + repeat > MAX_NODES:
                self.errors.append(f"{self.source}: {where}: the spec expands to more than "
                                   f"{MAX_NODES:,} layers (blocks, groups and repeat multiply); "
                                   "use a smaller repeat")  # fmt: skip
                return previous
            if pattern:  # copies named by position in this scope: denselayer{n} -> denselayer1, ...
                out = inputs
                for copy in range(repeat):
                    copy_name = name.replace("{i}", str(copy)).replace("{n}", str(copy + 1))
                    if not self._name_ok(copy_name, scope, where, _get(item, "type")):
                        break
                    result = self._one(item, copy_name, scope, out, where)
                    out = (result,)
                    scope.names[copy_name] = result
                    scope.position += 1
                previous = out[0]
                continue
            if repeat > 1 and name is not None:  # a Sequential of that name holding 0..N-1
                group = Group((*scope.path, name), "Sequential")
                self.graph.groups.append(group)
                inner = _Scope(group.path, inputs[0], (*scope.groups, group), True, f"{where} ({name}): ")
                out = inputs[0]
                for _ in range(repeat):
                    out = self._one(item, str(inner.position), inner, (out,), where)
                    inner.position += 1
                self.graph.bounds[group.path] = (inputs[0], out)
                previous = out
            else:
                out = inputs
                for _ in range(repeat):
                    copy_name = name if name is not None else self._auto_name(item, scope, later)
                    result = self._one(item, copy_name, scope, out, where)
                    out = (result,)
                    scope.names[copy_name] = result
                    scope.position += 1
                previous = out[0]
            if name is not None:
                scope.names[name] = previous
                later.discard(name)
        return previous

    def _item(self, raw: Any, where: str) -> Any:
        if not isinstance(raw, dict):
            kind = getattr(raw, "type", None)
            if kind == "Sequential" or getattr(raw, "model_extra", None) is not None:
                raw = raw.model_dump(exclude_defaults=True)  # a group or a block use: data again
                raw["type"] = kind
            else:
                return raw  # a layer, validated already (a top-level layer)
        kind = raw.get("type")
        if kind == "Sequential" or kind in self.blocks:
            return raw  # structure: validated here
        if self.layer_types is not None and isinstance(kind, str) and kind not in self.layer_types:
            message = unknown_type(kind, self.layer_types, list(self.blocks))
            self.errors.append(f"{self.source}: {where} ({kind}): {message}")
            return None
        try:
            return self.make_item(raw, where)
        except SpecError as error:
            self.errors.extend(error.problems)
            return None

    def _name_ok(self, name: Any, scope: _Scope, where: str, kind: Any) -> bool:
        label = f"{self.source}: {where} ({kind})"
        if not isinstance(name, str) or not LAYER_NAME.match(name) or keyword.iskeyword(name):
            self.errors.append(f"{label}: name {name!r} is not a Python identifier (nor identifiers joined "
                               "by '-', as block1-0); use letters, digits and underscores, not starting "
                               "with a digit")  # fmt: skip
            return False
        if name.startswith("_") or name in MODULE_ATTRIBUTES or name == "input":
            self.errors.append(f"{label}: name {name!r} is taken (by torch.nn.Module itself, or 'input' for "
                               f"the input); rename it, e.g. {name.strip('_') + '_layer'!r}")  # fmt: skip
            return False
        if name in scope.names:
            self.errors.append(f"{label}: name {name!r} is already used in this scope; give each layer its "
                               "own name")  # fmt: skip
            return False
        return True

    def _auto_name(self, item: Any, scope: _Scope, taken: set[str]) -> str:
        if scope.positional:
            return str(scope.position)
        base = str(_get(item, "type")).lower()
        n = scope.counters.get(base, 0)
        while f"{base}_{n}" in taken or f"{base}_{n}" in scope.names:
            n += 1
        scope.counters[base] = n + 1
        return f"{base}_{n}"

    def _inputs(
        self, item: Any, scope: _Scope, previous: int, later: set[str], where: str
    ) -> tuple[int, ...] | None:
        given = _get(item, "inputs")
        if _get(item, "type") in SOURCES:  # it reads nothing: not even the layer above
            if given or (_get(item, "repeat") or 1) != 1:
                self.errors.append(f"{self.source}: {where} ({_get(item, 'type')}): a Parameter reads "
                                   "nothing and is not repeated; remove its inputs: and repeat: (a Mul or "
                                   "Add reads it by its name)")  # fmt: skip
                return None
            return ()
        if given is None:
            return (previous,)
        # a block's body is raw data (validated here): `inputs: false` or `inputs: 3` gets the message
        names = [given] if isinstance(given, str) else list(given) if isinstance(given, (list, tuple)) else []
        if not names or not all(isinstance(n, str) for n in names):
            self.errors.append(f"{self.source}: {where}: inputs: give a layer name or a list of names, "
                               "e.g. inputs: [conv2, input]")  # fmt: skip
            return None
        out = []
        for name in names:
            if name == "input":
                out.append(scope.input_index)
            elif name in scope.names:
                out.append(scope.names[name])
            else:
                problem = (
                    f"'{name}' is a later layer; a layer can only read layers above it"
                    if name in later
                    else self._unknown(name, scope)
                )
                self.errors.append(f"{self.source}: {where}: inputs: {problem}")
                return None
        return tuple(out)

    def _unknown(self, name: str, scope: _Scope) -> str:
        known = ["input", *scope.names]
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'? " if close else ""
        dotted = " (a layer inside a block or group cannot be read from outside it)" if "." in name else ""
        return f"no layer named '{name}' above{dotted}; {hint}known here: {', '.join(known)}"

    def _one(self, item: Any, name: str, scope: _Scope, inputs: tuple[int, ...], where: str) -> int:
        kind = _get(item, "type")
        path = (*scope.path, name)
        label = f"{where} ({'.'.join(path)}, {kind})"
        if kind == "Sequential" or (isinstance(item, dict) and kind in self.blocks):
            if len(path) > MAX_DEPTH:
                self.errors.append(f"{self.source}: {label}: groups and blocks nest more than {MAX_DEPTH} "
                                   "deep; fix: flatten the nesting")  # fmt: skip
                return inputs[0]
            if len(inputs) != 1:
                what = "group" if kind == "Sequential" else "block"
                self.errors.append(f"{self.source}: {label}: a {what} reads one input, not {len(inputs)}; "
                                   "merge them first (Add, Cat)")  # fmt: skip
                return inputs[0]
            group = Group(path, kind)
            self.graph.groups.append(group)
            if kind == "Sequential":
                layers = _get(item, "layers")
                if not isinstance(layers, list) or not layers:
                    self.errors.append(
                        f"{self.source}: {label}: a Sequential needs a non-empty list of layers"
                    )
                    return inputs[0]
                extra = set(item) - {"type", "layers", *STRUCTURE_KEYS} if isinstance(item, dict) else set()
                if extra:
                    self.errors.append(f"{self.source}: {label}: unknown field {sorted(extra)[0]!r}; "
                                       "a Sequential takes: name, inputs, repeat, layers")  # fmt: skip
                inner = _Scope(path, inputs[0], (*scope.groups, group), True, f"{label}: ")
                out = self.scope(layers, inner)
            else:
                out = self._block(item, path, inputs[0], (*scope.groups, group), label)
            self.graph.bounds[path] = (inputs[0], out)
            return out
        node = Node(len(self.graph.nodes), path, item, inputs, scope.groups, label)
        self.graph.nodes.append(node)
        return node.index

    def _block(
        self, use: dict, path: tuple[str, ...], input_index: int, groups: tuple[Group, ...], label: str
    ) -> int:
        kind = use["type"]
        if kind in self.active:
            self.errors.append(f"{self.source}: {label}: block {kind} uses itself (through "
                               f"{' → '.join(self.active)}); a block cannot contain itself")  # fmt: skip
            return input_index
        block = self.blocks[kind]
        params_def = _get(block, "params") or {}
        if isinstance(params_def, list):
            params_def = {name: None for name in params_def}
        given = {key: value for key, value in use.items() if key not in ("type", *STRUCTURE_KEYS)}
        unknown = [key for key in given if key not in params_def]
        for key in unknown:
            close = difflib.get_close_matches(str(key), [str(name) for name in params_def], n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            self.errors.append(f"{self.source}: {label}: block {kind} has no parameter '{key}'; {hint}"
                               f"it takes: {', '.join(map(str, params_def)) or 'none'}")  # fmt: skip
        if unknown:
            return input_index
        params = {**params_def, **given}
        missing = [str(key) for key, value in params.items() if value is None]
        if missing:
            self.errors.append(f"{self.source}: {label}: block {kind} needs {', '.join(missing)}; "
                               f"e.g. {{type: {kind}, {missing[0]}: 64}}")  # fmt: skip
        if missing:
            return input_index
        self.graph.params[path] = params
        where = f"block {kind} (used as {'.'.join(path)}): "
        try:
            body = substitute(_get(block, "layers") or [], params, f"{self.source}: {where}")
        except SpecError as error:
            self.errors.extend(error.problems)
            return input_index
        if not body:
            self.errors.append(f"{self.source}: blocks: {kind} has no layers; give it layers: [...]")
            return input_index
        self.active.append(kind)
        try:
            inner = _Scope(path, input_index, groups, False, where)
            last = self.scope(body, inner)
            output = _get(block, "output")
            if output is not None:
                if output in inner.names:
                    last = inner.names[output]
                else:
                    self.errors.append(f"{self.source}: {where}output: {self._unknown(output, inner)}")
        finally:
            self.active.pop()
        return last

    def _warn_unused(self) -> None:
        used = {i for node in self.graph.nodes for i in node.inputs}
        for node in self.graph.nodes:
            if node.index not in used and node.index != self.graph.output:
                self.graph.warnings.append(
                    f"layer {node.index} ({node.name}, {node.layer.type}): its output is not used by any "
                    "layer nor by the network's output; remove it, or read it with inputs:"
                )


def unknown_type(kind: str, layer_types: list[str], blocks: list[str]) -> str:
    """The message for a ``type`` that is neither a layer, ``Sequential`` nor a block (with the
    closest name, compared case-insensitively)."""
    known = {name.lower(): name for name in [*layer_types, "Sequential", *blocks]}
    close = difflib.get_close_matches(kind.lower(), list(known), n=1, cutoff=0.6)
    hint = f"did you mean '{known[close[0]]}'? " if close else ""
    defined = f"; blocks: {', '.join(blocks)}" if blocks else ""
    return f"unknown layer type {kind!r}; {hint}known types: {', '.join(layer_types)}, Sequential{defined}"


def _get(item: Any, key: str) -> Any:
    return item.get(key) if isinstance(item, dict) else getattr(item, key, None)


# --------------------------------------------------------------------------------------
# Block parameters: $name and ${expression}

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod}  # fmt: skip


def substitute(value: Any, params: dict[str, Any], where: str) -> Any:
    """``value`` with every ``$name`` and ``${expr}`` string replaced by the parameters' values."""
    if isinstance(value, dict):
        return {key: substitute(item, params, where) for key, item in value.items()}
    if isinstance(value, list):
        return [substitute(item, params, where) for item in value]
    if isinstance(value, str) and value.startswith("$"):
        text = value[2:-1] if value.startswith("${") and value.endswith("}") else value[1:]
        try:
            return _evaluate(ast.parse(text.strip(), mode="eval").body, params)
        except (SyntaxError, ValueError, KeyError, ZeroDivisionError, TypeError) as error:
            reason = (
                f"no parameter {error}" if isinstance(error, KeyError) else str(error) or type(error).__name__
            )
            raise SpecError(
                [f"{where}{value!r}: {reason}; parameters: {', '.join(params) or 'none'}"]
            ) from None
    return value


def _evaluate(node: ast.AST, params: dict[str, Any]) -> Any:
    if isinstance(node, ast.Name) and not keyword.iskeyword(node.id):
        return params[node.id]
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left, params), _evaluate(node.right, params)
        if type(left) is not int or type(right) is not int:
            raise ValueError("arithmetic takes whole numbers")
        if abs(left) > 2**62 or abs(right) > 2**62:
            raise ValueError("numbers too large")
        return _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_evaluate(node.operand, params)
    raise ValueError("only $name or ${integer arithmetic: + - * // % ( )} is allowed")
