"""Concurrency and rate limits (framework.engine.limits) on the harness: the fake store, virtual time."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from framework import InvalidParamsError, workflow
from framework.api.limits import Limits
from framework.backends.limiter import LimiterState
from framework.core.faults import injected
from framework.core.progress import WaitKind
from framework.engine.invocation import Outcome
from framework.engine.limits import Verdict, decide, earliest, fits, limiter_key
from tests.unit import harness
from tests.unit.harness import Harness


class Peak:
    """How many step bodies run at once, at most, overall and per key."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now: dict[str, int] = {}
        self.most: dict[str, int] = {}
        self.starts: list[float] = []

    def body(self, key: str, clock: Any = None) -> None:
        with self.lock:
            for k in (key, "*"):
                self.now[k] = self.now.get(k, 0) + 1
                self.most[k] = max(self.most.get(k, 0), self.now[k])
            if clock is not None:
                self.starts.append(clock.now())
        time.sleep(0.002)  # overlap with the other threads' bodies
        with self.lock:
            for k in (key, "*"):
                self.now[k] -= 1


def limited(peak: Peak, **limits: Any) -> Any:
    @workflow("limited", **limits)
    def flow(event: Any, step: Any) -> Any:
        step.do("work", lambda: peak.body(event.payload.get("customer", "-")))
        return "done"

    return flow


def deliver_concurrently(h: Harness, twice: bool = True, threads: int = 8) -> None:
    """Deliver every due message (each twice, as SQS may) on a thread pool, until none is due; then
    run the sweeper's schedule until idle. Only on the in-memory store, which locks each call: moto's
    in-process backends are not thread-safe (two conditional writes to one item may both succeed), so
    the moto rerun of these tests skips; tests/integration/test_concurrency.py runs the same bound on
    worker processes against a moto server that serves one request at a time."""
    if harness.BACKEND["store"] != "memory":
        pytest.skip("moto in-process is not thread-safe: see test_concurrency.py -k limited")
    with ThreadPoolExecutor(threads) as pool:
        for _ in range(10_000):
            batch = h.queue.due()
            if not batch:
                nxt = h._next()
                if nxt is None:
                    return
                h._move_to(*nxt)
                continue
            bodies = [b for b in batch for _ in range(2 if twice else 1)]
            list(pool.map(h.deliver, bodies))
    raise AssertionError("still busy")


# -- the decision ----------------------------------------------------------------------------------


def test_fits_counts_starts_per_window_of_one_period() -> None:
    assert fits([0.0, 0.5, 1.0], 2, 1.0)
    assert not fits([0.0, 0.5, 0.9], 2, 1.0)
    assert earliest([0.0, 0.5], 0.6, 2, 1.0) == 1.0
    assert earliest([0.0, 0.5, 1.0, 1.5], 1.6, 2, 1.0) == 2.0


def test_a_full_limiter_drops_the_slots_of_leases_that_ended() -> None:
    limits = Limits(concurrency=1)
    dead = LimiterState({"dead": 99.0}, (), "v1")
    run = decide(dead, limits, "me", 500.0, 100.0, None)
    assert run.verdict is Verdict.RUN and run.state is not None and run.state.holders == {"me": 500.0}
    live = decide(LimiterState({"other": 200.0}, (), "v1"), limits, "me", 500.0, 100.0, None)
    assert live.verdict is Verdict.NO_SLOT and live.state is None  # nothing to write
    two_dead = LimiterState({"a": 99.0, "b": 98.0}, (), "v1")
    assert decide(two_dead, Limits(concurrency=2), "me", 500.0, 100.0, None).freed == 1


def test_over_the_rate_a_ticket_is_reserved_and_its_holder_starts_on_it() -> None:
    limits = Limits(rate_count=2, rate_period=10.0)
    state = LimiterState({}, (100.0, 101.0), "v")
    over = decide(state, limits, "me", 900.0, 102.0, None)
    assert over.verdict is Verdict.TICKET and over.ticket == 110.0
    assert over.state is not None and over.state.starts == (100.0, 101.0, 110.0)
    second = decide(over.state, limits, "o2", 900.0, 102.0, None)
    assert second.ticket == 111.0  # spread out: no herd at one time
    on_ticket = decide(over.state, limits, "me", 900.0, 110.0, 110.0)
    assert on_ticket.verdict is Verdict.RUN and on_ticket.state is not None
    assert on_ticket.state.starts == (101.0, 110.0)


