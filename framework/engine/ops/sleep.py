"""``step.sleep`` and ``step.sleep_until``: wait until a time recorded on first run."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from framework.core.logs import logger
from framework.core.progress import WaitInfo, WaitKind
from framework.core.records import EntryKind, EntryStatus, JournalEntry
from framework.engine.ops import Operation, Wait

if TYPE_CHECKING:
    from framework.engine.replay import Claim, Replay


def run(r: Replay, claim: Claim, name: str, wake_of: Callable[[float], float]) -> Operation:
    """Sleep ``name`` until ``wake_of(now)``, ``now`` the time of the first run: a replay keeps the
    recorded wake time, whatever the clock or the workflow's arguments say now."""
    op, entry = claim.op, claim.entry
    if entry is None:
        now = r.inv.now()
        new = JournalEntry(
            r.journal.new_seq(),
            EntryKind.SLEEP,
            name,
            EntryStatus.SLEEPING,
            now,
            wake_at=r.inv.wait_until(now, wake_of(now)),
            op=op,
        )
        # Written at the next write, or kept in the instance item by the release if the sleep
        # suspends the run: a sleep is never written again, so it can ride along.
        entry = r.write(None, new, defer=True)
        logger.info("sleep started", extra={"step": name, "wake_at": entry.wake_at})
    assert entry.wake_at is not None
    if entry.wake_at > r.inv.now():
        yield Wait(entry.wake_at, f"sleep {name!r}", shown=WaitInfo(WaitKind.SLEEP, name, entry.wake_at))
