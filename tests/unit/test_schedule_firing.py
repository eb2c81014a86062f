"""Schedules fired by the sweeper (framework.engine.schedules), on the memory store and a virtual clock."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel

from framework import WorkflowNotFoundError, workflow
from framework.api.registry import REGISTRY, Registry, Workflow
from framework.backends.store import ScheduleState
from framework.core.faults import injected
from framework.engine.schedules import MAX_FIRES, ON_TIME, fire_id, fire_schedules
from framework.engine.sweeper import sweep
from tests.unit.harness import Harness

HOUR = 3600.0


def private(wf: Any) -> Any:
    """Out of the process's registry: a schedule there would fire in other tests' runtimes."""
    REGISTRY.remove(wf)
    return wf


def hourly(catch_up: str = "last", window: str = "1 day", name: str = "hourly") -> Workflow:
    @workflow(name, schedule="0 * * * *", catch_up=catch_up, catch_up_window=window)
    def fn(event: Any, step: Any) -> Any:
        return event.payload

    return private(fn)  # type: ignore[no-any-return]


def ids(h: Harness) -> list[str]:
    return sorted(s.id for s in h.client.list(limit=1000).instances)


def at_hour(h: Harness, hours: float) -> float:
    """The epoch ``hours`` hours after the harness clock's first top of an hour."""
    return (h.clock.now() // HOUR + 1) * HOUR + hours * HOUR


def test_first_sweep_starts_from_now_then_fires_once_per_tick_with_the_scheduled_time() -> None:
    h = Harness(hourly())
    sweep(h.env)  # the first sees no state: it writes the mark, and backfills nothing
    assert ids(h) == [] and h.store.schedule_state("hourly") is not None
    first = at_hour(h, 0)
    h.advance(3 * HOUR)
    expected = [fire_id("hourly", first + i * HOUR) for i in range(3)]
    assert ids(h) == expected
    assert expected[0] == f"hourly@{datetime.fromtimestamp(first, UTC):%Y%m%dT%H%M%SZ}"
    status = h.client.get(expected[0]).status()
    when = datetime.fromtimestamp(first, UTC).isoformat().replace("+00:00", "Z")
    assert status.status == "complete"
    assert status.output == {"scheduled_time": when, "schedule": "0 * * * *"}
    state = h.store.schedule_state("hourly")
    assert state.last_fire == first + 2 * HOUR


def test_two_sweeps_at_once_start_each_fire_once() -> None:
    h = Harness(hourly())
    sweep(h.env)
    fire = at_hour(h, 0)
    h.clock.set(fire + 5)
    state = h.store.schedule_state("hourly")
    real = h.store.inner.schedule_state
    h.store.inner.schedule_state = lambda name: state  # both read the state before either wrote
    try:
        assert fire_schedules(h.env, h.clock.now()) == 1
        assert fire_schedules(h.env, h.clock.now()) == 0  # its create finds the same instance there
    finally:
        h.store.inner.schedule_state = real
    assert ids(h) == [fire_id("hourly", fire)]
    assert len(h.queue.due()) == 1  # one start message
    assert h.store.schedule_state("hourly").mark == fire + 5


def test_a_crash_between_the_create_and_the_mark_starts_nothing_twice() -> None:
    h = Harness(hourly())
    sweep(h.env)
    h.clock.set(at_hour(h, 0) + 5)
    assert fire_id("hourly", h.clock.now() - 5).endswith("0000Z")

    class Died(BaseException):
        pass

    def die(where: str, info: dict[str, Any]) -> None:
        if where == "schedule.after_create":
            raise Died

    with injected(die), pytest.raises(Died):
        fire_schedules(h.env, h.clock.now())
    assert len(ids(h)) == 1
    mark = h.store.schedule_state("hourly").mark
    assert mark < h.clock.now()  # the mark did not move
    sent = len(h.queue.due())
    assert fire_schedules(h.env, h.clock.now()) == 0  # the same fire: its instance is there already
    assert len(ids(h)) == 1 and len(h.queue.due()) == 0 and sent == 1  # and nothing was sent again
    assert h.store.schedule_state("hourly").mark == h.clock.now()


@pytest.mark.parametrize(
    ("policy", "expected"),
    [("none", 1), ("last", 1), ("all", 6)],
)
def test_catch_up_after_an_outage(policy: str, expected: int) -> None:
    """The sweeper is down for over five hours: six fires are due, the newest 30 s ago."""
    h = Harness(hourly(policy, window="1 day"))
    sweep(h.env)
    base = at_hour(h, 0)
    h.clock.set(base + 5 * HOUR + 30)  # no sweep ran from before base to 30 s after base + 5 h
    fire_schedules(h.env, h.clock.now())
    got = ids(h)
    if policy in ("none", "last"):
        assert got == [fire_id("hourly", base + 5 * HOUR)]  # 30 s late: on time for "none" too
    else:
        assert got == [fire_id("hourly", base + i * HOUR) for i in range(6)]
    assert len(got) == expected
    assert fire_schedules(h.env, h.clock.now()) == 0  # handled: the next run has nothing


def test_none_drops_a_fire_later_than_on_time_and_all_keeps_only_the_window() -> None:
    h = Harness(hourly("none"), hourly("all", window="2 hours", name="hourly-all"))
    sweep(h.env)
    base = at_hour(h, 0)
    h.clock.set(base + 5 * HOUR + ON_TIME + 1)
    fire_schedules(h.env, h.clock.now())
    got = ids(h)
    assert not [i for i in got if i.startswith("hourly@")]  # every fire missed by more than ON_TIME
    # The window is 2 hours back from now: the fires of base + 4 h and base + 5 h (base + 3 h is older).
    assert got == [fire_id("hourly-all", base + 4 * HOUR), fire_id("hourly-all", base + 5 * HOUR)]
    assert h.store.schedule_state("hourly").mark == h.clock.now()


def test_all_caps_one_run_and_goes_on_next_run() -> None:
    @workflow("often", every="1 second", catch_up="all", catch_up_window="1 hour")
    def often(event: Any, step: Any) -> None:
        return None

    h = Harness(private(often))
    sweep(h.env)
    start = h.clock.now()
    h.clock.set(start + MAX_FIRES + 500)
    assert fire_schedules(h.env, h.clock.now()) == MAX_FIRES
    assert h.store.schedule_state("often").mark == float(int(start) + MAX_FIRES)
    assert fire_schedules(h.env, h.clock.now()) == 500


def test_paused_fires_nothing_and_resume_drops_what_was_missed() -> None:
    h = Harness(hourly("all"))
    sweep(h.env)
    paused = h.client.pause_schedule("hourly")
    assert paused.paused and paused.next_fire is None
    h.advance(3 * HOUR)
    assert ids(h) == []
    assert h.client.pause_schedule("hourly").paused  # again: no change
    resumed = h.client.resume_schedule("hourly")
    assert not resumed.paused and resumed.next_fire is not None
    assert h.store.schedule_state("hourly").mark == h.clock.now()
    h.advance(HOUR)
    assert len(ids(h)) == 1  # the next one, not the three missed
    listed = h.client.schedules()
    assert [(s.workflow, s.cron, s.catch_up, s.paused) for s in listed] == [
        ("hourly", "0 * * * *", "all", False)
    ]
    assert listed[0].last_fire is not None and listed[0].next_fire > listed[0].last_fire


def test_pause_and_resume_refuse_unknown_or_unscheduled_workflows() -> None:
    @workflow("plain")
    def plain(event: Any, step: Any) -> None:
        return None

    h = Harness(hourly(), private(plain))
    for name in ("plain", "nope"):
        with pytest.raises(WorkflowNotFoundError):
            h.client.pause_schedule(name)
        with pytest.raises(WorkflowNotFoundError):
            h.client.resume_schedule(name)


def test_a_workflow_removed_from_the_code_fires_nothing() -> None:
    h = Harness(hourly())
    sweep(h.env)
    h.clock.set(at_hour(h, 2))
    h.env.registry = Registry([])
    assert fire_schedules(h.env, h.clock.now()) == 0 and ids(h) == []


def test_a_failing_schedule_stops_neither_the_others_nor_the_sweep() -> None:
    class Strict(BaseModel):
        order: str  # refuses the fire's params

    @workflow("strict", params=Strict, schedule="0 * * * *")
    def strict(event: Any, step: Any) -> None:
        return None

    @workflow("sleeper")
    def sleeper(event: Any, step: Any) -> None:
        step.sleep("nap", "2 hours")

    h = Harness(private(strict), hourly())
    h.env.registry.add(private(sleeper))
    sweep(h.env)
    h.client.create("sleeper", id="s1")
    h.advance(3 * HOUR)
    assert h.client.get("s1").status().status == "complete"  # the sweep went on
    assert len([i for i in ids(h) if i.startswith("hourly@")]) == 3
    assert not [i for i in ids(h) if i.startswith("strict@")]
    assert h.store.schedule_state("strict").mark < h.clock.now() - 2 * HOUR  # left for a fixed deploy


def test_the_state_write_is_conditional_on_what_was_read() -> None:
    h = Harness(hourly())
    store = h.store.inner
    assert store.put_schedule_state("x", ScheduleState(1.0), expected=None)
    assert not store.put_schedule_state("x", ScheduleState(2.0), expected=None)
    assert not store.put_schedule_state("x", ScheduleState(2.0), expected=ScheduleState(0.5))
    assert not store.put_schedule_state("x", ScheduleState(2.0), expected=ScheduleState(1.0, paused=True))
    assert store.put_schedule_state("x", ScheduleState(2.0, last_fire=2.0), expected=ScheduleState(1.0))
    assert store.schedule_state("x") == ScheduleState(2.0, last_fire=2.0)
