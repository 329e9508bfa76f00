"""The spec language: one strict, frozen Pydantic model per ``torch.nn`` layer type.

Field names, meanings and defaults are those of the layer's ``torch.nn`` constructor, so a
spec reads like the PyTorch code it stands for. ``in_channels``, ``in_features`` and
``num_features`` may be left out: the engine infers them from the previous layer and, when
they are given, checks them.

This module imports pydantic, PyYAML and the standard library only (never torch). What needs
no pydantic (reading files, the layer-naming rules, ``pair``) lives in ``specfile.py``, which
also holds the plain validator ``convcalc shape`` uses for plainly valid specs; its JSON Schema,
``spec.schema.json``, is generated from these models (``convcalc schema``), and tests keep both
in step with them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    field_validator,
    model_validator,
)

from convcalc.errors import SpecError as SpecError
from convcalc.specfile import MODULE_ATTRIBUTES as MODULE_ATTRIBUTES
from convcalc.specfile import check_names, parse_text, read_spec
from convcalc.specfile import layer_names as layer_names
from convcalc.specfile import pair as pair

# A positive / non-negative int that refuses bools, floats and strings ("3").
PosInt = Annotated[int, Strict(), Field(ge=1)]
NonNegInt = Annotated[int, Strict(), Field(ge=0)]
PosFloat = Annotated[float, Field(gt=0)]

# `3` or `[3, 5]`: one value for both axes, or (height, width).
PosPair = PosInt | tuple[PosInt, PosInt]
NonNegPair = NonNegInt | tuple[NonNegInt, NonNegInt]
# The size a layer with `padding: auto` must give: [C, H, W] or [H, W].
OutputShape = tuple[PosInt, PosInt, PosInt] | tuple[PosInt, PosInt]


class _Layer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    name: str | None = Field(
        default=None,
        description="Module name in the generated model (a Python identifier); "
        "derived from the type when left out (conv2d_0, relu_0, ...).",
    )


class _AutoPadding(_Layer):
    """A layer whose ``padding`` may be ``auto``: the engine solves it (``convcalc.solve``)
    so that the layer gives ``output_shape``."""

    @model_validator(mode="after")
    def _auto_needs_output_shape(self) -> _AutoPadding:
        auto = self.padding == "auto"
        if auto and self.output_shape is None:
            raise ValueError("padding: auto needs output_shape: [C, H, W] or [H, W], the size it must give")
        if self.output_shape is not None and not auto:
            raise ValueError("output_shape is read only with padding: auto; set padding: auto or remove it")
        return self


def _output_shape_field() -> Any:
    return Field(
        default=None,
        description="With padding: auto, the output wanted ([C, H, W] or [H, W]); padding is solved for it.",
    )


class _ConvBase(_Layer):
    in_channels: PosInt | None = Field(
        default=None, description="Input channels; inferred from the previous layer, checked when given."
    )
    out_channels: PosInt = Field(description="Output channels (number of filters).")
    kernel_size: PosPair = Field(description="Kernel size: k or [kh, kw].")
    stride: PosPair = Field(default=1, description="Stride: s or [sh, sw].")
    dilation: PosPair = Field(default=1, description="Spacing between kernel elements: d or [dh, dw].")
    groups: PosInt = Field(
        default=1, description="Blocked connections; must divide in_channels and out_channels."
    )
    bias: bool = Field(default=True, description="Add a learnable bias per output channel.")


class Conv2d(_ConvBase, _AutoPadding):
    type: Literal["Conv2d"] = Field("Conv2d", description="torch.nn class name.")
    padding: NonNegPair | Literal["same", "valid", "auto"] = Field(
        default=0,
        description="Zero padding on both sides: p, [ph, pw], 'valid' (= 0) or 'same' "
        "(output size = input size; stride 1 only; the odd pixel goes right/bottom), "
        "or 'auto' (solved for output_shape).",
    )
    output_shape: OutputShape | None = _output_shape_field()


class ConvTranspose2d(_ConvBase, _AutoPadding):
    type: Literal["ConvTranspose2d"] = Field("ConvTranspose2d", description="torch.nn class name.")
    padding: NonNegPair | Literal["auto"] = Field(
        default=0,
        description="dilation*(kernel_size-1)-padding zeros are added to both sides of the input; "
        "'auto': solved for output_shape, with output_padding unless that is given.",
    )
    output_padding: NonNegPair = Field(
        default=0, description="Extra size added to one side of the output; must be < max(stride, dilation)."
    )
    output_shape: OutputShape | None = _output_shape_field()


class MaxPool2d(_AutoPadding):
    type: Literal["MaxPool2d"] = Field("MaxPool2d", description="torch.nn class name.")
    kernel_size: PosPair = Field(description="Window size: k or [kh, kw].")
    stride: PosPair | None = Field(default=None, description="Window stride; defaults to kernel_size.")
    padding: NonNegPair | Literal["auto"] = Field(
        default=0, description="Implicit -inf padding, <= kernel_size/2; 'auto': solved for output_shape."
    )
    output_shape: OutputShape | None = _output_shape_field()
    dilation: PosPair = Field(default=1, description="Spacing between window elements.")
    ceil_mode: bool = Field(default=False, description="Use ceil instead of floor for the output size.")


class AvgPool2d(_AutoPadding):
    type: Literal["AvgPool2d"] = Field("AvgPool2d", description="torch.nn class name.")
    kernel_size: PosPair = Field(description="Window size: k or [kh, kw].")
    stride: PosPair | None = Field(default=None, description="Window stride; defaults to kernel_size.")
    padding: NonNegPair | Literal["auto"] = Field(
        default=0, description="Implicit zero padding, <= kernel_size/2; 'auto': solved for output_shape."
    )
    output_shape: OutputShape | None = _output_shape_field()
    ceil_mode: bool = Field(default=False, description="Use ceil instead of floor for the output size.")
    count_include_pad: bool = Field(default=True, description="Include the zero padding in the average.")


class AdaptiveAvgPool2d(_Layer):
    type: Literal["AdaptiveAvgPool2d"] = Field("AdaptiveAvgPool2d", description="torch.nn class name.")
    output_size: PosPair = Field(description="Target output size: s or [h, w].")


class AdaptiveMaxPool2d(_Layer):
    type: Literal["AdaptiveMaxPool2d"] = Field("AdaptiveMaxPool2d", description="torch.nn class name.")
    output_size: PosPair = Field(description="Target output size: s or [h, w].")


class BatchNorm2d(_Layer):
    type: Literal["BatchNorm2d"] = Field("BatchNorm2d", description="torch.nn class name.")
    num_features: PosInt | None = Field(
        default=None, description="Channels C of the (N, C, H, W) input; inferred, checked when given."
    )
    eps: PosFloat = Field(default=1e-5, description="Added to the variance for numerical stability.")
    momentum: float = Field(default=0.1, ge=0, le=1, description="Running statistics update factor.")
    affine: bool = Field(default=True, description="Learnable per-channel scale (weight) and shift (bias).")
    track_running_stats: bool = Field(
        default=True, description="Keep running mean/variance buffers (buffers, not parameters)."
    )


class Dropout(_Layer):
    type: Literal["Dropout"] = Field("Dropout", description="torch.nn class name.")
    p: float = Field(default=0.5, ge=0, le=1, description="Probability of an element to be zeroed.")


class Dropout2d(_Layer):
    type: Literal["Dropout2d"] = Field("Dropout2d", description="torch.nn class name.")
    p: float = Field(default=0.5, ge=0, le=1, description="Probability of a whole channel to be zeroed.")


class Flatten(_Layer):
    type: Literal["Flatten"] = Field("Flatten", description="torch.nn class name.")
    start_dim: int = Field(default=1, description="First dim to flatten, counting the batch dim as 0.")
    end_dim: int = Field(default=-1, description="Last dim to flatten (negative counts from the end).")


class Linear(_Layer):
    type: Literal["Linear"] = Field("Linear", description="torch.nn class name.")
    in_features: PosInt | None = Field(
        default=None, description="Input features; inferred from the previous layer, checked when given."
    )
    out_features: PosInt = Field(description="Output features.")
    bias: bool = Field(default=True, description="Add a learnable bias.")


class ReLU(_Layer):
    type: Literal["ReLU"] = Field("ReLU", description="torch.nn class name.")


class LeakyReLU(_Layer):
    type: Literal["LeakyReLU"] = Field("LeakyReLU", description="torch.nn class name.")
    negative_slope: float = Field(default=0.01, description="Slope for negative inputs.")


class ELU(_Layer):
    type: Literal["ELU"] = Field("ELU", description="torch.nn class name.")
    alpha: float = Field(default=1.0, description="Value the ELU saturates to for negative inputs (-alpha).")


class GELU(_Layer):
    type: Literal["GELU"] = Field("GELU", description="torch.nn class name.")
    approximate: Literal["none", "tanh"] = Field(
        default="none", description="'tanh' uses the tanh approximation."
    )


class SiLU(_Layer):
    type: Literal["SiLU"] = Field("SiLU", description="torch.nn class name.")


class Tanh(_Layer):
    type: Literal["Tanh"] = Field("Tanh", description="torch.nn class name.")


class Sigmoid(_Layer):
    type: Literal["Sigmoid"] = Field("Sigmoid", description="torch.nn class name.")


class Softmax(_Layer):
    type: Literal["Softmax"] = Field("Softmax", description="torch.nn class name.")
    dim: int | None = Field(default=None, description="Dim along which to normalise (batch dim is 0).")


class LogSoftmax(_Layer):
    type: Literal["LogSoftmax"] = Field("LogSoftmax", description="torch.nn class name.")
    dim: int | None = Field(default=None, description="Dim along which to normalise (batch dim is 0).")


class Identity(_Layer):
    type: Literal["Identity"] = Field("Identity", description="torch.nn class name.")


LAYER_TYPES: tuple[type[_Layer], ...] = (
    Conv2d, ConvTranspose2d, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, AdaptiveMaxPool2d,
    BatchNorm2d, Dropout, Dropout2d, Flatten, Linear,
    ReLU, LeakyReLU, ELU, GELU, SiLU, Tanh, Sigmoid, Softmax, LogSoftmax, Identity,
)  # fmt: skip
LAYER_CLASSES: dict[str, type[_Layer]] = {cls.__name__: cls for cls in LAYER_TYPES}
_CANONICAL = {name.lower(): name for name in LAYER_CLASSES}

Layer = Annotated[Union[LAYER_TYPES], Field(discriminator="type")]  # type: ignore[valid-type]  # noqa: UP007


class Network(BaseModel):
    """A network: an input size and a stack of layers applied in order."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    name: str = Field(default="network", description="Name of the network (used for exported classes).")
    input: tuple[PosInt, PosInt, PosInt] = Field(
        description="Input size per sample: [channels, height, width] (the batch dim is not written)."
    )
    layers: list[Layer] = Field(default_factory=list, description="Layers, applied in order.")

    @field_validator("layers", mode="before")
    @classmethod
    def _canonical_type(cls, layers: Any) -> Any:
        """Accept ``type: conv2d`` as ``Conv2d`` (torch.nn names, case-insensitively)."""
        if not isinstance(layers, list):
            return layers
        out = []
        for layer in layers:
            if isinstance(layer, dict) and isinstance(layer.get("type"), str):
                layer = {**layer, "type": _CANONICAL.get(layer["type"].lower(), layer["type"])}
            out.append(layer)
        return out

    @model_validator(mode="after")
    def _check_names(self) -> Network:
        check_names(self)
        return self


