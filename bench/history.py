"""History growth: what a resume costs as a run's journal grows, with a resume forced after every step.

An instance of n steps resumes after every ``every`` steps: the step that ends a stretch moves the
virtual clock past the invocation's time budget, so the worker hands over with no journal entry (a
time-budget hop) and the next invocation replays everything so far. Three ways for containers to meet
the instance, each on a fresh local stack with its calls metered (``bench.units``):

- ``one warm container``: every resume lands where the last one ran. Its journal cache knows nobody
  wrote since (the instance's ``released_by``), so a resume reads nothing.
- ``two containers taking turns``: each resume finds a copy that misses the other's last stretch and
  reads just that (the entries after its copy's final ones).
- ``no cache``: every resume reads the whole journal, as a container that never saw the instance does.

Read units are exact (counted); the growth exponent is fitted on log-log over n = 10, 100, 1,000.
Replay CPU is measured apart, on the in-memory store (no moto in the timing): process time of a whole
run, median of ``RUNS``.
"""

from __future__ import annotations

import functools
import itertools
import math
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

from bench.report import Check, Section
from bench.units import UnitMeter
from framework import Step, WorkflowEvent, workflow
from framework.clock import VirtualClock
from framework.environment import Environment, Settings
from framework.journal_cache import JournalCache
from framework.local import LocalRuntime
from framework.queue import MemoryQueue
from framework.registry import Registry
from framework.store import MemoryStore
from framework.worker import process_message

HISTORY = "bench-history"
SIZES = (10, 100, 1000)
EVERY = (1, 10)
RUNS = 3
MODES = ("one warm container", "two containers taking turns", "no cache")
TARGET_MODE = MODES[1]  # the realistic case under load; one warm container reads nothing at all
BUDGET_SPENT = 295.0  # virtual seconds a stretch's last step takes: past WorkerTimeout 300 - margin 10
_clock: list[VirtualClock] = []  # the clock of the run in progress, for step bodies to move


def _body(i: int, last_of_stretch: bool) -> dict[str, int]:
    if last_of_stretch and _clock:
        _clock[-1].advance(BUDGET_SPENT)
    return {"i": i}


@workflow(HISTORY)
def history(event: WorkflowEvent, step: Step) -> int:
    """``n`` steps; after every ``every`` of them the invocation's time is spent, forcing a resume."""
    n, every = event.payload["n"], event.payload["every"]
    for i in range(n):
        step.do(f"s{i}", functools.partial(_body, i, (i + 1) % every == 0))
    return int(n)


@contextmanager
def containers(rt: LocalRuntime, mode: str) -> Iterator[None]:
    """Give each worker invocation the journal cache of the container that ``mode`` sends it to."""
    import handlers.worker as worker_handler

    real = worker_handler.process_message
    size = 64 * 1024 * 1024
    caches = {MODES[0]: [JournalCache(size)], MODES[1]: [JournalCache(size), JournalCache(size)]}
    caches[MODES[2]] = [JournalCache(0)]
    turn = itertools.count()

    def routed(body: str, context: Any = None, env: Any = None) -> Any:
        pool = caches[mode]
        rt.env.journals = pool[next(turn) % len(pool)]
        return real(body, context, env)

    with mock.patch.object(worker_handler, "process_message", routed):
        yield


def metered_run(n: int, every: int, mode: str) -> dict[str, Any]:
    """One instance on a fresh local stack; its journal reads in read units, and its resumes."""
    with LocalRuntime(workflows=[history]) as rt, containers(rt, mode):
        assert isinstance(rt.clock, VirtualClock)
        _clock.append(rt.clock)
        try:
            with UnitMeter(rt) as meter:
                inst = rt.client.create(HISTORY, {"n": n, "every": every}, id="h")
                rt.run_until_idle()
        finally:
            _clock.pop()
        if inst.status().output != n:
            raise RuntimeError(f"history run n={n} every={every} ended {inst.status()}")
        queries = meter.by_operation().get("Query")
        return {
            "read_units": queries.read_units if queries else 0.0,
            "queries": queries.calls if queries else 0,
            "write_units": meter.write_units,
            "invocations": rt.invocations.get("WorkerFunction", 0),
        }


