"""``step.wait_for_event``: take the next event of a type sent to this run, or time out."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from framework.api.calls import Event, event_of, timeout_message
from framework.core.records import EntryKind, EntryStatus, JournalEntry
from framework.engine.ops import Operation, Wait
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
            wake_at=now + seconds,
            extra={"event_type": event_type, "timeout": seconds},
            op=op,
        )
        entry = r.write(None, waiting)
    while True:
        taken = _take(r, entry, event_type)
        if taken is not None:
            return taken
        assert entry.wake_at is not None
        if r.inv.now() >= entry.wake_at:
            timed_out = r.write(entry, replace(entry, status=EntryStatus.TIMED_OUT, ended_at=entry.wake_at))
            raise WorkflowTimeoutError(timeout_message(timed_out))
        events = r.inv.events(event_type)
        seen = frozenset(e.key for e in events)
        yield Wait(entry.wake_at, f"wait {name!r} for {event_type!r}", event_type=event_type, seen=seen)
        entry = r.journal.get(entry.op_id) or entry


def _take(r: Replay, entry: JournalEntry, event_type: str) -> Event | None:
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
    return event_of(written)
