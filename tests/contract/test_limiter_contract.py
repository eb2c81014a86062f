"""The limiter and waiter primitives (framework.backends.limiter) on every store of the contract."""

from __future__ import annotations

from dataclasses import replace

import pytest

from framework.backends.limiter import LimiterConflict, LimiterState, Waiter
from framework.backends.store import Release, Store
from framework.core.records import Control, Lease, Status
from tests.contract.test_store_contract import NOW, record
from tests.contract.test_store_contract import store as store  # noqa: PLC0414 - the fixture

KEY = "limit#wf#k:customer-1"
EXPIRES = int(NOW) + 86400


def test_a_limiter_starts_empty_and_is_written_only_on_the_version_read(store: Store) -> None:
    empty = store.get_limiter(KEY)
    assert empty == LimiterState()
    first = LimiterState({"owner-a": NOW + 900}, (NOW, NOW + 0.5), None)
    version = store.put_limiter(KEY, first, EXPIRES)
    stored = store.get_limiter(KEY)
    assert (stored.holders, stored.starts, stored.version) == (first.holders, first.starts, version)
    with pytest.raises(LimiterConflict) as seen:  # a second writer that read "no item"
        store.put_limiter(KEY, LimiterState({"owner-b": NOW + 900}), EXPIRES)
    assert seen.value.current.holders == {"owner-a": NOW + 900} and seen.value.current.version == version
    later = store.put_limiter(KEY, replace(stored, holders={}), EXPIRES)
    assert later != version and store.get_limiter(KEY).holders == {}
    with pytest.raises(LimiterConflict):  # the version it read is gone
        store.put_limiter(KEY, stored, EXPIRES)
    assert store.get_limiter("limit#wf#k:customer-2") == LimiterState()  # keys are independent


def test_waiters_come_oldest_first_and_each_is_taken_once(store: Store) -> None:
    for order, name in [(NOW + 2, "c"), (NOW, "a"), (NOW + 1, "b")]:
        store.add_waiter(KEY, Waiter(order, name), EXPIRES)
    store.add_waiter(KEY, Waiter(NOW, "a"), EXPIRES)  # registering again keeps one place
    store.add_waiter("limit#other", Waiter(NOW - 5, "z"), EXPIRES)
    assert store.oldest_waiters(KEY, 2) == [Waiter(NOW, "a"), Waiter(NOW + 1, "b")]
    assert store.take_waiter(KEY, Waiter(NOW, "a")) is True
    assert store.take_waiter(KEY, Waiter(NOW, "a")) is False  # a second taker loses
    assert store.oldest_waiters(KEY, 10) == [Waiter(NOW + 1, "b"), Waiter(NOW + 2, "c")]
    assert store.oldest_waiters("limit#other", 10) == [Waiter(NOW - 5, "z")]
    assert store.oldest_waiters("limit#none", 10) == []


def test_a_limiter_item_is_not_an_instance(store: Store) -> None:
    store.put_limiter(KEY, LimiterState({"o": NOW}), EXPIRES)
    store.add_waiter(KEY, Waiter(NOW, "i1"), EXPIRES)
    assert store.get_instance(KEY) is None
    assert store.list_instances(None, None, 10, None) == ([], False)
    assert store.due_instances(NOW + 10**6, 10) == []


@pytest.mark.parametrize("status", [Status.QUEUED, Status.WAITING])
def test_a_queued_or_waiting_release_with_a_pause_request_is_stored_paused(
    store: Store, status: Status
) -> None:
    store.create_instance(record())
    lease = store.acquire_lease("i1", "o1", NOW, NOW + 60, require_due=False)
    store.control("i1", Control.PAUSE, NOW, EXPIRES)
    got = store.release(Lease("o1", NOW + 60, lease.previous), Release(status, NOW, due_at=NOW + 900))
    assert got is Status.PAUSED
    current = store.get_instance("i1")
    assert current is not None and current.status is Status.PAUSED


def test_the_limit_key_is_stored_with_the_instance(store: Store) -> None:
    store.create_instance(record(limit_key="customer-1"))
    store.create_instance(record("i2"))
    one, two = store.get_instance("i1"), store.get_instance("i2")
    assert one is not None and one.limit_key == "customer-1"
    assert two is not None and two.limit_key is None
