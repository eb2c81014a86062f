"""``step.map`` over a workflow on the fakes: each item a child instance, at most max_concurrency at
once, the join in one entry, completion policies, and the join under duplicate and reordered reports,
crashes, and paused, terminated and restarted parents."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from framework import BatchFailedError, InvalidConfigError, InvalidParamsError, NonDeterminismError
from framework.api.registry import Workflow
from framework.backends.store import full_journal
from framework.core.faults import CHILD_POINTS, POINTS, injected
from framework.core.records import FINISHED, EntryKind, EntryStatus, Status
from framework.engine import children
from framework.engine.ops import fanout
from tests.unit.harness import BACKEND, Harness

SETTLE = "10 minutes"
RUNS: dict[int, int] = {}


def _item(event: Any, step: Any) -> Any:
    """Doubles ``i``; fails for the indices in ``fail``; waits for an event ``go`` with ``wait``."""
    i = event.payload["i"]
    value = step.do("double", lambda: RUNS.__setitem__(i, RUNS.get(i, 0) + 1) or i * 2)
    if event.payload.get("wait"):
        step.wait_for_event("go", "go", timeout="30 days")
    if event.payload.get("fail"):
        raise ValueError(f"item {i} failed")
    return value


def _parent(**options: Any) -> Workflow:
    def parent(event: Any, step: Any) -> Any:
        items = [{"i": i} | event.payload.get("extra", {}).get(str(i), {}) for i in range(event.payload["n"])]
        try:
            batch = step.map("items", items, "item", **options)
        except BatchFailedError as e:
            return {"failed": e.batch.failure_count, "reason": e.batch.completion_reason.value}
        after = step.do("after", lambda: "done")
        return {
            "results": batch.get_results(),
            "reason": batch.completion_reason.value,
            "statuses": [i.status.value for i in batch.all],
            "after": after,
        }

    return Workflow(name="parent", fn=parent)


def _async_parent() -> Workflow:
    async def parent(event: Any, step: Any) -> Any:
        items = [{"i": i} for i in range(event.payload["n"])]
        batch = await step.map("items", items, "item", max_concurrency=3)
        return batch.get_results()

    return Workflow(name="parent", fn=parent)


def _harness(parent: Workflow | None = None, **options: Any) -> Harness:
    RUNS.clear()
    return Harness(parent or _parent(**options), Workflow(name="item", fn=_item))


def _map_entry(h: Harness, instance_id: str, run: int = 1) -> Any:
    return next(e for e in full_journal(h.store, instance_id, run) if e.kind is EntryKind.MAP)


def _children(h: Harness, parent_id: str) -> list[Any]:
    found, _ = h.store.inner.list_instances("item", None, 100_000, None)
    return sorted((c for c in found if c.parent and c.parent.instance_id == parent_id), key=lambda c: c.id)


def test_each_item_runs_as_a_child_instance_and_the_results_are_their_outputs_in_order() -> None:
    h = _harness(max_concurrency=4)
    inst = h.start("parent", {"n": 10})
    h.advance(SETTLE)
    out = inst.status().output
    assert out["results"] == [i * 2 for i in range(10)] and out["reason"] == "ALL_COMPLETED"
    assert out["after"] == "done" and dict.fromkeys(range(10), 1) == RUNS
    kids = _children(h, inst.id)
    assert len(kids) == 10 and all(k.status is Status.COMPLETE for k in kids)
    assert {h.client.get(k.id).status().parent_id for k in kids} == {inst.id}
    entry = _map_entry(h, inst.id)
    assert entry.status is EntryStatus.COMPLETE and entry.extra["state"] == "s" * 10


def _run(h: Harness, instance_id: str) -> Any:
    return h.store.inner.get_instance(instance_id).run_key


def test_at_most_max_concurrency_children_run_at_once() -> None:
    h = _harness(max_concurrency=3)
    most = 0
    real = h.deliver

    def deliver(body: str) -> Any:
        nonlocal most
        outcome = real(body)
        found, _ = h.store.inner.list_instances("item", None, 1000, None)
        most = max(most, sum(1 for c in found if c.status not in FINISHED))
        return outcome

    h.deliver = deliver  # type: ignore[method-assign]
    inst = h.start("parent", {"n": 12})
    h.advance(SETTLE)
    assert inst.status().output["results"] == [i * 2 for i in range(12)]
    assert most == 3


def test_an_async_workflow_awaits_the_map() -> None:
    h = _harness(_async_parent())
    inst = h.start("parent", {"n": 7})
    h.advance(SETTLE)
    assert inst.status().output == [i * 2 for i in range(7)]


def test_the_replay_after_the_join_does_not_grow_with_the_items() -> None:
    """After the join, a replay reads the map's one entry: its AWS calls are the same for 5 items or 60."""

    def calls_after_join(n: int) -> int:
        def parent(event: Any, step: Any) -> Any:
            batch = step.map("items", [{"i": i} for i in range(n)], "item", max_concurrency=10)
            step.sleep("rest", "1 hour")
            return len(batch.get_results())

        h = _harness(Workflow(name="parent", fn=parent))
        inst = h.start("parent")
        h.advance("30 minutes")
        assert inst.status().status is Status.WAITING
        # Every report and part was taken, and deleted at the suspend: later replays read none.
        assert h.store.inner.load_events(inst.id, _run(h, inst.id)) == []
        before = h.store.calls
        h.advance("2 hours")
        assert inst.status().output == n
        return h.store.calls - before

    assert calls_after_join(5) == calls_after_join(60)


