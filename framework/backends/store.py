"""The storage Protocol, its conflicts, and the in-memory fake.

The Protocol is a handful of dumb primitives, each one conditional write or one read. The DynamoDB
implementation lives in ``framework.backends.dynamodb``; both pass ``tests/contract``.
"""

from __future__ import annotations

import threading
import zlib
from dataclasses import dataclass, replace
from typing import Protocol

from framework.core.records import (
    FINISHED,
    RUNNABLE,
    Control,
    ErrorInfo,
    EventRecord,
    InstanceRecord,
    JournalEntry,
    Lease,
    RunKey,
    Status,
    new_version,
)
from framework.errors import InstanceAlreadyExistsError, InstanceNotFoundError, InvalidStateError


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
    due_at: float | None = None  # WAITING: when the sweeper should look (default: ``wake_at``)
    output: str | None = None
    output_ref: str | None = None
    error: ErrorInfo | None = None
    expires_at: int | None = None  # finished instances: the TTL
    tail: tuple[JournalEntry, ...] = ()  # entries kept in the instance item (InstanceRecord.tail)

    def due_on_wait(self) -> float | None:
        return self.due_at if self.due_at is not None else self.wake_at


# A new instance carries no ``due_at`` (so that its create and completion write no index); the sweeper
# looks at each once, after the grace, and gives one that runs, or was never woken, a ``due_at``.
WATCHED = frozenset({Status.QUEUED, Status.RUNNING})


def released(lease: Lease, release: Release) -> InstanceRecord:
    """The instance after ``release``: its new status and fields, and no lease. Both stores write it."""
    waiting = release.status is Status.WAITING
    return replace(
        lease.previous,
        status=release.status,
        updated_at=release.now,
        wake_at=release.wake_at,
        due_at=release.due_on_wait() if waiting else None,
        output=release.output,
        output_ref=release.output_ref,
        error=release.error,
        expires_at=release.expires_at,
        tail=release.tail,
        released_by=lease.owner,  # lets this container's journal cache know nobody wrote since
        lease_owner=None,
        lease_until=None,
        crash_mark=None,
        crash_count=0,
        pause_requested=False,
        backoff=0,
    )


@dataclass(frozen=True, slots=True)
class DueInstance:
    id: str
    due_at: float
    wake_at: float | None  # in the past for a running or crashed instance: nothing to wait for


def shard_of(instance_id: str, shards: int) -> str:
    """The sweeper index partition of an instance: stable, spread evenly."""
    return str(zlib.crc32(instance_id.encode()) % shards)


class Store(Protocol):
    def create_instance(self, record: InstanceRecord) -> None:
        """Write a new instance. Raise InstanceAlreadyExistsError if the id is taken."""

    def create_instances(self, records: list[InstanceRecord]) -> None:
        """Write up to 100 new instances, all or none. Raise InstanceAlreadyExistsError naming the
        ids that are taken."""

    def get_instance(self, instance_id: str) -> InstanceRecord | None: ...

    def acquire_lease(
        self, instance_id: str, owner: str, now: float, until: float, *, require_due: bool
    ) -> Lease:
        """Take the lease if the instance is runnable, unleased (or the lease expired) and, with
        ``require_due``, has no ``wake_at`` after ``now``. Set status running. Raise LeaseConflict.

        A due wake-up leaves ``due_at`` (and ``wake_at``) as they are: ``due_at`` is then at most one
        sweep grace ahead, so the sweeper finds a crashed invocation, and leaving the due-index key
        alone saves two index writes per invocation. A kick (``require_due=False``) may come while
        ``due_at`` is far ahead (a parked wait), so it sets ``due_at = until`` and drops ``wake_at``."""

    def load_journal(self, instance_id: str, run: RunKey, from_seq: int = 0) -> list[JournalEntry]:
        """The run's entries from ``from_seq`` on, in order, read strongly consistent. Entries of any
        other run, or of another instance that had the same id, are never returned."""

    def write_entry(self, instance_id: str, run: RunKey, entry: JournalEntry) -> None:
        """Put the entry if ``entry.rev == 1`` and none exists at its seq, or replace it if the stored
        rev is ``entry.rev - 1``. Raise LeaseLost otherwise: someone else wrote there."""

    def expire_lease(self, instance_id: str, owner: str, now: float, due_at: float, backoff: int) -> None:
        """End ``owner``'s lease at ``now`` without releasing it, as a crash would (the next invocation
        counts one); remember ``backoff`` failed hand-overs in a row; the sweeper looks again at
        ``due_at``. Raise LeaseLost."""

    def record_crash(self, instance_id: str, owner: str, mark: str, count: int) -> None:
        """Remember ``count`` crashes in a row at journal position ``mark``. Raise LeaseLost."""

    def release(self, lease: Lease, release: Release) -> Status:
        """Write the new status and drop the lease, if ``lease.owner`` still holds it. Raise LeaseLost.
        A WAITING release of an instance with a pause request is stored as PAUSED instead (its
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

    def postpone(self, instance_id: str, due_at: float, new_due_at: float, *, now: float) -> bool:
        """Move ``due_at`` on if it is still ``due_at`` and no lease is live at ``now``. Return False
        otherwise: it changed meanwhile, or an invocation runs it (the next sweep looks again)."""

    def send_event(self, instance_id: str, event: EventRecord) -> None:
        """Keep the event for the instance's current run. An event whose key is stored already for
        that run is a duplicate and changes nothing. Raise
        InstanceNotFoundError, or InvalidStateError if the instance is finished; the check and the
        write are one atomic operation."""

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


def control_outcome(current: InstanceRecord, action: Control, now: float, expires_at: int) -> InstanceRecord:
    """What pause, resume, terminate and restart do to an instance. Raise InvalidStateError.

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
                due_at=None,
                wake_at=None,
                lease_owner=None,
                lease_until=None,
                pause_requested=False,
                updated_at=now,
                expires_at=expires_at,
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
            crash_mark=None,
            crash_count=0,
            backoff=0,  # failed hand-overs of the old run say nothing about the new one
            expires_at=None,
            tail=(),
        )
    raise InvalidStateError(f"cannot {action.value} instance {current.id!r}: it is {current.shown_status}")


