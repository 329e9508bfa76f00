"""`convcalc rf`: the outlined field is the engine's and the gradient probe's (torch), the
heat map is nonzero only inside the probe's field, in 1-D, 2-D and 3-D, on random and trained
weights; errors name the fix."""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout

import numpy as np
import pytest
from matplotlib.patches import Rectangle
from PIL import Image

from convcalc import data, rf
from convcalc.check import probe_fields
from convcalc.engine import analyze
from convcalc.spec import load_spec, parse_spec
from convcalc.train import TrainConfig, load_checkpoint, train
from tests.conftest import SPECS
from tests.test_train import squares

LENET = SPECS / "lenet.yaml"
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def convcalc(*args: str) -> tuple[int, str, str]:
    """``convcalc ARGS`` in this process: exit code, stdout, stderr."""
    from convcalc.cli import main

    with (
        pytest.raises(SystemExit) as exit,
        redirect_stdout(io.StringIO()) as out,
        redirect_stderr(io.StringIO()) as err,
    ):
        main(list(args))
    return exit.value.code, out.getvalue(), err.getvalue()


def engine_span(network, layer: str, unit: tuple[int, ...]) -> list[tuple[float, float]]:
    """The engine's field of ``unit``: centre start + u·jump, size wide (Araujo et al. 2019)."""
    row = next(r for r in analyze(network).rows if r.name == layer)
    return [
        (f.start + u * f.jump - (f.size - 1) / 2, f.start + u * f.jump + (f.size - 1) / 2)
        for f, u in zip(row.receptive_field, unit, strict=True)
    ]


def support(grad: np.ndarray) -> list[tuple[int, int]]:
    hit = np.argwhere(grad > 0)
    return [(int(lo), int(hi)) for lo, hi in zip(hit.min(axis=0), hit.max(axis=0), strict=True)]


CASES = [  # spec, layer, unit: 2-D with max pools, dilated 2-D, 1-D, a field cut by the border
    (LENET, "c3", (2, 5)),
    (SPECS / "dilated.yaml", "ctx4", (30, 12)),
    (SPECS / "m5.yaml", "conv2", (61,)),
    (LENET, "s4", (0, 3)),
]


@pytest.mark.parametrize(("path", "layer", "unit"), CASES, ids=lambda v: getattr(v, "stem", str(v)))
def test_outline_is_the_engines_and_heat_stays_in_the_probes_field(path, layer, unit):
    network = load_spec(path)
    field = rf.receptive_field(network, layer, ",".join(map(str, unit)))
    assert list(field.span) == engine_span(network, layer, unit)
    row = next(r for r in analyze(network).rows if r.name == layer)
    (probe,) = probe_fields(network, {row.index: [unit]})[row.index]
    assert list(field.clipped) == list(probe)  # the engine's field, clipped to the input = torch's
    for (lo, hi), (plo, phi) in zip(support(field.grad), probe, strict=True):
        assert plo <= lo and hi <= phi  # nothing outside the probe's field
    assert field.inside == pytest.approx(1.0)
    fig = rf.figure(field)
    outlines = [p for ax in fig.axes for p in [*ax.patches, *ax.collections] if p.get_gid() == "theoretical"]
    assert len(outlines) == 2
    if len(unit) == 2:
        (r0, r1), (c0, c1) = engine_span(network, layer, unit)
        for box in outlines:
            assert isinstance(box, Rectangle)
            assert box.get_xy() == (c0 - 0.5, r0 - 0.5)
            assert (box.get_width(), box.get_height()) == (c1 - c0 + 1, r1 - r0 + 1)


def test_without_relus_or_max_pools_the_heat_fills_the_field():
    """Random Gaussian weights and input: every position the probe reaches has a nonzero gradient."""
    network = parse_spec(
        "name: plain\ninput: [2, 40, 40]\nlayers:\n"
        "  - {type: Conv2d, out_channels: 4, kernel_size: 3, stride: 2}\n"
        "  - {type: AvgPool2d, kernel_size: 2}\n"
        "  - {type: Conv2d, out_channels: 3, kernel_size: 3, padding: 1}\n"
    )
    field = rf.receptive_field(network, "conv2d_1", "4,6")
    (r0, r1), (c0, c1) = field.probe
    assert support(field.grad) == [(r0, r1), (c0, c1)]
    assert (field.grad[r0 : r1 + 1, c0 : c1 + 1] > 0).all()


