"""The engine against real torch.nn modules: torch decides (micrograd's test_engine style).

Hypothesis draws one layer and an input; the engine's output shape and parameter count must equal
what torch's module gives on a real batch, and whenever torch raises, the engine must report an
error. The engine is stricter than torch on purpose in exactly these places: a Linear on a spatial
input (almost always a missing Flatten) and Flatten(start_dim=0) (folds the batch into the
features), which are not drawn, and an output with a zero-sized dim (torch returns an empty tensor,
e.g. ConvTranspose2d whose padding eats the whole output), which must be an engine error.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from convcalc import spec as S
from convcalc.build import module_kwargs
from convcalc.engine import analyze

torch.set_num_threads(1)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

sizes = st.integers(1, 24)
small = st.integers(1, 4)


def pairs(elements: st.SearchStrategy[int]) -> st.SearchStrategy:
    """An int or an (h, w) pair, as a spec may write it."""
    return st.one_of(elements, st.tuples(elements, elements))


def torch_outcome(layer: S._Layer, shape: tuple[int, ...]):
    """(output shape without batch, parameter count) from torch, or None if torch raises."""
    kwargs = module_kwargs(layer, {})
    if isinstance(layer, (S.Conv2d, S.ConvTranspose2d)):
        kwargs["in_channels"] = layer.in_channels or shape[0]
    if isinstance(layer, S.BatchNorm2d):
        kwargs["num_features"] = layer.num_features or shape[0]
    if isinstance(layer, S.Linear):
        kwargs["in_features"] = layer.in_features or shape[0]
    try:
        module = getattr(nn, layer.type)(**kwargs)
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            out = module(torch.zeros(2, *shape))
    except (RuntimeError, ValueError, IndexError) as error:
        return error
    if layer.type.startswith("MaxPool") and torch.isinf(out).any():  # of a zero input
        # a window of padding only: its max is -inf, and its backward corrupts torch's heap
        # (torch 2.13 CPU), so the engine refuses what gives it (never run backward here)
        return ValueError("a window of padding only")
    return tuple(out.shape[1:]), sum(p.numel() for p in module.parameters())


def assert_engine_agrees(layer: S._Layer, shape: tuple[int, ...]) -> None:
    prefix = [S.Flatten()] if len(shape) == 1 else []
    network_input = shape if len(shape) == 3 else (shape[0], 1, 1)
    analysis = analyze(S.Network(input=network_input, layers=[*prefix, layer]))
    row = analysis.rows[-1]
    expected = torch_outcome(layer, shape)
    if isinstance(expected, Exception):
        assert not analysis.ok, f"torch raised {expected!r} but the engine accepted {layer!r} on {shape}"
        assert row.errors, "the error must name the layer that torch rejects"
        return
    torch_shape, torch_params = expected
    if 0 in torch_shape:
        assert row.errors, f"torch gave an empty {torch_shape} output; the engine must call it an error"
        return
    assert analysis.ok, f"torch accepted {layer!r} on {shape} but the engine says {analysis.errors}"
    assert row.output_shape == torch_shape
    assert row.params == torch_params
    assert row.weight_params + row.bias_params == row.params


@st.composite
def conv2d(draw):
    padding = draw(st.one_of(pairs(st.integers(0, 4)), st.sampled_from(["same", "valid"])))
    return S.Conv2d(
        in_channels=draw(st.none() | st.integers(1, 6)),
        out_channels=draw(st.integers(1, 6)),
        kernel_size=draw(pairs(st.integers(1, 7))),
        stride=draw(pairs(small)),
        padding=padding,
        dilation=draw(pairs(st.integers(1, 3))),
        groups=draw(st.sampled_from([1, 1, 2, 3])),
        bias=draw(st.booleans()),
    )


@st.composite
def conv_transpose2d(draw):
    return S.ConvTranspose2d(
        out_channels=draw(st.integers(1, 6)),
        kernel_size=draw(pairs(st.integers(1, 6))),
        stride=draw(pairs(small)),
        padding=draw(pairs(st.integers(0, 4))),
        output_padding=draw(pairs(st.integers(0, 3))),
        dilation=draw(pairs(st.integers(1, 3))),
        groups=draw(st.sampled_from([1, 1, 2])),
        bias=draw(st.booleans()),
    )


@st.composite
def max_pool2d(draw):
    return S.MaxPool2d(
        kernel_size=draw(pairs(st.integers(1, 6))),
        stride=draw(st.none() | pairs(small)),
        padding=draw(pairs(st.integers(0, 3))),
        dilation=draw(pairs(st.integers(1, 3))),
        ceil_mode=draw(st.booleans()),
    )


@st.composite
def avg_pool2d(draw):
    return S.AvgPool2d(
        kernel_size=draw(pairs(st.integers(1, 6))),
        stride=draw(st.none() | pairs(small)),
        padding=draw(pairs(st.integers(0, 3))),
        ceil_mode=draw(st.booleans()),
        count_include_pad=draw(st.booleans()),
    )


feature_maps = st.tuples(st.integers(1, 6), sizes, sizes)


@SETTINGS
@given(conv2d(), feature_maps)
def test_conv2d(layer, shape):
    assert_engine_agrees(layer, shape)


@SETTINGS
@given(conv_transpose2d(), feature_maps)
def test_conv_transpose2d(layer, shape):
    assert_engine_agrees(layer, shape)


@SETTINGS
@given(max_pool2d(), feature_maps)
def test_max_pool2d(layer, shape):
    assert_engine_agrees(layer, shape)


@SETTINGS
@given(avg_pool2d(), feature_maps)
def test_avg_pool2d(layer, shape):
    assert_engine_agrees(layer, shape)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from([S.AdaptiveAvgPool2d, S.AdaptiveMaxPool2d]), pairs(st.integers(1, 10)), feature_maps)
def test_adaptive_pools(cls, output_size, shape):
    assert_engine_agrees(cls(output_size=output_size), shape)


@settings(max_examples=100, deadline=None)
@given(st.none() | st.integers(1, 6), st.booleans(), st.booleans(), feature_maps)
def test_batchnorm2d(num_features, affine, track, shape):
    layer = S.BatchNorm2d(num_features=num_features, affine=affine, track_running_stats=track)
    if num_features not in (None, shape[0]) and not (affine or track):
        # Without weights or running statistics torch never looks at num_features; a stated
        # num_features that is wrong is still a mistake in the spec, so the engine reports it.
        assert analyze(S.Network(input=shape, layers=[layer])).errors
        return
    assert_engine_agrees(layer, shape)


@settings(max_examples=100, deadline=None)
@given(st.none() | st.integers(1, 40), st.integers(1, 20), st.booleans(), st.integers(1, 40))
def test_linear(in_features, out_features, bias, features):
    assert_engine_agrees(S.Linear(in_features=in_features, out_features=out_features, bias=bias), (features,))


@settings(max_examples=100, deadline=None)
@given(st.integers(-4, 4), st.integers(-4, 4), feature_maps)
def test_flatten(start_dim, end_dim, shape):
    if start_dim in (0, -4):  # folds the batch in: the engine refuses it on purpose (see module doc)
        return
    assert_engine_agrees(S.Flatten(start_dim=start_dim, end_dim=end_dim), shape)


POINTWISE = [
    S.ReLU(), S.LeakyReLU(negative_slope=0.2), S.ELU(alpha=0.5), S.GELU(approximate="tanh"), S.SiLU(),
    S.Tanh(), S.Sigmoid(), S.Softmax(dim=1), S.LogSoftmax(dim=-1), S.Softmax(dim=4), S.Identity(),
    S.Dropout(p=0.3), S.Dropout2d(p=0.3),
]  # fmt: skip


@pytest.mark.parametrize("layer", POINTWISE, ids=lambda layer: layer.type)
@pytest.mark.parametrize("shape", [(3, 5, 7), (12,)])
def test_pointwise(layer, shape):
    assert_engine_agrees(layer, shape)


def test_linear_on_spatial_input_is_an_error_with_a_fix():
    analysis = analyze(S.Network(input=(16, 4, 4), layers=[S.Linear(out_features=10)]))
    (error,) = analysis.errors
    assert error.index == 0 and "Flatten" in str(error)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.sampled_from(["conv", "pool", "relu", "bn"]), min_size=1, max_size=8), sizes, sizes)
def test_stacks_match_a_real_sequential(kinds, h, w):
    """Whole stacks: every row's shape equals a forward hook's on the real nn.Sequential."""
    make = {
        "conv": lambda: S.Conv2d(out_channels=3, kernel_size=3, padding=1, stride=2),
        "pool": lambda: S.MaxPool2d(kernel_size=2, ceil_mode=True),
        "relu": S.ReLU,
        "bn": S.BatchNorm2d,
    }
    network = S.Network(input=(2, h, w), layers=[make[kind]() for kind in kinds])
    analysis = analyze(network)
    modules, channels = [], 2
    for layer in network.layers:
        kwargs = module_kwargs(layer, {})
        if isinstance(layer, S.Conv2d):
            kwargs["in_channels"], channels = channels, layer.out_channels
        if isinstance(layer, S.BatchNorm2d):
            kwargs["num_features"] = channels
        modules.append(getattr(nn, layer.type)(**kwargs))
    x, shapes = torch.zeros(2, 2, h, w), []
    try:
        with torch.no_grad():
            for module in modules:
                x = module(x)
                shapes.append(tuple(x.shape[1:]))
    except RuntimeError:
        assert not analysis.ok
        return
    assert analysis.ok
    assert [row.output_shape for row in analysis.rows] == shapes


@settings(max_examples=400, deadline=None)
@given(n=st.integers(1, 12), k=st.integers(1, 5), s=st.integers(1, 4), d=st.integers(2, 4),
       data=st.data(), ceil_mode=st.booleans())  # fmt: skip
def test_a_max_pool_window_of_padding_only_is_refused(n, k, s, d, data, ceil_mode):
    """Dilated and padded: a window may miss the input (kernel 2, dilation 2, padding 1 on a
    1-wide input reads positions -1 and 1). torch's forward gives -inf there (and its backward
    corrupts memory); the engine refuses exactly those pools, and names the padding that works."""
    p = data.draw(st.integers(1, k // 2)) if k > 1 else 0
    layer = S.MaxPool1d(kernel_size=k, stride=s, padding=p, dilation=d, ceil_mode=ceil_mode)
    analysis = analyze(S.Network(input=(1, n), layers=[layer]))
    try:
        with torch.no_grad():
            out = nn.MaxPool1d(k, s, p, d, ceil_mode=ceil_mode)(torch.zeros(1, 1, n))
    except RuntimeError:  # an empty output: the engine's other errors
        assert not analysis.ok
        return
    empty = bool(torch.isinf(out).any())
    assert any("holds padding only" in e.message for e in analysis.errors) == empty
    fix = next((e.fix for e in analysis.errors if "padding only" in e.message), "")
    if fix.startswith("use padding "):  # the padding it names gives a pool torch runs, without such windows
        fitted = int(fix.split()[2])
        with torch.no_grad():
            again = nn.MaxPool1d(k, s, fitted, d, ceil_mode=ceil_mode)(torch.zeros(1, 1, n))
        assert again.numel() and not torch.isinf(again).any()
