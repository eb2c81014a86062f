"""The pre-deploy replay gate: export an instance's recorded history, and replay histories against
the workflow code loaded now.

A check runs the real worker on a throwaway in-memory stack that holds only the exported history, on
a virtual clock set to the export's time. No step body runs there: a recorded call returns what it
recorded, and a call that would run a body waits for ever, so the check ends where the history ends
(or at the recorded wait the instance is in). It fails where the replay does: at the first durable call
whose kind or name differs from the journal's (an inserted, removed or reordered step), or when the
workflow returns before reaching calls the journal holds.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from framework.api.registry import Registry
from framework.backends.blobs import MemoryBlobs
from framework.backends.dynamodb_items import (
    entry_of,
    entry_values,
    from_item,
    instance_from,
    instance_to,
    to_av,
)
from framework.backends.environment import Environment, Settings
from framework.backends.memory import MemoryStore
from framework.backends.queue import MemoryQueue
from framework.backends.store import full_journal
from framework.core.callbacks import CALLBACK_EVENT, HEARTBEAT_EVENT
from framework.core.clock import VirtualClock
from framework.core.logs import logger
from framework.core.records import FINISHED, EventRecord, InstanceRecord, JournalEntry, RunKey, Status
from framework.engine.invocation import WakeMessage, process_message
from framework.errors import InvalidConfigError

if TYPE_CHECKING:
    from framework.manage.client import WorkflowClient

FORMAT = "lambda-workflows.history"
VERSION = 1


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The check of one history: ``ok``, and what the replay found (a NonDeterminismError's message,
    or how far it replayed)."""

    instance_id: str
    workflow: str
    ok: bool
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.instance_id, "workflow": self.workflow, "ok": self.ok, "message": self.message}


def export_history(env: Environment, record: InstanceRecord) -> dict[str, Any]:
    """The current run of ``record`` as a JSON-ready document: the instance, its journal (results
    stored in the blob store put inline) and the events waiting for it."""
    run = RunKey(record.incarnation, record.run)
    journal = [_inline(env, entry) for entry in full_journal(env.store, record.id, run)]
    kept = replace(record, tail=(), output=None, output_ref=None)
    return {
        "format": FORMAT,
        "version": VERSION,
        "exported_at": env.clock.now(),
        "settings": {"max_history": env.settings.max_history},  # what bounds the replay
        "instance": from_item(instance_to(kept, shard="0", version="")),
        "journal": [entry_values(_without_token(entry)) for entry in journal],
        "events": [asdict(_event_without_token(e)) for e in env.store.load_events(record.id, run)],
    }


def check_history(document: Any, registry: Registry) -> CheckResult:
    """Replay one exported history against the workflows of ``registry``. Raise InvalidConfigError
    for a document that is not an export of this format."""
    record, journal, events, at, settings = _read(document)
    clock = VirtualClock(start=at)
    env = Environment(
        store=MemoryStore(), queue=MemoryQueue(clock), clock=clock, registry=registry,
        blobs=MemoryBlobs(), settings=settings, replay_only=True,
    )  # fmt: skip
    env.store.create_instance(_runnable(record))
    run = RunKey(record.incarnation, record.run)
    for entry in journal:
        env.store.write_entry(record.id, run, entry)
    for event in events:
        env.store.put_event(record.id, run, event)
    level = logger.log_level
    logger.setLevel("CRITICAL")  # the check's own output is its verdict: the worker's lines stay out of it
    try:
        process_message(WakeMessage(id=record.id).model_dump_json(exclude_none=True), None, env)
    finally:
        logger.setLevel(level)
    after = env.store.get_instance(record.id)
    assert after is not None
    if after.status is Status.ERRORED and after.error is not None:
        recorded = record.status is Status.ERRORED and record.error == after.error
        if after.error.name == "NonDeterminismError" or not recorded:
            return CheckResult(
                record.id, record.workflow, False, f"{after.error.name}: {after.error.message}"
            )
    if record.status is Status.COMPLETE and after.status is not Status.COMPLETE:
        message = f"the recorded run completed; the replay ended {after.status.value}"
        return CheckResult(record.id, record.workflow, False, message)
    return CheckResult(record.id, record.workflow, True, f"replayed {len(journal)} recorded calls")


