"""`convcalc export`: standalone PyTorch source that needs only torch and is the engine's model.

The exported file of every shipped spec is imported as a user would, instantiated with no
arguments, and measured by torch: parameter count and output shape must be the engine's, and the
modules must be build_model's (names, types, parameter shapes). It must pass a stock `ruff check`
(and be ruff-formatted) and `python -m py_compile`, and import nothing but torch.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys

import pytest
import torch

from convcalc import spec as S
from convcalc.build import OWN_LAYERS, build_model
from convcalc.engine import analyze
from convcalc.errors import ConvcalcError
from convcalc.export import class_name, export_source
from convcalc.files import write_atomically
from tests.conftest import SHIPPED_SPECS, SPECS, run_cli

torch.set_num_threads(1)
RUFF = [sys.executable, "-m", "ruff"]


def import_file(path):
    module_spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


# seconds each
HEAVY = {"densenet121", "googlenet", "r3d_18", "resnet50", "unet", "vgg16", "alexnet", "convnext_tiny"}


@pytest.mark.parametrize(
    "path",
    [pytest.param(p, marks=pytest.mark.slow) if p.stem in HEAVY else p for p in SHIPPED_SPECS],
    ids=lambda p: p.stem,
)
def test_exported_source_is_the_engines_model(path, tmp_path):
    network = S.load_spec(path)
    analysis = analyze(network)
    file = tmp_path / f"exported_{path.stem}.py"
    file.write_text(export_source(network), encoding="utf-8")
    module = import_file(file)
    model = getattr(module, class_name(network.name))()  # no arguments
    assert sum(p.numel() for p in model.parameters()) == analysis.total_params
    assert module.INPUT_SHAPE == tuple(network.input)
    model.eval()
    with torch.no_grad():
        out = model(torch.zeros(2, *module.INPUT_SHAPE))
    assert tuple(out.shape) == (2, *analysis.output_shape)
    built = build_model(network, initialize=False)
    merges = ("Add", "Mul", "Cat")  # functional in the exported forward (a + b), modules in build
    assert [(name, type(m).__name__) for name, m in model.named_modules() if name] == [
        (name, type(m).__name__)
        for name, m in built.named_modules()
        if name and type(m).__name__ not in merges
    ] or not analysis.straight  # a graph's classes are the export's own (Bottleneck, Bottleneck2)
    # convcalc's own modules (Permute, LayerNorm2d, ...): the exported file defines its copy
    own = lambda m: type(m).__name__ if type(m).__name__ in OWN_LAYERS else type(m)  # noqa: E731
    assert [(name, own(m)) for name, m in model.named_modules() if not list(m.children())] == [
        (name, own(m))
        for name, m in built.named_modules()
        if not list(m.children()) and type(m).__name__ not in merges
    ]
    assert {k: v.shape for k, v in model.state_dict().items()} == {
        k: v.shape for k, v in built.state_dict().items()
    }
    # the same weights give the same outputs: the exported forward is build_model's graph
    torch.manual_seed(0)
    reference = build_model(network)
    model.load_state_dict(reference.state_dict())
    reference.eval()
    x = torch.randn(2, *module.INPUT_SHAPE)
    with torch.no_grad():
        assert torch.equal(model(x), reference(x))


@pytest.mark.parametrize("path", SHIPPED_SPECS, ids=lambda p: p.stem)
def test_exported_source_passes_ruff_and_py_compile_and_needs_only_torch(path, tmp_path):
    source = export_source(S.load_spec(path))
    file = tmp_path / "model.py"
    file.write_text(source, encoding="utf-8")
    for command in (["check", "--isolated", "--select", "E,F,W,I,B,UP"], ["check", "--isolated"],
                    ["format", "--isolated", "--check"]):  # fmt: skip
        result = subprocess.run([*RUFF, *command, str(file)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
    result = subprocess.run([sys.executable, "-m", "py_compile", str(file)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module.split(".")[0])
    assert "torch" in imported and imported <= {"torch", "collections"}  # torch and the standard library
    assert "convcalc" not in source.split('"""', 2)[2]  # beyond the docstring, no trace of convcalc


