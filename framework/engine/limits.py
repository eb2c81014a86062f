"""Concurrency and rate limits (``@workflow(concurrency=20, rate="10/second", key=...)``): slots,
tickets and waiters, on the store's limiter items (framework.backends.limiter; docs/concurrency-limits.md).

- An invocation takes a **slot** after its lease and before any workflow code: its lease owner goes
  into the limiter's ``holders`` until the lease's end, so a dead invocation holds it no longer than
  its lease. It gives it back after its release, whatever the run did (``leave``).
- The **rate** counts start times: no window of one period holds more than ``rate_count`` of them.
  An invocation over the rate reserves the earliest time that keeps this (a ticket), gives its slot
  back, and is released with a wake-up at the ticket's time.
- An instance that finds no slot is released (``queued``, or ``waiting`` if it ran before) and
  registers as a **waiter**; the invocation that frees a slot wakes the oldest waiter with one
  message. Right after registering, the waiter looks at the slots once more (a slot freed while it
  registered), and its ``due_at`` lets the sweeper wake it if a releaser died before it sent.

Each limiter write is one conditional PutItem on the version it read; a conflict returns the stored
state, and the decision is made again on it. A workflow without limits costs nothing here.
"""

from __future__ import annotations

import bisect
import hashlib
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from framework.api.limits import Limits, limit_key
from framework.backends.environment import Environment
from framework.backends.limiter import LimiterConflict, LimiterState, Waiter
from framework.backends.store import Release
from framework.core.faults import point
from framework.core.logs import logger
from framework.core.progress import WaitInfo, WaitKind
from framework.core.records import FINISHED, InstanceRecord, Lease, Status
from framework.engine.ending import Outcome
from framework.engine.wakes import send_wake
from framework.errors import InstanceBusyError

if TYPE_CHECKING:
    from framework.api.registry import Workflow

TRIES = 10  # limiter writes that lost to another writer before the invocation hands over
SPARE_WAITERS = 3  # waiters read beyond those to wake: another releaser may take some first
MAX_TICKETS = 2000  # future start times the limiter item keeps (about 20 KB): later ones get none
SAFETY_CAP = 3600.0  # the longest the sweeper leaves a slot waiter alone (see safety_delay)
KEY_CHARS = 200  # longer keys are hashed into the limiter's pk
LIMITER_DAYS = 30  # a limiter item unused this long expires (TTL); waiter items likewise


@dataclass(frozen=True, slots=True)
class Slot:
    """What an invocation that may run holds: the limiter, its lease owner, the state it wrote (a
    guess for the next write), and whether a slot was taken (a rate alone takes none)."""

    key: str
    owner: str
    state: LimiterState
    holds: bool


class Verdict(Enum):
    RUN = "run"
    NO_SLOT = "no slot"
    TICKET = "ticket"


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    state: LimiterState | None  # what to write; None: nothing changed
    freed: int = 0  # slots of dead invocations this write drops, beyond one it takes itself
    ticket: float | None = None


def limiter_key(workflow: str, key: str | None) -> str:
    """The limiter's pk: ``limit#<workflow>``, or ``limit#<workflow>#k:<key>`` per key, the key hashed
    (``#h:<sha256>``) when long. Workflow names hold no ``#`` and instance ids none at all, so no
    two limiters, and no limiter and instance, share a partition."""
    if key is None:
        return f"limit#{workflow}"
    if len(key) <= KEY_CHARS:
        return f"limit#{workflow}#k:{key}"
    return f"limit#{workflow}#h:{hashlib.sha256(key.encode()).hexdigest()}"


def fits(starts: list[float], count: int, period: float) -> bool:
    """No half-open window of ``period`` seconds holds more than ``count`` of the sorted ``starts``."""
    return all(starts[i + count] - starts[i] >= period for i in range(len(starts) - count))


