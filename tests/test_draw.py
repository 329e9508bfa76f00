"""`convcalc draw`: valid SVG with every layer's text, pixels from a real renderer (cairosvg),
sizes monotone in the tensor's sizes, frames round their blocks, the numbers of `shape --depth`,
the golden LeNet drawing, outputs and errors through the real command, and no torch."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import cairosvg
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from convcalc import draw
from convcalc.cli import _load
from convcalc.draw.svg import THEMES
from convcalc.engine import analyze, fmt_shape
from convcalc.spec import network_from_data
from convcalc.specfile import parse_text, plain_network
from tests.conftest import ROOT, SHIPPED_SPECS, run_cli
from tests.test_graphs_vs_torch import graphs

SVG = "{http://www.w3.org/2000/svg}"


def analysis_of(path) -> object:
    return analyze(_load(str(path), plain=True))


def analysis_from(text: str):
    data, _ = parse_text(text, "<test>")
    return analyze(plain_network(data))


def pixels(svg: str, longest: int = 3000) -> np.ndarray:
    """RGB pixels of ``svg`` rendered by cairosvg, at most ``longest`` pixels a side."""
    root = ET.fromstring(svg)
    scale = min(1.0, longest / max(float(root.get("width")), float(root.get("height"))))
    png = cairosvg.svg2png(bytestring=svg.encode(), scale=scale, background_color="white")
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def texts(root: ET.Element) -> list[str]:
    return [el.text or "" for el in root.iter(f"{SVG}text")]


def titles(root: ET.Element) -> list[str]:
    return [el.text or "" for el in root.iter(f"{SVG}title")]


def groups(root: ET.Element, cls: str) -> list[ET.Element]:
    return [g for g in root.iter(f"{SVG}g") if g.get("class") == cls]


def rect_of(g: ET.Element) -> tuple[float, float, float, float]:
    r = g.find(f"{SVG}rect")
    x, y = float(r.get("x")), float(r.get("y"))
    return x, y, x + float(r.get("width")), y + float(r.get("height"))


# ------------------------------------------------------------------------------------------
# every shipped spec, both styles


@pytest.mark.parametrize("style", ["blocks", "graph"])
@pytest.mark.parametrize("path", SHIPPED_SPECS, ids=lambda p: p.stem)
def test_every_shipped_spec_draws(path, style):
    analysis = analysis_of(path)
    svg = draw.svg_text(analysis, style)
    root = ET.fromstring(svg)  # valid XML
    shown = texts(root)
    if style == "graph":  # every layer is a node: its name and its output shape as text
        for row in analysis.rows:
            assert row.name in shown, row.name
            assert "→ " + fmt_shape(row.output_shape) in shown, row.name
    else:  # every layer named in its box's title; boxes labelled like the LeNet figure
        joined = "\n".join(titles(root))
        depth = None if analysis.straight else 1
        for row in analysis.rows:
            if depth is None:
                assert f"{row.name} ({row.type}) → {fmt_shape(row.output_shape)}" in joined, row.name
        for name in {".".join((row.path or (row.name,))[:depth]) for row in analysis.rows}:
            assert name in joined, name
        out = analysis.output_shape
        assert (f"{out[0]}" if len(out) == 1 else f"{out[0]}@{'×'.join(map(str, out[1:]))}") in shown
    # cairosvg takes seconds per thousand elements: the big graphs render folded (the same code)
    if len(analysis.rows) > 100 and style == "graph":
        svg = draw.svg_text(analysis, style, depth=2)
    image = pixels(svg, longest=2000)
    ink = (np.abs(image - 255).sum(axis=2) > 60).mean()
    assert 0.01 < ink < 0.6, ink  # drawn, and not a solid block


def test_blocks_draws_famous_lenet_shapes():
    """The LeNet figure's labels: 6@24×24 after c1, 16@4×4 after s4, 256 after flattening."""
    shown = texts(ET.fromstring(draw.svg_text(analysis_of(ROOT / "specs/lenet.yaml"), "blocks")))
    for label in ("1@28×28", "6@24×24", "6@12×12", "16@8×8", "16@4×4", "256", "120", "84", "10"):
        assert label in shown, label
    assert "Conv2d 6@5×5 s1 p0" in shown and "+ ReLU" in shown and "156 params" in shown


def test_golden_lenet_blocks(golden):
    golden("lenet_blocks.svg", draw.svg_text(analysis_of(ROOT / "specs/lenet.yaml"), "blocks"))


# ------------------------------------------------------------------------------------------
# pixels


