"""What an in-process batch (step.map over a function, step.parallel) costs and checks at the call: each
item's result is encoded once, a batch the history cannot hold is refused before any item runs, and so
is async code in a sync workflow."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from framework import InvalidConfigError
from framework.api.registry import Workflow
from framework.backends.environment import Settings
from framework.core import serde
from framework.core.records import Status
from tests.unit.harness import Harness

MODES = ["sync", "async"]
BIG = "x" * 2_000  # past the inline limit set below: stored in the blob store


def _flow(mode: str, body: Any) -> Workflow:
    if mode == "sync":
        return Workflow(name="costs", fn=lambda event, step: body(step, lambda x: x))

    async def async_flow(event: Any, step: Any) -> Any:
        return await body(step, None)

    return Workflow(name="costs", fn=async_flow)


# -- encoded once --------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_each_item_result_is_encoded_once_replays_and_blobs_included(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Item 1 sleeps, so the batch ends in a later invocation that reads item 0's recorded result (one
    inline, one in the blob store): the batch entry reuses the texts, and encodes no result again."""
    results = {"r0": "r0", "r1": BIG, "r2": "r2"}
    encoded: Counter[str] = Counter()
    real_encode = serde.encode

    def counting(value: Any, *, what: str) -> str:
        if isinstance(value, str) and value in results.values():
            encoded[value] += 1
        return real_encode(value, what=what)

    monkeypatch.setattr(serde, "encode", counting)

    def sync_item(step: Any, item: str) -> Any:
        if item == "r1":
            step.sleep("nap", "1 hour")
        return results[item]

    async def async_item(step: Any, item: str) -> Any:
        if item == "r1":
            await step.sleep("nap", "1 hour")
        return results[item]

    def body(step: Any, call: Any) -> Any:
        fn = sync_item if call else async_item
        batch = step.map("m", list(results), fn)
        if call:
            return [len(r) for r in batch.get_results()]

        async def joined() -> Any:
            return [len(r) for r in (await batch).get_results()]

        return joined()

    h = Harness(_flow(mode, body), settings=Settings(inline_result_bytes=1_000))
    inst = h.start("costs")
    h.run_until_idle()
    assert inst.status().output == [2, len(BIG), 2]
    assert h.blobs.keys("")  # the big result went to the blob store
    assert encoded == {"r0": 1, BIG: 1, "r2": 1}


