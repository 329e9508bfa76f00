"""Choosing training threads from what is free (convcalc.threads, issue 18): the rule driven with
made-up machines and step times, and `train` using it. No assertion depends on this machine's
speed or load."""

from __future__ import annotations

import re

import pytest
import torch

from convcalc import threads
from convcalc.spec import load_spec
from convcalc.threads import Chooser, Machine, candidates, fastest, free_cores
from convcalc.train import TrainCallbacks, TrainConfig, train
from tests.conftest import SPECS
from tests.test_train import folder  # noqa: F401 (the fixture: a small learnable data set)

BUSY = Machine(cores=2, load=3.5, limit=2)  # issue 18's machine: 2 cores, load ~3.5
IDLE = Machine(cores=2, load=0.1, limit=2)


class Torch:
    """Stands in for torch's thread count: records every change."""

    def __init__(self, count: int):
        self.count, self.calls = count, []

    def set(self, count: int) -> None:
        self.calls.append(count)
        self.count = count


def run_epoch(chooser: Chooser, torch_: Torch, batches: int, seconds):
    """The loop's calls for one epoch; ``seconds(step, threads)`` is each step's time. Returns the
    thread count of every step and the lines for the user."""
    used, notes = [], [chooser.start_epoch(batches)]
    for step in range(batches):
        chooser.before_step()
        used.append(torch_.count)
        notes.append(chooser.after_step(seconds(step, torch_.count)))
    return used, [n for n in notes if n]


def contended(step: int, count: int) -> float:
    return {1: 0.010, 2: 0.050}[count]  # two threads 5× slower, as measured under load ~3.5


def idle(step: int, count: int) -> float:
    return {1: 0.010, 2: 0.006}[count]


def probe_length(machine: Machine) -> int:
    return len(candidates(machine)) * (threads.WARMUP_STEPS + threads.TIMED_STEPS)


@pytest.mark.parametrize(
    ("machine", "expected"),
    [
        (BUSY, (1, 2)),
        (IDLE, (1, 2)),
        (Machine(cores=8, load=3.2, limit=8), (1, 5, 8)),
        (Machine(cores=8, load=0.0, limit=4), (1, 4)),  # the caller's 4 threads are the most
        (Machine(cores=16, load=40.0, limit=16), (1, 16)),
        (Machine(cores=1, load=0.5, limit=1), (1,)),
    ],
)
def test_candidates_are_one_the_free_cores_and_the_limit(machine, expected):
    assert candidates(machine) == expected
    assert 1 <= free_cores(machine) <= machine.limit


@pytest.mark.parametrize(
    ("paces", "expected"),
    [
        ({1: 0.010, 2: 0.050}, 1),
        ({1: 0.010, 2: 0.006}, 2),
        ({1: 0.010, 2: 0.0095}, 1),  # 5% faster is within the margin: fewer threads
        ({1: 0.010, 2: 0.009}, 2),  # exactly the margin
        ({1: 0.010, 5: 0.004, 8: 0.0038}, 5),  # 8 is not 10% faster than 5
        ({1: 0.010, 5: 0.004, 8: 0.003}, 8),
        ({4: 0.02}, 4),
    ],
)
def test_fastest_needs_a_margin_to_take_more_threads(paces, expected):
    assert fastest(paces) == expected


def test_an_idle_machine_times_each_candidate_then_keeps_the_fastest():
    torch_ = Torch(2)
    chooser = Chooser(lambda: IDLE, torch_.set)
    used, notes = run_epoch(chooser, torch_, 60, idle)
    assert used[:8] == [1, 1, 1, 1, 2, 2, 2, 2] and set(used[8:]) == {2}
    assert notes == ["threads: 2 of 2 (a batch took 1 10.0 ms, 2 6.0 ms; load average 0.10 on 2 cores)"]
    chooser.finish()
    assert torch_.count == 2 and torch_.calls == [1, 2]


def test_a_candidate_twice_as_slow_is_dropped_after_one_step():
    torch_ = Torch(2)
    chooser = Chooser(lambda: BUSY, torch_.set)
    used, notes = run_epoch(chooser, torch_, 60, contended)
    assert used[:5] == [1, 1, 1, 1, 2] and set(used[5:]) == {1}  # one step at 2 threads, not four
    assert notes == ["threads: 1 of 2 (a batch took 1 10.0 ms, 2 50.0 ms; load average 3.50 on 2 cores)"]
    chooser.finish()
    assert torch_.count == 2  # torch's own count again


def test_the_first_step_at_a_count_is_not_timed():
    torch_ = Torch(2)
    chooser = Chooser(lambda: BUSY, torch_.set)

    def seconds(step, count):  # the first step at 1 thread is slow (the run's first): not timed
        return 1.0 if step == 0 else {1: 0.010, 2: 0.008}[count]

    used, notes = run_epoch(chooser, torch_, 64, seconds)
    assert set(used[8:]) == {2}
    assert "1 10.0 ms, 2 8.0 ms" in notes[0]


def test_the_timing_is_repeated_at_doubling_intervals_while_the_choice_holds():
    torch_ = Torch(2)
    chooser = Chooser(lambda: BUSY, torch_.set)
    used, notes = run_epoch(chooser, torch_, 1000, contended)
    starts = [i for i, count in enumerate(used) if count == 2]  # each timing's one step at 2 threads
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert gaps == [5 + threads.INTERVAL * 2**k for k in range(4)]  # 4 steps at 1 thread, then 1 at 2
    assert len(notes) == 1


