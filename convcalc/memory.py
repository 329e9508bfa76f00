"""Training memory before any model exists: what autograd keeps for the backward pass, per
layer, and the totals a training step needs (``convcalc memory``).

Pure Python over the engine's analysis (no torch: ``convcalc memory`` on a spec starts fast).
Every rule below was found by recording, with ``torch.autograd.graph.saved_tensors_hooks``,
what each ``torch.nn`` module saves in a training forward on CPU (torch 2.13), and is checked
against torch on every shipped spec and on hypothesis-drawn graphs (``convcalc check --memory``,
tests/test_memory.py). A saved tensor is a storage: a layer's output, the network input, or a
tensor an op makes for itself (pooling indices, dropout noise, normalisation statistics);
views share their base's storage, and a tensor saved by two ops (ReLU's output, saved by the
ReLU and by the next conv) is counted once.

Shapes leave out the batch dim, as in the engine; a tensor's size is ``per_sample · batch +
fixed`` elements, so every total here is affine in the batch size.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from convcalc.engine import Analysis, LayerResult
from convcalc.errors import ConvcalcError
from convcalc.graph import NETWORK_INPUT

ITEMSIZE = {"float32": 4, "bfloat16": 2, "float16": 2, "int64": 8}
DTYPES = ("float32", "bfloat16", "float16")
OPTIMIZERS = ("sgd", "sgd-momentum", "adam", "adamw")
# Copies of the parameters each optimizer keeps after its first step: SGD's momentum_buffer,
# Adam's exp_avg and exp_avg_sq (torch.optim, default settings), in the parameters' dtype.
STATE_COPIES = {"sgd": 0, "sgd-momentum": 1, "adam": 2, "adamw": 2}
# Adam/AdamW also keep one 0-dim float32 ``step`` tensor per parameter tensor (not capturable,
# not fused: torch.optim's defaults on CPU), whatever the parameters' dtype.
STEP_BYTES = {"sgd": 0, "sgd-momentum": 0, "adam": 4, "adamw": 4}
DEFAULT_BATCH = 128  # convcalc train's default batch size (train.TrainConfig)
AMP_DTYPE = "bfloat16"  # --amp: torch.autocast("cpu", dtype=torch.bfloat16), the one verified here

# Under CPU autocast these run in bfloat16: inputs and weights are cast (new copies), and the
# copies are what backward keeps (torch's autocast "lower precision" list, as measured).
_AMP_LOWER = re.compile(r"(Conv|ConvTranspose)[123]d|Linear|PReLU")
# ... and these in float32: a bfloat16 input is cast up (a new float32 copy), the output is float32.
_AMP_FP32 = re.compile(
    r"(MaxPool|AvgPool|AdaptiveAvgPool|AdaptiveMaxPool)3d|ReflectionPad[12]d|ReplicationPad[123]d"
)

# What each type saves, found with saved_tensors_hooks (see the module docstring):
_SAVES_INPUT = re.compile(
    r"(Conv|ConvTranspose)[123]d"  # convolution_backward: input + weight
    r"|Linear|PReLU"  # addmm/mm: input + weight.t(); _prelu_kernel: input + weight
    r"|AvgPool[123]d|AdaptiveAvgPool[123]d"  # avg_pool*_backward reads the input
    r"|(Reflection|Replication)Pad[123]d"  # their backward reads the input (shape and index map)
    r"|ReLU6|Hardtanh|LeakyReLU|ELU|SELU|CELU|GELU|SiLU|Mish|Hardswish|Hardsigmoid|Softplus"  # f'(x)
)
_SAVES_OUTPUT = re.compile(r"ReLU|Tanh|Sigmoid|Softmax|LogSoftmax")  # f'(x) from the result y
_ALIASES = re.compile(r"Flatten|Unflatten|Identity|Chunk|Permute")  # views (or the input itself): no storage
_DROPOUT = re.compile(r"Dropout")  # every dropout type (Dropout2d, AlphaDropout, ...): a noise tensor
_CHANNEL_DROPOUT = ("Dropout1d", "Dropout2d", "Dropout3d", "FeatureAlphaDropout")


class Tensor(NamedTuple):  # named tuples: immutable, and cheaper to build than frozen dataclasses (TUI)
    """One storage autograd keeps: ``per_sample · batch + fixed`` elements of ``itemsize`` bytes."""

    key: tuple  # identity: ("out", row) / ("input",) / (kind, row, ...) for a tensor an op makes
    per_sample: int
    fixed: int
    itemsize: int
    what: str  # in the user's words: "network input", "output of relu1", "indices (int64)"

    def bytes(self, batch: int) -> int:
        return self.itemsize * (self.per_sample * batch + self.fixed)


class _Value(NamedTuple):
    """A tensor flowing through the forward: its storage, dtype and whether it needs a grad."""

    tensor: Tensor
    dtype: str
    requires_grad: bool


class LayerMemory(NamedTuple):
    index: int
    name: str
    type: str
    saved: tuple[Tensor, ...]  # every tensor this layer's backward reads
    counted: tuple[Tensor, ...]  # those first saved here (each storage is counted at one layer)
    grad_pair_per_sample: int  # bytes: gradients w.r.t. its output and inputs, one sample

    def bytes(self, batch: int) -> int:
        return sum(t.bytes(batch) for t in self.counted)


@dataclass(frozen=True)
class Memory:
    """Training memory of one network for one optimizer and dtype; byte totals at ``batch``."""

    analysis: Analysis
    optimizer: str
    dtype: str  # the parameters' and activations' dtype (float32 under --amp)
    amp: bool
    layers: tuple[LayerMemory, ...]
    param_bytes: int
    buffer_bytes: int
    grad_bytes: int
    optimizer_bytes: int
    inference_per_sample: int  # bytes of the live tensors at the fullest step of a no-grad forward
    transient_per_sample: int  # bytes of the largest transient (see transient_bytes), one sample
    transient_where: str  # what and where it is: "gradients at bn1", "forward at add"

    @property
    def saved(self) -> tuple[Tensor, ...]:
        return tuple(t for layer in self.layers for t in layer.counted)

    def saved_bytes(self, batch: int) -> int:
        """What autograd keeps from the forward until the backward (each storage once)."""
        return sum(t.bytes(batch) for t in self.saved)

    def transient_bytes(self, batch: int) -> int:
        """The largest transient beside the saved tensors: in the forward, the live tensors
        autograd does not keep (an Add's sum before the ReLU that keeps its own output, the
        network input when no conv keeps it); in the backward, the gradients w.r.t. one layer's
        output and its inputs, alive together. The larger of the two, at its fullest step."""
        return self.transient_per_sample * batch

    @property
    def state_bytes(self) -> int:
        """What a training step holds whatever the batch: parameters, buffers, gradients, state."""
        return self.param_bytes + self.buffer_bytes + self.grad_bytes + self.optimizer_bytes

    def training_peak(self, batch: int) -> int:
        """Estimate: state + saved activations + the largest transient (README, `convcalc memory`)."""
        return self.state_bytes + self.saved_bytes(batch) + self.transient_bytes(batch)

    def inference_peak(self, batch: int) -> int:
        """Estimate: parameters + buffers + the live tensors at the fullest step of a no-grad forward."""
        return self.param_bytes + self.buffer_bytes + self.inference_per_sample * batch

    @property
    def per_sample_peak(self) -> int:
        """Bytes the training peak grows by per sample (the peak is affine in the batch size)."""
        return self.training_peak(1) - self.training_peak(0)

    def largest_batch(self, budget: int) -> int:
        """The largest batch whose training peak fits in ``budget`` bytes; ConvcalcError when
        not even one sample fits."""
        fixed, slope = self.training_peak(0), self.per_sample_peak
        if budget < fixed:
            raise ConvcalcError(
                f"--budget {_human(budget)} is smaller than the parameters, gradients, buffers and "
                f"{self.optimizer} state ({_human(fixed)}) by {_human(fixed - budget)}; fix: a larger "
                "budget, a smaller network, or --optimizer sgd"
            )
        batch = (budget - fixed) // slope if slope else 0
        if batch < 1:
            raise ConvcalcError(
                f"--budget {_human(budget)}: one sample needs {_human(fixed + slope)}, "
                f"{_human(fixed + slope - budget)} more; fix: a larger budget or a smaller input"
            )
        # the peak is affine, so the division is exact; these guard the arithmetic all the same
        assert self.training_peak(batch) <= budget < self.training_peak(batch + 1)
        return batch


def _human(n: int) -> str:
    from convcalc.render import human_bytes

    return human_bytes(n)


# --------------------------------------------------------------------------------------
# Building it


def training_memory(analysis: Analysis, optimizer: str = "adam", dtype: str = "float32",
                    amp: bool = False) -> Memory:  # fmt: skip
    """The training memory of an analysed network (it must have no errors)."""
    if not analysis.ok:
        raise ConvcalcError("\n".join(str(problem) for problem in analysis.errors))
    if optimizer not in OPTIMIZERS:
        raise ConvcalcError(f"optimizer {optimizer!r}: use one of {', '.join(OPTIMIZERS)}")
    if dtype not in DTYPES:
        raise ConvcalcError(f"dtype {dtype!r}: use one of {', '.join(DTYPES)}")
    if amp and dtype != "float32":
        raise ConvcalcError("--amp keeps float32 parameters; fix: drop --dtype, or drop --amp")
    size = ITEMSIZE[dtype]
    # a layer the output does not depend on gets no gradient, so no optimizer state either
    live = [analysis.rows[i] for i in sorted(_live(analysis))]
    trained = sum(row.trainable_params for row in live)
    param_tensors = sum((row.weight_params > 0) + (row.bias_params > 0) for row in live)
    layers, outputs = _layers(analysis, dtype, amp)
    transient, where = _transient(analysis, layers, outputs)
    return Memory(
        analysis, optimizer, dtype, amp, layers,
        param_bytes=analysis.total_params * size,
        buffer_bytes=_buffer_bytes(analysis, size),
        grad_bytes=trained * size,  # one .grad per parameter, in its dtype
        optimizer_bytes=STATE_COPIES[optimizer] * trained * size + STEP_BYTES[optimizer] * param_tensors,
        inference_per_sample=_peak_live(analysis, outputs, frozenset())[0],
        transient_per_sample=transient,
        transient_where=where,
    )  # fmt: skip


def _live(analysis: Analysis) -> set[int]:
    """Rows the network's output depends on. The others run, but their graph is freed with
    their output at the end of the forward: nothing of theirs is kept, nothing gets a gradient."""
    out = analysis.output_index if analysis.output_index >= 0 else len(analysis.rows) - 1
    live, todo = set(), [out] if analysis.output_index != NETWORK_INPUT and analysis.rows else []
    while todo:
        i = todo.pop()
        if i != NETWORK_INPUT and i not in live:
            live.add(i)
            todo.extend(analysis.rows[i].inputs)
    return live


def _buffer_bytes(analysis: Analysis, size: int) -> int:
    """Running statistics in the model's dtype; ``num_batches_tracked`` is one int64 each."""
    total = 0
    for row in analysis.rows:
        if row.buffers:  # 2·C running mean and var + 1 count (the engine's BatchNorm buffers)
            total += (row.buffers - 1) * size + ITEMSIZE["int64"]
    return total


