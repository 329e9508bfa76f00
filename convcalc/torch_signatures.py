"""The constructor signatures of the ``torch.nn`` modules a spec can name, as data: each
parameter's name and default in torch's order (``REQUIRED``: none). ``convcalc export`` writes
source from them without importing torch (4-7 s of start-up for a command that only writes
text); ``tests/test_newcomer.py`` checks them against the installed torch, whose
version pyproject.toml pins. Merges (``Add``, ``Mul``, ``Cat``) are convcalc's own modules
and absent, as is ``Parameter`` (a tensor, not a module); ``StochasticDepth``, ``Permute`` and
``LayerNorm2d`` are convcalc's too (``convcalc.build``), listed because they are constructed like
the others.
"""

from __future__ import annotations

from inspect import Parameter
from typing import Any

REQUIRED = Parameter.empty

# the 1-d, 2-d and 3-d variants of these take the same arguments
_BY_DIMENSION: dict[str, tuple[tuple[str, Any], ...]] = {
    "AdaptiveAvgPool": (("output_size", REQUIRED),),
    "AdaptiveMaxPool": (("output_size", REQUIRED), ("return_indices", False)),
    "BatchNorm": (
        ("num_features", REQUIRED),
        ("eps", 1e-05),
        ("momentum", 0.1),
        ("affine", True),
        ("track_running_stats", True),
        ("device", None),
        ("dtype", None),
        ("bias", True),
    ),
    "ConstantPad": (("padding", REQUIRED), ("value", REQUIRED)),
    "Conv": (
        ("in_channels", REQUIRED),
        ("out_channels", REQUIRED),
        ("kernel_size", REQUIRED),
        ("stride", 1),
        ("padding", 0),
        ("dilation", 1),
        ("groups", 1),
        ("bias", True),
        ("padding_mode", "zeros"),
        ("device", None),
        ("dtype", None),
    ),
    "ConvTranspose": (
        ("in_channels", REQUIRED),
        ("out_channels", REQUIRED),
        ("kernel_size", REQUIRED),
        ("stride", 1),
        ("padding", 0),
        ("output_padding", 0),
        ("groups", 1),
        ("bias", True),
        ("dilation", 1),
        ("padding_mode", "zeros"),
        ("device", None),
        ("dtype", None),
    ),
    "Dropout": (("p", 0.5), ("inplace", False)),
    "InstanceNorm": (
        ("num_features", REQUIRED),
        ("eps", 1e-05),
        ("momentum", 0.1),
        ("affine", False),
        ("track_running_stats", False),
        ("device", None),
        ("dtype", None),
        ("bias", True),
    ),
    "MaxPool": (
        ("kernel_size", REQUIRED),
        ("stride", None),
        ("padding", 0),
        ("dilation", 1),
        ("return_indices", False),
        ("ceil_mode", False),
    ),
    "ReflectionPad": (("padding", REQUIRED),),
    "ReplicationPad": (("padding", REQUIRED),),
    "ZeroPad": (("padding", REQUIRED),),
}

SIGNATURES: dict[str, tuple[tuple[str, Any], ...]] = {
    "AlphaDropout": (("p", 0.5), ("inplace", False)),
    "AvgPool1d": (
        ("kernel_size", REQUIRED),
        ("stride", None),
        ("padding", 0),
        ("ceil_mode", False),
        ("count_include_pad", True),
    ),
    "AvgPool2d": (
        ("kernel_size", REQUIRED),
        ("stride", None),
        ("padding", 0),
        ("ceil_mode", False),
        ("count_include_pad", True),
        ("divisor_override", None),
    ),
    "AvgPool3d": (
        ("kernel_size", REQUIRED),
        ("stride", None),
        ("padding", 0),
        ("ceil_mode", False),
        ("count_include_pad", True),
        ("divisor_override", None),
    ),
    "CELU": (("alpha", 1.0), ("inplace", False)),
    "ChannelShuffle": (("groups", REQUIRED),),
    "Chunk": (("chunks", REQUIRED), ("index", 0), ("dim", 1)),
    "Dropout": (("p", 0.5), ("inplace", False)),
    "ELU": (("alpha", 1.0), ("inplace", False)),
    "FeatureAlphaDropout": (("p", 0.5), ("inplace", False)),
    "Flatten": (("start_dim", 1), ("end_dim", -1)),
    "GELU": (("approximate", "none"),),
    "GroupNorm": (
        ("num_groups", REQUIRED),
        ("num_channels", REQUIRED),
        ("eps", 1e-05),
        ("affine", True),
        ("device", None),
        ("dtype", None),
        ("bias", True),
    ),
    "Hardsigmoid": (("inplace", False),),
    "Hardswish": (("inplace", False),),
    "Hardtanh": (
        ("min_val", -1.0),
        ("max_val", 1.0),
        ("inplace", False),
        ("min_value", None),
        ("max_value", None),
    ),
    "Identity": (("args", REQUIRED), ("kwargs", REQUIRED)),
    "LayerNorm": (
        ("normalized_shape", REQUIRED),
        ("eps", 1e-05),
        ("elementwise_affine", True),
        ("bias", True),
        ("device", None),
        ("dtype", None),
    ),
    "LeakyReLU": (("negative_slope", 0.01), ("inplace", False)),
    "Linear": (
        ("in_features", REQUIRED),
        ("out_features", REQUIRED),
        ("bias", True),
        ("device", None),
        ("dtype", None),
    ),
    "LogSoftmax": (("dim", None),),
    "Mish": (("inplace", False),),
    "Permute": (("dims", REQUIRED),),
    "PReLU": (("num_parameters", 1), ("init", 0.25), ("device", None), ("dtype", None)),
    "PixelShuffle": (("upscale_factor", REQUIRED),),
    "PixelUnshuffle": (("downscale_factor", REQUIRED),),
    "ReLU": (("inplace", False),),
    "ReLU6": (("inplace", False),),
    "SELU": (("inplace", False),),
    "SiLU": (("inplace", False),),
    "Sigmoid": (("args", REQUIRED), ("kwargs", REQUIRED)),
    "Softmax": (("dim", None),),
    "Softplus": (("beta", 1.0), ("threshold", 20.0)),
    "Softsign": (("args", REQUIRED), ("kwargs", REQUIRED)),
    "StochasticDepth": (("p", REQUIRED), ("mode", "row")),
    "BatchNormAct2d": (
        ("num_features", REQUIRED),
        ("eps", 1e-05),
        ("momentum", 0.1),
        ("affine", True),
        ("track_running_stats", True),
        ("act", "ReLU"),
    ),
    "Tanh": (("args", REQUIRED), ("kwargs", REQUIRED)),
    "Tanhshrink": (("args", REQUIRED), ("kwargs", REQUIRED)),
    "Unflatten": (("dim", REQUIRED), ("unflattened_size", REQUIRED)),
    "Upsample": (
        ("size", None),
        ("scale_factor", None),
        ("mode", "nearest"),
        ("align_corners", None),
        ("recompute_scale_factor", None),
    ),
    **{f"{base}{n}d": signature for base, signature in _BY_DIMENSION.items() for n in (1, 2, 3)},
}
SIGNATURES["LayerNorm2d"] = SIGNATURES["LayerNorm"]  # convcalc's subclass: nn.LayerNorm's arguments
