"""The spec language: what loads, what is refused, and what the messages say."""

from __future__ import annotations

import json

import pytest

from convcalc import spec as S
from tests.conftest import SHIPPED_SPECS


def problems(text: str, source: str = "net.yaml") -> list[str]:
    with pytest.raises(S.SpecError) as info:
        S.parse_spec(text, source)
    return info.value.problems


LENET_HEAD = "name: t\ninput: [1, 28, 28]\nlayers:\n"


def test_lenet_loads_with_derived_names():
    network = S.load_spec("specs/lenet.yaml")
    names = S.layer_names(network)
    assert names[:3] == ["c1", "relu_0", "s2"]
    assert names[6] == "flatten_0"
    assert network.layers[2].stride == 2 and network.layers[2].dilation == 1


def test_type_is_case_insensitive():
    network = S.parse_spec(
        LENET_HEAD + "  - {type: conv2d, out_channels: 6, kernel_size: 5}\n  - {type: RELU}\n"
    )
    assert [layer.type for layer in network.layers] == ["Conv2d", "ReLU"]


def test_defaults_are_torch_defaults():
    pool = S.MaxPool2d(kernel_size=3)
    assert pool.stride is None and pool.padding == 0 and pool.dilation == 1 and pool.ceil_mode is False
    conv = S.Conv2d(out_channels=1, kernel_size=3)
    assert (conv.stride, conv.padding, conv.dilation, conv.groups, conv.bias) == (1, 0, 1, 1, True)
    assert S.Flatten().start_dim == 1 and S.Flatten().end_dim == -1


def test_unknown_field_names_layer_line_and_suggests():
    (message,) = problems(
        LENET_HEAD + "  - {type: ReLU}\n  - {type: Conv2d, out_channels: 6, kernal_size: 5, name: c1}\n"
    )[1:]
    assert message.startswith("net.yaml:5: layer 1 (c1, Conv2d): field 'kernal_size'")
    assert "did you mean 'kernel_size'" in message


def test_missing_required_field():
    (message,) = problems(LENET_HEAD + "  - {type: Linear}\n")
    assert "net.yaml:4: layer 0 (Linear): field 'out_features'" in message and "missing" in message


def test_unknown_type_suggests_the_closest():
    (message,) = problems(LENET_HEAD + "  - {type: Con2d, out_channels: 1, kernel_size: 1}\n")
    assert "layer 0 (Con2d)" in message and "did you mean 'Conv2d'" in message


def test_missing_type_lists_types():
    (message,) = problems(LENET_HEAD + "  - {out_channels: 1}\n")
    assert "missing 'type'" in message and "MaxPool2d" in message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", "expected an integer >= 1"),
        ("[3, true]", "expected an integer >= 1"),
        ("3.0", "expected"),
        ('"3"', "expected"),
    ],
)
def test_bad_kernel_size_is_one_message(value, expected):
    (message,) = problems(LENET_HEAD + f"  - {{type: MaxPool2d, kernel_size: {value}}}\n")
    assert "field 'kernel_size'" in message and expected in message


def test_padding_accepts_same_and_valid_only_for_conv2d():
    network = S.parse_spec(
        LENET_HEAD + "  - {type: Conv2d, out_channels: 1, kernel_size: 3, padding: same}\n"
    )
    assert network.layers[0].padding == "same"
    (message,) = problems(LENET_HEAD + "  - {type: MaxPool2d, kernel_size: 3, padding: same}\n")
    assert "field 'padding'" in message


def test_every_problem_is_reported_at_once():
    found = problems(LENET_HEAD + "  - {type: Linear}\n  - {type: ReLU, bogus: 1}\n  - {type: Nope}\n")
    assert [m.split(":")[1] for m in found] == ["4", "5", "6"]


def test_yaml_syntax_error_reports_the_line():
    (message,) = problems("name: t\ninput: [1, 28, 28]\nlayers:\n  - {type: ReLU\n  - {type: ReLU}\n")
    assert message.startswith("net.yaml:5:") and "invalid YAML" in message


def test_json_syntax_error_reports_the_line():
    (message,) = problems('{"input": [1, 28, 28],\n "layers": [}', source="net.json")
    assert message.startswith("net.json:2:") and "invalid JSON" in message


def test_json_spec_loads(tmp_path):
    path = tmp_path / "net.json"
    path.write_text(
        json.dumps({"input": [3, 8, 8], "layers": [{"type": "Conv2d", "out_channels": 4, "kernel_size": 3}]})
    )
    assert S.load_spec(path).layers[0].out_channels == 4


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[]", "a spec is a mapping"),
        ("", "the file is empty; a spec is a mapping"),
        ("input: []\nlayers: []\n", "field 'input': give [channels, height, width]"),
        ("input: [1, 2, 3, 4, 5]\nlayers: []\n", "[channels, depth, height, width]), not [1, 2, 3, 4, 5]"),
        ("input: [1, 0, 28]\nlayers: []\n", "e.g. [1, 28, 28]; also"),
        ("layers: []\n", "field 'input': required field is missing; give input: [channels, height, width]"),
        (LENET_HEAD + "  - 7\n", "layer 0: a layer is a mapping such as {type: Conv2d"),
        (LENET_HEAD + "  - {type: Dropout, p: 2}\n", "field 'p': 2 given; should be less than or equal to 1"),
        (
            LENET_HEAD + "  - {type: Linear, out_features: 9, bias: 7}\n",
            "'bias': 7 given; should be a valid boolean",
        ),
        ("input: [1, 28, 28]\nlayerz: []\n", "field 'layerz': unknown field"),
        (LENET_HEAD + "  - {type: ReLU, name: 2nd}\n", "not a Python identifier"),
        (LENET_HEAD + "  - {type: ReLU, name: a}\n  - {type: ReLU, name: a}\n", "already used by layer 0"),
        (LENET_HEAD + "  - {type: ReLU, name: class}\n", "not a Python identifier"),
    ],
)
def test_network_level_problems(text, expected):
    found = problems(text)
    assert any(expected in message for message in found), found


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(S.SpecError, match="no such file"):
        S.load_spec(tmp_path / "missing.yaml")
    with pytest.raises(S.SpecError, match="is a folder"):
        S.load_spec(tmp_path)


def test_explicit_names_are_not_reused_by_derived_ones():
    network = S.parse_spec(LENET_HEAD + "  - {type: ReLU}\n  - {type: ReLU, name: relu_0}\n")
    assert S.layer_names(network) == ["relu_1", "relu_0"]


@pytest.mark.parametrize("path", SHIPPED_SPECS, ids=lambda p: p.name)
def test_dump_round_trips(path):
    network = S.load_spec(path)
    assert S.parse_spec(S.dump_spec(network)) == network


def test_schema_describes_every_field():
    schema = S.json_schema()
    for name, definition in schema["$defs"].items():
        for field, prop in definition.get("properties", {}).items():
            assert prop.get("description"), f"{name}.{field} has no description"
    assert set(schema["properties"]) == {"name", "input", "blocks", "layers", "output"}


@pytest.mark.parametrize("name", ["train", "forward", "to", "_modules", "__init__"])
def test_names_torch_modules_own_are_refused(name):
    (message,) = problems(LENET_HEAD + f"  - {{type: ReLU, name: {name}}}\n")
    assert f"name '{name}' is taken by torch.nn.Module" in message and "rename it" in message


def test_module_attributes_match_the_installed_torch():
    from torch import nn

    public = {name for name in dir(nn.Sequential()) if not name.startswith("_")}
    assert public == S.MODULE_ATTRIBUTES
