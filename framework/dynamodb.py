"""The Store on DynamoDB: one table, one partition per instance.

Items (see docs/table-design.md):
- instance: ``pk = <id>``, ``sk = "instance"``; the sweeper index (``due-index``) keys on ``shard`` and
  ``due_at``, and is sparse because finished instances drop ``due_at``.
- journal entry: ``pk = <id>``, ``sk = "j#<run:04>#<seq:06>"``.

Every write is conditional and reads nothing first; a failed condition returns the stored item
(``ReturnValuesOnConditionCheckFailure``) instead of costing a read.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from framework.errors import InstanceAlreadyExistsError
from framework.records import (
    FINISHED,
    RUNNABLE,
    Attempt,
    EntryKind,
    EntryStatus,
    ErrorInfo,
    InstanceRecord,
    JournalEntry,
    Lease,
    Status,
)
from framework.store import DueInstance, LeaseConflict, LeaseLost, Release, shard_of

INSTANCE_SK = "instance"
DUE_INDEX = "due-index"

# Each part of every ConditionExpression, by name.
INSTANCE_IS_NEW = "attribute_not_exists(#pk)"
IS_RUNNABLE = "#status IN (" + ", ".join(f":st_{s.name.lower()}" for s in sorted(RUNNABLE)) + ")"
LEASE_IS_FREE = "(attribute_not_exists(#lease_until) OR #lease_until < :now)"
IS_DUE = "(attribute_not_exists(#wake_at) OR #wake_at <= :now)"
LEASE_IS_MINE = "#lease_owner = :owner"
ENTRY_IS_NEW = "attribute_not_exists(#sk)"
ENTRY_REV_IS = "#rev = :prev_rev"
DUE_AT_IS = "#due_at = :due_at"

_ser = TypeSerializer()
_de = TypeDeserializer()


def _conflict(exc: ClientError) -> bool:
    return bool(exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")


def _num(value: float | int) -> Decimal:
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


def _to_av(values: dict[str, Any]) -> dict[str, Any]:
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


def _from_item(item: dict[str, Any]) -> dict[str, Any]:
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


def _instance_from(item: dict[str, Any]) -> InstanceRecord:
    d = _from_item(item)
    return InstanceRecord(
        id=d["pk"],
        workflow=d["workflow"],
        status=Status(d["status"]),
        params=d["params"],
        created_at=float(d["created_at"]),
        updated_at=float(d["updated_at"]),
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
        expires_at=d.get("expires_at"),
    )


def _entry_to(instance_id: str, run: int, e: JournalEntry) -> dict[str, Any]:
    values: dict[str, Any] = {
        "pk": instance_id,
        "sk": entry_key(run, e.seq),
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
        "attempts": [
            {k: v for k, v in (("s", a.started_at), ("e", a.ended_at)) if v is not None}
            | ({"err": a.error.as_dict()} if a.error else {})
            for a in e.attempts
        ]
        or None,
    }
    values.update({k: v for k, v in optional.items() if v is not None})
    return _to_av(values)


def _entry_from(item: dict[str, Any]) -> JournalEntry:
    d = _from_item(item)
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
        attempts=tuple(
            Attempt(float(a["s"]), a.get("e"), _error(a.get("err"))) for a in d.get("attempts", [])
        ),
        error=_error(d.get("error")),
        wake_at=d.get("wake_at"),
        extra=d.get("extra", {}),
    )


def entry_key(run: int, seq: int) -> str:
    return f"j#{run:04d}#{seq:06d}"


class DynamoStore:
    """Store on one DynamoDB table, through an injected low-level client."""

    def __init__(self, client: Any, table_name: str, *, shards: int = 8) -> None:
        self._db = client
        self._table = table_name
        self._shards = shards

    def create_instance(self, record: InstanceRecord) -> None:
        values: dict[str, Any] = {
            "pk": record.id,
            "sk": INSTANCE_SK,
            "workflow": record.workflow,
            "status": record.status.value,
            "params": record.params,
            "created_at": record.created_at,
            "updated_at": record.updated_at,
            "run": record.run,
            "shard": shard_of(record.id, self._shards),
        }
        if record.due_at is not None:
            values["due_at"] = record.due_at
        try:
            self._db.put_item(
                TableName=self._table,
                Item=_to_av(values),
                ConditionExpression=INSTANCE_IS_NEW,
                ExpressionAttributeNames={"#pk": "pk"},
            )
        except ClientError as exc:
            if _conflict(exc):
                raise InstanceAlreadyExistsError(f"instance {record.id!r} already exists") from None
            raise

    def get_instance(self, instance_id: str) -> InstanceRecord | None:
        item = self._db.get_item(TableName=self._table, Key=self._key(instance_id), ConsistentRead=True).get(
            "Item"
        )
        return _instance_from(item) if item else None

    def acquire_lease(
        self, instance_id: str, owner: str, now: float, until: float, *, require_due: bool
    ) -> Lease:
        condition = f"{IS_RUNNABLE} AND {LEASE_IS_FREE}" + (f" AND {IS_DUE}" if require_due else "")
        names = {"#status": "status", "#lease_until": "lease_until", "#lease_owner": "lease_owner"}
        names |= {"#due_at": "due_at", "#updated_at": "updated_at", "#wake_at": "wake_at"}
        values: dict[str, Any] = {f":st_{s.name.lower()}": s.value for s in RUNNABLE}
        values |= {":now": now, ":until": until, ":owner": owner, ":running": Status.RUNNING.value}
        try:
            old = self._db.update_item(
                TableName=self._table,
                Key=self._key(instance_id),
                UpdateExpression=(
                    "SET #status = :running, #lease_owner = :owner, #lease_until = :until, "
                    "#due_at = :until, #updated_at = :now REMOVE #wake_at"
                ),
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=_to_av(values),
                ReturnValues="ALL_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if _conflict(exc):
                item = exc.response.get("Item")
                raise LeaseConflict(_instance_from(item) if item else None) from None
            raise
        return Lease(owner=owner, until=until, previous=_instance_from(old["Attributes"]))

    def load_journal(self, instance_id: str, run: int) -> list[JournalEntry]:
        entries: list[JournalEntry] = []
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "#pk = :pk AND begins_with(#sk, :prefix)",
            "ExpressionAttributeNames": {"#pk": "pk", "#sk": "sk"},
            "ExpressionAttributeValues": _to_av({":pk": instance_id, ":prefix": f"j#{run:04d}#"}),
            "ConsistentRead": True,
        }
        while True:
            page = self._db.query(**kwargs)
            entries.extend(_entry_from(item) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return entries
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def write_entry(self, instance_id: str, run: int, entry: JournalEntry) -> None:
        if entry.rev == 1:
            extra: dict[str, Any] = {
                "ConditionExpression": ENTRY_IS_NEW,
                "ExpressionAttributeNames": {"#sk": "sk"},
            }
        else:
            extra = {
                "ConditionExpression": ENTRY_REV_IS,
                "ExpressionAttributeNames": {"#rev": "rev"},
                "ExpressionAttributeValues": _to_av({":prev_rev": entry.rev - 1}),
            }
        try:
            self._db.put_item(TableName=self._table, Item=_entry_to(instance_id, run, entry), **extra)
        except ClientError as exc:
            if _conflict(exc):
                raise LeaseLost(
                    f"journal entry {entry.seq} of {instance_id!r} was written by another"
                ) from None
            raise

    def record_crash(self, instance_id: str, owner: str, mark: str, count: int) -> None:
        self._owned_update(
            instance_id,
            owner,
            "SET #crash_mark = :mark, #crash_count = :count",
            {"#crash_mark": "crash_mark", "#crash_count": "crash_count"},
            {":mark": mark, ":count": count},
        )

    def release(self, instance_id: str, owner: str, release: Release) -> None:
        sets: dict[str, Any] = {"status": release.status.value, "updated_at": release.now}
        optional = {
            "wake_at": release.wake_at,
            "due_at": None if release.status in FINISHED else release.wake_at,
            "output": release.output,
            "output_ref": release.output_ref,
            "error": release.error.as_dict() if release.error else None,
            "expires_at": release.expires_at,
        }
        sets |= {k: v for k, v in optional.items() if v is not None}
        removes = [k for k, v in optional.items() if v is None]
        removes += ["lease_owner", "lease_until", "crash_mark", "crash_count"]
        expression = (
            "SET "
            + ", ".join(f"#{k} = :{k}" for k in sets)
            + " REMOVE "
            + ", ".join(f"#{k}" for k in removes)
        )
        self._owned_update(
            instance_id,
            owner,
            expression,
            {f"#{k}": k for k in [*sets, *removes]},
            {f":{k}": v for k, v in sets.items()},
        )

    def due_instances(self, before: float, limit: int) -> list[DueInstance]:
        found: list[DueInstance] = []
        for shard in range(self._shards):
            page = self._db.query(
                TableName=self._table,
                IndexName=DUE_INDEX,
                KeyConditionExpression="#shard = :shard AND #due_at <= :before",
                ExpressionAttributeNames={"#shard": "shard", "#due_at": "due_at"},
                ExpressionAttributeValues=_to_av({":shard": str(shard), ":before": before}),
                Limit=limit,
            )
            for item in page.get("Items", []):
                d = _from_item(item)
                found.append(DueInstance(d["pk"], float(d["due_at"]), Status(d["status"]), d.get("wake_at")))
        return sorted(found, key=lambda due: due.due_at)[:limit]

    def postpone(self, instance_id: str, due_at: float, new_due_at: float) -> bool:
        try:
            self._db.update_item(
                TableName=self._table,
                Key=self._key(instance_id),
                UpdateExpression="SET #due_at = :new_due_at",
                ConditionExpression=DUE_AT_IS,
                ExpressionAttributeNames={"#due_at": "due_at"},
                ExpressionAttributeValues=_to_av({":due_at": due_at, ":new_due_at": new_due_at}),
            )
        except ClientError as exc:
            if _conflict(exc):
                return False
            raise
        return True

    def _owned_update(
        self, instance_id: str, owner: str, expression: str, names: dict[str, str], values: dict[str, Any]
    ) -> None:
        try:
            self._db.update_item(
                TableName=self._table,
                Key=self._key(instance_id),
                UpdateExpression=expression,
                ConditionExpression=LEASE_IS_MINE,
                ExpressionAttributeNames=names | {"#lease_owner": "lease_owner"},
                ExpressionAttributeValues=_to_av(values | {":owner": owner}),
            )
        except ClientError as exc:
            if _conflict(exc):
                raise LeaseLost(f"instance {instance_id!r} is no longer leased by {owner}") from None
            raise

    @staticmethod
    def _key(instance_id: str) -> dict[str, Any]:
        return {"pk": {"S": instance_id}, "sk": {"S": INSTANCE_SK}}