def replay_cpu(n: int, every: int, cache_mb: int) -> float:
    """Process seconds of one run of ``n`` steps on the in-memory store, one container."""
    clock = VirtualClock(start=1_800_000_000.0)
    queue = MemoryQueue(clock)
    env = Environment(
        store=MemoryStore(),
        queue=queue,
        clock=clock,
        registry=Registry([history]),
        settings=Settings(journal_cache_mb=cache_mb),
    )
    from framework.client import WorkflowClient

    client = WorkflowClient(environment=env)
    _clock.append(clock)
    try:
        started = time.process_time()
        client.create(HISTORY, {"n": n, "every": every}, id="h")
        while (due := queue.next_due()) is not None:
            clock.set(max(due, clock.now()))
            for body in queue.due():
                process_message(body, _Context(clock, 300.0), env)
        return time.process_time() - started
    finally:
        _clock.pop()


class _Context:
    def __init__(self, clock: VirtualClock, seconds: float) -> None:
        self.clock, self.deadline = clock, clock.now() + seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - self.clock.now()) * 1000))


def exponent(points: dict[int, float]) -> float:
    """The slope of log(value) against log(n), least squares; 0 when every value is 0 (flat)."""
    pairs = [(math.log(n), math.log(v)) for n, v in points.items() if v > 0]
    if len(pairs) < 2:
        return 0.0
    mx = statistics.fmean(x for x, _ in pairs)
    my = statistics.fmean(y for _, y in pairs)
    return sum((x - mx) * (y - my) for x, y in pairs) / sum((x - mx) ** 2 for x, _ in pairs)


def history_section() -> Section:
    reads = {
        (mode, every, n): metered_run(n, every, mode) for mode in MODES for every in EVERY for n in SIZES
    }
    checks: list[Check] = []
    for every in EVERY:
        for mode in MODES:
            units = {n: reads[(mode, every, n)]["read_units"] for n in SIZES}
            fit = exponent(units)
            target = mode == TARGET_MODE
            checks.append(
                Check(
                    f"read units growth exponent, resume every {every}, {mode}",
                    round(fit, 2),
                    "<= 1.2" if target else "",
                    fit <= 1.2 if target else None,
                    "total read units at n = " + ", ".join(f"{n}: {units[n]:g}" for n in SIZES),
                )
            )
    cpu: dict[tuple[int, int], list[float]] = {}
    for every, n in itertools.product(EVERY, SIZES):
        cpu[(every, n)] = [replay_cpu(n, every, 64) for _ in range(RUNS)]
    for every in EVERY:
        medians = {n: statistics.median(cpu[(every, n)]) for n in SIZES}
        checks.append(
            Check(
                f"replay CPU growth exponent, resume every {every}",
                round(exponent(medians), 2),
                note="process seconds of a whole run, median of "
                + f"{RUNS} (min-max): "
                + ", ".join(
                    f"n={n}: {medians[n]:.3f} ({min(cpu[(every, n)]):.3f}-{max(cpu[(every, n)]):.3f})"
                    for n in SIZES
                )
                + ". Each resume runs the workflow function from the top: the recorded steps return "
                "stored results, so the work grows with n per resume",
            )
        )
    data = {
        "reads": [
            {"mode": mode, "every": every, "n": n} | reads[(mode, every, n)] for mode, every, n in reads
        ],
        "replay_cpu_seconds": [
            {"every": every, "n": n, "runs": values} for (every, n), values in cpu.items()
        ],
    }
    return Section(
        "History: n steps with a resume forced after every step (or every 10), journal reads and replay CPU",
        checks,
        data,
    )
