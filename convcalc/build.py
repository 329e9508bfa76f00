"""Spec -> real PyTorch model: one ``torch.nn`` module per spec layer, named by the spec.

Every ``in_channels`` / ``in_features`` / ``num_features`` comes from the engine, so a model
that builds here has exactly the shapes ``convcalc shape`` printed. ``export_source`` writes the
same model as standalone PyTorch source (``convcalc export``).
"""

from __future__ import annotations

import inspect
import os
import re
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from convcalc import spec as S
from convcalc.engine import Analysis, analyze
from convcalc.errors import ConvcalcError


class BuildError(ConvcalcError):
    """The spec has engine errors, so no model can be built; ``analysis`` says which."""

    def __init__(self, analysis: Analysis):
        self.analysis = analysis
        super().__init__("\n".join(str(problem) for problem in analysis.errors))


def module_kwargs(layer: S._Layer, inferred: dict[str, int]) -> dict[str, Any]:
    """The constructor arguments of ``torch.nn.<layer.type>``: the spec's fields that the
    constructor takes (not ``type``, ``name`` or other spec-only fields), with what the engine
    inferred filled in."""
    accepted = inspect.signature(getattr(nn, layer.type).__init__).parameters
    kwargs = layer.model_dump(exclude={"type", "name"})
    kwargs = {key: tuple(value) if isinstance(value, list) else value  # pairs may come back as lists
              for key, value in kwargs.items() if key in accepted}  # fmt: skip
    kwargs.update(inferred)
    return kwargs


def build_model(network: S.Network, initialize: bool = True) -> nn.Sequential:
    """An ``nn.Sequential`` of the spec's layers, ``model.<name>`` for each.

    ``initialize=False`` skips PyTorch's weight initialisation (the parameters hold whatever
    memory they got): for checks that only need shapes or set the weights themselves, it makes
    large models (VGG16, 138 M parameters) cheap to build.
    """
    analysis = _valid_analysis(network)
    modules: OrderedDict[str, nn.Module] = OrderedDict()
    for row in analysis.rows:
        cls = getattr(nn, row.type)
        kwargs = module_kwargs(row.layer, row.inferred)
        if initialize:
            modules[row.name] = cls(**kwargs)
        else:
            modules[row.name] = cls(**kwargs, device="meta") if _takes_device(cls) else cls(**kwargs)
    model = nn.Sequential(modules)
    if not initialize:
        model = model.to_empty(device="cpu")
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d) and module.track_running_stats:
                module.reset_running_stats()  # buffers must hold real statistics to run
    return model


class ModuleNameError(ConvcalcError):
    """A layer name that a torch module attribute already owns (``train``, ``forward``, ...)."""


def _valid_analysis(network: S.Network) -> Analysis:
    """The engine's analysis of a network that can be built; ``ConvcalcError`` otherwise."""
    analysis = analyze(network)
    if not analysis.ok:
        raise BuildError(analysis)
    reserved = _reserved_names()
    for row in analysis.rows:
        if row.name in reserved:
            # nn.Module.add_module refuses it, and as an attribute `self.train` would still be the
            # method, not the layer: the name cannot work in a model or in exported source.
            raise ModuleNameError(
                f"layer {row.index} ({row.name}, {row.type}): the name {row.name!r} is already an "
                f"attribute of torch.nn.Module; fix: rename the layer (e.g. {row.name + '_layer'!r})"
            )
    return analysis


def _reserved_names() -> set[str]:
    return set(dir(nn.Sequential()))


def _takes_device(cls: type[nn.Module]) -> bool:
    return cls in (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.BatchNorm2d)


def dummy_input(network: S.Network, batch: int = 2) -> torch.Tensor:
    """A batch of zeros with the spec's input shape: ``(batch, C, H, W)``."""
    return torch.zeros(batch, *network.input)


# --------------------------------------------------------------------------------------
# Standalone source (``convcalc export``)

# Sizes written as the first positional arguments, as PyTorch code usually does
# (``nn.Conv2d(1, 6, kernel_size=5)``, ``nn.Linear(256, 120)``); everything else by keyword.
_POSITIONAL = {
    "Conv2d": ("in_channels", "out_channels"),
    "ConvTranspose2d": ("in_channels", "out_channels"),
    "Linear": ("in_features", "out_features"),
    "BatchNorm2d": ("num_features",),
}


def class_name(network_name: str) -> str:
    """The exported class's name: ``lenet`` -> ``Lenet``, ``dilated_context`` -> ``DilatedContext``."""
    words = [word for word in re.split(r"[^0-9A-Za-z]+", network_name) if word]
    name = "".join(word[0].upper() + word[1:] for word in words) or "Network"
    return name if name[0].isalpha() else f"Net{name}"