# --------------------------------------------------------------------------------------
# Loading


def load_spec(path: str | Path) -> Network:
    """Read and validate a YAML or JSON spec file; raise ``SpecError`` naming every problem."""
    return parse_spec(read_spec(path), source=str(path))


def parse_spec(text: str, source: str = "<spec>") -> Network:
    """Validate spec text (YAML, of which JSON is a subset); errors name ``source``."""
    data, layer_lines = parse_text(text, source)
    return network_from_data(data, source, layer_lines)


def network_from_data(data: Any, source: str = "<spec>", layer_lines: Sequence[int] = ()) -> Network:
    """Validate already-parsed data; ``layer_lines[i]`` is the line of layer i, for messages."""
    if not isinstance(data, dict):
        shape = "a spec is a mapping with keys 'input' and 'layers' (and optional 'name')"
        problem = f"the file is empty; {shape}" if data is None else f"{shape}, not {_show(data)}"
        example = "input: [1, 28, 28] and layers: [{type: Conv2d, out_channels: 6, kernel_size: 5}]"
        raise SpecError([f"{source}: {problem}; e.g. {example}"])
    try:
        return Network.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_messages(exc, data, source, layer_lines)) from None


# What a field of each shape accepts, for one clear message where a union fails every branch.
_FORMS = {
    "padding": "an integer >= 0 or a pair [h, w] of them, or 'auto' (Conv2d also takes 'same' or 'valid')",
    "output_shape": "[C, H, W] or [H, W], integers >= 1",
    "output_padding": "an integer >= 0 or a pair [h, w] of them",
}
_POS_PAIR_FORM = "an integer >= 1 or a pair [h, w] of them"


