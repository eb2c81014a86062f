"""Listing, pausing and resuming schedules (``WorkflowClient.schedules``, ``pause_schedule``,
``resume_schedule``; the HTTP API's ``/schedules``; ``workflows schedules``).

A schedule is declared in code (``@workflow(..., schedule=|every=)``): only the workflows registered in
this process are listed. Pause and resume write the schedule's item with a write conditioned on the
state read (as the sweeper's, ``framework.engine.schedules``), read again on a conflict. Resume moves
the mark to now: the fires missed while paused are dropped, whatever the catch-up policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from framework.api.registry import Workflow
from framework.backends.environment import Environment
from framework.backends.store import ScheduleState
from framework.core.durations import from_epoch
from framework.errors import InvalidStateError, WorkflowNotFoundError

TRIES = 5  # a sweep moving the mark between the read and the write: read again


@dataclass(frozen=True, slots=True)
class ScheduleInfo:
    """One schedule as listed: its declaration, and its state (``last_fire``: the newest fire that
    started an instance; ``next_fire``: when the next one is due, None while paused)."""

    workflow: str
    cron: str | None
    every: float | None
    timezone: str
    catch_up: str
    catch_up_window: float
    paused: bool
    last_fire: datetime | None
    next_fire: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "workflow": self.workflow,
            "cron": self.cron,
            "every": self.every,
            "timezone": self.timezone,
            "catch_up": self.catch_up,
            "catch_up_window": self.catch_up_window,
            "paused": self.paused,
            "last_fire": None if self.last_fire is None else self.last_fire.isoformat(),
            "next_fire": None if self.next_fire is None else self.next_fire.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScheduleInfo:
        def when(value: Any) -> datetime | None:
            return None if value is None else datetime.fromisoformat(value)

        return cls(
            workflow=data["workflow"],
            cron=data.get("cron"),
            every=data.get("every"),
            timezone=data.get("timezone", "UTC"),
            catch_up=data.get("catch_up", "last"),
            catch_up_window=float(data.get("catch_up_window", 86400.0)),
            paused=bool(data.get("paused", False)),
            last_fire=when(data.get("last_fire")),
            next_fire=when(data.get("next_fire")),
        )


def list_schedules(env: Environment) -> list[ScheduleInfo]:
    """Every scheduled workflow of the registry, by name. One read per schedule."""
    return [_info(env, wf) for wf in env.registry.all() if wf.schedule is not None]


def get_schedule(env: Environment, name: str) -> ScheduleInfo:
    """Raise WorkflowNotFoundError for an unknown workflow, or one with no schedule."""
    return _info(env, _scheduled(env, name))


def pause(env: Environment, name: str) -> ScheduleInfo:
    """Stop ``name``'s fires until resumed; pausing a paused schedule changes nothing."""
    wf = _scheduled(env, name)
    _change(env, wf, paused=True)
    return _info(env, wf)


def resume(env: Environment, name: str) -> ScheduleInfo:
    """Fire again from now on: the mark moves to now, so the fires missed while paused never start.
    Resuming a running schedule changes nothing."""
    wf = _scheduled(env, name)
    _change(env, wf, paused=False)
    return _info(env, wf)


def _change(env: Environment, wf: Workflow, *, paused: bool) -> None:
    for _ in range(TRIES):
        state = env.store.schedule_state(wf.name)
        if state is not None and state.paused == paused:
            return
        now = env.clock.now()
        if state is None:
            new = ScheduleState(mark=now, paused=paused)
        elif paused:
            new = ScheduleState(mark=state.mark, paused=True, last_fire=state.last_fire)
        else:
            new = ScheduleState(mark=max(now, state.mark), paused=False, last_fire=state.last_fire)
        if env.store.put_schedule_state(wf.name, new, expected=state):
            return
    raise InvalidStateError(f"the schedule of workflow {wf.name!r} kept changing; try again")


def _scheduled(env: Environment, name: str) -> Workflow:
    wf = env.registry.get(name)  # raises WorkflowNotFoundError
    if wf.schedule is None:
        raise WorkflowNotFoundError(f"workflow {wf.name!r} has no schedule")
    return wf


def _info(env: Environment, wf: Workflow) -> ScheduleInfo:
    schedule = wf.schedule
    assert schedule is not None
    state = env.store.schedule_state(wf.name)
    paused = state is not None and state.paused
    # Before the first sweep there is no mark: the next fire after now is the first one.
    mark = env.clock.now() if state is None else state.mark
    last = None if state is None or state.last_fire is None else from_epoch(state.last_fire)
    return ScheduleInfo(
        workflow=wf.name,
        cron=schedule.cron,
        every=schedule.every,
        timezone=schedule.timezone,
        catch_up=schedule.catch_up.value,
        catch_up_window=schedule.catch_up_window,
        paused=paused,
        last_fire=last,
        next_fire=None if paused else from_epoch(schedule.next_fire(mark)),
    )
