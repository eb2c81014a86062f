"""When the local stacks' sweeper next has work: ``LocalRuntime`` and the unit tests' harness move their
virtual clock to it instead of sweeping every simulated minute."""

from __future__ import annotations

from framework.api.registry import Registry
from framework.backends.environment import Settings
from framework.backends.store import WATCHED, Store
from framework.engine.schedules import next_due
from framework.engine.sweeper import parked

FAR_FUTURE = 200 * 365 * 86400.0
SWEEP_EVERY = 60.0  # the template's schedule: rate(1 minute)


def next_sweep(
    store: Store,
    settings: Settings,
    last_sweep: float,
    now: float,
    unwatched: dict[str, float] | None = None,
    *,
    registry: Registry | None = None,
) -> float | None:
    """When a sweeper that last ran at ``last_sweep`` next has work, on a one-minute schedule: an
    instance due, or one created since that it has not looked at yet (and may need a ``due_at``).
    ``unwatched`` (id -> creation time), if given, holds the instances created, to look at with
    GetItem, instead of a Query by creation time; those that no longer need a look are dropped. With
    ``registry``, the next fire of its schedules is work too (framework.engine.schedules.next_due)."""
    grace, mark = settings.sweep_grace, store.sweep_mark()
    # A parked wait whose wake-up went out (its due time is behind the mark) matters again only if that
    # wake-up is lost: one grace after its wake time.
    times = [
        (d.wake_at or now) + grace
        if parked(d) and mark is not None and d.due_at <= mark
        else d.due_at + grace
        for d in store.due_instances(now + FAR_FUTURE, 100)
    ]
    if unwatched is None:
        created = store.created_between(last_sweep - grace, now + FAR_FUTURE)
    else:
        created = [r for i in list(unwatched) if (r := store.get_instance(i)) is not None]
    waiting = [r for r in created if r.due_at is None and r.status in WATCHED]
    if unwatched is not None:
        for gone in unwatched.keys() - {r.id for r in waiting}:
            del unwatched[gone]
    times += [min(r.created_at for r in waiting) + grace] if waiting else []
    fire = None if registry is None else next_due(store, registry)  # the schedules' next fire
    times += [] if fire is None else [fire]
    return max(min(times), last_sweep + SWEEP_EVERY, now) if times else None
