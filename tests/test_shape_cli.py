"""`convcalc shape`: golden output, the JSON interface, errors, warnings, and no torch."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from convcalc import spec as S
from convcalc.engine import analyze
from tests.conftest import ROOT, SHIPPED_SPECS, run_cli

# Famous networks: the only hard-coded numbers (published counts; torchvision's models agree).
FAMOUS = {
    "lenet.yaml": (44_426, [10]),
    "lenet5.yaml": (61_706, [10]),
    "alexnet.yaml": (61_100_840, [1000]),
    "vgg16.yaml": (138_357_544, [1000]),
}


def test_golden_lenet_table(golden):
    result = run_cli("shape", "specs/lenet.yaml")
    assert result.returncode == 0, result.stderr
    golden("shape_lenet.txt", result.stdout)


def test_golden_lenet_explain(golden):
    result = run_cli("shape", "specs/lenet.yaml", "--explain")
    assert result.returncode == 0, result.stderr
    assert "H = ⌊(28 + 0 + 0 − 1·(5−1) − 1)/1⌋ + 1 = 24" in result.stdout
    golden("shape_lenet_explain.txt", result.stdout)


@pytest.mark.parametrize("name", sorted(FAMOUS))
def test_famous_networks(name):
    data = json.loads(run_cli("shape", f"specs/{name}", "--json").stdout)
    params, output = FAMOUS[name]
    assert (data["total_params"], data["output_shape"]) == (params, output)


def test_json_interface():
    result = run_cli("shape", "specs/lenet.yaml", "--json")
    assert result.returncode == 0
    data = json.loads(result.stdout)
    assert list(data) == [
        "name", "input_shape", "layers", "groups", "output", "output_shape", "total_params",
        "trainable_params", "total_macs", "warnings", "errors",
    ]  # fmt: skip
    first = data["layers"][0]
    assert list(first) == [
        "index", "name", "type", "inputs", "output_shape", "params", "trainable_params", "macs",
        "memory_bytes", "receptive_field", "jump", "start", "warnings",
    ]  # fmt: skip
    assert first["output_shape"] == [6, 24, 24] and first["receptive_field"] == [5, 5]
    assert data["input_shape"] == [1, 28, 28] and data["errors"] == []
    assert first["inputs"] == ["input"] and data["layers"][1]["inputs"] == [first["name"]]
    assert data["groups"] == [] and data["output"] == data["layers"][-1]["name"]
    # Totals are the sums of the rows (torchinfo's model_statistics test).
    assert data["total_params"] == sum(layer["params"] for layer in data["layers"])
    assert data["total_macs"] == sum(layer["macs"] for layer in data["layers"])
    # Conv MACs: Cout·Hout·Wout·Cin·kh·kw, computed here from the row's own shape.
    assert first["macs"] == 6 * 24 * 24 * 1 * 5 * 5
    assert first["memory_bytes"] == 6 * 24 * 24 * 4


def test_input_override():
    data = json.loads(run_cli("shape", "specs/lenet.yaml", "--json", "--input", "1x32x32").stdout)
    assert data["input_shape"] == [1, 32, 32] and data["layers"][0]["output_shape"] == [6, 28, 28]
    bad = run_cli("shape", "specs/lenet.yaml", "--input", "big")
    assert bad.returncode == 1 and "CxHxW" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.parametrize("path", SHIPPED_SPECS, ids=lambda p: p.name)
def test_every_shipped_spec_analyses(path):
    text = path.read_text()
    assert text.startswith("#"), "each spec starts with a comment header saying what it shows"
    analysis = analyze(S.load_spec(path))
    assert analysis.ok, analysis.errors
    assert analysis.total_params == sum(row.params for row in analysis.rows)


IMPOSSIBLE = {  # case: (input, layer(s), message)
    "output below 1": (
        "[1, 4, 4]",
        "{type: Conv2d, out_channels: 2, kernel_size: 5}",
        "output size 0×0 is below 1",
    ),
    "channel mismatch": (
        "[3, 8, 8]",
        "{type: Conv2d, in_channels: 1, out_channels: 2, kernel_size: 3}",
        "in_channels=1 but the input has 3",
    ),
    "groups": (
        "[3, 8, 8]",
        "{type: Conv2d, out_channels: 4, kernel_size: 3, groups: 2}",
        "groups=2 does not divide in_channels=3",
    ),
    "same with stride": (
        "[1, 8, 8]",
        "{type: Conv2d, out_channels: 1, kernel_size: 3, stride: 2, padding: same}",
        "padding='same' needs stride 1",
    ),
    "pool padding": (
        "[1, 8, 8]",
        "{type: MaxPool2d, kernel_size: 2, padding: 2}",
        "more than half the kernel size",
    ),
    "output_padding": (
        "[1, 8, 8]",
        "{type: ConvTranspose2d, out_channels: 1, kernel_size: 3, stride: 2, output_padding: 2}",
        "must be smaller than max(stride, dilation)",
    ),
    "linear on spatial": ("[16, 4, 4]", "{type: Linear, out_features: 10}", "add a Flatten"),
    "in_features": (
        "[16, 4, 4]",
        "{type: Flatten}\n  - {type: Linear, in_features: 250, out_features: 10}",
        "in_features=250 but the input has 256",
    ),
}


@pytest.mark.parametrize("case", sorted(IMPOSSIBLE))
def test_impossible_networks_exit_1_naming_the_layer(case, tmp_path):
    input_shape, layer, message = IMPOSSIBLE[case]
    spec = tmp_path / "bad.yaml"
    spec.write_text(f"name: bad\ninput: {input_shape}\nlayers:\n  - {layer}\n")
    result = run_cli("shape", str(spec))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert message in result.stderr and "fix:" in result.stderr
    assert "layer 0 (" in result.stderr or "layer 1 (" in result.stderr
    as_json = run_cli("shape", str(spec), "--json")
    assert as_json.returncode == 1
    errors = json.loads(as_json.stdout)["errors"]
    assert errors and message in errors[0]["message"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "name: t\ninput: [1, 28, 28]\nlayers:\n  - {type: Conv2d, out_channels: 6, kernal_size: 5}\n",
            "bad.yaml:4: layer 0 (Conv2d): field 'kernal_size'",
        ),
        ("name: t\ninput: [1, 28, 28]\nlayers:\n  - {type: ReLU\n", "bad.yaml:5:"),
        (
            "name: t\ninput: [1, 28, 28]\nlayers:\n  - {type: Conv2d, out_channels: 6, kernel_size: -1}\n",
            "field 'kernel_size'",
        ),
    ],
)
def test_invalid_spec_files_exit_1_without_traceback(text, expected, tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text(text)
    result = run_cli("shape", str(spec), cwd=tmp_path)
    assert result.returncode == 1 and result.stdout == ""
    assert expected in result.stderr and "Traceback" not in result.stderr


def test_missing_file():
    result = run_cli("shape", "no/such/spec.yaml")
    assert result.returncode == 1 and "no such file" in result.stderr and "Traceback" not in result.stderr


def test_unseen_rows_warning():
    network = S.Network(input=(1, 28, 28), layers=[S.Conv2d(out_channels=1, kernel_size=5, stride=2)])
    (warning,) = analyze(network).warnings
    # 28 rows, windows of 5 every 2: the last starts at 2·⌊(28−5)/2⌋ = 22 and ends at 26: row 27 unseen.
    assert "the last 1 row and the last 1 column" in str(warning)


def test_receptive_field_larger_than_input_warns_once():
    network = S.Network(input=(1, 8, 8), layers=[S.Conv2d(out_channels=1, kernel_size=3, padding=1)] * 6)
    warnings = analyze(network).warnings
    assert len(warnings) == 1 and warnings[0].index == 3 and "larger than the 8×8 input" in str(warnings[0])


def test_warnings_go_to_stderr_and_exit_0(tmp_path):
    spec = tmp_path / "w.yaml"
    spec.write_text(
        "input: [1, 28, 28]\nlayers:\n  - {type: Conv2d, out_channels: 1, kernel_size: 5, stride: 2}\n"
    )
    result = run_cli("shape", str(spec))
    assert result.returncode == 0 and "warning: layer 0" in result.stderr


def test_spec_from_standard_input():
    piped = run_cli("shape", "-", "--json", stdin=(ROOT / "specs/lenet.yaml").read_text())
    from_file = run_cli("shape", "specs/lenet.yaml", "--json")
    assert piped.returncode == 0 and json.loads(piped.stdout) == json.loads(from_file.stdout)
    bad = run_cli("shape", "-", stdin="input: [1, 28, 28]\nlayers:\n  - {type: Conv2d, kernal_size: 3}\n")
    assert bad.returncode == 1 and bad.stderr.startswith("error: <stdin>:3: layer 0 (Conv2d)")


def test_text_from_the_spec_is_printed_as_written(tmp_path):
    """A ':smile:' or '[bold]' in a spec's name is text, not a rich emoji code or markup."""
    spec = tmp_path / "n.yaml"
    spec.write_text('name: "net:smile:[bold]x"\ninput: [1, 8, 8]\nlayers:\n  - {type: ReLU}\n')
    result = run_cli("shape", str(spec))
    assert result.returncode == 0 and "net:smile:[bold]x" in result.stdout


def test_shape_imports_neither_torch_nor_textual_nor_pydantic():
    """torch and textual never; pydantic not for a valid spec (specfile's plain path)."""
    code = (
        "import sys\n"
        "from convcalc.cli import main\n"
        f"for spec in {[str(p) for p in SHIPPED_SPECS]!r}:\n"
        "    try:\n        main(['shape', spec, '--json'])\n"
        "    except SystemExit as exit:\n        assert exit.code == 0, exit.code\n"
        "loaded = {m.split('.')[0] for m in sys.modules}\n"
        "bad = sorted(loaded & {'pydantic', 'torch', 'torchinfo', 'textual'})\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_schema_command():
    result = run_cli("schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    refs = {item.get("$ref") for item in schema["properties"]["layers"]["items"]["oneOf"]}
    assert {"#/$defs/Conv1d", "#/$defs/Conv2d", "#/$defs/Conv3d", "#/$defs/Sequential"} <= refs
    assert schema["$defs"]["Conv2d"]["properties"]["type"]["const"] == "Conv2d"


def test_python_dash_m_and_version():
    result = run_cli("--version")
    assert result.returncode == 0 and "convcalc" in result.stdout
