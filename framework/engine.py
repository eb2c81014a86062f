"""The ``step`` object a workflow receives: durable calls matched against the journal.

Each durable call takes the next journal position. A recorded call returns what was recorded (its body
never runs again); a new one runs and is written before the workflow moves on. When the instance must
wait, the call raises :class:`~framework.errors.Suspend`, which only ``framework.worker`` catches.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from framework import payloads, serde
from framework.calls import (
    DeadlineCut,
    Event,
    StepContext,
    call_with_timeout,
    check_event_type,
    check_name,
    event_of,
    timeout_message,
    wants_context,
)
from framework.config import step_config
from framework.durations import Duration, parse_duration, to_epoch
from framework.errors import (
    HistoryLimitError,
    InvalidConfigError,
    NonDeterminismError,
    NonRetryableError,
    PayloadTooLargeError,
    SerializationError,
    StepFailedError,
    StepTimeoutError,
    Suspend,
    WorkflowTimeoutError,
)
from framework.faults import point
from framework.logs import logger
from framework.records import Attempt, EntryKind, EntryStatus, ErrorInfo, JournalEntry, tail_bytes

if TYPE_CHECKING:
    from framework.config import StepConfig  # a pydantic model: not loaded for steps without a config
    from framework.worker import Invocation

T = TypeVar("T")
# Failures that no retry can mend.
NEVER_RETRY = (NonRetryableError, SerializationError, PayloadTooLargeError)
IN_PROCESS_WAIT = 1.0  # waits shorter than this are slept in-process, when time allows
ATTEMPT_BYTES = 800  # the most one attempt record takes in a journal item (its error cut to 512)
# Cuts by the invocation's deadline a step may take uncharged (counted in its journal entry). The next
# cut is charged as a failed attempt: a step that needs longer than any invocation gives must not run
# again for ever.
FREE_CUTS = 2

CRASHED = ErrorInfo(
    "InvocationCrashedError",
    "the invocation ended during this attempt (for example a Lambda timeout or out of memory)",
)


class Step:
    """The durable calls of one replay. Not thread-safe: call it from the workflow function only."""

    def __init__(self, invocation: Invocation, journal: list[JournalEntry], crash_charge: int) -> None:
        self._inv = invocation
        self._journal = {entry.seq: entry for entry in journal}
        self._pos = 0
        self._counts: Counter[str] = Counter()
        self._crash_charge = crash_charge
        self._in_step = False
        self.problem: BaseException | None = None  # a Suspend or fatal error the user may have caught
        self.steps_run = 0
        # A sleep's entry, written at the next durable call; if the sleep suspends the run, or the
        # workflow ends first, it goes with the release instead (``take_pending``): one write less.
        # Only a sleep waits so: running it again has no effect but on its wake time.
        self._pending: JournalEntry | None = None

    # -- step.do -------------------------------------------------------------------------------
    def do(
        self,
        name: str,
        fn: Callable[..., T] | None = None,
        *,
        config: StepConfig | dict[str, Any] | None = None,
    ) -> Any:
        """Run ``fn`` as a durable step and return its result, or decorate a function: ``@step.do(name)``
        gives a callable that runs the step when called."""
        check_name(name)
        cfg = step_config(config, step=name)
        if fn is None:

            def decorate(body: Callable[..., T]) -> Callable[[], T]:
                if not callable(body):
                    raise InvalidConfigError(f"step {name!r} must decorate a callable")

                @functools.wraps(body)
                def run_step() -> T:
                    return self._run(name, body, cfg)  # type: ignore[no-any-return]

                return run_step

            return decorate
        if not callable(fn):
            raise InvalidConfigError(f"step {name!r} needs a callable, got {type(fn).__name__}")
        return self._run(name, fn, cfg)

    # -- sleeps ----------------------------------------------------------------------------------
    def sleep(self, name: str, duration: Duration) -> None:
        """Wait ``duration`` (a timedelta, seconds, or a string such as "2 hours") at no compute cost."""
        check_name(name, what="sleep")
        seconds = parse_duration(duration, what=f"duration of sleep {name!r}")
        self._sleep(name, lambda now: now + seconds)

    def sleep_until(self, name: str, when: datetime | int | float) -> None:
        """Wait until ``when``: an aware datetime or epoch seconds. A naive datetime is an error."""
        check_name(name, what="sleep")
        at = to_epoch(when, what=f"time of sleep {name!r}")
        self._sleep(name, lambda now: at)

    # -- events ----------------------------------------------------------------------------------
    def wait_for_event(self, name: str, event_type: str, timeout: Duration = "24 hours") -> Event:
        """Wait for the next event of ``event_type`` sent to this instance (first in, first out).
        Raise WorkflowTimeoutError once ``timeout`` passes first."""
        check_name(name, what="wait")
        check_event_type(event_type)
        seconds = parse_duration(timeout, what=f"timeout of wait {name!r}")
        seq, entry = self._next(EntryKind.WAIT, name)
        if entry is not None and entry.extra.get("event_type") != event_type:
            self.problem = NonDeterminismError(
                f"wait {name!r} (durable call #{seq + 1}) is for {event_type!r}, but the journal recorded a "
                f"wait for {entry.extra.get('event_type')!r}"
            )
            raise self.problem
        if entry is not None and entry.status is EntryStatus.COMPLETE:
            return event_of(entry)
        if entry is not None and entry.status is EntryStatus.TIMED_OUT:
            raise WorkflowTimeoutError(timeout_message(entry))
        now = self._inv.now()
        if entry is None:
            waiting = JournalEntry(
                seq,
                EntryKind.WAIT,
                name,
                EntryStatus.WAITING,
                now,
                wake_at=now + seconds,
                extra={"event_type": event_type, "timeout": seconds},
            )
            entry = self._write(None, waiting)
        taken = {
            e.extra["event_key"]
            for e in self._journal.values()
            if e.status is EntryStatus.COMPLETE and e.kind is EntryKind.WAIT
        }
        events = self._inv.events(event_type)
        event = next((e for e in events if e.key not in taken), None)
        if event is not None:
            done = replace(
                entry,
                status=EntryStatus.COMPLETE,
                ended_at=now,
                extra=entry.extra
                | {"event_key": event.key, "payload": event.payload, "sent_at": event.sent_at},
            )
            written = self._write(entry, done)
            self._inv.taken.append(event.key)
            return event_of(written)
        assert entry.wake_at is not None
        if now >= entry.wake_at:
            timed_out = self._write(
                entry, replace(entry, status=EntryStatus.TIMED_OUT, ended_at=entry.wake_at)
            )
            raise WorkflowTimeoutError(timeout_message(timed_out))
        self.problem = Suspend(
            entry.wake_at,
            f"wait {name!r} for {event_type!r}",
            event_type=event_type,
            seen=frozenset(e.key for e in events),
        )
        raise self.problem

    # -- internals -------------------------------------------------------------------------------
    def _next(self, kind: EntryKind, name: str) -> tuple[int, JournalEntry | None]:
        self._flush()
        if self._pos >= self._inv.env.settings.max_history and self.problem is None:
            self.problem = HistoryLimitError(
                f"the run made {self._pos} durable calls, the most one run may make "
                "(WORKFLOWS_MAX_HISTORY): split the work across instances"
            )
        if self._in_step:
            raise NonRetryableError(
                "durable calls (step.do, step.sleep, ...) cannot be nested in a step body"
            )
        if self.problem is not None:
            raise self.problem  # the workflow swallowed a suspension or a fatal error: stop again
        if self._inv.failure is not None:
            raise self._inv.failure  # it swallowed an engine failure (with a bare except)
        if self._inv.pause_requested():
            self.problem = Suspend(self._inv.now(), "paused")
            raise self.problem
        seq = self._pos
        self._pos += 1
        entry = self._journal.get(seq)
        if entry is not None and (entry.kind != kind or entry.name != name):
            self.problem = NonDeterminismError(
                f"durable call #{seq + 1} is {kind.value} {name!r}, but the journal recorded "
                f"{entry.kind.value} {entry.name!r} there: the workflow code changed, or depends on "
                "something other than its params and step results"
            )
            raise self.problem
        return seq, entry

    def finish(self) -> None:
        """After the workflow returned: raise what it swallowed, or a NonDeterminismError if the
        journal holds calls that this run no longer made."""
        if self._inv.failure is not None:  # first: an entry may be unwritten; hand over, don't suspend
            raise self._inv.failure
        if self.problem is not None:
            raise self.problem
        unused = sorted(seq for seq in self._journal if seq >= self._pos)
        if unused:
            entry = self._journal[unused[0]]
            self.problem = NonDeterminismError(
                f"the workflow returned after {self._pos} durable calls, but the journal recorded "
                f"{entry.kind.value} {entry.name!r} as call #{entry.seq + 1}: the workflow code changed"
            )
            raise self.problem

    def _flush(self) -> None:
        """Write the pending entry (a sleep), if any. It stays pending until the write succeeds."""
        if self._pending is not None:
            self._put(self._pending)
            self._pending = None

    def entries(self) -> list[JournalEntry]:
        """The journal as this replay left it, in order."""
        return [self._journal[seq] for seq in sorted(self._journal)]

    def take_pending(self, max_bytes: int) -> JournalEntry | None:
        """After the workflow ended or suspended: hand over the pending entry for the release to keep
        in the instance item, if it takes at most ``max_bytes`` there; write a larger one now."""
        pending = self._pending
        if pending is None or tail_bytes((pending,)) <= max_bytes:
            self._pending = None
            return pending
        self._flush()
        return None

    def _write(
        self, previous: JournalEntry | None, entry: JournalEntry, *, defer: bool = False
    ) -> JournalEntry:
        self._flush()
        entry = _revised(previous, entry)
        if defer:
            self._pending = entry
        else:
            self._put(entry)
        self._journal[entry.seq] = entry
        return entry

    def _put(self, entry: JournalEntry) -> None:
        where = {"instance_id": self._inv.instance_id, "seq": entry.seq, "name": entry.name}
        point("journal.before_write", **where, status=entry.status)
        self._inv.write_entry(entry)
        point("journal.after_write", **where, status=entry.status)

    def _wait(self, wake_at: float, reason: str) -> None:
        now = self._inv.now()
        if wake_at <= now:
            return
        if wake_at - now < IN_PROCESS_WAIT and self._inv.time_left() - (wake_at - now) > self._inv.margin:
            self._inv.env.clock.sleep(wake_at - now)
            return
        self.problem = Suspend(wake_at, reason)
        raise self.problem

    def _sleep(self, name: str, wake_of: Callable[[float], float]) -> None:
        seq, entry = self._next(EntryKind.SLEEP, name)
        if entry is None:
            now = self._inv.now()
            new = JournalEntry(seq, EntryKind.SLEEP, name, EntryStatus.SLEEPING, now, wake_at=wake_of(now))
            # Written at the next durable call, or kept in the instance item by the release if the
            # sleep suspends the run: a sleep is never written again, so it can ride along.
            entry = self._write(None, new, defer=True)
            logger.info("sleep started", extra={"step": name, "wake_at": entry.wake_at})
        assert entry.wake_at is not None
        self._wait(entry.wake_at, f"sleep {name!r}")

    def _run(self, name: str, fn: Callable[..., Any], cfg: StepConfig) -> Any:
        seq, entry = self._next(EntryKind.STEP, name)
        self._counts[name] += 1
        if entry is not None and entry.status is EntryStatus.COMPLETE:
            return self._inv.engine_call(payloads.load, self._inv.env, entry.result, entry.result_ref)
        if entry is not None and entry.status is EntryStatus.FAILED:
            raise self._failed(entry)
        attempts = self._attempts_so_far(entry)
        cuts: int = entry.extra.get("cuts", 0) if entry is not None else 0
        if entry is not None and entry.status is EntryStatus.RETRYING and entry.wake_at is not None:
            self._wait(entry.wake_at, f"retry of step {name!r}")
        context_wanted = wants_context(fn)
        policy = cfg.retries
        while True:
            if len(attempts) > policy.limit:
                entry = self._record_failure(seq, name, entry, attempts)
                raise self._failed(entry)
            if self._inv.time_left() < self._inv.margin:  # too little time to start: re-enqueue now
                self.problem = Suspend(self._inv.now(), f"too little invocation time left for step {name!r}")
                raise self.problem
            started = self._inv.now()
            attempt_no = len(attempts) + 1
            if cfg.at_most_once:
                marker = JournalEntry(
                    seq,
                    EntryKind.STEP,
                    name,
                    EntryStatus.STARTED,
                    started,
                    attempts=(*attempts, Attempt(started)),
                    extra=_cuts(cuts),
                )
                entry = self._write(entry, marker)
            logger.append_keys(step=name, attempt=attempt_no)
            try:
                # The entry also holds one record per attempt: leave room for them under 400 KB.
                room = self._inv.env.settings.inline_result_bytes - ATTEMPT_BYTES * attempt_no
                value, text = self._attempt(seq, name, fn, cfg, attempt_no, context_wanted, room)
            except Exception as exc:
                if isinstance(exc, DeadlineCut):
                    cuts, exc = self._cut(seq, name, entry, attempts, started, cuts + 1, cfg)
                now = self._inv.now()
                error = ErrorInfo.of(exc, limit=512)  # as stored: UTF-8, no pydantic input values
                attempts.append(Attempt(started, now, error))
                logger.warning("step attempt failed", extra={"error": f"{error.name}: {error.message}"})
                retryable = not isinstance(exc, (*NEVER_RETRY, *policy.non_retryable))
                if not retryable or len(attempts) > policy.limit:
                    entry = self._record_failure(seq, name, entry, attempts)
                    raise self._failed(entry) from None
                wake_at = now + policy.delay_before_retry(len(attempts))
                entry = self._write(
                    entry,
                    JournalEntry(
                        seq,
                        EntryKind.STEP,
                        name,
                        EntryStatus.RETRYING,
                        attempts[0].started_at,
                        attempts=tuple(attempts),
                        wake_at=wake_at,
                        extra=_cuts(cuts),
                    ),
                )
                self._wait(wake_at, f"retry of step {name!r}")
                continue
            finally:
                logger.remove_keys(["step", "attempt"])
            # A large result goes to the blob store under a key of its own per attempt; a failure there
            # is the engine's, not the step's.
            key = self._inv.blob_key("results", seq, attempt_no)
            stored = self._inv.engine_call(
                payloads.store, self._inv.env, text, key, what=f"result of step {name!r}", inline_room=room
            )
            return self._record_success(seq, name, entry, attempts, started, stored, value, cfg)

    def _attempts_so_far(self, entry: JournalEntry | None) -> list[Attempt]:
        """The step's attempts as recorded, an at-most-once attempt that began counted as crashed, and
        the attempts charged for crashes in a row at this position."""
        attempts = list(entry.attempts) if entry is not None else []
        if entry is not None and entry.status is EntryStatus.STARTED:
            attempts[-1] = Attempt(attempts[-1].started_at, self._inv.now(), CRASHED)
        attempts += [Attempt(self._inv.now(), self._inv.now(), CRASHED)] * self._crash_charge
        self._crash_charge = 0
        return attempts

    def _attempt(
        self,
        seq: int,
        name: str,
        fn: Callable[..., Any],
        cfg: StepConfig,
        attempt: int,
        context_wanted: bool,
        room: int,
    ) -> tuple[Any, str]:
        inv = self._inv
        context = StepContext(
            attempt=attempt,
            name=name,
            count=self._counts[name],
            instance_id=inv.instance_id,
            idempotency_key=f"{inv.instance_id}:{inv.run_key}:{seq}",
        )
        body = functools.partial(fn, context) if context_wanted else fn
        budget = max(inv.time_left() - inv.margin / 2, 0.001)
        self._in_step = True
        try:
            result = call_with_timeout(body, min(cfg.timeout, budget))
        except StepTimeoutError as exc:
            if budget < cfg.timeout and budget < 0.9 * inv.budget:
                raise DeadlineCut(str(exc)) from None  # the invocation's time ran out, not the step's
            raise
        finally:
            self._in_step = False
        self.steps_run += 1
        point("step.after_body", instance_id=inv.instance_id, seq=seq, name=name, attempt=attempt)
        what = f"result of step {name!r}"
        text, value = serde.roundtrip(result, what=what)
        # Too large: the step fails, as for any bad result, before anything is stored.
        payloads.check(inv.env, text, what=what, inline_room=room)
        return value, text

    def _cut(
        self,
        seq: int,
        name: str,
        entry: JournalEntry | None,
        attempts: list[Attempt],
        started: float,
        cuts: int,
        cfg: StepConfig,
    ) -> tuple[int, StepTimeoutError]:
        """The invocation's deadline cut an attempt short, the step's ``cuts``-th cut. Within FREE_CUTS,
        start the attempt over in a fresh invocation, uncharged, once the cut is counted in the step's
        entry. An ``at_most_once`` step is charged for every cut, by its started marker on replay.
        Return (cuts, the error to charge) past FREE_CUTS."""
        if cuts > FREE_CUTS and not cfg.at_most_once:
            return cuts, StepTimeoutError(
                f"step {name!r} needs longer than the worker's timeout: the invocation's deadline cut it "
                f"short {cuts} times"
            )
        now = self._inv.now()
        if not cfg.at_most_once:
            self._write(
                entry,
                JournalEntry(
                    seq,
                    EntryKind.STEP,
                    name,
                    EntryStatus.RETRYING,
                    entry.started_at if entry is not None else started,
                    attempts=tuple(attempts),
                    wake_at=now,
                    extra=_cuts(cuts),
                ),
            )
        self.problem = Suspend(now, f"invocation time ran out during step {name!r}")
        raise self.problem

    def _record_success(
        self,
        seq: int,
        name: str,
        entry: JournalEntry | None,
        attempts: list[Attempt],
        started: float,
        stored: tuple[str | None, str | None],
        value: Any,
        cfg: StepConfig,
    ) -> Any:
        now = self._inv.now()
        inline, ref = stored
        done = JournalEntry(
            seq,
            EntryKind.STEP,
            name,
            EntryStatus.COMPLETE,
            attempts[0].started_at if attempts else started,
            ended_at=now,
            result=inline,
            result_ref=ref,
            attempts=(*attempts, Attempt(started, now)),
        )
        # Written before the workflow goes on: a crash, or a failed AWS call, in the code that follows
        # must not run this body again. (Deferring it to the next durable call would save the run's
        # last write, but a crash in between would then re-run the step: measured, and not done.)
        self._write(entry, done)
        logger.info("step completed", extra={"step": name, "attempts": len(done.attempts)})
        return value

    def _record_failure(
        self, seq: int, name: str, entry: JournalEntry | None, attempts: list[Attempt]
    ) -> JournalEntry:
        last = attempts[-1]
        failed = JournalEntry(
            seq,
            EntryKind.STEP,
            name,
            EntryStatus.FAILED,
            attempts[0].started_at,
            ended_at=last.ended_at,
            attempts=tuple(attempts),
            error=last.error,
        )
        logger.warning("step failed", extra={"step": name, "attempts": len(attempts)})
        return self._write(entry, failed)

    @staticmethod
    def _failed(entry: JournalEntry) -> StepFailedError:
        error = entry.error or ErrorInfo("WorkflowError", "unknown")
        return StepFailedError(entry.name, len(entry.attempts), error.name, error.message)


def _cuts(cuts: int) -> dict[str, Any]:
    """A step entry's ``extra``: the deadline cuts it took, if any."""
    return {"cuts": cuts} if cuts else {}


def _revised(previous: JournalEntry | None, entry: JournalEntry) -> JournalEntry:
    """``entry`` as the next revision of ``previous`` (rev 1 when there is none)."""
    if previous is None:
        return entry
    return previous.next_rev(**{f: getattr(entry, f) for f in entry.__dataclass_fields__ if f != "rev"})
