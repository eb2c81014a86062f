"""Randomized workflows under randomized schedules (hypothesis).

A generated workflow is a sequence of steps (some fail k times before they succeed), sleeps and waits
for events. A generated schedule crashes invocations at random fault points, delivers messages twice,
delivers ready messages in a random order, and sends events early, late or never (a timeout). The real
worker runs on the in-memory store, behind a queue that behaves like SQS (a message that is not
deleted comes back after the visibility timeout), with the sweeper on its one-minute schedule.

Invariant, against the same workflow run with no fault: the same final status and output, every
journal entry recorded exactly once, each step body finished at most once more per crash, nothing
left stuck."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from framework import WorkflowTimeoutError
from framework.api.registry import Registry, Workflow
from framework.backends.environment import Environment, Settings
from framework.backends.memory import MemoryStore
from framework.backends.store import full_journal
from framework.core.clock import VirtualClock
from framework.core.faults import POINTS, injected
from framework.core.records import Status
from framework.engine.invocation import process_message
from framework.engine.sweeper import sweep
from tests.unit.harness import FakeContext

VISIBILITY = 1800.0  # the work queue's, as in template.yaml
SWEEP_EVERY = 60.0
FINAL = {Status.COMPLETE, Status.ERRORED, Status.TERMINATED}

# -- what hypothesis generates ----------------------------------------------------------------------
Op = tuple[str, int]  # ("step", failures) | ("sleep", seconds) | ("wait", 1 if an event comes else 0)

ops = st.lists(
    st.one_of(
        st.tuples(st.just("step"), st.integers(0, 3)),
        st.tuples(st.just("sleep"), st.sampled_from([0, 1, 30, 900, 3600, 86_400])),
        st.tuples(st.just("wait"), st.integers(0, 1)),
    ),
    min_size=1,
    max_size=6,
)


@dataclass(frozen=True)
class Schedule:
    crashes: tuple[tuple[str, int], ...]  # (fault point, at its n-th hit)
    duplicate: frozenset[int]  # the n-th deliveries that SQS delivers once more
    order_seed: int  # how ready messages are shuffled
    event_delay: int  # seconds after the start that the events are sent (0: before the first run)


schedules = st.builds(
    Schedule,
    crashes=st.lists(st.tuples(st.sampled_from(POINTS), st.integers(0, 6)), max_size=3).map(tuple),
    duplicate=st.frozensets(st.integers(0, 30), max_size=8),
    order_seed=st.integers(0, 2**16),
    event_delay=st.sampled_from([0, 5, 3600, 3 * 86_400]),
)


# -- the generated workflow ---------------------------------------------------------------------------
def build(plan: list[Op], finished: Counter[str], runs: Counter[str], branches: int = 1) -> Workflow:
    def flow(event: Any, step: Any) -> list[Any]:
        out: list[Any] = []
        for i, (kind, arg) in enumerate(plan):
            name = f"{kind}{i}"
            if kind == "step":

                def body(i: int = i, name: str = name, failures: int = arg) -> int:
                    runs[name] += 1
                    if runs[name] <= failures:  # the first k runs fail, whatever the attempt numbers
                        raise ConnectionError(f"{name} failed (run {runs[name]})")
                    finished[name] += 1
                    return i

                # Slack in the limit: crashes may be charged as attempts (docs/execution-model.md).
                retries = {"limit": arg + 3, "delay": "1 second", "backoff": "constant"}
                out.append(step.do(name, body, config={"retries": retries}))
            elif kind == "sleep":
                step.sleep(name, arg)
                out.append("slept")
            else:
                try:
                    # 36 hours: no event delay of the schedule lands within a crash's delay of it.
                    out.append(step.wait_for_event(name, "go", timeout="36 hours").payload)
                except WorkflowTimeoutError:
                    out.append("timed out")
        return out

    if branches == 1:
        return Workflow("generated", flow)

    async def parallel(event: Any, step: Any) -> list[Any]:
        """The plan's ops dealt out to ``branches`` branches that run at once (asyncio.gather)."""

        async def branch(k: int) -> list[Any]:
            out: list[Any] = []
            for i, (kind, arg) in enumerate(plan):
                if i % branches != k:
                    continue
                name = f"{kind}{i}"
                if kind == "step":

                    def body(i: int = i, name: str = name, failures: int = arg) -> int:
                        runs[name] += 1
                        if runs[name] <= failures:
                            raise ConnectionError(f"{name} failed (run {runs[name]})")
                        finished[name] += 1
                        return i

                    retries = {"limit": arg + 3, "delay": "1 second", "backoff": "constant"}
                    out.append(await step.do(name, body, config={"retries": retries}))
                elif kind == "sleep":
                    await step.sleep(name, arg)
                    out.append("slept")
                else:
                    try:  # a type of its own: branches racing for one event take it in either order
                        out.append((await step.wait_for_event(name, f"go{i}", timeout="36 hours")).payload)
                    except WorkflowTimeoutError:
                        out.append("timed out")
            return out

        return list(await asyncio.gather(*(branch(k) for k in range(branches))))

    return Workflow("generated", parallel)


