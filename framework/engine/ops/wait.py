"""``step.wait_for_event``: take the next event of a type sent to this run, or time out."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from framework.api.calls import Event, event_of, timeout_message
from framework.core.progress import WaitInfo, WaitKind
from framework.core.records import EntryKind, EntryStatus, JournalEntry
from framework.engine.ops import Operation, Taken, until_taken
from framework.errors import WorkflowTimeoutError

if TYPE_CHECKING:
    from framework.engine.replay import Claim, Replay


def run(r: Replay, claim: Claim, name: str, event_type: str, seconds: float) -> Operation:
    """Wait ``name`` for an event of ``event_type``, first in first out; raise WorkflowTimeoutError
    once ``seconds`` passed since the wait began."""
    op, entry = claim.op, claim.entry
    # -- check
    r.same_as_recorded(entry, f"wait {name!r}", "event_type", event_type)
    if entry is not None and entry.status is EntryStatus.COMPLETE:
        return event_of(entry)
    if entry is not None and entry.status is EntryStatus.TIMED_OUT:
        raise WorkflowTimeoutError(timeout_message(entry))
    # -- execute
    if entry is None:
        now = r.inv.now()
        waiting = JournalEntry(
            r.journal.new_seq(),
            EntryKind.WAIT,
            name,
            EntryStatus.WAITING,
            now,
            wake_at=r.inv.wait_until(now, now + seconds),
            extra={"event_type": event_type, "timeout": seconds},
            op=op,
        )
        entry = r.write(None, waiting)

    def timed_out(entry: JournalEntry, at: float) -> Event:
        ended = r.write(entry, replace(entry, status=EntryStatus.TIMED_OUT, ended_at=at))
        raise WorkflowTimeoutError(timeout_message(ended))

    event: Event = yield from until_taken(
        r,
        entry,
        event_type,
        f"wait {name!r} for {event_type!r}",
        take=lambda entry: _take(r, entry, event_type),
        deadline=_wake_at,
        timed_out=timed_out,
        shown=lambda at: WaitInfo(WaitKind.EVENT, name, at, event_type=event_type),
    )
    return event


def _wake_at(entry: JournalEntry) -> float:
    assert entry.wake_at is not None
    return entry.wake_at


def _take(r: Replay, entry: JournalEntry, event_type: str) -> Taken | None:
    """The oldest event of the type that no wait of this run took yet, recorded as taken by ``entry``."""
    taken = {e.extra["event_key"] for e in r.journal.completed_waits()} | set(r.inv.taken)
    event = next((e for e in r.inv.events(event_type) if e.key not in taken), None)
    if event is None:
        return None
    done = replace(
        entry,
        status=EntryStatus.COMPLETE,
        ended_at=r.inv.now(),
        extra=entry.extra | {"event_key": event.key, "payload": event.payload, "sent_at": event.sent_at},
    )
    written = r.write(entry, done)
    r.inv.taken.append(event.key)
    return Taken(event_of(written))
