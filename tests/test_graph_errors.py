"""Graph mistakes are found before runtime and named with the place and the fix (issue 10, 6)."""

from __future__ import annotations

import json

import pytest

from convcalc import spec as S
from convcalc.engine import analyze
from tests.conftest import run_cli

BLOCKS = """blocks:
  B: {params: {c: null}, layers: [{type: Conv2d, out_channels: $c, kernel_size: 3}]}
  Loop: {layers: [{type: Loop}]}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(S.SpecError) as error:
        S.parse_spec(text, "net.yaml")
    return error.value.problems


def engine_errors(text: str) -> list[str]:
    analysis = analyze(S.parse_spec(text, "net.yaml"))
    return [str(problem) for problem in analysis.errors]


def test_add_of_different_shapes_names_both_and_proposes_the_projection():
    (message,) = engine_errors(
        "input: [3, 56, 56]\nlayers:\n"
        "  - {type: Conv2d, name: a, out_channels: 64, kernel_size: 3, padding: 1}\n"
        "  - {type: Conv2d, name: b, out_channels: 128, kernel_size: 3, stride: 2, padding: 1}\n"
        "  - {type: Add, inputs: [b, a]}\n"
    )
    assert "b (128×28×28) and a (64×56×56)" in message and "shapes must match" in message
    assert "Conv2d(out_channels: 128, kernel_size: 1, stride: 2) on a" in message


def test_cat_of_different_sizes_says_by_how_much_to_crop():
    (message,) = engine_errors(
        "input: [3, 56, 56]\nlayers:\n"
        "  - {type: Conv2d, name: a, out_channels: 64, kernel_size: 3, padding: 1}\n"
        "  - {type: Conv2d, name: d, out_channels: 8, kernel_size: 5, inputs: a}\n"
        "  - {type: Cat, inputs: [a, d]}\n"
    )
    assert "a (64×56×56) and d (8×52×52)" in message and "crop a by 2 on each side" in message


def test_cat_of_cropped_skip_is_valid():
    """U-Net's crop: a ZeroPad2d with negative padding, read from the encoder."""
    analysis = analyze(S.parse_spec(
        "input: [3, 56, 56]\nlayers:\n"
        "  - {type: Conv2d, name: a, out_channels: 64, kernel_size: 3, padding: 1}\n"
        "  - {type: Conv2d, name: d, out_channels: 8, kernel_size: 5}\n"
        "  - {type: ZeroPad2d, name: crop, padding: -2, inputs: a}\n"
        "  - {type: Cat, inputs: [crop, d]}\n"
    ))  # fmt: skip
    assert analysis.ok and analysis.output_shape == (72, 52, 52)


@pytest.mark.parametrize(
    ("layers", "expected"),
    [
        (
            "  - {type: ReLU, name: a}\n  - {type: ReLU, inputs: aa}\n",
            "no layer named 'aa' above; did you mean 'a'?",
        ),
        ("  - {type: ReLU, inputs: later}\n  - {type: ReLU, name: later}\n", "'later' is a later layer"),
        ("  - {type: B}\n", "block B needs c; e.g. {type: B, c: 64}"),
        ("  - {type: B, c: 2, cc: 3}\n", "block B has no parameter 'cc'; did you mean 'c'?"),
        ("  - {type: Loop}\n", "block Loop uses itself"),
        ("  - {type: Bb, c: 2}\n", "unknown layer type 'Bb'; did you mean 'B'?"),
        ("  - {type: Sequential, layers: []}\n", "a Sequential needs a non-empty list of layers"),
        ("  - {type: ReLU, name: a}\n  - {type: ReLU, name: a}\n", "name 'a' is already used"),
    ],
)
def test_structural_mistakes_name_the_place_and_the_fix(layers, expected):
    found = problems(f"input: [3, 8, 8]\n{BLOCKS}layers:\n{layers}")
    assert any(expected in message and message.startswith("net.yaml:") for message in found), found


