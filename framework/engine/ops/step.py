"""``step.do``: run a function at most once per success, with retries, recorded in the journal."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from framework.api.calls import DeadlineCut, StepContext
from framework.core import metrics, serde, tracing
from framework.core.config import config_view
from framework.core.faults import point
from framework.core.logs import logger
from framework.core.progress import WaitInfo, WaitKind
from framework.core.records import Attempt, EntryKind, EntryStatus, ErrorInfo, JournalEntry
from framework.engine import payloads, running
from framework.engine.ops import Operation, RunBody, Wait
from framework.errors import (
    NonRetryableError,
    PayloadTooLargeError,
    SerializationError,
    StepTimeoutError,
    Suspend,
    failed_step_error,
)

if TYPE_CHECKING:
    from framework.core.config import StepConfig
    from framework.engine.replay import Claim, Replay

# Failures that no retry can mend.
NEVER_RETRY = (NonRetryableError, SerializationError, PayloadTooLargeError)
ATTEMPT_BYTES = 800  # the most one attempt record takes in a journal item (its error cut to 512)
# Cuts by the invocation's deadline a step may take uncharged (counted in its journal entry). The next
# cut is charged as a failed attempt: a step that needs longer than any invocation gives must not run
# again for ever.
FREE_CUTS = 2

CRASHED = ErrorInfo(
    "InvocationCrashedError",
    "the invocation ended during this attempt (for example a Lambda timeout or out of memory)",
)
Body = Callable[[StepContext], Any]  # calls the user's function with what it asks for


def run(
    r: Replay, claim: Claim, name: str, body: Body, cfg: StepConfig, *, is_async: bool = False
) -> Operation:
    """The step ``name``, claimed as ``claim``: its recorded outcome, or its attempts run now."""
    op, entry, count = claim.op, claim.entry, claim.count
    # -- check: a recorded outcome ends here, and the body never runs again
    if entry is not None and entry.status is EntryStatus.COMPLETE:
        return r.inv.engine_call(payloads.load, r.inv.env, entry.result, entry.result_ref)
    if entry is not None and entry.status is EntryStatus.FAILED:
        raise failed(entry)
    # -- execute
    seq = entry.seq if entry is not None else r.journal.new_seq()
    attempts = _attempts_so_far(r, entry)
    cuts: int = entry.extra.get("cuts", 0) if entry is not None else 0
    if entry is not None and entry.status is EntryStatus.RETRYING and entry.wake_at is not None:
        yield _retry(name, entry.wake_at, len(attempts) + 1)
    policy = cfg.retries
    new = functools.partial(JournalEntry, seq, EntryKind.STEP, name, op=op)
    while True:
        if len(attempts) > policy.limit:
            raise failed(_record_failure(r, new, entry, attempts))
        if r.inv.time_left() < r.inv.margin:  # too little time to start: re-enqueue now
            r.stop(Suspend(r.inv.now(), f"too little invocation time left for step {name!r}"))
        started = r.inv.now()
        attempt_no = len(attempts) + 1
        if cfg.at_most_once:
            marker = new(
                EntryStatus.STARTED, started, attempts=(*attempts, Attempt(started)), extra=_cuts(cuts)
            )
            entry = r.write(entry, marker)
        context = _context(r, name, count, op, attempt_no, cfg)
        # The entry also holds one record per attempt: leave room for them under 400 KB.
        room = r.inv.env.settings.inline_result_bytes - ATTEMPT_BYTES * attempt_no
        logger.append_keys(step=name, attempt=attempt_no)
        # Marked as running in the instance item only if it runs long (framework.engine.running).
        mark = running.start(r.inv, op, name, attempt_no, started)
        try:
            value, text = yield from _attempt(r, seq, name, body, context, cfg, room, is_async)
        except Exception as exc:
            if isinstance(exc, DeadlineCut):
                cuts += 1
                exc = _cut(r, name, new, entry, attempts, started, cuts, cfg)
            now = r.inv.now()
            error = ErrorInfo.of(exc, limit=512)  # as stored: UTF-8, no pydantic input values
            attempts.append(Attempt(started, now, error))
            _attempt_failed(r, name, attempt_no, started, now, error)
            retryable = not isinstance(exc, NEVER_RETRY) and policy.may_retry(exc)
            if not retryable or len(attempts) > policy.limit:
                raise failed(_record_failure(r, new, entry, attempts, mark)) from None
            metrics.record(r.inv.instance.workflow, "StepRetries")
            wake_at = r.inv.wait_until(now, now + policy.delay_before_retry(len(attempts)))
            retrying = new(
                EntryStatus.RETRYING, attempts[0].started_at, attempts=tuple(attempts), wake_at=wake_at
            )
            entry = r.write(entry, _with_cuts(retrying, cuts))
            running.end(mark)  # its outcome is in the journal
            yield _retry(name, wake_at, len(attempts) + 1)
            continue
        finally:
            logger.remove_keys(["step", "attempt"])
            running.cancel(mark)  # the attempt is over: no mark may be written from now on
        return _record_success(r, new, entry, attempts, (started, attempt_no), text, value, room, mark)


def _attempt_failed(r: Replay, name: str, attempt: int, started: float, now: float, error: ErrorInfo) -> None:
    """Trace and log a failed attempt (its error's type and message, which the engine wrote itself)."""
    _observe(r, name, attempt, started, now, error.name)
    # step and attempt in the line itself: in an async run, steps interleave on one logger
    where = {"step": name, "attempt": attempt}
    logger.warning("step attempt failed", extra=where | {"error": f"{error.name}: {error.message}"})


def _retry(name: str, wake_at: float, attempt: int) -> Wait:
    """The backoff before attempt ``attempt`` of step ``name``."""
    shown = WaitInfo(WaitKind.RETRY, name, wake_at, attempt=attempt)
    return Wait(wake_at, f"retry of step {name!r}", shown=shown)


def _record_success(
    r: Replay,
    new: functools.partial[JournalEntry],
    entry: JournalEntry | None,
    attempts: list[Attempt],
    attempt: tuple[float, int],
    text: str,
    value: Any,
    room: int,
    mark: running.Mark | None,
) -> Any:
    seq, _, name = new.args
    started, attempt_no = attempt
    # A large result goes to the blob store under a key of its own per attempt; a failure there
    # is the engine's, not the step's.
    key = r.inv.blob_key("results", seq, attempt_no)
    inline, ref = r.inv.engine_call(
        payloads.store, r.inv.env, text, key, what=f"result of step {name!r}", inline_room=room
    )
    now = r.inv.now()
    done = new(
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
    r.write(entry, done)
    running.end(mark)  # its outcome is in the journal
    _observe(r, name, attempt_no, started, now, None)
    metrics.record(r.inv.instance.workflow, "StepsCompleted")
    extra = {"step": name, "attempt": attempt_no, "attempts": len(done.attempts)}
    logger.info("step completed", extra=extra)
    return value


def _observe(r: Replay, name: str, attempt: int, started: float, ended: float, error: str | None) -> None:
    """One attempt that ran now (never a replayed one): its duration metric and its span."""
    metrics.seconds(r.inv.instance.workflow, "StepDuration", ended - started)
    tracing.step(name, attempt, started, ended, error)


def _context(r: Replay, name: str, count: int, op: str, attempt: int, cfg: StepConfig) -> StepContext:
    inv = r.inv
    return StepContext(
        attempt=attempt,
        name=name,
        count=count,
        instance_id=inv.instance_id,
        # By identity, not storage position: a concurrent step's seq depends on what was written first.
        idempotency_key=f"{inv.instance_id}:{inv.run_key}:{op}",
        config=config_view(cfg),
    )


def _attempt(
    r: Replay,
    seq: int,
    name: str,
    body: Body,
    context: StepContext,
    cfg: StepConfig,
    room: int,
    is_async: bool,
) -> Operation:
    """One attempt: the body's value and its JSON text. Raise what the attempt failed with."""
    inv = r.inv
    budget = max(inv.time_left() - inv.margin / 2, 0.001)
    try:
        result = yield RunBody(functools.partial(body, context), min(cfg.timeout, budget), is_async)
    except StepTimeoutError as exc:
        if budget < cfg.timeout and budget < 0.9 * inv.budget:
            raise DeadlineCut(str(exc)) from None  # the invocation's time ran out, not the step's
        raise
    r.steps_run += 1
    point("step.after_body", instance_id=inv.instance_id, seq=seq, name=name, attempt=context.attempt)
    what = f"result of step {name!r}"
    text, value = serde.roundtrip(result, what=what)
    # Too large: the step fails, as for any bad result, before anything is stored.
    payloads.check(inv.env, text, what=what, inline_room=room)
    return value, text


def _attempts_so_far(r: Replay, entry: JournalEntry | None) -> list[Attempt]:
    """The step's attempts as recorded, an at-most-once attempt that began counted as crashed, and
    the attempts charged for crashes in a row at this point of the run."""
    now = r.inv.now()
    attempts = list(entry.attempts) if entry is not None else []
    if entry is not None and entry.status is EntryStatus.STARTED:
        attempts[-1] = Attempt(attempts[-1].started_at, now, CRASHED)
    attempts += [Attempt(now, now, CRASHED)] * r.crash_charge
    r.crash_charge = 0
    return attempts


def _cut(
    r: Replay,
    name: str,
    new: Callable[..., JournalEntry],
    entry: JournalEntry | None,
    attempts: list[Attempt],
    started: float,
    cuts: int,
    cfg: StepConfig,
) -> StepTimeoutError:
    """The invocation's deadline cut an attempt short, the step's ``cuts``-th cut. Within FREE_CUTS,
    start the attempt over in a fresh invocation, uncharged, once the cut is counted in the step's
    entry. An ``at_most_once`` step is charged for every cut, by its started marker on replay.
    Return the error to charge past FREE_CUTS."""
    if cuts > FREE_CUTS and not cfg.at_most_once:
        return StepTimeoutError(
            f"step {name!r} needs longer than the worker's timeout: the invocation's deadline cut it "
            f"short {cuts} times"
        )
    now = r.inv.now()
    if not cfg.at_most_once:
        first = entry.started_at if entry is not None else started
        retrying = new(EntryStatus.RETRYING, first, attempts=tuple(attempts), wake_at=now)
        r.write(entry, _with_cuts(retrying, cuts))
    r.stop(Suspend(now, f"invocation time ran out during step {name!r}"))
    raise AssertionError("unreachable")  # stop() raises


def _record_failure(
    r: Replay,
    new: Callable[..., JournalEntry],
    entry: JournalEntry | None,
    attempts: list[Attempt],
    mark: running.Mark | None = None,
) -> JournalEntry:
    last = attempts[-1]
    failed_entry = new(
        EntryStatus.FAILED,
        attempts[0].started_at,
        ended_at=last.ended_at,
        attempts=tuple(attempts),
        error=last.error,
    )
    metrics.record(r.inv.instance.workflow, "StepsFailed")
    where = {"step": failed_entry.name, "attempt": len(attempts), "attempts": len(attempts)}
    logger.warning("step failed", extra=where)
    written = r.write(entry, failed_entry)
    running.end(mark)  # its outcome is in the journal
    return written


def failed(entry: JournalEntry) -> Exception:
    """What a step that failed for good raises, on first run and on replay alike."""
    error = entry.error or ErrorInfo("WorkflowError", "unknown")
    return failed_step_error(entry.name, len(entry.attempts), error.name, error.message)


def _cuts(cuts: int) -> dict[str, Any]:
    """A step entry's ``extra``: the deadline cuts it took, if any."""
    return {"cuts": cuts} if cuts else {}


def _with_cuts(entry: JournalEntry, cuts: int) -> JournalEntry:
    return replace(entry, extra=_cuts(cuts)) if cuts else entry
