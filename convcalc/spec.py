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

import math
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Strict,
    Tag,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from convcalc.errors import SpecError as SpecError
from convcalc.graph import Graph, expand, unknown_type
from convcalc.specfile import MODULE_ATTRIBUTES as MODULE_ATTRIBUTES
from convcalc.specfile import check_names, parse_text, read_spec
from convcalc.specfile import layer_names as layer_names
from convcalc.specfile import pair as pair

# Sizes are bounded: nothing a layer could use is larger (and a 4,301-digit integer is refused
# with the field named rather than reaching the engine).
MAX_SIZE = 2**31 - 1

# A positive / non-negative int that refuses bools, floats and strings ("3").
PosInt = Annotated[int, Strict(), Field(ge=1, le=MAX_SIZE)]
NonNegInt = Annotated[int, Strict(), Field(ge=0, le=MAX_SIZE)]
AnyInt = Annotated[int, Strict(), Field(ge=-MAX_SIZE, le=MAX_SIZE)]
Dim = Annotated[int, Strict(), Field(ge=-64, le=64)]
Bool = Annotated[bool, Strict()]
# A float given as an int or a float, never as a string ("0.5") or a bool.
Float = Annotated[float, Strict(), Field(allow_inf_nan=False)]
PosFloat = Annotated[float, Strict(), Field(gt=0, allow_inf_nan=False)]
NonNegFloat = Annotated[float, Strict(), Field(ge=0, allow_inf_nan=False)]
Probability = Annotated[float, Strict(), Field(ge=0, le=1)]

# `3` or `[3, 5]`: one value for both axes, or (height, width).
PosPair = PosInt | tuple[PosInt, PosInt]
NonNegPair = NonNegInt | tuple[NonNegInt, NonNegInt]
# The size a layer with `padding: auto` must give: [C, H, W] or [H, W].
OutputShape = tuple[PosInt, PosInt, PosInt] | tuple[PosInt, PosInt]
Inputs = str | list[str]


def _sizes(kind: Any, nd: int) -> Any:
    """One value for every spatial axis, or one per axis: ``k`` or ``[kh, kw]`` in 2-D."""
    return kind | tuple[(kind,) * nd]  # type: ignore[misc]


class _Layer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    name: str | None = Field(
        default=None,
        description="Module name in the generated model (a Python identifier, or identifiers joined by "
        "'-' as block1-0); "
        "derived from the type when left out (conv2d_0, relu_0, ...).",
    )
    inputs: Inputs | None = Field(
        default=None,
        description="What the layer reads: earlier layers of the same scope by name, or 'input' "
        "(the network's, block's or group's input); default: the layer above.",
    )
    repeat: PosInt = Field(default=1, le=100_000, description="Apply the layer this many times in a chain.")


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


class _ParameterLayer(_Layer):
    """``Parameter``: a learnable tensor of the block (or network) that holds it; reads nothing."""

    @model_validator(mode="after")
    def _reads_nothing(self) -> _ParameterLayer:
        if self.inputs:
            raise ValueError("a Parameter reads nothing; remove inputs (a Mul or Add reads it by its name)")
        if self.repeat != 1:
            raise ValueError("a Parameter cannot be repeated; remove repeat")
        if self.view is not None and math.prod(self.view) != math.prod(self.shape):
            raise ValueError(f"view {list(self.view)} holds {math.prod(self.view)} values and shape "
                             f"{list(self.shape)} {math.prod(self.shape)}; give a view of the same size "
                             "(or drop view)")  # fmt: skip
        if self.std is not None and "value" in self.model_fields_set:
            raise ValueError("value and std exclude each other: value fills the tensor with a constant, "
                             "std draws it from a normal distribution; give one of them")  # fmt: skip
        return self


def _output_shape_field() -> Any:
    return Field(
        default=None,
        description="With padding: auto, the output wanted ([C, H, W] or [H, W]); padding is solved for it.",
    )


def _type(name: str) -> Any:
    return (Literal[name], Field(name, description="torch.nn class name."))  # type: ignore[valid-type]