def test_every_structural_mistake_is_reported_at_once():
    found = problems(
        f"input: [3, 8, 8]\n{BLOCKS}layers:\n  - {{type: B}}\n  - {{type: ReLU, inputs: nowhere}}\n"
    )
    assert len(found) == 2


def test_an_unused_branch_is_a_warning_naming_it():
    analysis = analyze(S.parse_spec(
        "input: [3, 8, 8]\nlayers:\n  - {type: Conv2d, name: side, out_channels: 2, kernel_size: 1}\n"
        "  - {type: ReLU, inputs: input}\n"
    ))  # fmt: skip
    assert analysis.ok
    assert any("side" in str(w) and "not used" in str(w) for w in analysis.warnings)


def test_paths_not_aligned_are_warned_about():
    """A merge of paths whose units sit at different input positions (receptive_field's check)."""
    analysis = analyze(S.parse_spec(
        "input: [1, 16, 16]\nlayers:\n"
        "  - {type: Conv2d, name: a, out_channels: 2, kernel_size: 3, padding: 1}\n"
        "  - {type: Conv2d, name: b, out_channels: 2, kernel_size: 2, padding: 0, inputs: input}\n"
        "  - {type: ZeroPad2d, name: p, padding: [0, 1, 0, 1]}\n"
        "  - {type: Add, inputs: [a, p]}\n"
    ))  # fmt: skip
    assert any("not aligned" in str(w) for w in analysis.warnings), analysis.warnings


def test_shape_cli_reports_graph_errors_cleanly(tmp_path):
    spec = tmp_path / "net.yaml"
    spec.write_text(f"input: [3, 8, 8]\n{BLOCKS}layers:\n  - {{type: ReLU, inputs: nowhere}}\n")
    result = run_cli("shape", str(spec))
    assert result.returncode == 1 and "no layer named 'nowhere'" in result.stderr
    assert "Traceback" not in result.stderr


