"""The in-memory store: the fake of the Protocol in ``framework.backends.store``, no I/O."""

from __future__ import annotations

import threading
from dataclasses import replace

from framework.backends.callbacks import already_sent, check_callback
from framework.backends.limiter import LimiterConflict, LimiterState, Waiter
from framework.backends.store import (
    PAUSABLE,
    WATCHED,
    DueInstance,
    InstanceTaken,
    LeaseConflict,
    LeaseLost,
    Release,
    ScheduleState,
    control_outcome,
    released,
)
from framework.core.callbacks import CallbackId
from framework.core.progress import RunningStep, StepCounts
from framework.core.records import (
    FINISHED,
    RUNNABLE,
    Control,
    EventRecord,
    InstanceRecord,
    JournalEntry,
    Lease,
    RunKey,
    Status,
    new_version,
    tail_bytes,
)
from framework.errors import InstanceNotFoundError, InvalidStateError

QUERY_PAGE_BYTES = 1024 * 1024  # what one DynamoDB Query page holds at most


class MemoryStore:
    """The in-memory fake: same contract, thread-safe, no I/O."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._instances: dict[str, InstanceRecord] = {}
        self._journals: dict[tuple[str, RunKey], dict[int, JournalEntry]] = {}
        self._events: dict[tuple[str, RunKey], dict[str, EventRecord]] = {}
        self._sweep_mark: float | None = None
        self._limiters: dict[str, LimiterState] = {}
        self._waiters: dict[str, set[Waiter]] = {}
        self._schedules: dict[str, ScheduleState] = {}
        self.calls = 0

    def create_instance(self, record: InstanceRecord) -> None:
        with self._lock:
            self.calls += 1
            if record.id in self._instances:
                existing = {record.id: self._instances[record.id]}
                raise InstanceTaken(f"instance {record.id!r} already exists", existing)
            self._set(record)

    def create_instances(self, records: list[InstanceRecord]) -> None:
        with self._lock:
            self.calls += 1
            taken = {r.id: self._instances[r.id] for r in records if r.id in self._instances}
            if taken:
                raise InstanceTaken(f"instances already exist: {', '.join(taken)}", taken)
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
                running=(),
            )
            return Lease(owner=owner, until=until, previous=current)

    def load_journal(self, instance_id: str, run: RunKey, from_seq: int = 0) -> list[JournalEntry]:
        with self._lock:
            self.calls += 1
            entries = self._journals.get((instance_id, run), {})
            return [entries[seq] for seq in sorted(entries) if seq >= from_seq]

    def load_journal_page(
        self, instance_id: str, run: RunKey, from_seq: int, limit: int
    ) -> tuple[list[JournalEntry], bool]:
        with self._lock:
            self.calls += 1
            entries = self._journals.get((instance_id, run), {})
            found = [entries[seq] for seq in sorted(entries) if seq >= from_seq]
            page: list[JournalEntry] = []
            size = 0
            for entry in found[:limit]:  # as a Query page: up to 1 MB of items
                size += tail_bytes((entry,))
                if page and size > QUERY_PAGE_BYTES:
                    break
                page.append(entry)
            return page, len(found) > len(page)

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
            self._set(current, lease_until=now, due_at=due_at, backoff=backoff, running=())

    def mark_running(self, instance_id: str, owner: str, step: RunningStep) -> None:
        with self._lock:
            self.calls += 1
            current = self._owned(instance_id, owner)
            others = tuple(s for s in current.running if s.op != step.op)
            self._set(current, running=(*others, step))

    def clear_running(self, instance_id: str, owner: str, op: str, counts: StepCounts) -> None:
        with self._lock:
            self.calls += 1
            current = self._owned(instance_id, owner)
            self._set(current, running=tuple(s for s in current.running if s.op != op), counts=counts)

    def record_crash(self, instance_id: str, owner: str, mark: str, count: int) -> None:
        with self._lock:
            self.calls += 1
            current = self._owned(instance_id, owner)
            self._set(current, crash_mark=mark, crash_count=count)

    def mark_rolling_back(self, instance_id: str, owner: str) -> None:
        with self._lock:
            self.calls += 1
            current = self._owned(instance_id, owner)
            self._set(current, status=Status.ROLLING_BACK)

    def release(self, lease: Lease, release: Release) -> Status:
        with self._lock:
            self.calls += 1
            current = self._owned(lease.previous.id, lease.owner)
            if release.status in PAUSABLE and current.pause_requested:
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

    def schedule_state(self, workflow: str) -> ScheduleState | None:
        with self._lock:
            self.calls += 1
            return self._schedules.get(workflow)

    def put_schedule_state(
        self, workflow: str, state: ScheduleState, *, expected: ScheduleState | None
    ) -> bool:
        with self._lock:
            self.calls += 1
            stored = self._schedules.get(workflow)
            if (stored is None) != (expected is None) or (
                stored is not None
                and expected is not None
                and (stored.mark, stored.paused) != (expected.mark, expected.paused)
            ):
                return False
            self._schedules[workflow] = state
            return True

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

    def put_event(self, instance_id: str, run: RunKey, event: EventRecord) -> None:
        with self._lock:
            self.calls += 1
            self._events.setdefault((instance_id, run), {}).setdefault(event.key, event)

    def settle(self, instance_id: str, due_at: float) -> bool:
        with self._lock:
            self.calls += 1
            current = self._instances.get(instance_id)
            if current is None or current.status not in FINISHED or current.due_at != due_at:
                return False
            self._set(current, due_at=None)
            return True

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

    def get_entry(self, instance_id: str, run: RunKey, seq: int) -> JournalEntry | None:
        with self._lock:
            self.calls += 1
            return self._journals.get((instance_id, run), {}).get(seq)

    def send_callback(self, callback: CallbackId, event: EventRecord, *, replace: bool = False) -> None:
        with self._lock:
            self.calls += 1
            current = self._instances.get(callback.instance_id)
            entry = None
            if current is not None:
                entry = self._journals.get((callback.instance_id, current.run_key), {}).get(callback.seq)
            check_callback(callback, current, entry)
            assert current is not None  # check_callback raised otherwise
            events = self._events.setdefault((callback.instance_id, current.run_key), {})
            stored = events.get(event.key)
            if stored is None or (replace and stored.sent_at < event.sent_at):
                events[event.key] = event
            elif not replace:
                raise already_sent(callback)

    def get_limiter(self, key: str) -> LimiterState:
        with self._lock:
            self.calls += 1
            return self._limiters.get(key, LimiterState())

    def put_limiter(self, key: str, state: LimiterState, expires_at: int) -> str:
        with self._lock:
            self.calls += 1
            stored = self._limiters.get(key, LimiterState())
            if stored.version != state.version:
                raise LimiterConflict(stored)
            version = new_version()
            self._limiters[key] = replace(state, holders=dict(state.holders), version=version)
            return version

    def add_waiter(self, key: str, waiter: Waiter, expires_at: int) -> None:
        with self._lock:
            self.calls += 1
            self._waiters.setdefault(key, set()).add(waiter)

    def oldest_waiters(self, key: str, limit: int) -> list[Waiter]:
        with self._lock:
            self.calls += 1
            return sorted(self._waiters.get(key, set()))[:limit]

    def take_waiter(self, key: str, waiter: Waiter) -> bool:
        with self._lock:
            self.calls += 1
            waiting = self._waiters.get(key, set())
            if waiter not in waiting:
                return False
            waiting.discard(waiter)
            return True

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