def _messages(exc: ValidationError, data: dict, source: str, layer_lines: Sequence[int]) -> list[str]:
    messages: list[str] = []
    layers = data.get("layers") if isinstance(data.get("layers"), list) else []
    seen_unions: set[tuple] = set()
    for error in exc.errors(include_url=False):
        loc = list(error["loc"])
        if loc[:1] == ["input"] and (len(loc) > 1 or error["type"] != "missing"):
            # [1, 28], [1, 0, 28], [1, 28, 28, 3], 28: one message for the whole field, not per item
            if ("input",) in seen_unions:
                continue
            seen_unions.add(("input",))
            loc = ["input"]
            error = {**error, "type": "input_shape", "input": data.get("input")}
        # Union branches appear in loc as labels like 'constrained-int' or 'tuple[...]': report
        # the field once, saying what it accepts, instead of once per branch.
        branch = next((i for i, p in enumerate(loc) if isinstance(p, str) and not p.isidentifier()), None)
        if branch is not None and len(loc) >= 3 and loc[0] == "layers":
            loc = loc[:branch]
            if tuple(loc) in seen_unions:
                continue
            seen_unions.add(tuple(loc))
            form = _FORMS.get(str(loc[-1]), _POS_PAIR_FORM)
            error = {
                **error,
                "loc": tuple(loc),
                "type": "union",
                "msg": f"Invalid value {error['input']!r}; expected {form}",
            }
        where = source
        if len(loc) >= 2 and loc[0] == "layers" and isinstance(loc[1], int):
            index = loc[1]
            if index < len(layer_lines):
                where = f"{source}:{layer_lines[index]}"
            raw = layers[index] if index < len(layers) else None
            label = _layer_label(index, raw)
            field = [str(part) for part in loc[2:] if str(part) not in LAYER_CLASSES]
            where += f": {label}"
            if field:
                where += f": field '{'.'.join(field)}'"
        elif loc:
            where += f": field '{'.'.join(str(part) for part in loc)}'"
        elif error["type"] == "value_error":
            where += ": layers"
        messages.append(f"{where}: {_explain_error(error)}")
    return messages


