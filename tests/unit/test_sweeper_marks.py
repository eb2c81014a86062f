"""The sweeper's mark: never a window whose low end is above its high end, a mark ahead of the clock is
not trusted, and a run cut short (its time, or a Lambda timeout) keeps the progress it made."""

from __future__ import annotations

import dataclasses
import json
import re
from collections import Counter
from typing import Any

import pytest

from framework import Workflow
from framework.backends.dynamodb import DynamoStore
from framework.core.clock import Clock
from framework.engine import sweeper
from framework.engine.sweeper import sweep
from tests.unit.harness import FakeContext, Harness


class Skewed:
    """A clock ``skew`` seconds ahead of another."""

    def __init__(self, clock: Clock, skew: float) -> None:
        self.clock, self.skew = clock, skew

    def now(self) -> float:
        return self.clock.now() + self.skew

    def sleep(self, seconds: float) -> None:
        self.clock.sleep(seconds)


def inverted_windows(h: Harness) -> list[str]:
    """Record every window asked for with its low end above its high end: the DynamoDB Queries the
    store sends (a BETWEEN that DynamoDB refuses, which moto accepts), or on the in-memory store the
    sweeper's own calls."""
    bad: list[str] = []
    inner = h.store.inner
    if isinstance(inner, DynamoStore):

        def check(**kwargs: Any) -> None:
            params = kwargs["params"]
            between = re.search(r"BETWEEN (:\w+) AND (:\w+)", params.get("KeyConditionExpression", ""))
            if between:
                low, high = (params["ExpressionAttributeValues"][between.group(i)] for i in (1, 2))
                numbers = "N" in low and float(low["N"]) > float(high["N"])
                if numbers or low.get("S", "") > high.get("S", ""):
                    bad.append(params["KeyConditionExpression"])

        inner._db.meta.events.register("before-parameter-build.dynamodb.Query", check)
        return bad
    due, created = inner.due_instances, inner.created_between

    def due_instances(before: float, limit: int, *, after: float | None = None) -> Any:
        if after is not None and after > before:
            bad.append(f"due_instances after {after} before {before}")
        return due(before, limit, after=after)

    def created_between(after: float, until: float) -> Any:
        if after > until:
            bad.append(f"created_between {after} and {until}")
        return created(after, until)

    inner.due_instances, inner.created_between = due_instances, created_between
    return bad


def sent_to(h: Harness, instance_id: str) -> int:
    return sum(json.loads(body)["id"] == instance_id for body, _ in h.queue.sent)


def nap(hours: float = 2) -> Workflow:
    def flow(event: Any, step: Any) -> str:
        step.sleep("nap", hours * 3600)
        return "woke"

    return Workflow("naps", flow)


def test_a_mark_ahead_of_the_clock_skips_no_window() -> None:
    """One sweeper's clock runs three hours fast. The others never ask DynamoDB for a window whose low
    end is past its high end, and what came after that sweep is still found: a wait parked with its
    due time before the fast mark is sent before it ends, and an instance whose start was lost is
    kicked."""
    h = Harness(nap())
    bad = inverted_windows(h)
    h.start("naps", id="early")
    h.run_due()
    h.clock.advance(180)
    sweep(dataclasses.replace(h.env, clock=Skewed(h.clock, 3 * 3600)))  # it looks at "early", moves the mark
    assert h.store.sweep_mark() > h.clock.now() + 3 * 3600 - 1
    parked = h.start("naps", id="parked")  # due for its wake-up at +6480 s: before the fast mark
    h.run_due()
    lost = h.start("naps", id="lost-start")
    h.queue.due()  # its start message is lost: only the sweeper's look at new instances finds it
    start = h.clock.now()
    for minute in range(1, 121):  # the schedule: a sweep a minute (less the dull hour and a half)
        if 10 < minute < 105:
            continue
        h.clock.set(start + 60 * minute)
        sweep(h.env)
        h.run_due()
    assert bad == []
    assert parked.status().output == "woke"  # on time: its wake-up came from the parked pass
    assert sent_to(h, "parked") == 2  # its start and its one wake-up
    assert h.store.sweep_mark() <= h.clock.now()  # set back to the sweepers' own clock
    h.advance("2 hours")
    assert lost.status().output == "woke"
    assert bad == []