def _model(name: str, base: type[BaseModel], fields: dict[str, Any], doc: str) -> type[BaseModel]:
    cls = create_model(name, __base__=base, __doc__=doc, type=_type(name), **fields)
    cls.__module__ = __name__
    return cls


def _conv_fields(nd: int, transposed: bool) -> dict[str, Any]:
    size, nonneg = _sizes(PosInt, nd), _sizes(NonNegInt, nd)
    if transposed:
        padding: Any = nonneg | Literal["auto"] if nd == 2 else nonneg
        pad_doc = ("dilation*(kernel_size-1)-padding zeros are added to both sides of the input"
                   + ("; 'auto': solved for output_shape, with output_padding unless that is given."
                      if nd == 2 else "."))  # fmt: skip
    else:
        padding = nonneg | Literal["same", "valid", "auto"] if nd == 2 else nonneg | Literal["same", "valid"]
        pad_doc = ("Zero padding on both sides: p, one per axis, 'valid' (= 0) or 'same' (output size = "
                   "input size; stride 1 only; the odd pixel goes right/bottom)"
                   + (", or 'auto' (solved for output_shape)." if nd == 2 else "."))  # fmt: skip
    fields: dict[str, Any] = {
        "in_channels": (
            PosInt | None,
            Field(None, description="Input channels; inferred, checked when given."),
        ),
        "out_channels": (PosInt, Field(description="Output channels (number of filters).")),
        "kernel_size": (size, Field(description="Kernel size: k, or one per spatial axis.")),
        "stride": (size, Field(1, description="Stride: s, or one per spatial axis.")),
        "padding": (padding, Field(0, description=pad_doc)),
    }
    if transposed:
        fields["output_padding"] = (
            nonneg,
            Field(
                0, description="Extra size added to one side of the output; must be < max(stride, dilation)."
            ),
        )
    fields |= {
        "dilation": (size, Field(1, description="Spacing between kernel elements.")),
        "groups": (
            PosInt,
            Field(1, description="Blocked connections; must divide in_channels and out_channels."),
        ),
        "bias": (Bool, Field(True, description="Add a learnable bias per output channel.")),
    }
    if nd == 2:
        fields["output_shape"] = (OutputShape | None, _output_shape_field())
    return fields


def _pool_fields(nd: int, kind: str) -> dict[str, Any]:
    size, nonneg = _sizes(PosInt, nd), _sizes(NonNegInt, nd)
    pad_kind = "-inf" if kind == "Max" else "zero"
    fields: dict[str, Any] = {
        "kernel_size": (size, Field(description="Window size: k, or one per spatial axis.")),
        "stride": (size | None, Field(None, description="Window stride; defaults to kernel_size.")),
        "padding": (
            nonneg | Literal["auto"] if nd == 2 else nonneg,
            Field(0, description=f"Implicit {pad_kind} padding, <= kernel_size/2"
                  + ("; 'auto': solved for output_shape." if nd == 2 else ".")),
        ),
    }  # fmt: skip
    if nd == 2:
        fields["output_shape"] = (OutputShape | None, _output_shape_field())
    if kind == "Max":
        fields["dilation"] = (size, Field(1, description="Spacing between window elements."))
    fields["ceil_mode"] = (Bool, Field(False, description="Use ceil instead of floor for the output size."))
    if kind == "Avg":
        fields["count_include_pad"] = (
            Bool,
            Field(True, description="Include the zero padding in the average."),
        )
    return fields


def _norm_fields(affine: bool, track: bool) -> dict[str, Any]:
    return {
        "num_features": (PosInt | None, Field(None, description="Channels C of the input; inferred, "
                                                                "checked when given.")),
        "eps": (NonNegFloat, Field(1e-5, description="Added to the variance for numerical stability.")),
        "momentum": (Probability | None, Field(0.1, description="Running statistics update factor "
                                                                "(null: a cumulative average).")),
        "affine": (Bool, Field(affine, description="Learnable per-channel scale (weight) and shift (bias).")),
        "track_running_stats": (Bool, Field(track, description="Keep running mean/variance buffers "
                                                               "(buffers, not parameters).")),
    }  # fmt: skip