def box_area(shape: tuple[int, ...]) -> int:
    """Pixels of the input box's three faces in the blocks drawing of ``input: shape`` + Flatten."""
    dims = ", ".join(map(str, shape))
    svg = draw.svg_text(
        analysis_from(f"name: t\ninput: [{dims}]\nlayers:\n  - {{type: Flatten}}\n"), "blocks"
    )
    image = pixels(svg)
    root = ET.fromstring(svg)
    box = groups(root, "box")[0]
    faces = {el.get("fill") for el in box if el.tag in (f"{SVG}rect", f"{SVG}polygon")}
    assert len(faces) == (3 if len(shape) > 2 else 1)
    colours = [np.array([int(f[i : i + 2], 16) for i in (1, 3, 5)]) for f in faces]
    scale = image.shape[1] / float(root.get("width"))
    legend = 11 * 11 * scale * scale  # the legend's input swatch has the front face's colour
    hit = np.zeros(image.shape[:2], bool)
    for colour in colours:
        hit |= np.abs(image - colour).max(axis=2) <= 2
    return int(hit.sum() - legend)


sizes = st.integers(1, 300)


@settings(max_examples=8, deadline=None)
@given(st.tuples(st.integers(1, 512), sizes, sizes), st.integers(0, 2), st.integers(2, 8))
def test_box_pixels_grow_with_every_size(shape, axis, factor):
    bigger = tuple(v * factor if k == axis else v for k, v in enumerate(shape))
    assert box_area(shape) < box_area(bigger), (shape, bigger)


def test_box_pixels_ordered_by_volume():
    chain = [(1, 4, 4), (3, 8, 8), (16, 8, 8), (16, 28, 28), (64, 56, 56), (64, 224, 224)]
    areas = [box_area(s) for s in chain]
    assert areas == sorted(areas) and len(set(areas)) == len(areas), areas


def test_bars_and_strips_grow_with_length():
    def ink(shape):
        dims = ", ".join(map(str, shape))
        svg = draw.svg_text(
            analysis_from(f"name: t\ninput: [{dims}]\nlayers:\n  - {{type: ReLU}}\n"),
            "blocks",
            show_params=False,
            title="",
        )
        root = ET.fromstring(svg)
        return sum((rect_of(b)[3] - rect_of(b)[1]) for b in groups(root, "box"))

    assert ink((10,)) < ink((100,)) < ink((4096,))
    assert ink((8, 100)) < ink((8, 1000)) < ink((8, 16000))


@pytest.mark.parametrize("style", ["blocks", "graph"])
def test_dark_theme_is_dark_and_light_is_light(style):
    analysis = analysis_of(ROOT / "specs/lenet.yaml")
    dark = pixels(draw.svg_text(analysis, style, theme="dark"))
    light = pixels(draw.svg_text(analysis, style, theme="light"))
    assert dark.mean() < 60 and tuple(dark[2, 2]) == tuple(
        int(THEMES["dark"].background[i : i + 2], 16) for i in (1, 3, 5)
    )
    assert light.mean() > 200
    # the text is readable: the dark theme's brightest pixels are light
    assert np.percentile(dark.sum(axis=2), 99.5) > 450


# ------------------------------------------------------------------------------------------
# the graph style's geometry and numbers


def nodes_and_frames(svg: str):
    root = ET.fromstring(svg)
    nodes = {g.find(f"{SVG}title").text.split(" | ")[0]: rect_of(g) for g in groups(root, "node")}
    frames = {g.find(f"{SVG}title").text: rect_of(g) for g in groups(root, "frame")}
    return nodes, frames


def assert_graph_geometry(analysis) -> None:
    """One node per layer and the input, no two overlapping, every frame round its members."""
    nodes, frames = nodes_and_frames(draw.svg_text(analysis, "graph"))
    assert len(nodes) == len(analysis.rows) + 1
    boxes = sorted(nodes.values())
    for k, a in enumerate(boxes):  # sorted by x0: only boxes starting before a's end can meet it
        for b in boxes[k + 1 :]:
            if b[0] >= a[2]:
                break
            assert a[3] <= b[1] or b[3] <= a[1], (a, b)
    assert set(frames) == {g.name for g in analysis.groups}
    for group in analysis.groups:
        fx0, fy0, fx1, fy1 = frames[group.name]
        for row in analysis.rows:
            if group in row.groups:
                x0, y0, x1, y1 = nodes[row.name]
                assert fx0 < x0 and x1 < fx1 and fy0 < y0 and y1 < fy1, (group.name, row.name)