def export_source(network: S.Network) -> str:
    """Readable PyTorch source of the network: an ``nn.Module`` subclass that needs only torch,
    every size written out, the shape after each step as a comment; instantiable with no
    arguments and equal, module for module, to ``build_model(network)``."""
    analysis = _valid_analysis(network)
    cls = class_name(network.name)
    c, h, w = analysis.input_shape
    shape_in, shape_out = f"(N, {c}, {h}, {w})", _batch_shape(analysis.output_shape)
    init = [line for row in analysis.rows for line in _init_lines(row, analysis)]
    forward = [f"        x = self.{row.name}(x)  # {_batch_shape(row.output_shape)}" for row in analysis.rows]
    lines = [
        f'"""{network.name}: generated by convcalc from its spec; needs only PyTorch.',
        "",
        f"Input {shape_in}, output {shape_out}.",
        f"{analysis.total_params:,} parameters; {analysis.total_macs:,} multiply-accumulates per sample.",
        '"""',
        "",
        "import torch",
        "from torch import nn",
        "",
        f"INPUT_SHAPE = ({c}, {h}, {w})  # (C, H, W) of one sample",
        "",
        "",
        f"class {cls}(nn.Module):",
        f'    """{network.name}, {len(analysis.rows)} layers: {shape_in} -> {shape_out}."""',
        "",
        "    def __init__(self) -> None:",
        "        super().__init__()",
        *init,
        "",
        "    def forward(self, x: torch.Tensor) -> torch.Tensor:",
        f"        # x: {shape_in}",
        *forward,
        "        return x",
        "",
    ]
    return "\n".join(lines)


def _batch_shape(shape: tuple[int, ...] | None) -> str:
    return "(N, " + ", ".join(str(v) for v in shape or ()) + ")"


_WIDTH = 88  # ruff's and black's default line length, so the file passes a stock `ruff check`


def _init_lines(row, analysis: Analysis) -> list[str]:
    """``self.c1 = nn.Conv2d(1, 6, kernel_size=5)  # 156 params``, wrapped as ruff format would
    when it does not fit in 88 columns."""
    cls, args = _constructor(row, analysis)
    comment = f"  # {row.params:,} params" if row.params else ""
    head = f"        self.{row.name} = nn.{cls}("
    line = head + ", ".join(args) + ")" + comment
    if len(line) <= _WIDTH:
        return [line]
    inner = "            " + ", ".join(args)
    if len(inner) <= _WIDTH:
        return [head, inner, "        )" + comment]
    return [head, *(f"            {arg}," for arg in args), "        )" + comment]


def _constructor(row, analysis: Analysis) -> tuple[str, list[str]]:
    """``Conv2d``, ``["1", "6", "kernel_size=5"]``: the sizes first, then every argument that
    differs from torch's default (read from the constructor's signature)."""
    cls = getattr(nn, row.type)
    kwargs = module_kwargs(row.layer, row.inferred)
    defaults = {
        name: param.default
        for name, param in inspect.signature(cls.__init__).parameters.items()
        if param.default is not inspect.Parameter.empty
    }
    positional = _POSITIONAL.get(row.type, ())
    args = [_size_literal(row, analysis, name, kwargs[name]) for name in positional]
    order = list(inspect.signature(cls.__init__).parameters)
    for name in sorted(kwargs, key=order.index):  # torch's argument order
        value = kwargs[name]
        if name in positional or (name in defaults and _same(defaults[name], value)):
            continue
        args.append(f'{name}="{value}"' if isinstance(value, str) else f"{name}={value!r}")
    return row.type, args


def _same(default: Any, value: Any) -> bool:
    return type(default) is type(value) and default == value


def _size_literal(row, analysis: Analysis, name: str, value: int) -> str:
    """A Linear's in_features after a Flatten (pointwise layers between allowed) written as the
    product it is (``16 * 4 * 4``), the number people otherwise compute by hand."""
    if name == "in_features":
        for before in reversed(analysis.rows[: row.index]):
            if before.type == "Flatten" and before.input_shape and len(before.input_shape) > 1:
                return " * ".join(str(v) for v in before.input_shape)
            if before.input_shape != before.output_shape:
                break
    return str(value)


def write_atomically(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and ``os.replace``,
    so a failure never leaves a half-written file; errors name the path and the fix."""
    path = Path(path)
    folder = path.parent
    if path.is_dir():
        raise ConvcalcError(f"{path}: is a folder; fix: give a file name, e.g. {path / 'model.py'}")
    if not folder.is_dir():
        raise ConvcalcError(
            f"{path}: the folder {folder} does not exist; fix: create it or choose another path"
        )
    try:
        fd, temp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        raise ConvcalcError(
            f"{path}: cannot write in {folder} ({error.strerror}); fix: choose another path"
        ) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temp, path)
    except OSError as error:
        Path(temp).unlink(missing_ok=True)
        raise ConvcalcError(f"{path}: cannot write ({error.strerror}); fix: choose another path") from None
