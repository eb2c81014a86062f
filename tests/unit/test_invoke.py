"""Child workflows on the fakes: step.invoke in sync and async workflows, its failures and timeout, ids,
and the join under lost, duplicate and reordered reports, paused, terminated and restarted parents."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from framework import ChildWorkflowError, InstanceAlreadyExistsError, WorkflowTimeoutError
from framework.api.registry import Workflow
from framework.backends.store import full_journal
from framework.core.faults import injected
from framework.core.records import EntryKind, EntryStatus, Status
from framework.engine import children
from tests.unit.harness import Harness, fail_once

RUNS: dict[str, int] = {}


def _child() -> Workflow:
    def ship(event: Any, step: Any) -> Any:
        label = step.do("label", lambda: RUNS.__setitem__("ship", RUNS.get("ship", 0) + 1) or "L-1")
        if event.payload.get("wait"):
            step.wait_for_event("go", "go", timeout="30 days")
        if event.payload.get("fail"):
            raise ValueError("no such address")
        return {"label": label, "order": event.payload["order"]}

    return Workflow(name="ship", fn=ship)


def _parent(**invoke: Any) -> Workflow:
    def order(event: Any, step: Any) -> Any:
        step.do("charge", lambda: "ok")
        try:
            shipped = step.invoke("ship", "ship", params=event.payload, **invoke)
        except ChildWorkflowError as e:
            return {"failed": [e.status, e.error_type, e.error_message]}
        except WorkflowTimeoutError:
            return {"timed_out": True}
        except InstanceAlreadyExistsError as e:
            return {"taken": str(e)}
        return {"shipped": shipped}

    return Workflow(name="order", fn=order)


INVOKE_DEFAULTS = {"timeout": "60 days"}
SETTLE = "5 minutes"  # enough for every message and a sweep after its grace; far below any timeout


def _fan(n: int) -> Workflow:
    """An async parent that invokes ``n`` waiting children at once and returns their orders."""

    async def fan(event: Any, step: Any) -> Any:
        shipped = await asyncio.gather(
            *(
                step.invoke(f"ship {i}", "ship", params={"order": i, "wait": True}, timeout="60 days")
                for i in range(n)
            )
        )
        return [s["order"] for s in shipped]

    return Workflow(name="fan", fn=fan)


def _harness(**invoke: Any) -> Harness:
    RUNS.clear()
    return Harness(_parent(**(INVOKE_DEFAULTS | invoke)), _child())


def _child_of(h: Harness, parent_id: str) -> Any:
    entry = next(e for e in full_journal(h.store, parent_id, 1) if e.kind is EntryKind.INVOKE)
    return h.store.get_instance(entry.extra["child_id"])


def test_sync_invoke_returns_the_child_output_and_the_child_is_an_ordinary_instance() -> None:
    h = _harness()
    inst = h.start("order", {"order": 7})
    h.advance(SETTLE)
    assert inst.status().output == {"shipped": {"label": "L-1", "order": 7}}
    child = _child_of(h, inst.id)
    assert child.status is Status.COMPLETE and child.parent.instance_id == inst.id
    assert child.due_at is None  # reported: nothing left for the sweeper
    assert h.client.get(child.id).status().parent_id == inst.id
    assert RUNS["ship"] == 1
    kinds = [e.kind for e in inst.history()]
    assert EntryKind.INVOKE in kinds


def test_async_invokes_run_at_once_and_join_each_once() -> None:
    RUNS.clear()
    h = Harness(_fan(3), _child())
    inst = h.start("fan")
    h.advance(SETTLE)
    kids = [e.extra["child_id"] for e in full_journal(h.store, inst.id, 1) if e.kind is EntryKind.INVOKE]
    assert len(kids) == 3 and inst.status().status is Status.WAITING
    for kid in reversed(kids):  # finished in the reverse order of their start
        h.client.get(kid).send_event("go")
        h.advance(SETTLE)
    assert inst.status().output == [0, 1, 2]


def test_a_failed_child_raises_in_the_parent_the_same_on_replay() -> None:
    h = _harness()
    inst = h.start("order", {"order": 1, "fail": True})
    h.advance(SETTLE)
    assert inst.status().output == {"failed": ["errored", "ValueError", "no such address"]}


def test_a_terminated_child_raises_in_the_parent() -> None:
    h = _harness()
    inst = h.start("order", {"order": 1, "wait": True})
    h.advance(SETTLE)
    h.client.get(_child_of(h, inst.id).id).terminate()
    h.advance(SETTLE)
    assert inst.status().output == {"failed": ["terminated", "", ""]}


def test_a_timeout_raises_in_the_parent_and_terminates_the_child() -> None:
    h = _harness(timeout="1 hour")
    inst = h.start("order", {"order": 1, "wait": True})
    h.run_until_idle()
    assert inst.status().output == {"timed_out": True}
    assert _child_of(h, inst.id).status is Status.TERMINATED


def test_an_explicit_id_is_adopted_after_a_crash_between_create_and_entry() -> None:
    h = _harness(id="ship-7")
    inst = h.start("order", {"order": 7})
    h.run_due()  # the parent charges, then starts the child ... and its entry write fails
    fail_once(h.store.inner, "write_entry", ConnectionError("throttled"))
    h.advance(SETTLE)
    assert inst.status().output == {"shipped": {"label": "L-1", "order": 7}}
    assert h.store.get_instance("ship-7").parent.instance_id == inst.id
    assert RUNS["ship"] == 1


def test_an_id_taken_by_another_instance_fails_the_invoke() -> None:
    h = _harness(id="ship-7")
    h.start("ship", {"order": 0}, id="ship-7")
    inst = h.start("order", {"order": 7})
    h.advance(SETTLE)
    assert "is not this call's child" in inst.status().output["taken"]


class Crash(BaseException):
    """The process dies here."""


def test_a_child_that_dies_before_it_reports_is_reported_by_the_sweeper() -> None:
    h = _harness()
    inst = h.start("order", {"order": 3, "wait": True})
    h.advance(SETTLE)
    child = _child_of(h, inst.id)
    h.client.get(child.id).send_event("go")

    def die(where: str, info: dict[str, Any]) -> None:
        if where == "child.before_report":
            raise Crash

    with injected(die), pytest.raises(Crash):
        h.run_due()
    assert h.store.get_instance(child.id).status is Status.COMPLETE
    assert inst.status().status is Status.WAITING  # not told yet
    h.advance(SETTLE)  # the sweeper finds the child's due_at
    assert inst.status().output == {"shipped": {"label": "L-1", "order": 3}}
    assert h.store.get_instance(child.id).due_at is None


def test_a_report_sent_twice_is_taken_once() -> None:
    h = _harness()
    inst = h.start("order", {"order": 3, "wait": True})
    h.advance(SETTLE)
    child_id = _child_of(h, inst.id).id
    h.client.get(child_id).send_event("go")
    h.advance(SETTLE)
    done = h.store.get_instance(child_id)
    for _ in range(2):  # late duplicates, with a due_at as if the first report had died
        children.report(h.env, done, lambda parent: None)
        h.advance(SETTLE)
    entries = [e for e in full_journal(h.store, inst.id, 1) if e.kind is EntryKind.INVOKE]
    assert [e.status for e in entries] == [EntryStatus.COMPLETE]
    assert inst.status().output == {"shipped": {"label": "L-1", "order": 3}}


def test_a_paused_parent_takes_the_report_when_resumed() -> None:
    h = _harness()
    inst = h.start("order", {"order": 3, "wait": True})
    h.advance(SETTLE)
    inst.pause()
    h.client.get(_child_of(h, inst.id).id).send_event("go")
    h.advance(SETTLE)
    assert inst.status().status is Status.PAUSED
    inst.resume()
    h.advance(SETTLE)
    assert inst.status().output == {"shipped": {"label": "L-1", "order": 3}}


def test_children_of_a_terminated_parent_run_on_and_their_report_is_dropped() -> None:
    h = _harness()
    inst = h.start("order", {"order": 3, "wait": True})
    h.advance(SETTLE)
    child_id = _child_of(h, inst.id).id
    inst.terminate()
    h.client.get(child_id).send_event("go")
    h.advance(SETTLE)
    assert h.store.get_instance(child_id).status is Status.COMPLETE
    assert h.store.get_instance(child_id).due_at is None  # the dropped report is settled too
    assert inst.status().status is Status.TERMINATED


def test_a_restarted_parent_starts_new_children_and_ignores_the_old_ones() -> None:
    h = _harness()
    inst = h.start("order", {"order": 3, "wait": True})
    h.advance(SETTLE)
    old = _child_of(h, inst.id).id
    inst.restart()
    h.advance(SETTLE)
    new = next(e for e in full_journal(h.store, inst.id, 2) if e.kind is EntryKind.INVOKE).extra["child_id"]
    assert new != old
    h.client.get(old).send_event("go")  # the old run's child ends first: the new run must not take it
    h.advance(SETTLE)
    assert inst.status().status is Status.WAITING
    h.client.get(new).send_event("go")
    h.advance(SETTLE)
    assert inst.status().output == {"shipped": {"label": "L-1", "order": 3}}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    order=st.permutations(range(4)),
    duplicates=st.lists(st.integers(0, 3), max_size=6),
    drain=st.lists(st.booleans(), min_size=4, max_size=4),
)
def test_any_order_of_duplicate_and_reordered_reports_joins_each_child_once(
    order: list[int], duplicates: list[int], drain: list[bool]
) -> None:
    RUNS.clear()
    h = Harness(_fan(4), _child())
    inst = h.start("fan")
    h.advance(SETTLE)
    kids = [e.extra["child_id"] for e in full_journal(h.store, inst.id, 1) if e.kind is EntryKind.INVOKE]
    for position, i in enumerate(order):
        h.client.get(kids[i]).send_event("go")
        if drain[position]:
            h.advance(SETTLE)
        for d in duplicates:  # a report delivered again, to any child that finished
            record = h.store.get_instance(kids[d])
            if record.status is Status.COMPLETE:
                children.report(h.env, record, lambda parent: None)
    h.advance(SETTLE)
    assert inst.status().output == [0, 1, 2, 3]
    entries = [e for e in full_journal(h.store, inst.id, 1) if e.kind is EntryKind.INVOKE]
    assert sorted(e.extra["child_id"] for e in entries) == sorted(kids)
    assert all(e.status is EntryStatus.COMPLETE for e in entries)
    assert RUNS["ship"] == 4


def test_history_and_timeline_show_the_invoke_with_its_child() -> None:
    from framework.manage.timeline import format_timeline

    h = _harness()
    inst = h.start("order", {"order": 1, "fail": True})
    h.advance(SETTLE)
    entry = next(e for e in inst.history() if e.kind == "invoke")
    data = entry.as_dict()
    assert data["child_id"] == _child_of(h, inst.id).id and data["status"] == "failed"
    assert data["error"] == {"name": "ValueError", "message": "no such address"}
    text = format_timeline(inst.status(), inst.history())
    assert f"child instance: {data['child_id']}" in text and "child ended: ValueError" in text
    h2 = _harness()
    ok = h2.start("order", {"order": 2})
    h2.advance(SETTLE)
    done = next(e for e in ok.history() if e.kind == "invoke").as_dict()
    assert done["result"] == {"label": "L-1", "order": 2} and done["error"] is None


def _reports(h: Harness, instance_id: str) -> list[str]:
    record = h.store.get_instance(instance_id)
    return [e.key for e in h.store.load_events(instance_id, record.run_key, children.REPORTS)]


def test_a_taken_report_is_deleted_at_the_next_suspend() -> None:
    RUNS.clear()
    h = Harness(_fan(2), _child())
    inst = h.start("fan")
    h.advance(SETTLE)
    kids = [e.extra["child_id"] for e in full_journal(h.store, inst.id, 1) if e.kind is EntryKind.INVOKE]
    h.client.get(kids[0]).send_event("go")
    h.advance(SETTLE)  # the parent takes the first report, and suspends for the second
    assert inst.status().status is Status.WAITING
    taken = [e for e in full_journal(h.store, inst.id, 1) if e.kind is EntryKind.INVOKE]
    assert [e.status for e in taken] == [EntryStatus.COMPLETE, EntryStatus.WAITING]
    assert _reports(h, inst.id) == []  # the first child's report is gone from the store
    h.client.get(kids[1]).send_event("go")
    h.advance(SETTLE)
    assert inst.status().output == [0, 1]


def test_a_child_adopted_while_still_queued_is_woken_without_the_sweeper() -> None:
    h = _harness(id="ship-7")
    inst = h.start("order", {"order": 7})
    (body,) = h.queue.due()

    def die(where: str, info: dict[str, Any]) -> None:
        if where == "queue.before_send" and info.get("instance_id") == "ship-7":
            raise Crash  # the parent dies after it created the child, before the child's wake-up

    with injected(die), pytest.raises(Crash):
        h.deliver(body)
    assert h.store.get_instance("ship-7").status is Status.QUEUED
    assert len(h.queue) == 0  # no wake-up of the child in flight
    h.clock.set(h.clock.now() + 3600)  # the dead invocation's lease has expired
    h.deliver(body)  # SQS delivers the parent's message again; no sweeper runs
    h.run_due()
    assert h.store.get_instance("ship-7").status is Status.COMPLETE
    assert inst.status().output == {"shipped": {"label": "L-1", "order": 7}}
    assert RUNS["ship"] == 1
