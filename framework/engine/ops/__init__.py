"""The durable operations, one module each: ``step`` (step.do), ``sleep`` (step.sleep, sleep_until) and
``wait`` (step.wait_for_event).

Each operation first *checks* the journal: a recorded call returns (or raises) what was recorded, and
nothing runs. Otherwise it *executes*, as a generator that yields what it needs from its driver: a
:class:`Wait` until a time, or a :class:`RunBody` of a step's function. The sync driver
(``framework.engine.step``) serves them inline on the workflow's thread; the async one
(``framework.engine.scheduler``) lets other branches run meanwhile. The logic is one for both.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

IN_PROCESS_WAIT = 1.0  # waits shorter than this are slept in-process, when time allows


@dataclass(frozen=True, slots=True)
class Wait:
    """Resume at ``wake_at`` (epoch seconds). For an event wait, ``event_type`` and the keys of the
    events of that type already seen: an arrival wakes the instance once it has suspended."""

    wake_at: float
    reason: str
    event_type: str | None = None
    seen: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True, slots=True)
class RunBody:
    """Run a step body, at most ``seconds`` long: send back its return value, or throw its error
    (a StepTimeoutError when it ran too long)."""

    body: Callable[[], Any]
    seconds: float
    is_async: bool = False  # the body returns a coroutine: it runs on the body loop, not a thread


Request = Wait | RunBody
Operation = Generator[Request, Any, Any]


def advance(operation: Operation, value: Any, error: Exception | None) -> tuple[bool, Any]:
    """Resume ``operation`` with what its last request gave (``value``, or ``error`` thrown in). Return
    (True, its result) once it ends, or (False, its next request)."""
    try:
        request = operation.send(value) if error is None else operation.throw(error)
    except StopIteration as stop:
        return True, stop.value
    return False, request


__all__ = ["IN_PROCESS_WAIT", "Operation", "Request", "RunBody", "Wait", "advance"]
