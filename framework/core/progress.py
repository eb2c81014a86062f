"""What the instance item says about a run in progress: what it waits for, which steps run, and how
many steps ended so far. Read by ``WorkflowClient.status`` without reading the journal.

- ``WaitInfo``: one wait the run suspended on, written with the release that suspends it (no write of
  its own). Shown while the instance is waiting or paused.
- ``RunningStep``: a step attempt that has run longer than ``Settings.running_mark_seconds``; marked
  from a timer (``framework.engine.running``) and unmarked when the attempt ends. Shown only while the
  invocation that marked it holds a live lease.
- ``StepCounts``: counts over the run's step entries, written with the release and with the unmarking
  of a long step.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Self

MAX_WAITS = 5  # waits kept in the instance item (an async run may wait on many): the earliest first


class WaitKind(StrEnum):
    SLEEP = "sleep"  # step.sleep, step.sleep_until
    RETRY = "retry"  # a step's backoff before its next attempt
    EVENT = "event"  # step.wait_for_event
    CALLBACK = "callback"  # a callback's result()
    INVOKE = "invoke"  # step.invoke: a child instance's end
    CONDITION = "condition"  # step.wait_for_condition: the next check
    MAP = "map"  # step.map over a workflow: its children's ends (no deadline of its own)
    SLOT = "slot"  # a concurrency limit: a free slot (``until``: when the sweeper looks at the latest)
    RATE = "rate"  # a rate limit: the ticket's time, when it starts (framework.engine.limits)


@dataclass(frozen=True, slots=True)
class WaitInfo:
    """One wait: its kind, the durable call's name, when it ends at the latest (None: no deadline), the
    event type of an event wait, the next attempt of a retry, the child of an invoke."""

    kind: WaitKind
    name: str
    until: float | None
    event_type: str | None = None
    attempt: int | None = None
    child_id: str | None = None

    def as_item(self) -> dict[str, Any]:
        fields = {"k": self.kind.value, "n": self.name, "u": self.until, "t": self.event_type}
        fields |= {"a": self.attempt, "c": self.child_id}
        return {k: v for k, v in fields.items() if v is not None}

    @classmethod
    def of_item(cls, d: dict[str, Any]) -> Self:
        until = d.get("u")
        attempt = d.get("a")
        return cls(
            WaitKind(d["k"]),
            d["n"],
            None if until is None else float(until),
            d.get("t"),
            None if attempt is None else int(attempt),
            d.get("c"),
        )


def shown_waits(waits: list[WaitInfo]) -> tuple[WaitInfo, ...]:
    """The waits to keep: earliest deadline first (no deadline last), at most MAX_WAITS."""
    ordered = sorted(waits, key=lambda w: (w.until is None, w.until or 0.0, w.name))
    return tuple(ordered[:MAX_WAITS])


@dataclass(frozen=True, slots=True)
class RunningStep:
    """A step attempt that runs now: its durable call's op id, name, attempt number and start."""

    op: str
    name: str
    attempt: int
    started_at: float

    def as_item(self) -> dict[str, Any]:
        return {"n": self.name, "a": self.attempt, "s": self.started_at}

    @classmethod
    def of_item(cls, op: str, d: dict[str, Any]) -> Self:
        return cls(op, d["n"], int(d["a"]), float(d["s"]))


@dataclass(frozen=True, slots=True)
class StepCounts:
    """Over the run's steps: ``steps_done`` completed, ``steps_failed`` failed for good, ``failures``
    attempts that failed (a crashed attempt included), ``retries`` of those followed by another attempt."""

    steps_done: int = 0
    steps_failed: int = 0
    retries: int = 0
    failures: int = 0

    def __add__(self, other: StepCounts) -> StepCounts:
        return StepCounts(
            self.steps_done + other.steps_done,
            self.steps_failed + other.steps_failed,
            self.retries + other.retries,
            self.failures + other.failures,
        )

    def __sub__(self, other: StepCounts) -> StepCounts:
        return self + StepCounts(-other.steps_done, -other.steps_failed, -other.retries, -other.failures)

    def as_dict(self) -> dict[str, int]:
        return {
            "steps_done": self.steps_done,
            "steps_failed": self.steps_failed,
            "retries": self.retries,
            "failures": self.failures,
        }

    def as_item(self) -> dict[str, int] | None:
        """The stored form: zeros left out, None when all are zero."""
        short = {"done": self.steps_done, "failed": self.steps_failed}
        short |= {"retries": self.retries, "failures": self.failures}
        kept = {k: v for k, v in short.items() if v}
        return kept or None

    @classmethod
    def of_item(cls, d: dict[str, Any] | None) -> Self:
        d = d or {}
        return cls(*(int(d.get(k, 0)) for k in ("done", "failed", "retries", "failures")))


NO_COUNTS = StepCounts()