class MemoryStore:
    """The in-memory fake: same contract, thread-safe, no I/O."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._instances: dict[str, InstanceRecord] = {}
        self._journals: dict[tuple[str, RunKey], dict[int, JournalEntry]] = {}
        self._events: dict[tuple[str, RunKey], dict[str, EventRecord]] = {}
        self._sweep_mark: float | None = None
        self.calls = 0

    def create_instance(self, record: InstanceRecord) -> None:
        with self._lock:
            self.calls += 1
            if record.id in self._instances:
                raise InstanceAlreadyExistsError(f"instance {record.id!r} already exists")
            self._set(record)

    def create_instances(self, records: list[InstanceRecord]) -> None:
        with self._lock:
            self.calls += 1
            taken = [r.id for r in records if r.id in self._instances]
            if taken:
                raise InstanceAlreadyExistsError(f"instances already exist: {', '.join(taken)}")
            for r in records:
                self._set(r)

    def get_instance(self, instance_id: str) -> InstanceRecord | None:
        with self._lock:
            self.calls += 1
            return self._instances.get(instance_id)

    def acquire_lease(
        self, instance_id: str, owner: str, now: float, until: float, *, require_due: bool
    ) -> Lease:
        with self._lock:
            self.calls += 1
            current = self._instances.get(instance_id)
            if (
                current is None
                or current.status not in RUNNABLE
                or (current.lease_until is not None and current.lease_until >= now)
                or (require_due and current.wake_at is not None and current.wake_at > now)
            ):
                raise LeaseConflict(current)
            self._set(
                current,
                status=Status.RUNNING,
                lease_owner=owner,
                lease_until=until,
                due_at=current.due_at if require_due else until,
                # A kick may come before the wait's deadline: what wakes the instance next is what
                # this invocation decides, not that old deadline.
                wake_at=current.wake_at if require_due else None,
                updated_at=now,
            )
            return Lease(owner=owner, until=until, previous=current)

    def load_journal(self, instance_id: str, run: RunKey, from_seq: int = 0) -> list[JournalEntry]:
        with self._lock:
            self.calls += 1
            entries = self._journals.get((instance_id, run), {})
            return [entries[seq] for seq in sorted(entries) if seq >= from_seq]

    def write_entry(self, instance_id: str, run: RunKey, entry: JournalEntry) -> None:
        with self._lock:
            self.calls += 1
            entries = self._journals.setdefault((instance_id, run), {})
            stored = entries.get(entry.seq)
            expected = None if entry.rev == 1 else entry.rev - 1
            if (stored.rev if stored else None) != expected:
                raise LeaseLost(f"journal entry {entry.seq} of {instance_id!r} was written by another")
            entries[entry.seq] = entry

    def expire_lease(self, instance_id: str, owner: str, now: float, due_at: float, backoff: int) -> None:
        with self._lock:
            self.calls += 1
            current = self._owned(instance_id, owner)
            self._set(current, lease_until=now, due_at=due_at, backoff=backoff)

    def record_crash(self, instance_id: str, owner: str, mark: str, count: int) -> None:
        with self._lock:
            self.calls += 1
            current = self._owned(instance_id, owner)
            self._set(current, crash_mark=mark, crash_count=count)

    def release(self, lease: Lease, release: Release) -> Status:
        with self._lock:
            self.calls += 1
            current = self._owned(lease.previous.id, lease.owner)
            if release.status is Status.WAITING and current.pause_requested:
                release = replace(release, status=Status.PAUSED)
            self._set(released(Lease(lease.owner, lease.until, current), release))
            return release.status

    def due_instances(self, before: float, limit: int, *, after: float | None = None) -> list[DueInstance]:
        low = float("-inf") if after is None else after
        with self._lock:
            self.calls += 1
            due = sorted(
                (r for r in self._instances.values() if r.due_at is not None and low < r.due_at <= before),
                key=lambda r: r.due_at or 0.0,
            )
            return [DueInstance(r.id, r.due_at or 0.0, r.wake_at) for r in due[:limit]]

    def created_between(self, after: float, until: float) -> list[InstanceRecord]:
        with self._lock:
            self.calls += 1
            return [r for r in self._instances.values() if after < r.created_at <= until]

    def watch(self, instance_id: str, due_at: float) -> bool:
        with self._lock:
            self.calls += 1
            current = self._instances.get(instance_id)
            if current is None or current.due_at is not None or current.status not in WATCHED:
                return False
            self._set(current, due_at=due_at)
            return True

    def sweep_mark(self) -> float | None:
        with self._lock:
            self.calls += 1
            return self._sweep_mark

    def set_sweep_mark(self, swept_until: float, *, now: float | None = None) -> None:
        with self._lock:
            self.calls += 1
            mark = self._sweep_mark
            if mark is None or mark < swept_until or (now is not None and mark > now):
                self._sweep_mark = swept_until

    def postpone(self, instance_id: str, due_at: float, new_due_at: float, *, now: float) -> bool:
        with self._lock:
            self.calls += 1
            current = self._instances.get(instance_id)
            leased = current is not None and current.lease_until is not None and current.lease_until >= now
            if current is None or current.due_at != due_at or leased:
                return False
            self._set(current, due_at=new_due_at)
            return True

    def send_event(self, instance_id: str, event: EventRecord) -> None:
        with self._lock:
            self.calls += 1
            current = self._instances.get(instance_id)
            if current is None:
                raise InstanceNotFoundError(f"no instance {instance_id!r}")
            if current.status in FINISHED:
                raise InvalidStateError(f"instance {instance_id!r} is {current.status}: it takes no events")
            self._events.setdefault((instance_id, current.run_key), {}).setdefault(event.key, event)

    def load_events(self, instance_id: str, run: RunKey, event_type: str | None = None) -> list[EventRecord]:
        with self._lock:
            self.calls += 1
            events = self._events.get((instance_id, run), {})
            return [events[k] for k in sorted(events) if event_type is None or events[k].type == event_type]

    def delete_events(self, instance_id: str, run: RunKey, keys: list[str]) -> None:
        with self._lock:
            self.calls += 1
            events = self._events.get((instance_id, run), {})
            for key in keys:
                events.pop(key, None)

    def control(self, instance_id: str, action: Control, now: float, expires_at: int) -> InstanceRecord:
        with self._lock:
            self.calls += 1
            current = self._instances.get(instance_id)
            if current is None:
                raise InstanceNotFoundError(f"no instance {instance_id!r}")
            after = self._set(control_outcome(current, action, now, expires_at))
            return after

    def list_instances(
        self, workflow: str | None, status: Status | None, limit: int, before: tuple[float, str] | None
    ) -> tuple[list[InstanceRecord], bool]:
        with self._lock:
            self.calls += 1
            found = sorted(
                (
                    r
                    for r in self._instances.values()
                    if (workflow is None or r.workflow == workflow)
                    and (status is None or r.shown_status == status)
                    and (before is None or (r.created_at, r.id) < before)
                ),
                key=lambda r: (r.created_at, r.id),
                reverse=True,
            )
            return found[:limit], len(found) > limit

    def purge(self, instance_id: str) -> int:
        with self._lock:
            self.calls += 1
            current = self._instances.get(instance_id)
            keep = None if current is None else current.incarnation
            count = 0
            for key in [k for k in self._journals if k[0] == instance_id and k[1].incarnation != keep]:
                count += len(self._journals.pop(key))
            for key in [k for k in self._events if k[0] == instance_id and k[1].incarnation != keep]:
                count += len(self._events.pop(key))
            return count

    def expire(self, instance_id: str) -> None:
        """What DynamoDB's TTL does: remove the instance item, and nothing else (a fake's control)."""
        with self._lock:
            self._instances.pop(instance_id, None)

    def _set(self, record: InstanceRecord, **changes: object) -> InstanceRecord:
        """Store ``record`` with ``changes`` and a new version, as every write of the item does."""
        after = replace(record, **changes, version=new_version())  # type: ignore[arg-type]
        self._instances[after.id] = after
        return after

    def _owned(self, instance_id: str, owner: str) -> InstanceRecord:
        current = self._instances.get(instance_id)
        if current is None or current.lease_owner != owner:
            raise LeaseLost(f"instance {instance_id!r} is no longer leased by {owner}")
        return current


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