def test_fail_fast_by_default_terminates_the_running_children_and_raises() -> None:
    h = _harness(max_concurrency=3)
    inst = h.start("parent", {"n": 10, "extra": {"1": {"fail": True}, "0": {"wait": True}}})
    h.advance(SETTLE)
    assert inst.status().output == {"failed": 1, "reason": "FAILURE_TOLERANCE_EXCEEDED"}
    kids = {k.id[-1]: k for k in _children(h, inst.id)}
    assert kids["0"].status is Status.TERMINATED  # it waited: stopped when the batch failed
    assert len(kids) < 10  # items after the failure never started
    entry = _map_entry(h, inst.id)
    assert entry.status is EntryStatus.FAILED


def test_tolerated_failures_as_a_count_and_a_percentage() -> None:
    for tolerated in (2, "20%"):
        h = _harness(max_concurrency=2, tolerated_failures=tolerated)
        inst = h.start("parent", {"n": 10, "extra": {"3": {"fail": True}, "7": {"fail": True}}})
        h.advance(SETTLE)
        out = inst.status().output
        assert out["results"] == [i * 2 for i in range(10) if i not in (3, 7)], tolerated
        assert out["statuses"][3] == out["statuses"][7] == "FAILED"
        h2 = _harness(max_concurrency=2, tolerated_failures=tolerated)
        three = {str(i): {"fail": True} for i in (1, 3, 7)}
        inst2 = h2.start("parent", {"n": 10, "extra": three})
        h2.advance(SETTLE)
        assert inst2.status().output["reason"] == "FAILURE_TOLERANCE_EXCEEDED"


def test_min_successful_ends_the_batch_and_stops_the_rest() -> None:
    h = _harness(max_concurrency=4, min_successful=2)
    waits = {str(i): {"wait": True} for i in (0, 2)}
    inst = h.start("parent", {"n": 8, "extra": waits})
    h.advance(SETTLE)
    out = inst.status().output
    assert out["reason"] == "MIN_SUCCESSFUL_REACHED" and out["results"] == [2, 6]
    assert out["statuses"] == ["STARTED", "SUCCEEDED", "STARTED", "SUCCEEDED"]
    stopped = [k for k in _children(h, inst.id) if k.status is Status.TERMINATED]
    assert len(stopped) == 2


def test_a_failed_item_is_not_retried_beyond_its_own_policy() -> None:
    h = _harness(max_concurrency=2, tolerated_failures=1)
    inst = h.start("parent", {"n": 3, "extra": {"1": {"fail": True}}})
    h.advance(SETTLE)
    assert inst.status().output["statuses"] == ["SUCCEEDED", "FAILED", "SUCCEEDED"]
    assert RUNS[1] == 1


