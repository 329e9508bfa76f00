"""Spec files without Pydantic: reading them, the layer-naming rules, and a plain validator.

``spec.py`` defines the spec language as Pydantic models; this module holds what needs no
Pydantic, so that ``convcalc shape`` (the command people run most) starts without it:
importing pydantic and building its first model costs more than 10× less than importing torch
allows on our machines (``bench/README.md``).

``plain_network`` validates parsed spec data against ``spec.schema.json``, the JSON Schema that
Pydantic generates from the models (a test keeps the file equal to ``convcalc schema``). It is
deliberately narrow: it returns the network only when every value is exactly what the schema
asks (an ``int`` where an integer goes, a ``list`` where a pair goes, ...), with the values
Pydantic would give (pairs as tuples, defaults filled, ``type`` spelled as the class), and
returns None for anything else: an error, a value Pydantic might coerce, ``padding: auto``
(a rule across fields), or a schema keyword it does not know. The caller then asks
``spec.network_from_data``, so every error message comes from the Pydantic models alone. A
hypothesis test checks that both give the same network whenever this one answers.
"""

from __future__ import annotations

import keyword
import math
import re
import sys
from functools import cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml

from convcalc.errors import SpecError


def pair(value: int | tuple[int, int]) -> tuple[int, int]:
    """``3`` -> ``(3, 3)``; ``(3, 5)`` stays (height, width)."""
    return (value, value) if isinstance(value, int) else (value[0], value[1])


# --------------------------------------------------------------------------------------
# Reading a file


def read_stdin() -> str:
    """Standard input as text; ``SpecError`` when it is not UTF-8."""
    data = sys.stdin.buffer.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(
            [f"<stdin>: not UTF-8 text (byte {exc.start}); fix: pipe a YAML or JSON spec"]
        ) from None