def _pad_fields(nd: int, kind: str) -> dict[str, Any]:
    value = AnyInt if kind in ("Zero", "Constant") else NonNegInt
    sides = ["left, right", "top, bottom", "front, back"][:nd]
    fields: dict[str, Any] = {
        "padding": (
            value | tuple[(value,) * (2 * nd)],  # type: ignore[misc]
            Field(description=f"Padding on every side, or {2 * nd} values: [{', '.join(sides)}] "
                  "(torch's order, last axis first)"
                  + ("; negative values crop." if kind in ("Zero", "Constant") else ".")),
        )
    }  # fmt: skip
    if kind == "Constant":
        fields["value"] = (Float, Field(description="The value of the padded elements."))
    return fields


_DOC_ND = {1: "(C, L)", 2: "(C, H, W)", 3: "(C, D, H, W)"}
_MODELS: list[type[BaseModel]] = []
for _nd in (2, 1, 3):  # 2-D first: the type pickers list them first
    _base = _AutoPadding if _nd == 2 else _Layer
    _MODELS += [
        _model(
            f"Conv{_nd}d", _base, _conv_fields(_nd, False), f"torch.nn.Conv{_nd}d on a {_DOC_ND[_nd]} input."
        ),
        _model(f"ConvTranspose{_nd}d", _base, _conv_fields(_nd, True), f"torch.nn.ConvTranspose{_nd}d."),
        _model(f"MaxPool{_nd}d", _base, _pool_fields(_nd, "Max"), f"torch.nn.MaxPool{_nd}d."),
        _model(f"AvgPool{_nd}d", _base, _pool_fields(_nd, "Avg"), f"torch.nn.AvgPool{_nd}d."),
    ]
    for _kind in ("Avg", "Max"):
        _out = PosInt | tuple[(PosInt | None,) * _nd]  # type: ignore[misc]
        _MODELS.append(_model(f"Adaptive{_kind}Pool{_nd}d", _Layer, {
            "output_size": (_out, Field(description="Target output size: s, or one per axis "
                                                    "(null keeps that axis)."))
        }, f"torch.nn.Adaptive{_kind}Pool{_nd}d."))  # fmt: skip
    _MODELS.append(_model(f"BatchNorm{_nd}d", _Layer, _norm_fields(True, True), f"torch.nn.BatchNorm{_nd}d."))
    _MODELS.append(
        _model(f"InstanceNorm{_nd}d", _Layer, _norm_fields(False, False), f"torch.nn.InstanceNorm{_nd}d.")
    )
    for _kind in ("Zero", "Constant", "Reflection", "Replication"):
        _MODELS.append(
            _model(f"{_kind}Pad{_nd}d", _Layer, _pad_fields(_nd, _kind), f"torch.nn.{_kind}Pad{_nd}d.")
        )
    _MODELS.append(_model(f"Dropout{_nd}d", _Layer, {
        "p": (Probability, Field(0.5, description="Probability of a whole channel to be zeroed."))
    }, f"torch.nn.Dropout{_nd}d."))  # fmt: skip
globals().update({cls.__name__: cls for cls in _MODELS})


def _simple(name: str, doc: str, **fields: Any) -> type[BaseModel]:
    return _model(name, _Layer, fields, doc)


