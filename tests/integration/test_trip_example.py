"""The saga example on LocalRuntime: booked and paid; a declined card cancels every booking, last in
first out, each undo a durable step in the history; terminate(rollback=True) cancels them too."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from examples.trip import PROVIDERS, trip_booking
from framework.local import LocalRuntime

BOOKED = ["book flight", "book hotel", "book car"]


@pytest.fixture
def rt() -> Iterator[LocalRuntime]:
    PROVIDERS.clear()
    with LocalRuntime(workflows=[trip_booking]) as runtime:
        yield runtime


def test_a_paid_trip_keeps_its_bookings(rt: LocalRuntime) -> None:
    inst = rt.client.create("trip-booking", {"trip": "t1"}, id="t1")
    rt.run_until_idle()
    status = inst.status()
    assert (status.status, status.output) == (
        "complete",
        {"booked": ["t1-flight", "t1-hotel", "t1-car"], "trip": "t1", "charged": 300},
    )
    assert sorted(PROVIDERS) == ["t1-car", "t1-flight", "t1-hotel"]
    assert not [e for e in inst.history() if e.name.endswith("(undo)")]


def test_a_declined_card_cancels_every_booking_last_in_first_out(rt: LocalRuntime) -> None:
    inst = rt.client.create("trip-booking", {"trip": "t2", "card_declined": True}, id="t2")
    rt.run_until_idle()
    status = inst.status()
    assert status.status == "errored" and "declined" in str(status.error)
    assert PROVIDERS == {}
    names = [e.name for e in inst.history()]
    undos = [n for n in names if n.endswith("(undo)")]
    assert undos == [f"{b} (undo)" for b in reversed(BOOKED)]
    assert names.index("book car") < names.index("book car (undo)")
    assert "charge card" not in names
    assert all(e.status == "complete" for e in inst.history() if e.name in undos)


def test_terminate_with_rollback_cancels_the_bookings_then_terminates(rt: LocalRuntime) -> None:
    inst = rt.client.create("trip-booking", {"trip": "t3", "hold": "1 day"}, id="t3")
    rt.advance("1 hour")
    assert inst.status().status == "waiting" and len(PROVIDERS) == 3
    inst.terminate(rollback=True)
    rt.run_until_idle()
    assert inst.status().status == "terminated"
    assert PROVIDERS == {}
    assert [e.name for e in inst.history() if e.name.endswith("(undo)")] == [
        f"{b} (undo)" for b in reversed(BOOKED)
    ]