def _layers(analysis: Analysis, dtype: str, amp: bool) -> tuple[tuple[LayerMemory, ...], dict[int, Tensor]]:
    """Each layer's saved tensors (each storage counted at the first layer that saves it), and
    each row's output storage (-1: the network input)."""
    first = _Value(Tensor(("input",), _numel(analysis.input_shape), 0, ITEMSIZE[dtype], "network input"),
                   dtype, False)  # fmt: skip
    values: dict[int, _Value] = {NETWORK_INPUT: first}
    counted_keys: set[tuple] = set()
    layers = []
    live = _live(analysis)
    for row in analysis.rows:
        ins = [values[i] for i in row.inputs]
        out, saved = _row(row, ins, dtype, amp)
        values[row.index] = out
        if row.index not in live:  # freed with its graph at the end of the forward
            layers.append(LayerMemory(row.index, row.name, row.type, (), (), 0))
            continue
        counted = []
        for tensor in saved:
            if tensor.key not in counted_keys:
                counted_keys.add(tensor.key)
                counted.append(tensor)
        grads = out.tensor.per_sample * ITEMSIZE[out.dtype] if out.requires_grad else 0
        grads += sum(v.tensor.per_sample * ITEMSIZE[v.dtype] for v in ins if v.requires_grad)
        layers.append(LayerMemory(row.index, row.name, row.type, tuple(saved), tuple(counted), grads))
    return tuple(layers), {i: value.tensor for i, value in values.items()}