def test_a_bad_item_fails_the_map_before_any_child_starts() -> None:
    h = _harness()

    def parent(event: Any, step: Any) -> Any:
        return step.map("items", [{"i": 1}, 5], "item").success_count

    h = _harness(Workflow(name="parent", fn=parent))
    inst = h.start("parent")
    h.advance(SETTLE)
    status = inst.status()
    assert status.status is Status.ERRORED and status.error["name"] == InvalidParamsError.__name__
    assert _children(h, inst.id) == []


def test_too_many_items_and_an_unknown_workflow_are_refused() -> None:
    def parent(event: Any, step: Any) -> Any:
        step.map("items", [{"i": i} for i in range(event.payload["n"])], event.payload["wf"])

    h = _harness(Workflow(name="parent", fn=parent))
    big = h.start("parent", {"n": fanout.MAX_ITEMS + 1, "wf": "item"})
    unknown = h.start("parent", {"n": 1, "wf": "nope"})
    h.advance(SETTLE)
    assert big.status().error["name"] == InvalidConfigError.__name__
    assert unknown.status().status is Status.ERRORED
    assert _children(h, big.id) == _children(h, unknown.id) == []


VERSION = {"v2": False}


@pytest.mark.parametrize("changed", ["items", "function"])
def test_changed_items_or_a_function_instead_of_the_workflow_is_a_non_determinism_error(changed: str) -> None:
    def parent(event: Any, step: Any) -> Any:
        items = [{"i": i, "wait": True} for i in range(3)]
        if VERSION["v2"] and changed == "items":
            items[1] = {"i": 9}
        if VERSION["v2"] and changed == "function":
            return step.map("items", items, lambda step, item: item).success_count
        return step.map("items", items, "item").success_count

    h = _harness(Workflow(name="parent", fn=parent))
    VERSION["v2"] = False
    inst = h.start("parent", {"extra": {"0": {"wait": True}}})
    h.run_due()  # the first fold: children started, the parent waits
    VERSION["v2"] = True
    try:
        h.client.get(_children(h, inst.id)[0].id).send_event("go")  # its report replays the parent
        h.advance(SETTLE)
    finally:
        VERSION["v2"] = False
    assert inst.status().error["name"] == NonDeterminismError.__name__, changed


def test_large_item_results_go_to_the_blob_store_and_come_back() -> None:
    def big(event: Any, step: Any) -> Any:
        return step.do("big", lambda: "x" * 100_000 + str(event.payload["i"]))

    def parent(event: Any, step: Any) -> Any:
        return [len(r) for r in step.map("items", [{"i": i} for i in range(3)], "big").get_results()]

    h = Harness(Workflow(name="parent", fn=parent), Workflow(name="big", fn=big))
    inst = h.start("parent")
    h.advance(SETTLE)
    assert inst.status().output == [100_001] * 3


class Crash(BaseException):
    """The invocation dies here (as a Lambda timeout or out-of-memory would)."""


@pytest.mark.parametrize("where", [*POINTS, *CHILD_POINTS])
def test_a_crash_at_any_point_joins_each_child_once(where: str) -> None:
    """A crash at the n-th time any invocation (parent or child) reaches ``where``."""
    for nth in (1, 2, 4, 7, 12) if BACKEND["store"] == "memory" else (2, 7):  # moto: slower
        h = _harness(max_concurrency=2)
        inst = h.start("parent", {"n": 6})
        hits = 0

        def crash(point: str, info: dict[str, Any], nth: int = nth) -> None:
            nonlocal hits
            if point == where:
                hits += 1
                if hits == nth:
                    raise Crash

        with injected(crash), contextlib.suppress(Crash):
            h.advance(SETTLE)
        h.advance("30 minutes")
        out = inst.status().output
        assert out is not None and out["results"] == [i * 2 for i in range(6)], (where, nth)
        assert max(RUNS.values()) == 1 or where in ("journal.before_write", "step.after_body"), (where, nth)
        assert sorted(RUNS) == list(range(6))


def test_a_paused_parent_takes_the_reports_when_resumed() -> None:
    h = _harness(max_concurrency=5)
    inst = h.start("parent", {"n": 5, "extra": {str(i): {"wait": True} for i in range(5)}})
    h.advance(SETTLE)
    inst.pause()
    h.advance(SETTLE)
    for kid in _children(h, inst.id):
        h.client.get(kid.id).send_event("go")
    h.advance(SETTLE)
    assert inst.status().status is Status.PAUSED
    assert all(k.status is Status.COMPLETE for k in _children(h, inst.id))
    inst.resume()
    h.advance(SETTLE)
    assert inst.status().output["results"] == [0, 2, 4, 6, 8]


