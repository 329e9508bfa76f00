"""Padding: ZeroPad, ConstantPad, ReflectionPad, ReplicationPad in 1d/2d/3d.

``padding`` is torch's: one number for every side, or ``2·N`` numbers starting with the *last*
axis (``[left, right, top, bottom, front, back]``). Zero and constant padding may be negative,
which crops (U-Net's skip connections).
"""

from __future__ import annotations

from typing import Any

from convcalc.layers.base import Ctx, Family, Out, axis_names, dims, register, rf_step, spatial


def sides(layer: Any, nd: int) -> list[tuple[int, int]] | None:
    """(before, after) per spatial axis, first axis first; None when the count is wrong."""
    p = layer.padding
    if isinstance(p, int):
        return [(p, p)] * nd
    if len(p) != 2 * nd:
        return None
    per_last_first = [(p[2 * i], p[2 * i + 1]) for i in range(nd)]
    return per_last_first[::-1]


def pad(ctx: Ctx, layer: Any, nd: int) -> Out:
    fmap = spatial(ctx, nd)
    if fmap is None:
        return Out(None, None)
    per_axis = sides(layer, nd)
    if per_axis is None:
        order = ", ".join(["left, right", "top, bottom", "front, back"][:nd])
        ctx.error(
            f"padding has {len(layer.padding)} values; {layer.type} takes one or {2 * nd} ({order})",
            f"give one number, or {2 * nd} numbers",
        )
        return Out(None, None)
    reflect = layer.type.startswith("Reflection")
    names = axis_names(nd)
    outs = []
    for a, (before, after) in enumerate(per_axis):
        n = fmap.sizes[a]
        if reflect and max(before, after) >= n:
            ctx.error(
                f"reflection padding {max(before, after)} on {names[a]} must be smaller than the input "
                f"size {n}",
                f"use padding < {n}, or ReplicationPad{nd}d",
            )
        outs.append(n + before + after)
    if ctx.errors:
        return Out(None, None)
    if min(outs) < 1:
        ctx.error(f"output size {dims(outs)} is below 1: the negative padding crops more than the input has",
                  "crop less")  # fmt: skip
        return Out(None, None)
    ctx.note(lambda: "\n".join(
        f"{names[a]} = {fmap.sizes[a]} + {per_axis[a][0]} + {per_axis[a][1]} = {outs[a]}" for a in range(nd)
    ))  # fmt: skip
    rf = ctx.rf
    new_rf = tuple(rf_step(rf[a], 1, 1, per_axis[a][0]) for a in range(len(rf)))
    # reflected and replicated borders repeat inner pixels: the border units' fields are elsewhere
    regime = "bound" if not layer.type.startswith(("Zero", "Constant")) else None
    return Out((fmap.c, *outs), new_rf, regime=regime)


def summary(layer: Any, inferred: dict) -> str:
    p = layer.padding
    text = f"p{p}" if isinstance(p, int) else "p" + ",".join(map(str, p))
    if layer.type.startswith("Constant") and layer.value != 0:
        text += f" ={layer.value:g}"
    return text


for _nd in (1, 2, 3):
    for _kind in ("Zero", "Constant", "Reflection", "Replication"):
        register(f"{_kind}Pad{_nd}d", Family(lambda ctx, layer, nd=_nd: pad(ctx, layer, nd), summary, nd=_nd))
