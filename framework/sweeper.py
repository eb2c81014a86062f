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
"""

from __future__ import annotations

from framework.environment import Environment, current
from framework.logs import logger
from framework.store import WATCHED, DueInstance
from framework.worker import send_wake, send_wakes

FIRST_LOOK = 3600.0  # with no mark yet, how far back the first run looks for new instances
# Parked wake-ups one run sends at most; past it, the next run goes on from the last one looked at (a
# cut inside a run of equal due times sends a few twice, which the lease turns away).
PARKED_LIMIT = 10_000


def parked(due: DueInstance) -> bool:
    """A parked wait is due (for its wake-up to be sent) before it wakes; anything else is due when it
    should run."""
    return due.wake_at is not None and due.wake_at > due.due_at


def sweep(env: Environment | None = None) -> int:
    """One run, as above. Return how many wake-ups it sent."""
    env = env or current()
    now = env.clock.now()
    mark = env.store.sweep_mark()
    looked_to, sent, swept = _send_parked(env, now, mark)
    new, kicked, unsent = _watch_new(env, now, now - FIRST_LOOK if mark is None else mark, looked_to)
    if swept or new or looked_to < now:  # nothing came due and nothing new since the mark: save the write
        env.store.set_sweep_mark(looked_to)
    requeued, lost = _kick_overdue(env, now, swept)
    if kicked or requeued:
        logger.warning("sweeper re-enqueued stuck instances", extra={"requeued": kicked + requeued})
    if lost or unsent:
        logger.error("sweeper sends failed; the next sweeps retry them", extra={"failed": lost + unsent})
    return sent + kicked + requeued


def _send_parked(env: Environment, now: float, mark: float | None) -> tuple[float, int, set[str]]:
    """Wake-ups of the parked waits come due after ``mark``, in batches. A failed one is postponed
    one grace, so that it is found again. Return (how far it looked: ``now``, or short of it when
    ``sweep_limit`` cut the Query, wake-ups sent, the ids of the parked waits it sent)."""
    # Every one: each is found by one run only.
    recent = env.store.due_instances(now, PARKED_LIMIT, after=mark)
    looked_to = recent[-1].due_at - 1e-6 if len(recent) >= PARKED_LIMIT else now
    fresh = [d for d in recent if parked(d)]
    failed = set(send_wakes(env, [(d.id, d.wake_at or now) for d in fresh]))
    for due in fresh:
        if due.id in failed:
            env.store.postpone(due.id, due.due_at, now + env.settings.sweep_grace, now=now)
    return looked_to, len(fresh) - len(failed), {d.id for d in fresh}


def _watch_new(env: Environment, now: float, mark: float, looked_to: float) -> tuple[int, int, int]:
    """Each instance created between ``mark`` and ``looked_to`` (the new mark), less a grace, looked at
    once. Return (how many were created, how many were kicked, how many kicks failed to send)."""
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


def _kick_overdue(env: Environment, now: float, skip: set[str]) -> tuple[int, int]:
    """Kick the instances overdue by a grace (but those in ``skip``). Return (kicked, sends failed)."""
    grace = env.settings.sweep_grace
    requeued = lost = 0
    for due in env.store.due_instances(now - grace, env.settings.sweep_limit):
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