def read_spec(path: str | Path) -> str:
    """The text of a spec file; ``SpecError`` says what is wrong with the path."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError([f"{path}: no such file; check the path"]) from None
    except IsADirectoryError:
        raise SpecError([f"{path}: is a folder; give the path of a .yaml or .json spec file"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([f"{path}: cannot read the file ({exc})"]) from None


def parse_text(text: str, source: str) -> tuple[Any, list[int]]:
    """Spec text (YAML, of which JSON is a subset) as data, and the 1-based line of each layer."""
    if source.endswith(".json"):
        import json

        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError([f"{source}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}"]) from None
        except RecursionError:
            raise SpecError([f"{source}: nested too deeply to read; fix: use blocks or repeat"]) from None
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)  # libyaml when installed: ~5× faster
    try:  # one parse: the node tree (for line numbers), then the data built from it
        node = loader.get_single_node()
        if not source.endswith(".json"):
            plain = node is not None and "&" not in text and "<<" not in text
            data = _construct(loader, node) if plain else loader.construct_document(node) if node else None
    except RecursionError:
        raise SpecError([f"{source}: nested too deeply to read; fix: use blocks or repeat"]) from None
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        raise SpecError([f"{source}: a value cannot be read ({exc}); fix: use a smaller number"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError([f"{where}: invalid YAML: {problem}"]) from None
    finally:
        loader.dispose()
    size = _expanded_size(data) if "&" in text else 0  # no anchor, no alias: nothing expands
    if size > MAX_VALUES:
        count = "endlessly (a recursive alias)" if size >= 10**18 else f"to {size:,} values"
        raise SpecError([f"{source}: its YAML aliases expand it {count}, more than {MAX_VALUES:,}; "
                         "fix: use blocks and repeat instead of nested aliases"])  # fmt: skip
    return data, _layer_lines(node)


_INT = re.compile(r"-?[1-9][0-9]*|0")
_STR, _INT_TAG, _NULL, _SEQ, _MAP = (
    f"tag:yaml.org,2002:{name}" for name in ("str", "int", "null", "seq", "map")
)


def _construct(loader: Any, node: Any) -> Any:
    """The data of a node tree without anchors, aliases or merge keys: what
    ``loader.construct_document`` builds, in a third of its time (10,000 layers: PyYAML's Python
    constructor was the biggest cost of ``shape``). Strings, plain decimal integers and nulls are
    built here; any other scalar (floats, booleans, ``0x1f``, ``1_000``) and any other tag
    (``!!set``, or one SafeLoader refuses) by the loader itself."""
    if isinstance(node, yaml.ScalarNode):
        tag, value = node.tag, node.value
        if tag == _STR:
            return value
        if tag == _INT_TAG and _INT.fullmatch(value):
            return int(value)
        if tag == _NULL:
            return None
        return loader.construct_object(node, deep=True)
    if node.tag == _SEQ:
        return [_construct(loader, item) for item in node.value]
    if node.tag == _MAP and all(isinstance(key, yaml.ScalarNode) for key, _ in node.value):
        return {_construct(loader, key): _construct(loader, value) for key, value in node.value}
    return loader.construct_object(node, deep=True)


MAX_VALUES = 1_000_000  # a spec whose aliases expand past this is refused ("billion laughs")


def _expanded_size(data: Any) -> int:
    """How many values ``data`` holds once every alias is expanded, counted without expanding
    them (each shared list or mapping counted once, then multiplied)."""
    sizes: dict[int, int] = {}
    open_: set[int] = set()  # being counted: met again inside itself, it is a recursive alias
    stack = [(data, False)]
    while stack:
        value, done = stack.pop()
        if not isinstance(value, list | dict) or (id(value) in sizes and not done):
            continue
        children = list(value.values()) if isinstance(value, dict) else value
        if done:
            sizes[id(value)] = min(1 + sum(sizes.get(id(c), 1) for c in children), 10**18)
            open_.discard(id(value))
        elif id(value) in open_:
            return 10**18  # infinite
        else:
            open_.add(id(value))
            stack.append((value, True))
            stack.extend((c, False) for c in children if isinstance(c, list | dict) and id(c) not in sizes)
    return sizes.get(id(data), 1)


def _layer_lines(node: Any) -> list[int]:
    """1-based line of each item under the top-level ``layers`` key, for error messages."""
    if not isinstance(node, yaml.MappingNode):
        return []
    for key, value in node.value:
        if key.value == "layers" and isinstance(value, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in value.value]
    return []


# --------------------------------------------------------------------------------------
# Layer names

# A layer's name: an identifier, or identifiers joined by "-" (RegNet's block1-0: torch's
# add_module takes any name without a "."; exported source reaches such a name by getattr)
LAYER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:-[A-Za-z0-9_]+)*$")

# Public attributes of torch.nn.Sequential (and so of nn.Module): a layer of that name cannot be
# added to a model (add_module refuses it) nor be ``self.<name>`` in exported source. Names that
# start with an underscore are refused too (torch's internals). A test keeps this list in step
# with the installed torch.
MODULE_ATTRIBUTES = frozenset(
    """T_destination add_module append apply bfloat16 buffers call_super_init children compile cpu
    cuda double dump_patches eval extend extra_repr float forward get_buffer get_extra_state
    get_parameter get_submodule half insert ipu load_state_dict modules mtia named_buffers
    named_children named_modules named_parameters parameters pop register_backward_hook
    register_buffer register_forward_hook register_forward_pre_hook register_full_backward_hook
    register_full_backward_pre_hook register_load_state_dict_post_hook
    register_load_state_dict_pre_hook register_module register_parameter
    register_state_dict_post_hook register_state_dict_pre_hook requires_grad_ set_extra_state
    set_submodule share_memory state_dict to to_empty train training type xpu zero_grad""".split()
)


def layer_names(network: Any) -> list[str]:
    """Each layer's name: its own, or ``<type>_<n>`` (the n-th unnamed layer of that type),
    skipping names that a layer already took explicitly."""
    taken = {layer.name for layer in network.layers if layer.name is not None}
    counters: dict[str, int] = {}
    names = []
    for layer in network.layers:
        if layer.name is not None:
            names.append(layer.name)
            continue
        base = layer.type.lower()
        n = counters.get(base, 0)
        while f"{base}_{n}" in taken:
            n += 1
        counters[base] = n + 1
        names.append(f"{base}_{n}")
        taken.add(f"{base}_{n}")
    return names


def check_names(network: Any) -> None:
    """Raise ``ValueError`` for the first layer name torch could not use, or used twice."""
    seen: dict[str, int] = {}
    for index, name in enumerate(layer_names(network)):
        layer = network.layers[index]
        if layer.name is not None and (not LAYER_NAME.match(name) or keyword.iskeyword(name)):
            raise ValueError(
                f"layer {index} ({layer.type}): name {name!r} is not a Python identifier (nor identifiers "
                "joined by '-', as block1-0); use letters, digits and underscores, not starting with a digit"
            )
        if name.startswith("_") or name in MODULE_ATTRIBUTES:
            raise ValueError(
                f"layer {index} ({layer.type}): name {name!r} is taken by torch.nn.Module itself "
                f"(model.{name} would not be the layer); rename it, e.g. {name.strip('_') + '_layer'!r}"
            )
        if name in seen:
            raise ValueError(
                f"layer {index} ({layer.type}): name {name!r} is already used by layer {seen[name]}; "
                "give each layer its own name"
            )
        seen[name] = index


# --------------------------------------------------------------------------------------
# The plain validator


@cache
def schema() -> dict[str, Any]:
    """The spec's JSON Schema, as generated from the Pydantic models in ``spec.py``."""
    import json

    # beside this module (package data); importlib.resources would cost ~10 ms of imports
    return json.loads(Path(__file__).with_name("spec.schema.json").read_text(encoding="utf-8"))


