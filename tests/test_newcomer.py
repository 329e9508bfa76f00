"""Issue 18, a newcomer's findings: text commands without torch, output defects, the README's
examples against the real output, the test data found through an environment variable."""

from __future__ import annotations

import inspect
import json
import os
import re
import subprocess
import sys

import pytest

from convcalc import spec as S
from tests.conftest import ROOT, SPECS, run_cli

README = (ROOT / "README.md").read_text(encoding="utf-8")


# --------------------------------------------------------------------------------------
# export writes text: no torch


@pytest.mark.parametrize("name", ["lenet.yaml", "resnet18.yaml"])  # a plain stack, and a graph
def test_export_never_imports_torch(name, tmp_path):
    """export took 4-7 s because convcalc.build imported torch for writing source."""
    out = tmp_path / "model.py"
    code = (
        "import sys\n"
        "from convcalc.cli import main\n"
        f"try:\n    main(['export', {str(SPECS / name)!r}, '-o', {str(out)!r}])\n"
        "except SystemExit as exit:\n    assert exit.code == 0, exit.code\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
    from convcalc.export import export_source  # the same source as in a process with torch

    assert out.read_text(encoding="utf-8") == export_source(S.load_spec(SPECS / name))


def test_the_signature_table_is_torchs():
    """export reads constructor defaults and order from convcalc.torch_signatures: they must be
    the installed torch's (the merges are convcalc's own, built without keyword arguments)."""
    from convcalc.build import _MERGES, torch_class
    from convcalc.torch_signatures import SIGNATURES

    live = {
        name: tuple(
            (p.name, p.default)
            for p in list(inspect.signature(torch_class(name).__init__).parameters.values())[1:]
        )
        for name in S.LAYER_CLASSES
        if name not in _MERGES and name != "Parameter"  # a tensor (build.parameter), no constructor
    }
    assert SIGNATURES == live


def test_own_layers_are_the_same_in_build_and_export():
    from convcalc import build, export

    assert set(export.OWN_LAYERS) == set(build.OWN_LAYERS)


def test_a_one_layer_export_says_1_layer():
    from convcalc.export import export_source

    source = export_source(S.parse_spec("input: [3, 8, 8]\nlayers:\n  - {type: ReLU}\n"))
    assert ", 1 layer: (N, 3, 8, 8)" in source and "1 layers" not in source


# --------------------------------------------------------------------------------------
# Output defects


def test_summary_prints_torchinfo_units_not_the_enum():
    result = run_cli("summary", str(SPECS / "lenet.yaml"))
    assert result.returncode == 0, result.stderr
    assert "Units." not in result.stdout
    assert "Total mult-adds (M): 0.29" in result.stdout  # LeNet: 289,776 mult-adds


def test_data_info_piped_never_cuts_a_path(tmp_path):
    import torch

    from convcalc.data import write_idx

    folder = tmp_path / ("a" * 150) / "mnist"
    write_idx(folder / "t10k-labels-idx1-ubyte", torch.zeros(10000, dtype=torch.uint8))  # parses: unverified
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}  # a plain pipe: no COLUMNS
    result = subprocess.run(
        [sys.executable, "-m", "convcalc", "data", "info", "mnist", "--data-dir", str(folder), "--json"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert json.loads(result.stdout)["mnist"]["files"][3]["status"] == "unverified"
    table = subprocess.run(
        [sys.executable, "-m", "convcalc", "data", "info", "mnist", "--data-dir", str(folder)],
        capture_output=True, text=True, env={**env, "NO_COLOR": "1"}, cwd=ROOT, timeout=120,
    )  # fmt: skip
    row = next(line for line in table.stdout.splitlines() if "t10k-labels" in line)
    assert str(folder / "t10k-labels-idx1-ubyte") in row and "…" not in row


def test_solve_footer_does_not_wrap_at_the_table_width():
    result = run_cli("solve", "--in", "28", "--out", "1", "--limit", "2", env={"COLUMNS": "250"})
    lines = result.stdout.splitlines()
    footer = next(line for line in lines if line.startswith("searched:"))
    assert "k̂ = d·(k−1)+1, or 'same'" in footer  # one line, though longer than the table
    assert any(line.startswith("the first 2 of 2,135 shown; 2,133 more:") for line in lines)


def test_padding_same_reads_same_in_the_settings_column():
    spec = "input: [1, 28, 28]\nlayers:\n  - {type: Conv2d, out_channels: 4, kernel_size: 3, padding: same}\n"
    result = run_cli("shape", "-", stdin=spec)
    assert "4@3×3 s1 same" in result.stdout and "psame" not in result.stdout


# --------------------------------------------------------------------------------------
# The README's examples are the real output


def _block_after(marker: str, fence: str) -> str:
    start = README.index(marker)
    body = README.index(f"```{fence}\n", start) + len(fence) + 4
    return README[body : README.index("```", body)]


def test_readme_explain_example_is_the_real_output():
    example = _block_after("- `--explain` adds each layer's formulas", "text").rstrip("\n")
    result = run_cli("shape", str(SPECS / "lenet.yaml"), "--explain")
    assert example in result.stdout, "README's --explain example differs from the output"
    assert "RF W:" in example


def test_readme_json_example_is_the_real_output():
    example = json.loads(_block_after("### JSON format (`convcalc shape --json`)", "json"))
    real = json.loads(run_cli("shape", str(SPECS / "lenet.yaml"), "--json").stdout)
    assert example["layers"] == real["layers"][: len(example["layers"])]
    assert {k: v for k, v in example.items() if k != "layers"} == {
        k: v for k, v in real.items() if k != "layers"
    }


# --------------------------------------------------------------------------------------
# Test data outside ../shared


def test_the_mnist_folder_of_the_tests_follows_the_environment(tmp_path):
    code = "from tests.conftest import MNIST_DIR; print(MNIST_DIR)"
    env = {k: v for k, v in os.environ.items() if k not in ("CONVCALC_MNIST_DIR", "CONVCALC_DATA")}
    for extra, expected in (
        ({"CONVCALC_MNIST_DIR": str(tmp_path / "m")}, tmp_path / "m"),
        ({"CONVCALC_DATA": str(tmp_path)}, tmp_path / "mnist"),
        ({}, ROOT.parent / "shared" / "data" / "mnist"),
    ):
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env={**env, **extra}, cwd=ROOT
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == str(expected)
    assert re.search(r"CONVCALC_MNIST_DIR", README), "the README says how to point the tests at MNIST"


@pytest.mark.parametrize(
    "args",
    [
        ("solve", "--in", "28", "--out", "14"),
        ("solve", "--in", "224", "--rf", "100"),
        ("shape", "specs/lenet.yaml", "--explain"),
        ("memory", "specs/lenet.yaml"),
        ("data", "info"),
    ],
    ids=lambda args: " ".join(args[:2]),
)
def test_piped_output_has_no_spaces_at_line_ends(args):
    # rich pads a table's title to the table's width; files and diffs kept the padding
    result = run_cli(*args, cwd=ROOT, env={"COLUMNS": "200"})
    assert result.returncode == 0 and result.stdout.count("\n") > 3, result.stderr
    assert [line for line in result.stdout.splitlines() if line != line.rstrip(" ")] == []


def test_a_folded_block_of_one_layer_says_1_layer(tmp_path):
    spec = tmp_path / "net.yaml"
    spec.write_text(
        "name: one\ninput: [1, 8, 8]\n"
        "blocks:\n  B: {layers: [{type: Conv2d, out_channels: 2, kernel_size: 3}]}\n"
        "layers:\n  - {type: B, name: b1}\n  - {type: B, name: b2, repeat: 2}\n"
    )
    result = run_cli("shape", str(spec), "--depth", "1")
    assert result.returncode == 0, result.stderr
    assert " 1 layer " in result.stdout and "1 layers" not in result.stdout and " 2 layers " in result.stdout
