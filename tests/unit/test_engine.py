"""Replay semantics on the in-memory store: steps, retries, sleeps, replay, crashes, duplicates."""

from __future__ import annotations

import dataclasses
import itertools
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel

from framework import (
    NonRetryableError,
    StepContext,
    StepFailedError,
    Workflow,
)
from framework.backends.environment import Settings
from framework.backends.store import full_journal
from framework.core.records import EntryStatus, Status
from framework.engine.invocation import Outcome, WakeMessage
from tests.unit.harness import Harness, fail_once, journal_items


def wf(name: str):
    def register(fn: Any) -> Workflow:
        return Workflow(name=name, fn=fn)

    return register


class Point(BaseModel):
    x: int
    y: int


@dataclasses.dataclass
class Pair:
    left: str
    right: list[int]


def test_chain_runs_in_one_invocation_and_completes() -> None:
    runs: list[int] = []

    @wf("chain")
    def chain(event: Any, step: Any) -> Any:
        total = 0
        for i in range(5):
            total += step.do(f"s{i}", lambda i=i: runs.append(i) or i)
        return {"total": total, "payload": event.payload, "id": event.instance_id}

    h = Harness(chain)
    inst = h.start("chain", {"a": 1}, id="c1")
    h.run_until_idle()
    st = inst.status()
    assert st.status == "complete"
    assert st.output == {"total": 10, "payload": {"a": 1}, "id": "c1"}
    assert st.error is None
    assert runs == [0, 1, 2, 3, 4]
    assert h.outcomes == {Outcome.COMPLETED: 1}
    assert len(h.queue.sent) == 1  # only the start


def test_recorded_steps_never_rerun_on_replay() -> None:
    runs: list[str] = []

    @wf("replay")
    def replay(event: Any, step: Any) -> Any:
        a = step.do("a", lambda: runs.append("a") or 1)
        step.sleep("nap", "10 seconds")
        b = step.do("b", lambda: runs.append("b") or 2)
        return a + b

    h = Harness(replay)
    inst = h.start("replay")
    h.run_due()
    assert inst.status().status == "waiting"
    assert runs == ["a"]
    h.advance("10 seconds")
    assert inst.status().output == 3
    assert runs == ["a", "b"]


def test_decorator_form_and_step_context() -> None:
    seen: list[StepContext] = []

    @wf("deco")
    def deco(event: Any, step: Any) -> Any:
        @step.do("with ctx")
        def with_ctx(ctx: StepContext) -> str:
            seen.append(ctx)
            return ctx.idempotency_key

        @step.do("no ctx")
        def no_ctx(optional: int = 3) -> int:
            return optional

        return [with_ctx(), with_ctx(), no_ctx()]

    h = Harness(deco)
    inst = h.start("deco", id="d1")
    h.run_until_idle()
    out = inst.status().output
    assert out[2] == 3
    assert out[0] != out[1]  # one key per step call
    assert [c.count for c in seen] == [1, 2]
    assert all(c.attempt == 1 and c.instance_id == "d1" and c.name == "with ctx" for c in seen)


def test_results_roundtrip_same_on_first_run_and_replay() -> None:
    firsts: list[Any] = []

    @wf("types")
    def types(event: Any, step: Any) -> Any:
        p = step.do("model", lambda: Point(x=1, y=2))
        d = step.do("dataclass", lambda: Pair("l", [1, 2]))
        t = step.do("tuple", lambda: (1, 2))
        firsts.append((p, d, t))
        step.sleep("nap", 5)
        return {"x": p.x, "right": d.right, "t": t}

    h = Harness(types)
    inst = h.start("types")
    h.run_until_idle()
    (p1, d1, t1), (p2, d2, t2) = firsts
    assert isinstance(p1, Point) and p1 == p2 == Point(x=1, y=2)
    assert isinstance(d1, Pair) and d1 == d2
    assert t1 == t2 == [1, 2]  # JSON has no tuple: the first run returns what replay will
    assert inst.status().output == {"x": 1, "right": [1, 2], "t": [1, 2]}


