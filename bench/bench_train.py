"""Training speed and accuracy: the seed's recipe against `convcalc train`'s, side by side.

The seed's recipe (the baseline): a per-sample ``Dataset`` (each item a normalised 1×28×28
float tensor and an int label, as torchvision's ToTensor+Normalize give, minus the PIL step)
fed by ``DataLoader(batch_size=64, shuffle=True)``, Adam at lr 1e-3, 20 epochs, the LeNet of
``specs/lenet.yaml``. Ours: ``convcalc.train.train`` with its defaults. Both run in this process
one after the other on the same data, the same torch threads and the same machine.

Data (no full MNIST training images exist here):
  fashion   the 60,000 + 10,000 real images of Debian's dataset-fashion-mnist: the same tensor
            sizes as full MNIST, so its wall times are those of full MNIST;
  mnist8k   real MNIST digits: the first 8,000 images of the official test set for training,
            the other 2,000 for testing (../shared/data/mnist).

  python bench/bench_train.py compare --data fashion [--baseline-epochs 20] [--threads N] [--limit N]
  python bench/bench_train.py sweep --data fashion --epochs 6,8 --batch-size 128,256 --lr 2e-3,3e-3
  python bench/bench_train.py peak --data mnist8k [--threads N] [--amp bf16] [--batch-size 128,256]
  python bench/bench_train.py threads --data mnist8k [--rounds 3] [--busy 2]
  python bench/bench_train.py parts --data mnist8k --threads 1
  python bench/bench_train.py resnet [--device cuda] [--amp-list none,bf16] [--images 512] [--cifar-dir DIR]

``peak``: training images per second (training steps only, no evaluation) of the seed's recipe
and of ours, against the machine's measured float32 matrix-multiply rate: LeNet's forward and
backward cost about 3 × 2 × its MACs = 1.7 MFLOP an image (the engine's MAC count), so
images/s × FLOP/image ÷ matmul FLOP/s is the fraction of the machine's peak a recipe reaches.
Per second of wall time and per CPU-second of this process (``cpu_rates``: a full batch's CPU
time at the median and at the fastest 10%, against the matmul's best CPU time): on a shared
machine the wall-time rates swing with the other jobs, the CPU-time ones far less, so "vs seed"
and "vs previous" compare the median batches' CPU rates.
Every row runs at the thread count of the matmul (``--threads``, else torch's), and "previous
loop" is ``convcalc train`` as it was before this round (its steps on the built model, without
convcalc.fastpath's rewrite), alternating with today's in the same process.

``parts``: where a training step of the default recipe goes (batch 128, channels-last, the
training model of convcalc.fastpath): each kernel of the step timed alone on a real batch, best
CPU time of 50, beside the whole step on the fast path and on the built model.

``resnet``: ``convcalc train`` of a ResNet-18 (specs/resnet18_cifar.yaml, 3×32×32) for one epoch
of ``--images`` CIFAR-10 images (the real archive in ``--cifar-dir``, else generated ones in its
format) on ``--device``, in float32 and under each autocast dtype of ``--amp-list``: training
images per second of wall time against that device's measured 1024×1024 matmul rate in float32
and in the autocast dtype (``3 × 2 × MACs`` FLOP an image, as for LeNet). On a GPU each timed
matmul is waited for.

``threads``: ``convcalc train``'s default (threads chosen from what is free, convcalc.threads)
against ``--threads 1`` and against torch's count (every core: the previous default), alternating
for ``--rounds`` runs of 2 epochs each, under the machine's load as it is and, with ``--busy K``,
with K busy-loop processes of this script's own running beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from convcalc import data, fastpath  # noqa: E402
from convcalc import train as training  # noqa: E402
from convcalc.build import build_model  # noqa: E402
from convcalc.spec import load_spec  # noqa: E402
from convcalc.train import TrainCallbacks, TrainConfig, train  # noqa: E402

SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist"


def prepare(which: str, workdir: Path) -> tuple[str, str]:
    """(dataset name, data folder) for ``which``; mnist8k is written as IDX files into workdir."""
    if which == "fashion":
        return "fashion-mnist", "/usr/share/datasets/fashion-mnist"
    images = data.read_idx(SHARED_MNIST / "t10k-images-idx3-ubyte.gz", ndim=3)
    labels = data.read_idx(SHARED_MNIST / "t10k-labels-idx1-ubyte.gz", ndim=1)
    folder = workdir / "mnist8k"
    data.write_idx(folder / data.TRAIN_IMAGES, images[:8000])
    data.write_idx(folder / data.TRAIN_LABELS, labels[:8000])
    data.write_idx(folder / data.TEST_IMAGES, images[8000:])
    data.write_idx(folder / data.TEST_LABELS, labels[8000:])
    return "mnist", str(folder)


class PerSample(torch.utils.data.Dataset):
    """The seed's data path: one Python call per image, normalised on the fly."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        image = self.images[i].float().div(255.0).unsqueeze(0)  # (1, 28, 28)
        return (image - 0.1307) / 0.3081, int(self.labels[i])


