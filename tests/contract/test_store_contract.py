"""One contract, three stores: the in-memory fake, DynamoDB on moto and DynamoDB on dynalite (a second
implementation, see tests/dynalite.py), each table as template.yaml defines it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest

from framework import InstanceAlreadyExistsError, InvalidStateError
from framework.backends.dynamodb import DynamoStore
from framework.backends.memory import MemoryStore
from framework.backends.store import LeaseConflict, LeaseLost, Release, Store, full_journal
from framework.core.records import (
    Control,
    EntryKind,
    EntryStatus,
    ErrorInfo,
    EventRecord,
    InstanceRecord,
    JournalEntry,
    RunKey,
    Status,
)
from framework.local import LocalRuntime
from tests import dynalite

NOW = 1_800_000_000.0
INC = "c0ffee000001"  # the incarnation of every record() below
R1, R2, R3 = RunKey(INC, 1), RunKey(INC, 2), RunKey(INC, 3)


# What TTL does to each store's instance item (only that item goes), by id(store).
TTL_REMOVE: dict[int, Callable[[str], None]] = {}


@pytest.fixture(params=["memory", "dynamodb", "dynalite"])
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    if request.param == "memory":
        memory = MemoryStore()
        TTL_REMOVE[id(memory)] = memory.expire
        yield memory
        return
    if request.param == "dynalite":
        if request.node.get_closest_marker("needs_transactions"):
            pytest.skip(dynalite.NO_TRANSACTIONS)
        db = dynalite.client(request.getfixturevalue("dynalite"))
        yield DynamoStore(db, dynalite.new_table(db))
        return
    with LocalRuntime(workflows=[]) as rt:
        db, table = rt.boto3_client("dynamodb"), rt.table_name
        TTL_REMOVE[id(rt.env.store)] = lambda i: db.delete_item(
            TableName=table, Key={"pk": {"S": i}, "sk": {"S": "instance"}}
        )
        yield rt.env.store


def record(instance_id: str = "i1", **changes: object) -> InstanceRecord:
    base = InstanceRecord(
        id=instance_id,
        workflow="wf",
        status=Status.QUEUED,
        params='{"a":1}',
        created_at=NOW,
        updated_at=NOW,
        incarnation=INC,
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
    store.write_entry("i1", R1, entry(0))
    retried = entry(1, status=EntryStatus.RETRYING)
    store.write_entry("i1", R1, retried)
    last = replace(entry(1), rev=2, extra={"nested": {"a": [1, 2.5, "x"]}})
    nap = JournalEntry(2, EntryKind.SLEEP, "nap", EntryStatus.SLEEPING, NOW, wake_at=NOW + 1)
    store.release(lease, Release(Status.COMPLETE, NOW + 2, output='{"$value":1}', tail=(last, nap)))
    done = store.get_instance("i1")
    assert done is not None and done.tail == (last, nap)
    assert store.load_journal("i1", R1) == [entry(0), retried]  # the tail is not a journal item
    assert full_journal(store, "i1", 1) == [entry(0), last, nap]  # rev 2 replaces rev 1 for readers
    store.control("i1", Control.RESTART, NOW + 3, 0)
    restarted = store.get_instance("i1")
    assert restarted is not None and restarted.tail == () and restarted.run == 2
    assert full_journal(store, "i1", 2) == []


def test_load_journal_from_a_position(store: Store) -> None:
    store.create_instance(record())
    store.acquire_lease("i1", "A", NOW, NOW + 60, require_due=True)
    for seq in range(12):  # past 10: positions must sort as numbers
        store.write_entry("i1", R1, entry(seq))
    store.control("i1", Control.RESTART, NOW + 1, 0)
    assert [e.seq for e in store.load_journal("i1", R1, from_seq=9)] == [9, 10, 11]
    assert store.load_journal("i1", R1, from_seq=12) == []
    assert store.load_journal("i1", R2, from_seq=0) == []  # another run's entries are not included


def test_load_journal_page_reads_at_most_limit(store: Store) -> None:
    for seq in range(12):
        store.write_entry("i1", R1, entry(seq))
    store.write_entry("i1", R2, entry(0))
    entries, more = store.load_journal_page("i1", R1, 9, 2)
    assert ([e.seq for e in entries], more) == ([9, 10], True)
    entries, more = store.load_journal_page("i1", R1, 9, 3)  # exactly the rest: may say more
    assert [e.seq for e in entries] == [9, 10, 11]
    assert store.load_journal_page("i1", R1, 10, 5) == ([entry(10), entry(11)], False)
    assert store.load_journal_page("i1", R1, 12, 5) == ([], False)


def test_a_journal_page_stops_at_one_megabyte(store: Store) -> None:
    big = "x" * 300_000
    for seq in range(8):
        store.write_entry("i1", R1, replace(entry(seq), result=big))
    entries, more = store.load_journal_page("i1", R1, 0, 8)
    assert more and 3 <= len(entries) < 8  # DynamoDB: 1 MB of items per Query page
    assert [e.seq for e in entries] == list(range(len(entries)))


def test_journal_entries_are_written_once_per_rev(store: Store) -> None:
    store.write_entry("i1", R1, entry(0))
    with pytest.raises(LeaseLost):
        store.write_entry("i1", R1, entry(0))  # a second first write at the same position
    retrying = entry(1, status=EntryStatus.RETRYING)
    store.write_entry("i1", R1, retrying)
    store.write_entry("i1", R1, entry(1, rev=2))
    with pytest.raises(LeaseLost):
        store.write_entry("i1", R1, entry(1, rev=2))  # rev 1 is no longer what is stored
    with pytest.raises(LeaseLost):
        store.write_entry("i1", R1, entry(2, rev=2))  # nothing to replace
    store.write_entry("i1", R2, entry(0))  # another run keeps its own journal
    journal = store.load_journal("i1", R1)
    assert [(e.seq, e.rev, e.status) for e in journal] == [
        (0, 1, EntryStatus.COMPLETE),
        (1, 2, EntryStatus.COMPLETE),
    ]
    assert journal[0] == entry(0)
    assert store.load_journal("i1", R3) == []


def test_entries_roundtrip_every_field(store: Store) -> None:
    from framework.core.records import Attempt

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
    store.write_entry("i1", R1, full)
    assert store.load_journal("i1", R1) == [full]


def test_journal_pages_past_one_megabyte(store: Store) -> None:
    big = "x" * 300_000
    for seq in range(8):
        store.write_entry("i1", R1, replace(entry(seq), result=big))
    assert [e.seq for e in store.load_journal("i1", R1)] == list(range(8))


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


def test_a_mark_ahead_of_the_writers_clock_is_set_back(store: Store) -> None:
    store.set_sweep_mark(NOW + 600)  # a sweeper whose clock ran ten minutes fast
    store.set_sweep_mark(NOW, now=NOW + 900)  # the mark is not ahead of this clock: it stays
    assert store.sweep_mark() == NOW + 600
    store.set_sweep_mark(NOW, now=NOW)  # ahead of this one: set back
    assert store.sweep_mark() == NOW
    store.set_sweep_mark(NOW - 10, now=NOW)  # not ahead: it never goes back
    assert store.sweep_mark() == NOW


def test_empty_and_inverted_windows_find_nothing(store: Store) -> None:
    store.create_instance(record(due_at=NOW))
    assert store.due_instances(NOW, 10, after=NOW) == []
    assert store.due_instances(NOW, 10, after=NOW + 60) == []  # DynamoDB refuses such a BETWEEN: not sent
    assert store.created_between(NOW, NOW) == []
    assert store.created_between(NOW + 60, NOW - 60) == []


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
    for run in (R1, R2):
        for seq in range(30):  # more than one BatchWriteItem
            store.write_entry("i1", run, entry(seq))
    store.create_instance(record())
    store.send_event("i1", EventRecord("go#1#a", "go", "null", NOW))
    store.write_entry("other", R1, entry(0))
    _delete_instance_item(store, "i1")
    assert store.purge("i1") == 61
    assert store.load_journal("i1", R1) == [] and store.load_journal("i1", R2) == []
    assert store.load_events("i1", R1) == []
    assert store.purge("i1") == 0
    assert len(store.load_journal("other", R1)) == 1


@pytest.mark.needs_transactions  # send_event stores the event
def test_purge_keeps_the_incarnation_that_has_the_id(store: Store) -> None:
    old, new = RunKey("0ld000000000", 1), R1
    store.write_entry("i1", old, entry(0))
    store.write_entry("i1", new, entry(0))
    store.create_instance(record())
    store.send_event("i1", EventRecord("go#1#a", "go", "null", NOW))
    assert store.purge("i1") == 1  # the old incarnation's entry: the instance that has the id keeps all
    assert store.load_journal("i1", old) == [] and store.load_journal("i1", new) == [entry(0)]
    assert [e.key for e in store.load_events("i1", new)] == ["go#1#a"]


@pytest.mark.needs_transactions  # send_event stores the event
def test_an_instance_never_sees_what_an_older_one_of_its_id_left(store: Store) -> None:
    # The older instance's items outlived its instance item (TTL removed it; the cleanup did not run).
    old = RunKey("0ld000000000", 1)
    for seq in range(3):
        store.write_entry("i1", old, replace(entry(seq), result='{"$value":"old"}'))
    store.create_instance(record(incarnation="0ld000000000"))
    store.send_event("i1", EventRecord("go#1#a", "go", '"old"', NOW))
    fresh = record(incarnation=INC)
    _delete_instance_item(store, "i1")
    store.create_instance(fresh)
    assert store.load_journal("i1", R1) == [] and full_journal(store, "i1", 1) == []
    assert store.load_events("i1", R1) == []
    store.write_entry("i1", R1, entry(0))  # no conflict with the old entry at the same position
    assert store.load_journal("i1", R1) == [entry(0)]
    assert [e.result for e in store.load_journal("i1", old)] == ['{"$value":"old"}'] * 3


@pytest.mark.needs_transactions  # send_event stores the event
def test_events_are_kept_per_run_and_deleted_once_taken(store: Store) -> None:
    store.create_instance(record())
    for n in range(3):
        store.send_event("i1", EventRecord(f"go#{n}#a", "go", "null", NOW + n))
    store.send_event("i1", EventRecord("other#1#a", "other", "null", NOW))
    store.send_event("i1", EventRecord("go#0#a", "go", '"again"', NOW))  # a redelivery: kept once
    assert [e.key for e in store.load_events("i1", R1, "go")] == ["go#0#a", "go#1#a", "go#2#a"]
    assert store.load_events("i1", R1, "go")[0].payload == "null"
    store.delete_events("i1", R1, ["go#0#a", "go#1#a", "never-stored"])
    assert [e.key for e in store.load_events("i1", R1)] == ["go#2#a", "other#1#a"]
    store.control("i1", Control.RESTART, NOW + 1, 0)
    assert store.load_events("i1", R2) == []  # a restarted run sees none of the old run's events
    store.send_event("i1", EventRecord("go#5#a", "go", "null", NOW + 5))
    assert [e.key for e in store.load_events("i1", R2)] == ["go#5#a"]


def test_every_write_of_the_instance_item_changes_its_version(store: Store) -> None:
    versions = []

    def seen() -> None:
        current = store.get_instance("i1")
        assert current is not None
        versions.append(current.version)

    store.create_instance(record(due_at=None))
    seen()
    assert store.watch("i1", NOW + 5)
    seen()
    assert store.postpone("i1", NOW + 5, NOW + 6, now=NOW)
    seen()
    lease = store.acquire_lease("i1", "A", NOW, NOW + 60, require_due=True)
    seen()
    store.record_crash("i1", "A", "0:0", 1)
    seen()
    store.control("i1", Control.PAUSE, NOW + 1, 0)  # a pause request
    seen()
    store.release(lease, Release(Status.WAITING, NOW + 2, wake_at=NOW + 100))
    seen()
    store.control("i1", Control.RESUME, NOW + 3, 0)
    seen()
    lease = store.acquire_lease("i1", "B", NOW + 100, NOW + 160, require_due=True)
    seen()
    store.expire_lease("i1", "B", NOW + 101, NOW + 110, 1)
    seen()
    assert all(versions) and len(set(versions)) == len(versions)


def test_restart_starts_the_backoff_over(store: Store) -> None:
    store.create_instance(record())
    lease = store.acquire_lease("i1", "A", NOW, NOW + 60, require_due=True)
    store.expire_lease("i1", "A", NOW + 1, NOW + 40, 3)  # three failed hand-overs in a row
    assert lease.owner == "A"
    store.control("i1", Control.RESTART, NOW + 2, 0)
    restarted = store.get_instance("i1")
    assert restarted is not None and (restarted.run, restarted.backoff) == (2, 0)


def _delete_instance_item(store: Store, instance_id: str) -> None:
    TTL_REMOVE.pop(id(store))(instance_id)


def test_a_step_done_at_its_first_attempt_stores_no_attempt_list() -> None:
    from framework.backends.dynamodb_items import entry_from, entry_to
    from framework.core.records import Attempt

    clean = replace(entry(3), attempts=(Attempt(NOW + 3, NOW + 3.5),))
    item = entry_to("i1", R1, clean)
    assert "attempts" not in item and entry_from(item) == clean
    retried = replace(
        clean, attempts=(Attempt(NOW, NOW + 1, ErrorInfo("E", "m")), Attempt(NOW + 3, NOW + 3.5))
    )
    assert entry_from(entry_to("i1", R1, retried)) == retried
    assert entry_from(entry_to("i1", R1, entry(4))) == entry(4)  # no attempts at all stays so


# -- callbacks -------------------------------------------------------------------------------------------
def _callback_entry(
    seq: int, token: str, status: EntryStatus = EntryStatus.WAITING, rev: int = 1
) -> JournalEntry:
    return JournalEntry(
        seq,
        EntryKind.CALLBACK,
        "pay",
        status,
        NOW,
        rev=rev,
        wake_at=NOW + 60,
        extra={"token": token, "timeout": 60},
    )


TOKEN = "T" * 22


def test_get_entry_reads_one_entry_of_one_run(store: Store) -> None:
    store.create_instance(record())
    store.write_entry("i1", R1, entry(0))
    store.write_entry("i1", R1, _callback_entry(1, TOKEN))
    assert store.get_entry("i1", R1, 1) == _callback_entry(1, TOKEN)
    assert store.get_entry("i1", R1, 0) == entry(0)
    assert store.get_entry("i1", R1, 2) is None
    assert store.get_entry("i1", R2, 1) is None and store.get_entry("i2", R1, 1) is None


@pytest.mark.needs_transactions  # send_callback is one transaction
def test_send_callback_checks_run_entry_token_and_state_and_keeps_one_outcome(store: Store) -> None:
    from framework.core.callbacks import CallbackId
    from framework.errors import CallbackCompletedError, CallbackNotFoundError

    store.create_instance(record())
    store.write_entry("i1", R1, entry(0))
    store.write_entry("i1", R1, _callback_entry(1, TOKEN))
    good = CallbackId("i1", 1, 1, TOKEN)
    outcome = EventRecord(good.outcome_key, "$callback", '{"result":1}', NOW)
    for bad in (
        CallbackId("i1", 1, 1, "U" * 22),  # another token
        CallbackId("i1", 1, 0, TOKEN),  # a step's entry
        CallbackId("i1", 1, 5, TOKEN),  # no entry
        CallbackId("i1", 2, 1, TOKEN),  # another run
        CallbackId("nobody", 1, 1, TOKEN),
    ):
        with pytest.raises(CallbackNotFoundError):
            store.send_callback(bad, outcome)
    assert store.load_events("i1", R1) == []
    store.send_callback(good, outcome)
    with pytest.raises(CallbackCompletedError, match="already"):
        store.send_callback(good, EventRecord(good.outcome_key, "$callback", '{"result":2}', NOW + 1))
    assert [e.payload for e in store.load_events("i1", R1)] == ['{"result":1}']
    # Heartbeats: a later one replaces the stored one, an older one changes nothing.
    for at in (NOW + 5, NOW + 3, NOW + 5):
        store.send_callback(good, EventRecord(good.heartbeat_key, "$heartbeat", "null", at), replace=True)
    assert [e.sent_at for e in store.load_events("i1", R1, "$heartbeat")] == [NOW + 5]
    # Once the entry has its outcome, nothing more is taken, by token or otherwise.
    store.write_entry("i1", R1, _callback_entry(1, TOKEN, EntryStatus.COMPLETE, rev=2))
    with pytest.raises(CallbackCompletedError, match="complete already"):
        store.send_callback(
            good, EventRecord(good.heartbeat_key, "$heartbeat", "null", NOW + 9), replace=True
        )
    with pytest.raises(CallbackNotFoundError):  # a wrong token learns nothing of the state
        store.send_callback(CallbackId("i1", 1, 1, "U" * 22), outcome)
    store.control("i1", Control.TERMINATE, NOW + 10, 0)
    store.write_entry("i1", R1, _callback_entry(1, TOKEN, EntryStatus.WAITING, rev=3))
    with pytest.raises(CallbackCompletedError, match="terminated"):  # a finished instance takes none
        store.send_callback(good, EventRecord(good.outcome_key + "x", "$callback", "{}", NOW + 11))
    store.control("i1", Control.RESTART, NOW + 12, 0)
    with pytest.raises(CallbackNotFoundError, match="restart"):
        store.send_callback(good, outcome)
    assert store.load_events("i1", R2) == []


def test_an_event_put_for_a_run_is_read_by_that_run_only_and_kept_once(store: Store) -> None:
    """put_event: one write, no check of the instance. After a restart, what is put for the old run
    stays there; a second put of a key keeps the first event; it works on a finished instance too."""
    store.create_instance(record())
    store.put_event("i1", R1, EventRecord("$child#1#a", "$child", '{"n":1}', NOW))
    store.put_event("i1", R1, EventRecord("$child#1#a", "$child", '{"n":2}', NOW + 1))
    store.control("i1", Control.RESTART, NOW + 1, 0)
    store.put_event("i1", R1, EventRecord("$child#1#b", "$child", "{}", NOW + 2))
    assert store.load_events("i1", R2) == []
    old = store.load_events("i1", R1, "$child")
    assert [(e.key, e.payload) for e in old] == [("$child#1#a", '{"n":1}'), ("$child#1#b", "{}")]
    store.control("i1", Control.TERMINATE, NOW + 3, 0)
    store.put_event("i1", R2, EventRecord("$batch#0#1", "$batch", "{}", NOW + 4))
    assert [e.key for e in store.load_events("i1", R2, "$batch")] == ["$batch#0#1"]


def test_a_child_keeps_its_parent_link_and_a_finished_due_at_until_settled(store: Store) -> None:
    from framework.core.records import ParentLink

    link = ParentLink("parent-1", RunKey("abcdef012345", 3), "2.0.1")
    store.create_instance(record(parent=link, due_at=None))
    lease = store.acquire_lease("i1", "A", NOW, NOW + 60, require_due=False)
    store.release(lease, Release(Status.COMPLETE, NOW + 1, due_at=NOW + 121, output='{"$value":1}'))
    done = store.get_instance("i1")
    assert done is not None and done.parent == link and done.due_at == NOW + 121
    assert [d.id for d in store.due_instances(NOW + 200, 10)] == ["i1"]
    assert not store.settle("i1", NOW + 5)  # another due_at: changed meanwhile
    assert store.settle("i1", NOW + 121)
    settled = store.get_instance("i1")
    assert settled is not None and settled.due_at is None and settled.status is Status.COMPLETE
    assert store.due_instances(NOW + 200, 10) == []
    assert not store.settle("i1", NOW + 121)


def test_terminating_a_child_leaves_it_due_so_its_parent_is_told(store: Store) -> None:
    from framework.core.records import ParentLink

    store.create_instance(record(parent=ParentLink("p", R1, "0")))
    after = store.control("i1", Control.TERMINATE, NOW + 1, 0)
    assert after.status is Status.TERMINATED and after.due_at == NOW + 1
    assert not store.settle("i1", NOW + 2)
    assert store.settle("i1", NOW + 1)


def test_mark_rolling_back_needs_the_lease_and_the_next_lease_runs_it_again(store: Store) -> None:
    store.create_instance(record())
    with pytest.raises(LeaseLost):
        store.mark_rolling_back("i1", "A")  # nobody holds the lease
    store.acquire_lease("i1", "A", NOW, NOW + 60, require_due=False)
    with pytest.raises(LeaseLost):
        store.mark_rolling_back("i1", "B")
    store.mark_rolling_back("i1", "A")
    marked = store.get_instance("i1")
    assert marked is not None and marked.status is Status.ROLLING_BACK and marked.lease_owner == "A"
    # A crash mid-rollback: once the lease runs out, another invocation takes it and runs on.
    again = store.acquire_lease("i1", "C", NOW + 61, NOW + 120, require_due=False)
    assert again.previous.status is Status.ROLLING_BACK
    assert store.get_instance("i1").status is Status.RUNNING  # type: ignore[union-attr]
    store.release(again, Release(Status.ERRORED, NOW + 62, expires_at=999))


def test_a_rollback_request_takes_the_lease_and_is_kept_until_the_release(store: Store) -> None:
    store.create_instance(record())
    store.acquire_lease("i1", "A", NOW, NOW + 60, require_due=False)
    after = store.control("i1", Control.ROLLBACK, NOW + 1, 0)
    assert (after.rollback_requested, after.lease_owner, after.due_at) == (True, None, NOW + 1)
    stored = store.get_instance("i1")
    assert stored is not None and stored.rollback_requested and stored.status is Status.RUNNING
    lease = store.acquire_lease("i1", "B", NOW + 2, NOW + 60, require_due=False)
    assert lease.previous.rollback_requested
    store.release(lease, Release(Status.TERMINATED, NOW + 3, expires_at=999))
    done = store.get_instance("i1")
    assert done is not None and done.status is Status.TERMINATED and not done.rollback_requested
    with pytest.raises(InvalidStateError):
        store.control("i1", Control.ROLLBACK, NOW + 4, 0)


def test_a_skip_marks_a_waiting_instance_for_its_next_lease_and_the_release_clears_it(store: Store) -> None:
    store.create_instance(record())
    with pytest.raises(InvalidStateError, match="queued"):
        store.control("i1", Control.SKIP, NOW, 0)  # nothing waits yet
    lease = store.acquire_lease("i1", "A", NOW, NOW + 60, require_due=True)
    with pytest.raises(InvalidStateError, match="running"):
        store.control("i1", Control.SKIP, NOW + 1, 0)  # an invocation holds it
    store.release(lease, Release(Status.WAITING, NOW + 2, wake_at=NOW + 7200))
    skipped = store.control("i1", Control.SKIP, NOW + 3, 0)
    assert skipped.skip_to == NOW + 7200
    stored = store.get_instance("i1")
    assert stored is not None and stored.skip_to == NOW + 7200 and stored.wake_at == NOW + 7200
    lease = store.acquire_lease("i1", "B", NOW + 4, NOW + 64, require_due=False)  # the kick
    assert lease.previous.skip_to == NOW + 7200
    store.release(lease, Release(Status.WAITING, NOW + 5))  # waits with no deadline now
    after = store.get_instance("i1")
    assert after is not None and after.skip_to is None
    with pytest.raises(InvalidStateError, match="no timeout"):
        store.control("i1", Control.SKIP, NOW + 6, 0)
