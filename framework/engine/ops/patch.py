"""``step.patched`` and ``step.deprecate_patch``: change workflow code under running instances.

A patch marker is a journal entry of kind ``patch``. ``patched(id)`` looks at the position its call
would take in the calling scope, without taking it first:

- a marker of ``id`` is recorded there: this run took the new code before, so it takes it again (True);
- any other call is recorded there: the run recorded the old code's path, so it keeps it (False), and
  the position stays free for the old code's next call;
- nothing is recorded there: the run is past its history and takes the new code (True), with a marker
  written at the next write, before anything that depends on the answer.

"Recorded there" counts calls inside a scope at that position too (a child, a batch, a task) whose own
entry is not written yet. The answer for one id is the same for the rest of the run in the same scope
(it is remembered per scope, so that it never depends on which branch asks first), as in Temporal.
``deprecate_patch(id)`` takes a marker of ``id`` if one is recorded at its position, and nothing else:
once every instance that could run the old code has ended, the ``if`` goes, and instances that recorded
the marker still replay.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from framework.core.records import EntryKind, EntryStatus, JournalEntry
from framework.engine.identity import CURRENT

if TYPE_CHECKING:
    from framework.engine.replay import Replay


def patched(r: Replay, patch_id: str) -> bool:
    """Whether this run takes the code of patch ``patch_id`` (see the module's docstring)."""
    scope = CURRENT.get(r.root)
    key = (scope.path, patch_id)
    if key in r.patches:
        return r.patches[key]
    r.boundary()
    at = scope.peek()
    recorded = r.journal.get(at)
    if r.journal.occupied(at) and (recorded is None or not _marker_of(recorded, patch_id)):
        r.patches[key] = False  # a call, or a scope with calls inside, of the old code's path
        return False
    claim = r.claim(EntryKind.PATCH, patch_id)
    if claim.entry is None:
        now = r.inv.now()
        marker = JournalEntry(
            r.journal.new_seq(), EntryKind.PATCH, patch_id, EntryStatus.COMPLETE, now, now, op=claim.op
        )
        # Deferred as a sleep is: nothing that depends on the answer is written before it is.
        r.write(None, marker, defer=True)
    r.patches[key] = True
    return True


def deprecate_patch(r: Replay, patch_id: str) -> None:
    """Take the marker of ``patch_id`` at this position if the run recorded one; record nothing."""
    r.boundary()
    recorded = r.journal.get(CURRENT.get(r.root).peek())
    if recorded is not None and _marker_of(recorded, patch_id):
        r.claim(EntryKind.PATCH, patch_id)


def _marker_of(entry: JournalEntry, patch_id: str) -> bool:
    return entry.kind is EntryKind.PATCH and entry.name == patch_id
