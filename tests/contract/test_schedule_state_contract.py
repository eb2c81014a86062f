"""The schedules' state (``Store.schedule_state``, ``put_schedule_state``) on every store of the contract."""

from __future__ import annotations

from framework.backends.store import ScheduleState, Store
from tests.contract.test_store_contract import NOW, record, store

__all__ = ["store"]


def test_no_state_before_the_first_write_then_what_was_written(store: Store) -> None:
    assert store.schedule_state("nightly") is None
    assert store.put_schedule_state("nightly", ScheduleState(NOW), expected=None)
    assert store.schedule_state("nightly") == ScheduleState(NOW)
    assert store.schedule_state("other") is None  # one item per workflow


def test_a_write_lands_only_from_the_state_read(store: Store) -> None:
    first = ScheduleState(NOW + 0.25)
    assert store.put_schedule_state("w", first, expected=None)
    assert not store.put_schedule_state("w", ScheduleState(NOW + 1), expected=None)  # one exists
    assert not store.put_schedule_state("w", ScheduleState(NOW + 1), expected=ScheduleState(NOW))
    assert not store.put_schedule_state("w", ScheduleState(NOW + 1), expected=ScheduleState(NOW + 0.25, True))
    assert store.schedule_state("w") == first
    moved = ScheduleState(NOW + 60, last_fire=NOW + 59.5)
    assert store.put_schedule_state("w", moved, expected=first)
    assert store.schedule_state("w") == moved
    paused = ScheduleState(NOW + 60, paused=True, last_fire=NOW + 59.5)
    assert store.put_schedule_state("w", paused, expected=moved)
    # A sweep that read it unpaused cannot write over the pause.
    assert not store.put_schedule_state("w", ScheduleState(NOW + 120), expected=moved)
    assert store.schedule_state("w") == paused


def test_a_schedule_item_is_no_instance(store: Store) -> None:
    store.create_instance(record("nightly"))
    assert store.put_schedule_state("nightly", ScheduleState(NOW), expected=None)
    assert store.get_instance("nightly") is not None
    assert [r.id for r in store.list_instances(None, None, 10, None)[0]] == ["nightly"]
    assert [r.id for r in store.created_between(0, NOW * 2)] == ["nightly"]
    assert {d.id for d in store.due_instances(NOW * 2, 10)} <= {"nightly"}  # the instance's own, if any
