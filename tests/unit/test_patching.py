"""step.patched and step.deprecate_patch: new code deployed under running instances."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from framework import InvalidConfigError
from framework.api.registry import Workflow
from framework.backends.store import full_journal
from framework.core.records import EntryKind
from tests.unit.harness import Harness


def wf(name: str) -> Any:
    def register(fn: Any) -> Workflow:
        return Workflow(name=name, fn=fn)

    return register


def kinds_and_names(h: Harness, instance_id: str) -> list[tuple[str, str]]:
    return [(e.kind.value, e.name) for e in full_journal(h.store, instance_id, 1)]


def test_a_new_instance_takes_the_patch_and_keeps_taking_it_on_replay() -> None:
    answers: list[bool] = []

    @wf("order")
    def order(event: Any, step: Any) -> Any:
        step.do("reserve", lambda: 1)
        taken = step.patched("fraud-check-v2")
        answers.append(taken)
        if taken:
            step.do("fraud check v2", lambda: "ok")
        step.sleep("settle", 60)
        return taken

    h = Harness(order)
    inst = h.start("order")
    h.run_until_idle()
    assert inst.status().status == "complete" and inst.status().output is True
    assert answers == [True, True]  # the run before the sleep, and its replay after it
    assert [(e.kind, e.name) for e in inst.history()][1] == ("patch", "fraud-check-v2")
    assert kinds_and_names(h, inst.id) == [
        ("step", "reserve"),
        ("patch", "fraud-check-v2"),
        ("step", "fraud check v2"),
        ("sleep", "settle"),
    ]


def test_an_instance_recorded_before_the_patch_keeps_its_path() -> None:
    version = {"v": 1}
    ran: Counter[str] = Counter()

    def body(name: str) -> Any:
        def run() -> str:
            ran[name] += 1
            return name

        return run

    @wf("order")
    def order(event: Any, step: Any) -> Any:
        step.do("reserve", body("reserve"))
        if version["v"] == 2 and step.patched("fraud-check-v2"):
            step.do("fraud check v2", body("fraud"))
        step.sleep("settle", 60)
        step.do("charge", body("charge"))
        return "done"

    h = Harness(order)
    old = h.start("order")
    h.run_due()  # reserve done, sleeping
    version["v"] = 2  # the deploy
    new = h.start("order")
    h.run_until_idle()
    assert old.status().status == "complete" and new.status().status == "complete"
    assert ("patch", "fraud-check-v2") not in kinds_and_names(h, old.id)
    assert kinds_and_names(h, new.id)[:3] == [
        ("step", "reserve"),
        ("patch", "fraud-check-v2"),
        ("step", "fraud check v2"),
    ]
    assert ran == {"reserve": 2, "fraud": 1, "charge": 2}  # the old instance never ran the new step


def test_an_old_instance_past_its_history_takes_the_new_code() -> None:
    version = {"v": 1}

    @wf("order")
    def order(event: Any, step: Any) -> Any:
        step.do("reserve", lambda: 1)
        step.sleep("settle", 60)
        if version["v"] == 2 and step.patched("receipt"):
            step.do("send receipt", lambda: "sent")
        return "done"

    h = Harness(order)
    inst = h.start("order")
    h.run_due()
    version["v"] = 2  # deployed while the instance sleeps, before the patch's position
    h.run_until_idle()
    assert inst.status().status == "complete"
    assert kinds_and_names(h, inst.id)[-2:] == [("patch", "receipt"), ("step", "send receipt")]


def test_a_patch_deployed_under_100_instances_at_different_points_completes_them_all() -> None:
    version = {"v": 1}

    @wf("pipeline")
    def pipeline(event: Any, step: Any) -> Any:
        path = [step.do("a", lambda: "a")]
        if version["v"] == 2 and step.patched("v2"):
            path.append(step.do("a2", lambda: "a2"))
        step.sleep("one", 60)
        path.append(step.do("b", lambda: "b"))
        if version["v"] == 2 and step.patched("v2-tail"):
            path.append(step.do("b2", lambda: "b2"))
        step.sleep("two", 60)
        path.append(step.do("c", lambda: "c"))
        return path

    h = Harness(pipeline)
    instances = []
    for i in range(90):  # one started every 1.5 s: in sleep one, or past it in sleep two
        instances.append(h.start("pipeline", {"i": i}))
        h.advance(1.5)
    instances += [h.start("pipeline", {"i": i}) for i in range(90, 100)]  # not yet run at the deploy
    version["v"] = 2
    h.run_until_idle()
    outputs = Counter(tuple(inst.status().output) for inst in instances)
    assert all(inst.status().status == "complete" for inst in instances)
    # Queued at the deploy: both patches. In sleep one: only the tail's. In sleep two: neither.
    assert set(outputs) <= {("a", "a2", "b", "b2", "c"), ("a", "b", "b2", "c"), ("a", "b", "c")}
    assert len(outputs) == 3 and outputs[("a", "a2", "b", "b2", "c")] == 10, outputs
    for inst in instances:
        names = [name for _, name in kinds_and_names(h, inst.id)]
        assert len(names) == len(set(names))  # nothing recorded twice


def test_patched_is_remembered_for_the_run() -> None:
    @wf("loop")
    def loop(event: Any, step: Any) -> Any:
        return [step.patched("v2") for _ in range(3)]

    h = Harness(loop)
    inst = h.start("loop")
    h.run_until_idle()
    assert inst.status().output == [True, True, True]
    assert kinds_and_names(h, inst.id) == [("patch", "v2")]  # one marker


def test_deprecate_patch_replays_runs_that_took_it_and_records_nothing_new() -> None:
    version = {"v": 2}

    @wf("order")
    def order(event: Any, step: Any) -> Any:
        step.do("reserve", lambda: 1)
        if version["v"] == 2:
            if step.patched("fraud-check-v2"):
                step.do("fraud check v2", lambda: "ok")
        else:  # v3: the old path is gone; the marker of the runs that recorded it is replayed
            step.deprecate_patch("fraud-check-v2")
            step.do("fraud check v2", lambda: "ok")
        step.sleep("settle", 60)
        return "done"

    h = Harness(order)
    took_it = h.start("order")
    h.run_due()
    version["v"] = 3
    fresh = h.start("order")
    h.run_until_idle()
    assert took_it.status().status == "complete" and fresh.status().status == "complete"
    assert ("patch", "fraud-check-v2") in kinds_and_names(h, took_it.id)
    assert kinds_and_names(h, fresh.id) == [
        ("step", "reserve"),
        ("step", "fraud check v2"),
        ("sleep", "settle"),
    ]


def test_removing_a_patch_call_too_early_is_a_nondeterminism_error() -> None:
    version = {"v": 2}

    @wf("order")
    def order(event: Any, step: Any) -> Any:
        step.do("reserve", lambda: 1)
        if version["v"] == 2 and step.patched("fraud-check-v2"):
            step.do("fraud check v2", lambda: "ok")
        step.sleep("settle", 60)
        return "done"

    h = Harness(order)
    inst = h.start("order")
    h.run_due()
    version["v"] = 1  # the patch and its branch deleted while an instance that took it sleeps
    h.run_until_idle()
    status = inst.status()
    assert status.status == "errored" and status.error["name"] == "NonDeterminismError"
    assert "patch 'fraud-check-v2'" in status.error["message"]


def test_patches_in_concurrent_branches_of_an_async_workflow() -> None:
    version = {"v": 1}

    @wf("branches")
    async def branches(event: Any, step: Any) -> Any:
        async def branch(name: str) -> list[str]:
            done = [await step.do(f"{name} first", lambda: name)]
            await step.sleep(f"{name} nap", 60 if name == "left" else 1)
            if version["v"] == 2 and step.patched(f"{name}-extra"):
                done.append(await step.do(f"{name} extra", lambda: "extra"))
            return done

        return await asyncio.gather(branch("left"), branch("right"))

    h = Harness(branches)
    inst = h.start("branches")
    h.run_due()
    version["v"] = 2
    h.run_until_idle()
    assert inst.status().status == "complete"
    assert inst.status().output == [["left", "extra"], ["right", "extra"]]
    markers = [name for kind, name in kinds_and_names(h, inst.id) if kind == EntryKind.PATCH.value]
    assert sorted(markers) == ["left-extra", "right-extra"]


@pytest.mark.parametrize("bad", ["", "x" * 1000, 7, "bad\x00id"])
def test_a_bad_patch_id_is_a_typed_error(bad: Any) -> None:
    @wf("bad-patch")
    def flow(event: Any, step: Any) -> Any:
        try:
            step.patched(bad)
        except InvalidConfigError as exc:
            return str(exc)
        return "accepted"

    h = Harness(flow)
    inst = h.start("bad-patch")
    h.run_until_idle()
    assert "patch name" in inst.status().output


def test_a_patch_before_a_child_scope_in_progress_keeps_the_old_path() -> None:
    version = {"v": 1}
    ran: Counter[str] = Counter()

    def inner(step: Any) -> str:
        step.do("charge", lambda: ran.update(["charge"]) or "charged")
        step.sleep("settle", 60)
        return "inner done"

    @wf("scoped")
    def scoped(event: Any, step: Any) -> Any:
        if version["v"] == 2 and step.patched("p"):
            step.do("new", lambda: ran.update(["new"]) or "new")
        return step.child("order", inner)

    h = Harness(scoped)
    inst = h.start("scoped")
    h.run_due()  # asleep inside the child, whose own entry is not written yet
    version["v"] = 2
    h.run_until_idle()
    assert inst.status().status == "complete" and inst.status().output == "inner done"
    assert ran == {"charge": 1}  # the patch was not taken, and nothing ran twice


def test_an_unpatched_call_inserted_before_a_scope_in_progress_is_caught_before_anything_runs() -> None:
    version = {"v": 1}
    ran: Counter[str] = Counter()

    async def branch(step: Any, name: str) -> str:
        await step.do(f"{name} charge", lambda: ran.update([name]) or name)
        await step.sleep(f"{name} settle", 60)
        return name

    @wf("tasks")
    async def tasks(event: Any, step: Any) -> Any:
        if version["v"] == 2:
            await step.do("inserted", lambda: ran.update(["inserted"]) or "x")
        return await asyncio.gather(branch(step, "a"), branch(step, "b"))

    h = Harness(tasks)
    inst = h.start("tasks")
    h.run_due()
    version["v"] = 2
    h.run_until_idle()
    status = inst.status()
    assert status.status == "errored" and status.error["name"] == "NonDeterminismError"
    assert "calls inside a scope" in status.error["message"]
    assert ran == {"a": 1, "b": 1}  # neither the inserted step nor a branch's recorded step ran again


def test_one_patch_id_in_a_child_and_in_the_root_decides_at_each_place() -> None:
    def inner(step: Any) -> str:
        return step.do("x", lambda: "x") if step.patched("p") else step.do("old x", lambda: "old")

    @wf("shared-id")
    def shared(event: Any, step: Any) -> Any:
        first = step.child("c", inner)
        second = step.do("y", lambda: "y") if step.patched("p") else step.do("old y", lambda: "old")
        step.sleep("nap", 60)  # a replay after the sleep skips the finished child
        return [first, second]

    h = Harness(shared)
    inst = h.start("shared-id")
    h.run_until_idle()
    assert inst.status().status == "complete" and inst.status().output == ["x", "y"]


def test_one_patch_id_in_branches_that_wake_at_different_times() -> None:
    version = {"v": 1}

    @wf("shared-branches")
    async def branches(event: Any, step: Any) -> Any:
        async def branch(name: str, nap: int) -> list[str]:
            await step.sleep(f"{name} nap", nap)
            done = [await step.do(f"{name} first", lambda: name)]
            if version["v"] == 2 and step.patched("p"):
                done.append(await step.do(f"{name} new", lambda: "new"))
            await step.sleep(f"{name} rest", 120 - nap)
            return done

        return await asyncio.gather(branch("a", 100), branch("b", 10))

    h = Harness(branches)
    inst = h.start("shared-branches")
    h.advance(30)  # b took its first step under the old code; a is still asleep
    version["v"] = 2
    h.run_until_idle()
    assert inst.status().status == "complete"
    assert inst.status().output == [["a", "new"], ["b"]]
