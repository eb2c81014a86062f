"""A 1,000-item map over a workflow, 100 children at once, under the crash matrix's faults: every fault
point, the child's report points included, crashes several times in one run (its first hit among them),
spread over the whole fan-out. SQS redelivery and the sweeper recover each crash.

Asserted: the parent completes with the exact output; exactly one child per item, each with the parent's
id; every journal (the parent's and each child's) records each operation once and has a child's exact
shape; each item's body finished once more at most per crash at ``step.after_body``; nothing is left
running; and every armed crash happened."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from framework import workflow
from framework.backends.store import full_journal
from framework.core.faults import CHILD_POINTS, POINTS, injected
from framework.core.records import Status
from framework.local import LocalRuntime

ITEMS, CONCURRENCY = 1_000, 100
PARENT, ITEM = "chaos-map", "chaos-item"
# Per point, a crash at its first hit and then after every GAP further hits: several per point over a
# run that reaches each point a thousand times or more.
GAP = 311
CRASHES_PER_POINT = 3


@workflow(ITEM)
def item(event: Any, step: Any) -> int:
    """One item: one step that squares ``i``."""
    i = int(event.payload["i"])
    return int(step.do("square", lambda: i * i))


@workflow(PARENT)
def parent(event: Any, step: Any) -> dict[str, int]:
    """The map of ``items`` over ``chaos-item``, ``CONCURRENCY`` at once."""
    items = [{"i": i} for i in range(int(event.payload["items"]))]
    batch = step.map("squares", items, ITEM, max_concurrency=CONCURRENCY)
    return {"succeeded": batch.success_count, "failed": batch.failure_count, "sum": sum(batch.get_results())}


def _children(rt: LocalRuntime) -> list[Any]:
    found, cursor = [], None
    while True:
        page = rt.client.list(workflow=ITEM, limit=100, cursor=cursor)
        found += page.instances
        if not (cursor := page.cursor):
            return found


def _shape(rt: LocalRuntime, instance: str) -> list[tuple[str, str, str]]:
    return sorted((e.op_id, str(e.kind), e.name) for e in full_journal(rt.env.store, instance, 1))


@pytest.mark.timeout(900)
def test_a_thousand_item_map_survives_crashes_at_every_point() -> None:
    bodies: Counter[str] = Counter()

    def hook(where: str, info: dict[str, Any]) -> None:
        if where == "step.after_body":
            bodies[str(info["instance_id"])] += 1

    with LocalRuntime(workflows=[parent, item]) as rt, injected(hook):
        points = POINTS + CHILD_POINTS
        for point in points:
            for _ in range(CRASHES_PER_POINT):
                # Armed crashes of one point count down in turn: the first fires at the point's first
                # hit, each next one GAP hits after the one before.
                rt.crash_at(point, skip=0 if _ == 0 else GAP)
        armed = len(points) * CRASHES_PER_POINT

        rt.client.create(PARENT, {"items": ITEMS}, id="chaos")
        for _ in range(24 * 30):
            if rt.client.get("chaos").status().status in (Status.COMPLETE, Status.ERRORED):
                break
            rt.advance("1 hour")
        status = rt.client.get("chaos").status()

        assert (status.status, status.output) == (
            Status.COMPLETE,
            {"succeeded": ITEMS, "failed": 0, "sum": sum(i * i for i in range(ITEMS))},
        )
        assert rt.crashes == armed, f"{rt.crashes} of the {armed} armed crashes happened"
        for point in points:
            assert rt.fault_hits[point] > CRASHES_PER_POINT * GAP, f"{point} reached too seldom to crash"

        children = _children(rt)
        assert len(children) == ITEMS and len({c.id for c in children}) == ITEMS
        assert {c.parent_id for c in children} == {"chaos"}
        assert {c.status for c in children} == {Status.COMPLETE}

        parent_entries = _shape(rt, "chaos")
        assert len(set(parent_entries)) == len(parent_entries), "the parent records each operation once"
        shapes = Counter(tuple(_shape(rt, c.id)) for c in children)
        assert len(shapes) == 1, f"every child's journal has one shape: {shapes.most_common(3)}"
        (shape,) = shapes
        assert len(set(shape)) == len(shape) and any(name == "square" for *_, name in shape)

        crashed_after_body = CRASHES_PER_POINT  # the crashes at step.after_body, each one body re-run
        assert sum(bodies.values()) <= ITEMS + crashed_after_body
        assert all(n <= 1 + crashed_after_body for n in bodies.values())
