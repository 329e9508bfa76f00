"""How many torch CPU threads a training run uses when ``--threads`` is not given: what is free.

torch's default, one thread per core, is the fastest on an idle machine and collapses on a shared
one: OpenMP's threads meet at a barrier in every operator, and one the kernel has descheduled for
another process stalls the others (2 cores at load ~3.5: 739-995 img/s at 2 threads against
4,079-5,639 at 1, issue 18; at load 6-9, 225 against 2,652). The load average alone cannot settle
it: it is a one-minute average, counts tasks waiting on disks, and in a container it is the
host's. So the loop times its own training steps: a few batches at each candidate count (1, the
cores the load average leaves free, and every core), then trains at the fastest. A candidate
that takes twice the best pace on any step is dropped at once (under load a step at 2 threads
cost 14 at 1). The timing is repeated after 64 batches, then after twice as many each time the
choice holds, and at once when the steps slow to twice the chosen pace (another job started).
An epoch too short to time in starts from the load average's guess. bench/README.md has numbers.

This module holds the rule and no torch: the loop passes the step times in and the setter of
torch's thread count, so the tests drive it with made-up machines and timings.
"""

from __future__ import annotations

import os
import statistics
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

WARMUP_STEPS = 1  # the first step at a new count wakes its threads and is not timed
TIMED_STEPS = 3  # timed steps per candidate; the median is its pace (one descheduled step is ignored)
MARGIN = 0.9  # more threads must take at most 90% of the time of fewer: fewer are steadier and leave
# cores to the other jobs, and a smaller gain is within the noise of three steps on a shared machine
SLOWDOWN = 2.0  # a candidate one step this many times the best pace is dropped; the chosen count's
# steps slowing this much (another job started) start a new timing
WINDOW = 8  # recent steps whose median is compared with the chosen pace
INTERVAL = 64  # batches until the timing is repeated; doubled each time the choice holds


@dataclass(frozen=True)
class Machine:
    cores: int  # CPUs this process may run on (its affinity mask)
    load: float  # one-minute load average: runnable tasks of every process
    limit: int  # the most threads to use: torch's count when the run started, at most ``cores``


def this_machine(limit: int) -> Machine:
    """This process's cores and the load now; ``limit`` is torch's current thread count."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return Machine(cores, load, max(1, min(limit, cores)))


def free_cores(machine: Machine) -> int:
    """The cores the load average leaves free (at least 1, at most the limit)."""
    return min(machine.limit, max(1, round(machine.cores - machine.load)))


def candidates(machine: Machine) -> tuple[int, ...]:
    """The counts to time: 1, the free cores and the limit (one to three counts)."""
    return tuple(sorted({1, free_cores(machine), machine.limit}))


def fastest(paces: dict[int, float]) -> int:
    """The count of least seconds per step, where more threads win only by ``MARGIN``."""
    best = min(paces)
    for count in sorted(paces):
        if paces[count] <= MARGIN * paces[best]:
            best = count
    return best


def probe_steps(machine: Machine) -> int:
    return len(candidates(machine)) * (WARMUP_STEPS + TIMED_STEPS)


class Chooser:
    """The thread count of every training step of one run. Per epoch: ``start_epoch(batches)``;
    per step: ``before_step()``, the step, ``after_step(seconds)``. Both return a line for the user
    when the count is chosen or changes (else None). ``finish()`` gives torch back its count."""

    def __init__(self, machine: Callable[[], Machine], set_threads: Callable[[int], None]):
        self._machine = machine  # asked again at each timing: the load moves
        self._set = set_threads
        self._probed = machine()  # the machine as the last timing began
        self._initial = self._probed.limit
        self._current = self._initial  # torch's count now
        self._chosen: int | None = None
        self._pace = 0.0  # seconds per step of the chosen count when timed (0: guessed)
        self._plan: list[int] = []  # the counts of the coming timed steps, in order
        self._times: dict[int, list[float]] = {}  # per count, its steps' seconds in this timing
        self._recent: deque[float] = deque(maxlen=WINDOW)
        self._left = 0  # batches left in the epoch
        self._short = False  # an epoch too short to time in (timing would cost over a quarter)
        self._interval = INTERVAL
        self._until = 0  # batches until the next timing
        if self._initial == 1:  # torch allows one thread (OMP_NUM_THREADS=1, a caller's setting)
            self._chosen, self._until = 1, 2**62

    def start_epoch(self, batches: int) -> str | None:
        self._left = batches
        self._short = batches < 4 * probe_steps(self._probed)
        if self._chosen is not None or not self._short:
            return None  # the first step times (or the timing is due later)
        machine = self._machine()
        why = f"too few batches to time; load average {machine.load:.2f} on {machine.cores} cores"
        return self._decide(free_cores(machine), why)

    def before_step(self) -> None:
        if not (self._plan or self._short) and self._until <= 0 and self._left >= probe_steps(self._probed):
            self._begin()
        self._use(self._plan[0] if self._plan else self._chosen or self._initial)

    def _begin(self) -> None:
        self._probed = self._machine()
        self._plan = [c for c in candidates(self._probed) for _ in range(WARMUP_STEPS + TIMED_STEPS)]
        self._times = {}

    def after_step(self, seconds: float) -> str | None:
        self._left -= 1
        self._until -= 1
        if self._plan:
            return self._timed(self._plan.pop(0), seconds)
        self._recent.append(seconds)
        if len(self._recent) == WINDOW and statistics.median(self._recent) > SLOWDOWN * self._pace > 0:
            self._recent.clear()
            self._until, self._interval = 0, INTERVAL  # time again at the next step that can
        return None

    def _timed(self, count: int, seconds: float) -> str | None:
        times = self._times.setdefault(count, [])
        times.append(seconds)
        best = min((self._pace_of(c) for c in self._times if c != count), default=None)
        if best is not None and seconds > SLOWDOWN * best:  # it cannot win: drop its other steps
            self._plan = [c for c in self._plan if c != count]
        return None if self._plan else self._choose()

    def _pace_of(self, count: int) -> float:
        times = self._times[count]
        return statistics.median(times[WARMUP_STEPS:] or times)  # a dropped count: its warm-up step

    def _choose(self) -> str | None:
        paces = {c: self._pace_of(c) for c in self._times}
        count = fastest(paces)
        held = count == self._chosen
        self._pace, self._recent = paces[count], deque(maxlen=WINDOW)
        self._interval = self._interval * 2 if held else INTERVAL
        self._until = self._interval
        timed = ", ".join(f"{c} {paces[c] * 1e3:.1f} ms" for c in sorted(paces))
        machine = self._probed
        return self._decide(
            count, f"a batch took {timed}; load average {machine.load:.2f} on {machine.cores} cores"
        )

    def _decide(self, count: int, why: str) -> str | None:
        changed = count != self._chosen
        self._chosen = count
        self._use(count)
        return f"threads: {count} of {self._initial} ({why})" if changed else None

    def _use(self, count: int) -> None:
        if count != self._current:
            self._set(count)
            self._current = count

    def finish(self) -> None:
        self._use(self._initial)