class _Refused(Exception):
    """This value is not plainly valid: Pydantic decides."""


# Schema keywords this reader understands; a node with any other keyword is refused.
_KEYWORDS = frozenset(
    """type anyOf const enum minimum maximum exclusiveMinimum exclusiveMaximum prefixItems minItems
    maxItems items minLength maxLength properties required additionalProperties default description
    title $ref discriminator oneOf""".split()
)


def plain_network(data: Any) -> SimpleNamespace | None:
    """The validated network (attributes as on ``spec.Network``), or None: ask Pydantic.

    Plain means: every layer's values exactly as the schema states them; blocks, groups,
    ``inputs:`` and ``repeat`` are the graph's to check (``graph.expand``, the same code
    Pydantic's path runs), their leaf layers validated here."""
    from convcalc.graph import expand

    root = schema()
    if type(data) is not dict or type(data.get("layers", [])) is not list:
        return None
    top = {
        **root,
        "properties": {k: v for k, v in root["properties"].items() if k not in ("layers", "blocks")},
    }
    try:
        values = _object(top, {key: value for key, value in data.items() if key not in ("layers", "blocks")})
        blocks = _plain_blocks(data.get("blocks", {}))
        layers = [_plain_item(item, blocks) for item in data.get("layers", [])]
    except _Refused:
        return None
    values["input"] = tuple(values["input"])  # a tuple, as Pydantic makes it
    network = SimpleNamespace(**values, blocks=blocks, layers=layers)
    try:
        if not blocks and all(type(layer) is SimpleNamespace and layer.inputs is None and layer.repeat == 1
                              for layer in layers):  # fmt: skip
            check_names(network)
        network.graph = expand(network, _plain_leaf)
    except (ValueError, SpecError, _Refused):
        return None
    if any(vars(node.layer).get("output_shape") is not None or vars(node.layer).get("padding") == "auto"
           or vars(node.layer).get("std") is not None or vars(node.layer).get("view") is not None
           for node in network.graph.nodes):  # fmt: skip
        # padding: auto needs output_shape and the reverse, a Parameter's std excludes value, its
        # view must hold as many values as its shape: rules across fields, Pydantic's
        return None
    return network


def _plain_blocks(value: Any) -> dict[str, SimpleNamespace]:
    """``blocks:`` as data: names to params, layers (data until used) and output."""
    _require(type(value) is dict)
    out = {}
    for name, block in value.items():
        _require(type(name) is str and type(block) is dict and set(block) <= {"params", "layers", "output"})
        params = block.get("params", {})
        _require(type(params) is dict and all(type(k) is str for k in params)
                 or type(params) is list and all(type(k) is str for k in params))  # fmt: skip
        layers = block.get("layers")
        _require(type(layers) is list and all(type(item) is dict for item in layers))
        _require(block.get("output") is None or type(block.get("output")) is str)
        out[name] = SimpleNamespace(params=params, layers=layers, output=block.get("output"))
    return out


def _plain_item(value: Any, blocks: dict[str, Any]) -> Any:
    """A top-level item: a layer (validated now), or a group or block use (data, for the graph)."""
    kind = value.get("type") if type(value) is dict else None
    if type(kind) is str and (kind == "Sequential" or kind in blocks):
        return value
    return _plain_leaf(value, "")


def _plain_leaf(value: Any, where: str) -> SimpleNamespace:
    """One layer, plainly valid or refused (``_Refused``: Pydantic decides and words the error)."""
    return SimpleNamespace(**_plain_layer(value))


def _plain_layer(value: Any) -> dict[str, Any]:
    """One layer: ``type`` (any case) names its model in the schema."""
    _require(type(value) is dict and type(value.get("type")) is str)
    canonical = _layer_types().get(value["type"].lower())
    _require(canonical is not None)
    return _object(schema()["$defs"][canonical], {**value, "type": canonical})