@pytest.mark.parametrize("mode", MODES)
def test_a_parallel_encodes_each_branch_result_once(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    encoded: Counter[str] = Counter()
    real_encode = serde.encode

    def counting(value: Any, *, what: str) -> str:
        if value in ("a", "b"):
            encoded[value] += 1
        return real_encode(value, what=what)

    monkeypatch.setattr(serde, "encode", counting)

    def body(step: Any, call: Any) -> Any:
        batch = step.parallel("p", [lambda step: "a", lambda step: "b"])
        if call:
            return batch.get_results()

        async def joined() -> Any:
            return (await batch).get_results()

        return joined()

    h = Harness(_flow(mode, body))
    inst = h.start("costs")
    h.run_until_idle()
    assert inst.status().output == ["a", "b"]
    assert encoded == {"a": 1, "b": 1}


# -- the history, checked up front ---------------------------------------------------------------------
def _refusal(mode: str, limit: int, before: int, call: Any) -> tuple[Any, list[int]]:
    """Run ``call(step, item_fn)`` after ``before`` steps, with a history of ``limit``: the output (the
    InvalidConfigError's message if the batch raised it) and the items that ran."""
    ran: list[int] = []

    def item(step: Any, x: int = 0) -> int:
        ran.append(x)
        return x

    async def async_item(step: Any, x: int = 0) -> int:
        ran.append(x)
        return x

    if mode == "sync":

        def sync_flow(event: Any, step: Any) -> Any:
            for i in range(before):
                step.do(f"before {i}", lambda: None)
            try:
                return call(step, item).success_count
            except InvalidConfigError as exc:
                return str(exc)

        flow = Workflow(name="costs", fn=sync_flow)
    else:

        async def async_flow(event: Any, step: Any) -> Any:
            for i in range(before):
                await step.do(f"before {i}", lambda: None)
            try:
                return (await call(step, async_item)).success_count
            except InvalidConfigError as exc:
                return str(exc)

        flow = Workflow(name="costs", fn=async_flow)
    h = Harness(flow, settings=Settings(max_history=limit))
    inst = h.start("costs")
    h.run_until_idle()
    status = inst.status()
    assert status.status is Status.COMPLETE, status.error
    return status.output, ran


@pytest.mark.parametrize("mode", MODES)
def test_a_map_that_fits_the_history_exactly_runs(mode: str) -> None:
    """2 steps, the map's own call and one child call per item: 2 + 1 + 7 = 10 calls, the limit."""
    output, ran = _refusal(mode, 10, 2, lambda step, fn: step.map("m", list(range(7)), fn))
    assert output == 7 and sorted(ran) == list(range(7))


@pytest.mark.parametrize("mode", MODES)
def test_a_map_one_item_too_large_for_the_history_fails_at_the_call(mode: str) -> None:
    output, ran = _refusal(mode, 10, 2, lambda step, fn: step.map("m", list(range(8)), fn))
    assert ran == []
    assert output == (
        "map 'm' needs at least 11 durable calls (the 3 the run has made with the map's own, and one "
        "per item it must start, 8), more than the 10 a run may make (WORKFLOWS_MAX_HISTORY): map over "
        "a workflow, or split the items across instances"
    )


@pytest.mark.parametrize("mode", MODES)
def test_a_parallel_too_large_for_the_history_fails_at_the_call(mode: str) -> None:
    def call(step: Any, fn: Any) -> Any:
        return step.parallel("p", [fn] * 5)

    output, ran = _refusal(mode, 5, 0, call)
    assert ran == [] and isinstance(output, str) and "parallel 'p' needs at least 6 durable calls" in output
    output, ran = _refusal(mode, 6, 0, call)
    assert output == 5 and len(ran) == 5


def test_the_items_a_policy_needs_are_what_counts() -> None:
    """min_successful=2 in a sync workflow ends after two items: 1 + 2 calls, whatever the item count;
    min_successful=0 starts none."""
    output, ran = _refusal(
        "sync", 3, 0, lambda step, fn: step.map("m", list(range(50)), fn, min_successful=2)
    )
    assert output == 2 and ran == [0, 1]
    output, ran = _refusal(
        "sync", 1, 0, lambda step, fn: step.map("m", list(range(50)), fn, min_successful=0)
    )
    assert output == 0 and ran == []
    output, ran = _refusal(
        "sync", 2, 0, lambda step, fn: step.map("m", list(range(50)), fn, min_successful=2)
    )
    assert isinstance(output, str) and "needs at least 3 durable calls" in output and ran == []


def test_async_items_that_start_together_count_together() -> None:
    """In an async workflow every item up to max_concurrency starts at once: min_successful=2 still
    claims 4 with max_concurrency=4."""

    def call(step: Any, fn: Any) -> Any:
        return step.map("m", list(range(50)), fn, min_successful=2, max_concurrency=4)

    output, ran = _refusal("async", 4, 0, call)
    assert isinstance(output, str) and "needs at least 5 durable calls" in output and ran == []
    output, ran = _refusal("async", 5, 0, call)
    assert output >= 2 and len(ran) == 4


def test_a_recorded_batch_is_not_checked_again() -> None:
    """A lowered WORKFLOWS_MAX_HISTORY does not refuse a batch the journal recorded: a replay reads its
    one entry and starts no item."""
    ran: list[int] = []

    def flow(event: Any, step: Any) -> Any:
        batch = step.map("m", list(range(4)), lambda step, x: ran.append(x) or x)
        step.sleep("nap", "1 hour")
        return batch.success_count

    h = Harness(Workflow(name="costs", fn=flow), settings=Settings(max_history=10))
    inst = h.start("costs")
    h.advance("1 minute")
    assert inst.status().status is Status.WAITING and ran == [0, 1, 2, 3]
    h.env.settings = Settings(max_history=3)  # the map and the sleep: 2 calls on replay
    h.run_until_idle()
    assert inst.status().output == 4 and ran == [0, 1, 2, 3]


class AsyncCallable:
    async def __call__(self, step: Any, item: Any = None) -> Any:
        return item


def test_an_object_with_an_async_call_is_async_code_in_a_sync_workflow() -> None:
    """Recognised as every step body is (``is_coroutine_fn``): refused at the call, as an async
    function is, not run to a coroutine that cannot be stored."""

    def flow(event: Any, step: Any) -> Any:
        refused = []
        for call in (
            lambda: step.map("m", [1], AsyncCallable()),
            lambda: step.parallel("p", [AsyncCallable()]),
            lambda: step.child("c", AsyncCallable()),
        ):
            try:
                call()
            except InvalidConfigError as exc:
                refused.append(str(exc))
        return refused

    h = Harness(Workflow(name="costs", fn=flow))
    inst = h.start("costs")
    h.run_until_idle()
    assert inst.status().output == [
        "the function of map 'm' is an async function, in a sync workflow: make the workflow async, or the "
        "function plain",
        "a branch of parallel 'p' is an async function, in a sync workflow: make the workflow async, or the "
        "function plain",
        "child 'c' is an async function, in a sync workflow: make the workflow async, or the function plain",
    ]
