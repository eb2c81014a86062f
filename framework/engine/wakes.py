"""Wake-up messages of the work queue: their body (:class:`WakeMessage`) and how they are sent."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from framework.backends.environment import Environment
from framework.backends.queue import MAX_DELAY_SECONDS
from framework.core.faults import point
from framework.errors import WorkflowError


class BadMessageError(WorkflowError):
    """A work-queue message that is not a wake-up, or names no instance. It goes to the DLQ."""


@dataclass(frozen=True, slots=True)
class WakeMessage:
    """The body of a work-queue message: an instance id, and when it is due.

    A message runs the instance only if the instance has no later ``wake_at`` of its own, so stale
    and duplicate wake-ups cost one conditional write. ``wake_at=None`` skips that check (a kick).

    Parsed by hand, not by pydantic, so that the worker starts without pydantic. It accepts and writes
    what the pydantic model it replaces did: ``id`` a string of 1 to 100 characters, ``wake_at`` a number
    (or a numeric string) or null, no other keys. A bad value raises ValueError."""

    id: str
    wake_at: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.id, str):
            raise ValueError("id: Input should be a valid string")
        if not 1 <= len(self.id) <= 100:
            raise ValueError("id: String should have 1 to 100 characters")
        if self.wake_at is not None:
            object.__setattr__(self, "wake_at", _number(self.wake_at))

    @classmethod
    def parse(cls, body: str) -> WakeMessage:
        """Raise BadMessageError for a body that is not a wake-up message."""
        try:
            data = json.loads(body)
        except (ValueError, RecursionError) as exc:  # RecursionError: a crafted, deeply nested body
            raise BadMessageError(f"not a wake-up message: Invalid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise BadMessageError("not a wake-up message: Input should be an object")
        if "id" not in data:
            raise BadMessageError("not a wake-up message: Field required")
        if data.keys() - {"id", "wake_at"}:
            raise BadMessageError("not a wake-up message: Extra inputs are not permitted")
        try:
            return cls(data["id"], data.get("wake_at"))
        except ValueError as exc:
            raise BadMessageError(f"not a wake-up message: {exc}") from None

    def model_dump_json(self, *, exclude_none: bool = False) -> str:
        """The message body: compact JSON, as the pydantic model wrote it (a non-finite time as null)."""
        data: dict[str, Any] = {"id": self.id}
        if self.wake_at is not None or not exclude_none:
            finite = self.wake_at is not None and math.isfinite(self.wake_at)
            data["wake_at"] = self.wake_at if finite else None
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def _number(value: Any) -> float:
    if isinstance(value, bool | int | float | str):
        try:
            return float(value)
        except (ValueError, OverflowError):  # OverflowError: an integer beyond any float
            pass
    raise ValueError("wake_at: Input should be a valid number")


def send_wake(env: Environment, instance_id: str, wake_at: float | None) -> None:
    """Enqueue a wake-up. Waits longer than SQS allows are sent as the first hop of a chain."""
    body = WakeMessage(id=instance_id, wake_at=wake_at).model_dump_json(exclude_none=True)
    point("queue.before_send", instance_id=instance_id)
    env.queue.send(body, _delay(env, wake_at))
    point("queue.after_send", instance_id=instance_id)


def _delay(env: Environment, wake_at: float | None) -> int:
    """The SQS delay that lands a message at ``wake_at`` (or as soon as it can)."""
    delay = 0 if wake_at is None else math.ceil(wake_at - env.clock.now())
    return min(max(delay, 0), MAX_DELAY_SECONDS)


def send_wakes(env: Environment, wakes: list[tuple[str, float]]) -> list[str]:
    """Enqueue (instance id, wake time) wake-ups, each due within one SQS delay, in batches. Return the
    ids of those not sent."""
    messages = [
        (WakeMessage(id=i, wake_at=at).model_dump_json(exclude_none=True), _delay(env, at)) for i, at in wakes
    ]
    for instance_id, _ in wakes:
        point("queue.before_send", instance_id=instance_id)
    failed = env.queue.send_batch(messages)
    for instance_id, _ in wakes:
        point("queue.after_send", instance_id=instance_id)
    return [wakes[k][0] for k in failed]
