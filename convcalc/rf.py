"""``convcalc rf``: one unit's receptive field, drawn on its input.

The theoretical field comes from the engine (``RF(size, jump, start)`` per axis: the unit at
index u sees input positions ``start + u·jump ± (size − 1)/2``); the effective field is the
magnitude of the unit's gradient with respect to the input, on random weights or a
checkpoint's (Luo, Li, Urtasun & Zemel, "Understanding the Effective Receptive Field in Deep
Convolutional Neural Networks", NeurIPS 2016). ``check.probe_fields``, the gradient probe that
proves the engine's fields, gives the positions that can reach the unit at all; the heat map is
never nonzero outside them. 1-D inputs are drawn as a strip, 3-D ones by the slice through the
unit's centre.
"""

from __future__ import annotations

import difflib
import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from convcalc.engine import Analysis, LayerResult, analyze, fmt_shape
from convcalc.errors import ConvcalcError

Span = tuple[tuple[float, float], ...]  # (first, last) input position per spatial axis


@dataclass(frozen=True)
class Field:
    row: LayerResult
    unit: tuple[int, ...]
    span: Span  # the engine's field of the unit, not clipped to the input
    probe: tuple[tuple[int, int], ...] | None  # the gradient probe's extent (check.probe_fields)
    grad: np.ndarray  # |∂unit/∂input| summed over input channels, the input's spatial shape
    image: np.ndarray  # the input, averaged over channels, the same shape
    inside: float  # share of the gradient's mass inside the (clipped) theoretical field
    about: str  # what the weights and the input were

    @property
    def clipped(self) -> tuple[tuple[int, int], ...]:
        return tuple(
            (max(0, math.ceil(a)), min(n - 1, math.floor(b)))
            for (a, b), n in zip(self.span, self.grad.shape, strict=True)
        )


def find_layer(analysis: Analysis, name: str) -> LayerResult:
    for row in analysis.rows:
        if row.name == name:
            if not row.output_shape or len(row.output_shape) < 2:
                raise ConvcalcError(
                    f"--layer {name}: its output {fmt_shape(row.output_shape)} is flat, so each unit sees "
                    "the whole input; fix: pick a layer with feature maps (a conv or pool)"
                )
            if row.receptive_field is None or row.layout is not None:
                blind = row.receptive_field is None
                what = "a Parameter (it sees no input position)" if blind else "permuted (channels not first)"
                raise ConvcalcError(f"--layer {name}: its output is {what}; fix: pick a channels-first layer "
                                    "that reads the input (e.g. the one after the Permute back)")  # fmt: skip
            return row
    names = [row.name for row in analysis.rows]
    close = difflib.get_close_matches(name, names, n=3)
    hint = f"did you mean {', '.join(close)}?" if close else f"layers: {', '.join(names[:8])}, ..."
    raise ConvcalcError(f"--layer {name}: no such layer in {analysis.name}; {hint}")


