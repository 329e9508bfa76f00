"""The designer's state, without any widgets: an immutable ``Network`` and its undo history.

Every edit is a pure function ``Network -> Network`` (a new, validated network); the screen
keeps a ``History`` of them and re-analyses the current one with ``engine.analyze``. Field
text typed in the editor is parsed and validated here too, and the solver's fixes for "make this
layer output H×W" are turned into whole networks, so the rules are testable without a terminal.
Imports spec, engine, solve and the standard library only (no textual, no torch).
"""

from __future__ import annotations

import os
import re
import tempfile
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from convcalc.engine import analyze, graph_of
from convcalc.errors import ConvcalcError
from convcalc.solve import KINDS, LayerFix, SolveError, solve_layer
from convcalc.spec import LAYER_CLASSES, Network, SpecError, dump_spec, network_from_data, spec_to_data

NEW_INPUT = (1, 28, 28)  # `convcalc tui` without a SPEC starts on an MNIST-sized input

# Values for the required fields of a layer added from the designer, so a new layer is valid
# at once: a shape-preserving 3×3 conv, a halving pool, a ×2 upsampling transposed conv.
STARTER_FIELDS: dict[str, dict[str, Any]] = {
    **{
        name.replace("2d", f"{nd}d"): fields
        for nd in (1, 2, 3)
        for name, fields in {
            "Conv2d": {"out_channels": 16, "kernel_size": 3, "padding": 1},
            "ConvTranspose2d": {"out_channels": 16, "kernel_size": 2, "stride": 2},
            "MaxPool2d": {"kernel_size": 2},
            "AvgPool2d": {"kernel_size": 2},
            "AdaptiveAvgPool2d": {"output_size": 1},
            "AdaptiveMaxPool2d": {"output_size": 1},
            "ZeroPad2d": {"padding": 1},
            "ConstantPad2d": {"padding": 1, "value": 0.0},
            "ReflectionPad2d": {"padding": 1},
            "ReplicationPad2d": {"padding": 1},
        }.items()
    },
    "Linear": {"out_features": 10},
    "GroupNorm": {"num_groups": 1},
    "LayerNorm": {"normalized_shape": 1},
    "Unflatten": {"dim": 1, "unflattened_size": [1]},
    "ChannelShuffle": {"groups": 1},
    "Chunk": {"chunks": 1},
    "PixelShuffle": {"upscale_factor": 2},
    "PixelUnshuffle": {"downscale_factor": 2},
    "Upsample": {"scale_factor": 2.0},
    "StochasticDepth": {"p": 0.2},
    "Permute": {"dims": [0, 1, 2, 3]},  # the identity: a new layer changes nothing until edited
    "Parameter": {"shape": [1]},
}

_PAIR_TEXT = re.compile(r"^\s*(\d+)\s*(?:[x×,]|\s)\s*(\d+)\s*$")
_FIELD_IN_MESSAGE = re.compile(r"field '([A-Za-z_]\w*)")
_NAME_IN_MESSAGE = re.compile(r": name '")
_INPUTS_IN_MESSAGE = ": inputs: "  # the graph's messages: `...: layer 3: inputs: no layer named 'x' ...`


class SaveError(ConvcalcError):
    """A spec that could not be written; the old file is left as it was."""


# --------------------------------------------------------------------------------------
# Undo history


class History:
    """The current network plus undo and redo stacks of whole networks.

    ``push(network, group=key)`` with the same ``key`` as the previous push replaces the
    current entry instead of adding one, so typing ``128`` into one field is one undo step.
    """

    def __init__(self, network: Network):
        self.current = network
        self._undo: list[Network] = []
        self._redo: list[Network] = []
        self._group: object | None = None

    def push(self, network: Network, group: object | None = None) -> bool:
        """Make ``network`` current; False (and nothing recorded) when it changes nothing."""
        if network == self.current:
            return False
        if group is not None and group == self._group and self._undo:
            if network == self._undo[-1]:  # the edit was typed back to where it started
                self.current = self._undo.pop()
                self._group = None
                self._redo.clear()
                return True
        else:
            self._undo.append(self.current)
        self.current = network
        self._redo.clear()
        self._group = group
        return True

    def seal(self) -> None:
        """End the current group: the next push is a new undo step."""
        self._group = None

    def undo(self) -> bool:
        if not self._undo:
            return False
        self._redo.append(self.current)
        self.current = self._undo.pop()
        self._group = None
        return True

    def redo(self) -> bool:
        if not self._redo:
            return False
        self._undo.append(self.current)
        self.current = self._redo.pop()
        self._group = None
        return True

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)