def _numel(shape: Sequence[int] | None) -> int:
    return math.prod(shape) if shape else 0


def _row(row: LayerResult, ins: list[_Value], dtype: str, amp: bool) -> tuple[_Value, list[Tensor]]:
    """The layer's output and what its backward keeps, by the rules measured on torch."""
    t, layer, i = row.type, row.layer, row.index
    records = row.trainable_params > 0 or any(v.requires_grad for v in ins)  # else no graph at all
    if t == "Parameter":  # the tensor itself: a parameter, not an activation (0 bytes here)
        return _Value(Tensor(("param", i), 0, 0, ITEMSIZE[dtype], f"parameter {row.name}"), dtype, True), []
    x = ins[0]
    n_out = _numel(row.output_shape)

    def new(kind: str, per_sample: int, fixed: int = 0, of: str | None = None, what: str = "") -> Tensor:
        return Tensor((kind, i), per_sample, fixed, ITEMSIZE[of or compute], what or kind)

    compute = x.dtype  # the dtype the op runs in
    saved: list[Tensor] = []
    kind = _kind(t)
    if _aliases(row):  # the same storage, no op recorded
        return _Value(x.tensor, x.dtype, x.requires_grad), []
    if amp and _AMP_LOWER.fullmatch(t):
        compute = AMP_DTYPE
        if x.dtype != AMP_DTYPE:  # autocast casts the input: backward keeps the copy
            x = _Value(new("cast", x.tensor.per_sample, what=f"input as {AMP_DTYPE}"), AMP_DTYPE,
                       x.requires_grad)  # fmt: skip
        if records and (not t == "Linear" or x.requires_grad):  # Linear needs W only for dL/dx
            saved.append(new("weight cast", 0, row.weight_params, what=f"weight as {AMP_DTYPE}"))
    elif amp and _AMP_FP32.fullmatch(t) and x.dtype != "float32":
        compute = "float32"
        x = _Value(new("cast", x.tensor.per_sample, of="float32", what="input as float32"), "float32",
                   x.requires_grad)  # fmt: skip
    if t in ("Add", "Mul", "Cat"):
        compute = "float32" if any(v.dtype == "float32" for v in ins) else ins[0].dtype  # type promotion
    out = _Value(Tensor(("out", i), n_out, 0, ITEMSIZE[compute], f"output of {row.name}"), compute, records)
    if not records:
        return out, []
    if t == "Mul":
        return out, _mul(row, ins, compute)
    if t.startswith("AdaptiveAvgPool") and all(v == 1 for v in row.output_shape[1:]):
        return out, []  # torch computes a 1×…×1 adaptive average as mean(): it keeps only sizes
    if kind == "input":
        saved.append(x.tensor)
    elif kind == "output":
        saved.append(out.tensor)
    elif kind == "indices":  # max_pool*_with_indices: input + argmax
        saved += [x.tensor, new("indices", n_out, of="int64", what="indices (int64)")]
    elif kind in ("BatchNorm", "BatchNormAct"):  # native_batch_norm: input + save_mean, save_invstd
        # (C each); under autocast float32 like the weight or running stats, else the input's dtype
        stats = "float32" if amp and (layer.affine or layer.track_running_stats) else compute
        saved += [x.tensor, new("stats", 0, 2 * row.output_shape[0], of=stats, what="mean, invstd")]
        # timm's BatchNormAct2d: then what its activation keeps
        act = _kind(layer.act) if kind == "BatchNormAct" and layer.act else None
        if act == "input":  # f'(x) of the normalised map, a tensor of its own
            saved.append(new("normalized", x.tensor.per_sample, what=f"normalised input of {layer.act}"))
        elif act == "output":
            saved.append(out.tensor)
    elif kind == "InstanceNorm":  # batch_norm on (1, N·C, …): per sample C each of mean,
        # invstd, and the weight and running stats repeated N times when it has them
        k = 2 + (1 if layer.affine else 0) + (2 if layer.track_running_stats else 0)
        stats = "float32" if amp and layer.affine else compute
        saved += [x.tensor, new("stats", k * row.output_shape[0], of=stats, what="mean, invstd, repeats")]
    elif t == "GroupNorm":  # native_group_norm: input + mean, rstd (N × groups)
        stats = "float32" if amp and layer.affine else compute
        saved += [x.tensor, new("stats", 2 * layer.num_groups, of=stats, what="mean, rstd")]
    elif t == "LayerNorm":  # native_layer_norm: input + mean, rstd over the leading dims
        ns = layer.normalized_shape
        rows_normed = _numel(row.output_shape) // _numel((ns,) if isinstance(ns, int) else ns)
        stats = "float32" if amp and layer.elementwise_affine else compute
        saved += [x.tensor, new("stats", 2 * rows_normed, of=stats, what="mean, rstd")]
    elif t == "LayerNorm2d":  # layer_norm of the channels-last view: input + mean, rstd per position
        stats = "float32" if amp and layer.elementwise_affine else compute
        saved += [x.tensor, new("stats", 2 * _numel(row.output_shape[1:]), of=stats, what="mean, rstd")]
    elif kind == "dropout":
        saved.append(_dropout_noise(row, new))
    elif t == "StochasticDepth":  # x * noise, noise (N, 1, …) per sample ("row") or (1, …) ("batch")
        row_mode = layer.mode == "row"
        saved.append(new("noise", int(row_mode), int(not row_mode), what=f"noise per {layer.mode}"))
    elif t == "Softsign":  # x / (1 + |x|): div keeps x and the denominator
        saved += [x.tensor, new("denominator", x.tensor.per_sample, what="1 + |x|")]
    elif t == "Tanhshrink":  # x − tanh(x): tanh keeps its result, a new tensor
        saved.append(new("tanh", x.tensor.per_sample, what="tanh(x)"))
    # everything else keeps nothing but sizes: Add, Cat, Upsample, PixelShuffle/Unshuffle,
    # ChannelShuffle, Zero/ConstantPad (their backward is a reshuffle or a slice of the gradient)
    return out, saved