class Crash(BaseException):
    """The invocation's process dies here."""


@dataclass
class Driver:
    """The worker, an SQS-like queue, the sweeper and the schedule, on a virtual clock."""

    plan: list[Op]
    schedule: Schedule | None = None
    clock: VirtualClock = field(default_factory=lambda: VirtualClock(start=1_700_000_000.0))
    finished: Counter[str] = field(default_factory=Counter)
    runs: Counter[str] = field(default_factory=Counter)
    crashes: int = 0
    branches: int = 1  # more than one: an async workflow whose branches run at once

    def __post_init__(self) -> None:
        self.env = Environment(
            store=MemoryStore(),
            queue=self,  # type: ignore[arg-type]
            clock=self.clock,
            registry=Registry([build(self.plan, self.finished, self.runs, self.branches)]),
            settings=Settings(),
        )
        self._heap: list[tuple[float, int, str]] = []
        self._order = itertools.count()
        self._hits: Counter[str] = Counter()
        self._armed = list(self.schedule.crashes) if self.schedule else []
        self._deliveries = 0

    # The Queue protocol: what the worker sends lands here.
    def send(self, body: str, delay_seconds: int) -> None:
        assert 0 <= delay_seconds <= 900, delay_seconds
        heapq.heappush(self._heap, (self.clock.now() + delay_seconds, next(self._order), body))

    def send_batch(self, messages: list[tuple[str, int]]) -> list[int]:
        for body, delay in messages:
            self.send(body, delay)
        return []

    def _fault(self, where: str, info: dict[str, Any]) -> None:
        if not self._delivering:
            return
        self._hits[where] += 1
        for armed in self._armed:
            if armed == (where, self._hits[where] - 1):
                self._armed.remove(armed)
                self.crashes += 1
                raise Crash(where)

    def run(self) -> Any:
        from framework.manage.client import WorkflowClient

        client = WorkflowClient(environment=self.env)
        self._delivering = False
        with injected(self._fault):
            inst = client.create("generated", id="g")
            # One event per wait that gets one: all of type "go" for a sequential run (first in, first
            # out), a type per wait when branches run at once.
            events = [
                "go" if self.branches == 1 else f"go{i}"
                for i, (kind, arg) in enumerate(self.plan)
                if kind == "wait" and arg
            ]
            send_at = self.clock.now() + (self.schedule.event_delay if self.schedule else 0)
            last_sweep = self.clock.now()
            for _ in range(20_000):
                if events and self.clock.now() >= send_at:
                    for n, event_type in enumerate(events):
                        inst.send_event(event_type, {"n": n})
                    events = []
                if self._deliver_ready():
                    continue
                record = self.env.store.get_instance("g")
                assert record is not None
                if record.status in FINAL:
                    return inst
                candidates = [self._heap[0][0]] if self._heap else []
                if events:
                    candidates.append(send_at)
                due = self.env.store.due_instances(self.clock.now() + 10**10, 1)
                if due:  # the scheduled sweeper's next run that finds it due past the grace
                    grace = self.env.settings.sweep_grace
                    candidates.append(max(due[0].due_at + grace, last_sweep + SWEEP_EVERY))
                assert candidates, f"stuck: {record}"
                self.clock.set(max(self.clock.now(), min(candidates)))
                if self.clock.now() >= last_sweep + SWEEP_EVERY:
                    last_sweep = self.clock.now()
                    sweep(self.env)
            raise AssertionError("still busy after 20,000 rounds")

    def _deliver_ready(self) -> bool:
        ready = []
        while self._heap and self._heap[0][0] <= self.clock.now():
            ready.append(heapq.heappop(self._heap)[2])
        if not ready:
            return False
        if self.schedule is not None:  # SQS's order is not send order
            seed = self.schedule.order_seed
            ready.sort(key=lambda body: hash((seed, body)))
        for body in ready:
            self._deliver(body)
        return True

    def _deliver(self, body: str) -> None:
        n = self._deliveries
        self._deliveries += 1
        if self.schedule is not None and n in self.schedule.duplicate:
            self.send(body, 0)  # SQS delivers this message once more
        self._delivering = True
        try:
            process_message(body, FakeContext(self.clock, 300), self.env)
        except (Crash, Exception):
            # Not deleted: it comes back when the visibility timeout ends.
            heapq.heappush(self._heap, (self.clock.now() + VISIBILITY, next(self._order), body))
        finally:
            self._delivering = False


