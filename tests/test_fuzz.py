"""Hostile input through the CLI entry point (issue 16): mutated specs, random bytes and random
arguments to every command end in exit 0 or 1 within a time limit, never another exception (a
traceback to a user), and every source ``export`` writes compiles.

Commands run in this process (``convcalc.cli.main``, ``SystemExit`` caught): a subprocess per
example would cost a second of imports each. ``run`` bounds each call with a timer signal.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convcalc.cli import main
from tests.conftest import SHIPPED_SPECS, SPECS

TEXTS = [path.read_text(encoding="utf-8") for path in SHIPPED_SPECS if path.stat().st_size < 6000]


INSERTS = [b"\x00", b"\x1e", b"-1", b"99999999999", b"[", b"}", b"&a ", b"*a", b"\n  - {type: Add}",
           b"inputs: nope, ", b"repeat: 0, ", b": :"]  # fmt: skip


@st.composite
def mutated(draw, texts=TEXTS):
    text = draw(st.sampled_from(texts))
    data = bytearray(text.encode())
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "duplicate", "junk"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[at:at] = draw(st.sampled_from(INSERTS))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 20))]
        elif kind == "duplicate":
            data[at:at] = data[at : at + draw(st.integers(1, 60))]
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
    return bytes(data)


class TookTooLong(BaseException):
    """Not an ``Exception``: the ``except Exception`` around a user's code must not swallow it."""


def _too_long(signum, frame):
    raise TookTooLong("the command ran past its time limit (a hang?)")


# A gentle mutation keeps the YAML valid, so most examples reach the model, the data and the
# app: a number replaced (by a huge, zero, negative or non-integer value), a layer dropped or
# doubled, a layer's type swapped.
NUMBERS = st.sampled_from(
    [
        "0",
        "1",
        "2",
        "3",
        "7",
        "28",
        "100",
        "4096",
        "1000000",
        "2147483648",
        "-1",
        "0.5",
        "null",
        "true",
        ".inf",
        "'x'",
        "[2, 3]",
        "[]",
    ]
)
TYPES = st.sampled_from(
    [
        "Conv2d",
        "Conv1d",
        "ConvTranspose2d",
        "MaxPool2d",
        "AvgPool2d",
        "AdaptiveAvgPool2d",
        "BatchNorm2d",
        "Linear",
        "Flatten",
        "ReLU",
        "Dropout",
        "Add",
        "Cat",
        "Nope",
    ]
)


@st.composite
def tweaked(draw, text: str) -> bytes:
    for _ in range(draw(st.integers(1, 3))):
        lines = text.splitlines(keepends=True)
        layers = [i for i, line in enumerate(lines) if "type:" in line]
        kind = draw(st.sampled_from(["number", "number", "drop", "duplicate", "type"]))
        if kind == "number":
            spots = list(re.finditer(r"\b\d+\b", text))
            spot = draw(st.sampled_from(spots))
            text = text[: spot.start()] + draw(NUMBERS) + text[spot.end() :]
        elif kind == "type":
            spot = draw(st.sampled_from(list(re.finditer(r"type: (\w+)", text))))
            text = text[: spot.start(1)] + draw(TYPES) + text[spot.end(1) :]
        else:
            at = draw(st.sampled_from(layers))
            lines[at : at + 1] = [] if kind == "drop" else [lines[at], lines[at]]
            text = "".join(lines)
    return text.encode()


def run_captured(argv: list[str], stdin: bytes = b"", limit: float = 60) -> tuple[int, str]:
    """``main(argv)`` in this process with ``stdin``, stopped by ``TookTooLong`` after ``limit``
    seconds; (the exit code, 0 when it returns; stdout and stderr). Any exception other than
    ``SystemExit`` propagates: it would have been a traceback."""
    out, err = io.StringIO(), io.StringIO()
    fake_stdin = io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8", errors="strict")
    old, old_handler = sys.stdin, signal.signal(signal.SIGALRM, _too_long)
    sys.stdin = fake_stdin
    signal.setitimer(signal.ITIMER_REAL, limit)
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main(argv)
    except SystemExit as exit:
        code = exit.code if isinstance(exit.code, int) else 1
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        sys.stdin = old
    text = out.getvalue() + err.getvalue()
    assert "Traceback" not in text, text
    return code, text


def run(argv: list[str], stdin: bytes = b"") -> int:
    """The exit code of ``run_captured``."""
    return run_captured(argv, stdin)[0]