def baseline(dataset: str, folder: str, epochs: int, limit: int | None = None, seed: int = 0) -> list[dict]:
    """The seed's recipe; one record per epoch (cumulative seconds include evaluation)."""
    ds = data.load(dataset, folder, download=False)
    torch.manual_seed(seed)
    model = build_model(load_spec(ROOT / "specs" / "lenet.yaml"))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = torch.utils.data.DataLoader(
        PerSample(ds.train_images[:limit], ds.train_labels[:limit]), batch_size=64, shuffle=True
    )
    test = torch.utils.data.DataLoader(PerSample(ds.test_images, ds.test_labels), batch_size=1000)
    records, start = [], time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.train()
        for images, labels in loader:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(images), labels)
            loss.backward()
            optimizer.step()
        model.eval()
        correct = 0
        with torch.no_grad():
            for images, labels in test:
                correct += int((model(images).argmax(1) == labels).sum())
        records.append({"epoch": epoch, "accuracy": correct / len(ds.test_labels),
                        "seconds": time.perf_counter() - start})  # fmt: skip
        print(
            f"  baseline epoch {epoch:2d}: {records[-1]['accuracy']:.4f}  {records[-1]['seconds']:.1f}s",
            flush=True,
        )
    return records


def ours(
    dataset: str,
    folder: str,
    config: TrainConfig,
    out: str,
    verbose: bool = True,
    on_message=None,
    spec: Path = ROOT / "specs" / "lenet.yaml",
) -> list[dict]:
    config = replace(config, dataset=dataset, data_dir=folder, out=out, download=False)
    records, start = [], time.perf_counter()
    ticks: dict[int, list[float]] = {}  # epoch -> this process's CPU seconds after each batch

    def on_batch(epoch: int, batch: int, loss: float) -> None:
        ticks.setdefault(epoch, []).append(time.process_time())

    def on_epoch(m) -> None:
        records.append({"epoch": m.epoch, "accuracy": m.test_accuracy, "seconds": time.perf_counter() - start,
                        "images_per_second": m.images_per_second,
                        "cpu": cpu_rates(ticks[m.epoch], config.batch_size)})  # fmt: skip
        if verbose:
            print(
                f"  ours     epoch {m.epoch:2d}: {m.test_accuracy:.4f}  {records[-1]['seconds']:.1f}s",
                flush=True,
            )

    callbacks = TrainCallbacks(on_epoch=on_epoch, on_message=on_message, on_batch=on_batch)
    train(load_spec(spec), config, callbacks)
    return records


