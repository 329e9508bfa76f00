"""The model `convcalc train` runs its training steps on: the built model with its layers
rewritten where the result is provably the same, and faster.

One rewrite, ``ReLU → MaxPool`` into ``MaxPool → ReLU``: the maximum commutes with a
non-decreasing function (``max(relu(a), relu(b)) == relu(max(a, b))``), so the outputs are
bitwise the same and the ReLU runs on the pooled map (4× fewer elements after a 2×2 pool). The
gradients are the same too, ties included: where a window's maximum is positive, the ReLU
leaves the order of its elements alone, so ``max_pool``'s first maximum is the same element
before and after; where it is not, both orders send that window no gradient. That holds for
any kernel, stride, dilation and ``ceil_mode``, and padding (-inf) with dilation 1, as long as
each window holds an input element; a padded and dilated pool, whose window may hold padding
alone (-inf, which a ReLU after it would make 0), is left alone. The ReLU after the pool runs in
place: the pool's backward keeps its input and indices, not its output, and nothing else reads
that output.

The rewrite applies where the ReLU's output is read by the pool alone: inside a chain
(``nn.Sequential``), or in a ``GraphModule`` where no other step and not the output reads it.
The training model is new containers around the same layer modules, so it shares every
parameter and buffer with the built model: its ``state_dict`` is the built model's, checkpoints
and ``evaluate`` are unchanged, and the exported source is untouched. On LeNet (1 thread, batch
128) a training step takes 4-10% less CPU time (bench/README.md, "Fraction of the machine's peak").
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from convcalc.build import GraphModule

_MAX_POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)


def training_model(model: nn.Module) -> nn.Module:
    """``model`` with every ``ReLU → MaxPool`` whose ReLU only the pool reads turned into
    ``MaxPool → ReLU(inplace=True)``; the layer modules are ``model``'s own (shared, not copied),
    ``model`` itself is left as it was. Returns ``model`` when nothing applies."""
    if isinstance(model, nn.Sequential):
        rewritten = _sequential(model)
    elif isinstance(model, GraphModule):
        rewritten = _graph(model)
    else:
        return model
    rewritten.train(model.training)
    return rewritten


def _swaps(relu: nn.Module, pool: nn.Module) -> bool:
    # a pool returning indices gives a tuple that a ReLU cannot take
    if type(relu) is not nn.ReLU or not isinstance(pool, _MAX_POOLS) or pool.return_indices:
        return False
    return _every_window_reads_the_input(pool)


def _every_window_reads_the_input(pool: nn.Module) -> bool:
    """Whether each window holds an input element, not padding alone. Without padding a window
    starts inside the input; with dilation 1 a window starting in the padding (at most
    kernel_size/2 wide) reaches the input. A padded, dilated window may fall in the padding
    only (kernel 2, dilation 2, padding 1 on a 1-wide input reads positions -1 and 1): its
    output is -inf, and ``relu`` after the pool would make it 0."""
    padded = any(p > 0 for p in _per_axis(pool.padding))
    return not padded or all(d == 1 for d in _per_axis(pool.dilation))


def _per_axis(value: int | tuple[int, ...]) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def _sequential(model: nn.Sequential) -> nn.Module:
    children = [(name, training_model(child)) for name, child in model.named_children()]
    out, i, changed = [], 0, False
    while i < len(children):
        if i + 1 < len(children) and _swaps(children[i][1], children[i + 1][1]):
            # in a chain the ReLU's output goes to the next layer only: the pool
            out += [children[i + 1], (children[i][0], nn.ReLU(inplace=True))]
            i, changed = i + 2, True
        else:
            out.append(children[i])
            i += 1
    if not changed and all(new is old for (_, new), old in zip(children, model.children(), strict=True)):
        return model
    return nn.Sequential(OrderedDict(out))  # the spec's names: the same state_dict keys


def _graph(model: GraphModule) -> nn.Module:
    held = [(name, model._modules.get(name), refs) for name, refs in model._steps]
    # a step without a module is a spec Parameter (build.GraphModule holds the tensor itself)
    steps = [(name, training_model(m) if m is not None else model._parameters[name], refs)
             for name, m, refs in held]  # fmt: skip
    readers: dict[int, list[int]] = {}  # step -> the steps reading its output
    for k, (_, _, refs) in enumerate(steps):
        for ref in refs:
            readers.setdefault(ref, []).append(k)
    changed = False
    for j, (relu_name, relu, relu_refs) in enumerate(steps):
        if j == model._output or len(readers.get(j, [])) != 1:
            continue  # the ReLU's output is read twice, or is the block's output
        k = readers[j][0]
        if not _swaps(relu, steps[k][1]) or steps[k][2] != (j,):
            continue
        # step j now pools what the ReLU read; step k applies the ReLU to it, so every reader
        # of k (the pool's output before) gets relu(pool(x)) == pool(relu(x))
        pool_name, pool, _ = steps[k]
        steps[j] = (pool_name, pool, relu_refs)
        steps[k] = (relu_name, nn.ReLU(inplace=True), (j,))
        changed = True
    if not changed and all(
        new is m for (_, new, _), (_, m, _) in zip(steps, held, strict=True) if m is not None
    ):
        return model
    return type(model)(steps, model._output, model._views)  # the block's own class (``Bottleneck``) stays