def test_exported_file_runs_without_convcalc(tmp_path):
    """Run the file in a fresh interpreter where convcalc cannot be imported at all."""
    file = tmp_path / "lenet_model.py"
    file.write_text(export_source(S.load_spec(SPECS / "lenet.yaml")), encoding="utf-8")
    code = (
        "import sys; sys.modules['convcalc'] = None; import lenet_model, torch; "
        "m = lenet_model.Lenet(); print(tuple(m(torch.zeros(1, *lenet_model.INPUT_SHAPE)).shape))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(tmp_path)})  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str((1, *analyze(S.load_spec(SPECS / "lenet.yaml")).output_shape))


def test_readable_lenet():
    """The seed's style: sizes written out (the Flatten's product too), shapes in comments."""
    source = export_source(S.load_spec(SPECS / "lenet.yaml"))
    analysis = analyze(S.load_spec(SPECS / "lenet.yaml"))
    c, h, w = analysis.rows[5].output_shape  # s4, just before the Flatten
    assert f"self.f5 = nn.Linear({c} * {h} * {w}, 120)" in source
    assert "self.output = nn.Linear(84, 10)" in source  # `output` is a fine attribute name
    for row in analysis.rows:
        assert f"x = self.{row.name}(x)  # (N, {', '.join(map(str, row.output_shape))})" in source
    assert "class Lenet(nn.Module):" in source


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("lenet", "Lenet"),
        ("dilated_context", "DilatedContext"),
        ("vgg16", "Vgg16"),
        ("my-net v2", "MyNetV2"),
        ("3d", "Net3d"),
        ("__", "Network"),
    ],  # fmt: skip
)
def test_class_name(name, expected):
    assert class_name(name) == expected


# --------------------------------------------------------------------------------------
# The command


def test_export_to_stdout_and_to_a_file(tmp_path):
    expected = export_source(S.load_spec(SPECS / "lenet.yaml"))
    result = run_cli("export", "specs/lenet.yaml")
    assert result.returncode == 0, result.stderr
    assert result.stdout == expected
    target = tmp_path / "lenet_model.py"
    target.write_text("old content")
    result = run_cli("export", "specs/lenet.yaml", "-o", str(target))
    assert result.returncode == 0, result.stderr
    assert target.read_text() == expected and result.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lenet_model.py"]  # no temporary left


@pytest.mark.parametrize("where", ["missing folder", "a folder"])
def test_export_to_a_bad_path_is_a_clean_error(tmp_path, where):
    target = tmp_path / "nowhere" / "model.py" if where == "missing folder" else tmp_path
    result = run_cli("export", "specs/lenet.yaml", "-o", str(target))
    assert result.returncode == 1
    assert str(target) in result.stderr and "fix:" in result.stderr and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "model.py"
    target.write_text("old content")

    def failing_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(ConvcalcError, match="No space left on device"):
        write_atomically(target, "new content")
    assert target.read_text() == "old content"
    assert [p.name for p in tmp_path.iterdir()] == ["model.py"]


def test_export_of_an_invalid_spec_is_a_clean_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("input: [1, 8, 8]\nlayers:\n  - {type: Linear, out_features: 3}\n")
    out = tmp_path / "model.py"
    result = run_cli("export", str(bad), "-o", str(out))
    assert result.returncode == 1 and "layer 0" in result.stderr and "Flatten" in result.stderr
    assert "Traceback" not in result.stderr and not out.exists()


def test_summary_is_torchinfos_view():
    network = S.load_spec(SPECS / "lenet.yaml")
    analysis = analyze(network)
    result = run_cli("summary", "specs/lenet.yaml")
    assert result.returncode == 0, result.stderr
    assert f"Total params: {analysis.total_params:,}" in result.stdout
    for row in analysis.rows:
        assert f"({row.name})" in result.stdout
        assert str([1, *row.output_shape]) in result.stdout


@pytest.mark.parametrize("name", ['we"ird \\N name', 'ends with a quote"', "tab\there", "é ünïcode"])
def test_a_spec_name_with_quotes_backslashes_or_control_characters_exports_source_that_runs(tmp_path, name):
    network = S.network_from_data(
        {
            "name": name,
            "input": [1, 8, 8],
            "layers": [{"type": "Conv2d", "out_channels": 2, "kernel_size": 3}],
        }
    )
    file = tmp_path / "model.py"
    file.write_text(export_source(network), encoding="utf-8")
    module = import_file(file)
    model = getattr(module, class_name(name))()
    assert tuple(model(torch.zeros(1, 1, 8, 8)).shape) == (1, 2, 6, 6)


def test_export_to_a_file_name_longer_than_the_file_system_allows_is_a_clean_error(tmp_path):
    target = tmp_path / ("a" * 300 + ".py")
    result = run_cli("export", "specs/lenet.yaml", "-o", str(target))
    assert (
        result.returncode == 1
        and "choose a shorter path" in result.stderr
        and "Traceback" not in result.stderr
    )
