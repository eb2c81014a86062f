"""The records the store keeps: one instance item and the journal entries of its current run."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Self

from framework.core import serde
from framework.core.progress import NO_COUNTS, RunningStep, StepCounts, WaitInfo
from framework.errors import StepFailedError

MAX_ERROR_MESSAGE = 4096


class Status(StrEnum):
    """Instance statuses, exact strings shared with Cloudflare Workflows."""

    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    ERRORED = "errored"
    TERMINATED = "terminated"
    COMPLETE = "complete"
    WAITING = "waiting"
    WAITING_FOR_PAUSE = "waitingForPause"
    ROLLING_BACK = "rollingBack"  # running the undos of a rollback (framework.engine.saga)
    UNKNOWN = "unknown"


FINISHED = frozenset({Status.COMPLETE, Status.ERRORED, Status.TERMINATED})
# Statuses in which a worker may take the lease and run the workflow.
# A rollingBack one is runnable: a crash mid-rollback leaves it so, and its next invocation resumes it.
RUNNABLE = frozenset({Status.QUEUED, Status.RUNNING, Status.WAITING, Status.ROLLING_BACK})


class EntryKind(StrEnum):
    STEP = "step"
    SLEEP = "sleep"
    WAIT = "wait"
    EVENT = "event"
    CHILD = "child"  # step.child, and each item of a map or branch of a parallel: a scope of its own
    MAP = "map"  # step.map: its BatchResult, once the batch ended
    PARALLEL = "parallel"  # step.parallel: likewise
    CONDITION = "condition"  # step.wait_for_condition: one entry, rewritten at each check
    CALLBACK = "callback"  # step.create_callback: waits for a sender (framework.engine.ops.callback)
    INVOKE = "invoke"  # step.invoke: a child instance, and the completion it reported (ops.invoke)
    PATCH = "patch"  # step.patched: a marker that this run took a patch's new code (ops.patch)


# Kinds whose entry, once finished, stands for every call made inside its scope: replay returns what it
# recorded and never reaches the calls under its op id.
SCOPES = frozenset({EntryKind.CHILD, EntryKind.MAP, EntryKind.PARALLEL})


class EntryStatus(StrEnum):
    COMPLETE = "complete"  # a step with its result; a wait with the event it took
    FAILED = "failed"  # a step whose retries ran out: replay raises StepFailedError
    RETRYING = "retrying"  # a step between attempts: ``next_attempt_at`` says when
    STARTED = "started"  # an at-most-once step whose attempt began
    SLEEPING = "sleeping"  # a sleep: done once the clock passes ``wake_at``
    WAITING = "waiting"  # a wait for an event: times out at ``wake_at``
    TIMED_OUT = "timed_out"  # a wait whose timeout passed first: replay raises WorkflowTimeoutError


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    name: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "message": self.message}

    @classmethod
    def of(cls, exc: BaseException, limit: int = MAX_ERROR_MESSAGE) -> Self:
        """The error's class name and message, the message cut to ``limit`` characters so that the
        items that store it stay far below DynamoDB's 400 KB."""
        if isinstance(exc, StepFailedError):  # whatever built-in class it also is: what failed, and how
            message, name = serde.error_text(Exception(exc.description)), "StepFailedError"
        else:
            message, name = serde.error_text(exc), type(exc).__name__  # UTF-8, no pydantic input
        if len(message) > limit:
            message = message[:limit] + f"... ({len(message) - limit} more characters)"
        return cls(name, message)


@dataclass(frozen=True, slots=True)
class Attempt:
    started_at: float
    ended_at: float | None = None
    error: ErrorInfo | None = None


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One durable call of a run. ``rev`` counts the writes of this entry (1 on the first put)."""

    seq: int
    kind: EntryKind
    name: str
    status: EntryStatus
    started_at: float
    ended_at: float | None = None
    rev: int = 1
    result: str | None = None  # JSON text from serde.encode, or None when stored in the blob store
    result_ref: str | None = None
    attempts: tuple[Attempt, ...] = ()
    error: ErrorInfo | None = None  # the last attempt's error, for FAILED steps
    wake_at: float | None = None  # sleeps: when they end; RETRYING steps: the next attempt
    extra: dict[str, Any] = field(default_factory=dict)  # room for waits and events
    # The durable call's identity (``framework.engine.identity``): its scope path and its position there, such
    # as "3" or "2.0.1". None in entries written before identities existed, which are root calls whose
    # position is their seq.
    op: str | None = None

    def __post_init__(self) -> None:
        if self.op == str(self.seq):  # one spelling of a root call's identity, so entries compare equal
            object.__setattr__(self, "op", None)

    @property
    def op_id(self) -> str:
        """The identity replay matches this entry by."""
        return self.op if self.op is not None else str(self.seq)

    def next_rev(self, **changes: Any) -> JournalEntry:
        return replace(self, rev=self.rev + 1, **changes)


def tail_bytes(entries: tuple[JournalEntry, ...]) -> int:
    """About what ``entries`` add to the instance item, on the high side: their results, names and
    attempt records, and some 200 bytes each."""
    return sum(200 + len(e.result or "") + len(e.name.encode()) + 800 * len(e.attempts) for e in entries)


@dataclass(frozen=True, slots=True, order=True)
class RunKey:
    """Which run of which instance some data belongs to. ``incarnation`` is drawn at random when an
    instance is created, so an instance that reuses the id of an older one (removed by TTL or deleted)
    has another: journal entries, events and blobs are stored under it, and no instance can read
    another's, whatever is left of the older one."""

    incarnation: str
    number: int

    def __str__(self) -> str:
        return f"{self.incarnation}.{self.number}"


