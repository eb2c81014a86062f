"""Adversarial probes of the async core: identity under odd task shapes, bodies that misbehave, engine
failures and controls while several bodies run, and the invariants every run must keep: each result
at its own call, a recorded body never run again, each step completed once in the journal."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import io
import threading
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from framework.api.registry import Workflow
from framework.backends.environment import Settings
from framework.backends.store import full_journal
from framework.core.faults import injected
from framework.core.logs import logger
from framework.core.records import EntryStatus
from framework.engine.invocation import Outcome
from tests.unit.harness import Harness


def wf(name: str) -> Any:
    def register(fn: Any) -> Workflow:
        return Workflow(name=name, fn=fn)

    return register


def completions(h: Harness) -> Counter[str]:
    """Count the COMPLETE writes of each op id made through the store from now on."""
    counts: Counter[str] = Counter()
    real = h.store.inner.write_entry

    def write_entry(instance_id: str, run_key: Any, entry: Any) -> None:
        real(instance_id, run_key, entry)
        if entry.status is EntryStatus.COMPLETE:
            counts[entry.op_id] += 1

    h.store.inner.write_entry = write_entry
    return counts


def assert_once(counts: Counter[str]) -> None:
    assert counts and set(counts.values()) == {1}, counts


def throttled() -> ClientError:
    return ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "PutItem")


# -- identity ---------------------------------------------------------------------------------------
def test_tasks_sharing_an_explicit_context_keep_their_own_identities() -> None:
    order = iter([0.2, 0.0])  # first run: the first task's body is slower; the replay is instant
    runs: list[str] = []

    def body(tag: str, slow: float) -> str:
        time.sleep(slow)
        runs.append(tag)
        return tag

    @wf("adv-context")
    async def flow(event: Any, step: Any) -> Any:
        shared = contextvars.copy_context()
        slow = next(order, 0.0)

        async def branch(tag: str, pause: float) -> list[str]:
            a = await step.do("fetch", lambda: body(f"{tag}1", pause))
            b = await step.do("fetch", lambda: body(f"{tag}2", 0.0))
            return [a, b]

        loop = asyncio.get_running_loop()
        t1 = loop.create_task(branch("a", slow), context=shared)
        t2 = loop.create_task(branch("b", 0.0), context=shared)
        out = [await t1, await t2]
        await step.sleep("nap", 60)
        return out

    h = Harness(flow)
    inst = h.start("adv-context")
    h.run_until_idle()
    assert inst.status().output == [["a1", "a2"], ["b1", "b2"]]
    assert sorted(runs) == ["a1", "a2", "b1", "b2"]


def test_deep_nesting_of_gathers_and_tasks_replays_every_result_at_its_call() -> None:
    runs: Counter[str] = Counter()

    def leaf(path: str) -> str:
        time.sleep(0.001 * (hash(path) % 5))  # finish in a scrambled order
        runs[path] += 1
        return path

    @wf("adv-deep")
    async def flow(event: Any, step: Any) -> Any:
        async def tree(path: str, depth: int) -> Any:
            if depth == 0:
                return await step.do("leaf", lambda: leaf(path))
            if depth % 2:
                kids = [tree(f"{path}/{i}", depth - 1) for i in range(3)]
                return await asyncio.gather(*kids)
            tasks = [asyncio.create_task(tree(f"{path}/{i}", depth - 1)) for i in range(2)]
            mine = await step.do("leaf", lambda: leaf(path))
            return [mine, *[await t for t in tasks]]

        first = await tree("r", 4)
        await step.sleep("nap", 60)
        return [first, await tree("s", 1)]

    h = Harness(flow)
    counts = completions(h)
    inst = h.start("adv-deep")
    h.advance(0)
    h.run_until_idle()
    out = inst.status().output
    assert out[1] == ["s/0", "s/1", "s/2"]

    def paths(value: Any) -> list[str]:
        return [value] if isinstance(value, str) else [p for v in value for p in paths(v)]

    assert sorted(paths(out[0])) == sorted(p for p in runs if p.startswith("r"))
    assert set(runs.values()) == {1}
    assert_once(counts)


def test_shield_wait_as_completed_and_task_groups_are_deterministic() -> None:
    runs: Counter[str] = Counter()

    def body(tag: str, slow: float = 0.0) -> str:
        time.sleep(slow)
        runs[tag] += 1
        return tag

    @wf("adv-asyncio")
    async def flow(event: Any, step: Any) -> Any:
        shielded = await asyncio.shield(step.do("shielded", lambda: body("shielded")))
        tasks = [
            asyncio.create_task(step.do(f"w{i}", lambda i=i: body(f"w{i}", 0.01 * (3 - i)))) for i in range(3)
        ]
        done, pending = await asyncio.wait(tasks)
        waited = sorted(t.result() for t in done)
        seen = []
        for next_done in asyncio.as_completed(
            [step.do(f"c{i}", lambda i=i: body(f"c{i}")) for i in range(3)]
        ):
            seen.append(await next_done)
        async with asyncio.TaskGroup() as group:
            grouped = [group.create_task(step.do(f"g{i}", lambda i=i: body(f"g{i}"))) for i in range(3)]
        await step.sleep("nap", 60)
        return [shielded, waited, sorted(seen), [t.result() for t in grouped], len(pending)]

    h = Harness(flow)
    counts = completions(h)
    inst = h.start("adv-asyncio")
    h.run_until_idle()
    assert inst.status().output == [
        "shielded",
        ["w0", "w1", "w2"],
        ["c0", "c1", "c2"],
        ["g0", "g1", "g2"],
        0,
    ]
    assert set(runs.values()) == {1} and len(runs) == 10
    assert_once(counts)


def test_a_decorated_step_called_from_two_branches_runs_once() -> None:
    runs: list[str] = []

    @wf("adv-shared-dep")
    async def flow(event: Any, step: Any) -> Any:
        @step.do()
        def shared() -> str:
            time.sleep(0.05)
            runs.append("shared")
            return "s"

        async def branch(tag: str) -> str:
            value = await shared()
            return await step.do("use", lambda: f"{tag}:{value}")

        out = await asyncio.gather(branch("a"), branch("b"))
        await step.sleep("nap", 60)
        return out

    h = Harness(flow)
    counts = completions(h)
    inst = h.start("adv-shared-dep")
    h.run_until_idle()
    assert inst.status().output == ["a:s", "b:s"]
    assert runs == ["shared"]
    assert_once(counts)


def test_a_step_coroutine_never_awaited_runs_nothing_and_records_nothing() -> None:
    runs: list[str] = []

    @wf("adv-unawaited")
    async def flow(event: Any, step: Any) -> Any:
        step.do("forgotten", lambda: runs.append("forgotten"))
        return await step.do("kept", lambda: "kept")

    h = Harness(flow)
    inst = h.start("adv-unawaited")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the user's bug, and Python says so
        h.run_until_idle()
        gc.collect()
    assert inst.status().output == "kept" and runs == []
    assert [e.name for e in full_journal(h.store, inst.id, 1)] == ["kept"]


# -- bodies that misbehave ----------------------------------------------------------------------------
def test_a_body_that_raises_cancelled_error_is_a_failed_attempt() -> None:
    attempts: Counter[str] = Counter()

    async def async_cancelled() -> str:
        attempts["async"] += 1
        if attempts["async"] == 1:
            raise asyncio.CancelledError  # an HTTP client's cancelled request, say
        return "async"

    def thread_cancelled() -> str:
        attempts["thread"] += 1
        if attempts["thread"] == 1:
            raise asyncio.CancelledError
        return "thread"

    @wf("adv-body-cancelled")
    async def flow(event: Any, step: Any) -> Any:
        cfg = {"retries": {"limit": 1, "delay": 0}}
        return await asyncio.gather(
            step.do("a", async_cancelled, config=cfg), step.do("t", thread_cancelled, config=cfg)
        )

    h = Harness(flow)
    inst = h.start("adv-body-cancelled")
    h.run_until_idle()
    assert inst.status().output == ["async", "thread"]
    assert attempts == {"async": 2, "thread": 2}


def test_more_parallel_steps_than_threads_all_run_once() -> None:
    runs: Counter[int] = Counter()
    lock = threading.Lock()

    def body(i: int) -> int:
        with lock:
            runs[i] += 1
        return i

    @wf("adv-500")
    async def flow(event: Any, step: Any) -> Any:
        values = await asyncio.gather(*(step.do("s", lambda i=i: body(i)) for i in range(500)))
        await step.sleep("nap", 60)
        return values == list(range(500))

    h = Harness(flow)
    counts = completions(h)
    inst = h.start("adv-500")
    h.run_until_idle()
    assert inst.status().output is True
    assert len(runs) == 500 and set(runs.values()) == {1}
    assert len(counts) == 500 and set(counts.values()) == {1}


def _queued_flow(name: str, runs: Counter[int], starts: list[float] | None = None) -> Workflow:
    """640 steps of 0.1 s each, a timeout of 0.5 s, no retries: on a pool of 64 threads the last
    rounds wait longer than their timeout before they start."""
    lock = threading.Lock()

    def body(i: int) -> int:
        if starts is not None:
            starts.append(time.monotonic())
        time.sleep(0.1)
        with lock:
            runs[i] += 1
        return i

    async def flow(event: Any, step: Any) -> Any:
        cfg = {"timeout": 0.5, "retries": {"limit": 0}}
        outcomes = await asyncio.gather(
            *(step.do("s", lambda i=i: body(i), config=cfg) for i in range(640)), return_exceptions=True
        )
        return [o if isinstance(o, int) else None for o in outcomes]

    return Workflow(name=name, fn=flow)


def test_a_body_still_queued_when_the_run_ends_never_starts() -> None:
    starts: list[float] = []

    def body(i: int) -> int:
        starts.append(time.monotonic())
        time.sleep(0.1)
        return i

    @wf("adv-queued-cancel")
    async def flow(event: Any, step: Any) -> Any:
        tasks = [asyncio.ensure_future(step.do("s", lambda i=i: body(i))) for i in range(640)]
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        return len(done) > 0  # the run ends here: 576 or so bodies are still queued for a thread

    h = Harness(flow)
    inst = h.start("adv-queued-cancel")
    h.run_until_idle()
    ended = time.monotonic()
    time.sleep(0.5)  # a body left queued would have started by now
    assert inst.status().output is True
    assert len(starts) < 640 and max(starts) <= ended  # cancelled in the queue: none starts after the end


def test_a_body_queued_behind_a_full_pool_is_not_timed_out_before_it_starts() -> None:
    runs: Counter[int] = Counter()
    h = Harness(_queued_flow("adv-queued", runs))
    inst = h.start("adv-queued")
    h.run_until_idle()
    assert inst.status().output == list(range(640))


# -- engine failures, crashes and controls while bodies run ------------------------------------------
def test_a_throttled_write_among_concurrent_steps_hands_over_and_records_no_garbage() -> None:
    runs: Counter[str] = Counter()
    failures = iter([True])

    def body(tag: str, slow: float) -> str:
        time.sleep(slow)
        runs[tag] += 1
        return tag

    @wf("adv-throttled")
    async def flow(event: Any, step: Any) -> Any:
        return await asyncio.gather(
            *(step.do(f"s{i}", lambda i=i: body(f"s{i}", 0.02 * i)) for i in range(4))
        )

    h = Harness(flow)
    real = h.store.inner.write_entry
    written: list[Any] = []

    def write_entry(instance_id: str, run_key: Any, entry: Any) -> None:
        if entry.name == "s1" and next(failures, False):
            raise throttled()
        real(instance_id, run_key, entry)
        written.append(entry)

    h.store.inner.write_entry = write_entry
    inst = h.start("adv-throttled")
    h.run_until_idle()
    assert inst.status().output == ["s0", "s1", "s2", "s3"]
    assert h.outcomes[Outcome.RETRYING] == 1
    assert runs["s0"] == 1  # recorded before the failure: never run again
    completes = Counter(e.op_id for e in written if e.status is EntryStatus.COMPLETE)
    assert set(completes.values()) == {1}
    journal = full_journal(h.store, inst.id, 1)
    assert sorted(e.name for e in journal) == ["s0", "s1", "s2", "s3"]
    assert all(e.status is EntryStatus.COMPLETE and e.name in (e.result or "") for e in journal)


@pytest.mark.parametrize("point_name", ["journal.before_write", "journal.after_write"])
def test_a_crash_at_a_journal_write_in_a_gather_never_reruns_what_was_recorded(point_name: str) -> None:
    runs: Counter[str] = Counter()
    crashes = iter([True])

    def crash(where: str, info: dict[str, Any]) -> None:
        if where == point_name and info["name"] == "s2" and next(crashes, False):
            raise SystemExit("the invocation dies")

    def body(tag: str, slow: float) -> str:
        time.sleep(slow)
        runs[tag] += 1
        return tag

    @wf("adv-crash")
    async def flow(event: Any, step: Any) -> Any:
        return await asyncio.gather(
            *(step.do(f"s{i}", lambda i=i: body(f"s{i}", 0.03 * i)) for i in range(4))
        )

    h = Harness(flow)
    inst = h.start("adv-crash")
    with injected(crash), pytest.raises(SystemExit):
        h.run_due()
    h.run_until_idle()
    assert inst.status().output == ["s0", "s1", "s2", "s3"]
    assert runs["s0"] == runs["s1"] == 1
    assert runs["s2"] == (2 if point_name == "journal.before_write" else 1)
    names = Counter(e.name for e in full_journal(h.store, inst.id, 1))
    assert names == {f"s{i}": 1 for i in range(4)}


@pytest.mark.parametrize("control", ["terminate", "restart"])
def test_terminate_or_restart_from_a_body_while_siblings_run(control: str) -> None:
    runs: Counter[str] = Counter()
    started = threading.Event()
    asked = iter([True])

    def slow() -> str:
        started.set()
        time.sleep(0.2)
        runs["slow"] += 1
        return "slow"

    def control_now() -> str:
        runs["control"] += 1
        if next(asked, False):
            assert started.wait(10)
            getattr(h.client.get(inst.id), control)()
        return "asked"

    @wf("adv-control")
    async def flow(event: Any, step: Any) -> Any:
        async def then_more() -> str:
            await step.do("control", control_now)
            return await step.do("after", lambda: "after")

        return await asyncio.gather(step.do("slow", slow), then_more())

    h = Harness(flow, settings=Settings(control_check_seconds=0))
    inst = h.start("adv-control")
    h.run_until_idle()
    assert h.outcomes[Outcome.STOPPED] == 1
    if control == "terminate":
        assert inst.status().status == "terminated"
        return
    assert inst.status().output == ["slow", "after"]
    run2 = full_journal(h.store, inst.id, 2)
    assert Counter(e.name for e in run2) == {"slow": 1, "control": 1, "after": 1}
    assert all(e.status is EntryStatus.COMPLETE for e in run2)


def test_the_invocation_deadline_during_parallel_bodies_cuts_them_and_hands_over() -> None:
    runs: Counter[str] = Counter()
    lock = threading.Lock()
    release, finished = threading.Event(), []

    def body(tag: str, slow: bool) -> str:
        with lock:
            runs[tag] += 1
            first = runs[tag] == 1
        if slow and first:
            release.wait(30)
            finished.append(tag)
        return tag

    @wf("adv-deadline")
    async def flow(event: Any, step: Any) -> Any:
        return await asyncio.gather(
            step.do("fast", lambda: body("fast", False)),
            step.do("slow1", lambda: body("slow1", True)),
            step.do("slow2", lambda: body("slow2", True)),
        )

    # time_left 0.6 s, margin 0.4 s: each attempt gets 0.4 s of the invocation, then is cut.
    h = Harness(flow, settings=Settings(time_margin=0.4), invocation_seconds=0.6)
    inst = h.start("adv-deadline")
    h.run_until_idle()
    assert inst.status().output == ["fast", "slow1", "slow2"]
    assert runs == {"fast": 1, "slow1": 2, "slow2": 2}
    assert finished == []  # the cut did not wait for the first, blocked bodies
    release.set()
    journal = Counter((e.name, e.status) for e in full_journal(h.store, inst.id, 1))
    assert journal == {(name, EntryStatus.COMPLETE): 1 for name in ("fast", "slow1", "slow2")}


def test_a_failing_branch_leaves_its_siblings_running_and_recorded() -> None:
    runs: Counter[str] = Counter()

    def slow() -> str:
        time.sleep(0.1)
        runs["slow"] += 1
        return "slow"

    def boom() -> None:
        raise ValueError("no")

    @wf("adv-sibling-fail")
    async def flow(event: Any, step: Any) -> Any:
        slow_task = asyncio.ensure_future(step.do("slow", slow))
        try:
            await asyncio.gather(slow_task, step.do("boom", boom, config={"retries": {"limit": 0}}))
        except ValueError:
            pass
        await step.sleep("nap", 60)  # the slow body is still running: it is recorded before suspending
        return await slow_task

    h = Harness(flow)
    counts = completions(h)
    inst = h.start("adv-sibling-fail")
    h.run_until_idle()
    assert inst.status().output == "slow"
    assert runs["slow"] == 1
    assert_once(counts)


def test_a_workflow_that_swallows_cancellation_and_calls_on_records_nothing_more() -> None:
    runs: list[str] = []

    @wf("adv-stubborn")
    async def flow(event: Any, step: Any) -> Any:
        async def stubborn() -> str:
            for _ in range(3):
                try:
                    await step.sleep("long", "2 hours")
                    return "slept"
                except BaseException:
                    try:
                        await step.do("sneak", lambda: runs.append("sneak") or "sneak")
                    except BaseException:
                        continue
            return "gave up"

        return await asyncio.gather(step.sleep("short", "1 hour"), stubborn())

    h = Harness(flow)
    inst = h.start("adv-stubborn")
    h.advance(0)
    assert inst.status().status == "waiting"
    assert {e.name for e in full_journal(h.store, inst.id, 1)} <= {"short", "long"}
    h.run_until_idle()
    assert inst.status().output == [None, "slept"]
    assert runs == []


# -- waits ------------------------------------------------------------------------------------------
def test_an_event_wait_and_a_sleep_in_parallel_wake_for_either() -> None:
    @wf("adv-event-sleep")
    async def flow(event: Any, step: Any) -> Any:
        got, _ = await asyncio.gather(
            step.wait_for_event("approval", "go", timeout="1 day"), step.sleep("nap", "1 hour")
        )
        return got.payload

    h = Harness(flow)
    inst = h.start("adv-event-sleep")
    h.advance(0)
    assert h.store.get_instance(inst.id).wake_at == h.clock.now() + 3600
    h.advance("10 minutes")
    inst.send_event("go", {"n": 1})
    h.advance(0)
    assert inst.status().status == "waiting"  # the event is taken; the sleep goes on
    h.advance("50 minutes")
    assert inst.status().output == {"n": 1}
    names = Counter(e.name for e in full_journal(h.store, inst.id, 1))
    assert names == {"approval": 1, "nap": 1}


def test_history_lists_concurrent_steps_once_each_in_storage_order() -> None:
    @wf("adv-history")
    async def flow(event: Any, step: Any) -> Any:
        async def slow(tag: str, pause: float) -> str:
            return await step.do(tag, lambda: time.sleep(pause) or tag)

        await asyncio.gather(slow("a", 0.1), slow("b", 0.0), step.sleep("nap", 30))
        return await step.do("last", lambda: "last")

    h = Harness(flow)
    inst = h.start("adv-history")
    h.run_until_idle()
    names = [e.name for e in inst.history() if getattr(e, "kind", "event") != "event"]
    assert sorted(names) == ["a", "b", "last", "nap"]
    assert names[-1] == "last"


# -- logs ------------------------------------------------------------------------------------------
@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    old_level = logger.log_level
    old_stream = logger.registered_handler.setStream(stream)  # type: ignore[attr-defined]
    logger.setLevel("DEBUG")
    try:
        yield stream
    finally:
        logger.setLevel(old_level)
        logger.registered_handler.setStream(old_stream)  # type: ignore[attr-defined]


def test_concurrent_steps_log_no_params_and_no_results(log_stream: io.StringIO) -> None:
    secret, result = "MARK-param-7a1e", "MARK-result-9c4d"

    @wf("adv-logs")
    async def flow(event: Any, step: Any) -> Any:
        async def branch(i: int) -> Any:
            value = await step.do("fetch", lambda: {"token": result, "p": event.payload["secret"]})
            await step.sleep("nap", 0.5)
            got = await step.wait_for_event("go", "go", timeout=60) if i == 0 else None
            return [value, got.payload if got else None]

        return await asyncio.gather(*(branch(i) for i in range(3)))

    h = Harness(flow)
    inst = h.start("adv-logs", {"secret": secret})
    h.advance(0)
    inst.send_event("go", {"m": secret})
    h.run_until_idle()
    assert inst.status().status == "complete"
    text = log_stream.getvalue()
    assert "step completed" in text
    assert secret not in text and result not in text
