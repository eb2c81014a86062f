"""DynamoDB items <-> records. Floats are stored as exact decimals."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from framework.core.progress import RunningStep, StepCounts, WaitInfo
from framework.core.records import (
    Attempt,
    EntryKind,
    EntryStatus,
    ErrorInfo,
    EventRecord,
    InstanceRecord,
    JournalEntry,
    ParentLink,
    RunKey,
    Status,
)

TTL_ATTRIBUTE = "expires_at"  # the table's TimeToLiveSpecification names it (template.yaml)
INSTANCE_SK = "instance"

_ser = TypeSerializer()
_de = TypeDeserializer()


def conflict(exc: ClientError) -> bool:
    return bool(exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")


def _num(value: float | int) -> Decimal:
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


def to_av(values: dict[str, Any]) -> dict[str, Any]:
    """Plain values to DynamoDB attribute values; floats become exact decimals."""

    def convert(value: Any) -> Any:
        if isinstance(value, float):
            return _num(value)
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [convert(v) for v in value]
        return value

    return {k: _ser.serialize(convert(v)) for k, v in values.items()}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    def convert(value: Any) -> Any:
        if isinstance(value, Decimal):
            return int(value) if value == value.to_integral_value() else float(value)
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        if isinstance(value, list):
            return [convert(v) for v in value]
        return value

    return {k: convert(_de.deserialize(v)) for k, v in item.items()}


def _error(data: dict[str, Any] | None) -> ErrorInfo | None:
    return ErrorInfo(data["name"], data["message"]) if data else None


def instance_from(item: dict[str, Any]) -> InstanceRecord:
    d = from_item(item)
    return InstanceRecord(
        id=d["pk"],
        workflow=d["workflow"],
        status=Status(d["status"]),
        params=d["params"],
        created_at=float(d["created_at"]),
        updated_at=float(d["updated_at"]),
        incarnation=d.get("inc", ""),  # an item written before incarnations: its keys hold ""
        run=int(d.get("run", 1)),
        output=d.get("output"),
        output_ref=d.get("output_ref"),
        error=_error(d.get("error")),
        wake_at=d.get("wake_at"),
        due_at=d.get("due_at"),
        lease_owner=d.get("lease_owner"),
        lease_until=d.get("lease_until"),
        crash_mark=d.get("crash_mark"),
        crash_count=int(d.get("crash_count", 0)),
        expires_at=d.get(TTL_ATTRIBUTE),
        pause_requested=bool(d.get("pause_requested", False)),
        rollback_requested=bool(d.get("rollback_requested", False)),
        skip_to=d.get("skip_to"),
        backoff=int(d.get("backoff", 0)),
        tail=tuple(entry_of(e) for e in d.get("tail", [])),
        released_by=d.get("released_by"),
        version=d.get("ver", ""),
        parent=_parent(d),
        waits=tuple(WaitInfo.of_item(w) for w in d.get("waits", [])),
        running=tuple(RunningStep.of_item(op, r) for op, r in d.get("running", {}).items()),
        counts=StepCounts.of_item(d.get("counts")),
        code_version=d.get("code_version"),
        limit_key=d.get("limit_key"),
    )


def _parent(d: dict[str, Any]) -> ParentLink | None:
    if "parent_id" not in d:
        return None
    incarnation, _, number = d["parent_run"].rpartition(".")
    return ParentLink(d["parent_id"], RunKey(incarnation, int(number)), d["parent_op"])


def instance_to(r: InstanceRecord, shard: str, version: str) -> dict[str, Any]:
    """The whole instance item, with a new ``version`` (every write of the item sets one);
    ``instance_from`` reads it back. Attributes at their default are left out, so that a conditional
    PutItem of it is also a release that drops lease fields."""
    values: dict[str, Any] = {
        "pk": r.id,
        "sk": INSTANCE_SK,
        "workflow": r.workflow,
        "status": r.status.value,
        "params": r.params,
        "created_at": r.created_at,
        "updated_at": r.updated_at,
        "inc": r.incarnation,
        "run": r.run,
        "shard": shard,
        "ver": version,
    }
    optional = {
        "output": r.output,
        "output_ref": r.output_ref,
        "error": r.error.as_dict() if r.error else None,
        "wake_at": r.wake_at,
        "due_at": r.due_at,
        "lease_owner": r.lease_owner,
        "lease_until": r.lease_until,
        "crash_mark": r.crash_mark,
        "crash_count": r.crash_count or None,
        TTL_ATTRIBUTE: r.expires_at,
        "pause_requested": r.pause_requested or None,
        "rollback_requested": r.rollback_requested or None,
        "skip_to": r.skip_to,
        "backoff": r.backoff or None,
        "tail": [entry_values(e) for e in r.tail] or None,
        "released_by": r.released_by,
        "parent_id": r.parent.instance_id if r.parent else None,
        "parent_run": str(r.parent.run) if r.parent else None,
        "parent_op": r.parent.op if r.parent else None,
        "waits": [w.as_item() for w in r.waits] or None,
        "running": {s.op: s.as_item() for s in r.running} or None,
        "counts": r.counts.as_item(),
        "code_version": r.code_version,
        "limit_key": r.limit_key,
    }
    return to_av(values | {k: v for k, v in optional.items() if v is not None})


def entry_to(instance_id: str, run: RunKey, e: JournalEntry) -> dict[str, Any]:
    return to_av({"pk": instance_id, "sk": entry_key(run, e.seq)} | entry_values(e))


def entry_values(e: JournalEntry) -> dict[str, Any]:
    """An entry's attributes as plain values (``to_av`` makes them an item, or a map inside one)."""
    values: dict[str, Any] = {
        "seq": e.seq,
        "kind": e.kind.value,
        "name": e.name,
        "status": e.status.value,
        "started_at": e.started_at,
        "rev": e.rev,
    }
    optional = {
        "ended_at": e.ended_at,
        "result": e.result,
        "result_ref": e.result_ref,
        "error": e.error.as_dict() if e.error else None,
        "wake_at": e.wake_at,
        "extra": e.extra or None,
        "op": e.op,  # None for a root call whose position is its seq (most): left out
        "attempts": None
        if _one_clean_attempt(e) or (not e.attempts and not _clean_attempt_implied(e))
        else [
            {k: v for k, v in (("s", a.started_at), ("e", a.ended_at)) if v is not None}
            | ({"err": a.error.as_dict()} if a.error else {})
            for a in e.attempts
        ],
    }
    values.update({k: v for k, v in optional.items() if v is not None})
    return values