@functools.cache
def _kind(t: str) -> str:
    """A type's saving rule in ``_row`` (the patterns matched once per type, not per row)."""
    if _ALIASES.fullmatch(t):
        return "alias"
    if _SAVES_INPUT.fullmatch(t):
        return "input"
    if _SAVES_OUTPUT.fullmatch(t):
        return "output"
    if t.startswith(("MaxPool", "AdaptiveMaxPool")):
        return "indices"
    if t.startswith(("BatchNorm", "InstanceNorm")):
        return t[:-2]
    if _DROPOUT.search(t):
        return "dropout"
    return t  # GroupNorm, LayerNorm, Mul, Softsign, Tanhshrink, or one that keeps nothing


def _aliases(row: LayerResult) -> bool:
    """A view of its input, or the input itself (Dropout, StochasticDepth with p = 0 return it)."""
    kind = _kind(row.type)
    return kind == "alias" or (kind in ("dropout", "StochasticDepth") and row.layer.p == 0)


def _dropout_noise(row: LayerResult, new) -> Tensor:
    """CPU dropout multiplies by a noise tensor in the input's dtype and keeps it (a CUDA fused
    dropout keeps a bool mask instead); p = 1 multiplies by a 0-dim zero."""
    t, shape = row.type, row.output_shape
    if row.layer.p == 1:
        return new("noise", 0, 1, what="zero (p=1)")
    if t not in _CHANNEL_DROPOUT:
        return new("noise", _numel(shape), what="noise")
    return new("noise", shape[0], what="noise per channel")  # one value per (sample, channel)


