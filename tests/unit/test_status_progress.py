"""What an instance's status says it is doing: the step it runs (marked only once an attempt runs
long), what it waits for and until when, and the counts over its steps. On the fakes here; the same
tests run on DynamoDB (moto) in tests/integration/test_status_on_dynamodb.py."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest

from framework import StepFailedError
from framework.api.registry import Workflow
from framework.backends.environment import Settings
from framework.core.durations import from_epoch
from framework.core.records import Status
from framework.manage.client import Instance, InstanceStatus
from tests.unit.harness import Harness

MARK_AT_ONCE = Settings(running_mark_seconds=0)  # every attempt is marked as soon as the watcher can
NEVER_MARK = Settings(running_mark_seconds=3600)


def eventually(read: Callable[[], InstanceStatus], ok: Callable[[InstanceStatus], bool]) -> InstanceStatus:
    """Read the status until ``ok`` holds (the mark is written by another thread). A guard against
    waiting for ever, not a timing assertion: the test fails if it never holds."""
    for _ in range(2000):
        status = read()
        if ok(status):
            return status
        time.sleep(0.005)
    raise AssertionError(f"never reached: {read()}")


class Gate:
    """A step body that signals that it began, then blocks until the test opens the gate."""

    def __init__(self) -> None:
        self.began = threading.Event()
        self.opened = threading.Event()

    def __call__(self, result: Any = None) -> Callable[[], Any]:
        def body() -> Any:
            self.began.set()
            assert self.opened.wait(30), "the test never opened the gate"
            return result

        return body

    def wait_begun(self) -> None:
        assert self.began.wait(30), "the step never began"


@contextmanager
def delivering(h: Harness) -> Iterator[threading.Thread]:
    """Run the due messages on a worker thread, as a Lambda worker would, while the test reads."""
    errors: list[BaseException] = []

    def work() -> None:
        try:
            h.run_due()
        except BaseException as exc:  # pragma: no cover - shown by the assert below
            errors.append(exc)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        thread.join(30)
        assert not thread.is_alive() and not errors, errors


def test_a_blocked_step_shows_as_running_and_stops_showing_once_done() -> None:
    first, second = Gate(), Gate()

    def wf(event: Any, step: Any) -> Any:
        step.do("fetch", first("a"))
        step.do("store", second("b"))
        return "done"

    h = Harness(Workflow(name="blocked", fn=wf), settings=MARK_AT_ONCE)
    inst = h.start("blocked", id="b1")
    started = h.clock.now()
    with delivering(h):
        first.wait_begun()
        status = eventually(inst.status, lambda s: s.running_step is not None)
        assert status.status is Status.RUNNING and status.wait is None
        step = status.running_step
        assert step is not None
        assert (step.name, step.attempt, step.started_at) == ("fetch", 1, from_epoch(started))
        assert status.counts["steps_done"] == 0
        assert status.as_dict()["running_step"] == {
            "name": "fetch",
            "attempt": 1,
            "started_at": from_epoch(started).isoformat(),
        }
        first.opened.set()
        second.wait_begun()
        status = eventually(inst.status, lambda s: [r.name for r in s.running_steps] == ["store"])
        # The first step's mark went when it ended: one step runs, and it is the second.
        assert status.running_step is not None and status.running_step.attempt == 1
        assert status.counts["steps_done"] == 1  # written with the first step's unmarking
        second.opened.set()
    status = inst.status()
    assert status.status is Status.COMPLETE and status.running_step is None and status.running_steps == ()
    assert status.counts == {"steps_done": 2, "steps_failed": 0, "retries": 0, "failures": 0}


def test_a_step_shorter_than_the_threshold_is_never_marked() -> None:
    gate = Gate()
    marks: list[str] = []

    def wf(event: Any, step: Any) -> Any:
        step.do("quick", lambda: 1)
        step.do("held", gate())
        return None

    h = Harness(Workflow(name="unmarked", fn=wf), settings=NEVER_MARK)
    real = h.store.inner.mark_running
    h.store.inner.mark_running = lambda *a, **k: marks.append("mark") or real(*a, **k)
    inst = h.start("unmarked", id="u1")
    with delivering(h):
        gate.wait_begun()
        status = inst.status()
        assert status.status is Status.RUNNING and status.running_step is None
        gate.opened.set()
    assert marks == [] and inst.status().status is Status.COMPLETE


def test_the_running_attempt_is_the_one_after_the_retries() -> None:
    gate = Gate()
    calls = {"n": 0}

    def flaky() -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("down")
        return gate()()

    def wf(event: Any, step: Any) -> Any:
        return step.do("call", flaky, config={"retries": {"limit": 3, "delay": "10 seconds"}})

    h = Harness(Workflow(name="retrying", fn=wf), settings=MARK_AT_ONCE)
    inst = h.start("retrying", id="r1")
    failed_at = h.clock.now()
    h.run_due()  # the first attempt fails: a backoff
    status = inst.status()
    assert status.status is Status.WAITING and status.running_step is None
    wait = status.wait
    assert wait is not None
    assert wait.as_dict() == shown("retry", "call", failed_at + 10, attempt=2)
    assert status.counts == {"steps_done": 0, "steps_failed": 0, "retries": 1, "failures": 1}
    h.clock.set(failed_at + 10)
    with delivering(h):
        gate.wait_begun()
        status = eventually(inst.status, lambda s: s.running_step is not None)
        assert status.running_step is not None and status.running_step.attempt == 2
        assert status.wait is None  # it runs: the backoff is over
        gate.opened.set()
    assert inst.status().counts == {"steps_done": 1, "steps_failed": 0, "retries": 1, "failures": 1}


def _status_of(wf: Callable[..., Any], *others: Workflow) -> tuple[Harness, Instance]:
    h = Harness(Workflow(name="waiter", fn=wf), *others)
    inst = h.start("waiter", id="w1")
    h.run_due()
    return h, inst


def shown(kind: str, name: str, until: float | None, **extra: Any) -> dict[str, Any]:
    """A wait as ``as_dict`` (and the HTTP API) shows it: every key, None where the kind has none."""
    when = None if until is None else from_epoch(until).isoformat()
    fields = {"kind": kind, "name": name, "until": when, "event_type": None, "attempt": None}
    return fields | {"child_id": None} | extra


def _only_wait(inst: Instance) -> dict[str, Any]:
    status = inst.status()
    assert status.status is Status.WAITING, status
    assert len(status.waits) == 1 and status.wait is status.waits[0]
    return status.wait.as_dict()


def test_a_sleep_shows_its_name_and_when_it_ends() -> None:
    h, inst = _status_of(lambda event, step: step.sleep("cool off", "2 hours"))
    assert _only_wait(inst) == shown("sleep", "cool off", h.clock.now() + 7200)


def test_an_event_wait_shows_the_type_and_its_timeout() -> None:
    h, inst = _status_of(lambda event, step: step.wait_for_event("approval", "approved", timeout="3 days"))
    ends = h.clock.now() + 3 * 86400
    assert _only_wait(inst) == shown("event", "approval", ends, event_type="approved")
    inst.send_event("approved", {"ok": True})
    h.run_due()
    status = inst.status()
    assert status.status is Status.COMPLETE and status.wait is None and status.waits == ()


def test_a_callback_shows_its_deadline() -> None:
    def wf(event: Any, step: Any) -> Any:
        return step.create_callback("payment", timeout="1 hour").result()

    h, inst = _status_of(wf)
    assert _only_wait(inst) == shown("callback", "payment", h.clock.now() + 3600)


def test_an_invoke_shows_the_child_and_a_map_over_a_workflow_has_no_deadline() -> None:
    child = Workflow(name="child", fn=lambda event, step: step.wait_for_event("go", "go"))

    def wf(event: Any, step: Any) -> Any:
        return step.invoke("ship", "child", {}, id="kid-1", timeout="2 days")

    h, inst = _status_of(wf, child)
    ends = h.clock.now() + 2 * 86400
    assert _only_wait(inst) == shown("invoke", "ship", ends, child_id="kid-1")

    def mapper(event: Any, step: Any) -> Any:
        return step.map("all", [{}, {}], "child")

    h, inst = _status_of(mapper, child)
    h.run_due()  # the children start and wait
    assert _only_wait(inst) == shown("map", "all", None)


def test_a_condition_shows_its_next_check() -> None:
    def wf(event: Any, step: Any) -> Any:
        return step.wait_for_condition(
            "ready", lambda state: state + 1, initial_state=0, wait_strategy=lambda s, n: timedelta(minutes=5)
        )

    h, inst = _status_of(wf)
    assert _only_wait(inst) == shown("condition", "ready", h.clock.now() + 300)


def test_an_async_run_shows_every_wait_earliest_first() -> None:
    async def wf(event: Any, step: Any) -> Any:
        return await asyncio.gather(
            step.wait_for_event("approval", "approved", timeout="1 day"), step.sleep("tick", "1 minute")
        )

    h, inst = _status_of(wf)
    status = inst.status()
    now = h.clock.now()
    assert [w.as_dict() for w in status.waits] == [
        shown("sleep", "tick", now + 60),
        shown("event", "approval", now + 86400, event_type="approved"),
    ]
    assert status.wait is status.waits[0]


def test_a_paused_instance_keeps_its_wait_and_a_terminated_one_shows_none() -> None:
    _, inst = _status_of(lambda event, step: step.sleep("nap", "1 hour"))
    inst.pause()
    status = inst.status()
    assert status.status is Status.PAUSED and status.wait is not None and status.wait.name == "nap"
    inst.terminate()
    assert inst.status().wait is None


def test_counts_after_retries_and_failures_and_a_restart_starts_them_again() -> None:
    tries = {"flaky": 0}

    def flaky() -> str:
        tries["flaky"] += 1
        if tries["flaky"] <= 2:
            raise ConnectionError("down")
        return "ok"

    def broken() -> None:
        raise ValueError("always")

    def wf(event: Any, step: Any) -> Any:
        step.do("one", lambda: 1)
        step.do("flaky", flaky, config={"retries": {"limit": 3, "delay": "1 second", "backoff": "constant"}})
        try:
            step.do("broken", broken, config={"retries": {"limit": 1, "delay": "1 second"}})
        except StepFailedError:
            pass
        return "survived"

    h = Harness(Workflow(name="counted", fn=wf))
    inst = h.start("counted", id="c1")
    h.run_until_idle()
    status = inst.status()
    assert status.status is Status.COMPLETE
    # flaky: 2 failures, both retried; broken: 2 failures, the first retried; two steps done.
    assert status.counts == {"steps_done": 2, "steps_failed": 1, "retries": 3, "failures": 4}
    assert status.as_dict()["counts"] == status.counts
    inst.restart()
    assert inst.status().counts == {"steps_done": 0, "steps_failed": 0, "retries": 0, "failures": 0}


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_mark_never_outlives_its_lease(kind: str) -> None:
    """A mark of an invocation whose lease ran out (it died, say) is not shown, though it is stored."""
    gate = Gate()

    def wf(event: Any, step: Any) -> Any:
        step.do("held", gate())

    async def awf(event: Any, step: Any) -> Any:
        await step.do("held", gate())

    h = Harness(Workflow(name="leased", fn=wf if kind == "sync" else awf), settings=MARK_AT_ONCE)
    inst = h.start("leased", id="l1")
    with delivering(h):
        gate.wait_begun()
        eventually(inst.status, lambda s: s.running_step is not None)
        record = h.store.inner.get_instance("l1")
        assert record.running and record.lease_until is not None
        lease_until = record.lease_until
        h.clock.set(lease_until + 1)  # the invocation is as good as dead: its lease ran out
        assert inst.status().running_step is None  # the mark is still stored, but not shown
        gate.opened.set()


def test_the_cli_prints_the_wait_the_running_step_and_the_counts(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse
    import json

    from framework import cli
    from framework.manage.client import RunningStatus, WaitStatus

    at = from_epoch(1_800_000_000)
    status = InstanceStatus(
        "i1",
        "wf",
        Status.WAITING,
        None,
        None,
        at,
        at,
        waits=(
            WaitStatus("event", "approval", at, event_type="approved"),
            WaitStatus("retry", "charge", at, attempt=3),
            WaitStatus("invoke", "ship", at, child_id="kid"),
            WaitStatus("map", "all", None),
        ),
        running_steps=(RunningStatus("fetch", 2, at),),
        counts={"steps_done": 4, "steps_failed": 1, "retries": 2, "failures": 3},
    )
    cli._print_status(argparse.Namespace(json=False), status)
    assert capsys.readouterr().out.splitlines() == [
        "i1  wf  waiting",
        "waiting: event 'approval' for event 'approved', until 2027-01-15T08:00:00+00:00",
        "waiting: retry 'charge', attempt 3 next, until 2027-01-15T08:00:00+00:00",
        "waiting: invoke 'ship', child kid, until 2027-01-15T08:00:00+00:00",
        "waiting: map 'all', no deadline",
        "running: step 'fetch', attempt 2, since 2027-01-15T08:00:00+00:00",
        "steps: 4 done, 1 failed; 2 retries, 3 failures",
    ]
    cli._print_status(argparse.Namespace(json=True), status)
    shown = json.loads(capsys.readouterr().out)
    assert shown["wait"]["event_type"] == "approved" and len(shown["waits"]) == 4
    assert shown["running_step"] == {"name": "fetch", "attempt": 2, "started_at": at.isoformat()}
    assert shown["counts"] == status.counts


def test_replay_marks_no_recorded_step() -> None:
    gate = Gate()
    marked: list[str] = []

    def wf(event: Any, step: Any) -> Any:
        step.do("long", gate("x"))
        step.sleep("nap", "1 minute")
        step.sleep("nap again", "1 minute")
        return "done"

    h = Harness(Workflow(name="replayed", fn=wf), settings=MARK_AT_ONCE)
    real = h.store.inner.mark_running
    h.store.inner.mark_running = lambda i, o, s: marked.append(s.name) or real(i, o, s)
    inst = h.start("replayed", id="p1")
    with delivering(h):
        gate.wait_begun()
        eventually(inst.status, lambda s: s.running_step is not None)
        gate.opened.set()
    h.run_until_idle()  # two more invocations, each replaying the recorded step
    assert inst.status().status is Status.COMPLETE
    assert marked == ["long"]