@pytest.mark.parametrize(
    ("backoff", "expected"),
    [("constant", [10, 10, 10]), ("linear", [10, 20, 30]), ("exponential", [10, 20, 40])],
)
def test_retry_backoff_kinds(backoff: str, expected: list[int]) -> None:
    attempts: list[float] = []

    @wf(f"backoff-{backoff}")
    def flaky(event: Any, step: Any) -> Any:
        def body() -> str:
            attempts.append(h.clock.now())
            if len(attempts) < 4:
                raise RuntimeError("not yet")
            return "ok"

        return step.do(
            "flaky", body, config={"retries": {"limit": 3, "delay": "10 seconds", "backoff": backoff}}
        )

    h = Harness(flaky)
    inst = h.start(f"backoff-{backoff}")
    h.run_until_idle()
    assert inst.status().output == "ok"
    gaps = [round(b - a) for a, b in itertools.pairwise(attempts)]
    assert gaps == expected
    history = inst.history()
    assert [a.error["name"] if a.error else None for a in history[0].attempts] == [
        "RuntimeError",
        "RuntimeError",
        "RuntimeError",
        None,
    ]


def test_retries_exhausted_raise_catchable_step_failed_error() -> None:
    @wf("exhaust")
    def exhaust(event: Any, step: Any) -> Any:
        try:
            step.do("bad", _raise(ValueError("nope")), config={"retries": {"limit": 2, "delay": 1}})
        except StepFailedError as exc:
            return {
                "caught": exc.description,
                "str": str(exc),
                "attempts": exc.attempts,
                "type": exc.error_type,
            }
        return "unreachable"

    h = Harness(exhaust)
    inst = h.start("exhaust")
    h.run_until_idle()
    out = inst.status().output
    assert out["attempts"] == 3
    assert out["type"] == "ValueError"
    assert "'bad'" in out["caught"] and "3 attempts" in out["caught"] and "ValueError: nope" in out["caught"]
    assert out["str"] == "nope"  # a built-in error reads as the original, as in Cloudflare


def test_uncaught_step_failure_errors_the_instance_and_replays_identically() -> None:
    @wf("uncaught")
    def uncaught(event: Any, step: Any) -> Any:
        step.do("bad", _raise(NonRetryableError("fatal")))

    h = Harness(uncaught)
    inst = h.start("uncaught")
    h.run_until_idle()
    st = inst.status()
    assert st.status == "errored"
    assert st.error == {
        "name": "StepFailedError",
        "message": "step 'bad' failed after 1 attempt: NonRetryableError: fatal",
    }
    assert inst.history()[0].status == EntryStatus.FAILED


def test_non_retryable_types_from_config_fail_at_once() -> None:
    calls: list[int] = []

    @wf("nonretry-types")
    def flow(event: Any, step: Any) -> Any:
        def body() -> None:
            calls.append(1)
            raise KeyError("k")

        step.do("s", body, config={"retries": {"limit": 5, "non_retryable": [KeyError]}})

    h = Harness(flow)
    h.start("nonretry-types")
    h.run_until_idle()
    assert calls == [1]


@pytest.mark.parametrize(
    ("error", "attempts"),
    [(ConnectionError("down"), 3), (TimeoutError("slow"), 3), (ValueError("bad"), 1), (KeyError("k"), 1)],
)
def test_retryable_types_retry_only_those(error: Exception, attempts: int) -> None:
    calls: list[int] = []

    @wf("retryable-types")
    def flow(event: Any, step: Any) -> Any:
        def body() -> None:
            calls.append(1)
            raise error

        retries = {"limit": 2, "delay": 1, "retryable": [ConnectionError, TimeoutError]}
        step.do("s", body, config={"retries": retries})

    h = Harness(flow)
    inst = h.start("retryable-types")
    h.run_until_idle()
    assert len(calls) == attempts
    assert inst.status().status == "errored"
    assert len(inst.history()[0].attempts) == attempts


def test_non_retryable_wins_over_retryable() -> None:
    calls: list[int] = []

    @wf("retryable-and-not")
    def flow(event: Any, step: Any) -> Any:
        def body() -> None:
            calls.append(1)
            raise ConnectionRefusedError("no")

        retries = {
            "limit": 2,
            "delay": 1,
            "retryable": [ConnectionError],
            "non_retryable": [ConnectionRefusedError],
        }
        step.do("s", body, config={"retries": retries})

    h = Harness(flow)
    h.start("retryable-and-not")
    h.run_until_idle()
    assert calls == [1]


def test_other_uncaught_errors_keep_their_class_name() -> None:
    @wf("plain-error")
    def flow(event: Any, step: Any) -> Any:
        step.do("ok", lambda: 1)
        raise LookupError("missing thing")

    h = Harness(flow)
    inst = h.start("plain-error")
    h.run_until_idle()
    assert inst.status().error == {"name": "LookupError", "message": "missing thing"}