@pytest.mark.parametrize("name", ["resnet18", "googlenet", "densenet121", "unet", "mobilenet_v3_small"])
def test_graph_nodes_apart_and_frames_round_their_blocks(name):
    assert_graph_geometry(analysis_of(ROOT / f"specs/{name}.yaml"))


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]
)
@given(graphs())
def test_random_graphs_draw_in_both_styles(data):
    """tests/test_graphs_vs_torch.py's random DAGs (1-D to 3-D, branches, merges, a repeated
    residual block): the graph's geometry holds and the blocks drawing names every layer."""
    analysis = analyze(network_from_data(data))
    assert_graph_geometry(analysis)
    root = ET.fromstring(draw.svg_text(analysis, "blocks", depth=None if analysis.straight else 2))
    joined = "\n".join(titles(root))
    for row in analysis.rows:
        assert ".".join((row.path or (row.name,))[:2]) in joined, row.name


def test_edges_carry_the_tensor_shapes():
    analysis = analysis_of(ROOT / "specs/resnet18.yaml")
    root = ET.fromstring(draw.svg_text(analysis, "graph"))
    labels = [g.find(f"{SVG}text").text for g in groups(root, "edge")]
    want = [
        fmt_shape(analysis.input_shape if i < 0 else analysis.rows[i].output_shape)
        for row in analysis.rows
        for i in row.inputs
    ]
    assert sorted(labels) == sorted(want)


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_graph_depth_shows_the_folded_totals(depth):
    """A folded block's node: the params and MACs of the layers under its path, summed here."""
    analysis = analysis_of(ROOT / "specs/resnet50.yaml")
    nodes, _ = nodes_and_frames(draw.svg_text(analysis, "graph", depth=depth))
    root = ET.fromstring(draw.svg_text(analysis, "graph", depth=depth))
    node_titles = {t.split(" | ")[0]: t for t in (g.find(f"{SVG}title").text for g in groups(root, "node"))}
    keys = {tuple((row.path or (row.name,))[:depth]) for row in analysis.rows}
    assert set(nodes) == {".".join(k) for k in keys} | {"input"}
    for key in keys:
        inside = [r for r in analysis.rows if (r.path or (r.name,))[:depth] == key]
        params, macs = sum(r.params for r in inside), sum(r.macs for r in inside)
        if params or macs:
            assert f"{params:,} params · {macs:,} MACs" in node_titles[".".join(key)], key
    folded = run_cli("shape", "specs/resnet50.yaml", "--depth", str(depth))
    for title in node_titles.values():
        for number in re.findall(r"(\d[\d,]*) params", title):
            assert number in folded.stdout  # the table prints the same count


def test_no_params_and_title():
    analysis = analysis_of(ROOT / "specs/resnet18.yaml")
    for style in ("blocks", "graph"):
        svg = draw.svg_text(analysis, style, title="My net", show_params=False)
        shown = texts(ET.fromstring(svg))
        assert "My net" in shown and not any("params" in t or "MACs" in t for t in shown)


def test_blocks_of_a_graph_draws_its_skips_as_arcs():
    """U-Net's four skips (copy and crop: crop{k} reads enc{k}) and each cat{k} reading up{k}
    across crop{k} are the inputs from further back than the box before."""
    root = ET.fromstring(draw.svg_text(analysis_of(ROOT / "specs/unet.yaml"), "blocks"))
    arcs = sorted(g.find(f"{SVG}title").text.split(" (")[0] for g in groups(root, "arc"))
    assert arcs == sorted(
        [f"crop{k} reads enc{k}" for k in range(1, 5)] + [f"cat{k} reads up{k}" for k in range(1, 5)]
    )


def test_text_from_the_spec_is_escaped():
    nasty = 'a<b & "c"\'d'
    analysis = analysis_from(
        f"name: {json.dumps(nasty)}\ninput: [1, 8, 8]\nlayers:\n"
        "  - {type: Conv2d, out_channels: 2, kernel_size: 3}\n"
    )
    for style in ("blocks", "graph"):
        root = ET.fromstring(draw.svg_text(analysis, style))
        assert nasty in texts(root)
    dot = draw.dot_text(analysis)
    assert 'digraph "a<b & \\"c\\"\'d"' in dot


def test_dot_source_has_every_node_edge_and_cluster():
    analysis = analysis_of(ROOT / "specs/resnet18.yaml")
    dot = draw.dot_text(analysis)
    assert dot.startswith("digraph") and dot.rstrip().endswith("}")
    assert dot.count("->") == sum(len(row.inputs) for row in analysis.rows)
    assert dot.count("subgraph") == len(analysis.groups)
    for row in analysis.rows:
        assert f'label="{row.name}\\n' in dot


# ------------------------------------------------------------------------------------------
# the command


