"""Big specs (issue 17): ``shape`` draws its table line by line instead of through rich.Table
(18 s for 10,000 layers), and must print exactly what rich printed: every shipped spec, folded
at every depth, is compared with rich's rendering of the same table. Plus the table defects of
issue 18: no trailing spaces on the title, ``—`` totals when a layer could not be computed,
thousands separators on flat outputs. Speed itself is measured by bench/bench_big.py."""

from __future__ import annotations

import io
import json

import pytest
import yaml
from rich.console import Console
from rich.measure import Measurement

from convcalc import render
from convcalc import spec as S
from convcalc.engine import analyze
from tests.conftest import SPECS, run_cli


def rich_lines(analysis, depth) -> list[str]:
    """What ``shape`` printed before: rich's table, piped, as wide as it needs."""
    out = io.StringIO()
    console = Console(file=out, highlight=False, emoji=False, width=120)
    table = render.layer_table(analysis, depth)
    console.width = max(120, Measurement.get(console, console.options.update_width(10**6), table).maximum)
    console.print(table)
    return out.getvalue().splitlines()


@pytest.mark.parametrize("path", sorted(SPECS.glob("*.yaml")), ids=lambda p: p.stem)
def test_the_table_is_rich_s_table_character_for_character(path):
    analysis = analyze(S.load_spec(path))
    for depth in (None, 1, 2, 3):
        old = rich_lines(analysis, depth)
        new = [text for text, _ in render.table_lines(analysis, depth)]
        assert new[0] == old[0].rstrip()  # the title, without rich's padding to the table's width
        assert new[1:] == old[1:], f"depth {depth}"


def test_styles_follow_the_rows():
    network = S.Network(name="t", input=(1, 4, 4), layers=[S.Conv2d(out_channels=1, kernel_size=5), S.ReLU()])
    lines = render.table_lines(analyze(network))
    assert [style for _, style in lines[4:-1]] == ["red", None]  # the conv's error; the ReLU is not computed
    assert lines[2][1] == "bold"


def big_spec(tmp_path, n: int):
    layers = [{"type": "Conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1} if i % 2 == 0
              else {"type": "ReLU"} for i in range(n)]  # fmt: skip
    path = tmp_path / "big.yaml"
    path.write_text(yaml.safe_dump({"name": "big", "input": [3, 16, 16], "layers": layers}))
    return path


def test_a_big_spec_prints_every_row(tmp_path):
    path = big_spec(tmp_path, 2_000)
    result = run_cli("shape", str(path))
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("│")]
    assert len(rows) == 2_000
    assert [cell.strip() for cell in rows[-1].split("│")[1:4]] == ["1999", "relu_999", "ReLU"]
    assert len({len(line) for line in result.stdout.splitlines()[1:-5]}) == 1  # one width: a table
    analysis = analyze(S.load_spec(path))
    assert f"Total params:       {analysis.total_params:,}" in result.stdout
    data = json.loads(run_cli("shape", str(path), "--json").stdout)
    assert len(data["layers"]) == 2_000 and data["total_params"] == analysis.total_params


def test_the_title_has_no_trailing_spaces():
    result = run_cli("shape", "specs/lenet.yaml")
    assert result.stdout.splitlines()[0] == "lenet: input 1×28×28"


def test_totals_are_dashes_when_a_layer_cannot_be_computed():
    result = run_cli("shape", "specs/lenet.yaml", "--input", "3x32")
    assert result.returncode == 1
    totals = dict(line.split(":", 1) for line in result.stdout.splitlines()[-5:])
    assert {key: value.strip() for key, value in totals.items()} == {
        "Output shape": "—",
        "Total params": "—",
        "Trainable params": "—",
        "MACs per sample": "—",
        "Output memory": "—",
    }


def test_flat_outputs_have_thousands_separators():
    analysis = analyze(S.load_spec(SPECS / "vgg16.yaml"))
    flatten = next(row for row in analysis.rows if row.type == "Flatten")
    line = next(text for text, _ in render.table_lines(analysis) if f" {flatten.name} " in text)
    assert f" {flatten.output_shape[0]:,} " in line and flatten.output_shape[0] >= 1000
    assert "512×7×7" in "".join(text for text, _ in render.table_lines(analysis))