def test_nondeterminism_is_detected_and_journal_untouched() -> None:
    version = {"v": 1}

    @wf("drift")
    def drift(event: Any, step: Any) -> Any:
        step.do("first", lambda: 1)
        if version["v"] == 2:
            step.do("inserted", lambda: 2)  # the journal recorded the sleep at this position
        step.sleep("nap", 60)
        return "done"

    h = Harness(drift)
    inst = h.start("drift")
    h.run_due()
    before = full_journal(h.store, inst.id, 1)
    version["v"] = 2  # a deploy changes the code while the instance sleeps
    h.run_until_idle()
    st = inst.status()
    assert st.status == "errored"
    assert st.error["name"] == "NonDeterminismError"
    assert "step 'inserted'" in st.error["message"] and "sleep 'nap'" in st.error["message"]
    assert full_journal(h.store, inst.id, 1) == before


def test_nondeterminism_cannot_be_swallowed() -> None:
    version = {"v": 1}

    @wf("swallow-nd")
    def flow(event: Any, step: Any) -> Any:
        step.do("a", lambda: 1)
        try:
            step.do("b" if version["v"] == 1 else "c", lambda: 1)
        except Exception:  # a careless user
            pass
        step.sleep("after", 60)
        return "finished anyway"

    h = Harness(flow)
    inst = h.start("swallow-nd")
    h.run_due()
    version["v"] = 2
    h.run_until_idle()
    st = inst.status()
    assert st.status == "errored"
    assert st.error["name"] == "NonDeterminismError"


def test_appending_steps_is_safe_for_instances_in_flight() -> None:
    version = {"v": 1}

    @wf("append")
    def flow(event: Any, step: Any) -> Any:
        step.do("a", lambda: 1)
        step.sleep("nap", 60)
        if version["v"] == 2:
            return step.do("new", lambda: "appended")
        return "old"

    h = Harness(flow)
    inst = h.start("append")
    h.run_due()
    version["v"] = 2
    h.run_until_idle()
    assert inst.status().output == "appended"


def test_sleep_until_and_past_times() -> None:
    @wf("until")
    def until(event: Any, step: Any) -> Any:
        step.sleep_until("past", datetime(2000, 1, 1, tzinfo=UTC))
        step.sleep_until("soon", event.timestamp + timedelta(hours=2))
        return "woke"

    h = Harness(until)
    inst = h.start("until")
    h.run_due()
    assert inst.status().status == "waiting"
    h.advance("1 hour")
    assert inst.status().status == "waiting"
    h.advance("1 hour")
    assert inst.status().output == "woke"


def test_a_long_sleep_is_parked_and_woken_by_the_sweeper_with_one_message() -> None:
    @wf("long")
    def long(event: Any, step: Any) -> Any:
        step.sleep("day", "1 day")
        return 1

    h = Harness(long)
    inst = h.start("long")
    h.run_due()
    assert len(h.queue.sent) == 1  # the start; the sleep is parked with no message in flight
    calls_before = h.store.calls
    h.advance(timedelta(days=1) - timedelta(minutes=11))
    assert h.store.calls == calls_before  # a parked sleep costs nothing until the sweeper sees it due
    h.advance("11 minutes")
    assert inst.status().output == 1
    (_start, wake) = h.queue.sent
    assert wake[1] == 600  # the sweeper sent the one wake-up, park_lead (600 s) before it ends
    assert h.outcomes[Outcome.HOPPED] == 0


def test_a_year_long_sleep_works() -> None:
    @wf("year")
    def year(event: Any, step: Any) -> Any:
        step.sleep("a year", "1 year")
        step.sleep_until("and a bit", event.timestamp + timedelta(days=366))
        return "happy new year"

    h = Harness(year)
    inst = h.start("year")
    h.run_until_idle()
    assert inst.status().output == "happy new year"
    assert h.clock.now() - 1_700_000_000.0 == pytest.approx(366 * 86400)
    assert h.outcomes[Outcome.HOPPED] == 0  # both sleeps parked: no chain of hops
    assert len(h.queue.sent) == 3  # the start, and one wake-up per sleep from the sweeper


def test_sub_second_waits_are_slept_in_process() -> None:
    @wf("short")
    def short(event: Any, step: Any) -> Any:
        step.sleep("blink", 0.5)
        n = {"i": 0}

        def flaky() -> int:
            n["i"] += 1
            if n["i"] == 1:
                raise RuntimeError("once")
            return n["i"]

        return step.do("flaky", flaky, config={"retries": {"limit": 1, "delay": 0.2, "backoff": "constant"}})

    h = Harness(short)
    inst = h.start("short")
    h.run_due()
    assert inst.status().output == 2
    assert len(h.queue.sent) == 1  # no hop for either wait