@cache
def _layer_types() -> dict[str, str]:
    """Lower-case name -> model name, for every layer model (``type`` a constant) in the schema."""
    out = {}
    for name, node in schema()["$defs"].items():
        kind = node.get("properties", {}).get("type", {})
        if kind.get("const") == name and name != "Sequential":
            out[name.lower()] = name
    return out


def _value(node: dict[str, Any], value: Any) -> Any:
    if not _KEYWORDS.issuperset(node):
        raise _Refused
    if "$ref" in node:
        return _value(_resolve(node["$ref"]), value)
    if "discriminator" in node:
        return _layer(node, value)
    _require("oneOf" not in node)  # only as the discriminated union's list of models
    if "anyOf" in node:
        for branch in node["anyOf"]:  # our unions' branches take disjoint Python types
            try:
                return _value(branch, value)
            except _Refused:
                pass
        raise _Refused
    kind = node.get("type")
    if kind == "object":
        return _object(node, value)
    if kind == "array":
        return _array(node, value)
    if kind == "null":
        _require(value is None)
    elif kind == "boolean":
        _require(type(value) is bool)
    elif kind == "string":
        _require(type(value) is str)
        _require(node.get("minLength", 0) <= len(value) <= node.get("maxLength", len(value)))
    elif kind == "integer":
        _require(type(value) is int)
        _bounds(node, value)
    elif kind == "number":  # an int becomes a float, as in Pydantic; only where that is exact
        _require(type(value) is float and math.isfinite(value) or type(value) is int and abs(value) <= 2**53)
        _bounds(node, value)
        value = float(value)
    else:
        raise _Refused
    # a Literal: the value must be one of them, and of the same type (True == 1 in Python)
    choices = [node["const"]] if "const" in node else node.get("enum")
    _require(choices is None or any(type(c) is type(value) and c == value for c in choices))
    return value


def _require(condition: bool) -> None:
    if not condition:
        raise _Refused


def _bounds(node: dict[str, Any], value: float) -> None:
    _require(value >= node.get("minimum", value) and value <= node.get("maximum", value))
    _require("exclusiveMinimum" not in node or value > node["exclusiveMinimum"])
    _require("exclusiveMaximum" not in node or value < node["exclusiveMaximum"])


def _array(node: dict[str, Any], value: Any) -> Any:
    _require(type(value) is list)
    if "prefixItems" in node:  # a fixed-length tuple: (h, w), (C, H, W)
        _require(node.get("minItems") == node.get("maxItems") == len(value) == len(node["prefixItems"]))
        return tuple(_value(item, v) for item, v in zip(node["prefixItems"], value, strict=True))
    _require("items" in node and node.get("minItems", 0) <= len(value) <= node.get("maxItems", len(value)))
    return [_value(node["items"], v) for v in value]


_SCALARS = frozenset((int, float, str, bool, type(None)))
# (schema node, type, value) -> the value validated there: the schema nodes live as long as the
# process (``schema()`` is cached), and only values that passed are kept
_VALID: dict[tuple[int, type, Any], Any] = {}


def _object(node: dict[str, Any], value: Any) -> dict[str, Any]:
    _require(type(value) is dict and node.get("additionalProperties") is False)
    properties = node.get("properties")
    _require(type(properties) is dict)
    _require(set(value) <= set(properties) and set(node.get("required", ())) <= set(value))
    out = {}
    for key, sub in properties.items():
        if key in value:
            given = value[key]
            if type(given) in _SCALARS:  # a deep spec repeats the same few values field by field
                memo = (id(sub), type(given), given)
                out[key] = _VALID[memo] if memo in _VALID else _VALID.setdefault(memo, _value(sub, given))
            else:
                out[key] = _value(sub, given)
        else:  # a default the schema can state (not a list made per instance, like layers=[])
            _require("default" in sub and not isinstance(sub["default"], list | dict))
            out[key] = sub["default"]
    return out


def _layer(node: dict[str, Any], value: Any) -> dict[str, Any]:
    """One item of the discriminated union: ``type`` (any case) picks the model."""
    mapping = node["discriminator"]["mapping"]
    _require(node["discriminator"].get("propertyName") == "type" and type(value) is dict)
    _require(type(value.get("type")) is str)
    canonical = {name.lower(): name for name in mapping}.get(value["type"].lower())
    _require(canonical is not None)
    return _object(_resolve(mapping[canonical]), {**value, "type": canonical})


def _resolve(ref: str) -> dict[str, Any]:
    prefix = "#/$defs/"
    _require(ref.startswith(prefix) and ref[len(prefix) :] in schema()["$defs"])
    return schema()["$defs"][ref[len(prefix) :]]
