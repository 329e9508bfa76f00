"""Folder data sets (convcalc.images): class subfolders of PNG/JPEG images (Pillow is the oracle
for decoding, converting and resizing) or of .npy arrays; the split; the errors; augmentation;
and `convcalc train --dataset folder` end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from convcalc import images
from convcalc.data import DataError
from convcalc.spec import parse_spec
from convcalc.train import TrainConfig, TrainError, evaluate_checkpoint, train
from tests.conftest import run_cli


def square_image(label: int, size: int, rng) -> np.ndarray:
    """(size, size, 3) uint8: noise with a bright horizontal band whose height says the class
    (of 4): unchanged by a horizontal flip, hardly by a 4-pixel shift at size 32."""
    pixels = rng.integers(0, 60, size=(size, size, 3)).astype(np.uint8)
    band = size // 4
    pixels[band * label : band * (label + 1)] = 220
    return pixels


def image_folder(root, per_class=12, size=16, classes=("a", "b", "c", "d"), suffix=".png", seed=0):
    rng = np.random.default_rng(seed)
    for label, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(square_image(label, size, rng)).save(root / name / f"{i:03d}{suffix}")
    return root


def test_images_split_per_class_with_a_fixed_seed_and_pixels_as_pillow_reads_them(tmp_path):
    root = image_folder(tmp_path / "d")
    (root / "a" / "notes.txt").write_text("ignored")
    (root / ".hidden").mkdir()
    dataset = images.load_folder(root, (3, 16, 16), val_fraction=0.25)
    assert dataset.classes == ("a", "b", "c", "d")
    assert dataset.train_images.shape == (36, 3, 16, 16) and dataset.test_images.shape == (12, 3, 16, 16)
    assert dataset.train_images.dtype == torch.uint8
    assert torch.bincount(dataset.test_labels).tolist() == [3, 3, 3, 3]  # 25% of every class
    again = images.load_folder(root, (3, 16, 16), val_fraction=0.25)
    assert torch.equal(again.test_images, dataset.test_images)  # the same split every time
    # every validation image is one of the class's files, as Pillow decodes it (C, H, W)
    files = {
        tuple(np.asarray(Image.open(p)).transpose(2, 0, 1).ravel()[:64])
        for p in sorted((root / "b").iterdir())
        if p.suffix == ".png"
    }
    for image in dataset.test_images[dataset.test_labels == 1]:
        assert tuple(image.numpy().ravel()[:64]) in files


def test_one_channel_specs_get_grayscale_and_resize_is_pillows_bilinear(tmp_path):
    root = image_folder(tmp_path / "d", per_class=3, size=20, suffix=".jpg")
    refused = pytest.raises(DataError, match=r"image\(s\) not 16×16 .*is 20×20.*pass --resize")
    with refused:
        images.load_folder(root, (1, 16, 16))
    dataset = images.load_folder(root, (1, 16, 16), val_fraction=0.0, resize=True)
    assert dataset.train_images.shape == (12, 1, 16, 16)
    first = sorted((root / "a").iterdir())[0]
    expected = np.asarray(Image.open(first).convert("L").resize((16, 16), Image.Resampling.BILINEAR))
    assert np.array_equal(dataset.train_images[0, 0].numpy(), expected)


def test_train_and_val_subfolders(tmp_path):
    image_folder(tmp_path / "d" / "train", per_class=4)
    image_folder(tmp_path / "d" / "val", per_class=2, seed=1)
    dataset = images.load_folder(tmp_path / "d", (3, 16, 16))
    assert len(dataset.train_images) == 16 and len(dataset.test_images) == 8
    (tmp_path / "d" / "val" / "e").mkdir()
    with pytest.raises(DataError, match="classes a, b, c, d, e differ"):
        images.load_folder(tmp_path / "d", (3, 16, 16))
    image_folder(tmp_path / "only" / "train", per_class=1)
    with pytest.raises(DataError, match="has train/ but no val/"):
        images.load_folder(tmp_path / "only", (3, 16, 16))


def test_corrupt_files_are_named_and_refused(tmp_path):
    root = image_folder(tmp_path / "d", per_class=3)
    (root / "b" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    good = (root / "c" / "000.png").read_bytes()
    (root / "c" / "cut.png").write_bytes(good[: len(good) // 2])  # truncated
    with pytest.raises(DataError, match=r"^2 corrupt or unreadable image\(s\)") as error:
        images.load_folder(root, (3, 16, 16))
    assert str(root / "b" / "broken.png") in str(error.value) and str(root / "c" / "cut.png") in str(
        error.value
    )


def test_empty_class_and_other_folder_errors(tmp_path):
    root = image_folder(tmp_path / "d", per_class=2)
    (root / "zebra").mkdir()
    (root / "zebra" / "readme.txt").write_text("no images")
    with pytest.raises(DataError, match=r"d/zebra: class 'zebra' has no images"):
        images.load_folder(root, (3, 16, 16))
    with pytest.raises(DataError, match="no such folder"):
        images.load_folder(tmp_path / "nowhere", (3, 16, 16))
    (tmp_path / "flat").mkdir()
    with pytest.raises(DataError, match="no class folders inside"):
        images.load_folder(tmp_path / "flat", (3, 16, 16))
    (root / "zebra" / "x.npy").write_bytes(b"")
    with pytest.raises(DataError, match="both images and .npy arrays"):
        images.load_folder(root, (3, 16, 16))
    with pytest.raises(DataError, match="2 input channels; images become 1 .grayscale. or 3"):
        images.load_folder(image_folder(tmp_path / "e", per_class=1), (2, 16, 16))


def npy_folder(root, shape, per_class=10, seed=0):
    """Two classes of 1-D signals: a rising or a falling ramp plus noise."""
    rng = np.random.default_rng(seed)
    for label, name in enumerate(("down", "up")):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            ramp = np.linspace(-1, 1, shape[-1]) * (1 if label else -1)
            np.save(root / name / f"{i}.npy", (ramp + 0.1 * rng.standard_normal(shape)).astype(np.float64))
    return root


def test_npy_arrays_for_a_1d_spec_train(tmp_path, one_torch_thread):
    root = npy_folder(tmp_path / "sig", (2, 32))
    dataset = images.load_folder(root, (2, 32), val_fraction=0.2)
    assert dataset.train_images.dtype == torch.float32 and dataset.train_images.shape == (16, 2, 32)
    arrays = [np.load(p).astype(np.float32) for p in sorted((root / "down").iterdir())]
    assert any(np.array_equal(dataset.test_images[0].numpy(), a) for a in arrays)  # float64 -> float32
    with pytest.raises(DataError, match=r"array\(s\) not 2×64"):
        images.load_folder(root, (2, 64))
    with pytest.raises(DataError, match="--resize resizes images"):
        images.load_folder(root, (2, 32), resize=True)
    spec = parse_spec(
        "name: sig\ninput: [2, 32]\nlayers:\n"
        "  - {type: Conv1d, name: c, out_channels: 4, kernel_size: 5}\n  - {type: ReLU, name: r}\n"
        "  - {type: Flatten, name: f}\n  - {type: Linear, name: fc, out_features: 2}\n"
    )
    config = TrainConfig(dataset="folder", data_dir=str(root), epochs=3, batch_size=4, val_fraction=0.2,
                         out=str(tmp_path / "s.pt"))  # fmt: skip
    result = train(spec, config)
    assert result.test_accuracy == 1.0, result.epochs  # ramps up or down: trivially separable
    with pytest.raises(TrainError, match="--augment flips and crops images"):
        train(spec, TrainConfig(**{**vars(config), "augment": ("flip",)}))


def test_npy_values_are_taken_as_they_are(tmp_path):
    (tmp_path / "v" / "only").mkdir(parents=True)
    values = np.arange(12, dtype=np.int16).reshape(3, 4)
    np.save(tmp_path / "v" / "only" / "a.npy", values)  # one channel, stored without its axis
    np.save(tmp_path / "v" / "only" / "b.npy", values * 2)
    dataset = images.load_folder(tmp_path / "v", (1, 3, 4), val_fraction=0.5)
    assert torch.equal(dataset.train_images[0, 0], torch.tensor(values * 2, dtype=torch.float32))
    np.save(tmp_path / "v" / "only" / "c.npy", np.full((3, 4), np.nan))
    with pytest.raises(DataError, match="c.npy .holds NaN"):
        images.load_folder(tmp_path / "v", (1, 3, 4))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 9), seed=st.integers(0, 2**16), size=st.sampled_from([1, 2, 3]))
def test_augment_is_a_per_image_pad_crop_and_flip_and_the_same_in_any_share(n, seed, size):
    """Each output image is a window of the zero-padded image (flipped or not), per image; a
    process's share of a batch gets the very images the whole batch would."""
    x = torch.randn(n, 2, 6, 5)
    whole = images.augment(x, ("flip", "crop"), torch.Generator().manual_seed(seed), n, torch.arange(n))
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for i in range(n):
        windows = [
            padded[i, :, r : r + 6, c : c + 5].flip(-1) if flip else padded[i, :, r : r + 6, c : c + 5]
            for r in range(9) for c in range(9) for flip in (False, True)
        ]  # fmt: skip
        assert any(torch.equal(whole[i], w) for w in windows)
    for rank in range(min(size, n)):
        positions = torch.arange(rank, n, size)
        share = images.augment(
            x[positions], ("flip", "crop"), torch.Generator().manual_seed(seed), n, positions
        )
        assert torch.equal(share, whole[positions])
    flipped = images.augment(x, ("flip",), torch.Generator().manual_seed(seed), n, torch.arange(n))
    assert all(torch.equal(flipped[i], x[i]) or torch.equal(flipped[i], x[i].flip(-1)) for i in range(n))


