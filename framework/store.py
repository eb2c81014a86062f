"""The storage Protocol, its conflicts, and the in-memory fake.

The Protocol is a handful of dumb primitives, each one conditional write or one read. The DynamoDB
implementation lives in ``framework.dynamodb``; both pass ``tests/contract``.
"""

from __future__ import annotations

import threading
import zlib
from dataclasses import dataclass, replace
from typing import Protocol

from framework.errors import InstanceAlreadyExistsError
from framework.records import (
    FINISHED,
    RUNNABLE,
    ErrorInfo,
    InstanceRecord,
    JournalEntry,
    Lease,
    Status,
)


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
    output: str | None = None
    output_ref: str | None = None
    error: ErrorInfo | None = None
    expires_at: int | None = None  # finished instances: the TTL


@dataclass(frozen=True, slots=True)
class DueInstance:
    id: str
    due_at: float
    status: Status
    wake_at: float | None


def shard_of(instance_id: str, shards: int) -> str:
    """The sweeper index partition of an instance: stable, spread evenly."""
    return str(zlib.crc32(instance_id.encode()) % shards)


class Store(Protocol):
    def create_instance(self, record: InstanceRecord) -> None:
        """Write a new instance. Raise InstanceAlreadyExistsError if the id is taken."""

    def get_instance(self, instance_id: str) -> InstanceRecord | None: ...

    def acquire_lease(
        self, instance_id: str, owner: str, now: float, until: float, *, require_due: bool
    ) -> Lease:
        """Take the lease if the instance is runnable, unleased (or the lease expired) and, with
        ``require_due``, has no ``wake_at`` after ``now``. Set status running. Raise LeaseConflict."""

    def load_journal(self, instance_id: str, run: int) -> list[JournalEntry]:
        """All entries of the run, in order, read strongly consistent."""

    def write_entry(self, instance_id: str, run: int, entry: JournalEntry) -> None:
        """Put the entry if ``entry.rev == 1`` and none exists at its seq, or replace it if the stored
        rev is ``entry.rev - 1``. Raise LeaseLost otherwise: someone else wrote there."""

    def record_crash(self, instance_id: str, owner: str, mark: str, count: int) -> None:
        """Remember ``count`` crashes in a row at journal position ``mark``. Raise LeaseLost."""

    def release(self, instance_id: str, owner: str, release: Release) -> None:
        """Write the new status and drop the lease, if ``owner`` still holds it. Raise LeaseLost."""

    def due_instances(self, before: float, limit: int) -> list[DueInstance]:
        """Unfinished instances whose ``due_at`` is at or before ``before``, from every shard."""

    def postpone(self, instance_id: str, due_at: float, new_due_at: float) -> bool:
        """Move ``due_at`` on if it is still ``due_at``. Return False if it changed meanwhile."""


class MemoryStore:
    """The in-memory fake: same contract, thread-safe, no I/O."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._instances: dict[str, InstanceRecord] = {}
        self._journals: dict[tuple[str, int], dict[int, JournalEntry]] = {}
        self.calls = 0

    def create_instance(self, record: InstanceRecord) -> None:
        with self._lock:
            self.calls += 1
            if record.id in self._instances:
                raise InstanceAlreadyExistsError(f"instance {record.id!r} already exists")
            self._instances[record.id] = record

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
            self._instances[instance_id] = replace(
                current,
                status=Status.RUNNING,
                lease_owner=owner,
                lease_until=until,
                due_at=until,
                updated_at=now,
                wake_at=None,
            )
            return Lease(owner=owner, until=until, previous=current)

    def load_journal(self, instance_id: str, run: int) -> list[JournalEntry]:
        with self._lock:
            self.calls += 1
            entries = self._journals.get((instance_id, run), {})
            return [entries[seq] for seq in sorted(entries)]

    def write_entry(self, instance_id: str, run: int, entry: JournalEntry) -> None:
        with self._lock:
            self.calls += 1
            entries = self._journals.setdefault((instance_id, run), {})
            stored = entries.get(entry.seq)
            expected = None if entry.rev == 1 else entry.rev - 1
            if (stored.rev if stored else None) != expected:
                raise LeaseLost(f"journal entry {entry.seq} of {instance_id!r} was written by another")
            entries[entry.seq] = entry

    def record_crash(self, instance_id: str, owner: str, mark: str, count: int) -> None:
        with self._lock:
            self.calls += 1
            current = self._owned(instance_id, owner)
            self._instances[instance_id] = replace(current, crash_mark=mark, crash_count=count)

    def release(self, instance_id: str, owner: str, release: Release) -> None:
        with self._lock:
            self.calls += 1
            current = self._owned(instance_id, owner)
            finished = release.status in FINISHED
            self._instances[instance_id] = replace(
                current,
                status=release.status,
                updated_at=release.now,
                wake_at=release.wake_at,
                due_at=None if finished else release.wake_at,
                output=release.output,
                output_ref=release.output_ref,
                error=release.error,
                expires_at=release.expires_at,
                lease_owner=None,
                lease_until=None,
                crash_mark=None,
                crash_count=0,
            )

    def due_instances(self, before: float, limit: int) -> list[DueInstance]:
        with self._lock:
            self.calls += 1
            due = sorted(
                (r for r in self._instances.values() if r.due_at is not None and r.due_at <= before),
                key=lambda r: r.due_at or 0.0,
            )
            return [DueInstance(r.id, r.due_at or 0.0, r.status, r.wake_at) for r in due[:limit]]

    def postpone(self, instance_id: str, due_at: float, new_due_at: float) -> bool:
        with self._lock:
            self.calls += 1
            current = self._instances.get(instance_id)
            if current is None or current.due_at != due_at:
                return False
            self._instances[instance_id] = replace(current, due_at=new_due_at)
            return True

    def _owned(self, instance_id: str, owner: str) -> InstanceRecord:
        current = self._instances.get(instance_id)
        if current is None or current.lease_owner != owner:
            raise LeaseLost(f"instance {instance_id!r} is no longer leased by {owner}")
        return current