def _layer_label(index: int, raw: Any) -> str:
    if not isinstance(raw, dict):
        return f"layer {index}"
    kind = raw.get("type", "?")
    name = raw.get("name")
    return f"layer {index} ({name}, {kind})" if name else f"layer {index} ({kind})"


def _explain_error(error: dict) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        layer_type = next((p for p in error["loc"] if p in LAYER_CLASSES), None)
        field = error["loc"][-1]
        if layer_type:
            known = [f for f in LAYER_CLASSES[layer_type].model_fields if f != "type"]
            close = _closest(str(field), known)
            hint = f"did you mean '{close}'? " if close else ""
            return f"unknown field; {hint}{layer_type} takes: {', '.join(known)}"
        return "unknown field; a spec takes: name, input, layers"
    if kind == "union_tag_invalid":
        tag = error.get("ctx", {}).get("tag")
        close = _closest(str(tag), list(LAYER_CLASSES))
        hint = f"did you mean '{close}'? " if close else ""
        return f"unknown layer type {tag!r}; {hint}known types: {', '.join(LAYER_CLASSES)}"
    if kind == "union_tag_not_found":
        return f"missing 'type'; give the torch.nn class name, one of: {', '.join(LAYER_CLASSES)}"
    if kind == "input_shape":
        return (
            f"give [channels, height, width], integers >= 1 (e.g. [1, 28, 28]), not {_show(error['input'])}"
        )
    if kind == "missing":
        if error["loc"] == ("input",):
            return "required field is missing; give input: [channels, height, width], e.g. [1, 28, 28]"
        return "required field is missing"
    if kind == "value_error":
        return str(error.get("ctx", {}).get("error", error["msg"]))
    if kind == "model_attributes_type" and len(error["loc"]) == 2 and error["loc"][0] == "layers":
        return (
            f"a layer is a mapping such as {{type: Conv2d, out_channels: 6, kernel_size: 5}}, "
            f"not {_show(error['input'])}"
        )
    message = error["msg"].split(", unable to ")[0]  # "..., unable to parse string as an integer"
    if message.startswith("Input should"):  # pydantic's "Input" is the value, not the spec's input
        return f"{_show(error['input'])} given; s{message[len('Input s') :]}"
    return message[0].lower() + message[1:]