_P = Field(0.5, description="Probability of an element to be zeroed.")
_SOFTMAX_DIM = Field(None, description="Dim along which to normalise (batch dim is 0).")
_MODELS += [
    _simple("GroupNorm", "torch.nn.GroupNorm: statistics over groups of channels and all positions.",
            num_groups=(PosInt, Field(description="Groups the channels are split into; must divide them.")),
            num_channels=(PosInt | None, Field(None, description="Channels; inferred, checked when given.")),
            eps=(NonNegFloat, Field(1e-5, description="Added to the variance for numerical stability.")),
            affine=(Bool, Field(True, description="Learnable per-channel scale and shift."))),
    _simple("LayerNorm", "torch.nn.LayerNorm over the last dims of the input.",
            normalized_shape=(PosInt | list[PosInt], Field(description="The last dims normalised over.")),
            eps=(NonNegFloat, Field(1e-5, description="Added to the variance for numerical stability.")),
            elementwise_affine=(Bool, Field(True, description="Learnable scale (and bias) per element.")),
            bias=(Bool, Field(True, description="With elementwise_affine, a learnable bias too."))),
    _simple("Dropout", "torch.nn.Dropout.", p=(Probability, _P)),
    _simple("AlphaDropout", "torch.nn.AlphaDropout (for SELU networks).", p=(Probability, _P)),
    _simple("FeatureAlphaDropout", "torch.nn.FeatureAlphaDropout.", p=(Probability, _P)),
    _simple("StochasticDepth", "torchvision.ops.StochasticDepth (Huang et al. 2016, 'Deep Networks with "
            "Stochastic Depth'): while training, zeroes its whole input per sample (mode row) or per "
            "batch with probability p and scales what it keeps by 1/(1-p); the identity in eval mode. "
            "Put on a residual branch before the Add.",
            p=(Probability, Field(description="Probability of dropping the input (the branch).")),
            mode=(Literal["row", "batch"], Field("row", description="row: per sample; batch: all at once."))),
    _simple("Flatten", "torch.nn.Flatten.",
            start_dim=(Dim, Field(1, description="First dim to flatten, counting the batch dim as 0.")),
            end_dim=(Dim, Field(-1, description="Last dim to flatten (negative counts from the end)."))),
    _simple("Unflatten", "torch.nn.Unflatten.",
            dim=(Dim, Field(description="The dim to unflatten, counting the batch dim as 0.")),
            unflattened_size=(list[PosInt], Field(description="The sizes it becomes (product = its size)."))),
    _simple("Linear", "torch.nn.Linear on a flat input.",
            in_features=(PosInt | None, Field(None, description="Inferred; checked if given.")),
            out_features=(PosInt, Field(description="Output features.")),
            bias=(Bool, Field(True, description="Add a learnable bias."))),
    _simple("LeakyReLU", "torch.nn.LeakyReLU.",
            negative_slope=(Float, Field(0.01, description="Slope for negative inputs."))),
    _simple("ELU", "torch.nn.ELU.", alpha=(Float, Field(1.0, description="Value it saturates to (-alpha)."))),
    _simple("CELU", "torch.nn.CELU.", alpha=(Float, Field(1.0, description="The alpha of CELU."))),
    _simple("GELU", "torch.nn.GELU.", approximate=(Literal["none", "tanh"], Field(
        "none", description="'tanh' uses the tanh approximation."))),
    _simple("Hardtanh", "torch.nn.Hardtanh.",
            min_val=(Float, Field(-1.0, description="Lower end of the linear region.")),
            max_val=(Float, Field(1.0, description="Upper end of the linear region."))),
    _simple("Softplus", "torch.nn.Softplus.",
            beta=(Float, Field(1.0, description="The beta of softplus.")),
            threshold=(Float, Field(20.0, description="Above it the function is linear."))),
    _simple("PReLU", "torch.nn.PReLU: a learnable slope, one or one per channel.",
            num_parameters=(PosInt, Field(1, description="1, or the number of input channels.")),
            init=(Float, Field(0.25, description="Initial slope."))),
    _simple("Softmax", "torch.nn.Softmax.", dim=(Dim | None, _SOFTMAX_DIM)),
    _simple("LogSoftmax", "torch.nn.LogSoftmax.", dim=(Dim | None, _SOFTMAX_DIM)),
    _simple("ChannelShuffle", "torch.nn.ChannelShuffle (ShuffleNet).",
            groups=(PosInt, Field(description="Groups the channels are shuffled across; must divide them."))),
    _simple("Chunk", "torch.chunk(x, chunks, dim)[index]: one of the pieces (each ceil(size / chunks) "
            "long, the last maybe shorter), a view of its input (ShuffleNetV2's x.chunk(2, dim=1)).",
            chunks=(PosInt, Field(description="Pieces to split into, as torch.chunk.")),
            index=(NonNegInt, Field(0, description="Which piece (0: the first).")),
            dim=(Dim, Field(1, description="The dim to split (batch is 0; channels: 1)."))),
    _simple("Upsample", "torch.nn.Upsample (F.interpolate).",
            size=(PosInt | list[PosInt] | None, Field(None, description="Output size: s, or one per axis.")),
            scale_factor=(PosFloat | list[PosFloat] | None, Field(None, description="Size multiplier.")),
            mode=(Literal["nearest", "linear", "bilinear", "bicubic", "trilinear", "nearest-exact"],
                  Field("nearest", description="Interpolation (linear: 1-D, bilinear/bicubic: 2-D, "
                                               "trilinear: 3-D).")),
            align_corners=(Bool | None, Field(None, description="Linear modes: align the corner pixels."))),
    _simple("PixelShuffle", "torch.nn.PixelShuffle: (C·r², H, W) -> (C, H·r, W·r).",
            upscale_factor=(PosInt, Field(description="r."))),
    _simple("PixelUnshuffle", "torch.nn.PixelUnshuffle: (C, H·r, W·r) -> (C·r², H, W).",
            downscale_factor=(PosInt, Field(description="r."))),
    _model("Parameter", _ParameterLayer, {
        "shape": (list[PosInt], Field(min_length=1, max_length=4, description="Its shape, per sample (no "
                  "batch dim): it broadcasts against the batch as torch does, e.g. [C, 1, 1] per channel.")),
        "value": (Float, Field(0.0, description="The value it is filled with (torch.full).")),
        "std": (PosFloat | None, Field(None, description="Instead of value: drawn from N(0, std²).")),
        "view": (list[PosInt] | None, Field(None, min_length=1, max_length=4, description="The shape "
                 "it is read as (Tensor.view), when it is stored in another: timm's ConvNeXt keeps "
                 "gamma as [C] and reads it as [C, 1, 1]. The same number of values as shape.")),
    }, "torch.nn.Parameter held by the enclosing block (or network) under its name: a learnable tensor "
       "that reads nothing, e.g. ConvNeXt's layer_scale; a Mul or Add reads it."),
    _simple("Permute", "torchvision.ops.Permute (torch.permute): reorders the dims, batch included; "
            "[0, 2, 3, 1] makes (N, C, H, W) channels-last, [0, 3, 1, 2] undoes it.",
            dims=(list[Dim], Field(min_length=2, max_length=5, description="The new order of the dims "
                                   "(batch is 0 and stays first)."))),
    _simple("LayerNorm2d", "LayerNorm over the channels of a (C, H, W) map at each position (torchvision's "
            "and timm's LayerNorm2d: permute, layer_norm over C, permute back).",
            normalized_shape=(PosInt | None, Field(None, description="Channels C; inferred, checked when "
                                                                     "given.")),
            eps=(NonNegFloat, Field(1e-5, description="Added to the variance for numerical stability.")),
            elementwise_affine=(Bool, Field(True, description="Learnable scale (and bias) per channel.")),
            bias=(Bool, Field(True, description="With elementwise_affine, a learnable bias too."))),
    _simple("Add", "The elementwise sum of its inputs (a + b); shapes must match."),
    _simple("Mul", "The elementwise product of its inputs, broadcast (a * gate)."),
    _simple("Cat", "torch.cat of its inputs.", dim=(Dim, Field(1, description="The dim to concatenate on "
                                                                            "(batch is 0; channels: 1)."))),
]  # fmt: skip
# timm's BatchNormAct2d: BatchNorm2d and its activation in one module (one set of keys)
NORM_ACTS = ("ReLU", "ReLU6", "SiLU", "GELU", "Mish", "Hardswish", "Hardsigmoid", "Sigmoid", "Tanh", "ELU",
             "SELU", "LeakyReLU")  # fmt: skip
