"""``convcalc solve`` and ``padding: auto``: torch decides.

Every setting the solver proposes is built as a real torch module and must give exactly the
asked size, and leave out exactly the pixels it says (a gradient / all-ones probe); brute force
over the same bounds, with the engine's forward functions, must find exactly the solver's
settings; every proposed stack must reach its receptive field in a real torch gradient probe.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
import subprocess
import sys
import warnings

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from torch import nn

from convcalc import solve
from convcalc import spec as S
from convcalc.build import module_kwargs
from convcalc.engine import analyze
from convcalc.solve import KINDS, POOLS, SolveError

torch.set_num_threads(1)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------------------
# Torch as the oracle


def torch_module(setting: solve.Setting) -> nn.Module:
    kwargs = setting.fields()
    if setting.type in ("Conv2d", "ConvTranspose2d"):
        kwargs.update(in_channels=1, out_channels=1)
    return getattr(nn, setting.type)(**kwargs)


def torch_run(setting: solve.Setting, in_hw: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """(output H, W) of the real module, and how many rows/columns it leaves out: input rows
    and columns with no gradient (convs and pools), or output rows and columns that get no
    input (ConvTranspose2d: all-ones weights and input, zero bias)."""
    module = torch_module(setting)
    if isinstance(module, nn.MaxPool2d) and module.dilation == 1:
        # Max's gradient goes to one pixel per window; an average's to all of them.
        module = nn.AvgPool2d(module.kernel_size, module.stride, module.padding, module.ceil_mode)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.fill_(1.0)
        if getattr(module, "bias", None) is not None:
            module.bias.zero_()
    x = torch.ones(1, 1, *in_hw, dtype=torch.float64, requires_grad=True)
    module = module.double()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # padding='same' with an even kernel warns about a copy
        out = module(x)
    size = tuple(out.shape[2:])
    if isinstance(module, nn.ConvTranspose2d):
        reached = out.detach()[0, 0] != 0
    else:
        out.sum().backward()
        reached = x.grad[0, 0] != 0
    lost = (int((~reached.any(dim=1)).sum()), int((~reached.any(dim=0)).sum()))
    return size, lost


def lost_checkable(setting: solve.Setting) -> bool:
    # MaxPool2d with dilation has no AvgPool2d twin to probe coverage with.
    return not (setting.type == "MaxPool2d" and (setting.h.dilation, setting.w.dilation) != (1, 1))


def axis_key(a: solve.AxisSetting) -> tuple:
    return (a.kernel, a.stride, a.padding, a.dilation, a.output_padding, a.ceil_mode)


@st.composite
def requests(draw):
    """(kind, input H×W, wanted H×W, hidden): half the time the wanted size is what torch gives
    for a ``hidden`` setting drawn within the bounds, which the solver must then list."""
    kind = draw(st.sampled_from(KINDS))
    in_hw = (draw(st.integers(1, 40)), draw(st.integers(1, 40)))
    if draw(st.booleans()):
        k = draw(st.integers(1, 7))
        axes = []
        for n in in_hw:
            stride = draw(st.integers(1, 3))
            padding = draw(st.integers(0, solve.max_padding(kind, k, 1)))
            op = draw(st.integers(0, stride - 1)) if kind == "ConvTranspose2d" else 0
            if kind != "ConvTranspose2d" and n + 2 * padding < k:
                break  # the kernel must fit the padded input (a bound of the search)
            axes.append(solve.AxisSetting(k, stride, padding, 1, op, False))
        ceil = kind in POOLS and draw(st.booleans())
        if len(axes) == 2:
            hidden = solve.Setting(kind, *(dataclasses.replace(a, ceil_mode=ceil) for a in axes))
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    out_hw = tuple(torch_module(hidden)(torch.zeros(1, 1, *in_hw)).shape[2:])
            except RuntimeError:
                out_hw = (0, 0)
            if min(out_hw) >= 1:
                return kind, in_hw, out_hw, hidden
    if kind == "ConvTranspose2d":
        out_hw = tuple(draw(st.integers(max(1, n - 3), 3 * n + 6)) for n in in_hw)
    else:
        out_hw = tuple(draw(st.integers(1, n + 1)) for n in in_hw)
    return kind, in_hw, out_hw, None


TORCH_RUNS = 8  # settings of one answer built in torch: an answer can hold 10⁶ (40×40 → 1×1)


@settings(SETTINGS, max_examples=150)
@given(requests(), st.booleans(), st.data())
def test_every_proposed_setting_gives_the_size_in_torch(request, fix_kernel_and_stride, data):
    kind, in_hw, out_hw, hidden = request
    fixed = {}
    if hidden is not None and fix_kernel_and_stride:
        fixed = {"kernel": (hidden.h.kernel, hidden.w.kernel), "stride": (hidden.h.stride, hidden.w.stride)}
    try:
        found = solve.solve_layer_size(kind, in_hw, out_hw, **fixed, limit=200)
    except SolveError as error:
        assert hidden is None, f"{hidden.torch} gives {out_hw} but the solver says: {error}"
        assert "fix:" in str(error)
        event("impossible")
        return
    event(f"{kind}: solved" + (" a hidden setting" if hidden else ""))
    assert len(found.settings) == min(200, found.total) and found.exact <= found.total
    if hidden is not None:
        if hidden.h.ceil_mode and all(
            solve.forward(kind, n, a.kernel, a.stride, a.padding, 1, 0, False) == o
            for n, a, o in zip(in_hw, (hidden.h, hidden.w), out_hw, strict=True)
        ):
            # ceil_mode=True changes nothing here: the solver lists the floor twin
            hidden = solve.Setting(
                kind, *(dataclasses.replace(a, ceil_mode=False) for a in (hidden.h, hidden.w))
            )
        # with its kernel and stride fixed the answer is short, so all of it can be looked at
        own = solve.solve_layer_size(
            kind,
            in_hw,
            out_hw,
            kernel=(hidden.h.kernel, hidden.w.kernel),
            stride=(hidden.h.stride, hidden.w.stride),
            limit=0,
        )
        keys = {(axis_key(f.h), axis_key(f.w)) for f in own.settings}
        assert (axis_key(hidden.h), axis_key(hidden.w)) in keys, hidden.torch
    exact = [setting.exact for setting in found.settings]
    assert exact == sorted(exact, reverse=True), "exact settings come first"
    last = len(found.settings) - 1
    sample = data.draw(st.sets(st.integers(0, last), max_size=TORCH_RUNS - 2)) | {0, last}
    for i in sorted(sample):
        setting = found.settings[i]
        size, lost = torch_run(setting, in_hw)
        assert size == out_hw, setting.torch
        if lost_checkable(setting):
            assert lost == (setting.h.lost, setting.w.lost), setting.torch


def reference_pairs(kind, hs, ws, square, twins=None) -> list[solve.Setting]:
    """``combine``'s answer the slow way: every pair made and checked one by one, sorted by rank."""
    pairs = []
    for (i, h), (j, w) in itertools.product(enumerate(hs), enumerate(ws)):
        if h.ceil_mode != w.ceil_mode or square and (h.kernel, h.dilation) != (w.kernel, w.dilation):
            continue
        if "same" in (h.padding, w.padding) and not (h.same_compatible() and w.same_compatible()):
            continue
        if twins and twins[0][i] and twins[1][j]:
            continue
        pairs.append(solve.Setting(kind, h, w))
    return sorted(pairs, key=solve.Setting.rank)


