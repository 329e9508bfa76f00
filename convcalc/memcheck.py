"""Training memory measured on the real model (``convcalc check --memory``): what autograd
saves, recorded with ``torch.autograd.graph.saved_tensors_hooks``, and the optimizer's state
after one real step, compared with ``convcalc.memory`` at two batch sizes (so both the
per-sample and the fixed part are checked).
"""

from __future__ import annotations

import weakref

import torch

from convcalc import spec as S
from convcalc.build import build_model, dummy_input
from convcalc.check import Comparison, ensure_memory
from convcalc.engine import Analysis, analyze
from convcalc.memory import AMP_DTYPE, OPTIMIZERS, training_memory

BATCHES = (2, 3)  # two sizes (affine: per sample and fixed); 2, not 1: BatchNorm needs > 1 value


def _dtype(name: str) -> torch.dtype:
    return getattr(torch, name)


class _Packed:
    """A saved tensor as autograd holds it (the network input, held by us too, would otherwise
    look alive whether or not a graph still keeps it)."""

    __slots__ = ("tensor", "__weakref__")

    def __init__(self, tensor: torch.Tensor):
        self.tensor = tensor


def measure_saved(network: S.Network, batch: int, dtype: str = "float32", amp: bool = False) -> int:
    """Bytes autograd still holds for backward after one training forward at ``batch`` (no
    backward is run: the hooks keep detached tensors, for measuring only): every
    tensor it packed that is alive once the forward returns (a branch the output does not read
    is freed with its graph), deduplicated by storage (a view counts as its base, once, by the
    storage's nbytes); storages of parameters and buffers are not activations and are left out."""
    model = build_model(network, initialize=False).to(_dtype(dtype)).train()
    x = dummy_input(network, batch).to(_dtype(dtype))
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    buffers = {b.untyped_storage().data_ptr() for b in model.buffers()}
    packed: list[weakref.ref] = []  # weak: what the graph drops dies, what it keeps stays

    def pack(tensor: torch.Tensor) -> _Packed:
        # a box of our own that only the graph holds; detached (the same storage), because a
        # saved output holding its own grad_fn would be a cycle that autograd, unhooked, avoids
        holder = _Packed(tensor.detach())
        packed.append(weakref.ref(holder))
        return holder

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda holder: holder.tensor):
        if amp:
            with torch.autocast("cpu", dtype=_dtype(AMP_DTYPE)):
                y = model(x)
        else:
            y = model(x)
    alive = [holder.tensor for holder in (ref() for ref in packed) if holder is not None]
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in alive}
    del y  # held until here: its graph is what keeps the saved tensors
    return sum(n for ptr, n in storages.items() if ptr not in params and ptr not in buffers)


def _optimizer(name: str, parameters) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(parameters, lr=0.01)
    if name == "sgd-momentum":
        return torch.optim.SGD(parameters, lr=0.01, momentum=0.9, nesterov=True)  # as convcalc train
    return (torch.optim.Adam if name == "adam" else torch.optim.AdamW)(parameters)


def measure_state(network: S.Network, optimizers: tuple[str, ...] = OPTIMIZERS,
                  dtype: str = "float32") -> tuple[int, int, dict[str, int]]:  # fmt: skip
    """Bytes of the model's buffers, of every ``.grad`` after a real backward, and of each
    optimizer's ``state`` after one real step on those gradients (every tensor in it, Adam's
    ``step`` included)."""
    model = build_model(network, initialize=False).to(_dtype(dtype)).train()
    buffers = sum(b.untyped_storage().nbytes() for b in model.buffers())
    y = model(dummy_input(network, BATCHES[0]).to(_dtype(dtype)))
    if y.requires_grad:
        y.float().sum().backward()
    grads = sum(p.grad.untyped_storage().nbytes() for p in model.parameters() if p.grad is not None)
    states = {name: 0 for name in optimizers}  # no parameters: no optimizer to build
    for name in optimizers if grads else ():
        opt = _optimizer(name, model.parameters())
        opt.step()
        storages = {
            value.untyped_storage().data_ptr(): value.untyped_storage().nbytes()
            for state in opt.state.values()
            for value in state.values()
            if torch.is_tensor(value)
        }
        states[name] = sum(storages.values())
    return buffers, grads, states


def memory_comparisons(network: S.Network, dtype: str = "float32", amp: bool = False,
                       optimizers: tuple[str, ...] = OPTIMIZERS) -> list[Comparison]:  # fmt: skip
    """Engine vs torch: saved activations at two batch sizes, gradients, and each optimizer's state."""
    analysis = analyze(network)
    memory = training_memory(analysis, "sgd", dtype, amp)
    _ensure(analysis, memory.training_peak(BATCHES[-1]) + 3 * memory.param_bytes)
    out = []
    for batch in BATCHES:
        mine, theirs = memory.saved_bytes(batch), measure_saved(network, batch, dtype, amp)
        out.append(Comparison(f"saved activation bytes, batch {batch}", mine, theirs, mine == theirs))
    buffers, grads, states = measure_state(network, optimizers, dtype)
    out.append(Comparison("buffer bytes", memory.buffer_bytes, buffers, memory.buffer_bytes == buffers))
    out.append(Comparison("gradient bytes", memory.grad_bytes, grads, memory.grad_bytes == grads))
    for name in optimizers:
        mine = training_memory(analysis, name, dtype).optimizer_bytes
        out.append(Comparison(f"optimizer state bytes ({name})", mine, states[name], mine == states[name]))
    return out


def _ensure(analysis: Analysis, needed: int) -> None:
    ensure_memory(needed, f"memory check of {analysis.name}")
