"""Inverse convolution arithmetic: which layer settings give a wanted output size, and which
short conv/pool stacks reach a wanted receptive field (``convcalc solve``, ``padding: auto``,
the TUI's "make this output 14×14").

Pure Python over the engine's per-axis functions; it never imports torch. The solver inverts
the output-size formulas to find the paddings for each kernel and stride, then keeps a
candidate only if the engine's own forward function (``conv_out``, ``pool_out``,
``conv_transpose_out``) gives the wanted size, so it can miss a setting (the tests compare it
with brute force over the same bounds) but never list a wrong one.

Search bounds, per axis (a value the caller fixes replaces its range):

- kernel_size 1 … max(11, r) and stride 1 … max(4, r), r = ⌈larger size / smaller size⌉
  (11 is AlexNet's kernel; r lets one layer patchify, e.g. 224 → 14 with kernel = stride = 16);
- dilation 1;
- padding 0 … ⌊k̂/2⌋ for Conv2d and ConvTranspose2d (k̂ = d·(k−1)+1: every window's centre
  stays on the input, 'same' is the most), 0 … ⌊k/2⌋ for pools (torch's limit); Conv2d also
  ``padding='same'`` where only an asymmetric padding keeps the size (even k̂, stride 1);
- output_padding 0 … max(s, d)−1 (torch's limit);
- ceil_mode=True only where it gives a different size than ceil_mode=False;
- the (dilated) kernel fits inside the padded input.

A setting is *exact* when no input pixel is left out: none at the end (``engine.unseen``, the
rows the floor division drops) and none between windows (stride larger than the kernel). For a
ConvTranspose2d, exact means every output pixel receives some input (the same test on the
convolution it is the transpose of); the others hold only the bias.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field
from typing import Any

from convcalc import spec as S
from convcalc.engine import analyze
from convcalc.errors import ConvcalcError
from convcalc.layers.base import (
    RF,
    conv_out,
    conv_transpose_out,
    fmt_shape,
    padding_only_window,
    pool_out,
    rf_step,
    same_padding,
    unseen,
)

KINDS = ("Conv2d", "ConvTranspose2d", "MaxPool2d", "AvgPool2d")
POOLS = ("MaxPool2d", "AvgPool2d")
MIN_KERNEL_BOUND, MIN_STRIDE_BOUND = 11, 4
# Most (kernel_size, stride) pairs searched at once (64 × 64: 64 → 1 lists 23k settings in ~7 s),
# and most paddings or output_paddings tried for one of them: past these a search would take
# minutes or hours (224 → 1, a stride of 10⁹ typed into the TUI) and list more than anyone reads.
MAX_PAIRS, MAX_STEPS = 64 * 64, 100_000
SIZE_ROWS = 40  # settings a `solve --out` table shows unless --limit says otherwise


class SolveError(ConvcalcError):
    """No setting or stack does what was asked; ``message`` says why, ``fix`` what to change."""

    def __init__(self, message: str, fix: str | None = None):
        self.message, self.fix = message, fix
        super().__init__(f"{message}; fix: {fix}" if fix else message)


# --------------------------------------------------------------------------------------
# One axis


@dataclass(frozen=True)
class AxisSetting:
    """One axis of a layer: what torch takes for that axis, and how many pixels it leaves out."""

    kernel: int
    stride: int
    padding: int | str  # "same": Conv2d's padding='same' (the odd pixel on the right/bottom)
    dilation: int = 1
    output_padding: int = 0
    ceil_mode: bool = False
    lost: int = 0  # input pixels no window covers; ConvTranspose2d: output pixels no input reaches

    @property
    def exact(self) -> bool:
        return self.lost == 0

    @property
    def k_eff(self) -> int:
        return self.dilation * (self.kernel - 1) + 1

    def same_compatible(self) -> bool:
        """True if torch's padding='same' gives this axis (stride 1, total padding k̂−1)."""
        return self.padding == "same" or (self.stride == 1 and 2 * self.padding == self.k_eff - 1)

    def key(self) -> tuple:
        pad = self.k_eff if self.padding == "same" else self.padding
        return (
            not self.exact,
            self.kernel,
            self.stride,
            self.dilation,
            pad,
            self.output_padding,
            self.ceil_mode,
        )