def test_shape_json_of_a_graph_has_inputs_and_paths():
    result = run_cli("shape", "specs/resnet18.yaml", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    layers = {layer["name"]: layer for layer in data["layers"]}
    assert layers["layer1.0.add"]["inputs"] == ["layer1.0.bn2", "maxpool"]
    assert layers["layer2.0.downsample.0"]["inputs"] == ["layer1.1.relu2"]
    groups = {group["name"]: group for group in data["groups"]}
    assert groups["layer2.0"] == {"name": "layer2.0", "type": "DownBlock", "output": "layer2.0.relu2"}
    assert data["output"] == "fc"


def test_depth_folds_blocks_into_one_row_with_their_totals():
    full = json.loads(run_cli("shape", "specs/resnet18.yaml", "--json").stdout)
    result = run_cli("shape", "specs/resnet18.yaml", "--depth", "1")
    assert result.returncode == 0, result.stderr
    layer2 = next(line for line in result.stdout.splitlines() if " layer2 " in line)
    params = sum(layer["params"] for layer in full["layers"] if layer["name"].startswith("layer2."))
    assert f"{params:,}" in layer2 and "Sequential" in layer2 and "128×28×28" in layer2
    assert "layer2.0.conv1" not in result.stdout


def test_a_repeated_name_with_n_names_the_copies_in_place():
    network = S.parse_spec(
        "input: [3, 8, 8]\nlayers:\n"
        "  - {type: Conv2d, name: 'conv{n}', out_channels: 3, kernel_size: 1, repeat: 3}\n"
        "  - {type: ReLU, name: 'act{i}', repeat: 2}\n"
    )
    assert [row.name for row in analyze(network).rows] == ["conv1", "conv2", "conv3", "act0", "act1"]
    assert analyze(network).rows[3].inputs == (2,)


def test_a_repeated_name_pattern_that_is_not_an_identifier_is_an_error():
    (message,) = problems("input: [3, 8, 8]\nlayers:\n  - {type: ReLU, name: '{n}x', repeat: 2}\n")
    assert "name '1x' is not a Python identifier" in message


def test_padding_auto_is_solved_inside_a_block_for_every_use():
    """solve's padding: auto works in a block body: each use gets its own solution."""
    network = S.parse_spec(
        "input: [3, 16, 16]\nblocks:\n  Keep:\n    params: {c: null, k: 3}\n    layers:\n"
        "      - {type: Conv2d, out_channels: $c, kernel_size: $k, padding: auto,"
        " output_shape: [$c, 16, 16]}\n"
        "layers:\n  - {type: Keep, c: 4}\n  - {type: Keep, c: 8, k: 5}\n"
    )
    analysis = analyze(network)
    assert analysis.ok and [row.output_shape for row in analysis.rows] == [(4, 16, 16), (8, 16, 16)]
    assert [row.inferred["padding"] for row in analysis.rows] == [(1, 1), (2, 2)]


@pytest.mark.parametrize("depth", [60, 2000])
def test_nesting_too_deep_is_an_error_not_a_crash(tmp_path, depth):
    text = '{"input": [1, 4, 4], "layers": [' + '{"type": "Sequential", "layers": [' * depth
    text += '{"type": "ReLU"}' + "]}" * depth + "]}"
    spec = tmp_path / "deep.json"
    spec.write_text(text)
    result = run_cli("shape", str(spec))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "nest more than 50 deep" in result.stderr or "nested too deeply" in result.stderr


def test_hostile_bytes_are_errors_not_tracebacks(tmp_path):
    """Random bytes on stdin, an integer of 5,000 digits (Python's int-to-string limit): a message."""
    import subprocess
    import sys

    random_bytes = bytes(range(128, 256)) * 4
    process = subprocess.run([sys.executable, "-m", "convcalc", "shape", "-"], input=random_bytes,
                             capture_output=True)  # fmt: skip
    assert process.returncode == 1 and b"not UTF-8" in process.stderr and b"Traceback" not in process.stderr
    spec = tmp_path / "big.yaml"
    spec.write_text("input: [1, 28, 28]\nlayers:\n  - {type: Linear, out_features: " + "9" * 5000 + "}\n")
    result = run_cli("shape", str(spec))
    assert (
        result.returncode == 1
        and "use a smaller number" in result.stderr
        and "Traceback" not in result.stderr
    )


def test_yaml_aliases_that_expand_past_a_million_values_or_recurse_are_refused_at_once(tmp_path):
    laughs = "input: [1, 8, 8]\nx0: &x0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
    for i in range(1, 7):
        laughs += f"x{i}: &x{i} [" + ", ".join([f"*x{i - 1}"] * 10) + "]\n"
    laughs += "layers: []\n"
    for text, expected in (
        (laughs, "values, more than 1,000,000"),
        ("input: [1, 8, 8]\nlayers: &a [*a]\n", "endlessly"),
    ):
        spec = tmp_path / "laughs.yaml"
        spec.write_text(text)
        result = run_cli("shape", str(spec), timeout=30)
        assert result.returncode == 1 and expected in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("extra", ["112: ", "null: 3", "true: 1"])
def test_a_block_use_with_a_key_that_is_not_a_string_is_an_error_not_a_crash(tmp_path, extra):
    # found by test_fuzz: a mangled flow mapping made an int key, which difflib and join choked on
    path = tmp_path / "net.yaml"
    path.write_text(f"input: [1, 8, 8]\n{BLOCKS}layers:\n  - {{type: B, c: 4, {extra}}}\n")
    result = run_cli("shape", str(path))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "net.yaml:" in result.stderr and "error:" in result.stderr


@pytest.mark.parametrize("value", ["false", "3", "{a: 1}", "1.5"])
def test_inputs_that_are_not_names_inside_a_block_are_an_error_not_a_crash(value):
    # a group in a block is raw data, validated by the graph: `inputs: false` reached list()
    group = f"{{type: Sequential, inputs: {value}, layers: [{{type: ReLU}}]}}"
    text = f"input: [1, 8, 8]\nblocks:\n  R: {{layers: [{{type: ReLU}}, {group}]}}\nlayers: [{{type: R}}]\n"
    assert any("layer 1: inputs: give a layer name or a list of names" in p for p in problems(text))
