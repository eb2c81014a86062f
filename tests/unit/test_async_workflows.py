"""Async workflows on the fakes: concurrent steps, identity under any completion order, suspension when
every branch waits, the Cloudflare forms (decorated steps, DAG dependencies, classes), and errors."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from framework import (
    NonDeterminismError,
    StepFailedError,
    WorkflowCodeError,
    WorkflowEntrypoint,
    workflow,
)
from framework.api.registry import REGISTRY, Workflow
from framework.backends.environment import Settings
from framework.backends.store import full_journal
from framework.core.records import EntryStatus, Status
from tests.unit.harness import Harness


def wf(name: str) -> Any:
    def register(fn: Any) -> Workflow:
        return Workflow(name=name, fn=fn)

    return register


def test_an_async_chain_runs_each_body_once_across_a_sleep() -> None:
    runs: list[str] = []

    async def add(n: int) -> int:
        runs.append(f"add{n}")
        return n

    @wf("a-chain")
    async def chain(event: Any, step: Any) -> Any:
        total = 0
        for i in range(3):
            total += await step.do(f"s{i}", lambda i=i: add(i))  # a lambda returning a coroutine
        await step.sleep("nap", "1 hour")
        total += await step.do("plain", lambda: 10)
        return total

    h = Harness(chain)
    inst = h.start("a-chain")
    h.advance(0)
    assert inst.status().status == "waiting"
    h.run_until_idle()
    assert inst.status().output == 13
    assert runs == ["add0", "add1", "add2"]  # the replay after the sleep ran none of them again


def test_gathered_steps_run_at_the_same_time() -> None:
    # Each body waits for the other: they complete only if both run at once.
    barrier = threading.Barrier(2, timeout=10)

    def meet(tag: str) -> str:
        barrier.wait()
        return tag

    async def meet_async(tag: str) -> str:
        await asyncio.to_thread(barrier.wait)
        return tag

    @wf("a-meet")
    async def meet_flow(event: Any, step: Any) -> Any:
        first = await asyncio.gather(step.do("x", lambda: meet("x")), step.do("y", lambda: meet("y")))
        barrier.reset()
        second = await asyncio.gather(step.do("p", lambda: meet_async("p")), step.do("q", lambda: meet("q")))
        return [*first, *second]

    h = Harness(meet_flow)
    inst = h.start("a-meet")
    h.run_until_idle()
    assert inst.status().output == ["x", "y", "p", "q"]


def _released_in(order: list[int]) -> tuple[list[threading.Event], threading.Thread]:
    """Events that let body k finish, set one at a time in ``order``, each after the previous body
    finished (it clears its event): the bodies complete in exactly that order."""
    turns = [threading.Event() for _ in order]

    def release() -> None:
        for k in order:
            turns[k].set()
            deadline = time.monotonic() + 10
            while turns[k].is_set() and time.monotonic() < deadline:
                time.sleep(0.001)

    return turns, threading.Thread(target=release, daemon=True)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.permutations(list(range(4))))
def test_results_never_swap_whatever_order_steps_finish_in(order: list[int]) -> None:
    turns, releaser = _released_in(order)

    finished: list[int] = []

    def body(k: int, part: str) -> str:
        if part == "first":
            assert turns[k].wait(10)
            finished.append(k)
            turns[k].clear()
        return f"{part}-{k}"

    async def branch(step: Any, k: int) -> list[str]:
        # Every branch uses the same names: identity comes from the branch's scope, not the name.
        a = await step.do("fetch", lambda: body(k, "first"))
        b = await step.do("fetch", lambda: body(k, "second"))
        return [a, b]

    @wf("a-order")
    async def flow(event: Any, step: Any) -> Any:
        results = await asyncio.gather(*(branch(step, k) for k in range(4)))
        await step.sleep("then", "1 hour")  # the next invocation replays every result
        return results

    h = Harness(flow)
    inst = h.start("a-order")
    releaser.start()
    h.advance(0)
    first = full_journal(h.store, inst.id, 1)
    assert inst.status().status == "waiting"
    h.run_until_idle()
    expected = [[f"first-{k}", f"second-{k}"] for k in range(4)]
    assert inst.status().output == expected
    by_op = {e.op_id: e.result for e in full_journal(h.store, inst.id, 1) if e.name == "fetch"}
    for k in range(4):  # branch k is the root's k-th task (positions 0-3), its calls 0 and 1
        assert f'"first-{k}"' in by_op[f"{k}.0"] and f'"second-{k}"' in by_op[f"{k}.1"]
    assert finished == order  # the first calls did finish in the drawn order
    assert {e.op_id for e in first} <= set(by_op) | {"4"}  # the replay matched every recorded call


def test_two_concurrent_steps_of_one_name_get_their_own_results() -> None:
    @wf("a-same")
    async def same(event: Any, step: Any) -> Any:
        pair = await asyncio.gather(step.do("same", lambda: 1), step.do("same", lambda: 2))
        await step.sleep("then", 60)
        again = await asyncio.gather(step.do("same", lambda: 3), step.do("same", lambda: 4))
        return [*pair, *again]

    h = Harness(same)
    inst = h.start("a-same")
    h.run_until_idle()
    assert inst.status().output == [1, 2, 3, 4]


def test_a_changed_call_at_an_identity_is_non_determinism_and_writes_nothing() -> None:
    version = {"v": 1}

    @wf("a-changed")
    async def changed(event: Any, step: Any) -> Any:
        await step.do("a", lambda: 1)
        await step.sleep("nap", 60)
        if version["v"] == 1:
            return await step.do("b", lambda: 2)
        return await step.do("c", lambda: 3)

    h = Harness(changed)
    inst = h.start("a-changed")
    h.advance(0)
    before = full_journal(h.store, inst.id, 1)
    version["v"] = 2
    h.run_until_idle()  # the sleep is over; call 2 was "b" on... no: it is new, so "c" runs
    assert inst.status().output == 3
    inst2 = h.start("a-changed")
    version["v"] = 1
    h.run_until_idle()

    @wf("a-changed")
    async def reordered(event: Any, step: Any) -> Any:
        await step.sleep("nap", 60)  # now first: the journal has step "a" there
        return 0

    h2 = Harness(changed)
    inst3 = h2.start("a-changed")
    h2.advance(0)
    journal = full_journal(h2.store, inst3.id, 1)
    h2.env.registry = type(h2.env.registry)([reordered])
    h2.run_until_idle()
    st_ = inst3.status()
    assert st_.status == "errored" and st_.error["name"] == "NonDeterminismError"
    assert "step 'a'" in st_.error["message"]
    assert full_journal(h2.store, inst3.id, 1) == journal  # the journal untouched
    assert before and inst2.status().output == 2
    assert issubclass(NonDeterminismError, Exception)


def test_suspends_once_every_branch_waits_and_wakes_for_the_earliest() -> None:
    @wf("a-waits")
    async def waits(event: Any, step: Any) -> Any:
        async def later(name: str, wait: str) -> str:
            await step.sleep(name, wait)
            return name

        return await asyncio.gather(later("one", "1 hour"), later("two", "2 hours"))

    h = Harness(waits)
    inst = h.start("a-waits")
    h.advance(0)
    assert h.store.get_instance(inst.id).wake_at == h.clock.now() + 3600
    h.advance("1 hour")
    assert inst.status().status == "waiting"
    h.advance("1 hour")
    assert inst.status().output == ["one", "two"]
    assert h.outcomes["suspended"] == 2 and h.outcomes["completed"] == 1


def test_an_event_for_either_waiting_branch_wakes_the_run() -> None:
    @wf("a-events")
    async def events(event: Any, step: Any) -> Any:
        a, b = await asyncio.gather(
            step.wait_for_event("wait a", "a", timeout="1 day"),
            step.wait_for_event("wait b", "b", timeout="1 day"),
        )
        return [a.payload, b.payload]

    h = Harness(events)
    inst = h.start("a-events")
    h.advance(0)
    inst.send_event("b", {"n": 2})
    h.advance(0)
    assert inst.status().status == "waiting"
    inst.send_event("a", {"n": 1})
    h.advance(0)
    assert inst.status().output == [{"n": 1}, {"n": 2}]


def test_a_failed_branch_keeps_its_siblings_results() -> None:
    runs: list[str] = []

    def boom() -> None:
        raise TypeError("bad input")

    @wf("a-sibling")
    async def sibling(event: Any, step: Any) -> Any:
        outcomes = await asyncio.gather(
            step.do("fails", boom, config={"retries": {"limit": 0}}),
            step.do("works", lambda: runs.append("works") or "ok"),
            return_exceptions=True,
        )
        await step.sleep("nap", 60)
        caught = []
        try:
            await step.do("fails", boom, config={"retries": {"limit": 0}})
        except TypeError as exc:  # Cloudflare code catches the original class
            caught.append(isinstance(exc, StepFailedError))
        return [type(outcomes[0]).__name__, isinstance(outcomes[0], TypeError), outcomes[1], caught]

    h = Harness(sibling)
    inst = h.start("a-sibling")
    h.run_until_idle()
    assert inst.status().output == ["TypeError", True, "ok", [True]]  # it reads as the original
    assert runs == ["works"]


def test_a_failed_step_raises_the_same_class_on_replay() -> None:
    @wf("a-replayed-failure")
    async def replayed(event: Any, step: Any) -> Any:
        names = []
        for _ in range(2):
            try:
                await step.do("parse", lambda: int("x"), config={"retries": {"limit": 0}})
            except ValueError as exc:
                names.append(type(exc).__name__)
            await step.sleep("between", 60)  # the second round replays the first failure
        return names

    h = Harness(replayed)
    inst = h.start("a-replayed-failure")
    h.run_until_idle()
    assert inst.status().output == ["ValueError", "ValueError"]


def test_timers_and_threads_in_workflow_code_get_a_clear_error() -> None:
    @wf("a-timer")
    async def timer(event: Any, step: Any) -> Any:
        await asyncio.sleep(0)  # a bare yield is fine
        await asyncio.sleep(1)

    @wf("s-thread")
    def thread(event: Any, step: Any) -> Any:
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(step.do, "x", lambda: 1).result()

    @wf("a-stuck")
    async def stuck(event: Any, step: Any) -> Any:
        await asyncio.Event().wait()

    h = Harness(timer, thread, stuck)
    a, b, c = h.start("a-timer"), h.start("s-thread"), h.start("a-stuck")
    h.run_until_idle()
    assert a.status().error["name"] == "WorkflowCodeError" and "step.sleep" in a.status().error["message"]
    assert "thread other than the workflow's" in b.status().error["message"]
    assert c.status().error["name"] == "WorkflowCodeError" and "blocked" in c.status().error["message"]
    assert issubclass(WorkflowCodeError, Exception)


def test_attempt_timeouts_work_off_the_main_thread() -> None:
    release, finished = threading.Event(), []

    def slow_sync() -> None:
        release.wait(30)
        finished.append("sync")

    async def slow_async() -> None:
        await asyncio.sleep(30)
        finished.append("async")

    @wf("a-timeouts")
    async def timeouts(event: Any, step: Any) -> Any:
        cfg = {"retries": {"limit": 0}, "timeout": 0.2}
        errors = []
        for name, fn in (("sync", slow_sync), ("async", slow_async)):
            try:
                await step.do(name, fn, config=cfg)
            except StepFailedError as exc:
                errors.append(exc.error_type)
        return errors

    h = Harness(timeouts)
    inst = h.start("a-timeouts")
    h.run_until_idle()
    assert inst.status().output == ["StepTimeoutError", "StepTimeoutError"]
    assert finished == []  # neither body ran to its end: the run did not wait for them
    release.set()


def test_dag_dependencies_by_name_run_once_and_concurrently() -> None:
    runs: list[str] = []
    barrier = threading.Barrier(2, timeout=10)

    @wf("a-dag")
    async def dag(event: Any, step: Any) -> Any:
        @step.do()
        def dep_1() -> str:
            barrier.wait()  # only completes if dep_2 runs at the same time
            runs.append("dep_1")
            return "one"

        @step.do("dep two", config={"retries": {"limit": 2, "delay": 0}})
        async def dep_2(ctx: Any) -> str:
            await asyncio.to_thread(barrier.wait)
            runs.append("dep_2")
            return f"two@{ctx['attempt']}/{ctx['step']['name']}/{ctx['config']['retries']['limit']}"

        @step.do(concurrent=True)
        async def both(dep_1: str, dep_2: str) -> str:
            return f"{dep_1}+{dep_2}"

        @step.do("again", depends=[dep_1, dep_2])
        def positional(a: str, b: str) -> list[str]:
            return [a, b]

        first = await both()
        pos = await positional()
        return [first, pos, await both()]  # already done: its result, no second run

    h = Harness(dag)
    inst = h.start("a-dag")
    h.run_until_idle()
    assert inst.status().output == ["one+two@1/dep two/2", ["one", "two@1/dep two/2"], "one+two@1/dep two/2"]
    assert sorted(runs) == ["dep_1", "dep_2"]
    names = [e.name for e in full_journal(h.store, inst.id, 1)]
    assert sorted(names) == ["again", "both", "dep two", "dep_1"]


def test_entrypoint_classes_register_by_name_and_see_the_event_both_ways() -> None:
    class AsyncTestStarter(WorkflowEntrypoint):
        async def run(self, event: Any, step: Any) -> Any:
            got = await step.do(lambda: "unnamed")  # the name defaults to the function's
            return {
                "payload": event["payload"],
                "same": event.payload == event["payload"],
                "id": event["instanceId"],
                "workflow": event["workflowName"],
                "env": "PATH" in self.env,
                "got": got,
            }

    class Named(WorkflowEntrypoint):
        name = "async-test-named"

        def run(self, event: Any, step: Any) -> Any:  # a sync run works too
            return step.do("x", lambda: "sync")

    @workflow("async-test-renamed")
    class Renamed(WorkflowEntrypoint):
        async def run(self, event: Any, step: Any) -> Any:
            return "renamed"

    assert REGISTRY.get("AsyncTestStarter").fn is AsyncTestStarter
    assert "Renamed" not in REGISTRY.names() and Renamed.name == "async-test-renamed"
    h = Harness(REGISTRY.get("AsyncTestStarter"), Named, Renamed)  # a class, or its Workflow
    a = h.start("AsyncTestStarter", {"k": 1}, id="cls-1")
    b, c = h.start("async-test-named"), h.start("async-test-renamed")
    h.run_until_idle()
    out = a.status().output
    assert out == {
        "payload": {"k": 1},
        "same": True,
        "id": "cls-1",
        "workflow": "AsyncTestStarter",
        "env": True,
        "got": "unnamed",
    }
    assert b.status().output == "sync" and c.status().output == "renamed"
    [entry] = full_journal(h.store, a.id, 1)
    assert entry.name == "<lambda>" and entry.status is EntryStatus.COMPLETE


def test_parallel_steps_cost_one_write_each_and_no_reads() -> None:
    @wf("a-fan")
    async def fan(event: Any, step: Any) -> Any:
        return sum(await asyncio.gather(*(step.do(f"s{i}", lambda i=i: i) for i in range(10))))

    h = Harness(fan)
    inst = h.start("a-fan")
    h.store.calls = 0
    h.run_until_idle()
    calls = h.store.calls
    assert inst.status().output == 45
    assert calls == 12  # the lease, ten step writes, the release: nothing read for a new instance
    assert h.store.get_instance(inst.id).status is Status.COMPLETE


def test_a_concurrent_steps_idempotency_key_survives_a_crash_that_renumbers_it() -> None:
    keys: list[str] = []
    y_done = threading.Event()

    def x(ctx: Any) -> str:
        keys.append(ctx.idempotency_key)
        if len(keys) == 1:
            assert y_done.wait(10)
            time.sleep(0.2)  # y's entry is written meanwhile: x's next storage position moves
            raise SystemExit("the invocation dies during x")
        return "x"

    def y() -> str:
        y_done.set()
        return "y"

    @wf("a-key")
    async def flow(event: Any, step: Any) -> Any:
        return await asyncio.gather(step.do("x", x), step.do("y", y))

    h = Harness(flow)
    inst = h.start("a-key")
    with pytest.raises(SystemExit):
        h.run_due()
    h.run_until_idle()  # the sweeper finds the expired lease; the next invocation runs x again
    assert inst.status().output == ["x", "y"]
    assert len(keys) == 2 and keys[0] == keys[1] and keys[0].endswith(":0")
    [x_entry] = [e for e in full_journal(h.store, inst.id, 1) if e.name == "x"]
    assert x_entry.seq == 2  # renumbered, its identity kept


def test_a_pause_during_parallel_bodies_records_them_before_it_suspends() -> None:
    runs: list[str] = []
    started = threading.Event()

    def slow() -> str:
        started.set()
        time.sleep(0.3)
        runs.append("slow")
        return "slow"

    def pause_now() -> str:
        assert started.wait(10)
        h.client.get(inst.id).pause()
        return "paused it"

    @wf("a-pause")
    async def flow(event: Any, step: Any) -> Any:
        async def then_more() -> str:
            await step.do("pause it", pause_now)
            return await step.do("after", lambda: "after")  # the pause stops the run here

        return await asyncio.gather(step.do("slow", slow), then_more())

    h = Harness(flow, settings=Settings(control_check_seconds=0))
    inst = h.start("a-pause")
    h.advance(0)
    assert inst.status().status == "paused"
    names = {e.name: e.status for e in full_journal(h.store, inst.id, 1)}
    assert names == {"slow": EntryStatus.COMPLETE, "pause it": EntryStatus.COMPLETE}  # recorded, not lost
    inst.resume()
    h.run_until_idle()
    assert inst.status().output == ["slow", "after"]
    assert runs == ["slow"]  # not run again after the resume


def test_steps_that_depend_on_each_other_get_a_clear_error() -> None:
    @wf("a-cycle")
    async def cycle(event: Any, step: Any) -> Any:
        @step.do()
        async def first(second: Any) -> int:
            return 1

        @step.do()
        async def second(first: Any) -> int:
            return 2

        return await first()

    h = Harness(cycle)
    inst = h.start("a-cycle")
    h.run_until_idle()
    error = inst.status().error
    assert error["name"] == "InvalidConfigError" and "depends on itself" in error["message"]


def test_large_results_and_at_most_once_steps_in_an_async_run() -> None:
    crashes = iter([True])

    def once() -> str:
        if next(crashes, False):
            raise SystemExit("the invocation dies during the attempt")
        return "never reached"

    @wf("a-large")
    async def large(event: Any, step: Any) -> Any:
        big, small = await asyncio.gather(step.do("big", lambda: "x" * 500_000), step.do("small", lambda: 1))
        await step.sleep("nap", 60)  # the replay reads the big result back from the blob store
        try:
            await step.do("once", once, config={"at_most_once": True, "retries": {"limit": 0}})
        except StepFailedError as exc:
            return [len(big), small, exc.error_type, exc.attempts]
        return "unreachable"

    h = Harness(large)
    inst = h.start("a-large")
    with pytest.raises(SystemExit):
        h.run_until_idle()
    h.run_until_idle()  # the sweeper finds the crashed invocation's expired lease
    # An at-most-once attempt that began and never ended is not run again: it counts as a failed one.
    assert inst.status().output == [500_000, 1, "InvocationCrashedError", 1]
    [big] = [e for e in full_journal(h.store, inst.id, 1) if e.name == "big"]
    assert big.result is None and big.result_ref is not None  # in the blob store, not the item
