"""Precision, memory format, torch.compile and where the data set lives (convcalc.train), on the
CPU: the CUDA code paths are the same device-agnostic code (autocast, GradScaler, batches copied
from host memory when the set does not fit on the device)."""

from __future__ import annotations

import pytest
import torch

from convcalc import train as training
from convcalc.spec import load_spec, parse_spec
from convcalc.train import TrainCallbacks, TrainConfig, TrainError, load_checkpoint, train
from tests.test_train import LENET, config, folder  # noqa: F401 (the fixture)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize(
    "amp", ["bf16", pytest.param("fp16", marks=pytest.mark.slow)]
)  # fp16 is slow on CPUs
def test_mixed_precision_learns_and_autocasts(folder, tmp_path, amp, monkeypatch):  # noqa: F811
    seen = []
    real = torch.nn.functional.cross_entropy

    def spy(logits, target, *args, **kwargs):
        seen.append(logits.dtype)
        return real(logits, target, *args, **kwargs)

    monkeypatch.setattr(training.F, "cross_entropy", spy)
    result = train(load_spec(LENET), config(folder, tmp_path, amp=amp))
    assert result.test_accuracy >= 0.9, result.epochs
    wanted = torch.bfloat16 if amp == "bf16" else torch.float16
    assert wanted in seen  # the training forward ran under autocast
    checkpoint = load_checkpoint(result.checkpoint, resume=True)
    assert checkpoint["state_dict"]["c1.weight"].dtype == torch.float32  # the weights stay float32
    assert bool(checkpoint["scaler"]) == (amp == "fp16")  # fp16's loss scale is saved for a resume


def test_data_kept_off_the_device_gives_the_same_run_and_says_so(folder, tmp_path, monkeypatch):  # noqa: F811
    network = load_spec(LENET)
    on_device = train(network, config(folder, tmp_path, epochs=1, limit=160, out=str(tmp_path / "a.pt")))
    monkeypatch.setattr(training, "fits_on", lambda device, nbytes: False)
    messages = []
    copied = train(
        network,
        config(folder, tmp_path, epochs=1, limit=160, out=str(tmp_path / "b.pt")),
        TrainCallbacks(on_message=messages.append),
    )
    assert [m.train_loss for m in copied.epochs] == [m.train_loss for m in on_device.epochs]
    assert len(messages) == 1 and "does not fit" in messages[0] and "each batch is copied" in messages[0]


def test_channels_last_is_only_a_memory_format(folder, tmp_path):  # noqa: F811
    network = load_spec(LENET)
    nhwc = train(network, config(folder, tmp_path, epochs=1, limit=160, out=str(tmp_path / "a.pt")))
    nchw = train(
        network,
        config(folder, tmp_path, epochs=1, limit=160, channels_last=False, out=str(tmp_path / "b.pt")),
    )
    assert nchw.epochs[0].train_loss == pytest.approx(nhwc.epochs[0].train_loss, rel=1e-4)
    assert training.memory_format((1, 28, 28)) == torch.channels_last
    assert training.memory_format((1, 8, 8, 8)) == torch.channels_last_3d
    assert training.memory_format((2, 32)) is None and training.memory_format((1, 28, 28), False) is None


def test_bad_amp_is_refused(tmp_path):
    with pytest.raises(TrainError, match="amp 'fp8': choose one of bf16, fp16"):
        train(load_spec(LENET), TrainConfig(data_dir=str(tmp_path), amp="fp8", download=False))


@pytest.mark.slow  # inductor compiles C++: about a minute on these 2 shared cores
def test_compiled_model_trains_to_the_same_losses(folder, tmp_path):  # noqa: F811
    network = parse_spec(
        "name: small\ninput: [1, 28, 28]\nlayers:\n"
        "  - {type: Conv2d, name: c, out_channels: 4, kernel_size: 5, stride: 2}\n  - {type: ReLU, name: r}\n"
        "  - {type: Flatten, name: f}\n  - {type: Linear, name: fc, out_features: 10}\n"
    )
    eager = train(network, config(folder, tmp_path, epochs=1, limit=160, out=str(tmp_path / "e.pt")))
    compiled = train(
        network, config(folder, tmp_path, epochs=1, limit=160, compile=True, out=str(tmp_path / "c.pt"))
    )
    assert compiled.epochs[0].train_loss == pytest.approx(eager.epochs[0].train_loss, rel=1e-3)
    assert (
        "c.weight" in load_checkpoint(compiled.checkpoint)["state_dict"]
    )  # the module's names, not _orig_mod


def test_a_four_step_one_cycle_run(folder, tmp_path):  # noqa: F811
    """OneCycleLR divided by zero at exactly 4 steps (pct_start 0.25 × 4 = 1)."""
    result = train(load_spec(LENET), config(folder, tmp_path, epochs=1, limit=128))
    assert len(result.epochs) == 1
