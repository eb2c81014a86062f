"""Re-enqueue instances that are due but have no message in flight: a lost send, a crash between the
status write and the send, or a long wait parked in the due-index, whose wake-up is sent from here once
it is less than one SQS delay away. Run on a schedule; safe to run twice at once."""

from __future__ import annotations

from framework.environment import Environment, current
from framework.logs import logger
from framework.worker import send_wake


def sweep(env: Environment | None = None) -> int:
    """Kick every instance due more than ``sweep_grace`` ago. Return how many were re-enqueued."""
    env = env or current()
    now = env.clock.now()
    grace = env.settings.sweep_grace
    requeued = failed = 0
    for due in env.store.due_instances(now - grace, env.settings.sweep_limit):
        # A wait still to end (a parked one) gets its wake time; anything else is due now.
        wake_at = due.wake_at if due.wake_at is not None and due.wake_at > now else now
        # Postpone first, so that the next sweep leaves it alone while this wake-up is in flight: until
        # the grace after the time it should land. A live lease (a long invocation) fails it: skip.
        if not env.store.postpone(due.id, due.due_at, wake_at + grace, now=now):
            continue
        try:
            send_wake(env, due.id, wake_at)
        except Exception as exc:  # SQS is failing: due again one grace from now, for the next sweeps
            env.store.postpone(due.id, wake_at + grace, now + grace, now=now)
            failed += 1
            logger.warning("sweeper could not re-enqueue", extra={"instance_id": due.id, "error": repr(exc)})
            continue
        requeued += 1
    if requeued:
        logger.warning("sweeper re-enqueued stuck instances", extra={"requeued": requeued})
    if failed:
        logger.error("sweeper sends failed; the next sweep retries them", extra={"failed": failed})
    return requeued