def read_export(path: str) -> Any:
    """An export file, parsed. Raise InvalidConfigError if it cannot be read or is not JSON."""
    try:
        return json.loads(Path(path).read_text())
    except OSError as exc:
        raise InvalidConfigError(f"cannot read {path}: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidConfigError(f"{path} is not JSON: {type(exc).__name__}") from None


def table_exports(client: WorkflowClient, workflow: str | None, *, every: bool, limit: int) -> Iterator[Any]:
    """The exports of the table's instances (of ``workflow``), newest first, at most ``limit``: the
    unfinished ones, or ``every`` one."""
    cursor, seen = None, 0
    while seen < limit:
        page = client.list(workflow=workflow, limit=min(100, limit - seen), cursor=cursor)
        for summary in page.instances:
            if seen < limit and (every or summary.status not in FINISHED):
                seen += 1
                yield client.get(summary.id).export()
        cursor = page.cursor
        if cursor is None:
            return


def _read(document: Any) -> tuple[InstanceRecord, list[JournalEntry], list[EventRecord], float, Settings]:
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise InvalidConfigError(f"not a history export (its format is not {FORMAT!r})")
    if document.get("version") != VERSION:
        raise InvalidConfigError(f"history export version {document.get('version')!r}: this reads {VERSION}")
    try:
        record = instance_from(to_av(document["instance"]))
        journal = [entry_of(d) for d in document["journal"]]
        events = [EventRecord(**d) for d in document["events"]]
        at = float(document["exported_at"])
        bounds = document.get("settings", {})
        settings = Settings(max_history=int(bounds["max_history"])) if "max_history" in bounds else Settings()
    except (KeyError, TypeError, ValueError, AttributeError, InvalidConfigError) as exc:
        raise InvalidConfigError(f"a malformed history export: {type(exc).__name__}") from None
    return record, journal, events, at, settings


def _runnable(record: InstanceRecord) -> InstanceRecord:
    """The instance as a worker may take it up: leased by nobody, with no request pending."""
    status = record.status
    if status in FINISHED or status in (Status.PAUSED, Status.WAITING_FOR_PAUSE, Status.QUEUED):
        status = Status.RUNNING
    # A terminated run replays as a terminate(rollback=True): its recorded undos, if it ran any, are
    # checked, and undos it never ran are new work. A rolling-back one keeps its request as it was.
    rollback = record.rollback_requested or record.status is Status.TERMINATED
    return replace(
        record, status=status, lease_owner=None, lease_until=None, crash_mark=None, crash_count=0,
        pause_requested=False, rollback_requested=rollback, due_at=None, wake_at=None, expires_at=None,
        output=None, output_ref=None, error=None,
    )  # fmt: skip


def _hidden(token: str) -> str:
    """A callback token as an export holds it: replay only needs it to match itself, and the real
    one, with the instance id, run and seq the export also holds, would complete the callback."""
    return "h" + hashlib.sha256(token.encode()).hexdigest()[:31]


def _hidden_key(value: Any) -> Any:
    """A callback's event key (``$callback#<token>``, ``$heartbeat#<token>``) with its token hidden."""
    if isinstance(value, str):
        kind, sep, token = value.partition("#")
        if sep and kind in (CALLBACK_EVENT, HEARTBEAT_EVENT):
            return f"{kind}#{_hidden(token)}"
    return value


def _without_token(entry: JournalEntry) -> JournalEntry:
    extra = {k: _hidden_key(v) for k, v in entry.extra.items()}
    if "token" in extra:
        extra["token"] = _hidden(str(extra["token"]))
    return replace(entry, extra=extra) if extra != entry.extra else entry


def _event_without_token(event: EventRecord) -> EventRecord:
    return replace(event, key=_hidden_key(event.key))


def _inline(env: Environment, entry: JournalEntry) -> JournalEntry:
    if entry.result_ref is None or env.blobs is None:
        return entry
    return replace(entry, result=env.blobs.get(entry.result_ref).decode(), result_ref=None)