def _show(value: Any) -> str:
    """A value as it was written in the spec (YAML spelling for true, false and null)."""
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, list):
        return "[" + ", ".join(_show(item) for item in value) + "]"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _closest(word: str, options: Sequence[str]) -> str | None:
    import difflib

    lower = {option.lower(): option for option in options}
    match = difflib.get_close_matches(word.lower(), list(lower), n=1, cutoff=0.6)
    return lower[match[0]] if match else None


def spec_to_data(network: Network) -> dict[str, Any]:
    """The spec as plain data, omitting fields left at their defaults (for saving as YAML)."""
    return {
        "name": network.name,
        "input": list(network.input),
        "layers": [
            {"type": layer.type, **_plain(layer.model_dump(exclude_defaults=True, exclude={"type"}))}
            for layer in network.layers
        ],
    }


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def dump_spec(network: Network) -> str:
    """YAML text that ``parse_spec`` reads back to an equal ``Network``; one flow mapping a layer."""
    data = spec_to_data(network)
    head = yaml.safe_dump({"name": data["name"]}, sort_keys=False).strip()
    lines = [head, f"input: [{', '.join(str(v) for v in data['input'])}]", "layers:"]
    for layer in data["layers"]:
        flow = yaml.safe_dump(layer, default_flow_style=True, sort_keys=False, width=10_000).strip()
        lines.append(f"  - {flow}")
    if not data["layers"]:
        lines[-1] = "layers: []"
    return "\n".join(lines) + "\n"


def json_schema() -> dict[str, Any]:
    """JSON Schema of a spec file, with a description on every field."""
    return Network.model_json_schema()