def test_a_terminated_parent_starts_no_more_children_and_the_running_ones_run_on() -> None:
    h = _harness(max_concurrency=2)
    inst = h.start("parent", {"n": 6, "extra": {"0": {"wait": True}, "1": {"wait": True}}})
    h.advance(SETTLE)
    inst.terminate()
    h.advance(SETTLE)
    kids = _children(h, inst.id)
    assert len(kids) == 2
    for kid in kids:
        h.client.get(kid.id).send_event("go")
    h.advance(SETTLE)
    assert all(k.status is Status.COMPLETE for k in _children(h, inst.id))
    assert inst.status().status is Status.TERMINATED


def test_a_restarted_parent_starts_new_children_and_ignores_the_old_ones() -> None:
    h = _harness(max_concurrency=2)
    inst = h.start("parent", {"n": 3, "extra": {"0": {"wait": True}}})
    h.advance(SETTLE)
    old = _children(h, inst.id)
    inst.restart()
    h.advance(SETTLE)
    h.client.get(old[0].id).send_event("go")  # the old run's child ends: its report is dropped
    for kid in _children(h, inst.id):
        if kid.status is Status.WAITING:
            h.client.get(kid.id).send_event("go")
    h.advance(SETTLE)
    assert inst.status().output["results"] == [0, 2, 4]
    new = [k for k in _children(h, inst.id) if k.parent.run.number == 2]
    assert len(new) == 3 and not {k.id for k in new} & {k.id for k in old}


REPORT_SCHEDULES = {
    "order": st.permutations(range(5)),
    "duplicates": st.lists(st.integers(0, 4), max_size=8),
    "drain": st.lists(st.booleans(), min_size=5, max_size=5),
}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**REPORT_SCHEDULES)
def test_any_order_of_duplicate_and_reordered_reports_joins_each_item_once(
    order: list[int], duplicates: list[int], drain: list[bool]
) -> None:
    check_reports_in_any_order(order, duplicates, drain)


def check_reports_in_any_order(order: list[int], duplicates: list[int], drain: list[bool]) -> None:
    """Children end in ``order``, the parent folding after those ``drain`` marks; after each, the
    reports of the ``duplicates`` that ended are sent again."""
    h = _harness(max_concurrency=5)
    inst = h.start("parent", {"n": 5, "extra": {str(i): {"wait": True} for i in range(5)}})
    h.advance(SETTLE)
    kids = {int(k.id.rsplit("_", 1)[1]): k.id for k in _children(h, inst.id)}
    for position, i in enumerate(order):
        h.client.get(kids[i]).send_event("go")
        if drain[position]:
            h.advance(SETTLE)
        for d in duplicates:  # a report delivered again, by any child that finished
            record = h.store.get_instance(kids[d])
            if record.status is Status.COMPLETE:
                try:
                    children.report(h.env, record, lambda parent: None)
                except Exception:
                    pass
    h.advance(SETTLE)
    assert inst.status().output["results"] == [0, 2, 4, 6, 8]
    assert dict.fromkeys(range(5), 1) == RUNS


def test_history_shows_the_map_with_its_progress() -> None:
    h = _harness(max_concurrency=2)
    inst = h.start("parent", {"n": 4, "extra": {"0": {"wait": True}}})
    h.advance(SETTLE)
    entry = next(e for e in inst.history() if e.kind == "map").as_dict()
    assert entry["status"] == "waiting"
    progress = {"workflow": "item", "items": 4, "waiting": 0, "running": 1, "succeeded": 3}
    assert entry["progress"] == progress | {"failed": 0, "stopped": 0}
    from framework.manage.timeline import format_timeline

    text = format_timeline(inst.status(), inst.history())
    assert "4 children of item: 0 waiting, 1 running, 3 succeeded, 0 failed, 0 stopped" in text


pytestmark = pytest.mark.filterwarnings("ignore")