def earliest(starts: list[float], now: float, count: int, period: float) -> float:
    """The earliest time at or after ``now`` that ``starts`` (sorted, fitting) can take one more start
    at. Only ``now`` and the ends of the windows that begin at a start can be it: a start that does not
    fit lies in a window whose ``count`` starts end it within ``period``."""
    for at in [now, *(t + period for t in starts if t + period > now)]:
        trial = list(starts)
        bisect.insort(trial, at)
        if fits(trial, count, period):
            return at
    return starts[-1] + period  # (not reached: after the last start's window any time fits)


def decide(
    state: LimiterState, limits: Limits, owner: str, until: float, now: float, ticket: float | None
) -> Decision:
    """What an invocation leased until ``until`` does: run (its slot and start written), wait for a
    slot, or take a ticket. Slots of expired leases are dropped on the way; a ``ticket`` it holds is
    its own reserved start, given up for the start it makes now."""
    holders = {o: u for o, u in state.holders.items() if u >= now}
    dropped = len(state.holders) - len(holders)
    concurrency, count, period = limits.concurrency, limits.rate_count, limits.rate_period
    if concurrency is not None and len(holders) >= concurrency:
        starts_left = list(state.starts)
        if ticket is not None and ticket in starts_left:
            starts_left.remove(ticket)  # its reserved start, unused: it takes a new one with a slot
        if dropped or len(starts_left) != len(state.starts):
            return Decision(Verdict.NO_SLOT, LimiterState(holders, tuple(starts_left), state.version))
        return Decision(Verdict.NO_SLOT, None)
    starts = list(state.starts)
    if count is not None and period is not None:
        starts = [t for t in starts if t > now - period]  # older ones are in no window that matters
        if ticket is not None and ticket in starts:
            starts.remove(ticket)
        trial = list(starts)
        bisect.insort(trial, now)
        if not fits(trial, count, period):
            at = earliest(starts, now, count, period)
            if sum(t > now for t in starts) < MAX_TICKETS:
                bisect.insort(starts, at)
            new = LimiterState(holders, tuple(starts), state.version)
            return Decision(Verdict.TICKET, new, freed=dropped, ticket=at)
        starts = trial
    if concurrency is not None:
        holders[owner] = until
    freed = max(dropped - (1 if concurrency is not None else 0), 0)
    return Decision(Verdict.RUN, LimiterState(holders, tuple(starts), state.version), freed=freed)


def safety_delay(env: Environment, attempt: int) -> float:
    """How long the sweeper leaves a slot waiter alone before it wakes it: a lease's length (every
    dead holder's slot has expired by then), doubled on each wait in a row, up to SAFETY_CAP. A lost
    wake-up (a releaser that died between freeing and sending) is so bounded, and a long wait costs
    a few such wake-ups, not one per lease."""
    lease = env.settings.default_invocation_seconds + env.settings.lease_margin
    return float(min(lease * 2**attempt, max(SAFETY_CAP, lease)))


def _limits(env: Environment, inst: InstanceRecord) -> tuple[Workflow, Limits] | None:
    try:
        wf = env.registry.get(inst.workflow, inst.code_version)
    except Exception:
        return None  # the invocation ends it errored, as without limits
    return None if wf.limits is None else (wf, wf.limits)


def _key(wf: Workflow, limits: Limits, inst: InstanceRecord) -> str:
    value = inst.limit_key
    if value is None and limits.key is not None:
        # Created before the workflow had a key (a deploy added it): computed now, the same each time.
        try:
            value = limit_key(wf.name, limits, lambda: wf.decode_params(inst.params))
        except Exception:
            value = None  # the workflow's own limiter
    return limiter_key(inst.workflow, value)


def _expiry(env: Environment) -> int:
    return int(env.clock.now() + LIMITER_DAYS * 86400)


