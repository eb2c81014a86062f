"""Firing schedules (``@workflow(..., schedule=|every=)``), from each sweeper run (framework.engine.sweeper).

For each scheduled workflow of the registry, one run:

1. reads the schedule's state (``Store.schedule_state``): up to when its fires are handled (the mark),
   and whether it is paused. With none yet (a new schedule, a first deploy), it writes the mark at now:
   history is not backfilled;
2. if unpaused, takes the fires in (mark, now] that its catch-up policy keeps (``due_fires``);
3. starts one instance per fire, with an id made of the workflow and the fire time
   (``nightly-report@20261206T020000Z``) and params ``{"scheduled_time": "<ISO UTC>", "schedule":
   "<cron, or every N seconds>"}``, through a conditional create: an id that holds the same instance
   already is success and sends nothing;
4. moves the mark with a write conditioned on the state read in 1.

So two sweeps at once, or a sweep that dies between its creates and its mark (the next run sees the
same fires, and finds their instances there), start each fire's instance once. A workflow no longer in
the code fires nothing (its item stays, unread). A run reads one item per schedule and writes nothing
when no fire came due.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from framework.api.registry import Registry, Workflow
from framework.api.schedules import CatchUp, Schedule
from framework.backends.environment import Environment
from framework.backends.store import InstanceTaken, ScheduleState, Store
from framework.core import metrics, serde
from framework.core.faults import point
from framework.core.logs import logger
from framework.core.records import InstanceRecord, Status, new_incarnation
from framework.engine.invocation import send_wake

# catch_up="none": a fire still starts this late. One sweeper period (rate(1 minute)) plus a minute for a
# run that starts late or takes long; a longer SweeperSchedule needs "last" or "all" instead.
ON_TIME = 120.0
MAX_FIRES = 1000  # of one schedule in one run (catch_up="all"); the next run goes on from the last one
# Fires a search for the newest one (catch_up="last") steps through at most: a cron fires at most once
# a minute, so this is about two years of a minutely schedule.
MAX_SCAN = 1_000_000
LOOK_BACK = (3600.0, 86400.0, 32 * 86400.0, 400 * 86400.0)  # "last" looks this far back first, in turn


def fire_schedules(env: Environment, now: float, out_of_time: Callable[[], bool] = lambda: False) -> int:
    """One run over every scheduled workflow, as in the module docstring. A schedule that fails is
    logged and left for the next run; it stops neither the others nor the sweep. Return how many
    instances were started."""
    started = 0
    for wf in env.registry.all():
        if wf.schedule is None:
            continue
        if out_of_time():
            break
        try:
            started += _fire(env, wf, wf.schedule, now, out_of_time)
        except Exception as exc:
            logger.error(
                "schedule firing failed; the next sweep tries again",
                extra={"workflow": wf.name, "error": type(exc).__name__},
            )
    return started


def due_fires(schedule: Schedule, mark: float, now: float) -> tuple[list[float], float]:
    """The fires in (``mark``, ``now``] that ``schedule``'s catch-up policy starts, oldest first, and
    the new mark: ``now``, or the last fire listed when ``MAX_FIRES`` cut the list.

    - ``none``: those at most ``ON_TIME`` old;
    - ``last``: the newest;
    - ``all``: those at most ``catch_up_window`` old, ``MAX_FIRES`` at most."""
    if schedule.catch_up is CatchUp.LAST:
        newest = _newest(schedule, mark, now)
        return ([] if newest is None else [newest]), now
    lookback = ON_TIME if schedule.catch_up is CatchUp.NONE else schedule.catch_up_window
    fires = fires_between(schedule, max(mark, now - lookback), now, MAX_FIRES)
    return fires, (fires[-1] if len(fires) >= MAX_FIRES else now)


def fires_between(schedule: Schedule, after: float, until: float, limit: int) -> list[float]:
    """The fires in (``after``, ``until``], oldest first, ``limit`` at most."""
    found: list[float] = []
    t = after
    while len(found) < limit:
        t = schedule.next_fire(t)
        if t > until:
            break
        found.append(t)
    return found


def _newest(schedule: Schedule, mark: float, now: float) -> float | None:
    """The newest fire in (``mark``, ``now``], or None. Looks back an hour, a day, a month, a year, then
    to the mark, so that an old mark costs no walk through every fire since."""
    if schedule.every is not None:
        newest = (now // schedule.every) * schedule.every
        return newest if newest > mark else None
    for span in (*LOOK_BACK, None):
        after = mark if span is None else max(mark, now - span)
        fires = fires_between(schedule, after, now, MAX_SCAN)
        if fires:
            return fires[-1]
        if after <= mark:
            return None
    return None


def _fire(
    env: Environment, wf: Workflow, schedule: Schedule, now: float, out_of_time: Callable[[], bool]
) -> int:
    state = env.store.schedule_state(wf.name)
    if state is None:  # first sight of this schedule: from now on
        env.store.put_schedule_state(wf.name, ScheduleState(mark=now), expected=None)
        return 0
    if state.paused or schedule.next_fire(state.mark) > now:
        return 0  # nothing to do, nothing written
    fires, mark = due_fires(schedule, state.mark, now)
    started, handled = 0, None
    for at in fires:
        if out_of_time():  # the mark says how far this run got: the next one goes on from there
            mark = state.mark if handled is None else handled
            break
        started += start_fire(env, wf, schedule, at, now)
        point("schedule.after_create", workflow=wf.name, at=at)
        handled = at
    if mark == state.mark:
        return started
    last = state.last_fire if handled is None else handled
    if not env.store.put_schedule_state(
        wf.name, ScheduleState(mark=float(mark), last_fire=last), expected=state
    ):
        # Another sweep moved it (its fires' instances are the same ids), or a pause came: either way
        # the next run reads it again.
        logger.info("a schedule's mark moved under this sweep", extra={"workflow": wf.name})
    return started


def fire_id(workflow: str, at: float) -> str:
    """The instance id of ``workflow``'s fire at epoch ``at``: ``<workflow>@<UTC time>``, to the second."""
    return f"{workflow}@{datetime.fromtimestamp(at, UTC):%Y%m%dT%H%M%SZ}"