def _mul(row: LayerResult, ins: list[_Value], compute: str) -> list[Tensor]:
    """``out = x0 * x1 * …`` left to right (build.Mul): each product keeps each factor whose
    partner needs a gradient; the partial products for three or more inputs are new tensors."""
    saved: list[Tensor] = []
    acc = ins[0]
    for k, other in enumerate(ins[1:], start=1):
        if other.requires_grad:
            saved.append(acc.tensor)
        if acc.requires_grad:
            saved.append(other.tensor)
        if k < len(ins) - 1:
            shape = _broadcast_numel(row.input_shapes[: k + 1])
            dt = "float32" if any(v.dtype == "float32" for v in ins[: k + 1]) else compute
            partial = Tensor(("product", row.index, k), shape, 0, ITEMSIZE[dt], "partial product")
            acc = _Value(partial, dt, acc.requires_grad or other.requires_grad)
    return saved


def _broadcast_numel(shapes: Sequence[tuple[int, ...]]) -> int:
    # the inputs of a Mul have one rank (the engine checks it); each dim is the largest of theirs
    return math.prod(max(sizes) for sizes in zip(*shapes, strict=True))


def _transient(analysis: Analysis, layers: tuple[LayerMemory, ...], outputs: dict[int, Tensor]):
    """(bytes per sample, where) of the largest transient: see ``Memory.transient_bytes``."""
    saved = frozenset(t.key for layer in layers for t in layer.counted)
    forward, at = _peak_live(analysis, outputs, saved)
    pair = max(layers, key=lambda layer: layer.grad_pair_per_sample, default=None)
    if pair is not None and pair.grad_pair_per_sample >= forward:
        return pair.grad_pair_per_sample, f"gradients at {pair.name}"
    return forward, f"forward at {'input' if at < 0 else analysis.rows[at].name}"