def test_three_d_draws_the_middle_slice():
    network = parse_spec(
        "name: clip\ninput: [1, 12, 20, 20]\nlayers:\n  - {type: Conv3d, out_channels: 2, kernel_size: 3}\n"
        "  - {type: MaxPool3d, kernel_size: 2}\n  - {type: Conv3d, out_channels: 2, kernel_size: 3}\n"
    )
    field = rf.receptive_field(network, "conv3d_1", "1,3,3")
    assert list(field.span) == engine_span(network, "conv3d_1", (1, 3, 3))
    assert "slice at depth" in rf.caption(field)
    fig = rf.figure(field)
    image = fig.axes[1].images[0].get_array()
    assert image.shape == (20, 20)  # one H×W slice


def test_a_checkpoints_weights_and_a_dataset_image(tmp_path):
    rng = np.random.default_rng(2)
    folder = data.write_dataset(tmp_path / "squares", squares(96, rng), squares(32, rng))
    ckpt = tmp_path / "run.pt"
    train(
        load_spec(LENET),
        TrainConfig(data_dir=str(folder), epochs=1, batch_size=32, out=str(ckpt), download=False),
    )
    network = load_spec(LENET)
    loaded = data.load("mnist", folder, download=False)
    picture = rf.input_image(
        tuple(network.input), dataset="mnist", index=3, data_dir=str(folder), download=False
    )
    assert np.allclose(picture[0], loaded.test_images[3].numpy() / 255)
    trained = rf.receptive_field(network, "c3", None, picture, (str(ckpt), load_checkpoint(ckpt)))
    random = rf.receptive_field(network, "c3", None, picture)
    assert not np.allclose(trained.grad, random.grad)
    assert f"weights of {ckpt}" in rf.caption(trained)
    (probe,) = probe_fields(network, {3: [trained.unit]})[3]
    for (lo, hi), (plo, phi) in zip(support(trained.grad), probe, strict=True):
        assert plo <= lo and hi <= phi
    code, out, err = convcalc(
        "rf",
        str(LENET),
        "--layer",
        "c3",
        "--dataset",
        "mnist",
        "--index",
        "3",
        "--data-dir",
        str(folder),
        "--checkpoint",
        str(ckpt),
        "-o",
        str(tmp_path / "t.png"),
    )
    assert code == 0, err
    assert "unit (4,4) of 16×8×8" in out and (tmp_path / "t.png").stat().st_size > 10_000


def test_image_file_input(tmp_path):
    pixels = (np.arange(28 * 28).reshape(28, 28) % 251).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "digit.png")
    picture = rf.input_image((1, 28, 28), image=str(tmp_path / "digit.png"))
    assert np.allclose(picture[0] * 255, pixels)
    Image.fromarray(pixels[:20]).save(tmp_path / "small.png")
    with pytest.raises(rf.ConvcalcError, match=r"is 1×20×28, the spec's input is 1×28×28; fix: resize it"):
        rf.input_image((1, 28, 28), image=str(tmp_path / "small.png"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--layer", "c33"], "--layer c33: no such layer in lenet; did you mean c3?"),
        (
            ["--layer", "f5"],
            "is flat, so each unit sees the whole input; fix: pick a layer with feature maps",
        ),
        (["--layer", "c3", "--unit", "8,0"], "outside c3's 8×8 output; fix: give indices in 0..7 and 0..7"),
        (["--layer", "c3", "--unit", "1"], "--unit 1: give 2 integers, e.g. --unit 4,4"),
        (["--layer", "c3", "--image", "x.png", "--dataset", "mnist"], "give --image or --dataset, not both"),
        (["--layer", "c3", "-o", "x.jpg"], "unknown plot type '.jpg'"),
    ],
)
def test_errors(args, message, tmp_path):
    if "-o" not in args:
        args = [*args, "-o", str(tmp_path / "x.png")]
    code, _, err = convcalc("rf", str(LENET), *args)
    assert code == 1 and message in err and "Traceback" not in err, err
    assert not (tmp_path / "x.png").exists()


def test_cli_writes_the_picture_and_prints_the_numbers(tmp_path):
    out = tmp_path / "rf.png"
    code, stdout, err = convcalc("rf", str(LENET), "--layer", "c3", "--unit", "2,5", "-o", str(out))
    assert code == 0, err
    assert "RF 14, jump 2, start 6.5 → input positions 4–17×10–23; gradient probe: 4–17×10–23" in stdout
    image = np.asarray(Image.open(out).convert("RGB")).astype(int)
    green = (np.abs(image - (0x3F, 0xB9, 0x50)).max(axis=2) <= 40).sum()
    assert green > 300  # the dashed outlines are drawn
