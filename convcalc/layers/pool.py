"""Pooling: MaxPool/AvgPool 1d/2d/3d and the adaptive pools, per spatial axis."""

from __future__ import annotations

from typing import Any

from convcalc.layers.base import (
    EXACT_STEPS,
    Ctx,
    Family,
    FixAction,
    Out,
    adaptive_window,
    axis_names,
    dims,
    explain_rf,
    padding_only_window,
    pool_out,
    register,
    rf_adaptive,
    rf_global,
    rf_step,
    short,
    spatial,
    tup,
)
from convcalc.layers.conv import sizes_ok, solve_padding, warn_unseen


def pool(ctx: Ctx, layer: Any, nd: int) -> Out:
    fmap = spatial(ctx, nd)
    if fmap is None:
        return Out(None, None)
    k = tup(layer.kernel_size, nd)
    s = tup(layer.stride, nd) if layer.stride is not None else k
    if layer.padding == "auto":
        solved = solve_padding(ctx, layer, ctx.shape)
        if solved is None:
            return Out(None, None)
        p = solved[0]
    else:
        p = tup(layer.padding, nd)
    d = tup(layer.dilation, nd) if layer.type.startswith("MaxPool") else (1,) * nd
    names = axis_names(nd)
    for a in range(nd):
        if p[a] > k[a] // 2:
            fitted = [min(p[b], k[b] // 2) for b in range(nd)]  # the largest padding torch accepts
            take = FixAction("set", (("padding", fitted[0] if len(set(fitted)) == 1 else fitted),))
            ctx.error(
                f"padding {p[a]} on {names[a]} is more than half the kernel size {k[a]}",
                f"use padding <= {k[a] // 2}",
                take if layer.padding != "auto" else None,
            )
    size = fmap.sizes
    outs = [pool_out(size[a], k[a], s[a], p[a], d[a], layer.ceil_mode) for a in range(nd)]
    rounding, closing = ("⌈", "⌉") if layer.ceil_mode else ("⌊", "⌋")
    ctx.note(lambda: "\n".join(
        f"{names[a]} = {rounding}({size[a]} + 2·{p[a]} − {d[a]}·({k[a]}−1) − 1)/{s[a]}{closing} + 1 "
        f"= {outs[a]}"
        for a in range(nd)
    ))  # fmt: skip
    pads = [(p[a], p[a]) for a in range(nd)]
    if not sizes_ok(ctx, outs, size, pads, k, d):
        return Out(None, None)
    empty_windows = False
    for a in range(nd):
        empty = padding_only_window(size[a], k[a], s[a], p[a], d[a], outs[a])
        if empty is not None:  # only a dilated pool with padding has such windows
            empty_windows = True
            fits = [q for q in range(p[a] - 1, -1, -1)
                    if (o := pool_out(size[a], k[a], s[a], q, d[a], layer.ceil_mode)) >= 1
                    and padding_only_window(size[a], k[a], s[a], q, d[a], o) is None]  # fmt: skip
            ctx.error(
                f"window {empty} on {names[a]} holds padding only (kernel {k[a]}, dilation {d[a]}, "
                f"padding {p[a]} on {size[a]}): its maximum is -inf, and torch's backward of it "
                "corrupts memory",
                f"use padding {fits[0]} on {names[a]} (or dilation 1)" if fits else "use dilation 1",
            )
    if empty_windows:
        return Out(None, None)
    if not layer.ceil_mode:
        warn_unseen(ctx, size, k, s, pads, d, outs)
    rf = ctx.rf
    new_rf = tuple(rf_step(rf[a], k[a], s[a], p[a], d[a]) for a in range(len(rf)))
    explain_rf(ctx, rf, new_rf, k, s, d, p)
    return Out((fmap.c, *outs), new_rf)


def adaptive_pool(ctx: Ctx, layer: Any, nd: int) -> Out:
    fmap = spatial(ctx, nd)
    if fmap is None:
        return Out(None, None)
    wanted = tup(layer.output_size, nd)
    o = tuple(fmap.sizes[a] if v is None else v for a, v in enumerate(wanted))  # None: keep the size
    rf = ctx.rf
    new_rf = []
    bound = False
    for a in range(len(rf)):
        n, out = fmap.sizes[a], o[a]
        if out == 1:
            new_rf.append(rf_global(rf[a], n, ctx.n_in[a]))
        elif out == n:
            new_rf.append(rf[a])
        else:
            new_rf.append(rf_adaptive(rf[a], n, out))
            bound = bound or n % out != 0
    names = axis_names(nd)
    ctx.note(lambda: "\n".join(
        f"{names[a]} = output_size = {o[a]} "
        f"(windows of {_window_sizes(fmap.sizes[a], o[a])} from {fmap.sizes[a]})"
        for a in range(nd)
    ))  # fmt: skip
    return Out((fmap.c, *o), tuple(new_rf), regime="bound" if bound else None)


def _window_sizes(n: int, out: int) -> str:
    if out > EXACT_STEPS:
        return f"at most {-(-n // out) + 1}"
    sizes = sorted({end - start for start, end in (adaptive_window(n, out, i) for i in range(out))})
    return " or ".join(str(v) for v in sizes)


def pool_summary(layer: Any, inferred: dict) -> str:
    nd = int(layer.type[-2])
    padding = inferred.get("padding", layer.padding)
    k = tup(layer.kernel_size, nd)
    s = tup(layer.stride, nd) if layer.stride is not None else k
    text = f"{dims(k)} s{short(s)}"
    if padding != "auto" and tup(padding, nd) != (0,) * nd:
        text += f" p{short(tup(padding, nd))}"
    if layer.type.startswith("MaxPool") and tup(layer.dilation, nd) != (1,) * nd:
        text += f" d{short(tup(layer.dilation, nd))}"
    return text + (" ceil" if layer.ceil_mode else "")


def adaptive_summary(layer: Any, inferred: dict) -> str:
    nd = int(layer.type[-2])
    return "→" + dims(tuple("·" if v is None else v for v in tup(layer.output_size, nd)))


for _nd in (1, 2, 3):
    for _kind in ("Max", "Avg"):
        register(
            f"{_kind}Pool{_nd}d",
            Family(lambda ctx, layer, nd=_nd: pool(ctx, layer, nd), pool_summary, nd=_nd),
        )
        register(
            f"Adaptive{_kind}Pool{_nd}d",
            Family(
                lambda ctx, layer, nd=_nd: adaptive_pool(ctx, layer, nd),
                adaptive_summary,
                nd=_nd,
                global_rf=True,
            ),
        )
