"""The scheduled sweeper. Each run, in one pass:

1. sends the one wake-up of each long wait parked in the due-index whose send time came since the
   last run (no write per wait: a mark, one item, says how far the last run looked);
2. looks once at each instance created a grace ago, which carries no ``due_at`` (so that its create
   and its completion write no index): one still running gets a ``due_at`` at the end of its lease, so
   that a later crash is found; one whose start message was lost, or whose first invocation died, is
   kicked;
3. kicks every instance overdue by ``sweep_grace`` with no message in flight: a lost send, a crash
   between the status write and the send, or a dead invocation.

Safe to run twice at once: a duplicate wake-up is turned away by the lease and due checks.

Steps 1 and 2 go through the window since the mark in chunks of parked wake-ups, and the mark moves
after each chunk, so that a run cut short (its Lambda timeout, or the time it keeps back, ``RESERVE``)
leaves the next run only what it did not do. A mark ahead of this sweeper's clock was written by one
whose clock ran fast: this run looks back one SQS delay instead of trusting it, and sets it back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from framework.backends.environment import Environment, current
from framework.backends.queue import MAX_DELAY_SECONDS
from framework.backends.store import WATCHED, DueInstance
from framework.core.logs import logger
from framework.engine.invocation import send_wake, send_wakes
from framework.engine.schedules import fire_schedules

FIRST_LOOK = 3600.0  # with no mark yet, how far back the first run looks for new instances
# Parked wake-ups one run sends at most; past it, the next run goes on from the last one looked at (a
# cut inside a run of equal due times sends a few twice, which the lease turns away).
PARKED_LIMIT = 10_000
CHUNK = 1000  # parked wake-ups sent between two moves of the mark: 100 SendMessageBatch calls
RESERVE = 10.0  # seconds of its Lambda's time a run keeps back: it starts no chunk or kick past that
# A mark ahead of the clock: how far back the run looks instead. Every parked wait whose wake time has
# not come yet has its due time in there (park_lead + sweep_grace is under one SQS delay).
AHEAD_LOOK = float(MAX_DELAY_SECONDS)


def parked(due: DueInstance) -> bool:
    """A parked wait is due (for its wake-up to be sent) before it wakes; anything else is due when it
    should run."""
    return due.wake_at is not None and due.wake_at > due.due_at


def sweep(env: Environment | None = None, context: Any = None) -> int:
    """One run, as above. ``context``, the Lambda context, bounds the run's time. Return how many
    wake-ups it sent."""
    env = env or current()
    now = env.clock.now()
    out_of_time = _deadline(env, context)
    mark, ahead = env.store.sweep_mark(), False
    if mark is not None and mark > now:
        logger.warning("the sweep mark is ahead of this sweeper's clock", extra={"ahead_by": mark - now})
        mark, ahead = now - AHEAD_LOOK, True
    sent, swept, kicked, unsent = _sweep_window(env, now, mark, out_of_time, set_back=ahead)
    requeued, lost = _kick_overdue(env, now, swept, out_of_time)
    try:  # the workflows' schedules (framework.engine.schedules): never at the cost of the sweep above
        fire_schedules(env, now, out_of_time)
    except Exception as exc:
        logger.error("schedules failed to fire; the next sweep tries again", extra={"error": repr(exc)})
    if kicked or requeued:
        logger.warning("sweeper re-enqueued stuck instances", extra={"requeued": kicked + requeued})
    if lost or unsent:
        logger.error("sweeper sends failed; the next sweeps retry them", extra={"failed": lost + unsent})
    return sent + kicked + requeued


def _deadline(env: Environment, context: Any) -> Callable[[], bool]:
    """A check of whether the run is past its time (less ``RESERVE``); never, with no context."""
    if context is None:
        return lambda: False
    stop_at = env.clock.now() + context.get_remaining_time_in_millis() / 1000 - RESERVE
    return lambda: env.clock.now() >= stop_at


def _sweep_window(
    env: Environment, now: float, mark: float | None, out_of_time: Callable[[], bool], *, set_back: bool
) -> tuple[int, set[str], int, int]:
    """Steps 1 and 2 over the window from ``mark`` to ``now``, a chunk of parked wake-ups at a time,
    the mark moved after each. Return (wake-ups sent, the ids of the parked waits sent, instances
    kicked, kicks that failed to send)."""
    recent = env.store.due_instances(now, PARKED_LIMIT, after=mark)
    # How far the window goes: to now, or short of it when PARKED_LIMIT cut the Query.
    end = recent[-1].due_at - 1e-6 if len(recent) >= PARKED_LIMIT else now
    position = now - FIRST_LOOK if mark is None else mark  # how far new instances were looked at
    sent, swept, kicked, unsent = 0, set[str](), 0, 0
    for first in range(0, max(len(recent), 1), CHUNK):
        if first and out_of_time():
            break  # the mark says how far this run got: the next one goes on from there
        chunk, rest = recent[first : first + CHUNK], recent[first + CHUNK : first + CHUNK + 1]
        # The chunk's end: its last due time, or just short of it when the next chunk holds that time too.
        to = end if not rest else chunk[-1].due_at - (1e-6 if rest[0].due_at == chunk[-1].due_at else 0)
        to = min(max(to, position), now)
        done, ids = _send_parked(env, now, chunk)
        new, k, u = _watch_new(env, now, position, to)
        sent, kicked, unsent = sent + done, kicked + k, unsent + u
        swept |= ids
        if ids or new or to < now or set_back:  # nothing came due and nothing new: save the write
            env.store.set_sweep_mark(to, now=now if set_back else None)
            set_back = False
        position = to
    return sent, swept, kicked, unsent


def _send_parked(env: Environment, now: float, due: list[DueInstance]) -> tuple[int, set[str]]:
    """The wake-ups of the parked waits among ``due``, in batches. A failed one is postponed one grace,
    so that it is found again. Return (wake-ups sent, the ids of the parked waits sent)."""
    fresh = [d for d in due if parked(d)]
    failed = set(send_wakes(env, [(d.id, d.wake_at or now) for d in fresh]))
    for d in fresh:
        if d.id in failed:
            env.store.postpone(d.id, d.due_at, now + env.settings.sweep_grace, now=now)
    return len(fresh) - len(failed), {d.id for d in fresh}


def _watch_new(env: Environment, now: float, mark: float, looked_to: float) -> tuple[int, int, int]:
    """Each instance created between ``mark`` and ``looked_to`` (the new mark), less a grace, looked at
    once. Return (how many were created, how many were kicked, how many kicks failed to send)."""
    if looked_to <= mark:
        return 0, 0, 0
    grace = env.settings.sweep_grace
    created = env.store.created_between(mark - grace, looked_to - grace)
    kicked = lost = 0
    for record in created:
        if record.due_at is not None or record.status not in WATCHED:
            continue  # finished, waiting, paused, or watched already
        if record.lease_until is not None and record.lease_until >= now:
            env.store.watch(record.id, record.lease_until)  # running: due if the lease runs out
        elif env.store.watch(record.id, now + grace):  # overdue one grace from now if this send fails
            try:
                send_wake(env, record.id, now)
                kicked += 1
            except Exception as exc:
                lost += 1
                logger.warning("sweeper could not kick", extra={"instance_id": record.id, "error": repr(exc)})
    return len(created), kicked, lost


def _kick_overdue(
    env: Environment, now: float, skip: set[str], out_of_time: Callable[[], bool]
) -> tuple[int, int]:
    """Kick the instances overdue by a grace (but those in ``skip``), until the run's time is up; those
    left are overdue still for the next run. Return (kicked, sends failed)."""
    grace = env.settings.sweep_grace
    requeued = lost = 0
    for due in env.store.due_instances(now - grace, env.settings.sweep_limit):
        if out_of_time():
            break
        if due.id in skip or (parked(due) and now < (due.wake_at or now) + grace):
            continue  # its wake-up is on its way
        wake_at = due.wake_at if due.wake_at is not None and due.wake_at > now else now
        # Postpone first, so that the next sweep leaves it alone while this wake-up is in flight: until
        # the grace after the time it should land. A live lease (a long invocation) fails it: skip.
        if not env.store.postpone(due.id, due.due_at, wake_at + grace, now=now):
            continue
        try:
            send_wake(env, due.id, wake_at)
        except Exception as exc:  # SQS is failing: due again one grace from now, for the next sweeps
            env.store.postpone(due.id, wake_at + grace, now + grace, now=now)
            lost += 1
            logger.warning("sweeper could not re-enqueue", extra={"instance_id": due.id, "error": repr(exc)})
            continue
        requeued += 1
    return requeued, lost