def cpu_rates(ticks: list[float], batch_size: int) -> tuple[float, float]:
    """Images per CPU-second of a full batch, from the CPU clock after each batch (the last,
    smaller batch left out): at the median batch and at the 10th percentile (the fastest 10%,
    what the step reaches when the other jobs leave its core and caches alone, as the matmul's
    best of 20 does). On a shared machine both swing far less than wall time."""
    steps = sorted(b - a for a, b in zip(ticks[:-2], ticks[1:-1], strict=True))
    if not steps:  # fewer than three batches: no full batch between two others
        return float("nan"), float("nan")
    return batch_size / statistics.median(steps), batch_size / steps[len(steps) // 10]


def images_per_second(records: list[dict]) -> float:
    """A run's training images per second of training: epochs of equal size, so the harmonic mean."""
    return len(records) / sum(1 / r["images_per_second"] for r in records)


def time_to(records: list[dict], accuracy: float) -> float | None:
    """Seconds until the first epoch at or above ``accuracy`` (None: never)."""
    return next((r["seconds"] for r in records if r["accuracy"] >= accuracy), None)


def compare(args, workdir: Path) -> None:
    dataset, folder = prepare(args.data, workdir)
    print(f"data: {args.data} ({folder}); torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)  # fmt: skip
    base = baseline(dataset, folder, args.baseline_epochs, args.limit)
    mine = ours(dataset, folder, TrainConfig(limit=args.limit), str(workdir / "ours.pt"))
    b, o = base[-1], mine[-1]
    print(f"baseline: {b['epoch']} epochs, {b['seconds']:.1f}s, accuracy {b['accuracy']:.4f}")
    print(f"ours:     {o['epoch']} epochs, {o['seconds']:.1f}s, accuracy {o['accuracy']:.4f}")
    print(f"wall-time ratio ours/baseline: {o['seconds'] / b['seconds']:.3f}")
    reach = time_to(base, o["accuracy"])
    reached = f"{reach:.1f}s (ratio {o['seconds'] / reach:.3f})" if reach else "never within its epochs"
    print(f"baseline time to our final accuracy: {reached}")
    per_epoch_base = b["seconds"] / b["epoch"]
    per_epoch_ours = o["seconds"] / o["epoch"]
    print(f"seconds per epoch: baseline {per_epoch_base:.2f}, ours {per_epoch_ours:.2f} "
          f"(throughput ratio {per_epoch_base / per_epoch_ours:.2f}x)")  # fmt: skip
    print(json.dumps({"data": args.data, "baseline": base, "ours": mine, "load_average": os.getloadavg()[0]}))


def sweep(args, workdir: Path) -> None:
    """Our loop over a grid of recipes; accuracy is the mean over ``--seeds``."""
    dataset, folder = prepare(args.data, workdir)
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"data: {args.data}; {torch.get_num_threads()} threads; seeds {seeds}; "
          f"load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    print(f"{'schedule':9} {'epochs':>6} {'batch':>6} {'lr':>7} {'accuracy':>9} {'min':>7} {'seconds':>8}")
    for schedule in args.schedule.split(","):
        for epochs in map(int, args.epochs.split(",")):
            for batch in map(int, args.batch_size.split(",")):
                for lr in map(float, args.lr.split(",")):
                    finals, seconds = [], []
                    for seed in seeds:
                        config = TrainConfig(
                            epochs=epochs, batch_size=batch, lr=lr, schedule=schedule, seed=seed
                        )
                        records = ours(dataset, folder, config, str(workdir / "sweep.pt"), verbose=False)
                        finals.append(records[-1]["accuracy"])
                        print("   seed", seed, [round(r["accuracy"], 4) for r in records], flush=True)
                        seconds.append(records[-1]["seconds"])
                    print(f"{schedule:9} {epochs:6d} {batch:6d} {lr:7.0e} {sum(finals) / len(finals):9.4f} "
                          f"{min(finals):7.4f} {sum(seconds) / len(seconds):8.1f}", flush=True)  # fmt: skip


def matmul_flops(
    n: int = 1024, repeats: int = 20, clock=time.perf_counter, dtype=torch.float32, device: str = "cpu"
) -> float:
    """The best ``dtype`` ``n``×``n`` matrix-multiply rate of this process on ``device`` (2n³ FLOP
    per product), per second of ``clock`` (``time.process_time``: per CPU-second of this
    process's threads; on a GPU only wall time means anything, and each product is waited for)."""
    a, b = (torch.randn(n, n, dtype=dtype, device=device) for _ in range(2))
    wait = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    for _ in range(3):
        torch.mm(a, b)  # warm-up: oneDNN's (cuBLAS's) kernels and the caches
    wait()
    best = float("inf")
    for _ in range(repeats):
        start = clock()
        torch.mm(a, b)
        wait()
        best = min(best, clock() - start)
    return 2 * n**3 / best


def baseline_images_per_second(dataset: str, folder: str, epochs: int = 2) -> tuple[float, float, float]:
    """The seed's recipe's training steps only (its DataLoader included): images per second of
    wall time and ``cpu_rates`` (a batch's CPU time includes its DataLoader's work)."""
    ds = data.load(dataset, folder, download=False)
    torch.manual_seed(0)
    model = build_model(load_spec(ROOT / "specs" / "lenet.yaml"))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = torch.utils.data.DataLoader(
        PerSample(ds.train_images, ds.train_labels), batch_size=64, shuffle=True
    )
    start, seen, ticks = time.perf_counter(), 0, [time.process_time()]
    for _ in range(epochs):
        for images, labels in loader:
            optimizer.zero_grad()
            F.cross_entropy(model(images), labels).backward()
            optimizer.step()
            seen += len(labels)
            ticks.append(time.process_time())
    return (seen / (time.perf_counter() - start), *cpu_rates(ticks, 64))


def run_previous(*args, **kwargs) -> list[dict]:
    """``ours`` as the loop was before this round: training steps on the built model itself,
    without convcalc.fastpath's rewrite (ReLU → MaxPool run as MaxPool → ReLU)."""
    current = fastpath.training_model
    fastpath.training_model = lambda model: model
    try:
        return ours(*args, **kwargs)
    finally:
        fastpath.training_model = current


def peak(args, workdir: Path) -> None:
    from convcalc.engine import analyze

    dataset, folder = prepare(args.data, workdir)
    flop_per_image = 6 * analyze(load_spec(ROOT / "specs" / "lenet.yaml")).total_macs
    count = torch.get_num_threads()
    before = matmul_flops(), matmul_flops(clock=time.process_time)
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.amp)
    amp_before = matmul_flops(clock=time.process_time, dtype=amp_dtype) if amp_dtype else None
    print(f"data: {args.data}; torch {torch.__version__}, {count} threads, "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)  # fmt: skip
    seed = "seed's recipe (DataLoader, batch 64)"
    rows = {seed: [baseline_images_per_second(dataset, folder)]}  # name -> [(wall, CPU, fast CPU)]
    for _ in range(args.rounds):
        for batch in map(int, args.batch_size.split(",")):
            for channels_last in (True, False):
                for previous in (True, False):
                    config = TrainConfig(
                        epochs=2, batch_size=batch, amp=args.amp, channels_last=channels_last, threads=count
                    )
                    run = run_previous if previous else ours
                    records = run(dataset, folder, config, str(workdir / "peak.pt"), verbose=False)
                    layout = "NHWC" if channels_last else "NCHW"
                    name = f"{'previous loop' if previous else 'convcalc train'}, batch {batch}, {layout}"
                    cpu = [statistics.median(r["cpu"][i] for r in records) for i in (0, 1)]
                    rows.setdefault(name + (f", {args.amp}" if args.amp else ""), []).append(
                        (images_per_second(records), *cpu)
                    )
    # the higher of before and after: the lower fractions
    wall_peak = max(before[0], matmul_flops())
    cpu_peak = max(before[1], matmul_flops(clock=time.process_time))
    print(f"matmul peak (float32 1024×1024, {count} threads): {wall_peak / 1e9:.1f} GFLOP/s of wall time, "
          f"{cpu_peak / 1e9:.1f} per CPU-second; LeNet forward+backward: {flop_per_image / 1e6:.2f} "
          f"MFLOP/image; load average now {os.getloadavg()[0]:.2f}")  # fmt: skip
    base = statistics.median(cpu for _, cpu, _ in rows[seed])
    print(f"{'':40} {'wall time':^18}   {'CPU, median batch':^18}   {'CPU, fastest 10%':^18}")
    print(f"{'recipe (median of rounds)':40}" + f" {'images/s':>9} {'of peak':>8}  " * 3
          + f"{'vs seed':>7} {'vs previous':>11}")  # fmt: skip
    for name, speeds in rows.items():
        wall, cpu, fast = (statistics.median(v[i] for v in speeds) for i in range(3))
        previous = rows.get(name.replace("convcalc train", "previous loop")) if "train," in name else None
        versus = f"{cpu / statistics.median(c for _, c, _ in previous):10.2f}x" if previous else ""
        fractions = wall * flop_per_image / wall_peak, *(v * flop_per_image / cpu_peak for v in (cpu, fast))
        print(f"{name:40} {wall:9,.0f} {fractions[0]:8.1%}   {cpu:9,.0f} {fractions[1]:8.1%}   "
              f"{fast:9,.0f} {fractions[2]:8.1%}  {cpu / base:6.2f}x {versus}")  # fmt: skip
    amp_peak = None
    if args.amp:  # a recipe under autocast multiplies in bf16/fp16: its own peak is the fair one
        amp_peak = max(amp_before, matmul_flops(clock=time.process_time, dtype=amp_dtype))
        print(f"{args.amp} matmul peak (1024×1024): {amp_peak / 1e9:.1f} GFLOP/s per CPU-second, "
              f"{amp_peak / cpu_peak:.1f}× the float32 one; against it:")  # fmt: skip
        for name, speeds in rows.items():
            if name.endswith(args.amp):
                cpu = statistics.median(v[1] for v in speeds)
                share = cpu * flop_per_image / amp_peak
                print(f"{name:40} {cpu:9,.0f} images/s {share:8.1%} of the {args.amp} peak")
    print(json.dumps({"matmul_flops": wall_peak, "matmul_flops_per_cpu_second": cpu_peak,
                      "amp_matmul_flops_per_cpu_second": amp_peak,
                      "flop_per_image": flop_per_image, "load_average": os.getloadavg()[0],
                      "rows": [{"recipe": n, "images_per_second_wall_cpu_fast": v}
                               for n, v in rows.items()]}))  # fmt: skip


def cifar_archive(folder: Path, train: int, test: int) -> None:
    """``folder/cifar-10-python.tar.gz`` in the official python-version format (five pickled
    training batches and a test batch of N×3072 uint8 rows and labels), of random pixels: the
    shapes and the reading path of CIFAR-10, for speed (accuracy on it means nothing)."""
    import io
    import pickle
    import tarfile

    generator = torch.Generator().manual_seed(0)
    sizes = [train // 5 + (i < train % 5) for i in range(5)]
    members = [*zip(data.CIFAR_TRAIN, sizes, strict=True), (data.CIFAR_TEST, test)]
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(folder / data.CIFAR_ARCHIVE, "w:gz") as tar:
        for member, count in members:
            pixels = torch.randint(0, 256, (count, 3072), dtype=torch.uint8, generator=generator)
            labels = torch.randint(0, 10, (count,), generator=generator).tolist()
            body = pickle.dumps({b"data": pixels.numpy(), b"labels": labels}, protocol=2)
            info = tarfile.TarInfo(member)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))