def test_limiter_keys_are_per_workflow_and_key_and_long_keys_are_hashed() -> None:
    assert limiter_key("wf", None) == "limit#wf"
    assert limiter_key("wf", "a#b") == "limit#wf#k:a#b"
    long = limiter_key("wf", "x" * 500)
    assert long.startswith("limit#wf#h:") and len(long) < 100


# -- the key at create -------------------------------------------------------------------------------


def test_a_key_that_raises_or_is_no_string_fails_the_create_without_the_params() -> None:
    peak = Peak()
    h = Harness(limited(peak, concurrency=1, key=lambda p: p["customer"]))
    with pytest.raises(InvalidParamsError) as raised:
        h.client.create("limited", params={"other": "secret-value"})
    assert "KeyError" in str(raised.value) and "secret" not in str(raised.value)
    with pytest.raises(InvalidParamsError) as raised:
        h.client.create("limited", params={"customer": 12345})
    assert "must be a string, not int" in str(raised.value) and "12345" not in str(raised.value)
    h.client.create("limited", id="ok", params={"customer": "c1"})
    record = h.store.get_instance("ok")
    assert record is not None and record.limit_key == "c1"


# -- slots -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("keyed", [False, True])
def test_the_most_bodies_at_once_is_never_above_the_limit_with_every_message_twice(keyed: bool) -> None:
    peak = Peak()
    extra: dict[str, Any] = {"key": lambda p: p["customer"]} if keyed else {}
    h = Harness(limited(peak, concurrency=3, **extra))
    for i in range(60):
        h.client.create("limited", id=f"i{i}", params={"customer": f"c{i % 3}"})
    deliver_concurrently(h)
    statuses = [h.client.get(f"i{i}").status().status for i in range(60)]
    assert all(s == "complete" for s in statuses)
    if keyed:
        assert max(peak.most[f"c{k}"] for k in range(3)) <= 3
        assert peak.most["*"] <= 9
    else:
        assert peak.most["*"] <= 3
    assert peak.most["*"] >= 2  # the bodies did overlap: the limit, not the driver, held them back


def test_messages_and_invocations_per_waiting_instance_are_bounded() -> None:
    peak = Peak()
    h = Harness(limited(peak, concurrency=2))
    sent: list[int] = []
    original = h.queue.send

    def counting(body: str, delay: int = 0) -> None:
        sent.append(1)
        original(body, delay)

    h.queue.send = counting  # type: ignore[method-assign]
    n = 40
    for i in range(n):
        h.client.create("limited", id=f"i{i}")
    deliver_concurrently(h, twice=False)
    assert all(h.client.get(f"i{i}").status().status == "complete" for i in range(n))
    invocations = sum(h.outcomes.values())
    queued = h.outcomes[Outcome.QUEUED]
    assert queued >= n // 4, h.outcomes  # many did wait for a slot
    # Counted, not timed: a wait costs a wake-up and an invocation per turn lost to a newcomer, never
    # one per unit of time waited. Here: at most 4 invocations and 4 messages an instance.
    print(f"\n{n} instances, concurrency 2: {invocations} invocations, {len(sent)} messages, {queued} queued")
    assert invocations <= 4 * n, h.outcomes
    assert len(sent) <= 4 * n


