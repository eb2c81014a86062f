"""The storage Protocol, its conflicts, and the helpers its implementations share.

The Protocol is a handful of dumb primitives, each one conditional write or one read. The implementations
live in ``framework.backends.dynamodb`` and ``framework.backends.memory``; both pass ``tests/contract``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, replace
from typing import Protocol

from framework.backends.limiter import LimiterState, Waiter
from framework.core.callbacks import CallbackId
from framework.core.progress import RunningStep, StepCounts, WaitInfo
from framework.core.records import (
    FINISHED,
    Control,
    ErrorInfo,
    EventRecord,
    InstanceRecord,
    JournalEntry,
    Lease,
    RunKey,
    Status,
)
from framework.errors import InstanceAlreadyExistsError, InvalidStateError


class InstanceTaken(InstanceAlreadyExistsError):
    """A create found ids taken. ``existing`` maps each taken id to its instance as stored when the
    write failed (DynamoDB returns it with the failure itself, so no write can come in between); an id
    whose instance is gone by the time it could be read is left out (a TTL delete), and is free again.
    The client turns it into success or a plain InstanceAlreadyExistsError (``WorkflowClient.create``)."""

    def __init__(self, message: str, existing: dict[str, InstanceRecord]) -> None:
        super().__init__(message)
        self.existing = existing


class LeaseConflict(Exception):
    """The lease was not granted. ``current`` is the instance as stored, or None if it is missing."""

    def __init__(self, current: InstanceRecord | None) -> None:
        super().__init__("lease not granted")
        self.current = current


class LeaseLost(BaseException):
    """A conditional write found that another invocation owns the instance now. Stop at once."""


@dataclass(frozen=True, slots=True)
class Release:
    """What an invocation writes to the instance item as it lets go of the lease."""

    status: Status
    now: float
    wake_at: float | None = None  # WAITING: when to wake (None: wait with no deadline)
    due_at: float | None = None  # WAITING: when the sweeper should look (default: ``wake_at``); a
    # finished child (``step.invoke``): when the sweeper reports its end to the parent, if nobody did
    output: str | None = None
    output_ref: str | None = None
    error: ErrorInfo | None = None
    expires_at: int | None = None  # finished instances: the TTL
    tail: tuple[JournalEntry, ...] = ()  # entries kept in the instance item (InstanceRecord.tail)
    waits: tuple[WaitInfo, ...] = ()  # WAITING: what the run suspended on (framework.core.progress)
    counts: StepCounts | None = None  # the run's step counts now (None: keep the stored ones)

    def due_on_wait(self) -> float | None:
        return self.due_at if self.due_at is not None else self.wake_at


# A new instance carries no ``due_at`` (so that its create and completion write no index); the sweeper
# looks at each once, after the grace, and gives one that runs, or was never woken, a ``due_at``.
WATCHED = frozenset({Status.QUEUED, Status.RUNNING, Status.ROLLING_BACK})
# Releases that a pause request turns into PAUSED: a wait, and a wait for a slot (framework.engine.limits).
PAUSABLE = frozenset({Status.WAITING, Status.QUEUED})


def released(lease: Lease, release: Release) -> InstanceRecord:
    """The instance after ``release``: its new status and fields, and no lease. Both stores write it."""
    waiting = release.status is Status.WAITING
    return replace(
        lease.previous,
        status=release.status,
        updated_at=release.now,
        wake_at=release.wake_at,
        due_at=release.due_on_wait() if waiting else release.due_at,
        output=release.output,
        output_ref=release.output_ref,
        error=release.error,
        expires_at=release.expires_at,
        tail=release.tail,
        waits=release.waits,
        running=(),  # no step runs once the lease is let go
        counts=lease.previous.counts if release.counts is None else release.counts,
        released_by=lease.owner,  # lets this container's journal cache know nobody wrote since
        lease_owner=None,
        lease_until=None,
        crash_mark=None,
        crash_count=0,
        pause_requested=False,
        rollback_requested=False,
        skip_to=None,
        backoff=0,
    )


@dataclass(frozen=True, slots=True)
class DueInstance:
    id: str
    due_at: float
    wake_at: float | None  # in the past for a running or crashed instance: nothing to wait for


@dataclass(frozen=True, slots=True)
class ScheduleState:
    """A workflow schedule's item (framework.engine.schedules): every fire at or before ``mark`` is
    handled; ``paused``: none fires; ``last_fire``: the newest fire that started an instance."""

    mark: float
    paused: bool = False
    last_fire: float | None = None


def shard_of(instance_id: str, shards: int) -> str:
    """The sweeper index partition of an instance: stable, spread evenly."""
    return str(zlib.crc32(instance_id.encode()) % shards)


class Store(Protocol):
    def create_instance(self, record: InstanceRecord) -> None:
        """Write a new instance. Raise InstanceTaken (an InstanceAlreadyExistsError) if the id is
        taken, with the instance that holds it."""

    def create_instances(self, records: list[InstanceRecord]) -> None:
        """Write up to 100 new instances, all or none. Raise InstanceTaken naming the ids that are
        taken, with the instances that hold them."""

    def get_instance(self, instance_id: str) -> InstanceRecord | None: ...

    def acquire_lease(
        self, instance_id: str, owner: str, now: float, until: float, *, require_due: bool
    ) -> Lease:
        """Take the lease if the instance is runnable, unleased (or the lease expired) and, with
        ``require_due``, has no ``wake_at`` after ``now``. Set status running and forget the marks of
        running steps (``mark_running``) a crashed invocation left. Raise LeaseConflict.

        A due wake-up leaves ``due_at`` (and ``wake_at``) as they are: ``due_at`` is then at most one
        sweep grace ahead, so the sweeper finds a crashed invocation, and leaving the due-index key
        alone saves two index writes per invocation. A kick (``require_due=False``) may come while
        ``due_at`` is far ahead (a parked wait), so it sets ``due_at = until`` and drops ``wake_at``."""

    def load_journal(self, instance_id: str, run: RunKey, from_seq: int = 0) -> list[JournalEntry]:
        """The run's entries from ``from_seq`` on, in order, read strongly consistent. Entries of any
        other run, or of another instance that had the same id, are never returned."""

    def load_journal_page(
        self, instance_id: str, run: RunKey, from_seq: int, limit: int
    ) -> tuple[list[JournalEntry], bool]:
        """Up to ``limit`` of the run's entries from ``from_seq`` on, in order, in one strongly
        consistent read (on DynamoDB one Query page: fewer entries if they pass 1 MB). True if more
        may follow (history pages, ``framework.manage.history_pages``)."""

    def write_entry(self, instance_id: str, run: RunKey, entry: JournalEntry) -> None:
        """Put the entry if ``entry.rev == 1`` and none exists at its seq, or replace it if the stored
        rev is ``entry.rev - 1``. Raise LeaseLost otherwise: someone else wrote there."""

    def expire_lease(self, instance_id: str, owner: str, now: float, due_at: float, backoff: int) -> None:
        """End ``owner``'s lease at ``now`` without releasing it, as a crash would (the next invocation
        counts one); remember ``backoff`` failed hand-overs in a row; the sweeper looks again at
        ``due_at``; forget the marks of running steps. Raise LeaseLost."""

    def mark_running(self, instance_id: str, owner: str, step: RunningStep) -> None:
        """Show ``step`` as running (``InstanceRecord.running``, by its op id), only while ``owner``
        holds the lease, else raise LeaseLost. ``acquire_lease`` forgets every mark, and so does the
        release: no mark outlives the lease that made it."""

    def clear_running(self, instance_id: str, owner: str, op: str, counts: StepCounts) -> None:
        """Forget the mark of the step at ``op`` (it ended) and store ``counts``, only while ``owner``
        holds the lease, else raise LeaseLost."""

    def record_crash(self, instance_id: str, owner: str, mark: str, count: int) -> None:
        """Remember ``count`` crashes in a row at journal position ``mark``. Raise LeaseLost."""

    def mark_rolling_back(self, instance_id: str, owner: str) -> None:
        """Show the instance as rollingBack while its undos run; only while ``owner`` holds the lease,
        else raise LeaseLost. The next lease sets it running again."""

    def release(self, lease: Lease, release: Release) -> Status:
        """Write the new status and drop the lease, if ``lease.owner`` still holds it. Raise LeaseLost.
        A WAITING (or QUEUED) release of an instance with a pause request is stored as PAUSED instead (its
        ``wake_at`` kept for resume), and only while the request is still there: a resume() that
        lands meanwhile is never lost. Return the status stored."""

    def due_instances(self, before: float, limit: int, *, after: float | None = None) -> list[DueInstance]:
        """Unfinished instances whose ``due_at`` is at or before ``before`` (and after ``after``), from
        every shard, earliest first."""

    def created_between(self, after: float, until: float) -> list[InstanceRecord]:
        """Instances created after ``after`` and at or before ``until``, from every shard."""

    def watch(self, instance_id: str, due_at: float) -> bool:
        """Give a queued or running instance that has none a ``due_at``, so that the sweeper finds it if
        its invocation dies. Return False if it has one, or is in another status."""

    def sweep_mark(self) -> float | None:
        """Up to when the last sweep looked for parked waits; None before the first sweep."""

    def set_sweep_mark(self, swept_until: float, *, now: float | None = None) -> None:
        """Move the mark on; a mark already further on stays (two sweeps at once). With ``now``, a mark
        after ``now`` is set back to ``swept_until`` too: a sweeper whose clock ran fast wrote it."""

    def schedule_state(self, workflow: str) -> ScheduleState | None:
        """The state of ``workflow``'s schedule, read strongly consistent; None before its first sweep."""

    def put_schedule_state(
        self, workflow: str, state: ScheduleState, *, expected: ScheduleState | None
    ) -> bool:
        """Write ``state`` only if the stored one has ``expected``'s mark and paused flag (None: if there
        is none yet). Return False, writing nothing, otherwise: another sweep or a pause came first."""

    def postpone(self, instance_id: str, due_at: float, new_due_at: float, *, now: float) -> bool:
        """Move ``due_at`` on if it is still ``due_at`` and no lease is live at ``now``. Return False
        otherwise: it changed meanwhile, or an invocation runs it (the next sweep looks again)."""

    def send_event(self, instance_id: str, event: EventRecord) -> None:
        """Keep the event for the instance's current run. An event whose key is stored already for
        that run is a duplicate and changes nothing. Raise InstanceNotFoundError, or
        InvalidStateError if the instance is finished; the check and the write are one atomic
        operation."""

    def put_event(self, instance_id: str, run: RunKey, event: EventRecord) -> None:
        """Keep ``event`` under ``run`` of the instance, whatever the instance is now: one write, no
        read. Only that run reads it, so an event put for a run that ended or was restarted is never
        seen (runs are keyed by incarnation and number). A key stored already for that run keeps the
        first event. For the engine's own events (children's reports, a map's parts), not users'."""

    def settle(self, instance_id: str, due_at: float) -> bool:
        """Drop the ``due_at`` of a finished instance if it is still ``due_at``: its end was reported to
        its parent. Return False if it changed, or the instance is not finished."""

    def load_events(self, instance_id: str, run: RunKey, event_type: str | None = None) -> list[EventRecord]:
        """The run's events (of one type, or all), oldest first."""

    def delete_events(self, instance_id: str, run: RunKey, keys: list[str]) -> None:
        """Forget events that a wait took (the journal holds them now), so that later waits do not
        read them again. Deleting one that is gone already is no error."""

    def control(self, instance_id: str, action: Control, now: float, expires_at: int) -> InstanceRecord:
        """Pause, resume, terminate or restart; see ``control_outcome``. Return the instance after.
        The outcome is computed from the instance as it is when it is written: a control that raced
        with any other write is computed again."""

    def list_instances(
        self, workflow: str | None, status: Status | None, limit: int, before: tuple[float, str] | None
    ) -> tuple[list[InstanceRecord], bool]:
        """Instances newest first, created before ``before`` (created_at, id). True if more remain."""

    def purge(self, instance_id: str) -> int:
        """Delete what is left of instances of this id that are gone: the journals of all runs and the
        events of every incarnation but the one of the instance that has the id now, if any. The items
        are found before the instance item is read, so an instance created meanwhile keeps all it
        wrote. Return how many were deleted."""

    # -- callbacks (framework.engine.ops.callback) ---------------------------------------------------------
    def get_entry(self, instance_id: str, run: RunKey, seq: int) -> JournalEntry | None:
        """The run's journal entry at ``seq`` as its own item holds it (an entry kept only in the
        instance item's ``tail`` is not returned), read strongly consistent."""

    def send_callback(self, callback: CallbackId, event: EventRecord, *, replace: bool = False) -> None:
        """Keep ``event`` (an outcome, or with ``replace`` a heartbeat) for the callback, in one atomic
        write, only if its instance is on the callback's run and unfinished, the entry at its seq is a
        callback with its token and still waiting, and no event of the key is stored (``replace``: none
        sent later; an older one is replaced). Raise CallbackNotFoundError or CallbackCompletedError
        (``framework.backends.callbacks.check_callback``), CallbackCompletedError for an outcome whose
        key is stored already. A heartbeat older than the stored one changes nothing and raises nothing.
        """

    # -- concurrency and rate limits (framework.backends.limiter, framework.engine.limits) ----------------
    def get_limiter(self, key: str) -> LimiterState:
        """The limiter ``key`` as stored, read strongly consistent (an empty state if none)."""

    def put_limiter(self, key: str, state: LimiterState, expires_at: int) -> str:
        """Write ``state`` with a new version if the stored version is still ``state.version`` (None:
        no item yet), and return the new version. Raise LimiterConflict with the stored state
        otherwise: one conditional write, no read. The item expires (TTL) at ``expires_at``."""

    def add_waiter(self, key: str, waiter: Waiter, expires_at: int) -> None:
        """Register ``waiter`` (one write; registering again changes nothing but the expiry)."""

    def oldest_waiters(self, key: str, limit: int) -> list[Waiter]:
        """Up to ``limit`` of the limiter's waiters, oldest ``order`` first, read strongly consistent."""

    def take_waiter(self, key: str, waiter: Waiter) -> bool:
        """Delete ``waiter``; True if this call deleted it (two takers: one wins), False if it was gone."""


