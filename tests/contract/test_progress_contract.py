"""The store's part of an instance's status: the marks of running steps, the waits and the counts, on
each store of tests/contract/test_store_contract.py."""

from __future__ import annotations

import pytest

from framework.backends.store import LeaseLost, Release, Store
from framework.core.progress import RunningStep, StepCounts, WaitInfo, WaitKind
from framework.core.records import Control, Status
from tests.contract.test_store_contract import NOW, record, store  # noqa: F401 - the fixture

FETCH = RunningStep("3", "fetch", 2, NOW + 1)
STORE = RunningStep("4.0", "store", 1, NOW + 2)


def test_marks_are_kept_by_op_and_cleared_with_the_counts(store: Store) -> None:  # noqa: F811
    store.create_instance(record())
    store.acquire_lease("i1", "A", NOW, NOW + 60, require_due=True)
    store.mark_running("i1", "A", FETCH)
    store.mark_running("i1", "A", STORE)
    got = store.get_instance("i1")
    assert got is not None and sorted(got.running, key=lambda s: s.op) == [FETCH, STORE]
    store.clear_running("i1", "A", "3", StepCounts(steps_done=4, retries=1, failures=1))
    got = store.get_instance("i1")
    assert got is not None and got.running == (STORE,)
    assert got.counts == StepCounts(steps_done=4, retries=1, failures=1)


def test_only_the_lease_holder_marks_and_each_lease_starts_with_none(store: Store) -> None:  # noqa: F811
    store.create_instance(record())
    store.acquire_lease("i1", "A", NOW, NOW + 60, require_due=True)
    with pytest.raises(LeaseLost):
        store.mark_running("i1", "B", FETCH)
    with pytest.raises(LeaseLost):
        store.clear_running("i1", "B", "3", StepCounts())
    store.mark_running("i1", "A", FETCH)
    # A crash: the next lease forgets what the dead invocation marked.
    store.acquire_lease("i1", "B", NOW + 61, NOW + 120, require_due=True)
    got = store.get_instance("i1")
    assert got is not None and got.running == ()
    store.mark_running("i1", "B", STORE)
    store.expire_lease("i1", "B", NOW + 62, NOW + 70, 1)  # a hand-over forgets them too
    got = store.get_instance("i1")
    assert got is not None and got.running == ()


def test_the_release_keeps_waits_and_counts_and_drops_marks(store: Store) -> None:  # noqa: F811
    store.create_instance(record())
    lease = store.acquire_lease("i1", "A", NOW, NOW + 60, require_due=True)
    store.mark_running("i1", "A", FETCH)
    waits = (
        WaitInfo(WaitKind.EVENT, "approval", NOW + 100, event_type="approved"),
        WaitInfo(WaitKind.INVOKE, "ship", NOW + 200, child_id="kid"),
        WaitInfo(WaitKind.RETRY, "call", NOW + 300, attempt=3),
        WaitInfo(WaitKind.MAP, "all", None),
    )
    counts = StepCounts(steps_done=2, steps_failed=1, retries=3, failures=4)
    store.release(lease, Release(Status.WAITING, NOW + 1, wake_at=NOW + 100, waits=waits, counts=counts))
    got = store.get_instance("i1")
    assert got is not None and (got.waits, got.counts, got.running) == (waits, counts, ())
    # A release that brings no counts keeps the stored ones; a restart starts them again.
    lease = store.acquire_lease("i1", "A", NOW + 100, NOW + 160, require_due=True)
    store.release(lease, Release(Status.WAITING, NOW + 101, wake_at=NOW + 200))
    got = store.get_instance("i1")
    assert got is not None and (got.waits, got.counts) == ((), counts)
    store.control("i1", Control.RESTART, NOW + 102, 0)
    got = store.get_instance("i1")
    assert got is not None and (got.waits, got.counts) == ((), StepCounts())
