"""Skip-wait: end an instance's current wait now, as if its time had passed (``workflows skip``).

``Instance.skip_wait()`` records on a waiting instance the time its run waits for (``skip_to``, its
``wake_at``) and sends a kick. The invocation that the kick starts, holding the lease as any other,
calls :func:`apply` on the journal it replays: each entry still waiting for a deadline at or before
``skip_to`` (a sleep, a retry's next attempt, the timeout of an event wait, a callback, an invoke, a
condition's next check) gets that deadline moved to now, written as a new revision of the entry (or, for
a sleep kept in the instance item, in the item that the release writes). The replay then finds the
deadline passed and goes on as it always does: the sleep ends, the attempt runs, the wait times out.
The release clears ``skip_to``; a crash before it leaves it, and the next invocation applies it again
(an entry already moved is past its deadline, and stays as it is).

Deadlines set by the replay itself are untouched: a new ``step.sleep`` after the skipped one sleeps in
full. A callback's heartbeat deadline is not moved (its ``timeout`` is).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from framework.core.logs import logger
from framework.core.records import EntryKind, EntryStatus, JournalEntry

if TYPE_CHECKING:
    from framework.engine.invocation import Invocation

PENDING = frozenset({EntryStatus.SLEEPING, EntryStatus.WAITING, EntryStatus.RETRYING})


def apply(inv: Invocation, journal: list[JournalEntry]) -> list[JournalEntry]:
    """``journal`` with the waits that the instance's skip request ends moved to now; each moved entry
    is written first (or, for a sleep kept in the instance item, put in ``inv.instance.tail``)."""
    target = inv.lease.previous.skip_to
    if target is None:
        return journal
    now = inv.now()
    tail = {e.seq for e in inv.instance.tail}
    kept = list(inv.instance.tail)
    out: list[JournalEntry] = []
    skipped = 0
    for entry in journal:
        if entry.status in PENDING and entry.wake_at is not None and now < entry.wake_at <= target:
            moved = entry.next_rev(wake_at=now)
            skipped += 1
            if entry.seq in tail and entry.kind is EntryKind.SLEEP:
                # Kept in the item only (a sleep that suspended the run, never written as an item of
                # its own: a deferred sleep is either written or kept): the release writes it.
                kept = [moved if e.seq == entry.seq else e for e in kept]
            else:
                inv.write_entry(moved)  # conditioned on its revision, under this invocation's lease
            out.append(moved)
        else:
            out.append(entry)
    inv.instance = replace(inv.instance, tail=tuple(kept))
    logger.info("waits skipped", extra={"skipped": skipped})
    return out