def control_outcome(current: InstanceRecord, action: Control, now: float, expires_at: int) -> InstanceRecord:
    """What pause, resume, terminate, restart and skip do to an instance. Raise InvalidStateError.

    Both stores follow this: the fake applies it directly, DynamoDB encodes the same cases as
    conditional updates. Each clears ``released_by``: a control may take a lease away (an invocation
    that died, or handed over), so no container's journal cache may trust its copy after one."""
    current = replace(current, released_by=None)
    leased = current.lease_until is not None and current.lease_until >= now
    status = current.status
    if action is Control.PAUSE:
        if status in (Status.QUEUED, Status.WAITING) or (status is Status.RUNNING and not leased):
            return replace(
                current, status=Status.PAUSED, due_at=None, updated_at=now, lease_owner=None, lease_until=None
            )
        if status is Status.RUNNING and not current.pause_requested:
            return replace(current, pause_requested=True, updated_at=now)
    elif action is Control.RESUME:
        if status is Status.PAUSED:
            due = current.wake_at if current.wake_at is not None else now
            return replace(current, status=Status.WAITING, due_at=due, updated_at=now)
        if current.pause_requested and status is Status.RUNNING:
            return replace(current, pause_requested=False, updated_at=now)
    elif action is Control.TERMINATE:
        if status not in FINISHED:
            return replace(
                current,
                status=Status.TERMINATED,
                # A child owes its parent a report (framework.engine.children): the sweeper sends it
                # if the caller of terminate does not.
                due_at=now if current.parent is not None else None,
                wake_at=None,
                lease_owner=None,
                lease_until=None,
                pause_requested=False,
                updated_at=now,
                expires_at=expires_at,
            )
    elif action is Control.ROLLBACK:
        if status not in FINISHED:
            # Runnable now, wherever it waits: its next invocation replays to its first new durable
            # call, runs the undos there, and ends terminated. Like terminate, it takes the lease: an
            # invocation running it stops at its next control check (its release would drop the request).
            return replace(
                current,
                status=Status.WAITING if status is Status.PAUSED else status,
                rollback_requested=True,
                pause_requested=False,
                wake_at=None,
                waits=(),  # it waits no more: it runs the undos next
                due_at=now,
                lease_owner=None,
                lease_until=None,
                updated_at=now,
            )
    elif action is Control.SKIP:
        # Only an instance that waits, with no invocation on it: the request and a worker's lease are
        # then both conditioned on the item as read, and one of the two fails (the skip with this error).
        if status is Status.WAITING and current.wake_at is not None and not leased:
            return replace(current, skip_to=current.wake_at, updated_at=now)
        if status is Status.WAITING and current.wake_at is None:
            raise InvalidStateError(
                f"cannot skip the wait of instance {current.id!r}: it waits for an event with no timeout"
            )
    else:
        return replace(
            current,
            run=current.run + 1,
            status=Status.QUEUED,
            due_at=now,
            updated_at=now,
            output=None,
            output_ref=None,
            error=None,
            wake_at=None,
            lease_owner=None,
            lease_until=None,
            pause_requested=False,
            rollback_requested=False,
            skip_to=None,
            crash_mark=None,
            crash_count=0,
            backoff=0,  # failed hand-overs of the old run say nothing about the new one
            expires_at=None,
            tail=(),
            waits=(),
            running=(),
            counts=StepCounts(),  # a new run: its own counts
        )
    raise InvalidStateError(f"cannot {action.value} instance {current.id!r}: it is {current.shown_status}")


def full_journal(store: Store, instance_id: str, run: RunKey | int) -> list[JournalEntry]:
    """A run's journal as readers see it: the entries kept in the instance item (``tail``) merged in.
    A bare run number means that run of the instance that has the id now."""
    record = store.get_instance(instance_id)
    if isinstance(run, int):
        if record is None:
            return []
        run = RunKey(record.incarnation, run)
    journal = store.load_journal(instance_id, run)
    return record.with_tail(journal) if record is not None and record.run_key == run else journal