_MODELS.append(_model("BatchNormAct2d", _Layer, {**_norm_fields(True, True), "act": (
    Literal[NORM_ACTS] | None, Field("ReLU", description="The activation after the normalisation, with "  # type: ignore[valid-type]
                                     "torch's defaults (null: none)."))},
    "BatchNorm2d, then its activation, in one module: timm's BatchNormAct2d (its EfficientNets, "
    "MobileNets, RegNets, DenseNets, ...)."))  # fmt: skip
for _name in ("ReLU", "ReLU6", "SELU", "SiLU", "Mish", "Hardswish", "Hardsigmoid", "Tanh", "Sigmoid",
              "Softsign", "Tanhshrink", "Identity"):  # fmt: skip
    _MODELS.append(_simple(_name, f"torch.nn.{_name}."))
globals().update({cls.__name__: cls for cls in _MODELS})

LAYER_TYPES: tuple[type[_Layer], ...] = tuple(_MODELS)
LAYER_CLASSES: dict[str, type[_Layer]] = {cls.__name__: cls for cls in LAYER_TYPES}
_CANONICAL = {name.lower(): name for name in LAYER_CLASSES}
STRUCTURE_TYPES = ("Sequential",)


def canonical_type(name: Any) -> Any:
    """``conv2d`` -> ``Conv2d`` (torch.nn names, case-insensitively); other values unchanged."""
    if not isinstance(name, str):
        return name
    if name.lower() == "sequential":
        return "Sequential"
    return _CANONICAL.get(name.lower(), name)


