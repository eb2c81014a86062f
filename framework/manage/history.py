"""An instance's history: its journal, in order, with the events it was sent, as users read it."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from framework.backends.environment import Environment
from framework.core.durations import from_epoch
from framework.core.records import EntryKind, EntryStatus, EventRecord, JournalEntry
from framework.engine import payloads
from framework.engine.ops import fanout

RESULT_KINDS = frozenset({EntryKind.STEP, EntryKind.CHILD, EntryKind.CONDITION, EntryKind.INVOKE})


@dataclass(frozen=True, slots=True)
class HistoryAttempt:
    started_at: datetime
    ended_at: datetime | None
    error: dict[str, str] | None


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One entry. ``kind`` is "step", "sleep", "wait", "event", "callback", "child", "map", "parallel"
    or "condition". Steps have ``attempts``, ``result`` and ``error``; children, batches and conditions
    ``result`` and ``error`` (a batch's result is its BatchResult as a dict); sleeps have ``wake_at``;
    waits and events have ``event_type`` and ``payload``; callbacks have ``result`` (what was sent),
    ``error`` (a failure sent) and ``wake_at`` (the timeout); invokes (``step.invoke``) ``child_id``,
    ``result`` (the child's output), ``error`` (how the child ended, if not complete) and ``wake_at``
    (the timeout).

    A paged history (``framework.manage.history_pages``) also gives ``result_bytes``, the stored size
    of a result that exists (UTF-8 JSON as recorded; a batch's: its BatchResult document), and
    ``result_omitted`` when the result is left out: ``"not_requested"`` (results were not asked for)
    or ``"too_large"`` (the entry alone would pass a page's byte budget). ``history()`` gives neither."""

    kind: str
    name: str
    status: str
    started_at: datetime
    ended_at: datetime | None
    attempts: tuple[HistoryAttempt, ...] = ()
    result: Any = None
    error: dict[str, str] | None = None
    wake_at: datetime | None = None
    event_type: str | None = None
    payload: Any = None
    child_id: str | None = None
    # A map over a workflow: its workflow, item count, and how many items wait, run, succeeded, failed.
    progress: dict[str, Any] | None = None
    result_bytes: int | None = None
    result_omitted: str | None = None  # "not_requested" or "too_large": then ``result`` is absent

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HistoryEntry:
        """The entry ``as_dict`` gave (an entry of ``GET /instances/{id}/history``)."""

        def when(value: Any) -> datetime | None:
            return None if value is None else datetime.fromisoformat(str(value))

        started = when(data.get("started_at"))
        if started is None:
            raise ValueError("a history entry has no started_at")
        attempts = tuple(
            HistoryAttempt(when(a["started_at"]) or started, when(a.get("ended_at")), a.get("error"))
            for a in data.get("attempts") or ()
        )
        return cls(
            kind=data["kind"],
            name=data["name"],
            status=data["status"],
            started_at=started,
            ended_at=when(data.get("ended_at")),
            attempts=attempts,
            result=data.get("result"),
            error=data.get("error"),
            wake_at=when(data.get("wake_at")),
            event_type=data.get("event_type"),
            payload=data.get("payload"),
            child_id=data.get("child_id"),
            progress=data.get("progress"),
            result_bytes=data.get("result_bytes"),
            result_omitted=data.get("result_omitted"),
        )

    def as_dict(self) -> dict[str, Any]:
        def when(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        data: dict[str, Any] = {
            "kind": self.kind,
            "name": self.name,
            "status": self.status,
            "started_at": when(self.started_at),
            "ended_at": when(self.ended_at),
        }
        if self.kind in (EntryKind.CHILD, EntryKind.MAP, EntryKind.PARALLEL, EntryKind.CONDITION):
            data["result"] = self.result
            data["error"] = self.error
        if self.kind == EntryKind.STEP:
            data["attempts"] = [
                {"started_at": when(a.started_at), "ended_at": when(a.ended_at), "error": a.error}
                for a in self.attempts
            ]
            data["result"] = self.result
            data["error"] = self.error
        if self.kind in (EntryKind.SLEEP, EntryKind.WAIT):
            data["wake_at"] = when(self.wake_at)
        if self.kind in (EntryKind.WAIT, EntryKind.EVENT):
            data["event_type"] = self.event_type
            data["payload"] = self.payload
        if self.kind in (EntryKind.CALLBACK, EntryKind.INVOKE):
            data |= {"result": self.result, "error": self.error, "wake_at": when(self.wake_at)}
        if self.kind == EntryKind.INVOKE:
            data["child_id"] = self.child_id
        if self.progress is not None:
            data["progress"] = self.progress
        if self.result_bytes is not None:
            data["result_bytes"] = self.result_bytes
        if self.result_omitted is not None:
            data.pop("result", None)
            data["result_omitted"] = self.result_omitted
        return data


def _when(epoch: float | None) -> datetime | None:
    return None if epoch is None else from_epoch(epoch)


def has_result(entry: JournalEntry) -> bool:
    """Whether the entry holds a result: a finished batch, a completed step, child, condition or
    invoke, a callback that was sent its result."""
    if entry.kind in (EntryKind.MAP, EntryKind.PARALLEL):
        return entry.status in (EntryStatus.COMPLETE, EntryStatus.FAILED)
    if entry.kind is EntryKind.CALLBACK:
        return "payload" in entry.extra
    return entry.kind in RESULT_KINDS and entry.status is EntryStatus.COMPLETE


def _result_bytes(env: Environment, entry: JournalEntry) -> int:
    if entry.kind is EntryKind.CALLBACK:
        return len(str(entry.extra["payload"]).encode())
    if entry.result_ref is not None and env.blobs is not None:
        return env.blobs.size(entry.result_ref)
    return len((entry.result or "").encode())


def from_entry(
    env: Environment, entry: JournalEntry, now: float, *, results: bool = True, sizes: bool = False
) -> HistoryEntry:
    """One journal entry as users read it. With ``sizes``, an entry that has a result gives its
    ``result_bytes``; without ``results`` the result is not read (an S3 one costs a HeadObject for its
    size) and the entry says it was left out."""
    status, ended = entry.status.value, entry.ended_at
    if entry.kind is EntryKind.SLEEP:
        done = entry.wake_at is not None and entry.wake_at <= now
        status, ended = ("complete", entry.wake_at) if done else ("waiting", None)
    elif entry.status is EntryStatus.STARTED:
        status = "running"
    payload = json.loads(entry.extra["payload"]) if "payload" in entry.extra else None
    result, size = _result(env, entry) if results else (None, None)
    if sizes and has_result(entry):
        size = _result_bytes(env, entry) if size is None else size
        omitted = None if results else "not_requested"
    else:
        size = omitted = None
    if entry.kind is EntryKind.CALLBACK:  # what the sender sent is the callback's result
        return replace(
            _from_callback(entry, payload if results else None), result_bytes=size, result_omitted=omitted
        )
    return HistoryEntry(
        kind=entry.kind.value,
        name=entry.name,
        status=status,
        started_at=from_epoch(entry.started_at),
        ended_at=_when(ended),
        attempts=tuple(
            HistoryAttempt(
                from_epoch(a.started_at), _when(a.ended_at), a.error.as_dict() if a.error else None
            )
            for a in entry.attempts
        ),
        result=result,
        error=_error(entry),
        wake_at=_when(entry.wake_at),
        event_type=entry.extra.get("event_type") if entry.kind is not EntryKind.INVOKE else None,
        payload=payload,
        child_id=entry.extra.get("child_id") if entry.kind is EntryKind.INVOKE else None,
        progress=_progress(entry),
        result_bytes=size,
        result_omitted=omitted,
    )


def _progress(entry: JournalEntry) -> dict[str, Any] | None:
    state = entry.extra.get("state")
    if entry.kind is not EntryKind.MAP or not isinstance(state, str):
        return None
    return {"workflow": entry.extra.get("workflow")} | fanout.progress(state)


def _error(entry: JournalEntry) -> dict[str, str] | None:
    if entry.kind is EntryKind.INVOKE and entry.status is EntryStatus.FAILED:  # the child's end
        name = entry.extra.get("error_type") or "ChildWorkflowError"
        message = entry.extra.get("error_message") or f"child ended {entry.extra.get('status')}"
        return {"name": name, "message": message}
    return entry.error.as_dict() if entry.error else None


def _result(env: Environment, entry: JournalEntry) -> tuple[Any, int | None]:
    """What a finished entry returned: a step's, child's or condition's value; a batch's result in
    BatchResult's shape (``all``, ``completionReason``). With it, the stored size of the result
    (a batch's: its document's), or None if it has none (a callback's result is its payload)."""
    if entry.kind in (EntryKind.MAP, EntryKind.PARALLEL) and entry.status in (
        EntryStatus.COMPLETE,
        EntryStatus.FAILED,
    ):
        text, data = payloads.load_text(env, entry.result, entry.result_ref)
        items = [
            {k: v for k, v in item.items() if k not in ("text", "ref")}
            | {"result": payloads.load(env, item.get("text"), item.get("ref"))}
            for item in data["all"]
        ]
        return {"all": items, "completionReason": data["completionReason"]}, len((text or "").encode())
    if entry.kind in RESULT_KINDS and entry.status is EntryStatus.COMPLETE:
        text, value = payloads.load_text(env, entry.result, entry.result_ref)
        return value, len((text or "").encode())
    return None, None


def _from_callback(entry: JournalEntry, result: Any) -> HistoryEntry:
    return HistoryEntry(
        kind=entry.kind.value,
        name=entry.name,
        status=entry.status.value,
        started_at=from_epoch(entry.started_at),
        ended_at=_when(entry.ended_at),
        result=result,
        error=entry.error.as_dict() if entry.error else None,
        wake_at=_when(entry.wake_at),
    )


def from_event(event: EventRecord, taken: set[str]) -> HistoryEntry:
    sent = from_epoch(event.sent_at)
    return HistoryEntry(
        kind=EntryKind.EVENT.value,
        name=event.type,
        status="consumed" if event.key in taken else "buffered",
        started_at=sent,
        ended_at=sent,
        event_type=event.type,
        payload=json.loads(event.payload),
    )


def build_history(
    env: Environment, journal: list[JournalEntry], events: list[EventRecord], now: float
) -> list[HistoryEntry]:
    """Journal entries in call order, each event placed by the time it was sent."""
    events = [e for e in events if not e.type.startswith("$")]  # a callback's outcome: in its entry
    taken = {e.extra["event_key"] for e in journal if "event_key" in e.extra}
    # A taken event is deleted once its run goes on (framework.engine.invocation): the wait's entry holds it.
    stored = {e.key for e in events}
    events = events + [
        EventRecord(e.extra["event_key"], e.extra["event_type"], e.extra["payload"], e.extra["sent_at"])
        for e in journal
        if "event_key" in e.extra and e.extra["event_key"] not in stored
    ]
    entries = [from_entry(env, e, now) for e in journal]
    for event in sorted(events, key=lambda e: (e.sent_at, e.key)):
        item = from_event(event, taken)
        index = next(
            (i for i, e in enumerate(entries) if e.kind != "event" and e.started_at > item.started_at),
            len(entries),
        )
        entries.insert(index, item)
    return entries