def test_a_machine_that_becomes_idle_is_found_at_the_next_timing():
    torch_ = Torch(2)
    chooser = Chooser(lambda: BUSY, torch_.set)
    used, notes = run_epoch(
        chooser, torch_, 300, lambda step, count: (contended if step < 100 else idle)(step, count)
    )
    switched = used.index(2, 100)
    assert switched < 100 + 2 * threads.INTERVAL  # at the timing due after 128 batches
    assert set(used[switched + 4 : switched + 4 + threads.INTERVAL]) == {2}
    assert [n.split(" (")[0] for n in notes] == ["threads: 1 of 2", "threads: 2 of 2"]


def test_a_slowdown_mid_epoch_times_again_at_once_and_falls_back():
    torch_ = Torch(2)
    chooser = Chooser(lambda: BUSY, torch_.set)

    def seconds(step, count):  # idle until step 40, then another job takes a core
        return idle(step, count) if step < 40 else contended(step, count)

    used, notes = run_epoch(chooser, torch_, 200, seconds)
    assert set(used[8:40]) == {2}
    again = used.index(1, 40)  # timing again, once most of the window of recent steps is slow
    assert again <= 40 + threads.WINDOW
    assert used[again : again + 5] == [1, 1, 1, 1, 2]
    assert set(used[again + 5 : again + 5 + threads.INTERVAL]) == {1}
    assert [n.split(" (")[0] for n in notes] == ["threads: 2 of 2", "threads: 1 of 2"]


def test_the_timing_continues_across_epochs_and_says_only_changes():
    torch_ = Torch(2)
    chooser = Chooser(lambda: BUSY, torch_.set)
    _, first = run_epoch(chooser, torch_, 50, contended)
    used, second = run_epoch(chooser, torch_, 50, contended)
    assert len(first) == 1 and second == []
    assert used.count(2) == 1  # the timing due after 64 batches, in the second epoch


def test_too_short_an_epoch_takes_the_load_average_guess():
    for machine, guess in ((BUSY, 1), (IDLE, 2)):
        torch_ = Torch(2)
        chooser = Chooser(lambda machine=machine: machine, torch_.set)
        short = 4 * probe_length(machine) - 1
        used, notes = run_epoch(chooser, torch_, short, contended)
        assert set(used) == {guess}
        assert notes == [
            f"threads: {guess} of 2 (too few batches to time; load average {machine.load:.2f} on 2 cores)"
        ]
        used, notes = run_epoch(chooser, torch_, short, idle)  # kept: the load now counts this run too
        assert set(used) == {guess} and notes == []


def test_one_allowed_thread_is_never_changed_nor_reported():
    torch_ = Torch(1)
    chooser = Chooser(lambda: Machine(cores=2, load=0.0, limit=1), torch_.set)
    used, notes = run_epoch(chooser, torch_, 100, idle)
    chooser.finish()
    assert set(used) == {1} and notes == [] and torch_.calls == []


def test_this_machine_reads_the_affinity_and_the_load(monkeypatch):
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 2, 5}, raising=False)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (1.25, 9.0, 9.0), raising=False)
    assert threads.this_machine(8) == Machine(cores=3, load=1.25, limit=3)
    assert threads.this_machine(2) == Machine(cores=3, load=1.25, limit=2)


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow  # two threads on a shared machine: seconds to minutes
def test_train_without_threads_times_the_candidates_and_gives_torch_its_count_back(
    folder,  # noqa: F811
    tmp_path,
    monkeypatch,
    two_threads,
):
    monkeypatch.setattr(threads, "this_machine", lambda limit: Machine(cores=2, load=0.5, limit=limit))
    # no early drop and no re-timing on a slowdown: this test is about the wiring into the loop;
    # on a shared machine a slow step restarted the timing mid-epoch (the rule has its own tests)
    monkeypatch.setattr(threads, "SLOWDOWN", float("inf"))
    messages, counts = [], []
    callbacks = TrainCallbacks(
        on_message=messages.append, on_batch=lambda *a: counts.append(torch.get_num_threads())
    )
    config = TrainConfig(
        data_dir=str(folder), epochs=1, batch_size=16, download=False, out=str(tmp_path / "a.pt")
    )
    result = train(load_spec(SPECS / "lenet.yaml"), config, callbacks)
    assert len(result.epochs) == 1 and len(counts) == 640 // 16
    # on_batch runs after the step: 4 at 1 thread, then up to 4 at 2 (1 if the machine is busy)
    assert counts[:4] == [1, 1, 1, 1]
    assert len(messages) == 1
    chosen = int(re.match(r"threads: ([12]) of 2 \(a batch took 1 [\d.]+ ms, 2 [\d.]+ ms; ", messages[0])[1])
    assert set(counts[probe_length(IDLE) :]) == {chosen}
    assert torch.get_num_threads() == 2


def test_train_with_threads_keeps_them_and_says_nothing(folder, tmp_path, two_threads):  # noqa: F811
    messages, counts = [], []
    callbacks = TrainCallbacks(
        on_message=messages.append, on_batch=lambda *a: counts.append(torch.get_num_threads())
    )
    config = TrainConfig(
        data_dir=str(folder), epochs=1, batch_size=16, threads=1, download=False, out=str(tmp_path / "a.pt")
    )
    train(load_spec(SPECS / "lenet.yaml"), config, callbacks)
    assert set(counts) == {1} and messages == []