def _clean_attempt_implied(e: JournalEntry) -> bool:
    """A completed step with no ``attempts`` attribute was read as one clean attempt."""
    return e.kind is EntryKind.STEP and e.status is EntryStatus.COMPLETE


def _one_clean_attempt(e: JournalEntry) -> bool:
    """A step that succeeded at its first attempt: the attempt is the entry's own start and end, so the
    item leaves it out (most steps; a smaller item costs less to write and to read)."""
    return _clean_attempt_implied(e) and e.attempts == (Attempt(e.started_at, e.ended_at),)


def _clean_attempt(d: dict[str, Any]) -> tuple[Attempt, ...]:
    if d["kind"] == EntryKind.STEP.value and d["status"] == EntryStatus.COMPLETE.value:
        return (Attempt(float(d["started_at"]), d.get("ended_at")),)
    return ()


def entry_from(item: dict[str, Any]) -> JournalEntry:
    return entry_of(from_item(item))


def entry_of(d: dict[str, Any]) -> JournalEntry:
    return JournalEntry(
        seq=int(d["seq"]),
        kind=EntryKind(d["kind"]),
        name=d["name"],
        status=EntryStatus(d["status"]),
        started_at=float(d["started_at"]),
        ended_at=d.get("ended_at"),
        rev=int(d["rev"]),
        result=d.get("result"),
        result_ref=d.get("result_ref"),
        attempts=_clean_attempt(d)
        if "attempts" not in d
        else tuple(Attempt(float(a["s"]), a.get("e"), _error(a.get("err"))) for a in d["attempts"]),
        error=_error(d.get("error")),
        wake_at=d.get("wake_at"),
        extra=d.get("extra", {}),
        op=d.get("op"),
    )


MAX_SEQ = 999_999  # entry keys hold six digits of seq: framework.backends.environment caps max_history below
JOURNAL, EVENT = "j", "e"  # the first part of a journal entry's and an event's sort key


def run_prefix(kind: str, run: RunKey) -> str:
    """The sort-key prefix of a run's journal entries or events: ``<kind>#<incarnation>#<run>#``. Each
    part is free of ``#``, so one run's prefix never begins another's keys."""
    return f"{kind}#{run.incarnation}#{run.number:04d}#"


def incarnation_of(sort_key: str) -> str | None:
    """The incarnation a journal or event item belongs to (None for the instance item)."""
    kind, _, rest = sort_key.partition("#")
    return rest.partition("#")[0] if kind in (JOURNAL, EVENT) else None


def entry_key(run: RunKey, seq: int) -> str:
    return f"{run_prefix(JOURNAL, run)}{seq:06d}"


def event_key(event_type: str, sent_at: float, event_id: str) -> str:
    """An event's key within its run: events of one type sort by send time, then by id."""
    return f"{event_type}#{sent_at:020.6f}#{event_id}"


def event_sk(run: RunKey, key: str) -> str:
    return f"{run_prefix(EVENT, run)}{key}"


def event_from(item: dict[str, Any]) -> EventRecord:
    d = from_item(item)
    return EventRecord(
        key=d["sk"].split("#", 3)[3],
        type=d["type"],
        payload=d["payload"],
        sent_at=float(d["sent_at"]),
    )
