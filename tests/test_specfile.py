"""The plain validator (``convcalc shape`` without Pydantic) against the Pydantic models.

Pydantic decides: whenever ``specfile.plain_network`` answers, ``spec.network_from_data`` must
accept the same data and give the same network (same values, same Python types), and the engine
must give the same analysis on both. Hypothesis draws spec data that is mostly plausible (so
both paths answer often) with junk mixed in (so the refusals are exercised too).
"""

from __future__ import annotations

import json
import math

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from convcalc import engine, render, specfile
from convcalc import spec as S
from convcalc.layers import REGISTRY
from tests.conftest import ROOT, SHIPPED_SPECS


def plain_data(network) -> dict:
    """A network as nested plain data, each leaf tagged with its type (1 and 1.0 differ)."""

    def tag(value):
        if isinstance(value, tuple | list):
            return (type(value).__name__, [tag(item) for item in value])
        if isinstance(value, float) and math.isnan(value):
            return ("float", "nan")
        return (type(value).__name__, value)

    nodes = [node.layer for node in network.graph.nodes]  # every layer, blocks and groups expanded
    layers = [layer.model_dump() if hasattr(layer, "model_dump") else vars(layer) for layer in nodes]
    return {
        "name": tag(network.name),
        "input": tag(network.input),
        "layers": [{key: tag(value) for key, value in layer.items()} for layer in layers],
    }


def both(data):
    """(plain network or None, Pydantic network or None)."""
    try:
        model = S.network_from_data(data)
    except S.SpecError:
        model = None
    return specfile.plain_network(data), model


def test_the_shipped_schema_is_the_models_schema():
    shipped = json.loads((ROOT / "convcalc" / "spec.schema.json").read_text())
    assert shipped == S.json_schema(), "regenerate it: convcalc schema > convcalc/spec.schema.json"


def test_the_engine_handles_every_layer_type():
    assert set(REGISTRY) == set(S.LAYER_CLASSES)


@pytest.mark.parametrize("path", SHIPPED_SPECS, ids=lambda p: p.name)
def test_shipped_specs_take_the_plain_path_to_the_same_analysis(path):
    data = yaml.safe_load(path.read_text())
    plain, model = both(data)
    assert plain is not None and model is not None
    assert plain_data(plain) == plain_data(model)
    assert render.to_json(engine.analyze(plain)) == render.to_json(engine.analyze(model))


@pytest.mark.parametrize(
    "layer",
    [
        {"type": "Conv2d", "out_channels": 4, "kernel_size": 3.0},  # Pydantic refuses
        {"type": "Conv2d", "out_channels": 4, "kernel_size": "3"},
        {"type": "Linear", "out_features": 4, "bias": "yes"},  # Pydantic's lax bool takes it
        {"type": "Flatten", "start_dim": 1.0},  # Pydantic's lax int takes it
        {"type": "Dropout", "p": True},
        {"type": "Conv2d", "out_channels": 4, "kernel_size": 3, "padding": "auto", "output_shape": [4, 8, 8]},
        {"type": "ReLU", "name": "train"},
        {"type": "ReLU", "name": "2nd"},
        {"type": "Relu7"},  # unknown: Pydantic words the did-you-mean
        {"type": "ReLU", "inplace": True},
    ],
)
def test_what_the_plain_path_leaves_to_pydantic(layer):
    """Errors, values Pydantic may coerce, and padding: auto: Pydantic decides (and words the error)."""
    assert specfile.plain_network({"input": [1, 8, 8], "layers": [layer]}) is None


def test_a_schema_rule_the_reader_does_not_know_sends_the_spec_to_pydantic(monkeypatch):
    """A constraint added to the models later (here multipleOf) must not be skipped silently."""
    data = yaml.safe_load((ROOT / "specs" / "lenet.yaml").read_text())
    assert specfile.plain_network(data) is not None
    changed = json.loads(json.dumps(specfile.schema()))
    changed["$defs"]["Conv2d"]["properties"]["out_channels"]["multipleOf"] = 4
    monkeypatch.setattr(specfile, "schema", lambda: changed)
    assert specfile.plain_network(data) is None


