"""step.child, step.parallel and step.map in-process, in sync and async workflows: scopes, recorded
outcomes, concurrency limits, completion policies, and replay that reads one entry after the join."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from typing import Any

import pytest

from framework import BatchFailedError, InvalidConfigError, StepFailedError, WorkflowTimeoutError
from framework.api.batch import BatchItemStatus, CompletionReason
from framework.api.registry import Workflow
from framework.backends.environment import Settings
from framework.backends.store import full_journal
from framework.core.faults import injected
from framework.core.records import EntryKind, EntryStatus
from tests.unit.harness import Harness


def wf(name: str) -> Any:
    def register(fn: Any) -> Workflow:
        return Workflow(name=name, fn=fn)

    return register


MODES = ["sync", "async"]


def flow_of(mode: str, name: str, body: Any) -> Workflow:
    """A workflow running ``body(step, call)``, where ``call(x)`` is x in a sync workflow and ``await
    x`` in an async one: one test body covers both."""
    if mode == "sync":

        @wf(f"{name}-sync")
        def sync_flow(event: Any, step: Any) -> Any:
            return body(step, lambda x: x)

        return sync_flow

    @wf(f"{name}-async")
    async def async_flow(event: Any, step: Any) -> Any:
        return await body(step, None)

    return async_flow


# -- step.child ---------------------------------------------------------------------------------------
def test_a_child_runs_once_and_replay_returns_its_result_without_running_it() -> None:
    runs: list[str] = []

    def reserve(step: Any) -> Any:
        runs.append("code")
        a = step.do("a", lambda: runs.append("a") or 1)
        b = step.do("b", lambda: runs.append("b") or 2)
        return {"sum": a + b}

    @wf("child-sync")
    def flow(event: Any, step: Any) -> Any:
        got = step.child("reserve", reserve)
        step.sleep("nap", "1 hour")
        return got

    h = Harness(flow)
    inst = h.start("child-sync")
    h.run_until_idle()
    assert inst.status().output == {"sum": 3}
    assert runs == ["code", "a", "b"]  # the replay after the sleep ran the child's code not at all
    entries = full_journal(h.store, inst.id, 1)
    ops = {e.name: e.op_id for e in entries}
    assert ops == {"a": "0.0", "b": "0.1", "reserve": "0", "nap": "1"}
    kinds = {e.name: e.kind for e in entries}
    assert kinds["reserve"] is EntryKind.CHILD
    history = inst.history()
    assert [(e.kind, e.name) for e in history] == [
        ("step", "a"),
        ("step", "b"),
        ("child", "reserve"),
        ("sleep", "nap"),
    ]
    assert history[2].result == {"sum": 3}


def test_an_async_child_runs_in_its_own_scope() -> None:
    async def inner(step: Any) -> Any:
        x, y = await asyncio.gather(step.do("x", lambda: 1), step.do("y", lambda: 2))
        await step.sleep("wait", "10 minutes")
        return x + y

    @wf("child-async")
    async def flow(event: Any, step: Any) -> Any:
        first = await step.do("first", lambda: 10)
        got = await step.child("inner", inner)
        return first + got

    h = Harness(flow)
    inst = h.start("child-async")
    h.run_until_idle()
    assert inst.status().output == 13
    ops = {e.name: e.op_id for e in full_journal(h.store, inst.id, 1)}
    assert (
        ops["inner"] == "1" and ops["x"] == "1.0" and ops["y"] == "1.1" and ops["wait"] == "1.4"
    )  # gather made tasks 1.2 and 1.3


@pytest.mark.parametrize("mode", MODES)
def test_a_failing_child_raises_the_same_error_on_first_run_and_on_replay(mode: str) -> None:
    seen: list[str] = []

    def bad(step: Any) -> Any:
        step.do("boom", _raise_value_error, config={"retries": {"limit": 0}})

    async def bad_async(step: Any) -> Any:
        await step.do("boom", _raise_value_error, config={"retries": {"limit": 0}})

    def body(step: Any, call: Any) -> Any:
        try:
            step.child("c", bad)
        except ValueError as exc:
            seen.append(f"{type(exc).__name__}:{exc}:{isinstance(exc, StepFailedError)}")
        step.sleep("nap", "1 hour")
        return "ok"

    async def abody(step: Any, _: Any) -> Any:
        try:
            await step.child("c", bad_async)
        except ValueError as exc:
            seen.append(f"{type(exc).__name__}:{exc}:{isinstance(exc, StepFailedError)}")
        await step.sleep("nap", "1 hour")
        return "ok"

    h = Harness(flow_of(mode, "child-fails", body if mode == "sync" else abody))
    inst = h.start(f"child-fails-{mode}")
    h.run_until_idle()
    assert inst.status().output == "ok"
    assert seen == ["ValueError:bad value:True"] * 2  # first run, then the replay after the sleep
    child = next(e for e in full_journal(h.store, inst.id, 1) if e.name == "c")
    assert child.status is EntryStatus.FAILED


def _raise_value_error() -> None:
    raise ValueError("bad value")


def test_a_timed_out_wait_in_a_child_is_a_workflow_timeout_on_replay_too() -> None:
    seen: list[str] = []

    def waits(step: Any) -> Any:
        return step.wait_for_event("w", "never", timeout="1 minute")

    @wf("child-timeout")
    def flow(event: Any, step: Any) -> Any:
        try:
            step.child("c", waits)
        except WorkflowTimeoutError:
            seen.append("timeout")
        step.sleep("nap", "1 hour")

    h = Harness(flow)
    h.start("child-timeout")
    h.run_until_idle()
    assert seen == ["timeout", "timeout"]


def test_child_arguments_are_checked_where_they_are_written() -> None:
    @wf("child-bad")
    def flow(event: Any, step: Any) -> Any:
        with pytest.raises(InvalidConfigError, match="needs a callable"):
            step.child("c", 42)
        with pytest.raises(InvalidConfigError, match="async function, in a sync workflow"):
            step.child("c", _async_fn)
        with pytest.raises(InvalidConfigError, match="child name"):
            step.child("", lambda s: 1)
        return "checked"

    h = Harness(flow)
    inst = h.start("child-bad")
    h.run_until_idle()
    assert inst.status().output == "checked"


async def _async_fn(step: Any) -> None:
    return None


# -- step.parallel and step.map ---------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_map_returns_a_batch_result_in_index_order(mode: str) -> None:
    def body(step: Any, call: Any) -> Any:
        def item(step: Any, x: int, index: int) -> Any:
            return step.do(f"double {x}", lambda: x * 2)

        batch = step.map("double", [3, 1, 2], item)
        return [batch.get_results(), batch.success_count, batch.failure_count, str(batch.completion_reason)]

    async def abody(step: Any, _: Any) -> Any:
        async def item(step: Any, x: int, index: int) -> Any:
            return await step.do(f"double {x}", lambda: x * 2)

        batch = await step.map("double", [3, 1, 2], item, max_concurrency=2)
        return [batch.get_results(), batch.success_count, batch.failure_count, str(batch.completion_reason)]

    h = Harness(flow_of(mode, "map-order", body if mode == "sync" else abody))
    inst = h.start(f"map-order-{mode}")
    h.run_until_idle()
    assert inst.status().output == [[6, 2, 4], 3, 0, "ALL_COMPLETED"]
    entries = full_journal(h.store, inst.id, 1)
    assert {e.name: e.op_id for e in entries if e.kind is EntryKind.CHILD} == {
        "double[0]": "0.0",
        "double[1]": "0.1",
        "double[2]": "0.2",
    }
    assert [e.kind for e in entries if e.op_id == "0"] == [EntryKind.MAP]


def test_async_map_runs_at_most_max_concurrency_items_at_once() -> None:
    lock = threading.Lock()
    now_running = [0]
    peak = [0]

    def work(x: int) -> int:
        with lock:
            now_running[0] += 1
            peak[0] = max(peak[0], now_running[0])
        threading.Event().wait(0.02)
        with lock:
            now_running[0] -= 1
        return x

    @wf("map-limit")
    async def flow(event: Any, step: Any) -> Any:
        async def item(step: Any, x: int) -> Any:
            return await step.do("work", lambda: work(x))

        batch = await step.map("limited", list(range(12)), item, max_concurrency=3)
        return batch.get_results()

    h = Harness(flow)
    inst = h.start("map-limit")
    h.run_until_idle()
    assert inst.status().output == list(range(12))
    assert 2 <= peak[0] <= 3


@pytest.mark.parametrize("mode", MODES)
def test_map_fails_fast_by_default_and_replay_raises_the_same(mode: str) -> None:
    started: list[int] = []
    seen: list[Any] = []

    def work(x: int) -> int:
        started.append(x)
        if x == 1:
            raise KeyError("no such file")
        return x

    def body(step: Any, call: Any) -> Any:
        def item(step: Any, x: int) -> Any:
            return step.do("work", lambda: work(x), config={"retries": {"limit": 0}})

        try:
            step.map("files", [0, 1, 2, 3], item)
        except BatchFailedError as exc:
            seen.append((exc.batch.failure_count, str(exc.batch.completion_reason), str(exc)))
        step.sleep("nap", "1 hour")

    async def abody(step: Any, _: Any) -> Any:
        async def item(step: Any, x: int) -> Any:
            return await step.do("work", lambda: work(x), config={"retries": {"limit": 0}})

        try:
            await step.map("files", [0, 1, 2, 3], item, max_concurrency=1)
        except BatchFailedError as exc:
            seen.append((exc.batch.failure_count, str(exc.batch.completion_reason), str(exc)))
        await step.sleep("nap", "1 hour")

    h = Harness(flow_of(mode, "map-fail-fast", body if mode == "sync" else abody))
    h.start(f"map-fail-fast-{mode}")
    h.run_until_idle()
    assert started == [0, 1]  # nothing after the first failure started, and nothing ran again
    assert len(seen) == 2 and seen[0] == seen[1]
    count, reason, message = seen[0]
    assert (count, reason) == (1, "FAILURE_TOLERANCE_EXCEEDED")
    assert "item 1: KeyError" in message


@pytest.mark.parametrize(
    ("tolerated", "ends"), [(2, "ALL_COMPLETED"), ("40%", "ALL_COMPLETED"), (1, "raises")]
)
def test_tolerated_failures_as_a_count_or_a_percentage(tolerated: Any, ends: str) -> None:
    @wf(f"map-tolerate-{tolerated}")
    def flow(event: Any, step: Any) -> Any:
        def item(step: Any, x: int) -> Any:
            if x % 2:
                return step.do("odd", _raise_value_error, config={"retries": {"limit": 0}})
            return x

        try:
            batch = step.map("m", [0, 1, 2, 3, 4], item, tolerated_failures=tolerated)
        except BatchFailedError as exc:
            return ["raises", exc.batch.failure_count]
        failed = [i.index for i in batch.failed()]
        with pytest.raises(StepFailedError, match="bad value"):
            batch.throw_if_error()
        return [
            str(batch.completion_reason),
            batch.get_results(),
            failed,
            [e.type for e in batch.get_errors()],
        ]

    h = Harness(flow)
    inst = h.start(f"map-tolerate-{tolerated}")
    h.run_until_idle()
    if ends == "raises":
        assert inst.status().output == ["raises", 2]
    else:
        assert inst.status().output == [ends, [0, 2, 4], [1, 3], ["ValueError", "ValueError"]]


def test_min_successful_ends_the_batch_early_and_cancels_the_rest() -> None:
    gate = threading.Event()
    ran: list[str] = []

    def slow() -> str:
        ran.append("slow")
        gate.wait(5)
        return "slow"

    @wf("par-min")
    async def flow(event: Any, step: Any) -> Any:
        async def fast(step: Any) -> Any:
            return await step.do("fast", lambda: "fast")

        async def slow_branch(step: Any) -> Any:
            return await step.do("slow", slow, config={"timeout": "3 seconds"})

        batch = await step.parallel("race", [slow_branch, fast, fast], min_successful=2)
        gate.set()
        await step.sleep("nap", "1 hour")
        return [str(batch.completion_reason), batch.get_results(), [str(i.status) for i in batch.all]]

    h = Harness(flow)
    inst = h.start("par-min")
    h.run_until_idle()
    out = inst.status().output
    assert out == ["MIN_SUCCESSFUL_REACHED", ["fast", "fast"], ["STARTED", "SUCCEEDED", "SUCCEEDED"]]
    assert ran == ["slow"]
    history = {(e.kind, e.name) for e in inst.history()}
    assert ("parallel", "race") in history


def test_min_successful_that_cannot_be_reached_fails_the_batch() -> None:
    @wf("par-unreachable")
    def flow(event: Any, step: Any) -> Any:
        def bad(step: Any) -> Any:
            raise ConnectionError("down")

        def good(step: Any) -> Any:
            return 1

        with pytest.raises(BatchFailedError) as info:
            step.parallel("p", [bad, bad, good], min_successful=2)
        return [info.value.batch.failure_count, info.value.batch.success_count]

    h = Harness(flow)
    inst = h.start("par-unreachable")
    h.run_until_idle()
    assert inst.status().output == [2, 0]


def test_replay_after_the_join_reads_the_batch_entry_only() -> None:
    calls: list[str] = []

    @wf("map-join")
    def flow(event: Any, step: Any) -> Any:
        def item(step: Any, x: int) -> Any:
            calls.append(f"code {x}")
            return step.do("sq", lambda: x * x)

        batch = step.map("squares", list(range(50)), item)
        step.sleep("nap", "1 hour")
        step.sleep("nap2", "1 hour")
        return sum(batch.get_results())

    h = Harness(flow)
    inst = h.start("map-join")
    h.run_until_idle()
    assert inst.status().output == sum(x * x for x in range(50))
    assert len(calls) == 50  # two replays after the join ran no item's code


def test_an_empty_map_completes_at_once() -> None:
    @wf("map-empty")
    def flow(event: Any, step: Any) -> Any:
        batch = step.map("none", [], lambda step, x: x)
        return [batch.total_count, str(batch.completion_reason), str(batch.status)]

    h = Harness(flow)
    inst = h.start("map-empty")
    h.run_until_idle()
    assert inst.status().output == [0, "ALL_COMPLETED", "SUCCEEDED"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"items": {1, 2}}, "must be a sequence"),
        ({"items": "abc"}, "must be a sequence"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"max_concurrency": True}, "max_concurrency"),
        ({"min_successful": 4}, "min_successful"),
        ({"min_successful": -1}, "min_successful"),
        ({"tolerated_failures": -1}, "tolerated_failures"),
        ({"tolerated_failures": "150%"}, "percentage"),
        ({"tolerated_failures": "lots%"}, "percentage"),
        ({"tolerated_failures": 1.5}, "tolerated_failures"),
        ({"fn": 3}, "needs a callable"),
    ],
)
def test_map_arguments_are_checked(kwargs: dict[str, Any], match: str) -> None:
    @wf(f"map-bad-{match}-{sorted(kwargs)}")
    def flow(event: Any, step: Any) -> Any:
        args = {"items": [1, 2, 3], "fn": lambda step, x: x} | kwargs
        items, fn = args.pop("items"), args.pop("fn")
        with pytest.raises(InvalidConfigError, match=match):
            step.map("m", items, fn, **args)
        return "checked"

    h = Harness(flow)
    inst = h.start(flow.name)
    h.run_until_idle()
    assert inst.status().output == "checked"


def test_a_suspended_batch_resumes_where_its_items_left_off() -> None:
    runs: list[str] = []

    @wf("map-suspends")
    async def flow(event: Any, step: Any) -> Any:
        async def item(step: Any, x: int) -> Any:
            await step.do("before", lambda: runs.append(f"before {x}"))
            await step.sleep("nap", f"{x + 1} hours")
            await step.do("after", lambda: runs.append(f"after {x}"))
            return x

        batch = await step.map("m", [0, 1, 2], item, max_concurrency=2)
        return batch.get_results()

    h = Harness(flow)
    inst = h.start("map-suspends")
    h.run_until_idle()
    assert inst.status().output == [0, 1, 2]
    assert sorted(runs) == sorted([f"before {x}" for x in range(3)] + [f"after {x}" for x in range(3)])
    items = [e for e in full_journal(h.store, inst.id, 1) if e.kind is EntryKind.CHILD]
    assert [e.status for e in items] == [EntryStatus.COMPLETE] * 3
    assert BatchItemStatus.SUCCEEDED == "SUCCEEDED" and CompletionReason.ALL_COMPLETED == "ALL_COMPLETED"


# -- crashes and duplicate deliveries ----------------------------------------------------------------
CRASH_AT = [
    (where, name)
    for where in ("journal.before_write", "journal.after_write")
    for name in ("work", "m[1]", "m[3]", "m")
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("where", "name"), CRASH_AT)
def test_a_crash_at_any_write_of_a_map_records_each_item_once(mode: str, where: str, name: str) -> None:
    runs: Counter[int] = Counter()
    crashes = iter([True])

    def crash(point: str, info: dict[str, Any]) -> None:
        if point == where and info["name"] == name and next(crashes, False):
            raise SystemExit("the invocation dies")

    def work(x: int) -> int:
        runs[x] += 1
        return x * 10

    def body(step: Any, call: Any) -> Any:
        batch = step.map("m", [0, 1, 2, 3], lambda step, x: step.do("work", lambda: work(x)))
        return batch.get_results()

    async def abody(step: Any, _: Any) -> Any:
        async def item(step: Any, x: int) -> Any:
            return await step.do("work", lambda: work(x))

        batch = await step.map("m", [0, 1, 2, 3], item, max_concurrency=2)
        return batch.get_results()

    h = Harness(flow_of(mode, f"map-crash-{where}-{name}", body if mode == "sync" else abody))
    inst = h.start(f"map-crash-{where}-{name}-{mode}")
    with injected(crash), pytest.raises(SystemExit):
        h.run_due()
    h.run_until_idle()
    assert inst.status().output == [0, 10, 20, 30]
    # A body runs again only if the crash came before its own step's entry was written, or (async,
    # two items at once) if it was still running beside the write that crashed.
    lost = 1 if (where, name) == ("journal.before_write", "work") else 0
    assert sum(runs.values()) - 4 <= (lost if mode == "sync" else lost + 1)
    entries = full_journal(h.store, inst.id, 1)
    assert Counter(e.op_id for e in entries).most_common(1)[0][1] == 1
    assert sorted(e.name for e in entries if e.kind is EntryKind.CHILD) == ["m[0]", "m[1]", "m[2]", "m[3]"]
    assert [e.kind for e in entries if e.op_id == "0"] == [EntryKind.MAP]


@pytest.mark.parametrize("mode", MODES)
def test_duplicate_wakeups_during_a_batch_run_nothing_twice(mode: str) -> None:
    runs: Counter[int] = Counter()

    def work(x: int) -> int:
        runs[x] += 1
        return x

    def body(step: Any, call: Any) -> Any:
        batch = step.map(
            "m", [0, 1, 2], lambda step, x: [step.do("w", lambda: work(x)), step.sleep("s", x + 1)]
        )
        return len(batch.get_results())

    async def abody(step: Any, _: Any) -> Any:
        async def item(step: Any, x: int) -> Any:
            await step.do("w", lambda: work(x))
            await step.sleep("s", x + 1)

        return len((await step.map("m", [0, 1, 2], item)).get_results())

    h = Harness(flow_of(mode, "map-dupes", body if mode == "sync" else abody))
    inst = h.start(f"map-dupes-{mode}")
    for _ in range(6):  # the same wake-up, delivered again and again, between steps of the clock
        h.deliver(f'{{"id":"{inst.id}"}}')
        h.advance(1)
    h.run_until_idle()
    assert inst.status().output == 3
    assert runs == {0: 1, 1: 1, 2: 1}


def test_a_pause_during_a_batch_lets_running_items_be_recorded() -> None:
    runs: Counter[str] = Counter()
    gate = threading.Event()

    def slow(tag: str) -> str:
        gate.wait(5)
        runs[tag] += 1
        return tag

    def pause_now() -> str:
        runs["pause"] += 1
        h.client.get(inst.id).pause()
        gate.set()
        return "paused"

    @wf("map-pause")
    async def flow(event: Any, step: Any) -> Any:
        async def item(step: Any, x: int) -> Any:
            if x == 0:
                await step.do("pause", pause_now)
                return await step.do("after", lambda: "after")
            return await step.do("slow", lambda: slow(f"slow {x}"))

        return (await step.map("m", [0, 1, 2], item)).get_results()

    h = Harness(flow, settings=Settings(control_check_seconds=0))
    inst = h.start("map-pause")
    h.run_until_idle()
    assert inst.status().status == "paused"
    inst.resume()
    h.run_until_idle()
    assert inst.status().output == ["after", "slow 1", "slow 2"]
    assert runs == {"pause": 1, "slow 1": 1, "slow 2": 1}  # the slow bodies were recorded at the pause


def test_a_map_with_more_items_than_the_history_allows_fails_before_any_item_runs() -> None:
    ran: list[int] = []

    def flow(event: Any, step: Any) -> Any:
        try:
            step.map("too many", list(range(10)), lambda step, item: ran.append(item))
        except InvalidConfigError as exc:
            return str(exc)
        return "ran"

    h = Harness(Workflow(name="too-many", fn=flow), settings=Settings(max_history=10))
    inst = h.start("too-many")
    h.run_until_idle()
    assert "needs at least 11 durable calls" in inst.status().output and ran == []


def test_a_map_item_with_star_args_gets_the_item_its_index_and_the_items() -> None:
    @wf("map-star")
    def flow(event: Any, step: Any) -> Any:
        batch = step.map("star", ["a", "b"], lambda step, *rest: list(rest))
        return batch.get_results()

    h = Harness(flow)
    inst = h.start("map-star")
    h.run_until_idle()
    assert inst.status().output == [["a", 0, ["a", "b"]], ["b", 1, ["a", "b"]]]


def test_positional_count_of_plain_star_args_and_unreadable_callables() -> None:
    import sys

    from framework.engine.step_functions import positional_count

    def two(a: Any, b: Any, *, c: Any = None) -> None: ...

    def star(a: Any, *rest: Any) -> None: ...

    assert positional_count(two) == 2
    assert positional_count(star) == sys.maxsize  # any number: every argument given reaches it
    assert positional_count(max) == 1  # a builtin without a readable signature