def test_a_queued_instance_says_it_waits_for_a_slot() -> None:
    peak = Peak()
    h = Harness(limited(peak, concurrency=1))
    for i in range(2):
        h.client.create("limited", id=f"i{i}")
    crash = {"on": True}

    def die(where: str, info: dict[str, Any]) -> None:
        if where == "step.after_body" and crash["on"]:
            crash["on"] = False
            raise SystemExit("crash")  # the invocation dies holding its slot

    with injected(die):
        first, second = h.queue.due()
        with pytest.raises(SystemExit):
            h.deliver(first)
        assert h.deliver(second) is Outcome.QUEUED
    shown = h.client.get("i1").status()
    assert shown.status == "queued"
    record = h.store.get_instance("i1")
    assert record is not None and [w.kind for w in record.waits] == [WaitKind.SLOT]
    # The dead invocation's slot ends with its lease: the sweeper's safety net runs the waiter then.
    h.run_until_idle()
    assert h.client.get("i0").status().status == "complete"
    assert h.client.get("i1").status().status == "complete"


def test_slots_come_back_on_error_and_on_terminate_while_running_or_queued() -> None:
    ran: list[str] = []

    @workflow("flaky", concurrency=1)
    def flow(event: Any, step: Any) -> Any:
        if event.payload.get("fail"):
            raise ValueError("boom")
        step.do("work", lambda: ran.append(event.instance_id))
        step.sleep("nap", "10 seconds")
        return "ok"

    h = Harness(flow)
    h.client.create("flaky", id="bad", params={"fail": True})
    h.run_due()
    assert h.client.get("bad").status().status == "errored"
    h.client.create("flaky", id="a")
    h.client.create("flaky", id="b")
    h.client.create("flaky", id="c")
    h.run_due()  # a runs (its slot given back at the sleep), b and c take turns
    h.client.get("c").terminate()  # terminated while queued or waiting
    h.run_until_idle()
    assert h.client.get("a").status().status == "complete"
    assert h.client.get("b").status().status == "complete"
    assert h.client.get("c").status().status == "terminated"
    limiter = h.store.get_limiter("limit#flaky")
    assert all(u < h.clock.now() for u in limiter.holders.values())


def test_a_workflow_without_limits_makes_no_limiter_call() -> None:
    @workflow("free")
    def flow(event: Any, step: Any) -> Any:
        step.do("a", lambda: 1)
        return 1

    h = Harness(flow)
    h.client.create("free", id="f")
    h.store.calls = 0
    h.run_due()
    assert h.store.calls == 3  # the lease, the step, the release: as before limits existed


# -- rate --------------------------------------------------------------------------------------------


def test_the_rate_holds_per_window_on_the_virtual_clock() -> None:
    starts: list[float] = []
    h: Harness

    @workflow("rated", rate="5/10 seconds")
    def flow(event: Any, step: Any) -> Any:
        step.do("work", lambda: starts.append(h.clock.now()))
        return 1

    h = Harness(flow)
    for i in range(23):
        h.client.create("rated", id=f"r{i}")
    h.run_until_idle()
    assert all(h.client.get(f"r{i}").status().status == "complete" for i in range(23))
    starts.sort()
    assert fits(starts, 5, 10.0)  # never more than 5 in any 10 seconds
    assert starts[-1] - starts[0] >= 40.0  # 23 starts need 5 windows
    assert h.outcomes[Outcome.QUEUED] == 18  # each over the rate waited once, on its ticket


def test_per_key_limits_are_independent() -> None:
    peak = Peak()
    h = Harness(limited(peak, concurrency=1, rate="1/minute", key=lambda p: p["customer"]))
    for i in range(4):
        h.client.create("limited", id=f"k{i}", params={"customer": f"c{i}"})
    h.run_due()
    assert all(h.client.get(f"k{i}").status().status == "complete" for i in range(4))
    assert h.outcomes[Outcome.QUEUED] == 0


def test_a_slot_comes_back_when_the_instance_is_terminated_while_it_runs() -> None:
    from framework.backends.environment import Settings

    h: Harness

    @workflow("stoppable", concurrency=1)
    def flow(event: Any, step: Any) -> Any:
        if event.instance_id == "victim":
            step.do("terminate myself", lambda: h.client.get("victim").terminate())
            step.do("never", lambda: 1)
        return step.do("work", lambda: 1)

    h = Harness(flow, settings=Settings(control_check_seconds=0))
    h.client.create("stoppable", id="victim")
    h.client.create("stoppable", id="next")
    first, second = h.queue.due()
    assert h.deliver(first) is Outcome.STOPPED
    assert h.store.get_limiter("limit#stoppable").holders == {}  # given back at once
    assert h.deliver(second) is Outcome.COMPLETED  # not queued: the slot was free
    assert h.client.get("victim").status().status == "terminated"