@pytest.mark.slow
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_specs_never_crash_shape(data):
    assert run(["shape", "-", "--json"], data) in (0, 1)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_specs_never_crash_shape_quick(data):
    assert run(["shape", "-"], data) in (0, 1)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_random_bytes_never_crash_shape(data):
    assert run(["shape", "-"], data) in (0, 1)


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_what_export_writes_compiles(tmp_path_factory, data):
    target = tmp_path_factory.mktemp("export") / "model.py"
    code = run(["export", "-", "-o", str(target)], data)
    assert code in (0, 1)
    if code == 0:
        compile(target.read_text(encoding="utf-8"), str(target), "exec")


# --- every other command ----------------------------------------------------------------------
# Each test's examples are bounded so that the file adds well under 90 s to CI (2 shared cores);
# the slower ones are marked slow (they still run in CI).

SOME = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
LENET_TEXT = (SPECS / "lenet.yaml").read_text(encoding="utf-8")
SMALL_TEXTS = [text for text in TEXTS if len(text) < 2500]  # check builds and runs each model
JUNK_TEXT = st.text(max_size=12)  # any unicode, NUL and surrogates included


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread_here():
    """One torch thread for the whole module (as tests/conftest.py's fixture does per test)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    """A working folder, cache and data folder of this module's own: nothing a hostile path
    makes lands in the repository or the user's cache."""
    import numpy as np

    from convcalc import data
    from tests.test_train import squares

    root = tmp_path_factory.mktemp("hostile")
    rng = np.random.default_rng(0)
    folder = data.write_dataset(root / "squares", squares(32, rng), squares(16, rng))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.setenv("XDG_CACHE_HOME", str(root / "cache"))
        patch.delenv("CONVCALC_DATA", raising=False)
        yield root, folder


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SMALL_TEXTS).flatmap(tweaked), st.sampled_from(["check", "summary"]))
def test_mutated_specs_never_crash_check_or_summary(data, command):
    assert run([command, "-"], data) in (0, 1)


SOLVE_FLAGS = ["--transposed", "--json"]
SOLVE_OPTIONS = ["--out", "--rf", "--kernel", "--stride", "--dilation", "--pool", "--channels", "--limit"]
SOLVE_VALUES = st.one_of(
    st.integers(-2, 64).map(str),
    st.integers(0, 2**70).map(str),
    st.tuples(st.integers(-1, 40), st.integers(-1, 40)).map(lambda hw: f"{hw[0]}x{hw[1]}"),
    st.sampled_from(["max", "avg", "", "x", "1x1x1", "2×3", "٣", "1_0", "1e3", "-0", "9" * 5000]),
    JUNK_TEXT,
)


@st.composite
def solve_arguments(draw):
    args = ["solve", "--in", draw(SOLVE_VALUES)] if draw(st.booleans()) else ["solve"]
    for _ in range(draw(st.integers(0, 4))):
        option = draw(st.sampled_from(SOLVE_OPTIONS + SOLVE_FLAGS))
        args += [option] if option in SOLVE_FLAGS else [option, draw(SOLVE_VALUES)]
    return args


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(solve_arguments())
def test_random_solve_arguments_never_crash(args):
    assert run(args) in (0, 1)


HOSTILE_MODULES = {
    "raises": "raise RuntimeError('broken at import')\n",
    "exits": "import sys\nsys.exit(3)\n",
    "not_module": "def make():\n    return 42\n",
    "needs_args": (
        "from torch import nn\n\nclass Net(nn.Module):\n    def __init__(self, width):\n"
        "        super().__init__()\n        self.fc = nn.Linear(width, 2)\n\n"
        "    def forward(self, x):\n        return self.fc(x)\n"
    ),
    "recursive": "def make():\n    return make()\n",
    "syntax": "def f(:\n",
}
TARGETS = ["a:b", "../x.py:Net", "os:system", "sys:exit", "builtins:exit", "builtins:print",
           "torch.nn:Conv2d", "torch.nn:ReLU", "torch.nn:Sequential", "torch:zeros", "math:pi", ":", "x",
           ".:x", "..:y", "\x00:x", "torchvision.models:resnet18", "{raises}:Net", "{exits}:Net",
           "{not_module}:make", "{needs_args}:Net", "{recursive}:make", "{syntax}:f",
           "{needs_args}:Missing", "{dir}:Net"]  # fmt: skip
ARGUMENTS = st.tuples(
    st.sampled_from(["width", "in_features", "num_classes", "x", "", "1a", "a b"]),
    st.sampled_from(["=", "=", "=", ""]),
    st.one_of(
        st.sampled_from(["[", "&a *a", "!!python/object:os.system", "{a: 1}", "-3", "9" * 4400]), JUNK_TEXT
    ),
).map("".join)