@settings(SETTINGS, max_examples=80)
@given(
    st.sampled_from(KINDS),
    st.tuples(st.integers(1, 24), st.integers(1, 24)),
    st.tuples(st.integers(1, 30), st.integers(1, 30)),
    st.booleans(),
    st.integers(0, 30),
    st.data(),
)
def test_combine_ranks_and_counts_as_pairing_one_by_one(kind, in_hw, out_hw, square, limit, data):
    hs, ws = (solve.solve_axis(kind, n, o) for n, o in zip(in_hw, out_hw, strict=True))
    twins = None
    if kind in POOLS and data.draw(st.booleans()):
        twins = tuple([data.draw(st.booleans()) for _ in axis] for axis in (hs, ws))
    expected = reference_pairs(kind, hs, ws, square, twins)
    found = solve.combine(kind, hs, ws, square=square, limit=limit, floor_twins=twins)
    assert found.total == len(expected) and found.exact == sum(s.exact for s in expected)
    assert found.settings == (expected[:limit] if limit else expected)
    assert found.more == (len(expected) - limit if limit and len(expected) > limit else 0)


def test_a_huge_answer_is_bounded_and_says_how_to_narrow_it():
    """40×40 → 1×1 has 1,536,402 Conv2d settings: listing them took 20 s (pools 27 s)."""
    found = solve.solve_layer_size("Conv2d", (40, 40), (1, 1))
    assert len(found.settings) == solve.SIZE_ROWS and found.total == 1_536_402
    more = found.more_text()
    assert more.startswith("1,536,362 more: narrow the search") and "--kernel" in more
    # every kernel 1..40 with stride ≥ the rest of the input is exact: 40 on each axis, square
    assert found.exact == 40 * 40
    for setting in found.settings[:3] + found.settings[-1:]:
        assert torch_run(setting, (40, 40))[0] == (1, 1), setting.torch
    assert len(solve.solve_layer_size("MaxPool2d", (40, 40), (1, 1), limit=5).settings) == 5


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda: solve.solve_layer_size("Conv2d", (5, 5), (5, 5), kernel=(2**63,) * 2), "above 2,147,483"),
        (lambda: solve.solve_axis("MaxPool2d", 2**63, 1), "above 2,147,483,647"),
        (lambda: solve.solve_layer_size("Conv2d", (5, 5), (5, 5), kernel=(2**31 - 1,) * 2), "torch can size"),
        (lambda: solve.solve_layer_size("Conv2d", (5, 5), (5, 5), limit=-1), "0 for all"),
    ],
)  # fmt: skip
def test_values_torch_cannot_build_are_refused(call, words):
    """kernel_size=2**63 was listed as exact, and a 2**63 input raised OverflowError."""
    with pytest.raises(SolveError, match=re.escape(words)):
        call()