def test_a_releaser_that_dies_before_it_wakes_the_waiter_is_covered_by_the_sweeper() -> None:
    h: Harness
    later: list[str] = []

    @workflow("one-at-a-time", concurrency=1)
    def flow(event: Any, step: Any) -> Any:
        if event.instance_id == "a":  # b arrives while a holds the slot
            step.do("let b in", lambda: h.deliver(later.pop()))
        return step.do("work", lambda: 1)

    h = Harness(flow)
    h.client.create("one-at-a-time", id="a")
    h.client.create("one-at-a-time", id="b")
    first, second = h.queue.due()
    later.append(second)

    def die(where: str, info: dict[str, Any]) -> None:
        if where == "limits.after_free":
            raise SystemExit("the releaser dies before it wakes b")

    with injected(die), pytest.raises(SystemExit):
        h.deliver(first)
    assert h.outcomes[Outcome.QUEUED] == 1 and h.client.get("b").status().status == "queued"
    assert h.queue.next_due() is None  # no wake-up in flight: only the safety net is left
    h.run_until_idle()
    assert h.client.get("b").status().status == "complete"
    assert h.outcomes[Outcome.QUEUED] == 1  # b ran on the sweeper's one wake-up


def test_a_ticket_holder_that_finds_no_slot_gives_its_reserved_start_back() -> None:
    limits = Limits(concurrency=1, rate_count=1, rate_period=10.0)
    state = LimiterState({"other": 900.0}, (95.0, 105.0), "v1")  # 105: this invocation's ticket
    decision = decide(state, limits, "me", 900.0, 105.0, 105.0)
    assert decision.verdict is Verdict.NO_SLOT
    assert decision.state is not None and decision.state.starts == (95.0,)


def test_a_wake_up_that_cannot_be_sent_puts_its_waiter_back_in_line() -> None:
    from framework.backends.limiter import Waiter
    from framework.engine.limits import wake_waiters
    from tests.unit.harness import fail_once

    h = Harness(limited(Peak(), concurrency=1))
    key = limiter_key("limited", None)
    h.store.add_waiter(key, Waiter(1.0, "w1"), 2_000_000_000)
    fail_once(h.queue, "send", RuntimeError("throttled"))
    with pytest.raises(RuntimeError):
        wake_waiters(h.env, key, 1)
    assert [w.instance_id for w in h.store.oldest_waiters(key, 5)] == ["w1"]  # not lost
    assert wake_waiters(h.env, key, 1) == 1  # the next releaser wakes it
    assert h.store.oldest_waiters(key, 5) == []


def test_a_rollback_runs_its_undos_even_when_every_slot_is_taken() -> None:
    """terminate(rollback=True) must not be lost to a full limiter: the release of a slot waiter
    would drop the request (and a rollingBack status), so a rollback takes no slot."""
    done: list[str] = []

    @workflow("limited-saga", concurrency=1)
    def saga(event: Any, step: Any) -> Any:
        @step.with_rollback("book")
        def book() -> str:
            done.append("book")
            return "b-1"

        @book.undo
        def cancel(err: Any, output: str) -> None:
            done.append(f"cancel {output}")

        book()
        step.sleep("hold", "1 hour")
        return "kept"

    h = Harness(saga)
    inst = h.start("limited-saga", id="s1")
    h.advance("1 minute")
    assert inst.status().status == "waiting" and done == ["book"]
    key = limiter_key("limited-saga", None)
    taken = h.store.get_limiter(key)
    h.store.put_limiter(key, LimiterState({"another": 4e9}, taken.starts, taken.version), 2_000_000_000)
    inst.terminate(rollback=True)
    h.advance("1 minute")
    assert inst.status().status == "terminated" and done == ["book", "cancel b-1"]