def outcome(driver: Driver) -> tuple[str, Any, list[tuple[Any, str]]]:
    inst = driver.run()
    status = inst.status()
    journal = full_journal(driver.env.store, "g", 1)
    if driver.branches > 1:  # concurrent steps are stored in the order they finished: compare identities
        return str(status.status), status.output, sorted((e.op_id, e.name) for e in journal)
    return str(status.status), status.output, [(e.seq, e.name) for e in journal]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=ops, schedule=schedules)
@example(  # found by hypothesis: two events sent at one clock reading were taken out of order
    plan=[("wait", 1), ("wait", 1)],
    schedule=Schedule((), frozenset(), 0, 0),
)
@example(  # a crash after the completion's status write, with the event sent before the first run
    plan=[("step", 1), ("wait", 1), ("sleep", 3600)],
    schedule=Schedule((("instance.after_release", 0),), frozenset({0, 1}), 7, 0),
)
@example(  # a crash before each kind of write, with every early delivery duplicated
    plan=[("step", 2), ("sleep", 900), ("wait", 0), ("step", 0)],
    schedule=Schedule(
        (("journal.before_write", 1), ("queue.before_send", 0), ("step.after_body", 2)),
        frozenset(range(8)),
        3,
        5,
    ),
)
def test_any_schedule_ends_like_the_run_with_no_fault(plan: list[Op], schedule: Schedule) -> None:
    clean = Driver(plan, Schedule((), frozenset(), 0, schedule.event_delay))  # the same events, no fault
    expected = outcome(clean)
    faulty = Driver(plan, schedule)
    got = outcome(faulty)
    assert (got[0], got[1]) == (expected[0], expected[1]), f"{plan} under {schedule}"
    assert got[2] == expected[2], "each journal entry recorded exactly once, in the same order"
    event(f"crashes: {faulty.crashes}")  # `pytest --hypothesis-show-statistics` shows the spread
    for name, n in faulty.finished.items():
        assert n <= clean.finished[name] + faulty.crashes, f"body {name} finished {n} times"


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=ops, schedule=schedules)
@example(  # two branches wait for the same event type while a third op sleeps
    plan=[("wait", 1), ("wait", 1), ("sleep", 900), ("step", 2)],
    schedule=Schedule((("journal.after_write", 1),), frozenset({0, 2}), 5, 5),
)
@example(  # one event for two branches' waits: each wait waits for a type of its own
    plan=[("wait", 1), ("wait", 0), ("wait", 1)],
    schedule=Schedule((("journal.before_write", 0),), frozenset({1}), 3, 0),
)
def test_any_schedule_ends_like_the_run_with_no_fault_with_branches_in_parallel(
    plan: list[Op], schedule: Schedule
) -> None:
    clean = Driver(plan, Schedule((), frozenset(), 0, schedule.event_delay), branches=2)
    expected = outcome(clean)
    faulty = Driver(plan, schedule, branches=2)
    got = outcome(faulty)
    assert (got[0], got[1]) == (expected[0], expected[1]), f"{plan} under {schedule}"
    assert got[2] == expected[2], "each journal entry recorded exactly once"
    for name, n in faulty.finished.items():
        assert n <= clean.finished[name] + faulty.crashes, f"body {name} finished {n} times"