class Sequential(_Layer):
    """Layers applied in order, like nn.Sequential: unnamed members are named 0, 1, ..."""

    type: Literal["Sequential"] = Field("Sequential", description="torch.nn class name.")
    layers: list[Any] = Field(description="The group's layers (each a layer, a block use or a Sequential).")


class BlockUse(BaseModel):
    """A use of a block defined under ``blocks``: ``type`` is the block's name, its parameters
    are given as fields."""

    model_config = ConfigDict(extra="allow", frozen=True, defer_build=True)

    type: str = Field(description="The block's name, as defined under blocks.")
    name: str | None = Field(
        default=None, description="Module name of this use (default: derived from the block)."
    )
    inputs: Inputs | None = Field(default=None, description="What the block reads (one layer, or 'input').")
    repeat: PosInt = Field(default=1, le=100_000, description="Apply the block this many times in a chain.")

    @field_validator("type")
    @classmethod
    def _known(cls, kind: str, info: ValidationInfo) -> str:
        """Not a layer type: it must name a block of the spec (known from the context)."""
        blocks = (info.context or {}).get("blocks")
        if blocks is None or kind in blocks:
            return kind
        raise ValueError(unknown_type(kind, list(LAYER_CLASSES), list(blocks)))


class Block(BaseModel):
    """A reusable block: parameters with defaults (null: must be given) and layers that may
    write ``$name`` or ``${expression}`` for a parameter's value."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    params: dict[str, Any] | list[str] = Field(default_factory=dict, description="Parameters and defaults.")
    layers: list[dict[str, Any]] = Field(description="The block's layers, as in a spec's layers.")
    output: str | None = Field(
        default=None, description="The layer whose output is the block's (default: the last)."
    )


def _item_tag(value: Any) -> str:
    kind = canonical_type(value.get("type") if isinstance(value, dict) else getattr(value, "type", None))
    if not isinstance(kind, str):
        return None  # type: ignore[return-value]
    if kind in LAYER_CLASSES or kind == "Sequential":
        return kind
    return "block" if isinstance(kind, str) else None  # type: ignore[return-value]


Layer = Annotated[Union[LAYER_TYPES], Field(discriminator="type")]  # type: ignore[valid-type]  # noqa: UP007
Item = Annotated[
    Union[  # noqa: UP007
        tuple(Annotated[cls, Tag(cls.__name__)] for cls in LAYER_TYPES)  # type: ignore[misc]
        + (Annotated[Sequential, Tag("Sequential")], Annotated[BlockUse, Tag("block")])
    ],
    Discriminator(_item_tag),
]


class Network(BaseModel):
    """A network: an input size and its layers (a straight stack, or a graph with blocks)."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    name: str = Field(
        default="network", max_length=200, description="Name of the network (used for exported classes)."
    )
    input: tuple[PosInt, ...] = Field(
        min_length=1,
        max_length=4,
        description="Input size per sample, the batch dim left out: [features], [channels, length], "
        "[channels, height, width] or [channels, depth, height, width].",
    )
    blocks: dict[str, Block] = Field(default_factory=dict, description="Reusable blocks, by name.")
    layers: list[Item] = Field(default_factory=list, description="Layers, applied in order.")  # type: ignore[valid-type]
    output: str | None = Field(
        default=None, description="The layer whose output is the network's (default: the last)."
    )

    _graph: Any = PrivateAttr(default=None)

    @field_validator("layers", mode="before")
    @classmethod
    def _canonical_type(cls, layers: Any) -> Any:
        """Accept ``type: conv2d`` as ``Conv2d`` (torch.nn names, case-insensitively)."""
        return canonical_types(layers)

    @model_validator(mode="after")
    def _check_graph(self, info: ValidationInfo) -> Network:
        if not self.blocks and all(
            layer.type in LAYER_CLASSES and layer.repeat == 1 for layer in self.layers
        ):
            check_names(self)  # the straight stack of old: its messages, as before
        source = (info.context or {}).get("source", "<spec>") if info is not None else "<spec>"
        try:
            graph = expand(self, _make_item, source, LAYER_CLASSES)
        except SpecError as error:
            raise ValueError(_GRAPH_ERROR + "\n".join(error.problems)) from None
        self._graph = (self.layers, self.blocks, self.output, graph)
        return self

    @property
    def graph(self) -> Graph:
        """The expanded graph (``convcalc.graph``); recomputed when a copy changed the layers."""
        cached = self._graph
        if (
            cached is not None
            and cached[0] is self.layers
            and cached[1] is self.blocks
            and cached[2] == self.output
        ):
            return cached[3]
        graph = expand(self, _make_item, "<spec>", LAYER_CLASSES)
        self._graph = (self.layers, self.blocks, self.output, graph)
        return graph


