"""The state of one replay: the journal matched by identity, the writes, and what stops the run.

Shared by the sync and the async ``step`` facades (``framework.engine.step``) and by the durable operations
(``framework.engine.ops``). Every method runs on the thread that runs the workflow's code.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from framework.core.faults import point
from framework.core.progress import WaitInfo
from framework.core.records import EntryKind, EntryStatus, JournalEntry, tail_bytes
from framework.engine.identity import CURRENT, Journal, Scope
from framework.errors import (
    NonDeterminismError,
    NonRetryableError,
    RollbackRequested,
    Suspend,
    WorkflowError,
)

if TYPE_CHECKING:
    from framework.engine.invocation import Invocation

# The replay whose step body the running code is in (a context variable: set per thread, and per task on
# the body loop), so that a durable call from inside a body gets a clear error. Another replay's calls
# stay allowed: a test may run an invocation from inside a body to make two overlap.
BODY_OF: contextvars.ContextVar[object | None] = contextvars.ContextVar("framework_body_of", default=None)


@contextlib.contextmanager
def step_body(owner: object) -> Iterator[None]:
    """Mark the code run inside as a step body of ``owner``'s replay."""
    token = BODY_OF.set(owner)
    try:
        yield
    finally:
        BODY_OF.reset(token)


@dataclass(frozen=True, slots=True)
class Claim:
    """A durable call's identity, its recorded entry (if any), and the count of its name in its scope."""

    op: str
    entry: JournalEntry | None
    count: int


def _finished(entry: JournalEntry | None) -> bool:
    return entry is not None and entry.status in (
        EntryStatus.COMPLETE,
        EntryStatus.FAILED,
        EntryStatus.TIMED_OUT,
    )


