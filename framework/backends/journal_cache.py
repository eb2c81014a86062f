"""A warm container's copy of the journals it replayed, so that a resume reads only what changed.

Without it, an instance that resumes after each of n steps reads 1 + 2 + ... + n entries: n²/2. With
it, a resume in the same container reads the entries from the first one that may have changed since:
entries in a final status are never written again, and a run's journal only grows at its end.
A container that never saw the instance reads the whole journal, as before. ``docs/performance.md``
shows the difference.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

from framework.core.records import EntryStatus, InstanceRecord, JournalEntry, RunKey

if TYPE_CHECKING:
    from framework.backends.store import Store

# Statuses an entry never leaves: later writes to the journal cannot touch it.
FINAL = frozenset({EntryStatus.COMPLETE, EntryStatus.FAILED, EntryStatus.TIMED_OUT, EntryStatus.SLEEPING})
ENTRY_OVERHEAD = 300  # bytes an entry takes beside its result, roughly


def _size(journal: list[JournalEntry]) -> int:
    return sum(ENTRY_OVERHEAD + len(e.result or "") for e in journal)


class JournalCache:
    """Journals by instance id and run (``RunKey``), least recently used dropped past ``max_bytes``.
    A re-created instance (same id) has another incarnation, a restarted one another run: neither can
    see an older journal. Thread-safe."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        # key -> (journal, its size, the owner of the lease that wrote it last)
        self._journals: OrderedDict[tuple[str, RunKey], tuple[list[JournalEntry], int, str]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def load(self, store: Store, record: InstanceRecord, *, crashed: bool) -> list[JournalEntry]:
        """The run's journal. If this container's lease wrote last (``record.released_by``) and no
        invocation crashed since, the cached journal is the stored one: no read at all. Otherwise the
        cached final entries, plus whatever the store holds after them."""
        with self._lock:
            cached, size, writer = self._journals.pop((record.id, record.run_key), ([], 0, ""))
            self._bytes -= size
        if cached and not crashed and record.released_by == writer:
            return cached
        keep = 0
        while keep < len(cached) and cached[keep].seq == keep and cached[keep].status in FINAL:
            keep += 1
        return cached[:keep] + store.load_journal(record.id, record.run_key, from_seq=keep)

    def keep(self, record: InstanceRecord, journal: list[JournalEntry], owner: str) -> None:
        """Remember ``journal`` as written to the store under ``owner``'s lease. Call it only after a
        clean release: no entry may be waiting to be written, and the lease was held to the end."""
        size = _size(journal)
        if size > self.max_bytes:
            return
        with self._lock:
            key = (record.id, record.run_key)
            old = self._journals.pop(key, None)
            self._bytes -= old[1] if old else 0
            self._journals[key] = (list(journal), size, owner)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, dropped, _) = self._journals.popitem(last=False)
                self._bytes -= dropped