_GRAPH_ERROR = "graph:"  # marks the value_error of the expansion: its lines are messages already


def canonical_types(layers: Any) -> Any:
    if not isinstance(layers, list):
        return layers
    out = []
    for layer in layers:
        if isinstance(layer, dict) and isinstance(layer.get("type"), str):
            layer = {**layer, "type": canonical_type(layer["type"])}
            if layer["type"] == "Sequential":
                layer["layers"] = canonical_types(layer.get("layers"))
        out.append(layer)
    return out


@cache
def _item_adapter() -> TypeAdapter:
    return TypeAdapter(Item)


def _make_item(raw: dict, where: str) -> Any:
    """A block body's layer (its parameters substituted), validated; ``SpecError`` names it."""
    raw = canonical_types([raw])[0]
    try:
        return _item_adapter().validate_python(raw)
    except ValidationError as exc:
        raise SpecError(_messages(exc, {"layers": [raw]}, where.rstrip(": "), (), item_label=where)) from None


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
        blocks = data.get("blocks")
        names = [name for name in blocks if isinstance(name, str)] if isinstance(blocks, dict) else []
        return Network.model_validate(data, context={"source": source, "blocks": names})
    except ValidationError as exc:
        raise SpecError(_messages(exc, data, source, layer_lines)) from None


# What a field of each shape accepts, for one clear message where a union fails every branch.
_FORMS = {
    "padding": "an integer >= 0 or a pair [h, w] of them, or 'auto' (Conv2d also takes 'same' or 'valid')",
    "output_shape": "[C, H, W] or [H, W], integers >= 1",
    "output_padding": "an integer >= 0 or a pair [h, w] of them",
}
_POS_PAIR_FORM = "an integer >= 1 or a pair [h, w] of them"