def _peak_live(analysis: Analysis, outputs: dict[int, Tensor], leave_out: frozenset) -> tuple[int, int]:
    """(bytes per sample, row) at the fullest step of a forward that frees each tensor after
    its last reader (as ``nn.Sequential`` and build.GraphModule do; one nobody reads stays until
    the forward returns, as in GraphModule); the network input is the caller's and stays.
    ``outputs``: each row's output storage (a view's is its base's), -1 the input's; storages in
    ``leave_out`` (those autograd keeps) are not counted."""
    rows = analysis.rows
    end = len(rows)
    last = {row.index: end for row in rows}  # never read: kept to the end
    for row in rows:
        for ref in row.inputs:
            last[ref] = row.index  # rows are in topological order: the last assignment is the last read
    out_ref = analysis.output_index if analysis.output_index >= 0 else end - 1
    last[out_ref] = last[NETWORK_INPUT] = end  # the output is returned; the input is the caller's
    frees: dict[int, list[int]] = {}
    for ref, step in last.items():
        frees.setdefault(step, []).append(ref)

    def size(tensor: Tensor) -> int:
        return 0 if tensor.key in leave_out else tensor.bytes(1)

    holders: dict[tuple, int] = {outputs[NETWORK_INPUT].key: 1}  # storage -> values living in it
    total = peak = size(outputs[NETWORK_INPUT])
    at = NETWORK_INPUT
    for row in rows:
        tensor = outputs[row.index]
        if not holders.get(tensor.key):
            total += size(tensor)
        holders[tensor.key] = holders.get(tensor.key, 0) + 1
        if total > peak:
            peak, at = total, row.index
        for ref in frees.get(row.index, ()):
            key = outputs[ref].key
            holders[key] -= 1
            if not holders[key]:
                total -= size(outputs[ref])
    return peak, at