def enter(env: Environment, lease: Lease) -> Slot | Outcome | None:
    """Right after the lease: None (no limits: run), a Slot (run, then ``leave``), or the Outcome of an
    invocation that waits (the instance released). An AWS call that fails hands the instance over to
    a wake-up after a backoff, as the invocation does (``Outcome.RETRYING``)."""
    found = _limits(env, lease.previous)
    if found is None:
        return None
    if lease.previous.rollback_requested or lease.previous.status is Status.ROLLING_BACK:
        # A rollback takes no slot: a waiter's release would drop its request (and a rollingBack
        # status), and the undos are what must run, limit or not.
        return None
    wf, limits = found
    try:
        return _enter(env, lease, wf, limits)
    except Exception as exc:
        return _hand_over(env, lease, exc)


def _enter(env: Environment, lease: Lease, wf: Workflow, limits: Limits) -> Slot | Outcome:
    inst, now = lease.previous, env.clock.now()
    key = _key(wf, limits, inst)
    ticket = next((w.until for w in inst.waits if w.kind is WaitKind.RATE), None)
    state = env.store.get_limiter(key)
    for _ in range(TRIES):
        decision = decide(state, limits, lease.owner, lease.until, now, ticket)
        if decision.state is None:
            break
        try:
            version = env.store.put_limiter(key, decision.state, _expiry(env))
            state = LimiterState(decision.state.holders, decision.state.starts, version)
            break
        except LimiterConflict as changed:
            state = changed.current
    else:
        raise InstanceBusyError(f"the limiter of workflow {inst.workflow!r} kept changing")
    # From here on the limiter may hold this invocation's slot: a failure of what follows must not
    # hand the instance over with the slot still written, so these calls are best-effort (a waiter
    # left unwoken has its safety net; a waiter item left behind is a wake-up the lease turns away).
    me = Waiter(inst.created_at, inst.id)
    slot_wait = next((w for w in inst.waits if w.kind is WaitKind.SLOT), None)
    try:
        if decision.freed:
            wake_waiters(env, key, decision.freed)
        if decision.verdict is Verdict.RUN and slot_wait is not None:
            env.store.take_waiter(key, me)  # its own waiter item, if no releaser took it (a sweeper's wake)
    except Exception as exc:
        logger.warning("waiters not woken; their safety net will", extra={"error": type(exc).__name__})
    if decision.verdict is Verdict.RUN:
        return Slot(key, lease.owner, state, limits.concurrency is not None)
    if decision.verdict is Verdict.TICKET:
        at = decision.ticket
        assert at is not None
        wait = WaitInfo(WaitKind.RATE, "rate", at)
        if _release(env, lease, wake_at=at, due_at=at, wait=wait) is Status.PAUSED:
            return Outcome.PAUSED  # its ticket goes unused: one start fewer in that window, never more
        send_wake(env, inst.id, at)
        logger.info("over the rate: starts later", extra={"instance_id": inst.id, "wake_at": at})
        return Outcome.QUEUED
    attempt = 0 if slot_wait is None or slot_wait.attempt is None else slot_wait.attempt + 1
    due = now + safety_delay(env, attempt)
    wait = WaitInfo(WaitKind.SLOT, "concurrency", due, attempt=attempt)
    if _release(env, lease, wake_at=None, due_at=due, wait=wait) is Status.PAUSED:
        return Outcome.PAUSED  # resume() wakes it, and it looks for a slot again
    env.store.add_waiter(key, me, _expiry(env))
    # A slot freed between the look above and the registration: its releaser may have read the
    # waiters before this one was there. Look once more, and wake itself if a slot is free.
    again = env.store.get_limiter(key)
    assert limits.concurrency is not None  # only a concurrency limit turns an invocation away
    free = sum(u >= env.clock.now() for u in again.holders.values()) < limits.concurrency
    if free and env.store.take_waiter(key, me):  # (a releaser that took it first wakes it)
        send_wake(env, inst.id, None)
    logger.info("no free slot: queued", extra={"instance_id": inst.id})
    return Outcome.QUEUED


