"""History growth: what a resume costs as a run's journal grows, with a resume forced after every step.

An instance of n steps resumes after every ``every`` steps: the step that ends a stretch moves the
virtual clock past the invocation's time budget, so the worker hands over with no journal entry (a
time-budget hop) and the next invocation replays everything so far. Three ways for containers to meet
the instance:

- ``one warm container``: every resume lands where the last one ran. Its journal cache knows nobody
  wrote since (the instance's ``released_by``), so a resume reads nothing.
- ``two containers taking turns``: each resume finds a copy that misses the other's last stretch and
  reads just that (the entries after its copy's final ones).
- ``no cache``: every resume reads the whole journal, as a container that never saw the instance does.

The runs use the in-memory store, and each journal read is priced as DynamoDB bills the Query: the
entries as ``framework.backends.dynamodb`` stores them, per 1 MB page, in 4 KB read units. One case also runs
on moto with ``bench.units``' meter, and the two must agree. The growth exponent is fitted on log-log
over n = 10, 100, 1,000. Replay CPU is the process time of a whole run, median of ``RUNS``.
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
from bench.units import UnitMeter, item_size, read_units
from framework import Step, WorkflowEvent, workflow
from framework.api.registry import Registry
from framework.backends.dynamodb_items import entry_to
from framework.backends.environment import Environment
from framework.backends.journal_cache import JournalCache
from framework.backends.memory import MemoryStore
from framework.backends.queue import MemoryQueue
from framework.core.clock import VirtualClock
from framework.core.records import JournalEntry
from framework.engine.invocation import process_message
from framework.local import LocalRuntime

HISTORY = "bench-history"
SIZES = (10, 100, 1000)
EVERY = (1, 10)
RUNS = 3
CROSS_CHECK = 100  # n of the one case also run on moto, with the meter
MB = 1024 * 1024  # a Query page stops at 1 MB
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


class SizedReads:
    """Wraps the in-memory store: prices each journal read as DynamoDB would bill its Query: the items
    as ``framework.backends.dynamodb`` stores them, summed per 1 MB page and rounded up to 4 KB per page
    (strongly consistent), at least one unit per page."""

    def __init__(self, inner: MemoryStore) -> None:
        self.inner, self.read_units, self.queries = inner, 0.0, 0
        self._sizes: dict[tuple[int, int], int] = {}  # (seq, rev) -> item size: entries never change

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def load_journal(self, instance_id: str, run: Any, from_seq: int = 0) -> list[JournalEntry]:
        entries: list[JournalEntry] = self.inner.load_journal(instance_id, run, from_seq)
        pages, page = [0], 0
        for entry in entries:
            key = (entry.seq, entry.rev)
            if key not in self._sizes:
                self._sizes[key] = item_size(entry_to(instance_id, run, entry))
            size = self._sizes[key]
            if page + size > MB:
                pages.append(0)
                page = 0
            page += size
            pages[-1] = page
        self.read_units += sum(read_units(p, consistent=True) for p in pages)
        self.queries += len(pages)
        return entries


def run(n: int, every: int, mode: str) -> dict[str, Any]:
    """One instance of ``n`` steps on the in-memory store, each invocation in the container that
    ``mode`` sends it to. Return its journal reads (read units, Query pages), resumes and process time."""
    clock = VirtualClock(start=1_800_000_000.0)
    queue = MemoryQueue(clock)
    store = SizedReads(MemoryStore())
    env = Environment(store=store, queue=queue, clock=clock, registry=Registry([history]))  # type: ignore[arg-type]
    size = 64 * 1024 * 1024
    pool = {MODES[0]: [JournalCache(size)], MODES[1]: [JournalCache(size), JournalCache(size)]}
    caches = pool.get(mode, [JournalCache(0)])
    from framework.manage.client import WorkflowClient

    _clock.append(clock)
    invocations = 0
    try:
        started = time.process_time()
        WorkflowClient(environment=env).create(HISTORY, {"n": n, "every": every}, id="h")
        while (due := queue.next_due()) is not None:
            clock.set(max(due, clock.now()))
            for body in queue.due():
                env.journals = caches[invocations % len(caches)]
                process_message(body, _Context(clock, 300.0), env)
                invocations += 1
        cpu = time.process_time() - started
    finally:
        _clock.pop()
    record = store.get_instance("h")
    if record is None or record.output is None:
        raise RuntimeError(f"history run n={n} every={every} did not complete: {record}")
    return {"read_units": store.read_units, "queries": store.queries, "invocations": invocations, "cpu": cpu}


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
    cases = itertools.product(MODES, EVERY, SIZES)
    reads = {(mode, every, n): run(n, every, mode) for mode, every, n in cases}
    # The in-memory pricing against the meter on moto, for one case: they must agree.
    moto = metered_run(CROSS_CHECK, 1, MODES[1])
    memory = reads[(MODES[1], 1, CROSS_CHECK)]
    checks: list[Check] = [
        Check(
            f"read units on moto (metered) = in memory (sized), n={CROSS_CHECK}, two containers",
            moto["read_units"],
            f"= {memory['read_units']:g}",
            moto["read_units"] == memory["read_units"],
            "the figures below come from the in-memory store, each read priced from the items as they "
            "are stored in DynamoDB: the same units, in seconds instead of minutes",
        )
    ]
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
        cpu[(every, n)] = [run(n, every, MODES[0])["cpu"] for _ in range(RUNS)]
    for every in EVERY:
        medians = {n: statistics.median(cpu[(every, n)]) for n in SIZES}
        checks.append(
            Check(
                f"replay CPU growth exponent, resume every {every}",
                round(exponent(medians), 2),
                note="process seconds of a whole run, one warm container, median of "
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
            {"mode": mode, "every": every, "n": n} | {k: v for k, v in r.items() if k != "cpu"}
            for (mode, every, n), r in reads.items()
        ],
        "moto_cross_check": {"n": CROSS_CHECK, "mode": MODES[1], "moto": moto, "memory": memory},
        "replay_cpu_seconds": [
            {"every": every, "n": n, "runs": values} for (every, n), values in cpu.items()
        ],
    }
    return Section(
        "History: n steps with a resume forced after every step (or every 10), journal reads and replay CPU",
        checks,
        data,
    )