@pytest.fixture(scope="module")
def hostile_modules(sandbox):
    root, _ = sandbox
    folder = root / "modules"
    folder.mkdir()
    for name, source in HOSTILE_MODULES.items():
        (folder / f"hostile_{name}.py").write_text(source)
    return {name: str(folder / f"hostile_{name}.py") for name in HOSTILE_MODULES} | {"dir": str(folder)}


@SOME
@given(st.sampled_from(TARGETS), st.lists(ARGUMENTS, max_size=2), st.sampled_from([[], ["--input", "1x8x8"]]))
def test_hostile_import_targets_and_arguments_never_crash(hostile_modules, target, arguments, size):
    target = target.format(**hostile_modules)
    args = ["import", target, *size, *[part for item in arguments for part in ("--arg", item)]]
    assert run(args) in (0, 1)


@pytest.mark.slow
@SOME
@given(tweaked(LENET_TEXT))
def test_mutated_specs_never_crash_train(sandbox, data):
    root, folder = sandbox
    args = ["train", "-", "--data-dir", str(folder), "--no-download", "--epochs", "1", "--limit", "16",
            "--batch-size", "8", "--out", str(root / "fuzz.pt")]  # fmt: skip
    assert run(args, data) in (0, 1)


@pytest.fixture(scope="module")
def real_checkpoint(sandbox):
    """The bytes and the loaded dict of a real checkpoint (LeNet, one epoch on 32 images)."""
    import torch

    from convcalc.spec import load_spec
    from convcalc.train import TrainConfig, train

    root, folder = sandbox
    out = root / "real.pt"
    config = TrainConfig(data_dir=str(folder), epochs=1, batch_size=16, out=str(out), download=False)
    train(load_spec(SPECS / "lenet.yaml"), config)
    return out.read_bytes(), torch.load(out, weights_only=True)


JUNK_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)


@st.composite
def hostile_checkpoint_bytes(draw, real: tuple[bytes, dict]):
    """Random bytes, a truncated real checkpoint, a pickle of a wrong structure, or the real
    checkpoint with a field (or a field of a field) removed or replaced by junk."""
    import copy
    import pickle

    import torch

    raw, loaded = real
    kinds = ["bytes", "text", "truncated", "pickle", "torch junk", "field", "field", "field"]
    kind = draw(st.sampled_from(kinds))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "text":  # a spec, notes or a log given as the checkpoint
        text = draw(st.sampled_from([LENET_TEXT, "", "epochs: 3\n"]) | st.text(max_size=40))
        return text.encode("utf-8", "replace")
    if kind == "truncated":
        return raw[: draw(st.integers(0, len(raw) - 1))]
    if kind == "pickle":
        return pickle.dumps(draw(JUNK_VALUES))
    checkpoint = draw(JUNK_VALUES) if kind == "torch junk" else copy.deepcopy(loaded)
    if kind == "field":
        record = checkpoint
        key = draw(st.sampled_from(sorted(record)))
        while isinstance(record[key], dict) and record[key] and draw(st.booleans()):
            record, key = record[key], draw(st.sampled_from(sorted(record[key], key=str)))
        if draw(st.booleans()):
            del record[key]
        else:
            record[key] = draw(JUNK_VALUES | st.just(torch.zeros(3)))
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    return buffer.getvalue()


@pytest.mark.slow
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data(), command=st.sampled_from(["evaluate", "resume"]))
def test_hostile_checkpoints_never_crash_evaluate_or_resume(sandbox, real_checkpoint, data, command):
    root, folder = sandbox
    path = root / "hostile.pt"
    path.write_bytes(data.draw(hostile_checkpoint_bytes(real_checkpoint)))
    common = ["--data-dir", str(folder), "--no-download"]
    args = (["evaluate", str(path), *common] if command == "evaluate"
            else ["train", str(SPECS / "lenet.yaml"), "--resume", str(path), *common])  # fmt: skip
    assert run(args) in (0, 1)


@SOME
@given(
    st.sampled_from(["info", "fetch"]),
    st.one_of(st.sampled_from(["mnist", "kmnist", "cifar10", ""]), JUNK_TEXT),
    st.one_of(st.none(), st.text(max_size=20).map(lambda t: t.replace("/", "_")), st.just("x" * 300)),
)
def test_data_commands_with_junk_names_never_crash(sandbox, command, name, data_dir):
    """Junk data set names and folders (relative, in the sandbox); fetch only from a closed port."""
    args = ["data", command, name, *(["--data-dir", data_dir] if data_dir is not None else [])]
    if command == "fetch":
        args += ["--mirror", "http://127.0.0.1:9/"]
    assert run(args) in (0, 1)