def test_cli_trains_a_folder_with_augmentation_and_evaluate_finds_it(tmp_path):
    root = image_folder(tmp_path / "photos", per_class=20, size=32)
    spec = tmp_path / "net.yaml"
    spec.write_text(
        "name: net\ninput: [3, 32, 32]\nlayers:\n"
        "  - {type: Conv2d, name: c1, out_channels: 8, kernel_size: 3, padding: 1}\n"
        "  - {type: ReLU, name: r1}\n  - {type: MaxPool2d, name: p1, kernel_size: 4}\n"
        "  - {type: Flatten, name: f}\n  - {type: Linear, name: fc, out_features: 4}\n"
    )
    ckpt = tmp_path / "run.pt"
    args = ["train", str(spec), "--dataset", "folder", "--data-dir", str(root), "--epochs", "6",
            "--batch-size", "16", "--augment", "flip,crop", "--threads", "1", "--out", str(ckpt),
            "--json"]  # fmt: skip
    result = run_cli(*args, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["test_accuracy"] >= 0.75, report  # 8 validation images, 4 classes: chance is 0.25
    checkpoint = torch.load(ckpt, weights_only=True)
    assert checkpoint["data"]["classes"] == ["a", "b", "c", "d"] and checkpoint["recipe"]["augment"] == (
        "flip",
        "crop",
    )
    assert (
        evaluate_checkpoint(ckpt).test_accuracy == report["test_accuracy"]
    )  # the folder from the checkpoint
    wrong = run_cli("train", str(spec), "--dataset", "folder", "--data-dir", str(root), "--augment", "rotate")
    assert wrong.returncode == 1 and "augment rotate: choose from flip, crop" in wrong.stderr
    fewer = run_cli("train", str(spec), "--dataset", "folder", "--data-dir", str(tmp_path / "none"))
    assert fewer.returncode == 1 and "no such folder" in fewer.stderr and "Traceback" not in fewer.stderr
    missing = run_cli("train", str(spec), "--dataset", "folder")
    assert missing.returncode == 1 and "--dataset folder needs --data-dir DIR" in missing.stderr


def test_npy_volumes_for_a_3d_spec_train_in_ndhwc(tmp_path, one_torch_thread):
    """A 3-D spec: C×D×H×W arrays; the loop keeps them channels-last-3d (NDHWC)."""
    rng = np.random.default_rng(2)
    for label, name in enumerate(("dark", "bright")):
        (tmp_path / "vol" / name).mkdir(parents=True)
        for i in range(6):
            np.save(
                tmp_path / "vol" / name / f"{i}.npy",
                (rng.random((1, 4, 6, 6)) + 2 * label).astype(np.float32),
            )
    spec = parse_spec(
        "name: vol\ninput: [1, 4, 6, 6]\nlayers:\n"
        "  - {type: Conv3d, name: c, out_channels: 3, kernel_size: 3}\n  - {type: ReLU, name: r}\n"
        "  - {type: Flatten, name: f}\n  - {type: Linear, name: fc, out_features: 2}\n"
    )
    config = TrainConfig(dataset="folder", data_dir=str(tmp_path / "vol"), epochs=4, batch_size=4,
                         val_fraction=0.34, out=str(tmp_path / "v.pt"))  # fmt: skip
    result = train(spec, config)
    assert result.test_accuracy == 1.0, result.epochs  # the two classes' values do not even overlap
    assert evaluate_checkpoint(result.checkpoint).images == 4  # 2 of each class's 6 validate