def test_duplicate_delivery_records_each_step_once() -> None:
    runs: list[str] = []

    @wf("dupes")
    def dupes(event: Any, step: Any) -> Any:
        step.do("a", lambda: runs.append("a"))
        step.sleep("nap", 100)
        step.do("b", lambda: runs.append("b"))
        return "ok"

    h = Harness(dupes)
    inst = h.start("dupes")
    start = h.queue.sent[0][0]
    assert h.deliver(start) is Outcome.SUSPENDED
    assert h.deliver(start) is Outcome.SKIPPED  # a duplicate of the start: the instance is not due
    h.run_until_idle()
    assert h.deliver(start) is Outcome.SKIPPED  # finished
    assert inst.status().output == "ok"
    assert runs == ["a", "b"]
    assert [e.rev for e in full_journal(h.store, inst.id, 1)] == [1, 1, 1]


def test_a_live_lease_turns_away_a_second_invocation() -> None:
    inner: list[Outcome] = []

    @wf("lease")
    def lease(event: Any, step: Any) -> Any:
        # While this invocation holds the lease, the same message arrives again.
        step.do("a", lambda: inner.append(h.deliver(WakeMessage(id=event.instance_id).model_dump_json())))
        return "ok"

    h = Harness(lease)
    inst = h.start("lease")
    h.run_until_idle()
    assert inner == [Outcome.SKIPPED]
    assert inst.status().output == "ok"


def test_time_budget_suspends_between_steps_and_resumes() -> None:
    @wf("budget")
    def budget(event: Any, step: Any) -> Any:
        return [step.do(f"s{i}", lambda i=i: h.clock.advance(100) or i) for i in range(9)]

    h = Harness(budget, invocation_seconds=300)
    inst = h.start("budget")
    h.run_until_idle()
    assert inst.status().output == list(range(9))
    # Each invocation runs 3 steps of 100 s; a 4th would start with less than the 10 s margin left.
    assert h.outcomes == {Outcome.SUSPENDED: 2, Outcome.COMPLETED: 1}


def test_crash_accounting_charges_repeated_crashes_to_the_step() -> None:
    class Die(BaseException):
        pass

    @wf("crashy")
    def crashy(event: Any, step: Any) -> Any:
        try:
            step.do("oom", _raise_base(Die()), config={"retries": {"limit": 2, "delay": 1}})
        except StepFailedError as exc:
            return {"attempts": exc.attempts, "type": exc.error_type}
        return "unreachable"

    h = Harness(crashy, invocation_seconds=60)
    inst = h.start("crashy")
    body = h.queue.sent[0][0]
    crashes = 0
    for _ in range(10):
        try:
            if h.deliver(body) is Outcome.COMPLETED:
                break
        except Die:
            crashes += 1
            h.clock.advance(120)  # the lease expires; SQS redelivers after the visibility timeout
    assert inst.status().output == {"attempts": 3, "type": "InvocationCrashedError"}
    # The first crash is free; each further one uses up an attempt: 1 + 3 attempts' worth of crashes.
    assert crashes == 4
    record = h.store.get_instance(inst.id)
    assert record is not None and record.lease_owner is None


def test_crashes_without_progress_end_in_errored() -> None:
    class Die(BaseException):
        pass

    @wf("crash-loop")
    def loop(event: Any, step: Any) -> Any:
        raise Die  # dies outside any step, every time

    h = Harness(loop, settings=Settings(max_crashes=3), invocation_seconds=60)
    inst = h.start("crash-loop")
    body = h.queue.sent[0][0]
    for _ in range(10):
        try:
            if h.deliver(body) is Outcome.ERRORED:
                break
        except Die:
            h.clock.advance(120)
    st = inst.status()
    assert st.status == "errored"
    assert st.error["name"] == "InvocationCrashedError"


def test_at_most_once_step_counts_a_started_attempt_as_failed() -> None:
    class Die(BaseException):
        pass

    calls: list[int] = []

    @wf("amo")
    def amo(event: Any, step: Any) -> Any:
        def charge() -> str:
            calls.append(1)
            if len(calls) == 1:
                raise Die
            return "charged"

        try:
            return step.do("charge card", charge, config={"at_most_once": True, "retries": {"limit": 0}})
        except StepFailedError as exc:
            return f"failed: {exc.error_type}"

    h = Harness(amo, invocation_seconds=60)
    inst = h.start("amo")
    body = h.queue.sent[0][0]
    with pytest.raises(Die):
        h.deliver(body)
    h.clock.advance(120)
    h.deliver(body)
    assert inst.status().output == "failed: InvocationCrashedError"
    assert calls == [1]  # never run twice


