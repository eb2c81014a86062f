"""How an invocation ends (:class:`Outcome`), and how a run ends: its output stored, the instance
released finished, and a child's end reported to its parent."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Any

from framework.backends.store import Release, released
from framework.core import metrics, serde
from framework.core.logs import logger
from framework.core.records import ErrorInfo, InstanceRecord, JournalEntry, Status
from framework.engine import children, payloads
from framework.errors import WorkflowError

if TYPE_CHECKING:
    from framework.engine.invocation import Invocation
    from framework.engine.step import Step


class Outcome(StrEnum):
    HOPPED = "hopped"  # an early hop of a long wait, sent on with no DynamoDB call
    SKIPPED = "skipped"  # a duplicate, a stale wake-up, or a finished instance: nothing to do
    SUSPENDED = "suspended"
    PAUSED = "paused"
    STOPPED = "stopped"  # terminated or restarted while it ran
    RETRYING = "retrying"  # an AWS call failed: handed over to a wake-up after a backoff
    QUEUED = "queued"  # no free slot, or over the rate: released to wait (framework.engine.limits)
    COMPLETED = "completed"
    ERRORED = "errored"


def complete(inv: Invocation, output: Any, tail: tuple[JournalEntry, ...]) -> Outcome:
    """End the run ``complete`` with ``output`` (``errored`` if the output cannot be stored)."""
    what = f"output of workflow {inv.instance.workflow!r}"
    try:
        text = serde.encode(output, what=what)
        # The output shares the instance item with the params: it is inline only if both fit.
        room = inv.env.settings.inline_result_bytes - len(inv.instance.params.encode())
        inline, ref = payloads.store(inv.env, text, inv.blob_key("outputs"), what=what, inline_room=room)
    except WorkflowError as exc:
        return finish(inv, Status.ERRORED, error=ErrorInfo.of(exc), tail=tail)
    return finish(inv, Status.COMPLETE, output=inline, output_ref=ref, tail=tail)


def finish(
    inv: Invocation,
    status: Status,
    *,
    output: str | None = None,
    output_ref: str | None = None,
    error: ErrorInfo | None = None,
    tail: tuple[JournalEntry, ...] | None = None,
) -> Outcome:
    """Release the instance finished with ``status``; a child then reports its end to its parent."""
    now = inv.now()
    expires = int(now + inv.env.settings.retention_days * 86400)
    # A child keeps a due_at until it reported its end: if it dies first, the sweeper wakes it.
    owed = now + inv.env.settings.sweep_grace if inv.instance.parent is not None else None
    release = Release(
        status,
        now,
        due_at=owed,
        output=output,
        output_ref=output_ref,
        error=error,
        expires_at=expires,
        tail=inv.instance.tail if tail is None else tail,
    )
    inv.release(release)
    if owed is not None:
        _report(inv, released(inv.lease, release))
    workflow = inv.instance.workflow
    if error is not None and status is not Status.TERMINATED:
        metrics.record(workflow, "InstancesErrored")
        logger.warning("instance errored", extra={"error": error.as_dict()})
        return Outcome.ERRORED
    metrics.record(workflow, "InstancesTerminated" if status is Status.TERMINATED else "InstancesCompleted")
    logger.info("instance terminated" if status is Status.TERMINATED else "instance complete")
    return Outcome.COMPLETED


def undos_failed(step: Step | None, error: ErrorInfo | None) -> ErrorInfo | None:
    """``error``, with the undos that failed in the rollback before it named in its message."""
    if step is None or not step.undos_failed:
        return error
    names = ", ".join(repr(n) for n in step.undos_failed)
    if error is None:  # a terminate with rollback: the instance ends terminated, with this error
        return ErrorInfo("UndoFailedError", f"undos failed during the rollback: {names}")
    return ErrorInfo(error.name, f"{error.message} (undos failed during the rollback: {names})")


def _report(inv: Invocation, child: InstanceRecord) -> None:
    """Report a finished child's end to its parent. A failure is left to the sweeper."""
    try:
        children.report(inv.env, child, lambda parent: inv.wake(parent, None))
    except Exception as exc:
        logger.warning("child's end not reported yet", extra={"error": type(exc).__name__})