def new_incarnation() -> str:
    """A fresh incarnation: 48 random bits, so two instances of one id never share one."""
    return secrets.token_hex(6)


def new_version() -> str:
    """A fresh version token for the instance item (``InstanceRecord.version``)."""
    return secrets.token_hex(6)


@dataclass(frozen=True, slots=True)
class ParentLink:
    """Where a child instance (``step.invoke``) reports its end: the parent's id, the run that started
    it, and the durable call that waits. A report to any other run of the parent is dropped."""

    instance_id: str
    run: RunKey
    op: str


@dataclass(frozen=True, slots=True)
class InstanceRecord:
    """The instance item. Lease fields are set only while an invocation runs the instance."""

    id: str
    workflow: str
    status: Status
    params: str  # JSON text
    created_at: float
    updated_at: float
    incarnation: str  # see RunKey: fixed at creation, kept by restart
    run: int = 1
    output: str | None = None
    output_ref: str | None = None
    error: ErrorInfo | None = None
    wake_at: float | None = None
    due_at: float | None = None  # when the sweeper should look at it; None once finished or parked
    lease_owner: str | None = None
    lease_until: float | None = None
    crash_mark: str | None = None  # journal position at the last crash detected
    crash_count: int = 0  # crashes in a row at ``crash_mark``
    expires_at: int | None = None
    pause_requested: bool = False  # pause() on a running instance: it pauses at its next boundary
    backoff: int = 0  # failed AWS calls in a row: the next hand-over waits 5 s x 2^backoff
    # Journal entries kept in this item instead of items of their own: a sleep that suspended the run,
    # and a finished run's last step. Each rides along with the write that had to happen anyway (the
    # release), which saves a write per sleep and per run. The replay and readers merge them
    # (``with_tail``).
    tail: tuple[JournalEntry, ...] = ()
    released_by: str | None = None  # the lease owner of the last clean release: who wrote last
    # A token every write of the instance item replaces (DynamoDB store): a read-then-write control
    # operation is conditioned on it, so it fails, and reads again, if anything changed meanwhile.
    version: str = ""
    parent: ParentLink | None = None  # set on the child instances that ``step.invoke`` starts
    rollback_requested: bool = False  # terminate(rollback=True): undo, then end terminated
    # What the run is doing (framework.core.progress): the waits it suspended on (written by the
    # release), the step attempts of the leased invocation that run long (marked while they run), and
    # the counts over its steps (written by the release and by the unmarking of a long step).
    waits: tuple[WaitInfo, ...] = ()
    running: tuple[RunningStep, ...] = ()
    counts: StepCounts = NO_COUNTS
    # skip_wait() (``workflows dev``): the next invocation ends the waits whose deadline is at or before
    # this time now, as if the time had passed (framework.engine.skip); its release clears it.
    skip_to: float | None = None
    # The version of the workflow's code this instance started on (``@workflow(version=...)``): it runs
    # that version's code while it is registered. None for an unversioned workflow.
    code_version: str | None = None
    # The value of the workflow's limit key for this instance (``@workflow(key=...)``), computed once
    # when it is created: which limiter's slots it takes (framework.engine.limits). None: no key.
    limit_key: str | None = None

    @property
    def run_key(self) -> RunKey:
        """The current run's key: what its journal, events and blobs are stored under."""
        return RunKey(self.incarnation, self.run)

    def with_tail(self, journal: list[JournalEntry]) -> list[JournalEntry]:
        """``journal`` (this run's entries, in order) with ``tail`` merged in."""
        if not self.tail:
            return journal
        by_seq = {e.seq: e for e in journal}
        for entry in self.tail:
            stored = by_seq.get(entry.seq)
            if stored is None or stored.rev < entry.rev:
                by_seq[entry.seq] = entry
        return [by_seq[seq] for seq in sorted(by_seq)]

    @property
    def shown_status(self) -> Status:
        """The status users see: a running instance asked to pause is ``waitingForPause``."""
        if self.pause_requested and self.status is Status.RUNNING:
            return Status.WAITING_FOR_PAUSE
        return self.status


@dataclass(frozen=True, slots=True)
class EventRecord:
    """An event sent to an instance. ``key`` orders events of one type, first in first out. The store
    keeps it under the run it was sent to (``RunKey``): a restarted run, or a new instance of the id,
    never sees it."""

    key: str
    type: str
    payload: str  # JSON text
    sent_at: float


class Control(StrEnum):
    PAUSE = "pause"
    RESUME = "resume"
    TERMINATE = "terminate"
    RESTART = "restart"
    ROLLBACK = "rollback"  # terminate(rollback=True): the next invocation runs the undos, then terminates
    SKIP = "skip"  # skip_wait(): the next invocation ends the current wait now (framework.engine.skip)


@dataclass(frozen=True, slots=True)
class Lease:
    """A lease taken by one invocation. ``previous`` is the instance as it was before the lease."""

    owner: str
    until: float
    previous: InstanceRecord

    @property
    def crashed(self) -> bool:
        """True when the previous holder left without releasing: its invocation died."""
        return self.previous.lease_owner is not None