def test_cli_writes_svg_png_pdf_dot(tmp_path):
    for suffix, magic in ((".svg", b"<?xml"), (".png", b"\x89PNG"), (".pdf", b"%PDF"), (".dot", b"digraph")):
        out = tmp_path / f"net{suffix}"
        result = run_cli("draw", "specs/lenet.yaml", "-o", str(out), "--theme", "dark")
        assert result.returncode == 0, result.stderr
        assert out.read_bytes().startswith(magic) and f"wrote {out}" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "net.dot",
        "net.pdf",
        "net.png",
        "net.svg",
    ]  # no temps
    with Image.open(tmp_path / "net.png") as image:
        assert image.width > 1000  # drawn at twice the SVG's size
    mask = os.umask(0)
    os.umask(mask)
    assert {p.stat().st_mode & 0o777 for p in tmp_path.iterdir()} == {0o666 & ~mask}  # as open() makes them


def test_cli_svg_on_stdout():
    result = run_cli("draw", "specs/resnet18.yaml", "-o", "-", "--depth", "1")
    assert result.returncode == 0, result.stderr
    root = ET.fromstring(result.stdout)
    assert len(groups(root, "node")) == 12  # input, conv1, bn1, relu, maxpool, layer1-4, avgpool, flatten, fc


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["-o", "net.bmp"],
            "unknown picture type '.bmp'; fix: end the file name in .svg, .png, .pdf or .dot",
        ),
        (["-o", "net"], "unknown picture type '(no suffix)'"),
        (["-o", "no/such/folder/net.svg"], "the folder no/such/folder does not exist; fix: create it"),
        (["-o", "specs"], "unknown picture type"),
        (["-o", "x.svg", "--depth", "0"], "Invalid value for '--depth'"),
        (["-o", "x.svg", "--style", "tree"], "Invalid value for '--style'"),
    ],
)
def test_cli_errors(args, message, tmp_path):
    result = run_cli("draw", str(ROOT / "specs/lenet.yaml"), *args, cwd=tmp_path)
    assert result.returncode == 1 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_cli_folder_as_output(tmp_path):
    (tmp_path / "pic.svg").mkdir()
    result = run_cli("draw", "specs/lenet.yaml", "-o", str(tmp_path / "pic.svg"))
    assert result.returncode == 1 and "is a folder; fix: give a file name" in result.stderr


def test_cli_impossible_spec_is_refused(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text(
        "name: bad\ninput: [1, 4, 4]\nlayers:\n  - {type: Conv2d, out_channels: 2, kernel_size: 9}\n"
    )
    result = run_cli("draw", str(spec), "-o", str(tmp_path / "x.svg"))
    assert (
        result.returncode == 1
        and "error: cannot draw it: layer 0 (conv2d_0, Conv2d): output" in result.stderr
    )
    assert not (tmp_path / "x.svg").exists()


def test_png_without_the_draw_extra_says_what_to_install(tmp_path):
    code = (
        "import sys; sys.modules['cairosvg'] = None\n"  # as if not installed: import fails
        "from convcalc.cli import main\n"
        f"main(['draw', 'specs/lenet.yaml', '-o', {str(tmp_path / 'x.png')!r}])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 1
    assert "pip install 'convcalc[draw]'" in result.stderr and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_cli_draws_a_model_target(tmp_path):
    (tmp_path / "nets.py").write_text(
        "from torch import nn\n\n\ndef Net():\n"
        "    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 26 * 26, 10))\n"
    )
    out = tmp_path / "net.svg"
    from convcalc.cli import main

    with pytest.raises(SystemExit) as exit:  # in this process: torch is loaded once for the suite
        main(["draw", f"{tmp_path / 'nets.py'}:Net", "--input", "1x28x28", "-o", str(out)])
    assert exit.value.code == 0
    shown = texts(ET.fromstring(out.read_text()))
    assert "Conv2d 4@3×3 s1 p0" in shown and "4@26×26" in shown and "27,050 params" in shown


def test_draw_imports_neither_torch_nor_pydantic(tmp_path):
    code = (
        "import sys\n"
        "from convcalc.cli import main\n"
        f"for spec in {[str(p) for p in SHIPPED_SPECS]!r}:\n"
        "    for style in ('blocks', 'graph'):\n"
        "        try:\n"
        f"            main(['draw', spec, '--style', style, '-o', {str(tmp_path / 'x.svg')!r}])\n"
        "        except SystemExit as exit:\n            assert exit.code == 0, exit.code\n"
        "loaded = {m.split('.')[0] for m in sys.modules}\n"
        "bad = sorted(loaded & {'pydantic', 'torch', 'torchinfo', 'textual', 'matplotlib', 'cairosvg'})\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