def test_swallowed_suspension_still_suspends() -> None:
    @wf("swallow-suspend")
    def flow(event: Any, step: Any) -> Any:
        try:
            step.sleep("nap", 60)
        except BaseException:
            pass
        return "too early"

    h = Harness(flow)
    inst = h.start("swallow-suspend")
    h.run_due()
    assert inst.status().status == "waiting"
    h.advance("1 minute")
    assert inst.status().output == "too early"


def test_nested_durable_calls_fail_the_step() -> None:
    @wf("nested")
    def nested(event: Any, step: Any) -> Any:
        step.do("outer", lambda: step.do("inner", lambda: 1))

    h = Harness(nested)
    inst = h.start("nested")
    h.run_until_idle()
    st = inst.status()
    assert st.status == "errored"
    assert "nested" in st.error["message"]


def test_step_timeout_fails_the_attempt() -> None:
    release, finished = threading.Event(), []

    def body() -> None:
        release.wait(30)
        finished.append(True)

    @wf("slow")
    def slow(event: Any, step: Any) -> Any:
        try:
            step.do("slow", body, config={"timeout": 0.05, "retries": {"limit": 0}})
        except StepFailedError as exc:
            return exc.error_type
        return "finished"

    h = Harness(slow)
    inst = h.start("slow")
    h.run_until_idle()
    assert inst.status().output == "StepTimeoutError"
    assert finished == []  # the run went on without waiting for the body
    release.set()


def test_unserializable_result_fails_the_step_naming_type() -> None:
    @wf("unser")
    def unser(event: Any, step: Any) -> Any:
        step.do("bad result", lambda: {"when": object()})

    h = Harness(unser)
    inst = h.start("unser")
    h.run_until_idle()
    st = inst.status()
    assert st.status == "errored"
    assert "SerializationError" in st.error["message"]
    assert "'bad result'" in st.error["message"] and "builtins.object" in st.error["message"]
    assert len(inst.history()[0].attempts) == 1  # not retried


def test_large_results_go_to_blobs_and_over_limit_fails() -> None:
    big = "x" * 500_000

    @wf("big")
    def bigwf(event: Any, step: Any) -> Any:
        a = step.do("big", lambda: big)
        step.sleep("nap", 10)
        try:
            step.do("exactly 1 MiB", lambda: "y" * (1024 * 1024))
            step.do("too big", lambda: "y" * (1024 * 1024 + 2048))
        except StepFailedError as exc:
            return {"len": len(a), "error": exc.error_type}
        return "unreachable"

    h = Harness(bigwf)
    inst = h.start("big")
    h.run_until_idle()
    assert inst.status().output == {"len": 500_000, "error": "PayloadTooLargeError"}
    entry = full_journal(h.store, inst.id, 1)[0]
    assert entry.result is None and entry.result_ref is not None
    assert inst.history()[0].result == big


def test_output_that_cannot_be_serialized_errors_the_instance() -> None:
    @wf("bad-output")
    def flow(event: Any, step: Any) -> Any:
        return {1: "int key"}

    h = Harness(flow)
    inst = h.start("bad-output")
    h.run_until_idle()
    assert inst.status().error["name"] == "SerializationError"


def test_bad_config_errors_at_the_call_and_a_naive_datetime_is_local_time() -> None:
    @wf("bad-config")
    def bad_config(event: Any, step: Any) -> Any:
        step.do("x", lambda: 1, config={"retries": {"limit": -1}})

    @wf("naive")
    def naive(event: Any, step: Any) -> Any:
        step.sleep_until("naive", datetime(2100, 1, 1))

    h = Harness(bad_config, naive)
    a, b = h.start("bad-config"), h.start("naive")
    h.run_until_idle()
    assert a.status().error["name"] == "InvalidConfigError"
    assert "limit" in a.status().error["message"]
    assert journal_items(h.store, a.id) == []
    # Cloudflare's examples pass datetime.now() + timedelta(...): a naive datetime is local time, as
    # datetime.timestamp() reads it (docs/execution-model.md).
    assert b.status().status == "complete"  # the harness ran the clock to the wake time
    [sleep] = full_journal(h.store, b.id, 1)
    assert sleep.wake_at == datetime(2100, 1, 1).timestamp()