def parse_unit(text: str | None, row: LayerResult) -> tuple[int, ...]:
    """``ROW,COL`` (``I`` in 1-D, ``D,ROW,COL`` in 3-D); default: the output's centre unit."""
    sizes = row.output_shape[1:]
    if text is None:
        return tuple(s // 2 for s in sizes)
    example = ",".join(str(s // 2) for s in sizes)
    parts = text.replace(" ", "").split(",")
    # ASCII digits only: int() would also take "1_0" and full-width "２"
    unit = tuple(int(part) for part in parts) if all(p.isascii() and p.isdigit() for p in parts) else ()
    if len(unit) != len(sizes):
        raise ConvcalcError(f"--unit {text}: give {len(sizes)} integers, e.g. --unit {example}")
    if any(not 0 <= u < s for u, s in zip(unit, sizes, strict=True)):
        ranges = " and ".join(f"0..{s - 1}" for s in sizes)
        raise ConvcalcError(
            f"--unit {text}: outside {row.name}'s {'×'.join(map(str, sizes))} output; "
            f"fix: give indices in {ranges}"
        )
    return unit


def theoretical(row: LayerResult, unit: tuple[int, ...]) -> Span:
    """The input positions the unit sees, per axis: its centre ``start + u·jump``, ± (size − 1)/2."""
    return tuple(rf.span(u) for rf, u in zip(row.receptive_field, unit, strict=True))


def input_image(
    shape: tuple[int, ...],
    image: str | None = None,
    dataset: str | None = None,
    index: int = 0,
    data_dir: str | None = None,
    download: bool = True,
) -> np.ndarray | None:
    """The input to draw on, ``(C, *spatial)`` in 0..1: an image file, a test image of a data
    set, or None (noise); it must have the spec's input size."""
    if image is not None:
        try:
            from PIL import Image
        except ImportError:
            raise ConvcalcError("--image needs Pillow; fix: pip install 'convcalc[images]'") from None
        try:
            with Image.open(image) as img:
                pixels = np.asarray(img.convert("L" if shape[0] == 1 else "RGB"), dtype=np.float32) / 255
        except OSError as error:
            raise ConvcalcError(
                f"--image {image}: cannot read it ({error}); fix: give a PNG or JPEG file"
            ) from None
        array = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
        where = f"--image {image}"
    elif dataset is not None:
        from convcalc import data

        loaded = data.load(dataset, data_dir, download=download)
        if not 0 <= index < len(loaded.test_images):
            raise ConvcalcError(
                f"--index {index}: {dataset} has {len(loaded.test_images)} test images; "
                f"fix: give 0..{len(loaded.test_images) - 1}"
            )
        picked = loaded.test_images[index].float()
        array = (picked / 255 if loaded.test_images.dtype == torch.uint8 else picked).numpy()
        array = array[None] if array.ndim == len(shape) - 1 else array
        where = f"{dataset} test image {index}"
    else:
        return None
    if tuple(array.shape) != shape:
        raise ConvcalcError(
            f"{where} is {fmt_shape(tuple(array.shape))}, the spec's input is {fmt_shape(shape)}; "
            "fix: resize it, or give the spec --input of its size"
        )
    return array


class _Reached(Exception):
    """Raised by the hook once the layer has run: the layers after it are not computed."""

    def __init__(self, output: torch.Tensor):
        self.output = output


def gradient(model: torch.nn.Module, row: LayerResult, unit: tuple[int, ...], x: torch.Tensor) -> np.ndarray:
    """|∂(the unit, summed over channels)/∂x| summed over input channels: ``x``'s spatial shape."""

    def stop(module: torch.nn.Module, inputs: Any, output: torch.Tensor) -> None:
        raise _Reached(output)

    hook = model.get_submodule(row.name).register_forward_hook(stop)
    x = x.detach().clone().requires_grad_(True)
    try:
        model(x)
        raise AssertionError(f"{row.name} never ran")  # the engine's rows are the model's modules
    except _Reached as reached:
        out = reached.output
    finally:
        hook.remove()
    (grad,) = torch.autograd.grad(out[(0, slice(None), *unit)].sum(), x, allow_unused=True)
    if grad is None:
        return np.zeros(tuple(x.shape[2:]))
    return grad[0].abs().sum(dim=0).double().numpy()


def receptive_field(
    network: Any,
    layer: str,
    unit_text: str | None,
    image: np.ndarray | None = None,
    checkpoint: tuple[str, dict] | None = None,
    seed: int = 0,
) -> Field:
    """The unit's fields. ``image``: the input ``(C, *spatial)`` in 0..1 (None: Gaussian noise);
    ``checkpoint``: (path, ``train.load_checkpoint``'s dict) for trained weights."""
    from convcalc.build import build_model
    from convcalc.check import probe_fields
    from convcalc.draw import refuse_errors

    analysis = analyze(network)
    refuse_errors(analysis)
    row = find_layer(analysis, layer)
    unit = parse_unit(unit_text, row)
    shape = tuple(network.input)
    generator = torch.Generator().manual_seed(seed)
    if checkpoint is not None:
        from convcalc.train import model_from_checkpoint

        path, ckpt = checkpoint
        inside, model = model_from_checkpoint(ckpt, path)
        if tuple(inside.input) != shape:
            raise ConvcalcError(
                f"{path}: its spec takes {fmt_shape(tuple(inside.input))} input, this one "
                f"{fmt_shape(shape)}; fix: give the spec it was trained from"
            )
        weights = f"weights of {path}"
    else:
        torch.manual_seed(seed)
        model = build_model(network).eval()
        weights = f"random weights (seed {seed})"
    if image is None:
        x = torch.randn(1, *shape, generator=generator)
        about = f"{weights}; input: Gaussian noise (seed {seed})"
    else:
        x = torch.from_numpy(np.asarray(image, dtype=np.float32))[None]
        if checkpoint is not None:  # the normalisation the model was trained with
            norm = checkpoint[1]["normalize"]
            x = (x - norm["mean"]) / norm["std"]
        about = weights
    grad = gradient(model, row, unit, x)
    with torch.no_grad():
        shown = x[0].mean(dim=0).double().numpy()
    (probe,) = probe_fields(network, {row.index: [unit]}).get(row.index, [None])
    field = Field(row, unit, theoretical(row, unit), probe, grad, shown, 0.0, about)
    box = tuple(slice(a, b + 1) for a, b in field.clipped)
    total = float(grad.sum())
    share = float(grad[box].sum()) / total if total > 0 else 0.0
    return Field(row, unit, field.span, probe, grad, shown, share, about)


def caption(field: Field) -> str:
    rf = field.row.receptive_field
    unit = ",".join(map(str, field.unit))
    axes = "×".join(f"{a:g}–{b:g}" for a, b in field.span)

    def per_axis(attr: str) -> str:
        values = [getattr(r, attr) for r in rf]
        return f"{values[0]:g}" if len(set(values)) == 1 else "×".join(f"{v:g}" for v in values)

    probe = "×".join(f"{a}–{b}" for a, b in field.probe) if field.probe else "—"
    row = field.row
    lines = [
        f"{row.name} ({row.type} {row.summary}), unit ({unit}) of {fmt_shape(row.output_shape)}",
        f"theoretical field (engine): RF {per_axis('size')}, jump {per_axis('jump')}, "
        f"start {per_axis('start')} → input positions {axes}; gradient probe: {probe}",
        f"effective field |∂unit/∂input|: {field.inside:.1%} of its mass inside the theoretical field; "
        + field.about,
    ]
    if len(field.unit) == 3:
        lines.append(f"3-D input: drawn is the slice at depth {_slice(field)} through the unit's centre")
    return "\n".join(lines)


def _slice(field: Field) -> int:
    a, b = field.span[0]
    return min(field.grad.shape[0] - 1, max(0, round((a + b) / 2)))


def figure(field: Field) -> Any:
    """Left: the input with the theoretical field outlined (gid ``theoretical``); right: the
    effective field as a heat map, the same outline over it."""
    from convcalc.plot import _pyplot

    plt = _pyplot()
    from matplotlib.patches import Rectangle

    grad, image, span = field.grad, field.image, field.span
    if grad.ndim == 3:  # D×H×W: the slice through the unit's centre
        depth = _slice(field)
        grad, image, span = grad[depth], image[depth], span[1:]
    if grad.ndim == 1:
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 4.6), sharex=True, layout="constrained")
        positions = np.arange(len(grad))
        top.plot(positions, image, color="0.35", lw=0.8)
        top.set(ylabel="input")
        bottom.fill_between(positions, grad, color="C3", alpha=0.7, lw=0)
        bottom.set(xlabel="input position", ylabel="|∂unit/∂input|")
        for ax in (top, bottom):
            ax.axvspan(span[0][0] - 0.5, span[0][1] + 0.5, color="C2", alpha=0.15, gid="theoretical")
    else:
        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 5.2), layout="constrained")
        left.imshow(image, cmap="gray", interpolation="nearest")
        left.set_title("input and theoretical field")
        left.set(xlabel="column", ylabel="row")
        heat = right.imshow(grad, cmap="magma", interpolation="nearest")
        right.set_title("effective field |∂unit/∂input|")
        right.set(xlabel="column")
        fig.colorbar(heat, ax=right, shrink=0.8)
        (r0, r1), (c0, c1) = span
        for ax in (left, right):
            ax.add_patch(
                Rectangle(
                    (c0 - 0.5, r0 - 0.5),
                    c1 - c0 + 1,
                    r1 - r0 + 1,
                    fill=False,
                    ec="#3fb950",
                    lw=1.6,
                    ls="--",
                    gid="theoretical",
                )
            )
            ax.plot([(c0 + c1) / 2], [(r0 + r1) / 2], "+", color="#3fb950", ms=9)
            ax.set(xlim=(-0.5, grad.shape[1] - 0.5), ylim=(grad.shape[0] - 0.5, -0.5))
    fig.suptitle(caption(field), fontsize=8.5, x=0.01, ha="left")
    return fig


def write(field: Field, path: str) -> None:
    from convcalc.files import write_atomically
    from convcalc.plot import _pyplot, check_output

    kind = check_output(path)
    fig = figure(field)
    buffer = io.BytesIO()
    fig.savefig(buffer, format=kind, dpi=130)
    _pyplot().close(fig)
    write_atomically(path, buffer.getvalue())