def search_ranges(
    n: int,
    out: int,
    kernel: int | None = None,
    stride: int | None = None,
    dilation: int | None = None,
) -> tuple[range | tuple[int, ...], ...]:
    """(kernels, strides, dilations) searched for ``n → out``; a given value is the only one."""
    r = -(-max(n, out) // min(n, out))
    if max(n, out, kernel or 1, stride or 1, dilation or 1) > MAX_SIZE:  # torch's int32 sizes
        raise SolveError(
            f"{n} → {out} with kernel_size {kernel}, stride {stride}, dilation {dilation}: a value above "
            f"{MAX_SIZE:,}",
            f"give values up to {MAX_SIZE:,}",
        )
    kernels = (kernel,) if kernel else range(1, max(MIN_KERNEL_BOUND, r) + 1)
    strides = (stride,) if stride else range(1, max(MIN_STRIDE_BOUND, r) + 1)
    if len(kernels) * len(strides) > MAX_PAIRS:
        fix = "give the kernel_size or the stride (--kernel, --stride)"
        if out == 1:
            fix += ", or for a global pool use AdaptiveAvgPool2d(output_size=1) (or AdaptiveMaxPool2d)"
        raise SolveError(
            f"{n} → {out} would search every kernel_size from 1 to {len(kernels)} with every stride "
            f"from 1 to {len(strides)}: {len(kernels) * len(strides):,} pairs, too many to list",
            fix,
        )
    return kernels, strides, (dilation or 1,)


def _bounded(values: range, what: str) -> range:
    """``values`` to try, or a SolveError when there are too many (huge sizes typed in)."""
    if len(values) > MAX_STEPS:
        raise SolveError(
            f"{len(values):,} values of {what} to try: the sizes given are too large to search",
            "use smaller kernel_size, stride or dilation values",
        )
    return values


def max_padding(kind: str, k: int, d: int) -> int:
    return k // 2 if kind in POOLS else (d * (k - 1) + 1) // 2


def forward(
    kind: str, n: int, k: int, s: int, p: int | str, d: int, op: int = 0, ceil_mode: bool = False
) -> int:
    """The engine's output size for one axis of one setting (pads as torch applies them)."""
    if kind == "ConvTranspose2d":
        return conv_transpose_out(n, k, s, p, d, op)
    if kind in POOLS:
        return pool_out(n, k, s, p, d, ceil_mode)
    pads = same_padding(k, d) if p == "same" else (p, p)
    return conv_out(n, k, s, *pads, d)


def solve_axis(
    kind: str,
    n: int,
    out: int,
    kernel: int | None = None,
    stride: int | None = None,
    dilation: int | None = None,
    output_padding: int | None = None,
    ceil_mode: bool | None = None,
) -> list[AxisSetting]:
    """Every setting within the bounds that maps ``n`` to ``out`` on one axis, best first.

    ``None`` means "search it"; a pool's ``ceil_mode=None`` lists ceil_mode=True only where
    it changes the size, a given ``ceil_mode`` keeps every setting with that mode.
    """
    found = []
    kernels, strides, dilations = search_ranges(n, out, kernel, stride, dilation)
    for k, s, d in itertools.product(kernels, strides, dilations):
        k_eff = d * (k - 1) + 1
        p_max = max_padding(kind, k, d)
        if kind == "ConvTranspose2d":
            # out = (n−1)·s − 2p + k̂ + op  ⇒  2p = (n−1)·s + k̂ − out + op, 0 ≤ p ≤ p_max
            base = out - (n - 1) * s - k_eff
            if output_padding is None:
                ops = _bounded(range(max(0, base), min(max(s, d), base + 2 * p_max + 1)), "output_padding")
            else:
                ops = (output_padding,)
            for op in ops:
                if op >= max(s, d):  # torch: output_padding < max(stride, dilation)
                    continue
                twice_p = (n - 1) * s + k_eff - out + op
                p = twice_p // 2
                if twice_p % 2 == 0 and 0 <= p <= p_max and forward(kind, n, k, s, p, d, op) == out:
                    found.append(_transposed_setting(n, out, k, s, p, d, op))
            continue
        modes = (False, True) if kind in POOLS else (False,)
        for ceil in modes if ceil_mode is None else (ceil_mode,):
            # floor: (out−1)·s ≤ n + 2p − k̂ ≤ out·s − 1; ceil (before ATen's last-window
            # correction, which can take one off): (out−2)·s < n + 2p − k̂ ≤ out·s
            low = (out - 2) * s + 1 if ceil else (out - 1) * s
            high = out * s if ceil else out * s - 1
            p_low = max(0, -(-(low - n + k_eff) // 2))
            for p in _bounded(range(p_low, min(p_max, (high - n + k_eff) // 2) + 1), "padding"):
                if n + 2 * p < k_eff or forward(kind, n, k, s, p, d, 0, ceil) != out:
                    continue
                if kind in POOLS and padding_only_window(n, k, s, p, d, out) is not None:
                    continue  # a window of padding only: the engine refuses it (MaxPool's −inf)
                if ceil and ceil_mode is None and forward(kind, n, k, s, p, d, 0, False) == out:
                    continue  # ceil_mode changes nothing here: the floor setting is listed
                found.append(AxisSetting(k, s, p, d, 0, ceil, _lost(n, k, s, p, p, d, out)))
        if kind == "Conv2d" and s == 1 and out == n and k_eff % 2 == 0:  # only 'same' can
            found.append(AxisSetting(k, s, "same", d, 0, False, _lost(n, k, s, *same_padding(k, d), d, out)))
    return sorted(found, key=AxisSetting.key)


def _transposed_setting(n: int, out: int, k: int, s: int, p: int, d: int, op: int) -> AxisSetting:
    # The transpose of a Conv2d(k, s, p, d) from `out` to `n`: output pixels that conv's
    # windows never cover receive no input here.
    return AxisSetting(k, s, p, d, op, False, _lost(out, k, s, p, p, d, n))


def _lost(n: int, k: int, s: int, pad_l: int, pad_r: int, d: int, out: int) -> int:
    """Input pixels of an axis that no window covers: at the end (``engine.unseen``) and
    between windows (a stride larger than the kernel, or holes of a dilated kernel)."""
    trailing = unseen(n, k, s, pad_l, pad_r, d, out)
    if d == 1 and s <= k and pad_l < k:  # windows touch and the first covers pixel 0
        return trailing
    k_eff = d * (k - 1) + 1
    # only windows that overlap the input, and of each only the taps on it, are walked
    first = max(0, -(-(pad_l - k_eff + 1) // s))
    windows = _bounded(range(first, min(out - 1, (n - 1 + pad_l) // s) + 1), "windows")
    if len(windows) * min(k, n // d + 1) > 10 * MAX_STEPS:
        raise SolveError(
            f"{len(windows):,} windows of {k} taps to check for pixels they miss: the sizes given are "
            "too large to search",
            "use smaller kernel_size, stride or dilation values",
        )
    seen: set[int] = set()
    for i in windows:
        start = i * s - pad_l
        tap = start + -(-max(0, -start) // d) * d  # the first tap at or after pixel 0
        seen.update(range(tap, min(start + k_eff, n), d))
    return n - len(seen)


def reachable(kind: str, n: int, out_hint: int, **fixed: Any) -> list[int]:
    """The output sizes one layer of ``kind`` reaches from ``n`` within the bounds for
    ``n → out_hint``, with ``fixed`` (kernel, stride, dilation, output_padding, ceil_mode):
    every one, except that of a run of sizes (output_padding) only the ends and the two
    neighbours of ``out_hint`` are listed, which keeps the nearest ones."""
    kernels, strides, dilations = search_ranges(
        n, out_hint, fixed.get("kernel"), fixed.get("stride"), fixed.get("dilation")
    )
    sizes = set()
    for k, s, d in itertools.product(kernels, strides, dilations):
        for p in _bounded(range(max_padding(kind, k, d) + 1), "padding"):
            if kind == "ConvTranspose2d":
                # output_padding 0..max(s, d)−1 adds 0..max(s, d)−1 to the size: a run of sizes,
                # of which only the ends and those next to out_hint can be the nearest
                op = fixed.get("output_padding")
                low = forward(kind, n, k, s, p, d, 0 if op is None else op)
                high = low if op is not None else low + max(s, d) - 1
                sizes.update({low, high} | {v for v in (out_hint - 1, out_hint + 1) if low <= v <= high})
            elif n + 2 * p >= d * (k - 1) + 1:
                modes = (False, True) if fixed.get("ceil_mode") is None else (fixed["ceil_mode"],)
                outs = (forward(kind, n, k, s, p, d, 0, ceil) for ceil in modes)
                # a pool with a window of padding only is refused by the engine: not reached
                sizes.update(
                    o for o in outs if kind not in POOLS or padding_only_window(n, k, s, p, d, o) is None
                )
    return sorted(size for size in sizes if size >= 1)


# --------------------------------------------------------------------------------------
# Both axes


@dataclass(frozen=True)
class Setting:
    """A whole layer: the height and width settings of one ``torch.nn`` layer."""

    type: str
    h: AxisSetting
    w: AxisSetting

    @property
    def exact(self) -> bool:
        return self.h.exact and self.w.exact

    def fields(self, complete: bool = False) -> dict[str, Any]:
        """The spec fields (= torch kwargs) of this setting, a pair only where the axes differ.
        ``complete=False`` leaves out torch's defaults; ``True`` gives every field the solver
        decides (to overwrite a layer's old values)."""
        h, w = self.h, self.w
        kernel = _pair(h.kernel, w.kernel)
        fields: dict[str, Any] = {"kernel_size": kernel}
        stride = _pair(h.stride, w.stride)
        default_stride = kernel if self.type in POOLS else 1
        fields["stride"] = stride if complete or stride != default_stride else None
        if "same" in (h.padding, w.padding):
            fields["padding"] = "same"
        else:
            fields["padding"] = _pair(h.padding, w.padding)
        if self.type != "AvgPool2d":
            fields["dilation"] = _pair(h.dilation, w.dilation)
        if self.type == "ConvTranspose2d":
            fields["output_padding"] = _pair(h.output_padding, w.output_padding)
        if self.type in POOLS:
            fields["ceil_mode"] = h.ceil_mode
        if not complete:
            defaults = {"padding": 0, "dilation": 1, "output_padding": 0, "ceil_mode": False}
            fields = {
                k: v for k, v in fields.items() if v is not None and (k not in defaults or defaults[k] != v)
            }
        return fields

    @property
    def torch(self) -> str:
        """The PyTorch line that makes this layer, e.g. ``nn.Conv2d(..., kernel_size=3, padding=1)``."""
        args = [f"{key}={value!r}" for key, value in self.fields().items()]
        if self.type in ("Conv2d", "ConvTranspose2d"):
            args.insert(0, "...")  # in_channels, out_channels: they do not change the size
        return f"nn.{self.type}({', '.join(args)})"

    @property
    def notes(self) -> list[str]:
        h, w = self.h, self.w
        lost = (
            "output {} get no input (bias only)" if self.type == "ConvTranspose2d" else "input {} never seen"
        )
        if h.lost and h.lost == w.lost:
            notes = [f"{h.lost} " + lost.format("rows and columns" if h.lost > 1 else "row and column")]
        else:
            notes = [
                f"{n} " + lost.format(unit + ("s" if n > 1 else ""))
                for n, unit in ((h.lost, "row"), (w.lost, "column"))
                if n
            ]
        if self.type == "ConvTranspose2d":
            uneven = {(a.kernel, a.stride) for a in (h, w) if a.stride > 1 and a.kernel % a.stride}
            notes += [
                f"kernel {k} not a multiple of stride {s}: checkerboard artefacts" for k, s in sorted(uneven)
            ]
        return notes

    def rank(self) -> tuple:
        """Exact first, then fewest pair arguments, then the axes' own order."""
        return (not self.exact, self.differing(), self.h.key(), self.w.key())

    def differing(self) -> int:
        """How many fields need a pair because the axes differ."""
        a, b = self.h, self.w
        return sum(
            x != y
            for x, y in zip(
                (a.kernel, a.stride, a.padding, a.dilation, a.output_padding),
                (b.kernel, b.stride, b.padding, b.dilation, b.output_padding),
                strict=True,
            )
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "fields": _json(self.fields()),
            "torch": self.torch,
            "exact": self.exact,
            "lost": [self.h.lost, self.w.lost],
            "notes": self.notes,
        }


def _pair(h: Any, w: Any) -> Any:
    return h if h == w else (h, w)


def _json(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _json(item) for key, item in value.items()}
    return list(value) if isinstance(value, tuple) else value


@dataclass(frozen=True)
class Found:
    """The best settings of a search (``limit`` of them, 0: all) and how many there are."""

    settings: list[Setting]
    total: int
    exact: int

    @property
    def more(self) -> int:
        return self.total - len(self.settings)

    def more_text(self) -> str:
        """``"1,536,362 more: narrow the search ..."``, or "" when every setting is listed."""
        if not self.more:
            return ""
        return (
            f"{self.more:,} more: narrow the search by fixing the kernel_size, stride or dilation "
            "(--kernel, --stride, --dilation), or list them all (--limit 0)"
        )


def combine(
    kind: str,
    hs: list[AxisSetting],
    ws: list[AxisSetting],
    square: bool = True,
    limit: int = 0,
    floor_twins: tuple[list[bool], list[bool]] | None = None,
) -> Found:
    """Pair the height and width answers into layers torch can build: one ceil_mode for both
    axes, 'same' only where both axes are same-compatible, and (``square``) the same kernel and
    dilation on both axes; the best ``limit`` (0: all) by ``Setting.rank`` and the counts.

    ``floor_twins`` marks, per axis, the ceil_mode=True answers that ceil_mode=False gives too;
    a pair of two such is its floor twin's duplicate and is left out.

    The pairs are counted and ranked with numpy, group by group (40 × 40 → 1 × 1 pairs
    1.5 million; made one by one as Settings they took 20 s): ``Setting.rank`` is (inexact,
    differing fields, h.key, w.key), and ``hs``/``ws`` sorted by key make the last two their
    positions, so one integer per pair orders them."""
    import numpy as np

    hs, ws = sorted(hs, key=AxisSetting.key), sorted(ws, key=AxisSetting.key)
    twins = floor_twins or ([False] * len(hs), [False] * len(ws))
    h_table, w_table = _axis_table(np, hs, twins[0]), _axis_table(np, ws, twins[1])
    span = len(hs) * len(ws)  # rank = (inexact·6 + differing)·span + h position·len(ws) + w position
    group = ("ceil", "kernel", "dilation") if square else ("ceil",)
    kept, total, exact = [], 0, 0
    for value in {tuple(row) for row in np.stack([w_table[g] for g in group], axis=1).tolist()}:
        h_rows = np.flatnonzero(np.all([h_table[g] == v for g, v in zip(group, value, strict=True)], axis=0))
        w_rows = np.flatnonzero(np.all([w_table[g] == v for g, v in zip(group, value, strict=True)], axis=0))
        for start in range(0, len(h_rows), max(1, _CHUNK // max(1, len(w_rows)))):
            rows = h_rows[start : start + max(1, _CHUNK // max(1, len(w_rows)))]
            h = {name: column[rows][:, None] for name, column in h_table.items()}
            w = {name: column[w_rows][None, :] for name, column in w_table.items()}
            same = h["same"] | w["same"]
            ok = ~(same & ~(h["same_ok"] & w["same_ok"])) & ~(h["twin"] & w["twin"])
            both_exact = h["exact"] & w["exact"]
            differing = sum((h[name] != w[name]).astype(np.int64) for name in _FIELDS)
            rank = ((~both_exact) * 6 + differing) * span + rows[:, None] * len(ws) + w_rows[None, :]
            rank = rank[ok]
            total += rank.size
            exact += int((both_exact & ok).sum())
            if limit and rank.size > limit:
                rank = np.partition(rank, limit - 1)[:limit]
            kept.append(rank)
    ranks = np.sort(np.concatenate(kept)) if kept else np.zeros(0, dtype=np.int64)
    ranks = ranks[:limit] if limit else ranks
    settings = [Setting(kind, hs[int(r % span) // len(ws)], ws[int(r % span) % len(ws)]) for r in ranks]
    return Found(settings, total, exact)


_FIELDS = ("kernel", "stride", "padding", "dilation", "output_padding")  # Setting.differing's
_CHUNK = 1 << 20  # pairs ranked at once: some 50 MB of numpy arrays


def _axis_table(np: Any, axes: list[AxisSetting], twins: list[bool]) -> dict[str, Any]:
    """One array per attribute of the axis settings ('same' padding as −1, unequal to any number)."""
    return {
        "kernel": np.array([a.kernel for a in axes], dtype=np.int64),
        "stride": np.array([a.stride for a in axes], dtype=np.int64),
        "padding": np.array([-1 if a.padding == "same" else a.padding for a in axes], dtype=np.int64),
        "dilation": np.array([a.dilation for a in axes], dtype=np.int64),
        "output_padding": np.array([a.output_padding for a in axes], dtype=np.int64),
        "ceil": np.array([a.ceil_mode for a in axes], dtype=bool),
        "exact": np.array([a.exact for a in axes], dtype=bool),
        "same": np.array([a.padding == "same" for a in axes], dtype=bool),
        "same_ok": np.array([a.same_compatible() for a in axes], dtype=bool),
        "twin": np.array(twins, dtype=bool),
    }


def solve_layer_size(
    kind: str,
    in_hw: tuple[int, int],
    out_hw: tuple[int, int],
    kernel: tuple[int, int] | None = None,
    stride: tuple[int, int] | None = None,
    dilation: tuple[int, int] | None = None,
    limit: int = SIZE_ROWS,
) -> Found:
    """The best ``limit`` (0: all) ``kind`` layers within the bounds that map ``in_hw`` to
    ``out_hw``, exact first, and how many there are (``Found.more_text`` says how to narrow).

    Kernels and dilations are square unless given as different pairs (or only rectangular
    ones work). Raises ``SolveError`` explaining the nearest reachable sizes when none does.
    """
    _check_request(kind, in_hw, out_hw, dilation, kernel, stride, limit)
    fixed = [
        {
            name: values[a] if values else None
            for name, values in zip(("kernel", "stride", "dilation"), (kernel, stride, dilation), strict=True)
        }
        for a in (0, 1)
    ]
    for a, axis in enumerate(("height", "width")):
        if not solve_axis(kind, in_hw[a], out_hw[a], **fixed[a]):
            rectangular = in_hw[0] != in_hw[1] or out_hw[0] != out_hw[1]
            raise _none_error(kind, in_hw[a], out_hw[a], axis if rectangular else None, fixed[a])
    square = not ((kernel and kernel[0] != kernel[1]) or (dilation and dilation[0] != dilation[1]))
    found = _combine_modes(kind, in_hw, out_hw, fixed, square, limit)
    if not found.total:
        found = _combine_modes(kind, in_hw, out_hw, fixed, False, limit)
    if not found.total:
        raise SolveError(
            f"each axis has {kind} settings for {fmt_shape(in_hw)} → {fmt_shape(out_hw)}, but none "
            "torch can combine (a pool has one ceil_mode for both axes; 'same' pads both axes)",
            "solve the axes one at a time (--in H --out H', then W) and use two layers",
        )
    return found


def _combine_modes(kind: str, in_hw, out_hw, fixed: list[dict], square: bool, limit: int) -> Found:
    """``combine`` per ceil_mode (one for both axes in torch): a pool with ceil_mode=True is
    listed where it changes the size on either axis (then both axes need it)."""
    if kind not in POOLS:
        per_axis = [solve_axis(kind, in_hw[a], out_hw[a], **fixed[a]) for a in (0, 1)]
        return combine(kind, *per_axis, square=square, limit=limit)
    found = []
    for mode in (False, True):
        per_axis = [solve_axis(kind, in_hw[a], out_hw[a], **fixed[a], ceil_mode=mode) for a in (0, 1)]
        twins = tuple(  # ceil_mode=True changing nothing on an axis (both: the floor twin is listed)
            [mode and forward(kind, n, s.kernel, s.stride, s.padding, s.dilation) == o for s in axis]
            for n, o, axis in zip(in_hw, out_hw, per_axis, strict=True)
        )
        found.append(combine(kind, *per_axis, square=square, limit=limit, floor_twins=twins))
    floor, ceil = found
    settings = sorted(floor.settings + ceil.settings, key=Setting.rank)
    return Found(settings[:limit] if limit else settings, floor.total + ceil.total, floor.exact + ceil.exact)


# torch sizes its tensors in int64 bytes: a 1×1×kh×kw float32 weight needs kh·kw·4 < 2⁶³
_MAX_WEIGHT = (2**63 - 1) // 4


def _check_request(kind: str, in_hw, out_hw, dilation, kernel=None, stride=None, limit: int = 0) -> None:
    if kind not in KINDS:
        raise SolveError(f"cannot solve a {kind}", f"use one of {', '.join(KINDS)}")
    if min(*in_hw, *out_hw) < 1:
        raise SolveError(f"sizes must be at least 1, got {fmt_shape(in_hw)} → {fmt_shape(out_hw)}")
    if limit < 0:
        raise SolveError(f"limit {limit}: give how many settings to list, or 0 for all", "e.g. limit=40")
    given = {"size": (*in_hw, *out_hw), "kernel_size": kernel, "stride": stride, "dilation": dilation}
    for name, values in given.items():
        if values and max(values) > MAX_SIZE:  # what a spec may hold: torch's int32 sizes
            raise SolveError(
                f"a {name} above {MAX_SIZE:,}: {fmt_shape(values)}", f"give values up to {MAX_SIZE:,}"
            )
    if kind in ("Conv2d", "ConvTranspose2d") and kernel and kernel[0] * kernel[1] > _MAX_WEIGHT:
        raise SolveError(
            f"kernel_size {fmt_shape(kernel)}: its weight has more bytes than torch can size (2⁶³)",
            "give a smaller kernel_size",
        )
    if kind == "AvgPool2d" and dilation and dilation != (1, 1):
        raise SolveError("AvgPool2d has no dilation", "leave out --dilation, or use --pool max")


def _none_error(kind: str, n: int, out: int, axis: str | None, fixed: dict[str, Any]) -> SolveError:
    given = ", ".join(
        f"{'kernel_size' if k == 'kernel' else k} {v}" for k, v in fixed.items() if v is not None
    )
    where = f" on the {axis}" if axis else ""
    constraint = f" with {given}" if given else " within the search bounds"
    sizes = reachable(kind, n, out, **fixed)
    message = f"no {kind}{constraint} maps {n} to {out}{where}: {_near(sizes, out)}"
    fixes = []
    # Worded for both the command line and the TUI's dialog: the flag in brackets.
    if kind == "Conv2d" and out > n + 1 or kind in POOLS and out > n:
        fixes.append("upsample with a ConvTranspose2d (--transposed)")
    if kind == "ConvTranspose2d" and out < n:
        fixes.append("downsample with a Conv2d or a pool (without --transposed)")
    for name in ("stride", "kernel", "dilation"):
        if fixed.get(name) is not None and solve_axis(kind, n, out, **{**fixed, name: None}):
            option = "--kernel" if name == "kernel" else f"--{name}"
            label = "kernel_size" if name == "kernel" else name
            fixes.append(f"let the {label} change too (leave out {option})")
    if sizes:
        nearest = min(sizes, key=lambda v: (abs(v - out), v))
        fixes.append(f"ask for {nearest}")
    return SolveError(message, "; or ".join(fixes) or "change the sizes")


def _near(sizes: list[int], out: int) -> str:
    if not sizes:
        return "no size at all (the kernel does not fit the input)"
    below = [v for v in sizes if v < out]
    above = [v for v in sizes if v > out]
    return "nearest reachable: " + " and ".join(str(v) for v in below[-1:] + above[:1])


# --------------------------------------------------------------------------------------
# A spec layer: padding: auto, and the TUI's "make this output H×W"


def _layer_axes(layer: S._Layer) -> dict[str, tuple[int, int]]:
    k = S.pair(layer.kernel_size)
    values = {"kernel": k, "dilation": S.pair(getattr(layer, "dilation", 1))}
    stride = getattr(layer, "stride", 1)
    values["stride"] = k if stride is None else S.pair(stride)
    return values


_SOLVE_FLAGS = {"ConvTranspose2d": " --transposed", "MaxPool2d": " --pool max", "AvgPool2d": " --pool avg"}


def auto_padding(layer: S._Layer, in_hw: tuple[int, int], out_hw: tuple[int, int]) -> Setting:
    """The padding (and a ConvTranspose2d's output_padding, unless the spec sets it) that make
    ``layer`` map ``in_hw`` to ``out_hw`` with its own kernel, stride, dilation and ceil_mode:
    per axis, the exact setting with the least padding. Raises ``SolveError`` naming the
    nearest reachable sizes."""
    fixed = _layer_axes(layer)
    op = S.pair(layer.output_padding) if "output_padding" in layer.model_fields_set else (None, None)
    ceil = getattr(layer, "ceil_mode", None)
    chosen = []
    for a, axis in enumerate(("height", "width")):
        axis_fixed = {name: values[a] for name, values in fixed.items()}
        extra = {"output_padding": op[a]} if isinstance(layer, S.ConvTranspose2d) else {}
        if layer.type in POOLS:
            extra["ceil_mode"] = ceil
        found = solve_axis(layer.type, in_hw[a], out_hw[a], **axis_fixed, **extra)
        numeric = [s for s in found if s.padding != "same"]
        if not found:
            sizes = reachable(layer.type, in_hw[a], out_hw[a], **axis_fixed, **extra)
            raise SolveError(
                f"padding: auto cannot make the {axis} {in_hw[a]} into {out_hw[a]} with kernel_size "
                f"{axis_fixed['kernel']}, stride {axis_fixed['stride']}"
                + (f", dilation {axis_fixed['dilation']}" if axis_fixed["dilation"] != 1 else "")
                + f": {_near(sizes, out_hw[a])}",
                "change output_shape to a reachable size, or the kernel_size or stride "
                f"(convcalc solve --in {in_hw[a]} --out {out_hw[a]}{_SOLVE_FLAGS.get(layer.type, '')} "
                "lists the layers that can)",
            )
        chosen.append(
            min(
                numeric or found,
                key=lambda s: (not s.exact, s.padding if s.padding != "same" else 0, s.output_padding),
            )
        )
    h, w = chosen
    if "same" in (h.padding, w.padding) and not (h.same_compatible() and w.same_compatible()):
        raise SolveError(
            f"padding: auto needs padding='same' on one axis and a number on the other for "
            f"{fmt_shape(in_hw)} → {fmt_shape(out_hw)}; torch cannot mix them",
            "use an odd kernel_size (symmetric padding), or two layers",
        )
    return Setting(layer.type, h, w)


@dataclass(frozen=True)
class LayerFix:
    """Field updates that make a layer produce the wanted size; ``None`` resets a field to
    its default. ``changed`` names the layer's fields whose value changes."""

    fields: dict[str, Any]
    changed: tuple[str, ...]
    setting: Setting | None  # None for an adaptive pool (output_size only)
    description: str

    @property
    def exact(self) -> bool:
        return self.setting is None or self.setting.exact


def solve_layer(layer: S._Layer, in_hw: tuple[int, int], target_hw: tuple[int, int]) -> list[LayerFix]:
    """Ways to make ``layer`` (on an ``in_hw`` input) output ``target_hw``: first the ones
    that change fewest fields (padding only, then stride, then kernel), exact first within
    each. Apply one with the spec's own validation, e.g.
    ``{**layer.model_dump(exclude_defaults=True, exclude={"type"}), **fix.fields}``.
    Raises ``SolveError`` for layers without size settings or when nothing reaches the size."""
    if isinstance(layer, (S.AdaptiveAvgPool2d, S.AdaptiveMaxPool2d)):
        size = _pair(*target_hw)
        if S.pair(layer.output_size) == tuple(target_hw):
            return []
        return [
            LayerFix({"output_size": size}, ("output_size",), None, f"output_size → {fmt_shape(target_hw)}")
        ]
    if layer.type not in KINDS:
        raise SolveError(
            f"a {layer.type} has no size settings to solve",
            "select a Conv2d, ConvTranspose2d, MaxPool2d, AvgPool2d or adaptive pool",
        )
    current = _layer_axes(layer)
    tiers = (("kernel", "stride"), ("kernel",), ())  # what stays fixed: padding-only changes first
    fixes: dict[tuple, LayerFix] = {}
    problem: SolveError | None = None
    for keep in tiers:
        fixed = {name: current[name] for name in keep}
        try:
            found = solve_layer_size(layer.type, in_hw, target_hw, dilation=current["dilation"], **fixed)
        except SolveError as error:
            problem = error  # the tiers widen: the last error is the one that really blocks
            continue
        for setting in found.settings:
            fix = _fix(layer, setting)
            if fix.changed and tuple(sorted(fix.fields.items(), key=str)) not in fixes:
                fixes[tuple(sorted(fix.fields.items(), key=str))] = fix
    if not fixes and problem is not None:
        raise problem
    return sorted(fixes.values(), key=lambda f: (len(f.changed), not f.exact))


def _fix(layer: S._Layer, setting: Setting) -> LayerFix:
    new = setting.fields(complete=True)  # a pool's stride too, so it stops following kernel_size
    old = layer.model_dump()
    if layer.type in POOLS and old["stride"] is None:
        old["stride"] = old["kernel_size"]
    changed = [name for name, value in new.items() if _norm(old.get(name)) != _norm(value)]
    if getattr(layer, "output_shape", None) is not None:
        new["output_shape"] = None  # the numbers replace padding: auto
        if "padding" not in changed:
            changed.append("padding")
    description = ", ".join(f"{name} {_show(old.get(name))} → {_show(new[name])}" for name in changed)
    return LayerFix(new, tuple(changed), setting, description)


def _norm(value: Any) -> Any:
    if isinstance(value, (list, tuple)) and len(value) == 2 and value[0] == value[1]:
        return value[0]
    return tuple(value) if isinstance(value, list) else value


def _show(value: Any) -> str:
    value = _norm(value)
    return "×".join(str(v) for v in value) if isinstance(value, tuple) else str(value)


# --------------------------------------------------------------------------------------
# Stacks that reach a receptive field

KERNELS = (3, 5, 7)
MAX_CONVS_PER_STAGE = 3
# Partial stacks rf_stacks may visit (5,000-15,000 a second, fewer on larger inputs): 224×224
# questions visit at most some 14,000, 512×512 with --rf 5000 some 38,000; a 10⁶-pixel input
# ran for minutes without an end in sight. Past the limit the question is refused, not answered
# partly.
RF_SEARCH_LIMIT = 100_000


@dataclass(frozen=True)
class Stack:
    """A conv/pool stack proposed for a receptive field; the numbers are the engine's."""

    layers: tuple[S._Layer, ...]
    description: str
    receptive_field: int
    output_shape: tuple[int, ...]
    params: int
    macs: int
    warnings: tuple[str, ...] = ()

    def network(self, input_shape: tuple[int, int, int], name: str = "stack") -> S.Network:
        return S.Network(name=name, input=input_shape, layers=list(self.layers))

    def to_json(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "layers": [
                {"type": layer.type, **_json(layer.model_dump(exclude_defaults=True, exclude={"type"}))}
                for layer in self.layers
            ],
            "receptive_field": self.receptive_field,
            "output_shape": list(self.output_shape),
            "params": self.params,
            "macs": self.macs,
            "warnings": list(self.warnings),
        }


@dataclass(order=True)
class _Draft:
    params: int
    layers: int
    macs: int
    steps: tuple = field(compare=False)  # ("conv", k, stride, out_channels) or ("pool",)


def stage_width(stage: int, channels: int) -> int:
    """Channels of stage ``stage``: ``channels``, doubled after each downsampling, up to 8×."""
    return channels * min(2**stage, 8)


def rf_stacks(
    target: int, input_shape: tuple[int, int, int], channels: int = 64, limit: int = 10
) -> list[Stack]:
    """The ``limit`` stacks with the fewest parameters whose receptive field reaches ``target``.

    A stack is stages of 1–3 convolutions (one kernel size, 3, 5 or 7, stride 1, 'same'
    padding, each followed by a ReLU), the stages split by a MaxPool2d(2) or by making a
    stage's last convolution stride 2; stage i has ``stage_width(i, channels)`` channels. A
    stack ends at the first layer whose field reaches ``target``; ties go to fewer layers,
    then fewer MACs.
    """
    c_in, h, w = input_shape
    if target < 1:
        raise SolveError(f"--rf {target}: a receptive field is at least 1 pixel", "give --rf 1 or more")
    if channels < 1:
        raise SolveError(f"--channels {channels}: need at least 1 channel", "give --channels 1 or more")
    if stage_width(3, channels) > MAX_SIZE:  # the widest stage must still be a valid out_channels
        raise SolveError(
            f"--channels {channels}: stages widen it 8×, past {MAX_SIZE:,}",
            f"give --channels up to {MAX_SIZE // 8:,}",
        )
    if limit < 1:
        raise SolveError(f"--limit {limit}: need at least 1 stack", "give --limit 1 or more")
    largest = largest_field((h, w))
    if target > largest:
        raise SolveError(
            f"no stack of 3×3, 5×5 or 7×7 convolutions and 2× downsamplings reaches a receptive "
            f"field of {target} on a {h}×{w} input: the largest is {largest:g}",
            "ask for a smaller --rf or give a larger --in",
        )
    best: list[tuple] = []  # a max-heap (negated) of the `limit` smallest drafts so far
    seen: set[tuple] = set()
    visited = [0]

    def keep(draft: _Draft) -> None:
        if draft.steps in seen:
            return
        seen.add(draft.steps)
        item = (-draft.params, -draft.layers, -draft.macs, draft.steps)
        if len(best) < limit:
            heapq.heappush(best, item)
        elif item > best[0]:
            heapq.heapreplace(best, item)

    def bound() -> int | None:
        return -best[0][0] if len(best) == limit else None

    def grow(
        steps: tuple,
        rf: RF,
        hw: tuple[int, int],
        c: int,
        params: int,
        macs: int,
        stage: int,
        k: int,
        down: str,
        in_stage: int,
    ) -> None:
        visited[0] += 1
        if visited[0] > RF_SEARCH_LIMIT:
            raise SolveError(
                f"--rf {target} on a {h}×{w} input: more than {RF_SEARCH_LIMIT:,} partial stacks to "
                "compare, too many to search",
                "give a smaller --rf, or a smaller --in (e.g. the size after the stem)",
            )
        if rf.size >= target and steps:  # --rf 1: still a stack of one layer, not the bare input
            keep(_Draft(params, len(steps), macs, steps))
            return
        cap = bound()
        if cap is not None and params > cap:
            return  # parameters only grow
        if _reach(rf, hw, in_stage, down, k) < target:
            return  # no continuation reaches the target: most branches, for a target near the largest
        width = stage_width(stage, channels)
        if in_stage < MAX_CONVS_PER_STAGE - (down == "stride"):  # one more stride-1 conv
            p, m = _conv_cost(c, width, k, hw)
            grow(
                steps + (("conv", k, 1, width),),
                rf_step(rf, k, 1, k // 2),
                hw,
                width,
                params + p,
                macs + m,
                stage,
                k,
                down,
                in_stage + 1,
            )
        if min(hw) < 2:
            return
        if down == "pool" and in_stage >= 1:
            new_hw = tuple(pool_out(n, 2, 2, 0, 1, False) for n in hw)
            grow(steps + (("pool",),), rf_step(rf, 2, 2, 0), new_hw, c, params, macs, stage + 1, k, down, 0)
        if down == "stride":
            width = stage_width(stage + 1, channels)
            new_hw = tuple(conv_out(n, k, 2, k // 2, k // 2, 1) for n in hw)
            p, m = _conv_cost(c, width, k, new_hw)
            grow(
                steps + (("conv", k, 2, width),),
                rf_step(rf, k, 2, k // 2),
                new_hw,
                width,
                params + p,
                macs + m,
                stage + 1,
                k,
                down,
                0,
            )

    for k in KERNELS:
        for down in ("pool", "stride"):
            grow((), RF(1, 1, 0.0), (h, w), c_in, 0, 0, 0, k, down, 0)
    drafts = sorted((_Draft(-p, -n, -m, steps) for p, n, m, steps in best))
    return [_stack(draft.steps, input_shape) for draft in drafts]


def largest_field(hw: tuple[int, int]) -> float:
    """The largest receptive field of any stack ``rf_stacks`` builds on an ``hw`` input."""
    return max(_reach(RF(1, 1, 0.0), hw, 0, down, max(KERNELS)) for down in ("pool", "stride"))


def _reach(rf: RF, hw: tuple[int, int], in_stage: int, down: str, k: int) -> float:
    """The largest field a stack that has reached ``rf`` on an ``hw`` map (``in_stage`` convs
    into its stage) can still grow to: every stage filled, then downsampled while the map
    allows. Each conv adds (k - 1) × jump and each downsampling doubles the jump, and how many
    downsamplings fit depends on the map alone, so no other continuation gets further."""
    while True:
        for _ in range(MAX_CONVS_PER_STAGE - (down == "stride") - in_stage):
            rf = rf_step(rf, k, 1, k // 2)
        if min(hw) < 2:
            return rf.size
        in_stage = 0
        if down == "pool":
            rf, hw = rf_step(rf, 2, 2, 0), tuple(pool_out(n, 2, 2, 0, 1, False) for n in hw)
        else:
            rf, hw = rf_step(rf, k, 2, k // 2), tuple(conv_out(n, k, 2, k // 2, k // 2, 1) for n in hw)


def _conv_cost(c_in: int, c_out: int, k: int, out_hw: tuple[int, int]) -> tuple[int, int]:
    """(params, MACs) of a k×k Conv2d with bias, for ranking drafts; the reported numbers are
    the engine's (``analyze``), and the tests check that the two agree."""
    weights = c_out * c_in * k * k
    return weights + c_out, weights * out_hw[0] * out_hw[1]


def _stack(steps: tuple, input_shape: tuple[int, int, int]) -> Stack:
    layers: list[S._Layer] = []
    words = []
    for step in steps:
        if step[0] == "pool":
            layers.append(S.MaxPool2d(kernel_size=2))
            words.append("pool")
        else:
            _, k, stride, width = step
            layers.append(S.Conv2d(out_channels=width, kernel_size=k, stride=stride, padding=k // 2))
            layers.append(S.ReLU())
            words.append(f"conv{k}" + (f"/{stride}" if stride > 1 else ""))
    analysis = analyze(S.Network(input=input_shape, layers=layers))
    last = analysis.rows[-1]
    return Stack(
        layers=tuple(layers),
        description=_runs(words),
        receptive_field=int(max(rf.size for rf in last.receptive_field)),
        output_shape=last.output_shape,
        params=analysis.total_params,
        macs=analysis.total_macs,
        warnings=tuple(str(problem) for problem in analysis.warnings),
    )


def _runs(words: list[str]) -> str:
    """``conv3 conv3 pool conv3`` -> ``conv3×2 → pool → conv3``."""
    parts = []
    for word, group in itertools.groupby(words):
        count = len(list(group))
        parts.append(f"{word}×{count}" if count > 1 else word)
    return " → ".join(parts)


# --------------------------------------------------------------------------------------
# The `convcalc solve` command: options in, an answer that renders as text or JSON


def parse_size(text: str, option: str, max_dims: int = 2) -> tuple[int, ...]:
    """``28`` -> ``(28,)``, ``28x32`` -> ``(28, 32)`` (also ``×``); up to ``max_dims`` values."""
    parts = text.lower().replace("×", "x").split("x")
    # ASCII digits only: int() would also take "1_0", " 28" and full-width "２８"
    dims = tuple(int(part) for part in parts) if all(p.isascii() and p.isdigit() for p in parts) else ()
    if not 1 <= len(dims) <= max_dims or min(dims) < 1:
        forms = {1: "N", 2: "N or HxW", 3: "N, HxW or CxHxW"}[max_dims]
        raise SolveError(
            f"{option} {text!r} is not a size",
            f"give {forms}, positive integers (e.g. {option} {28 if option in ('--in', '--out') else 3})",
        )
    if max(dims) > MAX_SIZE:  # what a spec's sizes may be (torch's int32 sizes)
        raise SolveError(f"{option} {text!r}: a size above {MAX_SIZE:,}", f"give sizes up to {MAX_SIZE:,}")
    return dims


MAX_SIZE = 2**31 - 1


@dataclass(frozen=True)
class SizeAnswer:
    type: str
    in_hw: tuple[int, ...]
    out_hw: tuple[int, ...]
    found: Found  # the first --limit settings (0: all) and how many there are
    bounds: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": "size",
            "type": self.type,
            "input": list(self.in_hw),
            "output": list(self.out_hw),
            "bounds": self.bounds,
            "total": self.found.total,
            "exact": self.found.exact,
            "settings": [setting.to_json() for setting in self.found.settings],
        }

    def render(self):
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        found = self.found
        title = (
            f"{self.type}: {fmt_shape(self.in_hw)} → {fmt_shape(self.out_hw)}, "
            f"{found.total:,} setting{'s' if found.total != 1 else ''} ({found.exact:,} exact)"
        )
        table = Table(title=title, title_justify="left")
        table.add_column("#", justify="right")
        table.add_column("PyTorch")
        table.add_column("exact", justify="center")
        table.add_column("notes")
        for i, setting in enumerate(found.settings, 1):
            table.add_row(str(i), setting.torch, "✓" if setting.exact else "—", "; ".join(setting.notes))
        footer = _bounds_text(self.bounds)
        if found.more:
            footer += f"\nthe first {len(found.settings):,} of {found.total:,} shown; {found.more_text()}"
        # below the table, not its caption: a caption wraps at the table's width
        return Group(table, Text(footer))


def _bounds_text(bounds: dict[str, str]) -> str:
    return "searched: " + ", ".join(f"{name} {value}" for name, value in bounds.items())


@dataclass(frozen=True)
class StackAnswer:
    target: int
    input_shape: tuple[int, int, int]
    channels: int
    stacks: list[Stack]

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": "rf",
            "target": self.target,
            "input": list(self.input_shape),
            "channels": self.channels,
            "stacks": [stack.to_json() for stack in self.stacks],
        }

    def render(self):
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        widths = ", ".join(str(stage_width(i, self.channels)) for i in range(4))
        table = Table(
            title=f"Stacks reaching a receptive field of {self.target} on {fmt_shape(self.input_shape)}, "
            "fewest parameters first",
            title_justify="left",
        )
        for name, justify in (
            ("#", "right"),
            ("layers", "left"),
            ("RF", "right"),
            ("output", "right"),
            ("params", "right"),
            ("MACs", "right"),
        ):
            table.add_column(name, justify=justify)
        for i, stack in enumerate(self.stacks, 1):
            table.add_row(
                str(i),
                stack.description + (" (!)" if stack.warnings else ""),
                str(stack.receptive_field),
                fmt_shape(stack.output_shape),
                f"{stack.params:,}",
                f"{stack.macs:,}",
            )
        best = self.stacks[0]
        spec = S.dump_spec(best.network(self.input_shape, name=f"rf{self.target}"))
        legend = (
            f"channels per stage: {widths}, … (--channels {self.channels}); conv3/2 = stride 2; "
            "pool = MaxPool2d(2); a ReLU follows each conv"
        )
        parts = [table, Text(legend)]  # below the table, not its caption: a caption wraps at its width
        warned = [f"(!) {i}: {w}" for i, stack in enumerate(self.stacks, 1) for w in stack.warnings[:1]]
        if warned:
            parts.append(Text("\n".join(warned)))
        parts.append(Text(f"\nThe first as a spec (convcalc shape checks it):\n\n{spec}"))
        return Group(*parts)


def answer(
    in_size: str,
    out_size: str | None = None,
    rf: int | None = None,
    kernel: str | None = None,
    stride: str | None = None,
    dilation: str | None = None,
    transposed: bool = False,
    pool: str | None = None,
    channels: int | None = None,
    limit: int | None = None,
) -> SizeAnswer | StackAnswer:
    """Check the ``convcalc solve`` options and solve: layer settings (``out_size``) or
    receptive-field stacks (``rf``). Raises ``SolveError`` with the fix for bad requests."""
    if (out_size is None) == (rf is None):
        raise SolveError(
            "give either --out (layer settings for a size) or --rf (stacks for a receptive field)",
            "e.g. convcalc solve --in 28 --out 14, or convcalc solve --in 224 --rf 100",
        )
    layer_options = {
        "--kernel": kernel,
        "--stride": stride,
        "--dilation": dilation,
        "--transposed": transposed or None,
        "--pool": pool,
    }
    if limit is not None and limit < 0:
        raise SolveError(f"--limit {limit}: give how many to show, or 0 for all", "e.g. --limit 20")
    if rf is not None:
        used = [name for name, value in layer_options.items() if value is not None]
        if used:
            raise SolveError(
                f"{', '.join(used)} appl{'ies' if len(used) == 1 else 'y'} to --out only",
                "leave it out with --rf (stacks use 3×3, 5×5 and 7×7 convolutions)",
            )
        dims = parse_size(in_size, "--in", 3)
        shape = (3, dims[0], dims[0]) if len(dims) == 1 else (3, *dims) if len(dims) == 2 else dims
        width = 64 if channels is None else channels
        stacks = rf_stacks(rf, shape, width, 10 if limit is None else limit)
        return StackAnswer(rf, shape, width, stacks)
    if channels is not None:
        raise SolveError("--channels applies to --rf only", "leave out --channels with --out")
    if transposed and pool:
        raise SolveError(
            "--transposed and --pool exclude each other", "ConvTranspose2d: --transposed; a pool: --pool"
        )
    kind = (
        "ConvTranspose2d"
        if transposed
        else {"max": "MaxPool2d", "avg": "AvgPool2d"}.get(pool or "", "Conv2d")
    )
    n_in, n_out = parse_size(in_size, "--in"), parse_size(out_size, "--out")
    if len(n_in) != len(n_out):
        raise SolveError(
            f"--in {in_size} and --out {out_size} give different numbers of axes",
            "give both as N (one axis) or both as HxW",
        )
    shown = SIZE_ROWS if limit is None else limit
    fixed = {}
    for option, name, text in (
        ("--kernel", "kernel", kernel),
        ("--stride", "stride", stride),
        ("--dilation", "dilation", dilation),
    ):
        if text is not None:
            values = parse_size(text, option, len(n_in))
            fixed[name] = values * 2 if len(values) == 1 else values
    in_hw, out_hw = (n_in * 2, n_out * 2) if len(n_in) == 1 else (n_in, n_out)
    if len(n_in) == 1 or (
        in_hw[0] == in_hw[1] and out_hw[0] == out_hw[1] and all(v[0] == v[1] for v in fixed.values())
    ):
        found = _one_axis(kind, in_hw[0], out_hw[0], {name: v[0] for name, v in fixed.items()}, fixed, shown)
    else:
        found = solve_layer_size(kind, in_hw, out_hw, **fixed, limit=shown)
    return SizeAnswer(kind, n_in, n_out, found, _bounds(kind, in_hw, out_hw, fixed))


def _one_axis(kind: str, n: int, out: int, axis_fixed: dict[str, int], fixed: dict, limit: int) -> Found:
    """One axis's settings as square layers (the same values on both axes)."""
    _check_request(kind, (n, n), (out, out), fixed.get("dilation"), fixed.get("kernel"), fixed.get("stride"))
    found = solve_axis(kind, n, out, **axis_fixed)
    if not found:
        raise _none_error(
            kind, n, out, None, {"kernel": None, "stride": None, "dilation": None, **axis_fixed}
        )
    settings = [Setting(kind, setting, setting) for setting in (found[:limit] if limit else found)]
    return Found(settings, len(found), sum(setting.exact for setting in found))


def _bounds(kind: str, in_hw, out_hw, fixed: dict) -> dict[str, str]:
    def span(values) -> str:
        values = list(values)
        return str(values[0]) if len(values) == 1 else f"{values[0]}–{values[-1]}"

    ranges = [
        search_ranges(
            in_hw[a],
            out_hw[a],
            *(fixed[n][a] if n in fixed else None for n in ("kernel", "stride", "dilation")),
        )
        for a in (0, 1)
    ]
    bounds = {}
    for i, name in enumerate(("kernel_size", "stride", "dilation")):
        texts = {span(r[i]) for r in ranges}
        bounds[name] = " / ".join(sorted(texts))
    bounds["padding"] = "0–⌊k/2⌋ (torch's limit)" if kind in POOLS else "0–⌊k̂/2⌋, k̂ = d·(k−1)+1"
    if kind == "Conv2d":
        bounds["padding"] += ", or 'same'"
    if kind == "ConvTranspose2d":
        bounds["output_padding"] = "0–max(s, d)−1 (torch's limit)"
    if kind in POOLS:
        bounds["ceil_mode"] = "true only where it changes the size"
    return bounds