def test_unknown_workflow_in_store_errors_instance() -> None:
    @wf("known")
    def known(event: Any, step: Any) -> Any:
        return 1

    h = Harness(known)
    inst = h.start("known")
    h.env.registry = type(h.env.registry)()  # the worker no longer knows the workflow
    h.run_until_idle()
    assert inst.status().error["name"] == "WorkflowNotFoundError"


def test_status_of_waiting_and_complete_instances() -> None:
    @wf("statuses")
    def statuses(event: Any, step: Any) -> Any:
        step.sleep("nap", 30)
        return "done"

    h = Harness(statuses)
    inst = h.start("statuses")
    assert inst.status().status == Status.QUEUED
    h.run_due()
    assert inst.status().status == Status.WAITING
    h.advance(30)
    assert inst.status().status == Status.COMPLETE


def _raise(exc: Exception) -> Any:
    def body() -> None:
        raise exc

    return body


def _raise_base(exc: BaseException) -> Any:
    def body() -> None:
        raise exc

    return body


def test_a_step_is_written_before_the_code_after_it_runs() -> None:
    """A crash in the workflow's own code after a step, or a failed hand-over at its end, must not run
    the step again: its entry is written before the workflow goes on."""
    runs: list[str] = []
    crashes = iter([True])

    def flow(event: Any, step: Any) -> Any:
        paid = step.do("pay", lambda: runs.append("pay") or "paid")
        if next(crashes, False):
            raise SystemExit("the invocation dies in the workflow's own code")
        return paid

    h = Harness(Workflow(name="pay", fn=flow))
    inst = h.start("pay")
    with pytest.raises(SystemExit):
        h.run_due()
    assert [e.name for e in journal_items(h.store, inst.id)] == ["pay"]
    h.clock.advance(400)  # past the dead invocation's lease
    h.run_until_idle()
    assert inst.status().output == "paid" and runs == ["pay"]
    assert h.store.get_instance(inst.id).tail == ()


def test_a_failed_release_hands_over_without_running_the_last_step_again() -> None:
    runs: list[str] = []

    def flow(event: Any, step: Any) -> Any:
        return step.do("b", lambda: runs.append("b") or "done")

    h = Harness(Workflow(name="b", fn=flow))
    fail_once(h.store.inner, "release", ConnectionError("throttled"))
    inst = h.start("b")
    h.run_until_idle()
    assert h.outcomes[Outcome.RETRYING] == 1
    assert inst.status().output == "done" and runs == ["b"]


def test_a_restart_drops_the_tail_kept_in_the_instance_item() -> None:
    def flow(event: Any, step: Any) -> Any:
        step.sleep("nap", "1 hour")  # suspends: its entry rides with the release
        return "up"

    h = Harness(Workflow(name="chain1", fn=flow))
    inst = h.start("chain1")
    h.run_until_idle()
    assert len(inst.history()) == 1
    inst.restart()
    assert inst.history() == [] and h.store.get_instance(inst.id).tail == ()
    h.run_until_idle()
    assert len(inst.history()) == 1 and inst.status().status == "complete"


def test_a_sleep_that_suspends_rides_with_the_release_while_the_item_stays_small() -> None:
    def flow(event: Any, step: Any) -> Any:
        for i in range(3):
            step.do(f"s{i}", lambda i=i: i)
            step.sleep(f"z{i}", "1 hour")
        return "done"

    h = Harness(Workflow(name="naps", fn=flow))
    inst = h.start("naps")
    h.run_due()
    record = h.store.get_instance(inst.id)
    assert [e.name for e in record.tail] == ["z0"]  # kept in the instance item...
    assert [e.name for e in journal_items(h.store, inst.id)] == ["s0"]  # ...not as an item of its own
    h.advance("1 hour")
    assert [e.name for e in h.store.get_instance(inst.id).tail] == ["z0", "z1"]
    h.advance("1 hour")  # a third would make the item bigger than one write unit: it is written
    assert [e.name for e in h.store.get_instance(inst.id).tail] == ["z0", "z1"]
    assert [e.name for e in journal_items(h.store, inst.id)] == ["s0", "s1", "s2", "z2"]
    h.advance("1 hour")
    assert inst.status().output == "done"
    assert [e.name for e in inst.history()] == ["s0", "z0", "s1", "z1", "s2", "z2"]