class TimedQueue:
    """The work queue, where each SendMessageBatch takes ``seconds`` of the virtual clock. Past
    ``kill_at``, the call ends the run as a Lambda timeout would, after its messages went out."""

    def __init__(self, h: Harness, seconds: float) -> None:
        self.h, self.seconds = h, seconds
        self.kill_at = float("inf")

    def send(self, body: str, delay_seconds: int) -> None:
        self.h.queue.send(body, delay_seconds)

    def send_batch(self, messages: list[tuple[str, int]]) -> list[int]:
        failed = []
        for start in range(0, len(messages), 10):
            failed += [start + i for i in self.h.queue.send_batch(messages[start : start + 10])]
            self.h.clock.advance(self.seconds)
            if self.h.clock.now() > self.kill_at:
                raise LambdaTimeout
        return failed


class LambdaTimeout(BaseException):
    pass


def parked_waits(h: Harness, n: int) -> list[str]:
    """``n`` parked waits, their due times a second apart; then the clock moves past them all."""
    ids = []
    for i in range(n):
        ids.append(h.start("naps", id=f"p{i:03}").id)
        h.run_due()
        h.clock.advance(1)
    sweep(h.env)  # a mark before any of them is due
    h.clock.advance(7200 - 720)
    return ids


def test_a_run_that_runs_out_of_time_leaves_the_rest_to_the_next(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sweeper, "CHUNK", 10, raising=False)
    h = Harness(nap())
    ids = parked_waits(h, 55)
    h.env.queue = TimedQueue(h, 5.0)  # type: ignore[assignment]
    sent_before = len(h.queue.sent)
    # 30 s of Lambda time, 10 kept back: chunks start at 0, 5, 10 and 15 s; none at 20 s.
    assert sweep(h.env, FakeContext(h.clock, 30)) == 40
    first = Counter(json.loads(body)["id"] for body, _ in h.queue.sent[sent_before:])
    assert sorted(first) == ids[:40]
    record = h.store.get_instance(ids[39])
    assert h.store.sweep_mark() == record.due_at  # the mark went as far as the run got
    h.clock.advance(60)
    assert sweep(h.env, FakeContext(h.clock, 30)) == 15  # the next run starts there
    every = Counter(json.loads(body)["id"] for body, _ in h.queue.sent[sent_before:])
    assert every == dict.fromkeys(ids, 1)  # each sent once


def test_runs_killed_by_their_timeout_still_get_through_the_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no time kept back (no context), every run is killed part-way, as by a Lambda timeout
    before its mark moved: each run keeps what it did, so the window is done in a few runs, each wake-up
    sent once or twice (the chunk under way when the run died goes again), not over and over."""
    monkeypatch.setattr(sweeper, "CHUNK", 10, raising=False)
    h = Harness(nap())
    ids = parked_waits(h, 55)
    queue = TimedQueue(h, 25.0)
    h.env.queue = queue  # type: ignore[assignment]
    sent_before, killed = len(h.queue.sent), 0
    for runs in range(1, 11):  # noqa: B007 - how many it took, asserted below
        queue.kill_at = h.clock.now() + 60  # the third batch of each run ends past the 60 s timeout
        try:
            sweep(h.env)
        except LambdaTimeout:
            killed += 1
        h.clock.advance(60)
        counts = Counter(json.loads(body)["id"] for body, _ in h.queue.sent[sent_before:])
        if set(counts) == set(ids):
            break
    assert set(counts) == set(ids), "the sweeper keeps sending the same window"
    assert max(counts.values()) <= 2
    assert (runs, killed) == (3, 2)
