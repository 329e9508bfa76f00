"""The designer's picture (``convcalc/tui/picture.py``): box sizes, the receptive field shaded
on the input grid against torch's gradient probe, the widget following edits, a snapshot.

The field's expected cells come from ``check.probe_fields`` (backpropagation through the real
torch layers), never from the picture's own arithmetic.
"""

from __future__ import annotations

import asyncio
import functools
import math

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from textual.color import Color

from convcalc.check import probe_fields
from convcalc.draw.blocks import Stage
from convcalc.engine import analyze
from convcalc.spec import load_spec, network_from_data
from convcalc.tui import picture as P
from convcalc.tui.app import ConvcalcApp
from tests.conftest import SPECS

LENET = SPECS / "lenet.yaml"
BIG = (160, 48)
FIELD = Color.parse(P.FIELD)


def pilot_test(test):
    @functools.wraps(test)
    def run(*args, **kwargs):
        asyncio.run(test(*args, **kwargs))

    return run


def plain(rows: list[list[P.Cell]]) -> list[str]:
    return ["".join(ch for ch, _ in row) for row in rows]


# Box sizes ---------------------------------------------------------------------------------

maps = st.tuples(st.integers(1, 4096), st.integers(1, 512), st.integers(1, 512))


@given(st.lists(maps, min_size=2, max_size=6))
@settings(max_examples=60, deadline=None)
def test_drawn_boxes_grow_with_channels_and_height(shapes):
    """On the drawn strip, a box with more channels is no narrower and a taller map no lower;
    every box is drawn exactly its size, inside the strip's rows."""
    drawn = [Stage(None, shape) for shape in shapes]
    boxes = P.place(drawn)
    width = boxes[-1].x + boxes[-1].width
    rows = P.strip_cells(boxes, 0, 0, width)[: P.STRIP_HALVES // 2]
    measured = []
    for box in boxes:
        columns = [c for c in range(box.x, box.x + box.width) if any(row[c][0] != " " for row in rows)]
        halves = sum({"█": 2, "▀": 1, "▄": 1}.get(row[columns[0]][0], 0) for row in rows)
        measured.append((len(columns), halves))
        assert (len(columns), halves) == P.box_size(box_shape := shapes[boxes.index(box)]), box_shape
    for (c1, h1, _), (w1, t1) in zip(shapes, measured, strict=True):
        for (c2, h2, _), (w2, t2) in zip(shapes, measured, strict=True):
            assert c1 > c2 or w1 <= w2
            assert h1 > h2 or t1 <= t2


def test_sizes_that_matter_differ_and_fit():
    """224 and 7 both fit in the strip's rows and are told apart; so are 3 and 512 channels."""
    assert P.box_height(7) < P.box_height(28) < P.box_height(224) <= P.STRIP_HALVES
    assert P.box_height(1) >= 1
    assert P.box_width(3) < P.box_width(64) < P.box_width(512)
    assert P.box_size((120,))[0] == 1  # a flat tensor: a bar one column wide


def test_lenet_strip_boxes_and_bars():
    """LeNet: a box per shape change (ReLUs inside their conv's box), Linear and Flatten as
    bars, the shapes under them as in the LeNet figure."""
    analysis = analyze(load_spec(LENET))
    text = "\n".join(plain(P.picture(analysis, 0, 160)))
    for label in ("1@28×28", "6@24×24", "6@12×12", "16@8×8", "16@4×4", "256", "120", "84", "10"):
        assert label in text
    assert "relu" not in text  # followers are in their layer's box
    assert "▐" in text  # the bars
    drawn = P.stages(analysis, None, show_params=False)
    assert len(drawn) == 9


def test_selected_box_is_highlighted():
    """The selected row's box is the one drawn reversed; a follower selects its layer's box."""
    analysis = analyze(load_spec(LENET))

    def reversed_labels(selected: int) -> set[str]:
        rows = P.picture(analysis, selected, 160)
        shapes = rows[P.STRIP_HALVES // 2]
        return {"".join(ch for ch, s in shapes if s is not None and s.reverse).strip()} - {""}

    assert reversed_labels(0) == {"6@24×24"}
    assert reversed_labels(1) == {"6@24×24"}  # relu_0 follows c1
    assert reversed_labels(3) == {"16@8×8"}
    assert reversed_labels(11) == {"10"}


def test_graph_is_drawn_folded_to_its_blocks():
    """ResNet-50: one box per top-level layer or block (the main path); a row inside layer3
    highlights layer3."""
    analysis = analyze(load_spec(SPECS / "resnet50.yaml"))
    inside = next(r.index for r in analysis.rows if r.name.startswith("layer3.2."))
    rows = P.picture(analysis, inside, 400)
    names = plain(rows)[-1].split()
    assert names[:4] == ["input", "conv1", "maxpool", "layer1"]
    assert "layer3" in names and "layer3.2" not in " ".join(names)
    shapes = rows[P.STRIP_HALVES // 2]
    assert "".join(ch for ch, s in shapes if s is not None and s.reverse).strip() == "1024@14×14"


def test_narrow_width_keeps_the_selected_box_in_view():
    """A strip wider than the room is cut around the selected box, with ‹ › where it goes on."""
    analysis = analyze(load_spec(SPECS / "vgg16.yaml"))
    last = len(analysis.rows) - 1
    rows = plain(P.picture(analysis, last, 100))
    assert "1000" in rows[P.STRIP_HALVES // 2] and "‹" in rows[P.STRIP_HALVES // 4]
    assert "3@224×224" not in rows[P.STRIP_HALVES // 2]
    rows = plain(P.picture(analysis, 0, 100))
    assert rows[P.STRIP_HALVES // 2].startswith("3@224×224") and "›" in rows[P.STRIP_HALVES // 4]
    assert "1000" not in rows[P.STRIP_HALVES // 2]
    assert all(len(row) <= 100 for row in rows)


# The receptive field -----------------------------------------------------------------------


def shaded(panel: list[list[P.Cell]], sizes: tuple[int, ...], s: int) -> set[tuple[int, int]]:
    """Decode the drawn grid (the field panel's first lines): the (row, col) cells shown in the
    field's colour; ``▀`` shows the top cell as the foreground, the bottom one as background."""
    h, w = math.ceil(sizes[-2] / s), math.ceil(sizes[-1] / s)
    cells = set()
    for r in range(h):
        for c in range(w):
            ch, look = panel[r // 2][c]
            assert ch == "▀"
            if (look.foreground if r % 2 == 0 else look.background) == FIELD:
                cells.add((r, c))
    return cells


def expected_cells(extent, s: int) -> set[tuple[int, int]]:
    """The cells holding a position torch's probe reaches (cell p holds p·s .. p·s + s − 1)."""
    (r0, r1), (c0, c1) = extent
    return {(r, c) for r in range(r0 // s, r1 // s + 1) for c in range(c0 // s, c1 // s + 1)}


layer = st.one_of(
    st.builds(
        lambda k, s, p: {"type": "Conv2d", "out_channels": 2, "kernel_size": k, "stride": s, "padding": p},
        st.integers(1, 5), st.integers(1, 3), st.integers(0, 2),
    ),
    st.builds(
        lambda k, s: {"type": "MaxPool2d", "kernel_size": k, "stride": s},
        st.integers(2, 3), st.integers(1, 3),
    ),
)  # fmt: skip


@given(st.integers(6, 60), st.integers(6, 60), st.lists(layer, min_size=1, max_size=4), st.data())
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]
)
def test_shaded_cells_are_the_cells_torch_reaches(h, w, layers, data):
    """For random conv/pool stacks, the grid's shaded cells are the engine's span clipped to the
    input, they hold every input position with a nonzero gradient of the selected layer's centre
    unit, and they are exactly those cells where the span lies inside the input (at an edge a
    later layer's padding or a pool's gap can leave the clipped span larger than what torch
    reaches: 6×6, MaxPool2d k2 s3, Conv2d k2 s2 p1 sees rows 3..4 of the span 3..7)."""
    network = network_from_data({"name": "stack", "input": [1, h, w], "layers": layers})
    analysis = analyze(network)
    assume(analysis.ok)
    row = analysis.rows[data.draw(st.integers(0, len(analysis.rows) - 1))]
    unit = P.centre_unit(row)
    (extent,) = probe_fields(network, {row.index: [unit]})[row.index]
    assume(extent is not None)
    s = P.scale((h, w))
    cells = shaded(P.field_panel(analysis, row), (h, w), s)
    span = [rf.span(u) for rf, u in zip(row.receptive_field, unit, strict=True)]
    sizes = (h, w)
    pairs = zip(span, sizes, strict=True)
    clipped = [(max(0, math.floor(a)), min(n - 1, math.ceil(b))) for (a, b), n in pairs]
    assert cells == expected_cells(clipped, s)
    assert expected_cells(extent, s) <= cells
    if all(a >= 0 and b <= n - 1 for (a, b), n in zip(span, (h, w), strict=True)):
        assert cells == expected_cells(extent, s)


def test_lenet_caption_gives_torchs_rectangle():
    """``RF 14×14 at rows a..b, cols a..b`` for c3's centre unit, the rows and columns being
    the ones torch's probe reaches; 28×28 is drawn 14×14 cells of 2×2."""
    network = load_spec(LENET)
    analysis = analyze(network)
    row = analysis.rows[3]
    (((r0, r1), (c0, c1)),) = probe_fields(network, {3: [P.centre_unit(row)]})[3]
    text = "\n".join(plain(P.picture(analysis, 3, 160)))
    assert f"RF {r1 - r0 + 1}×{c1 - c0 + 1} at rows {r0}..{r1}, cols {c0}..{c1}" in text
    assert "cell 2×2" in text
    assert P.scale((28, 28)) == 2 and P.scale((224, 224)) == 16


def test_field_past_the_edge_is_clipped_and_said():
    """A padded conv's corner unit sees past the input: the caption gives the engine's span
    (negative start), the grid shades only what lies inside."""
    network = network_from_data({"name": "pad", "input": [1, 9, 9], "layers": [
        {"type": "Conv2d", "out_channels": 1, "kernel_size": 7, "padding": 3},
        {"type": "Conv2d", "out_channels": 1, "kernel_size": 7, "padding": 3, "stride": 9},
    ]})  # fmt: skip
    analysis = analyze(network)
    row = analysis.rows[1]  # 1×1 output: its centre unit is (0, 0), field 13 wide centred on 0
    (extent,) = probe_fields(network, {1: [P.centre_unit(row)]})[1]
    assert shaded(P.field_panel(analysis, row), (9, 9), 1) == expected_cells(extent, 1)
    assert "RF 13×13 at rows -6..6, cols -6..6" in "\n".join(plain(P.picture(analysis, 1, 120)))


def test_one_and_three_dimensional_inputs():
    """M5 (1-D audio): a strip of the 8,000 samples; R3D-18: the H×W slice through the field's
    centre, its depth span in the caption."""
    for spec, expect in (("m5.yaml", "RF 80 at"), ("r3d_18.yaml", "depth ")):
        analysis = analyze(load_spec(SPECS / spec))
        text = "\n".join(plain(P.picture(analysis, 0, 160)))
        assert expect in text, spec
    m5 = analyze(load_spec(SPECS / "m5.yaml"))
    conv1 = m5.rows[0]
    lo, hi = conv1.receptive_field[0].span(P.centre_unit(conv1)[0])
    s = P.scale((8000,))
    cells = P.grid((8000,), P.field_cells(((lo, hi),), (8000,), s), s)
    assert len(cells) == 4 and len(cells[0]) == math.ceil(8000 / s)
    assert [c for c, on in enumerate(cells[0]) if on] == list(range(int(lo) // s, int(hi) // s + 1))


def test_errors_and_flat_rows_say_so():
    """A layer whose shape fails is a ``?`` box and has no field; a Linear's units all see the
    same union (the whole 28×28 here)."""
    data = {"name": "bad", "input": [1, 28, 28], "layers": [
        {"type": "Conv2d", "out_channels": 4, "kernel_size": 29}, {"type": "ReLU"},
    ]}  # fmt: skip
    analysis = analyze(network_from_data(data))
    text = "\n".join(plain(P.picture(analysis, 0, 120)))
    assert "?" in text and "no field" in text
    lenet = analyze(load_spec(LENET))
    text = "\n".join(plain(P.picture(lenet, 7, 160)))
    assert "RF 28×28 at rows 0..27, cols 0..27" in text and "every unit" in text


# The widget in the designer ----------------------------------------------------------------


def strip_text(app: ConvcalcApp) -> str:
    widget = app.designer.query_one(P.NetworkPicture)
    return str(widget.visual)


@pytest.mark.slow
@pilot_test
async def test_picture_follows_edits_selection_and_p():
    app = ConvcalcApp(load_spec(LENET), LENET)
    async with app.run_test(size=BIG) as pilot:
        await pilot.pause()
        widget = app.designer.query_one(P.NetworkPicture)
        assert widget.display and "6@24×24" in strip_text(app)
        await pilot.click("#field-kernel_size")
        await pilot.press("end", "ctrl+u", "3")
        await pilot.pause()
        assert "6@26×26" in strip_text(app) and "6@24×24" not in strip_text(app)
        assert "RF 3×3" in strip_text(app)
        await pilot.press("escape", "down", "down", "down")
        await pilot.pause()
        assert app.designer.selected == 3
        assert "c3 (" in strip_text(app)  # the field's caption follows the selected row
        await pilot.press("p")
        await pilot.pause()
        assert not widget.display
        await pilot.press("p")
        await pilot.pause()
        assert widget.display and "c3 (" in strip_text(app)


@pilot_test
async def test_picture_hidden_on_short_screens():
    """Below PICTURE_MIN_HEIGHT rows the table keeps the room; ``p`` still shows it."""
    app = ConvcalcApp(load_spec(LENET), LENET)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        widget = app.designer.query_one(P.NetworkPicture)
        assert not widget.display
        await pilot.press("p")
        await pilot.pause()
        assert widget.display and "6@24×24" in strip_text(app)


@pytest.mark.slow
def test_snapshot_designer_with_picture(snap_compare):
    app = ConvcalcApp(load_spec(LENET), LENET.relative_to(SPECS.parent))
    assert snap_compare(app, terminal_size=BIG, press=["down", "down", "down"])
