"""One wake-up message in, one invocation of an instance: lease, replay, then suspend or finish."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from framework.api.registry import WorkflowEvent
from framework.backends.environment import Environment, current
from framework.backends.queue import MAX_DELAY_SECONDS
from framework.backends.store import LeaseConflict, LeaseLost, Release
from framework.core import metrics, tracing
from framework.core.durations import from_epoch
from framework.core.faults import point
from framework.core.ids import key_segment
from framework.core.logs import logger
from framework.core.records import (
    ErrorInfo,
    EventRecord,
    InstanceRecord,
    JournalEntry,
    Lease,
    RunKey,
    Status,
    tail_bytes,
)
from framework.engine import children, ending, limits, running, skip
from framework.engine.ending import Outcome
from framework.engine.step import Step
from framework.engine.wakes import BadMessageError, WakeMessage, send_wake, send_wakes
from framework.errors import (
    InstanceBusyError,
    InvocationCrashedError,
    RollbackRequested,
    Stopped,
    Suspend,
    WorkflowError,
)

if TYPE_CHECKING:
    from framework.engine.replay import Replay

# The wake-ups lived here before framework.engine.wakes: importable from here still.
__all__ = [
    "BadMessageError",
    "Invocation",
    "Outcome",
    "WakeMessage",
    "process_message",
    "send_wake",
    "send_wakes",
]
T = TypeVar("T")
# The largest step result that goes with the finishing write of the instance item instead of a journal
# item of its own: small enough that the instance item stays far below 400 KB beside params and output.
TAIL_BYTES = 4096
CARRY_BYTES = 600  # what entries kept while the run goes on may take, params included (see _suspend)


class LeaseLostError(WorkflowError):
    """Another invocation wrote where this one meant to: the message fails alone and comes back."""


class EngineFault(BaseException):
    """An AWS call of the engine failed inside a durable call. User ``except Exception`` must not see it."""


def process_message(body: str, context: Any = None, env: Environment | None = None) -> Outcome:
    """Handle one work-queue message. Raise BadMessageError for a message that must not be deleted."""
    env = env or current()
    msg = WakeMessage.parse(body)
    now = env.clock.now()
    if msg.wake_at is not None and msg.wake_at > now:
        send_wake(env, msg.id, msg.wake_at)  # an early hop: no DynamoDB call at all
        return Outcome.HOPPED
    remaining = env.settings.default_invocation_seconds
    if context is not None:
        remaining = context.get_remaining_time_in_millis() / 1000
    owner = uuid.uuid4().hex
    try:
        lease = env.store.acquire_lease(
            msg.id,
            owner,
            now,
            now + remaining + env.settings.lease_margin,
            require_due=msg.wake_at is not None,
        )
    except LeaseConflict as conflict:
        if conflict.current is None:
            raise BadMessageError(f"no instance {msg.id!r}") from None
        if children.needs_report(conflict.current):  # a child that died before it reported its end
            children.report(env, conflict.current, lambda parent: send_wake(env, parent, None))
            return Outcome.SKIPPED
        limits.pass_on(env, conflict.current)  # a slot waiter terminated while it waited
        logger.info("wake-up skipped", extra={"instance_id": msg.id, "status": conflict.current.status})
        return Outcome.SKIPPED
    if msg.wake_at is not None and lease.previous.status is not Status.QUEUED:
        # A sleep's or a backoff's wake-up (a start's due time is its creation: not a lag of a wait).
        metrics.seconds(lease.previous.workflow, "WakeUpLag", now - msg.wake_at)
    slot = limits.enter(env, lease)  # None unless the workflow has limits
    if isinstance(slot, Outcome):
        return slot  # released: it waits for a slot or its rate ticket
    try:
        outcome = Invocation(env, lease, deadline=now + remaining).run()
    except Exception:
        if slot is not None:
            limits.leave(env, slot)
        raise
    if slot is not None:  # (not on a crash, a BaseException: the slot then ends with the lease)
        limits.leave(env, slot)
    return outcome


class Invocation:
    """One leased run of an instance's workflow function."""

    def __init__(self, env: Environment, lease: Lease, *, deadline: float) -> None:
        self.env = env
        self.lease = lease
        self.instance: InstanceRecord = lease.previous
        self.deadline = deadline
        self.margin = env.settings.time_margin
        self.budget = deadline - env.clock.now()  # the invocation's time when it started
        # An engine failure raised into workflow code; raised again if the workflow swallows it.
        self.failure: BaseException | None = None
        self._checked_at = time.monotonic()
        self._pause = lease.previous.pause_requested  # asked while an earlier invocation held it
        self._events: dict[str, list[EventRecord]] = {}
        self.taken: list[str] = []  # keys of the events that waits took in this invocation
        self._released = False  # the release was written: the lease is no longer this invocation's
        # terminate(rollback=True): the first new durable call raises RollbackRequested (engine.saga)
        self.rollback_requested = lease.previous.rollback_requested
        self.rolling_back = False  # the undos run: durable calls go on
        self.replay: Replay | None = None  # this invocation's replay, once it began (engine.replay)
        self.marks: set[running.Mark] = set()  # step attempts to mark as running, if they run long

    @property
    def instance_id(self) -> str:
        return self.instance.id

    @property
    def run_number(self) -> int:
        return self.instance.run

    @property
    def run_key(self) -> RunKey:
        return self.instance.run_key

    def now(self) -> float:
        return self.env.clock.now()

    def wait_until(self, now: float, at: float) -> float:
        """The deadline of a wait that starts at ``now`` and would end at ``at``: ``at``, or sooner
        with ``WORKFLOWS_WAIT_SCALE`` under 1 (``workflows dev --fast``), which scales what is left."""
        scale = self.env.settings.wait_scale
        return at if scale == 1 or at <= now else now + (at - now) * scale

    def time_left(self) -> float:
        return self.deadline - self.now()

    def pause_requested(self) -> bool:
        """At a durable-call boundary: has pause, terminate or restart been asked meanwhile? Looks at
        the instance at most every ``control_check_seconds`` of running time. Raise Stopped when the
        instance was terminated or restarted."""
        if self._pause:
            return True
        if time.monotonic() - self._checked_at < self.env.settings.control_check_seconds:
            return False
        self._checked_at = time.monotonic()
        current = self.engine_call(self.env.store.get_instance, self.instance.id)
        if current is None or current.lease_owner != self.lease.owner or current.run_key != self.run_key:
            self.failure = Stopped(f"instance {self.instance.id!r} was terminated or restarted")
            raise self.failure
        self._pause = current.pause_requested
        return self._pause

    def events(self, event_type: str, *, fresh: bool = False) -> list[EventRecord]:
        """The run's events of one type, read once per invocation (``fresh``: read again now)."""
        if fresh or event_type not in self._events:
            self._events[event_type] = self.engine_call(
                self.env.store.load_events, self.instance.id, self.run_key, event_type
            )
        return self._events[event_type]

    def wake(self, instance_id: str, at: float | None) -> None:
        """Send another instance (a child this run started) its wake-up."""
        send_wake(self.env, instance_id, at)

    def wake_all(self, instance_ids: list[str], at: float) -> None:
        """Send children this run started their wake-ups, in batches. One not sent is started by the
        sweeper, which finds queued instances that never ran."""
        missed = send_wakes(self.env, [(i, at) for i in instance_ids])
        if missed:
            logger.warning("wake-ups not sent; the sweeper starts them", extra={"count": len(missed)})

    def write_entry(self, entry: JournalEntry) -> None:
        self.engine_call(self.env.store.write_entry, self.instance.id, self.run_key, entry)

    def mark_rolling_back(self) -> None:
        """Show the instance as rollingBack (a rollback starts): one write, conditioned on the lease."""
        self.rolling_back = True
        self.engine_call(self.env.store.mark_rolling_back, self.instance.id, self.lease.owner)

    def engine_call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run an AWS call of the engine from inside workflow code. Its failure is the engine's: it is
        carried past the user's ``except Exception`` blocks as an EngineFault."""
        try:
            return fn(*args, **kwargs)
        except InstanceBusyError as exc:  # a WorkflowError for API callers; here the engine's, like any
            self.failure = EngineFault(exc)  # failed AWS call: the workflow must not catch it
            raise self.failure from exc
        except WorkflowError:
            raise
        except LeaseLost as lost:
            self.failure = lost
            raise
        except Exception as exc:
            self.failure = EngineFault(exc)
            raise self.failure from exc

    def run(self) -> Outcome:
        """Replay the workflow to its next wait or its end, then write down where it stands."""
        logger.append_keys(instance_id=self.instance.id, workflow=self.instance.workflow)
        if self.instance.status is Status.QUEUED:
            metrics.record(self.instance.workflow, "InstancesStarted")
        with tracing.invocation(self.instance):
            try:
                outcome = self._run()
            except BaseException:
                tracing.outcome("failed")
                raise
            tracing.outcome(outcome.value)
            return outcome

    def _run(self) -> Outcome:
        try:
            return self._replay()
        except LeaseLost as lost:
            return self._lost(lost)
        except EngineFault as fault:  # raised outside the workflow: writing a pending entry failed
            return self._retry_soon(fault.args[0])
        except Exception as exc:  # an AWS call of the engine failed
            return self._retry_soon(exc)
        finally:
            running.cancel_all(self)  # (each was ended or cancelled already, but for a crash)
            logger.remove_keys(["instance_id", "workflow"])

    def _replay(self) -> Outcome:
        inst = self.instance
        try:
            workflow = self.env.registry.get(inst.workflow, inst.code_version)
            payload = workflow.decode_params(inst.params)
        except Exception as exc:
            return ending.finish(self, Status.ERRORED, error=ErrorInfo.of(exc))
        # A new instance has no journal yet: skip the read. The instance item may hold a few entries.
        journal = inst.with_tail(
            []
            if inst.status is Status.QUEUED
            else self.env.journal_cache().load(self.env.store, inst, crashed=self.lease.crashed)
        )
        try:
            # Outside the try below: a failed write of the crash count is the engine's, not the workflow's.
            charge = self._count_crash(journal)
        except InvocationCrashedError as exc:
            return ending.finish(self, Status.ERRORED, error=ErrorInfo.of(exc))
        journal = skip.apply(self, journal)  # a skip_wait() request: its waits end now
        step: Step | None = None
        try:
            step = Step(self, journal, charge, is_async=workflow.is_async)
            output = step.run(workflow, _event(payload, inst))
            step.finish()  # what the workflow swallowed, or journal entries it no longer reaches
        except Suspend as suspension:
            assert step is not None  # only a durable call suspends
            return self._suspend(suspension, step)
        except EngineFault as fault:
            raise fault.args[0] from None
        except Stopped:
            logger.info("stopped: the instance was terminated or restarted")
            return Outcome.STOPPED
        except RollbackRequested:  # terminate(rollback=True), its undos run
            if self.failure is not None:
                return self._engine_failed(self.failure)
            failed = ending.undos_failed(step, None)
            return ending.finish(self, Status.TERMINATED, error=failed, tail=self._tail(step, TAIL_BYTES))
        except Exception as exc:
            if self.failure is not None:  # the workflow turned an engine failure into an error of its own
                return self._engine_failed(self.failure)
            error = ending.undos_failed(step, ErrorInfo.of(exc))
            return ending.finish(self, Status.ERRORED, error=error, tail=self._tail(step, TAIL_BYTES))
        return ending.complete(self, output, self._tail(step, TAIL_BYTES))

    def _engine_failed(self, failure: BaseException) -> Outcome:
        """What an engine failure that reached the workflow's end ends in: a hand-over, a lost lease, or
        a stop."""
        if isinstance(failure, Stopped):
            logger.info("stopped: the instance was terminated or restarted")
            return Outcome.STOPPED
        if isinstance(failure, EngineFault):
            raise failure.args[0] from None
        raise failure

    def _tail(self, step: Step | None, room: int) -> tuple[JournalEntry, ...]:
        """What the release keeps in the instance item: the entries it holds already, and the step's
        pending one if all fit in ``room`` bytes (a pending entry that does not fit is written now)."""
        kept = self.instance.tail
        pending = () if step is None else step.take_pending(max_bytes=room - tail_bytes(kept))
        return (*kept, *pending)

    def _lost(self, lost: LeaseLost) -> Outcome:
        running.cancel_all(self)
        current = self.env.store.get_instance(self.instance.id)
        if current is None or current.status is Status.TERMINATED or current.run_key != self.run_key:
            logger.info("stopped: the instance was terminated or restarted")
            return Outcome.STOPPED
        logger.warning("lease lost; another invocation owns the instance", extra={"reason": str(lost)})
        raise LeaseLostError(str(lost)) from None  # this message alone fails, and is delivered again

    def _retry_soon(self, error: Exception) -> Outcome:
        """Hand the instance over after a failed AWS call: expire the lease (the next invocation counts
        it as a crash, so a lasting failure ends in ``errored``) and wake it after a backoff."""
        if self._released:
            # After the release, only sends are left: the message fails and SQS delivers it again, and
            # the sweeper wakes an instance whose wake-up was lost (its ``due_at`` is set).
            logger.warning(
                "engine call after the release failed", extra={"error": f"{type(error).__name__}: {error}"}
            )
            raise error
        running.cancel_all(self)  # expire_lease forgets the marks: none may be written after it
        backoff = self.lease.previous.backoff + 1
        wake_at = self.now() + min(5.0 * 2**backoff, 900.0)
        logger.warning(
            "engine call failed; retrying soon", extra={"error": f"{type(error).__name__}: {error}"}
        )
        try:
            self.env.store.expire_lease(self.instance.id, self.lease.owner, self.now(), wake_at, backoff)
            send_wake(self.env, self.instance.id, wake_at)
        except (Exception, LeaseLost):
            raise error from None  # could not hand over: the message fails and SQS delivers it again
        return Outcome.RETRYING

    def _count_crash(self, journal: list[JournalEntry]) -> int:
        """After a crash, count crashes in a row at this journal position. Return the failed attempts
        to charge to the next step: the first crash is free, each further one costs an attempt."""
        if not self.lease.crashed:
            return 0
        previous = self.lease.previous
        mark = f"{len(journal)}:{journal[-1].rev if journal else 0}"
        count = previous.crash_count + 1 if previous.crash_mark == mark else 1
        logger.warning("previous invocation crashed", extra={"crashes_in_a_row": count})
        self.env.store.record_crash(previous.id, self.lease.owner, mark, count)
        if count > self.env.settings.max_crashes:
            raise InvocationCrashedError(
                f"{count} invocations in a row died at journal position {len(journal)} without progress"
            )
        return count - 1

    def blob_key(self, kind: str, *parts: object) -> str:
        """Where this invocation puts a large value: under the instance's incarnation and run, and under
        its own lease. Two invocations that overlap (a lease that expired early) never put to one key,
        so the one whose journal write or release loses cannot overwrite what the winner recorded.
        The id is one segment, escaped (``ids.key_segment``): an id that holds ``/`` splits no key."""
        where = "/".join(str(p) for p in (*parts, self.lease.owner))
        return f"{kind}/{key_segment(self.instance.id)}/{self.instance.incarnation}/{self.run_number}/{where}"

    def _forget_taken(self) -> None:
        """Delete the events that waits took, now that their entries are written and the run goes on:
        later waits then read only events not yet taken. Best effort: one left behind is only read
        again (the journal marks it taken), and the cleanup removes it with the instance."""
        if not self.taken:
            return
        try:
            self.env.store.delete_events(self.instance.id, self.run_key, self.taken)
        except Exception as exc:
            logger.warning("taken events not deleted", extra={"error": type(exc).__name__})

    def release(self, release: Release) -> Status:
        """Write the release, once: from then on the lease is no longer this invocation's."""
        running.cancel_all(self)  # the release drops the marks: none may be written after it
        if self.replay is not None and release.counts is None:
            release = replace(release, counts=self.replay.journal.counts)
        point("instance.before_release", instance_id=self.instance.id, status=release.status)
        status = self.env.store.release(self.lease, release)
        self._released = True
        point("instance.after_release", instance_id=self.instance.id, status=status)
        return status

    def _suspend(self, suspension: Suspend, step: Step) -> Outcome:
        if self.env.replay_only and (missed := step.unreached_error()) is not None:
            # A replay check that ran out of history with recorded calls left behind: the code changed.
            return ending.finish(self, Status.ERRORED, error=ErrorInfo.of(missed))
        wake_at, now = suspension.wake_at, self.now()
        # A wait longer than one SQS delay is parked in the due-index with no message in flight: the
        # sweeper sends its one wake-up ``park_lead`` before it ends (docs/execution-model.md).
        due = None
        if wake_at is not None and wake_at - now > MAX_DELAY_SECONDS:
            due = wake_at - self.env.settings.park_lead - self.env.settings.sweep_grace
        parked = due is not None
        # A sleep's entry rides along, while the instance item stays small (about 1 KB: one write unit).
        tail = self._tail(step, CARRY_BYTES - len(self.instance.params))
        waits = self.replay.waits if self.replay is not None else ()  # what the status shows
        release = Release(Status.WAITING, now, wake_at=wake_at, due_at=due, tail=tail, waits=waits)
        status = self.release(release)
        self.env.journal_cache().keep(self.instance, step.entries(), self.lease.owner)  # all written
        self._forget_taken()
        if status is Status.PAUSED:
            logger.info("paused")  # resume() sends the next wake-up
            return Outcome.PAUSED
        # An event sent while this invocation held the lease had its wake-up turned away: look once
        # more now that the lease is released, and wake the instance if one arrived.
        if suspension.events and self._arrived(suspension.events):
            send_wake(self.env, self.instance.id, None)
        if wake_at is not None and not parked:
            send_wake(self.env, self.instance.id, wake_at)
        logger.info("suspended", extra={"reason": suspension.reason, "wake_at": wake_at, "parked": parked})
        return Outcome.SUSPENDED

    def _arrived(self, waited: dict[str, frozenset[str]]) -> bool:
        """Did an event of a waited-for type arrive that the waits had not seen?"""
        try:
            for event_type, seen in waited.items():
                fresh = self.env.store.load_events(self.instance.id, self.run_key, event_type)
                if any(e.key not in seen for e in fresh):
                    return True
        except Exception as exc:  # not knowing, wake it to look: one spare invocation at most
            logger.warning("could not look for events sent meanwhile", extra={"error": type(exc).__name__})
            return True
        return False


def _event(payload: Any, inst: InstanceRecord) -> WorkflowEvent:
    return WorkflowEvent(
        payload=payload,
        instance_id=inst.id,
        timestamp=from_epoch(inst.created_at),
        workflow_name=inst.workflow,
    )
