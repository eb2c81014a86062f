"""One contract, three stores: the in-memory fake, DynamoDB on moto and DynamoDB on dynalite (a second
implementation, see tests/dynalite.py), each table as template.yaml defines it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from framework import InstanceAlreadyExistsError
from framework.dynamodb import DynamoStore
from framework.local import LocalRuntime
from framework.records import Control, EntryKind, EntryStatus, ErrorInfo, InstanceRecord, JournalEntry, Status
from framework.store import LeaseConflict, LeaseLost, MemoryStore, Release, Store, full_journal
from tests import dynalite

NOW = 1_800_000_000.0


@pytest.fixture(params=["memory", "dynamodb", "dynalite"])
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    if request.param == "dynalite":
        if request.node.get_closest_marker("needs_transactions"):
            pytest.skip(dynalite.NO_TRANSACTIONS)
        db = dynalite.client(request.getfixturevalue("dynalite"))
        yield DynamoStore(db, dynalite.new_table(db))
        return
    with LocalRuntime(workflows=[]) as rt:
        yield rt.env.store


def record(instance_id: str = "i1", **changes: object) -> InstanceRecord:
    base = InstanceRecord(
        id=instance_id,
        workflow="wf",
        status=Status.QUEUED,
        params='{"a":1}',
        created_at=NOW,
        updated_at=NOW,
        due_at=NOW,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def entry(seq: int, rev: int = 1, status: EntryStatus = EntryStatus.COMPLETE) -> JournalEntry:
    return JournalEntry(
        seq,
        EntryKind.STEP,
        f"s{seq}",
        status,
        NOW + seq,
        ended_at=NOW + seq + 0.5,
        rev=rev,
        result='{"$value":1}',
    )


def test_create_and_get(store: Store) -> None:
    store.create_instance(record())
    got = store.get_instance("i1")
    assert got is not None
    assert (got.id, got.workflow, got.status, got.params, got.run) == (
        "i1",
        "wf",
        Status.QUEUED,
        '{"a":1}',
        1,
    )
    assert got.created_at == NOW and got.due_at == NOW and got.lease_owner is None
    assert store.get_instance("missing") is None


def test_create_twice_conflicts(store: Store) -> None:
    store.create_instance(record())
    with pytest.raises(InstanceAlreadyExistsError):
        store.create_instance(record(params="{}"))
    assert store.get_instance("i1").params == '{"a":1}'  # type: ignore[union-attr]


def test_lease_is_exclusive_until_it_expires(store: Store) -> None:
    store.create_instance(record())
    lease = store.acquire_lease("i1", "A", NOW, NOW + 60, require_due=True)
    assert lease.previous.status is Status.QUEUED and not lease.crashed
    current = store.get_instance("i1")
    # A due wake-up leaves the due-index key alone: the sweeper finds the instance at its old due time.
    assert current is not None and current.status is Status.RUNNING and current.due_at == NOW
    with pytest.raises(LeaseConflict) as info:
        store.acquire_lease("i1", "B", NOW + 30, NOW + 90, require_due=True)
    assert info.value.current is not None and info.value.current.lease_owner == "A"
    crashed = store.acquire_lease("i1", "B", NOW + 61, NOW + 120, require_due=True)
    assert crashed.crashed and crashed.previous.lease_owner == "A"


def test_lease_refuses_missing_finished_and_not_due(store: Store) -> None:
    with pytest.raises(LeaseConflict) as missing:
        store.acquire_lease("nope", "A", NOW, NOW + 60, require_due=True)
    assert missing.value.current is None
    store.create_instance(record())
    lease = store.acquire_lease("i1", "A", NOW, NOW + 60, require_due=True)
    store.release(lease, Release(Status.WAITING, NOW + 1, wake_at=NOW + 100))
    with pytest.raises(LeaseConflict):
        store.acquire_lease("i1", "B", NOW + 50, NOW + 110, require_due=True)
    kicked = store.acquire_lease("i1", "B", NOW + 50, NOW + 110, require_due=False)
    assert kicked.previous.wake_at == NOW + 100
    after_kick = store.get_instance("i1")
    assert (
        after_kick is not None and after_kick.due_at == NOW + 110
    )  # a kick brings due_at to the lease's end
    store.release(kicked, Release(Status.COMPLETE, NOW + 51, output='{"$value":1}', expires_at=123))
    with pytest.raises(LeaseConflict) as done:
        store.acquire_lease("i1", "C", NOW + 200, NOW + 260, require_due=False)
    assert done.value.current is not None and done.value.current.status is Status.COMPLETE


def test_release_needs_the_lease_and_sets_fields(store: Store) -> None:
    store.create_instance(record())
    lease = store.acquire_lease("i1", "A", NOW, NOW + 60, require_due=True)
    with pytest.raises(LeaseLost):
        store.release(replace(lease, owner="B"), Release(Status.WAITING, NOW, wake_at=NOW + 5))
    store.record_crash("i1", "A", "3:1", 2)
    assert store.get_instance("i1").crash_count == 2  # type: ignore[union-attr]
    store.release(lease, Release(Status.WAITING, NOW + 1, wake_at=NOW + 5))
    waiting = store.get_instance("i1")
    assert waiting is not None
    assert (waiting.status, waiting.wake_at, waiting.due_at, waiting.lease_owner) == (
        Status.WAITING,
        NOW + 5,
        NOW + 5,
        None,
    )
    assert waiting.crash_count == 0 and waiting.crash_mark is None
    with pytest.raises(LeaseLost):
        store.record_crash("i1", "A", "x", 1)
    lease = store.acquire_lease("i1", "C", NOW + 6, NOW + 60, require_due=True)
    error = ErrorInfo("ValueError", "bad")
    store.release(lease, Release(Status.ERRORED, NOW + 7, error=error, expires_at=999))
    errored = store.get_instance("i1")
    assert errored is not None
    assert (errored.status, errored.error, errored.due_at, errored.wake_at, errored.expires_at) == (
        Status.ERRORED,
        error,
        None,
        None,
        999,
    )


def test_a_finishing_release_carries_the_last_entry_until_a_restart(store: Store) -> None:
    store.create_instance(record())
    lease = store.acquire_lease("i1", "A", NOW, NOW + 60, require_due=True)
    store.write_entry("i1", 1, entry(0))
    retried = entry(1, status=EntryStatus.RETRYING)
    store.write_entry("i1", 1, retried)
    last = replace(entry(1), rev=2, extra={"nested": {"a": [1, 2.5, "x"]}})
    nap = JournalEntry(2, EntryKind.SLEEP, "nap", EntryStatus.SLEEPING, NOW, wake_at=NOW + 1)
    store.release(lease, Release(Status.COMPLETE, NOW + 2, output='{"$value":1}', tail=(last, nap)))
    done = store.get_instance("i1")
    assert done is not None and done.tail == (last, nap)
    assert store.load_journal("i1", 1) == [entry(0), retried]  # the tail is not a journal item
    assert full_journal(store, "i1", 1) == [entry(0), last, nap]  # rev 2 replaces rev 1 for readers
    store.control("i1", Control.RESTART, NOW + 3, 0)
    restarted = store.get_instance("i1")
    assert restarted is not None and restarted.tail == () and restarted.run == 2
    assert full_journal(store, "i1", 2) == []


def test_load_journal_from_a_position(store: Store) -> None:
    store.create_instance(record())
    store.acquire_lease("i1", "A", NOW, NOW + 60, require_due=True)
    for seq in range(12):  # past 10: positions must sort as numbers
        store.write_entry("i1", 1, entry(seq))
    store.control("i1", Control.RESTART, NOW + 1, 0)
    assert [e.seq for e in store.load_journal("i1", 1, from_seq=9)] == [9, 10, 11]
    assert store.load_journal("i1", 1, from_seq=12) == []
    assert store.load_journal("i1", 2, from_seq=0) == []  # another run's entries are not included


def test_journal_entries_are_written_once_per_rev(store: Store) -> None:
    store.write_entry("i1", 1, entry(0))
    with pytest.raises(LeaseLost):
        store.write_entry("i1", 1, entry(0))  # a second first write at the same position
    retrying = entry(1, status=EntryStatus.RETRYING)
    store.write_entry("i1", 1, retrying)
    store.write_entry("i1", 1, entry(1, rev=2))
    with pytest.raises(LeaseLost):
        store.write_entry("i1", 1, entry(1, rev=2))  # rev 1 is no longer what is stored
    with pytest.raises(LeaseLost):
        store.write_entry("i1", 1, entry(2, rev=2))  # nothing to replace
    store.write_entry("i1", 2, entry(0))  # another run keeps its own journal
    journal = store.load_journal("i1", 1)
    assert [(e.seq, e.rev, e.status) for e in journal] == [
        (0, 1, EntryStatus.COMPLETE),
        (1, 2, EntryStatus.COMPLETE),
    ]
    assert journal[0] == entry(0)
    assert store.load_journal("i1", 3) == []


def test_entries_roundtrip_every_field(store: Store) -> None:
    from framework.records import Attempt

    full = JournalEntry(
        7,
        EntryKind.SLEEP,
        "nap",
        EntryStatus.SLEEPING,
        NOW,
        ended_at=None,
        rev=1,
        result=None,
        result_ref="results/i1/1/7",
        attempts=(Attempt(NOW, NOW + 1.25, ErrorInfo("E", "m")), Attempt(NOW + 2)),
        error=ErrorInfo("E", "m"),
        wake_at=NOW + 3600.5,
    )
    store.write_entry("i1", 1, full)
    assert store.load_journal("i1", 1) == [full]


def test_journal_pages_past_one_megabyte(store: Store) -> None:
    big = "x" * 300_000
    for seq in range(8):
        store.write_entry("i1", 1, replace(entry(seq), result=big))
    assert [e.seq for e in store.load_journal("i1", 1)] == list(range(8))


def test_a_parked_wait_is_due_for_the_sweeper_before_it_wakes(store: Store) -> None:
    store.create_instance(record())
    lease = store.acquire_lease("i1", "A", NOW, NOW + 60, require_due=True)
    store.release(lease, Release(Status.WAITING, NOW + 1, wake_at=NOW + 86400, due_at=NOW + 85680))
    parked = store.get_instance("i1")
    assert parked is not None and (parked.wake_at, parked.due_at) == (NOW + 86400, NOW + 85680)
    assert [d.id for d in store.due_instances(NOW + 85680, 10)] == ["i1"]
    assert store.due_instances(NOW + 85679, 10) == []


def test_due_instances_and_postpone(store: Store) -> None:
    for i, due in enumerate([NOW + 10, NOW + 5, NOW + 50]):
        store.create_instance(record(f"d{i}", due_at=due))
    due = store.due_instances(NOW + 10, 10)
    assert [d.id for d in due] == ["d1", "d0"]
    assert store.postpone("d1", NOW + 5, NOW + 100, now=NOW)
    assert not store.postpone("d1", NOW + 5, NOW + 200, now=NOW)  # someone moved it already
    assert [d.id for d in store.due_instances(NOW + 60, 10)] == ["d0", "d2"]
    assert [d.id for d in store.due_instances(NOW + 60, 1)] == ["d0"]
    lease = store.acquire_lease("d0", "A", NOW, NOW + 30, require_due=True)
    store.release(lease, Release(Status.COMPLETE, NOW + 1))
    assert "d0" not in [d.id for d in store.due_instances(NOW + 1000, 10)]  # finished: out of the index


def test_due_instances_after_a_mark_and_the_mark_never_goes_back(store: Store) -> None:
    for i, due in enumerate([NOW + 10, NOW + 20, NOW + 30]):
        store.create_instance(record(f"d{i}", due_at=due))
    assert [d.id for d in store.due_instances(NOW + 30, 10, after=NOW + 10)] == ["d1", "d2"]  # after: not at
    assert [d.id for d in store.due_instances(NOW + 25, 10, after=NOW)] == ["d0", "d1"]
    assert store.sweep_mark() is None
    store.set_sweep_mark(NOW + 20)
    store.set_sweep_mark(NOW + 10)  # a slower sweep that started earlier
    assert store.sweep_mark() == NOW + 20
    store.set_sweep_mark(NOW + 30)
    assert store.sweep_mark() == NOW + 30
    assert store.get_instance("#sweeper") is None  # the mark is no instance


def test_postpone_leaves_an_instance_with_a_live_lease(store: Store) -> None:
    store.create_instance(record(due_at=NOW))
    store.acquire_lease("i1", "A", NOW, NOW + 300, require_due=True)
    assert [d.id for d in store.due_instances(NOW + 200, 10)] == ["i1"]
    assert not store.postpone("i1", NOW, NOW + 400, now=NOW + 200)  # the invocation still runs
    assert store.postpone("i1", NOW, NOW + 400, now=NOW + 301)  # its lease ran out: it crashed
    current = store.get_instance("i1")
    assert current is not None and current.due_at == NOW + 400


@pytest.mark.needs_transactions  # send_event stores the event
def test_purge_removes_journals_and_events(store: Store) -> None:
    from framework.records import EventRecord

    store.create_instance(record())
    for run in (1, 2):
        for seq in range(30):  # more than one BatchWriteItem
            store.write_entry("i1", run, entry(seq))
    store.send_event("i1", EventRecord("e#go#1#a", "go", "null", NOW))
    store.write_entry("other", 1, entry(0))
    assert store.purge("i1") == 61
    assert (
        store.load_journal("i1", 1) == []
        and store.load_journal("i1", 2) == []
        and store.load_events("i1") == []
    )
    assert store.purge("i1") == 0
    assert len(store.load_journal("other", 1)) == 1


def test_purge_before_keeps_newer_items(store: Store) -> None:
    store.write_entry("i1", 1, replace(entry(0), started_at=NOW - 10))
    store.write_entry("i1", 1, replace(entry(1), started_at=NOW + 10))
    assert store.purge("i1", before=NOW) == 1
    assert [e.seq for e in store.load_journal("i1", 1)] == [1]


def test_a_step_done_at_its_first_attempt_stores_no_attempt_list() -> None:
    from framework.dynamodb_items import entry_from, entry_to
    from framework.records import Attempt

    clean = replace(entry(3), attempts=(Attempt(NOW + 3, NOW + 3.5),))
    item = entry_to("i1", 1, clean)
    assert "attempts" not in item and entry_from(item) == clean
    retried = replace(
        clean, attempts=(Attempt(NOW, NOW + 1, ErrorInfo("E", "m")), Attempt(NOW + 3, NOW + 3.5))
    )
    assert entry_from(entry_to("i1", 1, retried)) == retried
    assert entry_from(entry_to("i1", 1, entry(4))) == entry(4)  # no attempts at all stays so