def _release(
    env: Environment, lease: Lease, *, wake_at: float | None, due_at: float, wait: WaitInfo
) -> Status:
    """Release the instance to wait for a slot or a ticket: ``queued`` if it never ran, ``waiting`` if
    it did (its journal is read again then). Its journal tail and counts stay."""
    inst = lease.previous
    status = Status.QUEUED if inst.status is Status.QUEUED else Status.WAITING
    release = Release(status, env.clock.now(), wake_at=wake_at, due_at=due_at, tail=inst.tail, waits=(wait,))
    point("instance.before_release", instance_id=inst.id, status=status)
    stored = env.store.release(lease, release)
    point("instance.after_release", instance_id=inst.id, status=stored)
    return stored


def _hand_over(env: Environment, lease: Lease, error: Exception) -> Outcome:
    """The limiter could not be read or written: expire the lease (as a crash would) and wake the
    instance after a backoff. Raise ``error`` if that fails too: the message comes back."""
    backoff = lease.previous.backoff + 1
    wake_at = env.clock.now() + min(5.0 * 2**backoff, 900.0)
    logger.warning("limiter call failed; retrying soon", extra={"error": f"{type(error).__name__}"})
    try:
        env.store.expire_lease(lease.previous.id, lease.owner, env.clock.now(), wake_at, backoff)
        send_wake(env, lease.previous.id, wake_at)
    except BaseException:
        raise error from None
    return Outcome.RETRYING


def leave(env: Environment, slot: Slot) -> None:
    """Give the slot back and wake as many of the oldest waiters as slots came free (one, and those
    of dead invocations dropped on the way). A failure is logged: the slot ends with the lease."""
    if not slot.holds:
        return
    try:
        state, freed = slot.state, 0
        for _ in range(TRIES):
            if slot.owner not in state.holders:
                break  # dropped already by a writer that found the lease over (it woke a waiter)
            now = env.clock.now()
            holders = {o: u for o, u in state.holders.items() if u >= now and o != slot.owner}
            freed = len(state.holders) - len(holders)
            try:
                env.store.put_limiter(
                    slot.key, LimiterState(holders, state.starts, state.version), _expiry(env)
                )
                break
            except LimiterConflict as changed:
                state, freed = changed.current, 0
        point("limits.after_free", key=slot.key)
        if freed:
            wake_waiters(env, slot.key, freed)
    except Exception as exc:
        logger.warning("slot not given back; it ends with the lease", extra={"error": type(exc).__name__})


def wake_waiters(env: Environment, key: str, count: int) -> int:
    """Wake up to ``count`` of the oldest waiters, one message each. Each waiter is taken (its item
    deleted) before its message is sent, so two releasers never wake one waiter twice. Return how many
    were woken."""
    woken = 0
    for waiter in env.store.oldest_waiters(key, count + SPARE_WAITERS):
        if woken >= count:
            break
        if env.store.take_waiter(key, waiter):
            try:
                send_wake(env, waiter.instance_id, None)
            except Exception:
                env.store.add_waiter(key, waiter, _expiry(env))  # back in line for the next releaser
                raise
            woken += 1
    return woken


def pass_on(env: Environment, current: InstanceRecord | None) -> None:
    """A wake-up found its instance finished. If it was a slot waiter (terminated while queued), the
    wake-up may have been a releaser's: wake the next waiter if a slot is free, so the slot is not
    left idle until the sweeper's safety net."""
    # Finished, or paused while it waited (resume() wakes it again): it will not take the slot now.
    if current is None or (current.status not in FINISHED and current.status is not Status.PAUSED):
        return
    if not any(w.kind is WaitKind.SLOT for w in current.waits):
        return
    found = _limits(env, current)
    if found is None or found[1].concurrency is None:
        return
    wf, limits = found
    key = _key(wf, limits, current)
    try:
        env.store.take_waiter(key, Waiter(current.created_at, current.id))
        state = env.store.get_limiter(key)
        live = sum(u >= env.clock.now() for u in state.holders.values())
        assert limits.concurrency is not None
        if live < limits.concurrency:
            wake_waiters(env, key, 1)
    except Exception as exc:
        logger.warning("next waiter not woken", extra={"error": type(exc).__name__})