def editable(network: Network, path: object) -> Network:
    """``network`` if the designer can edit it: every row of a graph spec (blocks, groups,
    ``repeat``) traced to the item that makes it (``graphmodel.locate``), else ``SpecError``."""
    from convcalc.tui import graphmodel  # it builds on this module's edits

    if graphmodel.has_structure(network):
        try:
            graphmodel.locate(network)
        except SpecError as error:
            raise SpecError([f"{path}: {problem}" for problem in error.problems]) from None
    return network


# --------------------------------------------------------------------------------------
# Edits: each returns a new, validated Network


def _with_layers(network: Network, layers: list) -> Network:
    return Network.model_validate({"name": network.name, "input": network.input, "layers": layers})


def new_layer(type_name: str):
    """A valid layer of ``type_name``, its required fields filled from ``STARTER_FIELDS``."""
    return LAYER_CLASSES[type_name].model_validate({"type": type_name, **STARTER_FIELDS.get(type_name, {})})


def insert_layer(network: Network, index: int, layer) -> Network:
    """``layer`` at position ``index`` (``len(layers)`` appends)."""
    layers = list(network.layers)
    layers.insert(index, layer)
    return _with_layers(network, layers)


def delete_layer(network: Network, index: int) -> Network:
    layers = list(network.layers)
    del layers[index]
    return _with_layers(network, layers)


def duplicate_layer(network: Network, index: int) -> Network:
    """A copy of layer ``index`` right after it; a named layer's copy gets a fresh name."""
    layer = network.layers[index]
    if layer.name is not None:
        taken = {other.name for other in network.layers}
        base = re.sub(r"_\d+$", "", layer.name)
        n = 2
        while f"{base}_{n}" in taken:
            n += 1
        layer = layer.model_copy(update={"name": f"{base}_{n}"})
    return insert_layer(network, index + 1, layer)


def move_layer(network: Network, index: int, offset: int) -> Network:
    """Swap layer ``index`` with its neighbour ``index + offset`` (offset ±1)."""
    target = index + offset
    if not 0 <= target < len(network.layers):
        return network
    layers = list(network.layers)
    layers[index], layers[target] = layers[target], layers[index]
    return _with_layers(network, layers)


def change_type(network: Network, index: int, type_name: str) -> Network:
    """Layer ``index`` as a ``type_name``, keeping the fields the two types share when they fit
    (Conv2d -> MaxPool2d keeps kernel_size, stride, padding, dilation and the name)."""
    old = network.layers[index]
    if old.type == type_name:
        return network
    cls = LAYER_CLASSES[type_name]
    kept = {
        key: value
        for key, value in old.model_dump(exclude_defaults=True, exclude={"type"}).items()
        if key in cls.model_fields
    }
    starter = {"type": type_name, **STARTER_FIELDS.get(type_name, {})}
    try:
        layer = cls.model_validate({**starter, **kept})
    except ValidationError:
        layer = cls.model_validate({**starter, "name": old.name})
    layers = list(network.layers)
    layers[index] = layer
    return _with_layers(network, layers)


def set_header(network: Network, name: str, input_shape: tuple[int, int, int]) -> Network:
    return Network.model_validate({"name": name, "input": input_shape, "layers": list(network.layers)})


def parse_input_size(text: str) -> tuple[int, int, int]:
    """``1x28x28`` / ``1×28×28`` / ``1, 28, 28`` -> (C, H, W); ValueError with the fix."""
    parts = [part for part in re.split(r"[x×,\s]+", text.strip().lower()) if part]
    try:
        dims = tuple(int(part) for part in parts)
    except ValueError:
        dims = ()
    if len(dims) != 3 or min(dims) < 1:
        raise ValueError(f"{text!r}: give channels×height×width as three positive integers, e.g. 3x32x32")
    return dims  # type: ignore[return-value]


# --------------------------------------------------------------------------------------
# Editor fields: text <-> values, validation with the spec's own messages


def editable_fields(type_name: str) -> list[str]:
    """The fields the editor shows for a layer type: its own, in the model's order, then the
    graph fields every layer has (``inputs``, ``repeat``); ``type`` apart."""
    fields = [name for name in LAYER_CLASSES[type_name].model_fields if name != "type"]
    graph = [name for name in ("inputs", "repeat") if name in fields]
    return [name for name in fields if name not in graph] + graph


def field_kind(type_name: str, field: str) -> str | tuple[str, ...]:
    """``"bool"``, the tuple of choices of a ``Literal`` field, or ``"text"``."""
    annotation = LAYER_CLASSES[type_name].model_fields[field].annotation
    if annotation is bool:
        return "bool"
    if typing.get_origin(annotation) is typing.Literal:
        return tuple(str(choice) for choice in typing.get_args(annotation))
    return "text"