# --------------------------------------------------------------------------------------
# Budgets

_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}  # fmt: skip


def parse_bytes(text: str) -> int:
    """``8GiB`` -> 8589934592, ``500MB`` -> 500000000, ``1024`` -> 1024 (KiB/MiB/GiB are powers
    of 1024, KB/MB/GB of 1000, as IEC and SI say); ConvcalcError on anything else."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _UNITS:
        raise ConvcalcError(
            f"--budget {text!r}: not a size; fix: a number with an optional unit, e.g. 8GiB, 500MB, "
            "1048576 (units: B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)"
        )
    value = int(float(match.group(1)) * _UNITS[unit])
    if value < 1:
        raise ConvcalcError(f"--budget {text!r}: must be at least 1 byte")
    return value


def curve(memory: Memory, largest: int) -> list[tuple[int, int]]:
    """(batch, training peak) at powers of two up to twice ``largest``, and at ``largest``."""
    batches = {largest}
    b = 1
    while b <= 2 * largest:
        batches.add(b)
        b *= 2
    return [(b, memory.training_peak(b)) for b in sorted(batches)]


def budget_text(memory: Memory, budget: int) -> str:
    from convcalc.render import human_bytes as h

    largest = memory.largest_batch(budget)
    return (
        f"Budget {h(budget)}: largest batch {largest:,} (training peak {h(memory.training_peak(largest))}; "
        f"{h(memory.training_peak(0))} fixed + {h(memory.per_sample_peak)} per sample)"
    )


def write_curve_png(path: str, memory: Memory, budget: int) -> None:
    """Training peak against batch size, the budget as a line, written atomically as a PNG."""
    import io
    from pathlib import Path

    from convcalc.files import write_atomically

    target = Path(path)
    if not path.lower().endswith(".png"):
        raise ConvcalcError(f"-o {path}: the curve is written as PNG; fix: a file name ending in .png")
    if target.is_dir() or not target.parent.is_dir():
        raise ConvcalcError(f"-o {path}: not a file in an existing folder; fix: choose another path")
    try:
        import matplotlib
    except ImportError:
        raise ConvcalcError("drawing the curve needs matplotlib; fix: pip install 'convcalc[plot]'") from None
    matplotlib.use("Agg")  # files only, never a window
    from matplotlib import pyplot as plt

    largest = memory.largest_batch(budget)
    points = curve(memory, largest)
    gib = 2**30
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    ax.plot([b for b, _ in points], [p / gib for _, p in points], marker="o", label="training peak")
    ax.axhline(budget / gib, color="red", linestyle="--", label=f"budget ({_human(budget)})")
    ax.axvline(largest, color="grey", linestyle=":", label=f"largest batch {largest:,}")
    ax.set_xlabel("batch size")
    ax.set_ylabel("GiB")
    ax.set_title(f"{memory.analysis.name}: {memory.optimizer}, {_dtype_text(memory)}")
    ax.legend()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    write_atomically(target, buffer.getvalue(), "curve.png")


# --------------------------------------------------------------------------------------
# Output


def to_json(memory: Memory, batch: int, budget: int | None = None) -> dict[str, Any]:
    """``convcalc memory --json``: bytes per layer and for the network, at ``batch``."""
    data: dict[str, Any] = {
        "name": memory.analysis.name,
        "input_shape": list(memory.analysis.input_shape),
        "batch_size": batch,
        "optimizer": memory.optimizer,
        "dtype": memory.dtype,
        "amp": memory.amp,
        "layers": [
            {
                "index": layer.index,
                "name": layer.name,
                "type": layer.type,
                "saved_bytes": layer.bytes(batch),
                "saved": [{"what": t.what, "bytes": t.bytes(batch)} for t in layer.counted],
                "reads_saved_elsewhere": [t.what for t in layer.saved if t not in layer.counted],
            }  # fmt: skip
            for layer in memory.layers
        ],
        "param_bytes": memory.param_bytes,
        "buffer_bytes": memory.buffer_bytes,
        "grad_bytes": memory.grad_bytes,
        "optimizer_bytes": memory.optimizer_bytes,
        "saved_bytes": memory.saved_bytes(batch),
        "saved_bytes_per_sample": memory.saved_bytes(1) - memory.saved_bytes(0),
        "saved_bytes_fixed": memory.saved_bytes(0),
        "transient_bytes": memory.transient_bytes(batch),
        "transient": memory.transient_where,
        "training_peak_bytes": memory.training_peak(batch),
        "inference_peak_bytes": memory.inference_peak(batch),
    }
    if budget is not None:
        largest = memory.largest_batch(budget)
        data["budget_bytes"] = budget
        data["largest_batch_size"] = largest
        data["curve"] = [{"batch_size": b, "training_peak_bytes": p} for b, p in curve(memory, largest)]
    return data


def table(memory: Memory, batch: int):
    """A rich table: per layer, the bytes first saved there and what they are."""
    from rich.table import Table
    from rich.text import Text

    from convcalc.render import human_bytes

    title = f"{memory.analysis.name}: saved for backward at batch {batch}, {_dtype_text(memory)}"
    grid = Table(title=Text(title), title_justify="left")
    for header in ("#", "name", "type", "saved", "what"):
        grid.add_column(header, justify="right" if header in ("#", "saved") else "left", no_wrap=True)
    for layer in memory.layers:
        parts = [t.what for t in layer.counted]
        parts += [f"{t.what} (counted above)" for t in layer.saved if t not in layer.counted]
        saved = human_bytes(layer.bytes(batch)) if layer.counted else "—"
        grid.add_row(str(layer.index), layer.name, layer.type, saved, ", ".join(parts))
    return grid


def _dtype_text(memory: Memory) -> str:
    return f"autocast {AMP_DTYPE} (float32 parameters)" if memory.amp else memory.dtype


def totals_text(memory: Memory, batch: int) -> str:
    from convcalc.render import human_bytes as h

    per, fixed = memory.saved_bytes(1) - memory.saved_bytes(0), memory.saved_bytes(0)
    lines = [
        f"Parameters:         {h(memory.param_bytes)}   buffers {h(memory.buffer_bytes)}",
        f"Gradients:          {h(memory.grad_bytes)}",
        f"Optimizer state:    {h(memory.optimizer_bytes)} ({memory.optimizer})",
        f"Saved activations:  {h(memory.saved_bytes(batch))} ({h(per)} per sample"
        + (f" + {h(fixed)} fixed" if fixed else "") + ")",
        f"Largest transient:  {h(memory.transient_bytes(batch))}"
        + (f" ({memory.transient_where})" if memory.transient_per_sample else ""),
        f"Training peak:      {h(memory.training_peak(batch))} at batch {batch} (estimate)",
        f"Inference peak:     {h(memory.inference_peak(batch))} at batch {batch} (estimate, no grad)",
    ]  # fmt: skip
    if memory.amp:
        lines.append("Under --amp the saved activations are verified on CPU autocast; CUDA autocast "
                     "casts some ops differently (not verified here).")  # fmt: skip
    if any(_kind(layer.type) == "dropout" for layer in memory.layers):
        lines.append("Dropout is counted as on CPU (a noise tensor in the activations' dtype); on CUDA "
                     "it keeps a 1-byte mask instead (not verified here).")  # fmt: skip
    return "\n".join(lines)
