"""The durable operations, one module each: ``step`` (step.do), ``sleep`` (step.sleep, sleep_until),
``wait`` (step.wait_for_event), ``callback``, ``condition``, ``invoke`` and ``fanout``.

Each operation first *checks* the journal: a recorded call returns (or raises) what was recorded, and
nothing runs. Otherwise it *executes*, as a generator that yields what it needs from its driver: a
:class:`Wait` until a time, or a :class:`RunBody` of a step's function. The sync driver
(``framework.engine.step``) serves them inline on the workflow's thread; the async one
(``framework.engine.scheduler``) lets other branches run meanwhile. The logic is one for both.
A wait on an event (``wait``, and ``callback``'s ``cb.result()``) is :func:`until_taken`'s loop.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from framework.core.progress import WaitInfo
    from framework.core.records import JournalEntry
    from framework.engine.replay import Replay

IN_PROCESS_WAIT = 1.0  # waits shorter than this are slept in-process, when time allows


@dataclass(frozen=True, slots=True)
class Wait:
    """Resume at ``wake_at`` (epoch seconds). For an event wait, ``event_type`` and the keys of the
    events of that type already seen: an arrival wakes the instance once it has suspended. ``shown``:
    the wait as the instance's status shows it, if the run suspends on it."""

    wake_at: float
    reason: str
    event_type: str | None = None
    seen: frozenset[str] = field(default_factory=frozenset)
    shown: WaitInfo | None = None


@dataclass(frozen=True, slots=True)
class RunBody:
    """Run a step body, at most ``seconds`` long: send back its return value, or throw its error
    (a StepTimeoutError when it ran too long)."""

    body: Callable[[], Any]
    seconds: float
    is_async: bool = False  # the body returns a coroutine: it runs on the body loop, not a thread


Request = Wait | RunBody
Operation = Generator[Request, Any, Any]


HISTORY_END = "replay check: the recorded history ends here"
FOREVER = 10.0**9  # seconds: a wait that no replay check outlives


def served(r: Replay, request: Request) -> Request:
    """What the driver serves for ``request``: the request itself, but in a replay check, where no body
    runs, a step body becomes a wait for ever (the check ends where the history does)."""
    if isinstance(request, RunBody) and r.inv.env.replay_only:
        return Wait(r.inv.now() + FOREVER, HISTORY_END)
    return request


def advance(operation: Operation, value: Any, error: Exception | None) -> tuple[bool, Any]:
    """Resume ``operation`` with what its last request gave (``value``, or ``error`` thrown in). Return
    (True, its result) once it ends, or (False, its next request)."""
    try:
        request = operation.send(value) if error is None else operation.throw(error)
    except StopIteration as stop:
        return True, stop.value
    return False, request


@dataclass(frozen=True, slots=True)
class Taken:
    """What a wait on an event took, and returns: ``value`` (which may be None)."""

    value: Any


def until_taken(
    r: Replay,
    entry: JournalEntry,
    event_type: str,
    reason: str,
    *,
    take: Callable[[JournalEntry], Taken | None],
    deadline: Callable[[JournalEntry], float],
    timed_out: Callable[[JournalEntry, float], Any],
    shown: Callable[[float], WaitInfo] | None = None,
) -> Operation:
    """The loop of a wait on an event for the waiting ``entry``: return what ``take(entry)`` took (it
    records it in the entry, or raises what the entry recorded); else, once ``deadline(entry)`` has
    passed, return what ``timed_out(entry, deadline)`` gives (it records the timeout, and raises it);
    else wait until the deadline, cut short by an event of ``event_type`` not seen yet, and try again
    with the entry as the journal holds it then."""
    while True:
        taken = take(entry)
        if taken is not None:
            return taken.value
        at = deadline(entry)
        if r.inv.now() >= at:
            return timed_out(entry, at)
        seen = frozenset(e.key for e in r.inv.events(event_type))
        yield Wait(at, reason, event_type=event_type, seen=seen, shown=shown(at) if shown else None)
        entry = r.journal.get(entry.op_id) or entry


__all__ = [
    "HISTORY_END",
    "IN_PROCESS_WAIT",
    "Operation",
    "Request",
    "RunBody",
    "Taken",
    "Wait",
    "advance",
    "served",
    "until_taken",
]