def field_default(type_name: str, field: str) -> Any:
    """The field's default, or ``...`` when the field is required."""
    info = LAYER_CLASSES[type_name].model_fields[field]
    return ... if info.is_required() else info.default


def format_value(value: Any) -> str:
    """A field value as the editor shows it (the spec's YAML spelling): ``[3, 5]``, ``true``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(format_value(item) for item in value) + "]"
    return str(value)


def shown_value(layer, field: str) -> str:
    """What the field's input holds: the value when the spec sets it, else empty (the
    placeholder then shows the default)."""
    explicit = layer.model_dump(exclude_defaults=True)
    return format_value(explicit[field]) if field in explicit else ""


def parse_value(field: str, text: str) -> Any:
    """Typed text -> the value to validate; ``None`` means "not set" (use the default).

    ``3x5``, ``3×5``, ``3,5`` and ``[3, 5]`` are pairs; other text is read as a YAML scalar, so
    ``5`` is an int, ``0.5`` a float and ``same`` a string. A name is taken as typed.
    """
    text = text.strip()
    if not text:
        return None
    if field == "name":
        return text
    if field == "inputs":  # names, never YAML scalars (`no` and `on` are booleans there)
        names = [name.strip() for name in text.removeprefix("[").removesuffix("]").split(",")]
        return names[0] if len(names) == 1 else names
    pair = _PAIR_TEXT.match(text)
    if pair:
        return [int(pair.group(1)), int(pair.group(2))]
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def edit_layer(network: Network, index: int, type_name: str, values: dict[str, Any]) -> Network:
    """Layer ``index`` replaced by ``type_name(**values)`` (None values left out).

    Raises ``FieldErrors`` mapping each field (``""`` for the layer as a whole) to the
    spec's message when the edit is not valid.
    """
    name = values.get("name")
    for other, layer in enumerate(network.layers):
        if name is not None and other != index and layer.name == name:
            raise FieldErrors(
                {"name": f"name {name!r} is already used by layer {other}; give each layer its own name"}
            )
    data = spec_to_data(network)
    data["layers"][index] = {"type": type_name, **{k: v for k, v in values.items() if v is not None}}
    try:
        return network_from_data(data, source="editor")
    except SpecError as error:
        raise FieldErrors.from_problems(error.problems) from None


class FieldErrors(ConvcalcError):
    """Problems of an edit by field: ``errors["kernel_size"] == "invalid value -1; ..."``
    (``""``: the layer as a whole)."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("\n".join(f"{field or 'layer'}: {message}" for field, message in errors.items()))

    @classmethod
    def from_problems(cls, problems: list[str]) -> FieldErrors:
        """Sort the spec's messages (``editor: layer 3 (Conv2d): field 'x': ...``) by field."""
        errors: dict[str, str] = {}
        for problem in problems:
            match = _FIELD_IN_MESSAGE.search(problem)
            if match:
                field, message = match.group(1), problem[match.end() + 2 :].lstrip(": ")
            elif _NAME_IN_MESSAGE.search(problem):
                field, message = "name", problem.split("): ", 1)[-1]
            elif _INPUTS_IN_MESSAGE in problem:
                field, message = "inputs", problem.split(_INPUTS_IN_MESSAGE, 1)[-1]
            else:
                field, message = "", problem.split(": ", 1)[-1]
            errors.setdefault(field, message)
        return cls(errors)


# --------------------------------------------------------------------------------------
# "Make this layer output H×W": the solver's fixes as whole networks

MAX_SIZE_CHOICES = 50  # listed in the dialog; asking 1×1 of a 28×28 conv gives ~280,000
_ADAPTIVE = ("AdaptiveAvgPool2d", "AdaptiveMaxPool2d")


def parse_output_size(text: str) -> tuple[int, int]:
    """``14`` -> (14, 14); ``14x16`` / ``14×16`` / ``14, 16`` -> (14, 16); ValueError with the fix."""
    pair = _PAIR_TEXT.match(text.lower())
    dims = (int(pair.group(1)), int(pair.group(2))) if pair else None
    if text.strip().isdigit():
        dims = (int(text), int(text))
    if dims is None or min(dims) < 1:
        raise ValueError(
            f"{text.strip()!r} is not an output size: give the wanted height×width as positive "
            "integers, e.g. 14 or 14x14"
        )
    return dims