def test_case_defaults_and_pairs_are_pydantics():
    data = {"input": [3, 32, 32], "layers": [{"type": "conv2D", "out_channels": 8, "kernel_size": [3, 5]}]}
    plain, model = both(data)
    assert plain_data(plain) == plain_data(model)
    assert plain.layers[0].type == "Conv2d" and plain.layers[0].kernel_size == (3, 5)


# --------------------------------------------------------------------------------------
# Hypothesis: mostly plausible spec data, with junk mixed in

JUNK = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**60), 2**60),
    st.booleans(),
    st.none(),
    st.sampled_from(["3", "same", "auto", "x", "", "none"]),
    st.lists(st.integers(-1, 9), max_size=4),
    st.lists(st.booleans(), min_size=2, max_size=2),
    st.dictionaries(st.sampled_from(["a", "type"]), st.integers(0, 3), max_size=2),
)
SMALL = st.integers(1, 6)
PAIR = st.one_of(SMALL, st.lists(SMALL, min_size=2, max_size=2))
PAD = st.one_of(st.integers(0, 3), st.lists(st.integers(0, 3), min_size=2, max_size=2))
BOOL = st.booleans()
UNIT = st.one_of(st.floats(0, 1), st.sampled_from([0, 1]))
PLAUSIBLE = {
    **dict.fromkeys(["out_channels", "in_channels", "in_features", "out_features", "num_features"], SMALL),
    "groups": st.sampled_from([1, 1, 2]),
    "chunks": st.sampled_from([1, 2, 3]),  # Chunk
    "index": st.integers(0, 2),
    **dict.fromkeys(["kernel_size", "stride", "dilation", "output_size"], PAIR),
    "padding": st.one_of(PAD, st.sampled_from(["same", "valid", "auto"])),
    "output_padding": PAD,
    "output_shape": st.lists(st.integers(1, 9), min_size=2, max_size=3),
    **dict.fromkeys(
        ["bias", "affine", "ceil_mode", "count_include_pad", "track_running_stats"], st.booleans()
    ),
    **dict.fromkeys(["p", "momentum"], UNIT),
    "eps": st.one_of(st.floats(1e-6, 1), st.just(1)),
    **dict.fromkeys(["negative_slope", "alpha"], st.one_of(st.floats(-2, 2), st.integers(-2, 2))),
    **dict.fromkeys(["start_dim", "end_dim"], st.integers(-4, 4)),
    "dim": st.one_of(st.integers(-4, 4), st.none()),
    "approximate": st.sampled_from(["none", "tanh"]),
    "name": st.sampled_from([None, None, None, "a", "b", "conv2d_0", "relu_1", "train", "class", "2x", "_x"]),
    "inputs": st.sampled_from([None, "input", ["input", "input"], "a", "nowhere"]),
    "repeat": st.sampled_from([1, 1, 2]),
    **dict.fromkeys(["beta", "init", "max_val", "min_val", "threshold", "value"], st.floats(-2, 2)),
    **dict.fromkeys(["align_corners", "elementwise_affine"], st.booleans()),
    **dict.fromkeys(["upscale_factor", "downscale_factor", "num_groups", "num_channels"], SMALL),
    "num_parameters": st.sampled_from([1, 2]),
    "act": st.sampled_from(["ReLU", "SiLU", None, "relu", "Swish"]),  # BatchNormAct2d
    "mode": st.sampled_from(["nearest", "bilinear", "linear"]),
    "normalized_shape": st.one_of(SMALL, st.lists(SMALL, min_size=1, max_size=2)),
    "scale_factor": st.one_of(st.none(), st.sampled_from([2, 2.0, 0.5])),
    "size": st.one_of(st.none(), SMALL, st.lists(SMALL, min_size=2, max_size=2)),
    "unflattened_size": st.lists(SMALL, min_size=1, max_size=3),
    "shape": st.lists(SMALL, min_size=0, max_size=4),  # Parameter
    "std": st.one_of(st.none(), st.floats(0, 1)),
    "dims": st.one_of(st.permutations([0, 1, 2, 3]), st.lists(st.integers(-4, 4), max_size=5)),  # Permute
}