def _mount_and_quit(app) -> None:
    """Instead of ``App.run``: start the app headless, let it draw, quit (an exception inside
    the app is raised here)."""
    import asyncio

    async def go() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()

    asyncio.run(go())


@pytest.mark.slow
@SOME
@given(st.one_of(tweaked(LENET_TEXT), mutated([LENET_TEXT]), st.binary(max_size=100)))
def test_hostile_specs_never_crash_tui(sandbox, data):
    """A spec the designer cannot open is a message and exit 1 before the app starts; one it
    opens, it draws."""
    from convcalc.tui.app import ConvcalcApp

    root, _ = sandbox
    path = root / "designed.yaml"
    path.write_bytes(data)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ConvcalcApp, "run", _mount_and_quit)
        assert run(["tui", str(path)]) in (0, 1)


# --- the commands added since (memory, draw, rf, plot) ------------------------------------------


@pytest.mark.slow
@SOME
@given(
    st.one_of(st.sampled_from(SMALL_TEXTS).flatmap(tweaked), mutated()),
    st.sampled_from(["memory", "draw", "rf"]),
)
def test_hostile_specs_never_crash_memory_draw_or_rf(sandbox, data, command):
    root, _ = sandbox
    args = {
        "memory": ["memory", "-"],
        "draw": ["draw", "-", "-o", str(root / "drawn.svg")],
        "rf": ["rf", "-", "--layer", "c3", "-o", str(root / "field.svg")],
    }[command]
    assert run(args, data) in (0, 1)


@SOME
@given(data=st.data())
def test_hostile_checkpoints_never_crash_plot(sandbox, real_checkpoint, data):
    root, _ = sandbox
    path = root / "plotted.pt"
    path.write_bytes(data.draw(hostile_checkpoint_bytes(real_checkpoint)))
    assert run(["plot", str(path), "-o", str(root / "curves.svg")]) in (0, 1)


# --- output paths (issue 17): every command that writes, given a path it cannot write ---------------

# What a command line can hold: bytes decoded as Python decodes argv (lone surrogates for bad UTF-8).
ARGV_TEXT = st.binary(min_size=1, max_size=12).map(os.fsdecode)
FIXED_PATHS = ["{root}", "{root}/file/x", "{root}/file/a/b/x", "/sys/x", "/proc/x", "/", ".", "..",
               "{root}/none/x", "{root}/ro/x", "-"]  # fmt: skip
OUTPUT_PATHS = st.one_of(
    st.sampled_from(FIXED_PATHS),
    st.integers(240, 300).map(lambda n: "{root}/" + "p" * n),
    st.integers(1, 3).map(lambda n: "{root}/" + "/".join(["q" * 200] * n) + "/x"),
    ARGV_TEXT.map(lambda text: "{root}/" + text),
)
WRITING = {
    "export": ["export", str(SPECS / "lenet.yaml"), "-o"],
    "import": ["import", "torch.nn:ReLU", "--input", "1x8x8", "-o"],
    "draw": ["draw", str(SPECS / "lenet.yaml"), "-o"],
    "memory": ["memory", str(SPECS / "lenet.yaml"), "--budget", "1GiB", "-o"],
    "rf": ["rf", str(SPECS / "lenet.yaml"), "--layer", "c3", "-o"],
    "plot": ["plot", "{checkpoint}", "-o"],
    "train": ["train", str(SPECS / "lenet.yaml"), "--data-dir", "{data}", "--no-download", "--limit", "8",
              "--epochs", "1", "--batch-size", "8", "--out"],
}  # fmt: skip


@pytest.fixture(scope="module")
def writing_sandbox(sandbox, real_checkpoint):
    root, folder = sandbox
    place = root / "writing"
    place.mkdir()
    (place / "file").write_text("a regular file")
    (place / "ro").mkdir(mode=0o500)  # root writes there anyway; other users cannot
    (place / "run.pt").write_bytes(real_checkpoint[0])
    return place, folder


@pytest.mark.slow
@SOME
@given(st.sampled_from(sorted(WRITING)), OUTPUT_PATHS, st.sampled_from(["", ".svg", ".png", ".py", ".pt"]))
def test_hostile_output_paths_never_crash_the_commands_that_write(writing_sandbox, command, path, suffix):
    place, folder = writing_sandbox
    target = path.replace("{root}", str(place)) + (suffix if path != "-" else "")
    args = [arg.format(checkpoint=place / "run.pt", data=folder) for arg in WRITING[command]]
    code, _ = run_captured([*args, target])
    assert code in (0, 1)
    left = [p.name for p in place.rglob(".*") if p.name.endswith((".tmp", ".part", ".probe"))]
    assert not left, left  # no temporary or probe file stays behind