def resnet(args, workdir: Path) -> None:
    """ResNet-18 (specs/resnet18_cifar.yaml) trained by ``convcalc train`` on CIFAR-10 shapes
    (3×32×32, 10 classes) on ``--device``, in float32 and under each ``--amp``, against that
    device's matmul peak in float32 and in the autocast dtype."""
    from convcalc.engine import analyze

    spec = ROOT / "specs" / "resnet18_cifar.yaml"
    flop_per_image = 6 * analyze(load_spec(spec)).total_macs
    if args.cifar_dir:
        folder, what = args.cifar_dir, f"CIFAR-10 ({args.cifar_dir}), the first {args.images:,} images"
    else:
        folder, what = str(workdir / "cifar"), f"{args.images:,} generated images in CIFAR-10's format"
        cifar_archive(workdir / "cifar", args.images, 256)
    dtypes = {"float32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    amps = [a for a in args.amp_list.split(",") if a != "none"]
    before = {k: matmul_flops(dtype=dtypes[k], device=args.device) for k in ["float32", *amps]}
    print(f"data: {what}; device {args.device}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.2f}; "
          f"ResNet-18 forward+backward: {flop_per_image / 1e9:.2f} GFLOP/image", flush=True)  # fmt: skip
    rows = {}
    for amp in [None, *amps]:
        config = TrainConfig(epochs=1, batch_size=int(args.batch_size), amp=amp, device=args.device,
                             limit=args.images, threads=args.threads)  # fmt: skip
        records = ours("cifar10", folder, config, str(workdir / "resnet.pt"), verbose=False, spec=spec)
        rows[amp or "float32"] = records[-1]["images_per_second"]
    # the higher of before and after: the lower fractions
    peaks = {k: max(v, matmul_flops(dtype=dtypes[k], device=args.device)) for k, v in before.items()}
    rates = ", ".join(f"{k} {v / 1e9:,.1f} GFLOP/s" for k, v in peaks.items())
    print(f"matmul peak (1024×1024, wall time): {rates}")
    print(f"{'recipe':44} {'images/s':>9} {'of float32 peak':>16} {'of its own peak':>16}")
    for kind, speed in rows.items():
        name = f"convcalc train, batch {args.batch_size}, {kind}"
        print(f"{name:44} {speed:9,.1f} {speed * flop_per_image / peaks['float32']:16.1%} "
              f"{speed * flop_per_image / peaks[kind]:16.1%}")  # fmt: skip
    print(json.dumps({"device": args.device, "matmul_flops": peaks, "flop_per_image": flop_per_image,
                      "load_average": os.getloadavg()[0], "images_per_second": rows}))  # fmt: skip


def best_cpu_ms(work, repeats: int = 50) -> float:
    """The best CPU time of ``repeats`` calls of ``work`` (after 5 untimed), in ms."""
    for _ in range(5):
        work()
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        work()
        best = min(best, time.process_time() - start)
    return best * 1e3


def parts(args, workdir: Path) -> None:
    """LeNet's step in the fast path's order: c1, s2, ReLU, c3, s4, ReLU, Flatten, f5.. output."""
    dataset, folder = prepare(args.data, workdir)
    ds = data.load(dataset, folder, download=False)
    fmt = torch.channels_last
    images = ds.train_images.unsqueeze(1)  # (N, 28, 28) -> (N, 1, 28, 28)
    mean, std = training._statistics(images)
    x_all = training._normalise(images, mean, std, torch.device("cpu"), fmt)
    index = torch.randperm(len(x_all), generator=torch.Generator().manual_seed(0))[:128]
    x, y = x_all[index], ds.train_labels[index].long()  # (128, 1, 28, 28) channels-last
    model = build_model(load_spec(ROOT / "specs" / "lenet.yaml")).to(memory_format=fmt)
    fast = fastpath.training_model(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3, fused=True)

    def step(forward) -> None:
        loss = F.cross_entropy(forward(x_all[index]), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss.item()

    aten, c1, c3 = torch.ops.aten, model.c1, model.c3
    with torch.no_grad():
        a1 = c1(x)  # (128, 6, 24, 24): conv1's output, the first pool's input
        p1, i1 = F.max_pool2d_with_indices(a1, 2)
        r1 = p1.relu()  # (128, 6, 12, 12)
        a3 = c3(r1)  # (128, 16, 8, 8)
        p3, i3 = F.max_pool2d_with_indices(a3, 2)
    head = nn.Sequential(*list(fast.children())[6:])  # Flatten, Linear, ReLU, Linear, ReLU, Linear
    g1, gp1, g3, gp3 = (torch.randn_like(t) for t in (a1, p1, a3, p3))  # upstream gradients
    features = p3.relu().requires_grad_()

    def conv_backward(grad, inputs, conv, mask):
        weight = conv.weight
        return aten.convolution_backward(
            grad, inputs, weight, [weight.shape[0]], [1, 1], [0, 0], [1, 1], False, [0, 0], 1, mask
        )

    def pool_backward(grad, inputs, indices):
        window = [2, 2]  # kernel = stride, no padding, dilation 1, floor mode
        return aten.max_pool2d_with_indices_backward(
            grad, inputs, window, window, [0, 0], [1, 1], False, indices
        )

    kernels = {
        "batch gather x[index]": lambda: x_all[index],
        "conv1 forward (1→6 channels, 28×28)": lambda: F.conv2d(x, c1.weight, c1.bias),
        "conv1 backward (weight, bias)": lambda: conv_backward(g1, x, c1, [False, True, True]),
        "max-pool 1 forward, indices (6×24×24)": lambda: F.max_pool2d_with_indices(a1, 2),
        "max-pool 1 backward (zero fill, scatter)": lambda: pool_backward(gp1, a1, i1),
        "ReLU 1 forward + backward (6×12×12)": lambda: aten.threshold_backward(gp1, p1.relu(), 0),
        "conv2 forward (6→16 channels, 12×12)": lambda: F.conv2d(r1, c3.weight, c3.bias),
        "conv2 backward (input, weight, bias)": lambda: conv_backward(g3, r1, c3, [True] * 3),
        "max-pool 2 + ReLU 2, forward + backward": lambda: (
            pool_backward(gp3, a3, F.max_pool2d_with_indices(a3, 2)[1]),
            aten.threshold_backward(gp3, p3.relu(), 0),
        ),
        "Flatten, 3 Linear, loss: forward + backward": lambda: F.cross_entropy(head(features), y).backward(),
        "fused Adam step": optimizer.step,
    }
    print(f"data: {args.data}; torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"load average {os.getloadavg()[0]:.2f}; best CPU time of 50")  # fmt: skip
    whole = {"fast path": float("inf"), "built model": float("inf")}
    for _ in range(10):  # alternating, so both see the same moments of the machine's load
        whole["fast path"] = min(whole["fast path"], best_cpu_ms(lambda: step(fast), 5))
        whole["built model"] = min(whole["built model"], best_cpu_ms(lambda: step(model), 5))
    total = 0.0
    for name, work in kernels.items():
        ms = best_cpu_ms(work)
        total += ms
        print(f"{ms:6.2f} ms  {ms / whole['fast path']:4.0%}  {name}")
    print(f"{total:6.2f} ms        the kernels' sum")
    for name, ms in whole.items():
        print(f"{ms:6.2f} ms        a whole step, {name} ({128 / ms * 1e3:,.0f} images per CPU-second)")


def busy_loops(count: int) -> list[subprocess.Popen]:
    """``count`` processes that spin a core each: an artificial load beside the runs."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def threads_mode(args, workdir: Path) -> None:
    dataset, folder = prepare(args.data, workdir)
    cores = torch.get_num_threads()
    settings = {"default (chosen)": None, "--threads 1": 1, f"--threads {cores} (torch's)": cores}
    loads = {"as it is": 0, **({f"+{args.busy} busy loops": args.busy} if args.busy else {})}
    print(f"data: {args.data}; torch {torch.__version__}, {cores} cores; {args.rounds} rounds", flush=True)
    for load, busy in loads.items():
        speeds: dict[str, list[float]] = {name: [] for name in settings}
        averages, choices = [], []
        spinners = busy_loops(busy)
        try:
            for _ in range(args.rounds):
                for name, count in settings.items():
                    torch.set_num_threads(cores)  # --threads N stays set after a run: back to torch's
                    notes = []
                    config = TrainConfig(epochs=2, threads=count)  # each epoch measures again
                    averages.append(os.getloadavg()[0])
                    records = ours(dataset, folder, config, str(workdir / "threads.pt"), False, notes.append)
                    speeds[name].append(images_per_second(records))
                    choices += [n for n in notes if n.startswith("threads:")]
        finally:
            for spinner in spinners:
                spinner.kill()
                spinner.wait()
        print(f"load {load}: load average {min(averages):.2f}-{max(averages):.2f} during the runs")
        one = statistics.median(speeds["--threads 1"])
        for name, values in speeds.items():
            runs = ", ".join(f"{v:,.0f}" for v in values)
            print(f"  {name:24} median {statistics.median(values):7,.0f} img/s  "
                  f"vs --threads 1 {statistics.median(values) / one:5.2f}x   runs: {runs}")  # fmt: skip
        for note in choices:
            print(f"    {note}")
        print(json.dumps({"load": load, "load_average": averages, "images_per_second": speeds}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", choices=("compare", "sweep", "peak", "threads", "parts", "resnet"))
    parser.add_argument("--data", choices=("fashion", "mnist8k"), default="fashion")
    parser.add_argument("--threads", type=int, help="torch threads for both (default: torch's)")
    parser.add_argument("--baseline-epochs", type=int, default=20)
    parser.add_argument("--limit", type=int, help="compare: both train on the first N training images only")
    parser.add_argument("--schedule", default="onecycle")
    parser.add_argument("--epochs", default="8")
    parser.add_argument("--batch-size", default="128")
    parser.add_argument("--lr", default="3e-3")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--amp", choices=("bf16", "fp16"), help="peak: our runs under autocast")
    parser.add_argument("--rounds", type=int, default=3, help="peak, threads: alternating rounds")
    parser.add_argument("--busy", type=int, default=0, help="threads: also with K busy-loop processes")
    parser.add_argument("--device", default="cpu", help="resnet: cpu | cuda (| cuda:N)")
    parser.add_argument("--amp-list", default="none,bf16", help="resnet: float32 (none) and autocast runs")
    parser.add_argument("--images", type=int, default=512, help="resnet: training images (one epoch)")
    parser.add_argument("--cifar-dir", help="resnet: a folder with the real cifar-10-python.tar.gz")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        modes = {"compare": compare, "sweep": sweep, "peak": peak, "threads": threads_mode, "parts": parts,
                 "resnet": resnet}  # fmt: skip
        modes[args.mode](args, Path(tmp))


if __name__ == "__main__":
    main()
