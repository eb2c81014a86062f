"""A batch's journal entry (``step.map``, ``step.parallel``): how its BatchResult is stored and read
back, for batches in-process (``framework.engine.compose``) and over a workflow (``ops.fanout``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from framework.api.batch import BatchError, BatchItem, BatchItemStatus, BatchResult, CompletionReason
from framework.core import serde
from framework.core.logs import logger
from framework.core.records import EntryKind, EntryStatus, JournalEntry
from framework.engine import payloads
from framework.errors import BatchFailedError

if TYPE_CHECKING:
    from framework.engine.replay import Replay

ERROR_CHARS = 512  # an item's error message as a batch entry keeps it


def stored_item(item: BatchItem, text: str | None) -> dict[str, Any]:
    """An item as a batch entry stores it: ``text``, its result's JSON text as its child scope stored
    it (encoded once, not again here), when it succeeded."""
    return {
        "index": item.index,
        "status": item.status.value,
        "text": text if item.status is BatchItemStatus.SUCCEEDED else None,
        "error": item.error.to_dict() if item.error else None,
    }


def record_batch(
    r: Replay,
    previous: JournalEntry | None,
    kind: EntryKind,
    name: str,
    op: str,
    stored: list[dict[str, Any]],
    reason: CompletionReason,
    total: int,
    *,
    limit: int | None = None,
    extra: dict[str, Any] | None = None,
) -> JournalEntry:
    """Write the batch's entry (a new one, or the next revision of ``previous``) with its items as
    ``stored_item`` gives them (an item may hold a ``ref`` to a blob instead of its ``text``), at most
    ``limit`` bytes in all (by default a step result's limit)."""
    what = f"result of {kind.value} {name!r}"
    text = serde.encode({"all": stored, "completionReason": reason.value}, what=what)
    seq = previous.seq if previous is not None else r.journal.new_seq()
    inline, ref = r.inv.engine_call(
        payloads.store, r.inv.env, text, r.inv.blob_key("results", seq, 1), what=what, limit=limit
    )
    now = r.inv.now()
    failed = reason is CompletionReason.FAILURE_TOLERANCE_EXCEEDED
    entry = JournalEntry(
        seq,
        kind,
        name,
        EntryStatus.FAILED if failed else EntryStatus.COMPLETE,
        previous.started_at if previous is not None else now,
        ended_at=now,
        result=inline,
        result_ref=ref,
        extra=(extra or {}) | {"reason": reason.value, "items": total},
        op=op,
    )
    written = r.write(previous, entry)
    succeeded = sum(1 for i in stored if i["status"] == BatchItemStatus.SUCCEEDED.value)
    logger.info("batch ended", extra={"step": name, "reason": reason.value, "succeeded": succeeded})
    return written


def load_batch(r: Replay, entry: JournalEntry, name: str) -> BatchResult:
    """The BatchResult a finished batch entry recorded."""
    env = r.inv.env
    data = r.inv.engine_call(payloads.load, env, entry.result, entry.result_ref)
    items = [
        BatchItem(
            i["index"],
            BatchItemStatus(i["status"]),
            r.inv.engine_call(payloads.load, env, i.get("text"), i.get("ref")),
            BatchError.from_dict(i["error"]) if i.get("error") else None,
        )
        for i in data["all"]
    ]
    return BatchResult(items, CompletionReason(data["completionReason"]), name)


def outcome(result: BatchResult, kind: EntryKind) -> BatchResult:
    """The batch's value: its result, or BatchFailedError when it failed."""
    if result.completion_reason is not CompletionReason.FAILURE_TOLERANCE_EXCEEDED:
        return result
    first = result.failed()[0] if result.failed() else None
    detail = (
        f"; the first, item {first.index}: {first.error.type}: {first.error.message}"
        if first and first.error
        else ""
    )
    raise BatchFailedError(
        f"{kind.value} {result.name!r} failed: {result.failure_count} of {result.total_count} started "
        f"items failed, more than it tolerates{detail}",
        result,
    )
