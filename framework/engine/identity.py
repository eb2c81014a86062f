"""Identity of durable calls: which journal entry a call on replay is.

A durable call is identified by its **scope** and its **position** in that scope. The workflow function
is the root scope. In an async workflow every task the workflow's code creates (``asyncio.gather`` over
coroutines, ``asyncio.create_task``) is a scope of its own, numbered by the position at which its parent
created it. A call's identity, its *op id*, is the path of positions from the root: ``"3"`` is the
fourth thing the root did, ``"2.0"`` the first call of the task the root created third.

A scope runs its own code in order, so positions inside it do not depend on how concurrent branches
happen to interleave: on first run and on every replay each call gets the same op id, whatever order
steps finished in. A call whose recorded kind or name differs at its op id is a NonDeterminismError.
"""

from __future__ import annotations

import contextvars
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from framework.core.progress import NO_COUNTS, StepCounts
from framework.core.records import SCOPES, EntryKind, EntryStatus, JournalEntry
from framework.errors import HistoryLimitError, NonDeterminismError


@dataclass(slots=True)
class Scope:
    """A sequence of durable calls and child scopes: the root, or one task."""

    path: str  # "" for the root
    _next: int = field(default=0)
    names: Counter[str] = field(default_factory=Counter)  # durable calls of each name made here

    def claim(self) -> str:
        """The next position in this scope, as an op id."""
        position = self._next
        self._next += 1
        return f"{self.path}.{position}" if self.path else str(position)

    def peek(self) -> str:
        """The op id the next durable call in this scope will get, not taken."""
        return f"{self.path}.{self._next}" if self.path else str(self._next)

    def child(self) -> Scope:
        """A new scope at the next position: a task created here."""
        return Scope(self.claim())


# The scope the running code belongs to. Each task created on the workflow loop gets a child scope of
# its creator's (``framework.engine.scheduler``); sync workflows only ever run in the root.
CURRENT: contextvars.ContextVar[Scope] = contextvars.ContextVar("framework_scope")


class Journal:
    """A run's recorded entries by op id, and the calls this replay has made so far."""

    def __init__(self, entries: list[JournalEntry], max_calls: int) -> None:
        self._by_op = {entry.op_id: entry for entry in entries}
        # The op ids of scopes that hold recorded calls (a child, a batch, a task), finished or not.
        self._inside = {ancestor for op in self._by_op for ancestor in _ancestors(op)}
        self._seqs = {entry.seq: entry for entry in entries}
        self._claimed: set[str] = set()
        self._max_calls = max_calls
        self._next_seq = max(self._seqs, default=-1) + 1
        self.calls = 0
        # Over the run's step entries, kept up to date by ``put``: the instance's status shows them.
        self.counts = sum((counts_of(e) for e in entries), NO_COUNTS)

    def claim(self, op: str, kind: EntryKind, name: str) -> JournalEntry | None:
        """Record that this replay reached durable call ``op``; return its entry, if recorded."""
        if self.calls >= self._max_calls:
            raise HistoryLimitError(
                f"the run made {self.calls} durable calls, the most one run may make "
                "(WORKFLOWS_MAX_HISTORY): split the work across instances"
            )
        if op in self._claimed:  # cannot happen through Scope; guards against a reused scope
            raise NonDeterminismError(f"durable call {op} was made twice in one replay")
        self.calls += 1
        self._claimed.add(op)
        entry = self._by_op.get(op)
        if entry is None and kind in LEAVES and op in self._inside:
            raise NonDeterminismError(
                f"durable call {op} is {kind.value} {name!r}, but the journal recorded calls inside a "
                "scope there (a child, a batch or a task): the workflow code changed"
            )
        if entry is not None and (entry.kind != kind or entry.name != name):
            raise NonDeterminismError(
                f"durable call {op} is {kind.value} {name!r}, but the journal recorded "
                f"{entry.kind.value} {entry.name!r} there: the workflow code changed, or depends on "
                "something other than its params and step results"
            )
        return entry

    def new_seq(self) -> int:
        """The storage position of a new entry: entries are numbered in the order they are created."""
        seq = self._next_seq
        self._next_seq += 1
        return seq

    def get(self, op: str) -> JournalEntry | None:
        return self._by_op.get(op)

    def occupied(self, op: str) -> bool:
        """Whether the journal recorded anything at ``op``: its own entry, or calls inside its scope."""
        return op in self._by_op or op in self._inside

    def put(self, entry: JournalEntry) -> None:
        self.counts = self.counts - counts_of(self._by_op.get(entry.op_id)) + counts_of(entry)
        self._by_op[entry.op_id] = entry
        self._seqs[entry.seq] = entry
        self._inside.update(_ancestors(entry.op_id))

    def unreached(self) -> JournalEntry | None:
        """The first recorded entry this replay never reached, if any."""
        closed = tuple(
            f"{op}."
            for op, e in self._by_op.items()
            if e.kind in SCOPES
            and e.status in (EntryStatus.COMPLETE, EntryStatus.FAILED)
            and op in self._claimed
        )
        missed = [e for op, e in self._by_op.items() if op not in self._claimed and not op.startswith(closed)]
        return min(missed, key=lambda e: e.seq) if missed else None

    def entries(self) -> list[JournalEntry]:
        """All entries, in storage order."""
        return [self._seqs[seq] for seq in sorted(self._seqs)]

    def completed_waits(self) -> list[JournalEntry]:
        return [e for e in self._seqs.values() if e.kind is EntryKind.WAIT and "event_key" in e.extra]


# Calls that never hold calls of their own: one recorded inside them means the code changed.
LEAVES = frozenset({EntryKind.STEP, EntryKind.SLEEP, EntryKind.WAIT, EntryKind.PATCH})


def _ancestors(op: str) -> Iterator[str]:
    """The op ids of the scopes that ``op`` is inside: "2" and "2.0" for "2.0.1"."""
    parts = op.split(".")
    for end in range(1, len(parts)):
        yield ".".join(parts[:end])


def counts_of(entry: JournalEntry | None) -> StepCounts:
    """What one journal entry adds to the run's counts: only step entries add anything."""
    if entry is None or entry.kind is not EntryKind.STEP:
        return NO_COUNTS
    failures = sum(1 for a in entry.attempts if a.error is not None)
    failed = entry.status is EntryStatus.FAILED
    return StepCounts(
        steps_done=int(entry.status is EntryStatus.COMPLETE),
        steps_failed=int(failed),
        retries=max(failures - int(failed), 0),
        failures=failures,
    )