def _messages(
    exc: ValidationError, data: dict, source: str, layer_lines: Sequence[int], item_label: str | None = None
) -> list[str]:
    messages: list[str] = []
    layers = data.get("layers") if isinstance(data.get("layers"), list) else []
    seen_unions: set[tuple] = set()
    for error in exc.errors(include_url=False):
        if error["type"] == "value_error" and str(error.get("ctx", {}).get("error", "")).startswith(
            _GRAPH_ERROR
        ):
            messages.extend(str(error["ctx"]["error"])[len(_GRAPH_ERROR) :].split("\n"))
            continue
        loc = [part for part in error["loc"] if part not in ("Sequential", "block")]
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
            if item_label is not None:  # a layer inside a block or group: its place says which
                where = source
                label = label.replace("layer 0 ", "", 1) if label != "layer 0" else ""
            field = [str(part) for part in loc[2:] if str(part) not in LAYER_CLASSES]
            where += f": {label}" if label else ""
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
        return "unknown field; a spec takes: name, input, blocks, layers, output"
    if kind == "union_tag_invalid":
        tag = error.get("ctx", {}).get("tag")
        close = _closest(str(tag), list(LAYER_CLASSES))
        hint = f"did you mean '{close}'? " if close else ""
        return f"unknown layer type {tag!r}; {hint}known types: {', '.join(LAYER_CLASSES)}"
    if kind == "union_tag_not_found" and not isinstance(error.get("input"), dict):
        return (
            f"a layer is a mapping such as {{type: Conv2d, out_channels: 6, kernel_size: 5}}, "
            f"not {_show(error['input'])}"
        )
    if kind == "union_tag_not_found":
        return f"missing 'type'; give the torch.nn class name, one of: {', '.join(LAYER_CLASSES)}"
    if kind == "input_shape":
        return (
            f"give [channels, height, width], integers >= 1 (e.g. [1, 28, 28]; also [features], "
            f"[channels, length] or [channels, depth, height, width]), not {_show(error['input'])}"
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
    data: dict[str, Any] = {"name": network.name, "input": list(network.input)}
    if network.blocks:
        data["blocks"] = {
            name: {
                "params": _plain(block.params),
                "layers": _plain(block.layers),
                **({"output": block.output} if block.output is not None else {}),
            }
            for name, block in network.blocks.items()
        }
    data["layers"] = [
        {"type": item.type, **_plain(item.model_dump(exclude_defaults=True, exclude={"type"}))}
        for item in network.layers
    ]
    if network.output is not None:
        data["output"] = network.output
    return data


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def dump_spec(network: Network) -> str:
    """YAML text that ``parse_spec`` reads back to an equal ``Network``; one flow mapping a
    layer (a group or a block spelled out over lines, its layers one flow mapping each)."""
    data = spec_to_data(network)
    head = yaml.safe_dump({"name": data["name"]}, sort_keys=False).strip()
    lines = [head, f"input: [{', '.join(str(v) for v in data['input'])}]"]
    if "blocks" in data:
        lines.append("blocks:")
        for name, block in data["blocks"].items():
            lines.append(f"  {_flow(name)}:")
            lines.append(f"    params: {_flow(block['params'])}")
            if "output" in block:
                lines.append(f"    output: {_flow(block['output'])}")
            lines.append("    layers:" if block["layers"] else "    layers: []")
            lines += _items(block["layers"], "      ")
    lines.append("layers:" if data["layers"] else "layers: []")
    lines += _items(data["layers"], "  ")
    if "output" in data:
        lines.append(f"output: {_flow(data['output'])}")
    return "\n".join(lines) + "\n"


def _flow(value: Any) -> str:
    return (
        yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10_000)
        .strip()
        .removesuffix("\n...")
    )


def _items(items: list[Any], indent: str) -> list[str]:
    lines = []
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("layers"), list) and item["layers"]:
            head = {key: value for key, value in item.items() if key != "layers"}
            first, *rest = [f"{key}: {_flow(value)}" for key, value in head.items()]
            lines.append(f"{indent}- {first}")
            lines += [f"{indent}  {line}" for line in rest]
            lines.append(f"{indent}  layers:")
            lines += _items(item["layers"], indent + "    ")
        else:
            lines.append(f"{indent}- {_flow(item)}")
    return lines


def json_schema() -> dict[str, Any]:
    """JSON Schema of a spec file, with a description on every field."""
    return Network.model_json_schema()