def fire_params(schedule: Schedule, at: float) -> dict[str, str]:
    """What the instance of a fire receives as its payload."""
    when = datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")
    return {"scheduled_time": when, "schedule": schedule.expression}


def start_fire(env: Environment, wf: Workflow, schedule: Schedule, at: float, now: float) -> int:
    """Create and start the instance of the fire at ``at``, as ``WorkflowClient.create`` does (the same
    conditional put; an id that holds the same workflow and params is success, and nothing is sent).
    Return 1 if this call created it, else 0. Raise InvalidParamsError if the workflow's params model
    refuses the fire's params (docs/schedules.md)."""
    record = InstanceRecord(
        id=fire_id(wf.name, at),
        workflow=wf.name,
        status=Status.QUEUED,
        params=wf.encode_params(fire_params(schedule, at)),
        created_at=now,
        updated_at=now,
        incarnation=new_incarnation(),
        code_version=wf.version,
    )
    for _ in range(3):  # an id freed by its TTL between the put and the read: put again
        try:
            env.store.create_instance(record)
        except InstanceTaken as taken:
            existing = taken.existing.get(record.id)
            if existing is None:
                continue
            if existing.workflow != record.workflow or not serde.same_json(existing.params, record.params):
                logger.error(
                    "a schedule's instance id is held by another instance", extra={"instance_id": record.id}
                )
            return 0
        # A start lost here is kicked by the sweeper, which looks at every new instance once.
        send_wake(env, record.id, record.created_at)
        metrics.record(wf.name, "InstancesCreated")
        return 1
    return 0


def next_due(store: Store, registry: Registry) -> float | None:
    """When a sweep next has a schedule's work: its next fire after the mark, or at once for one with
    no state yet; None if no schedule is unpaused (LocalRuntime's virtual clock jumps there)."""
    times: list[float] = []
    for wf in registry.all():
        if wf.schedule is None:
            continue
        state = store.schedule_state(wf.name)
        if state is None:
            times.append(float("-inf"))
        elif not state.paused:
            times.append(wf.schedule.next_fire(state.mark))
    return min(times, default=None)