def mostly(draw, plausible):
    """A plausible value, or one time in twenty junk."""
    return draw(JUNK) if draw(st.integers(0, 19)) == 0 else draw(plausible)


@st.composite
def layer_data(draw):
    kind = draw(st.sampled_from(sorted(S.LAYER_CLASSES)))
    fields = [f for f in S.LAYER_CLASSES[kind].model_fields if f != "type"]
    spelling = draw(st.sampled_from([kind, kind.lower(), kind.upper()]))
    layer = {"type": mostly(draw, st.just(spelling))}
    required = [f for f in fields if S.LAYER_CLASSES[kind].model_fields[f].is_required()]
    chosen = required + draw(st.lists(st.sampled_from(fields), max_size=3, unique=True))
    for name in chosen:
        layer[name] = mostly(draw, PLAUSIBLE[name])
    if draw(st.integers(0, 19)) == 0:
        layer[draw(st.sampled_from(["kernal_size", "inplace", "padding_mode"]))] = 1
    if draw(st.integers(0, 19)) == 0:
        del layer[draw(st.sampled_from(sorted(layer)))]
    return layer


@st.composite
def spec_data(draw):
    data = {
        "name": mostly(draw, st.sampled_from(["net", "lenet"])),
        "input": mostly(draw, st.lists(st.integers(1, 12), min_size=3, max_size=3)),
        "layers": draw(st.lists(layer_data(), max_size=5)),
    }
    if draw(st.integers(0, 9)) == 0:
        del data[draw(st.sampled_from(["name", "input", "layers"]))]
    if draw(st.integers(0, 19)) == 0:
        data["inputs"] = [1, 2, 3]
    return data


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec_data())
def test_the_plain_path_agrees_with_pydantic(data):
    plain, model = both(data)
    event("plain" if plain is not None else "pydantic accepts" if model is not None else "refused")
    if plain is None:
        return
    assert model is not None, "the plain path accepted what Pydantic refuses"
    assert plain_data(plain) == plain_data(model)
    assert render.to_json(engine.analyze(plain)) == render.to_json(engine.analyze(model))


SCALARS = ["1", "-2", "0", "012", "0x1f", "0o17", "1_000", "1:30", "1.5", "-.5e3", ".inf", ".NaN",
           "yes", "No", "on", "~", "null", "Null", "'3'", '"x"', "2019-01-01", "!!str 5", "!!float 3",
           "abc", "-", "+1"]  # fmt: skip


@given(st.recursive(st.sampled_from(SCALARS), lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.sampled_from(["a", "b", "1", "null", "2.5"]), inner, max_size=3),
                    max_leaves=12))  # fmt: skip
@settings(max_examples=150, deadline=None)
def test_the_fast_yaml_constructor_builds_what_pyyaml_builds(tree):
    """parse_text builds plain documents itself (issue 17: PyYAML's constructor was the largest
    cost of a 10,000-layer shape); the data must be PyYAML's, value and type, for any scalar."""

    def flow(value) -> str:
        if isinstance(value, list):
            return "[" + ", ".join(map(flow, value)) + "]"
        if isinstance(value, dict):
            return "{" + ", ".join(f"{key}: {flow(item)}" for key, item in value.items()) + "}"
        return value

    text = f"value: {flow(tree)}\n"
    data, _ = specfile.parse_text(text, "net.yaml")
    expected = yaml.safe_load(text)
    assert repr(data) == repr(expected)