def solve_refusal(network: Network, index: int, input_shape: tuple[int, ...] | None) -> str | None:
    """Why the solver cannot size layer ``index`` at all (the solver's own message for a layer
    without size settings, or an input that is unknown or not C×H×W); None when it can."""
    layer = graph_of(network).nodes[index].layer  # in a block: with the use's parameters
    if layer.type not in KINDS and layer.type not in _ADAPTIVE:
        try:
            solve_layer(layer, (1, 1), (1, 1))  # refuses such a layer before looking at sizes
        except SolveError as error:
            return str(error)
    if input_shape is None:
        return "its input size is unknown (a layer above it has an error); fix that layer first"
    if len(input_shape) != 3:
        return (
            f"its input is {len(input_shape)}-dimensional, not C×H×W; only a layer before the "
            "Flatten can be sized"
        )
    return None


@dataclass(frozen=True)
class SizeChoice:
    """One of the solver's fixes for layer ``index``, as the designer lists and applies it."""

    fix: LayerFix
    network: Network | None  # the whole network with the fix applied; None if it does not validate
    summary: str  # the layer's settings after the fix, as the table shows them (``6@5×5 s2 p2``)
    output_shape: tuple[int, ...] | None  # the engine's output of the fixed layer
    problem: str = ""  # why the fixed network does not validate

    @property
    def note(self) -> str:
        """``exact``, or what the setting leaves out, short enough for one line of the list:
        ``14 rows and columns unseen`` (input pixels no window covers), for a transposed conv
        ``1 row bias only`` (output pixels no input reaches), and ``checkerboard`` where its
        kernel is not a multiple of its stride. The solver's ``Setting.notes`` say it at length."""
        setting = self.fix.setting
        if setting is None:  # an adaptive pool: its bins always cover the whole input
            return ""
        h, w = setting.h.lost, setting.w.lost
        if h and h == w:
            lost = f"{h} {'row and column' if h == 1 else 'rows and columns'}"
        else:
            axes = ((h, "row"), (w, "column"))
            lost = ", ".join(f"{n} {unit}{'s' if n > 1 else ''}" for n, unit in axes if n)
        transposed = setting.type == "ConvTranspose2d"
        notes = [f"{lost} {'bias only' if transposed else 'unseen'}" if lost else "exact"]
        if transposed and any(a.stride > 1 and a.kernel % a.stride for a in (setting.h, setting.w)):
            notes.append("checkerboard")
        return "; ".join(notes)


def size_choices(
    network: Network,
    index: int,
    input_shape: tuple[int, int, int],
    target_hw: tuple[int, int],
    apply: typing.Callable[[dict[str, Any]], Network] | None = None,
) -> tuple[list[SizeChoice], int]:
    """The first ``MAX_SIZE_CHOICES`` ways (fewest changed fields first, exact first) to make
    layer ``index``, on an ``input_shape`` input, output ``target_hw``, and how many the solver
    found. Raises ``SolveError`` (with the nearest reachable sizes) when none does. ``apply``:
    the network with a fix's fields set on the layer (``FieldErrors`` when it does not
    validate); by default on item ``index`` of a plain stack (a graph spec's is
    ``graphmodel.field_setter``: where the layer is written)."""
    layer = graph_of(network).nodes[index].layer
    fixes = solve_layer(layer, tuple(input_shape[1:]), target_hw)
    if apply is None:

        def apply(fields: dict[str, Any]) -> Network:
            values = {**layer.model_dump(exclude_defaults=True, exclude={"type"}), **fields}
            return edit_layer(network, index, layer.type, values)

    choices = []
    for fix in fixes[:MAX_SIZE_CHOICES]:
        try:
            fixed = apply(fix.fields)
        except FieldErrors as errors:
            choices.append(SizeChoice(fix, None, "", None, str(errors)))
            continue
        # the fixed layer alone on its input: its settings summary and output, as in the table
        alone = graph_of(fixed).nodes[index].layer.model_copy(update={"inputs": None})
        row = analyze(Network(name=network.name, input=input_shape, layers=[alone])).rows[0]
        choices.append(SizeChoice(fix, fixed, row.summary, row.output_shape))
    return choices, len(fixes)


# --------------------------------------------------------------------------------------
# Files


def write_spec(network: Network, path: str | Path) -> Path:
    """Save ``network`` as YAML at ``path``: a temporary file in the same folder, then
    ``os.replace``, so a failed save leaves the old file whole. Keeps the old file's mode."""
    path = Path(path).expanduser()
    folder = path.parent if str(path.parent) else Path(".")
    text = dump_spec(network)
    if path.is_dir():
        raise SaveError(f"{path}: is a folder; give a file name such as {path / (network.name + '.yaml')}")
    if not folder.is_dir():
        raise SaveError(f"{path}: the folder {folder} does not exist; create it or choose another path")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise SaveError(f"{path}: cannot write in {folder} ({exc.strerror}); choose another folder") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_umask()
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise SaveError(f"{path}: could not save ({exc.strerror}); the old file is unchanged") from None
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