def test_the_largest_kernel_the_solver_lists_builds_in_torch():
    # torch sizes storage in int64 bytes: a (2³⁰, 2³⁰) float32 weight (2⁶² bytes) builds, (2³¹−1)² not
    found = solve.solve_layer_size("Conv2d", (5, 5), (5, 5), kernel=(2**30, 2**30), stride=(1, 1))
    (setting,) = found.settings
    kwargs = {**setting.fields(), "in_channels": 1, "out_channels": 1, "device": "meta"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert nn.Conv2d(**kwargs)(torch.empty(1, 1, 5, 5, device="meta")).shape[2:] == (5, 5)
        with pytest.raises(RuntimeError, match="overflow"):
            nn.Conv2d(**{**kwargs, "kernel_size": (2**31 - 1,) * 2})


# --------------------------------------------------------------------------------------
# The solver against brute force over the same bounds (the engine's forward functions)


def brute_force(kind: str, n: int, out: int, kernel=None, stride=None, dilation=None) -> set[tuple]:
    kernels, strides, dilations = solve.search_ranges(n, out, kernel, stride, dilation)
    found = set()
    for k, s, d in itertools.product(kernels, strides, dilations):
        k_eff = d * (k - 1) + 1
        for p in range(solve.max_padding(kind, k, d) + 1):
            if kind == "ConvTranspose2d":
                for op in range(max(s, d)):
                    if solve.forward(kind, n, k, s, p, d, op) == out:
                        found.add((k, s, p, d, op, False))
                continue
            if n + 2 * p < k_eff:
                continue
            floor = solve.forward(kind, n, k, s, p, d, 0, False)
            if floor == out:
                found.add((k, s, p, d, 0, False))
            if kind in POOLS and floor != out and solve.forward(kind, n, k, s, p, d, 0, True) == out:
                found.add((k, s, p, d, 0, True))
        if kind == "Conv2d" and s == 1 and out == n and k_eff % 2 == 0:
            found.add((k, s, "same", d, 0, False))
    return found


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(KINDS),
    st.integers(1, 60),
    st.integers(1, 130),
    st.one_of(st.none(), st.integers(1, 12)),
    st.one_of(st.none(), st.integers(1, 6)),
    st.integers(1, 3),
)
def test_solver_finds_exactly_what_brute_force_finds(kind, n, out, kernel, stride, dilation):
    dilation = 1 if kind == "AvgPool2d" else dilation
    kernels, strides = (max(solve.MIN_KERNEL_BOUND, -(-max(n, out) // min(n, out))),) * 2
    if kernel is None and stride is None and kernels * strides > solve.MAX_PAIRS:
        with pytest.raises(solve.SolveError, match="too many to list"):
            solve.solve_axis(kind, n, out, kernel, stride, dilation)
        return
    got = {
        (a.kernel, a.stride, a.padding, a.dilation, a.output_padding, a.ceil_mode)
        for a in solve.solve_axis(kind, n, out, kernel, stride, dilation)
    }
    assert got == brute_force(kind, n, out, kernel, stride, dilation)


@pytest.mark.parametrize(
    ("kind", "n", "out", "fixed", "words"),
    [
        ("Conv2d", 224, 1, {}, "AdaptiveAvgPool2d(output_size=1)"),
        ("MaxPool2d", 200, 2, {}, "give the kernel_size or the stride (--kernel, --stride)"),
        ("Conv2d", 10**6, 1, {"kernel": 10**6, "stride": 10**6}, "values of padding to try"),
        ("ConvTranspose2d", 1, 10**9 + 5, {"kernel": 10**9, "stride": 10**9}, "values of output_padding"),
    ],
)
def test_searches_too_large_to_be_useful_are_refused(kind, n, out, fixed, words):
    """224 → 1 took minutes, and huge values typed into the TUI hours: now a clear error."""
    with pytest.raises(solve.SolveError, match=re.escape(words)):
        solve.solve_axis(kind, n, out, **fixed)


def test_nearest_sizes_of_a_huge_kernel_are_refused_not_searched():
    with pytest.raises(solve.SolveError, match="values of padding to try"):
        solve.reachable("MaxPool2d", 28, 5, kernel=10**8)


def test_nearest_sizes_of_a_huge_transposed_stride_are_found():
    """output_padding 0..10⁹−1 is a run of sizes: its ends stand for it (no 10⁹-long loop)."""
    sizes = solve.reachable("ConvTranspose2d", 28, 5, kernel=3, stride=10**9)
    assert min(sizes) == 27 * 10**9 + 3 - 2 and max(sizes) == 28 * 10**9 + 3 - 1


def test_brute_force_is_not_vacuous():
    # The parity test means something only if both sides often find settings.
    assert len(brute_force("Conv2d", 28, 14)) >= 10
    assert len(brute_force("ConvTranspose2d", 7, 14)) >= 10
    assert any(setting[-1] for setting in brute_force("MaxPool2d", 7, 4))  # a ceil_mode answer


# --------------------------------------------------------------------------------------
# Errors: impossible requests say why and what to do


@pytest.mark.parametrize(
    "kind, n, out, fixed, words",
    [
        ("Conv2d", 28, 56, {}, ["--transposed"]),
        (
            "ConvTranspose2d",
            7,
            20,
            {"kernel": (3, 3), "stride": (2, 2)},
            ["nearest reachable: 16", "--stride"],
        ),
        ("ConvTranspose2d", 14, 7, {}, ["downsample with a Conv2d"]),
        ("MaxPool2d", 5, 9, {}, ["--transposed"]),
        ("Conv2d", 3, 2, {"kernel": (5, 5), "stride": (1, 1)}, ["leave out --kernel"]),
    ],
)
def test_impossible_sizes_explain_the_nearest_and_the_fix(kind, n, out, fixed, words):
    with pytest.raises(SolveError) as info:
        solve.solve_layer_size(kind, (n, n), (out, out), **fixed)
    message = str(info.value)
    assert f"maps {n} to {out}" in message and "; fix: " in message
    for word in words:
        assert word in message


def test_nearest_sizes_are_really_reachable_in_torch():
    with pytest.raises(SolveError) as info:
        solve.solve_layer_size("ConvTranspose2d", (7, 7), (20, 20), kernel=(3, 3), stride=(2, 2))
    assert "nearest reachable: 16;" in str(info.value)
    # 16 is reachable (padding 0, output_padding 1) and nothing between 17 and 20 is.
    reachable = set()
    for p, op in itertools.product(range(2), range(2)):
        reachable.add(nn.ConvTranspose2d(1, 1, 3, 2, p, op)(torch.zeros(1, 1, 7, 7)).shape[-1])
    assert max(reachable) == 16


# --------------------------------------------------------------------------------------
# The command line


def test_cli_lists_the_pytorch_lines_exact_first(cli):
    result = cli("solve", "--in", "28", "--out", "14")
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if "nn.Conv2d(" in line]
    assert "nn.Conv2d(..., kernel_size=3, stride=2, padding=1)" in result.stdout
    assert "✓" in lines[0] and "—" in lines[-1]  # kernel 1, stride 2 skips every other row: last


def test_cli_json_settings_build_in_torch(cli):
    result = cli("solve", "--in", "28x32", "--out", "14x16", "--pool", "max", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["mode"] == "size" and data["type"] == "MaxPool2d" and data["settings"]
    for item in data["settings"]:
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in item["fields"].items()}
        out = nn.MaxPool2d(**kwargs)(torch.zeros(1, 1, 28, 32))
        assert tuple(out.shape[2:]) == (14, 16), item["torch"]
        assert item["torch"].startswith("nn.MaxPool2d(")


def test_cli_transposed_gives_output_padding(cli):
    result = cli(
        "solve", "--in", "7", "--out", "14", "--transposed", "--kernel", "3", "--stride", "2", "--json"
    )
    data = json.loads(result.stdout)
    assert [s["fields"] for s in data["settings"]] == [
        {"kernel_size": 3, "stride": 2, "padding": 1, "output_padding": 1}
    ]
    out = nn.ConvTranspose2d(1, 1, 3, stride=2, padding=1, output_padding=1)(torch.zeros(1, 1, 7, 7))
    assert out.shape[-1] == 14


@pytest.mark.parametrize(
    "args, words",
    [
        (["--in", "28"], "--out"),
        (["--in", "28x", "--out", "14"], "is not a size"),
        (["--in", "28", "--out", "14x14"], "numbers of axes"),
        (["--in", "224", "--rf", "100", "--kernel", "3"], "--out only"),
        (["--in", "28", "--out", "14", "--channels", "3"], "--rf only"),
        (["--in", "28", "--out", "14", "--limit", "-1"], "0 for all"),
        (["--in", "28", "--out", "14", "--pool", "avg", "--dilation", "2"], "no dilation"),
        (["--in", "28", "--out", "14", "--pool", "max", "--transposed"], "exclude each other"),
        (["--in", "28", "--out", "56"], "--transposed"),
        (["--in", "7", "--out", "20", "--transposed", "--kernel", "3", "--stride", "2"], "nearest reachable"),
        (["--in", "32", "--rf", "5000"], "the largest is"),
        (["--in", "32", "--rf", "0"], "at least 1"),
        (["--in", "32", "--rf", "10", "--channels", "0"], "--channels"),
    ],
)
def test_cli_errors_exit_1_with_a_fix_and_no_traceback(cli, args, words):
    result = cli("solve", *args)
    assert result.returncode == 1
    assert result.stdout == ""
    assert words in result.stderr and "fix" in result.stderr
    assert "Traceback" not in result.stderr


def test_solve_never_imports_torch():
    code = (
        "import sys\n"
        "from convcalc.cli import main\n"
        "for args in (['solve', '--in', '28', '--out', '14'], ['solve', '--in', '64', '--rf', '30'],"
        " ['solve', '--in', '7', '--out', '14', '--transposed', '--json']):\n"
        "    try:\n"
        "        main(args)\n"
        "    except SystemExit as exit:\n"
        "        assert exit.code == 0, exit.code\n"
        "import convcalc.solve\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'textual')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


# --------------------------------------------------------------------------------------
# Receptive-field stacks


def rf_probe(stack: solve.Stack, input_shape) -> int | None:
    """The receptive field of the central output unit on the height axis, in a real torch
    model (all-ones weights, no bias, average instead of max pooling: every path counts);
    None when that field is clipped by the border (then torch cannot show its full size)."""
    layers = []
    for layer in stack.layers:
        if isinstance(layer, S.MaxPool2d):
            layers.append(nn.AvgPool2d(2))
        elif isinstance(layer, S.Conv2d):
            conv = nn.Conv2d(1, 1, layer.kernel_size, layer.stride, layer.padding, bias=False)
            nn.init.ones_(conv.weight)
            layers.append(conv)
    model = nn.Sequential(*layers).double()
    x = torch.ones(1, 1, *input_shape[1:], dtype=torch.float64, requires_grad=True)
    out = model(x)
    i, j = out.shape[2] // 2, out.shape[3] // 2
    out[0, 0, i, j].backward()
    rows = torch.nonzero(x.grad[0, 0].abs().sum(dim=1)).flatten()
    first, last = int(rows.min()), int(rows.max())
    if first == 0 or last == input_shape[1] - 1:
        return None
    return last - first + 1


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(2, 90), st.integers(48, 160))
def test_stacks_reach_the_field_in_torch_smallest_first(target, size):
    try:
        stacks = solve.rf_stacks(target, (1, size, size), channels=1, limit=4)
    except SolveError as error:
        assert "the largest is" in str(error)
        return
    params = [stack.params for stack in stacks]
    assert params == sorted(params)
    for stack in stacks:
        assert stack.receptive_field >= target
        probed = rf_probe(stack, (1, size, size))
        if probed is not None:
            assert probed == stack.receptive_field, stack.description
        # minimal: without its last conv or pool the stack falls short
        body = list(stack.layers)
        while isinstance(body[-1], S.ReLU):
            body.pop()
        shorter = analyze(S.Network(input=(1, size, size), layers=body[:-1]))
        rf = shorter.rows[-1].receptive_field[0].size if shorter.rows else 1
        assert rf < target


def test_stack_params_are_torchs_and_pruning_keeps_the_best():
    stacks = solve.rf_stacks(100, (3, 224, 224), channels=16, limit=6)
    assert [s.description for s in solve.rf_stacks(100, (3, 224, 224), channels=16, limit=2)] == [
        s.description for s in stacks[:2]
    ]
    for stack in stacks:
        analysis = analyze(stack.network((3, 224, 224)))
        model = nn.Sequential(
            *(getattr(nn, row.type)(**module_kwargs(row.layer, row.inferred)) for row in analysis.rows)
        )
        assert sum(p.numel() for p in model.parameters()) == stack.params
        assert tuple(model(torch.zeros(1, 3, 224, 224)).shape[1:]) == stack.output_shape


def test_cli_rf_prints_stacks_and_a_spec_that_shape_accepts(cli, tmp_path):
    result = cli("solve", "--in", "1x28x28", "--rf", "20", "--channels", "8", "--limit", "3")
    assert result.returncode == 0, result.stderr
    spec_text = result.stdout.split("(convcalc shape checks it):", 1)[1]
    path = tmp_path / "stack.yaml"
    path.write_text(spec_text, encoding="utf-8")
    shaped = cli("shape", str(path), "--json")
    assert shaped.returncode == 0, shaped.stderr
    assert json.loads(shaped.stdout)["layers"][-1]["receptive_field"][0] >= 20
    data = json.loads(cli("solve", "--in", "1x28x28", "--rf", "20", "--channels", "8", "--json").stdout)
    assert data["mode"] == "rf" and len(data["stacks"]) == 10


# --------------------------------------------------------------------------------------
# solve_layer: the TUI's "make this output H×W"


layers_to_fix = st.one_of(
    st.builds(
        S.Conv2d,
        out_channels=st.just(2),
        kernel_size=st.integers(1, 5),
        stride=st.integers(1, 3),
        padding=st.integers(0, 2),
    ),
    st.builds(
        S.ConvTranspose2d,
        out_channels=st.just(2),
        kernel_size=st.integers(1, 5),
        stride=st.integers(1, 3),
    ),
    st.builds(S.MaxPool2d, kernel_size=st.integers(1, 4), ceil_mode=st.booleans()),
    st.builds(S.AvgPool2d, kernel_size=st.integers(1, 4), stride=st.integers(1, 3)),
)


@SETTINGS
@given(layers_to_fix, st.integers(4, 30), st.integers(4, 30), st.data())
def test_solve_layer_fixes_give_the_target_in_torch(layer, h, w, data):
    if isinstance(layer, S.ConvTranspose2d):
        target = (data.draw(st.integers(h, 2 * h + 2)), data.draw(st.integers(w, 2 * w + 2)))
    else:
        target = (data.draw(st.integers(1, h)), data.draw(st.integers(1, w)))
    try:
        fixes = solve.solve_layer(layer, (h, w), target)
    except SolveError:
        event("impossible")
        return
    event(f"{len(fixes) > 0} fixes")
    assert [len(f.changed) for f in fixes] == sorted(len(f.changed) for f in fixes)
    base = layer.model_dump(exclude_defaults=True)
    for fix in fixes[:8]:
        values = {k: v for k, v in {**base, **fix.fields}.items() if v is not None}
        new = S.LAYER_CLASSES[layer.type].model_validate(values)
        row = analyze(S.Network(input=(1, h, w), layers=[new])).rows[0]
        assert row.output_shape[1:] == target, fix.description
        module = getattr(nn, new.type)(
            **module_kwargs(new, {"in_channels": 1} if "channels" in str(base) else {})
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert tuple(module(torch.zeros(1, 1, h, w)).shape[2:]) == target, fix.description
        changed = {k for k in fix.fields if _effective(new, k) != _effective(layer, k)}
        assert changed == set(fix.changed), fix.description


def _effective(layer: S._Layer, name: str):
    value = getattr(layer, name)
    if name == "stride" and value is None:  # a pool's stride follows its kernel_size
        value = layer.kernel_size
    return (
        value
        if isinstance(value, (bool, str))
        else S.pair(tuple(value) if isinstance(value, list) else value)
    )


def test_solve_layer_padding_first_then_stride():
    conv = S.Conv2d(out_channels=8, kernel_size=3)
    fixes = solve.solve_layer(conv, (28, 28), (28, 28))
    assert fixes[0].fields["padding"] == 1 and fixes[0].changed == ("padding",)
    halving = solve.solve_layer(conv, (28, 28), (14, 14))
    assert halving[0].changed == ("stride", "padding") and halving[0].fields["stride"] == 2
    assert solve.solve_layer(S.AdaptiveAvgPool2d(output_size=3), (9, 9), (2, 4))[0].fields == {
        "output_size": (2, 4)
    }
    with pytest.raises(SolveError, match="no size settings"):
        solve.solve_layer(S.ReLU(), (9, 9), (2, 4))


# --------------------------------------------------------------------------------------
# padding: auto in a spec


def torch_from_row(row) -> nn.Module:
    """The torch module build.py makes from an engine row: the solved padding, no output_shape."""
    return getattr(nn, row.type)(**module_kwargs(row.layer, row.inferred))


@st.composite
def auto_layers(draw):
    """A layer with padding: auto, its input H×W, and a wanted H×W (often one torch reaches)."""
    kind = draw(st.sampled_from(KINDS))
    k = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    d = (1, 1) if kind == "AvgPool2d" else (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    in_hw = (draw(st.integers(1, 24)), draw(st.integers(1, 24)))
    fields = {"type": kind, "kernel_size": k, "stride": s, "padding": "auto"}
    if kind != "AvgPool2d":
        fields["dilation"] = d
    if kind in ("Conv2d", "ConvTranspose2d"):
        fields["out_channels"] = 2
    if kind in POOLS:
        fields["ceil_mode"] = draw(st.booleans())
    # a target from a hidden padding (and output_padding) that torch accepts, or any size
    target = []
    for a in (0, 1):
        k_eff = d[a] * (k[a] - 1) + 1
        p = draw(st.integers(0, solve.max_padding(kind, k[a], d[a])))
        op = draw(st.integers(0, max(s[a], d[a]) - 1)) if kind == "ConvTranspose2d" else 0
        hidden = solve.forward(kind, in_hw[a], k[a], s[a], p, d[a], op, fields.get("ceil_mode", False))
        fits = kind == "ConvTranspose2d" or in_hw[a] + 2 * p >= k_eff
        use_hidden = hidden >= 1 and fits and draw(st.integers(0, 3)) > 0
        target.append(hidden if use_hidden else draw(st.integers(1, 40)))
    with_channels = draw(st.booleans())
    fields["output_shape"] = (
        [2 if kind in ("Conv2d", "ConvTranspose2d") else 3] if with_channels else []
    ) + target
    return S.LAYER_CLASSES[kind].model_validate(fields), in_hw, tuple(target)


def torch_reachable(layer: S._Layer, in_hw, target) -> bool:
    """Does any padding (and ConvTranspose2d output_padding) within the bounds give ``target``
    in torch? Brute force over real modules, axis by axis (the axes are independent)."""
    k, s = S.pair(layer.kernel_size), S.pair(layer.stride)
    d = S.pair(getattr(layer, "dilation", 1))
    for a in (0, 1):
        sizes = set()
        for p in range(solve.max_padding(layer.type, k[a], d[a]) + 1):
            ops = range(max(s[a], d[a])) if isinstance(layer, S.ConvTranspose2d) else (None,)
            for op in ops:
                kwargs = {"kernel_size": (k[a], 1), "stride": (s[a], 1), "padding": (p, 0)}
                if layer.type != "AvgPool2d":
                    kwargs["dilation"] = (d[a], 1)
                if op is not None:
                    kwargs["output_padding"] = (op, 0)
                if layer.type in POOLS:
                    kwargs["ceil_mode"] = layer.ceil_mode
                    if in_hw[a] + 2 * p < d[a] * (k[a] - 1) + 1:
                        continue  # the search's bound: the window fits the padded input
                else:
                    kwargs.update(in_channels=1, out_channels=1)
                try:
                    out = getattr(nn, layer.type)(**kwargs)(torch.zeros(1, 1, in_hw[a], 1))
                except RuntimeError:
                    continue
                if not torch.isinf(out).any():  # -inf: a max-pool window of padding only (refused)
                    sizes.add(out.shape[2])
        if target[a] not in sizes:
            return False
    return True


@settings(SETTINGS, max_examples=120)
@given(auto_layers())
def test_padding_auto_gives_the_output_shape_in_torch(case):
    layer, in_hw, target = case
    row = analyze(S.Network(input=(3, *in_hw), layers=[layer])).rows[0]
    if row.errors:
        event("unreachable")
        assert not torch_reachable(layer, in_hw, target), str(row.errors[0])
        message = str(row.errors[0])
        # no size on some axis (the nearest ones named), or each axis alone works but one needs
        # torch's padding='same' (asymmetric) and the other a number, which torch cannot combine
        assert (
            "padding: auto cannot" in message
            and ("nearest reachable" in message or "does not fit" in message)
        ) or ("padding: auto needs padding='same' on one axis" in message and "cannot mix" in message)
        return
    event(f"{layer.type}: solved")
    assert row.output_shape[1:] == target
    assert set(row.inferred) >= {"padding"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = torch_from_row(row)(torch.zeros(1, 3, *in_hw))
    assert tuple(out.shape[2:]) == target


def test_padding_auto_conv_transpose_solves_output_padding():
    decoder = S.parse_spec(
        "input: [8, 7, 7]\n"
        "layers:\n"
        "  - {type: ConvTranspose2d, out_channels: 4, kernel_size: 3, stride: 2,"
        " padding: auto, output_shape: [4, 14, 14]}\n"
        "  - {type: ConvTranspose2d, out_channels: 1, kernel_size: 3, stride: 2,"
        " padding: auto, output_padding: 0, output_shape: [27, 27]}\n"
    )
    analysis = analyze(decoder)
    assert analysis.ok, analysis.errors
    first, second = analysis.rows
    assert first.inferred["padding"] == (1, 1) and first.inferred["output_padding"] == (1, 1)
    assert second.inferred["output_padding"] == (0, 0)  # given, so kept: padding alone gives 27
    assert first.summary == "4@3×3 s2 p1 op1"
    x = torch.zeros(1, 8, 7, 7)
    for row in analysis.rows:
        x = torch_from_row(row)(x)
        assert tuple(x.shape[1:]) == row.output_shape


def test_padding_auto_errors_name_the_layer_and_the_fix(cli, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "input: [1, 28, 28]\n"
        "layers:\n"
        "  - {type: Conv2d, out_channels: 4, kernel_size: 3, stride: 2, padding: auto,"
        " output_shape: [8, 14, 14]}\n",
        encoding="utf-8",
    )
    result = cli("shape", str(path))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert (
        "layer 0 (conv2d_0, Conv2d): output_shape 8×14×14 has 8 channels but the layer gives 4"
        in result.stderr
    )
    spec_errors = [
        ("padding: auto}", "padding: auto needs output_shape"),
        ("padding: 1, output_shape: [14, 14]}", "output_shape is read only with padding: auto"),
        ("padding: auto, output_shape: [1, 2, 3, 4]}", "field 'output_shape'"),
    ]
    for tail, words in spec_errors:
        path.write_text(
            f"input: [1, 28, 28]\nlayers:\n  - {{type: MaxPool2d, kernel_size: 2, {tail}\n", encoding="utf-8"
        )
        result = cli("shape", str(path))
        assert (
            result.returncode == 1
            and words in result.stderr
            and f"{path}:3: layer 0 (MaxPool2d)" in result.stderr
        )


def test_padding_auto_unreachable_names_nearest_sizes():
    net = S.parse_spec(
        "input: [1, 28, 28]\n"
        "layers:\n"
        "  - {type: Conv2d, out_channels: 4, kernel_size: 3, stride: 2, padding: auto,"
        " output_shape: [15, 14], name: c}\n"
    )
    (error,) = analyze(net).errors
    assert str(error).startswith("layer 0 (c, Conv2d): padding: auto cannot make the height 28 into 15")
    assert "nearest reachable: 14;" in str(error) and "convcalc solve --in 28 --out 15" in str(error)
    # torch agrees: with kernel 3 and stride 2, no padding up to 1 gives 15 from 28
    assert {nn.Conv2d(1, 1, 3, 2, p)(torch.zeros(1, 1, 28, 28)).shape[2] for p in range(2)} == {13, 14}


def test_padding_auto_round_trips_through_yaml():
    net = S.parse_spec(
        "input: [1, 28, 28]\nlayers:\n"
        "  - {type: AvgPool2d, kernel_size: 3, stride: 2, padding: auto, output_shape: [14, 14]}\n"
    )
    assert S.parse_spec(S.dump_spec(net)) == net
    assert "padding: auto, output_shape: [14, 14]" in S.dump_spec(net)


def test_build_model_takes_the_solved_padding():
    from convcalc.build import build_model

    net = S.parse_spec(
        "input: [3, 32, 32]\nlayers:\n"
        "  - {type: Conv2d, out_channels: 8, kernel_size: 5, stride: 2, padding: auto,"
        " output_shape: [16, 16]}\n"
        "  - {type: MaxPool2d, kernel_size: 3, stride: 2, padding: auto, output_shape: [8, 8]}\n"
        "  - {type: ConvTranspose2d, out_channels: 3, kernel_size: 4, stride: 4, padding: auto,"
        " output_shape: [32, 32]}\n"
    )
    model = build_model(net)
    assert tuple(model(torch.zeros(1, 3, 32, 32)).shape) == (1, 3, 32, 32)


def test_solve_layer_reports_the_axis_that_really_blocks():
    """LeNet's c1 on 28×28 asked for 14×16: 14 is reachable (change the stride), 16 is not with
    a 5×5 kernel... but it is with another kernel; asked for 14×30, the width is what no Conv2d
    in the bounds gives, and the error must say so rather than blame the fixed stride."""
    layer = S.Conv2d(out_channels=6, kernel_size=5)
    with pytest.raises(SolveError) as info:
        solve.solve_layer(layer, (28, 28), (14, 31))
    message = str(info.value)
    assert "maps 28 to 31 on the width" in message and "--stride" not in message


@pytest.mark.parametrize(
    "layer",
    [  # found by a fuzz of huge values: each took from 14 s to hours before
        {"type": "Conv2d", "out_channels": 1, "kernel_size": 10**9, "dilation": 5, "padding": "auto",
         "output_shape": [1, 10**6]},
        {"type": "Conv2d", "out_channels": 5, "kernel_size": 5, "stride": 5, "dilation": 10**9,
         "padding": "auto", "output_shape": [2, 10**9]},
        {"type": "ConvTranspose2d", "out_channels": 2, "kernel_size": 3, "stride": 10**9, "padding": "auto",
         "output_shape": [5, 5]},
    ],
)  # fmt: skip
def test_padding_auto_with_huge_values_answers(layer):
    network = S.network_from_data({"input": [1, 2, 10**6], "layers": [layer]})
    row = analyze(network).rows[0]
    assert row.errors or row.output_shape is not None
    if row.errors:
        assert "too large to search" in str(row.errors[0]) or "padding: auto cannot" in str(row.errors[0])


def test_long_listings_show_the_first_rows_and_say_how_many_more(cli):
    def torch_column(stdout):
        return [line.split("│")[2].strip() for line in stdout.splitlines() if "nn.Conv2d(" in line]

    first = cli("solve", "--in", "28", "--out", "1")
    rows = torch_column(first.stdout)
    total = len(solve.solve_axis("Conv2d", 28, 1))
    assert len(rows) == solve.SIZE_ROWS < total
    assert f"{total:,} settings" in first.stdout  # one number format in the title and below
    more = total - solve.SIZE_ROWS
    assert f"the first {solve.SIZE_ROWS} of {total:,} shown; {more:,} more:" in first.stdout
    every = cli("solve", "--in", "28", "--out", "1", "--limit", "0", "--json")
    assert len(json.loads(every.stdout)["settings"]) == total
    some = cli("solve", "--in", "28", "--out", "1", "--limit", "3")
    assert torch_column(some.stdout) == rows[:3]


def test_a_size_past_int32_is_a_clear_error():
    from tests.conftest import run_cli

    result = run_cli("solve", "--in", "1", "--out", "9223372036854775808")
    assert result.returncode == 1 and "a size above 2,147,483,647" in result.stderr
    assert "Traceback" not in result.stderr