class Replay:
    """One invocation's replay of a run."""

    def __init__(self, invocation: Invocation, journal: list[JournalEntry], crash_charge: int) -> None:
        self.inv = invocation
        invocation.replay = self  # its release reads the counts and waits below
        self.journal = Journal(journal, invocation.env.settings.max_history)
        self.root = Scope("")
        self.crash_charge = crash_charge
        self.problem: BaseException | None = None  # a Suspend or fatal error the user may have caught
        self.steps_run = 0
        self.closing = False  # the run is over: tasks still alive are being cancelled
        self._thread = threading.get_ident()
        # Sleeps' entries, written at the next write; if the run suspends, or the workflow ends first,
        # they go with the release instead (``take_pending``): one write less per sleep. Only a sleep
        # waits so: running it again has no effect but on its wake time.
        self._pending: list[JournalEntry] = []
        # What the run waits on when it suspends on waits (the drivers set it): the release keeps it.
        self.waits: tuple[WaitInfo, ...] = ()
        # step.patched's answers in this run, by scope path and patch id (ops.patch)
        self.patches: dict[tuple[str, str], bool] = {}

    # -- the boundary of every durable call ---------------------------------------------------------
    def claim(self, kind: EntryKind, name: str, *, op: str | None = None) -> Claim:
        """Take the calling scope's next identity for a durable call: its op id and its entry, if
        recorded. ``op`` gives the identity instead (an item of a batch, numbered by its index). Raise
        what stops the run: a suspension or a fatal error the workflow swallowed, an engine failure, a
        requested pause, a changed workflow."""
        self.boundary()
        count = 1
        if op is None:
            scope = CURRENT.get(self.root)
            op = scope.claim()
            scope.names[name] += 1
            count = scope.names[name]
        try:
            entry = self.journal.claim(op, kind, name)
        except WorkflowError as exc:
            self.stop(exc)
            raise  # stop() raised already
        if self.inv.rollback_requested and not self.inv.rolling_back and not _finished(entry):
            raise RollbackRequested  # the replay reached what is new: undo, then end terminated
        return Claim(op, entry, count)

    def boundary(self) -> None:
        """The checks of every durable call, and of a wait on an earlier one (``cb.result()``): raise
        what stops the run, and write the pending entries."""
        self._check_caller()
        if self.closing:
            import asyncio  # only an async run has tasks to cancel

            raise asyncio.CancelledError
        if self.problem is not None:
            raise self.problem  # the workflow swallowed a suspension or a fatal error: stop again
        if self.inv.failure is not None:
            raise self.inv.failure  # it swallowed an engine failure (with a bare except)
        self.flush()
        if self.inv.pause_requested():
            self.stop(Suspend(self.inv.now(), "paused"))

    def _check_caller(self) -> None:
        if BODY_OF.get() is self:
            raise NonRetryableError(
                "durable calls (step.do, step.sleep, ...) cannot be nested in a step body"
            )
        if threading.get_ident() != self._thread:
            raise NonRetryableError(
                "a durable call (step.do, step.sleep, ...) was made from a thread other than the "
                "workflow's: to run steps concurrently, write an async workflow and use asyncio.gather"
            )

    def stop(self, problem: BaseException) -> None:
        """Stop the run with ``problem``, raised again at every later durable call."""
        self.problem = problem
        raise problem

    def same_as_recorded(self, entry: JournalEntry | None, what: str, field: str, value: Any) -> None:
        """Stop the run with NonDeterminismError if ``entry`` recorded another ``field`` than ``value``:
        the workflow's code changed under a running instance."""
        if entry is not None and entry.extra.get(field) != value:
            self.stop(
                NonDeterminismError(
                    f"{what} (durable call {entry.op_id}) has {field} {value!r}, but the journal "
                    f"recorded {entry.extra.get(field)!r}"
                )
            )

    def unreached_error(self, ended: str = "returned") -> NonDeterminismError | None:
        """A NonDeterminismError naming the first recorded call this replay never reached, if any:
        the workflow ``ended`` ("returned", or "stopped" where a replay check ran out of history)."""
        missed = self.journal.unreached()
        if missed is None:
            return None
        return NonDeterminismError(
            f"the workflow {ended} after {self.journal.calls} durable calls, but the journal recorded "
            f"{missed.kind.value} {missed.name!r} as call {missed.op_id}, which this run never reached: "
            "the workflow code changed"
        )

    def finish(self) -> None:
        """After the workflow returned: raise what it swallowed, or a NonDeterminismError if the
        journal holds calls that this run no longer made."""
        if self.inv.failure is not None:  # first: an entry may be unwritten; hand over, don't suspend
            raise self.inv.failure
        if self.problem is not None:
            raise self.problem
        error = self.unreached_error()
        if error is not None:
            self.stop(error)

    # -- writes ---------------------------------------------------------------------------------
    def write(
        self, previous: JournalEntry | None, entry: JournalEntry, *, defer: bool = False
    ) -> JournalEntry:
        """Write ``entry`` as the next revision of ``previous``, or, with ``defer``, at the next write."""
        self.flush()
        entry = _revised(previous, entry)
        if defer:
            self._pending.append(entry)
        else:
            self._put(entry)
        self.journal.put(entry)
        return entry

    def flush(self) -> None:
        """Write the pending entries (sleeps). Each stays pending until its write succeeds."""
        while self._pending:
            self._put(self._pending[0])
            self._pending.pop(0)

    def _put(self, entry: JournalEntry) -> None:
        where = {"instance_id": self.inv.instance_id, "seq": entry.seq, "name": entry.name}
        point("journal.before_write", **where, status=entry.status)
        self.inv.write_entry(entry)
        point("journal.after_write", **where, status=entry.status)

    def take_pending(self, max_bytes: int) -> tuple[JournalEntry, ...]:
        """After the workflow ended or suspended: hand over the pending entries for the release to
        keep in the instance item, if they take at most ``max_bytes`` there; write them now if not."""
        pending = tuple(self._pending)
        if tail_bytes(pending) <= max_bytes:
            self._pending.clear()
            return pending
        self.flush()
        return ()

    def entries(self) -> list[JournalEntry]:
        """The journal as this replay left it, in storage order."""
        return self.journal.entries()


def _revised(previous: JournalEntry | None, entry: JournalEntry) -> JournalEntry:
    """``entry`` as the next revision of ``previous`` (rev 1 when there is none)."""
    if previous is None:
        return entry
    return previous.next_rev(**{f: getattr(entry, f) for f in entry.__dataclass_fields__ if f != "rev"})
