"""The Store on DynamoDB: one table, one partition per instance.

Items (see docs/table-design.md):
- instance: ``pk = <id>``, ``sk = "instance"``; the sweeper index (``due-index``) keys on ``shard`` and
  ``due_at``, and is sparse because finished instances drop ``due_at``.
- journal entry: ``pk = <id>``, ``sk = "j#<run:04>#<seq:06>"``.

Every write is conditional and reads nothing first; a failed condition returns the stored item
(``ReturnValuesOnConditionCheckFailure``) instead of costing a read.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from botocore.exceptions import ClientError

from framework.dynamodb_items import (
    MAX_SEQ,
    TTL_ATTRIBUTE,
    conflict,
    entry_from,
    entry_key,
    entry_to,
    entry_values,
    event_from,
    from_item,
    instance_from,
    to_av,
)
from framework.dynamodb_manage import INSTANCE_SK, TableBase
from framework.errors import InstanceAlreadyExistsError, InstanceNotFoundError, InvalidStateError
from framework.records import (
    FINISHED,
    RUNNABLE,
    EventRecord,
    InstanceRecord,
    JournalEntry,
    Lease,
    Status,
)
from framework.store import DueInstance, LeaseConflict, LeaseLost, Release, shard_of

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
NO_PAUSE_REQUESTED = "attribute_not_exists(#pause_requested)"
IS_FINISHED = "#status IN (" + ", ".join(f":fin_{s.name.lower()}" for s in sorted(FINISHED)) + ")"
RUN_IS = "#run = :run"


class DynamoStore(TableBase):
    """Store on one DynamoDB table, through an injected low-level client."""

    def create_instances(self, records: list[InstanceRecord]) -> None:
        puts = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": self._new_item(r),
                    "ConditionExpression": INSTANCE_IS_NEW,
                    "ExpressionAttributeNames": {"#pk": "pk"},
                }
            }
            for r in records
        ]
        try:
            self._db.transact_write_items(TransactItems=puts)
        except ClientError as exc:
            reasons = exc.response.get("CancellationReasons", [])
            taken = [
                r.id
                for r, why in zip(records, reasons, strict=False)
                if why.get("Code") == "ConditionalCheckFailed"
            ]
            if taken:
                raise InstanceAlreadyExistsError(f"instances already exist: {', '.join(taken)}") from None
            raise

    def create_instance(self, record: InstanceRecord) -> None:
        try:
            self._db.put_item(
                TableName=self._table,
                Item=self._new_item(record),
                ConditionExpression=INSTANCE_IS_NEW,
                ExpressionAttributeNames={"#pk": "pk"},
            )
        except ClientError as exc:
            if conflict(exc):
                raise InstanceAlreadyExistsError(f"instance {record.id!r} already exists") from None
            raise

    def _new_item(self, record: InstanceRecord) -> dict[str, Any]:
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
        return to_av(values)

    def acquire_lease(
        self, instance_id: str, owner: str, now: float, until: float, *, require_due: bool
    ) -> Lease:
        condition = f"{IS_RUNNABLE} AND {LEASE_IS_FREE}" + (f" AND {IS_DUE}" if require_due else "")
        names = {"#status": "status", "#lease_until": "lease_until", "#lease_owner": "lease_owner"}
        names["#updated_at"] = "updated_at"
        if require_due:
            names["#wake_at"] = "wake_at"
        else:
            names["#due_at"] = "due_at"
        values: dict[str, Any] = {f":st_{s.name.lower()}": s.value for s in RUNNABLE}
        values |= {":now": now, ":until": until, ":owner": owner, ":running": Status.RUNNING.value}
        try:
            old = self._db.update_item(
                TableName=self._table,
                Key=self._key(instance_id),
                UpdateExpression=(
                    "SET #status = :running, #lease_owner = :owner, #lease_until = :until, "
                    "#updated_at = :now" + ("" if require_due else ", #due_at = :until")
                ),
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=to_av(values),
                ReturnValues="ALL_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if conflict(exc):
                item = exc.response.get("Item")
                raise LeaseConflict(instance_from(item) if item else None) from None
            raise
        return Lease(owner=owner, until=until, previous=instance_from(old["Attributes"]))

    def load_journal(self, instance_id: str, run: int, from_seq: int = 0) -> list[JournalEntry]:
        between = (entry_key(run, from_seq), entry_key(run, MAX_SEQ))
        return [entry_from(item) for item in self._query_partition(instance_id, "", between=between)]

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
                "ExpressionAttributeValues": to_av({":prev_rev": entry.rev - 1}),
            }
        try:
            self._db.put_item(TableName=self._table, Item=entry_to(instance_id, run, entry), **extra)
        except ClientError as exc:
            if conflict(exc):
                raise LeaseLost(
                    f"journal entry {entry.seq} of {instance_id!r} was written by another"
                ) from None
            raise

    def expire_lease(self, instance_id: str, owner: str, now: float, due_at: float, backoff: int) -> None:
        self._owned_update(
            instance_id,
            owner,
            "SET #lease_until = :now, #due_at = :due_at, #backoff = :backoff",
            {"#lease_until": "lease_until", "#due_at": "due_at", "#backoff": "backoff"},
            {":now": now, ":due_at": due_at, ":backoff": backoff},
        )

    def record_crash(self, instance_id: str, owner: str, mark: str, count: int) -> None:
        self._owned_update(
            instance_id,
            owner,
            "SET #crash_mark = :mark, #crash_count = :count",
            {"#crash_mark": "crash_mark", "#crash_count": "crash_count"},
            {":mark": mark, ":count": count},
        )

    def release(self, instance_id: str, owner: str, release: Release) -> Status:
        if release.status is not Status.WAITING:
            self._release(instance_id, owner, release, LEASE_IS_MINE)
            return release.status
        try:
            self._release(instance_id, owner, release, f"{LEASE_IS_MINE} AND {NO_PAUSE_REQUESTED}")
            return Status.WAITING
        except LeaseLost:
            current = self.get_instance(instance_id)  # read only on conflict
            if current is None or current.lease_owner != owner or not current.pause_requested:
                raise
        self._release(instance_id, owner, replace(release, status=Status.PAUSED), LEASE_IS_MINE)
        return Status.PAUSED

    def _release(self, instance_id: str, owner: str, release: Release, condition: str) -> None:
        sets: dict[str, Any] = {
            "status": release.status.value,
            "updated_at": release.now,
            "released_by": owner,
        }
        optional = {
            "wake_at": release.wake_at,
            "due_at": release.due_on_wait() if release.status is Status.WAITING else None,
            "output": release.output,
            "output_ref": release.output_ref,
            "error": release.error.as_dict() if release.error else None,
            TTL_ATTRIBUTE: release.expires_at,
            "tail": entry_values(release.tail) if release.tail else None,
        }
        sets |= {k: v for k, v in optional.items() if v is not None}
        removes = [k for k, v in optional.items() if v is None]
        removes += ["lease_owner", "lease_until", "crash_mark", "crash_count", "pause_requested", "backoff"]
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
            condition=condition,
        )

    def due_instances(self, before: float, limit: int) -> list[DueInstance]:
        found: list[DueInstance] = []
        for shard in range(self._shards):
            page = self._db.query(
                TableName=self._table,
                IndexName=DUE_INDEX,
                KeyConditionExpression="#shard = :shard AND #due_at <= :before",
                ExpressionAttributeNames={"#shard": "shard", "#due_at": "due_at"},
                ExpressionAttributeValues=to_av({":shard": str(shard), ":before": before}),
                Limit=limit,
            )
            for item in page.get("Items", []):
                d = from_item(item)
                found.append(DueInstance(d["pk"], float(d["due_at"]), d.get("wake_at")))
        return sorted(found, key=lambda due: due.due_at)[:limit]

    def postpone(self, instance_id: str, due_at: float, new_due_at: float, *, now: float) -> bool:
        try:
            self._db.update_item(
                TableName=self._table,
                Key=self._key(instance_id),
                UpdateExpression="SET #due_at = :new_due_at",
                ConditionExpression=f"{DUE_AT_IS} AND {LEASE_IS_FREE}",
                ExpressionAttributeNames={"#due_at": "due_at", "#lease_until": "lease_until"},
                ExpressionAttributeValues=to_av({":due_at": due_at, ":new_due_at": new_due_at, ":now": now}),
            )
        except ClientError as exc:
            if conflict(exc):
                return False
            raise
        return True

    def send_event(self, instance_id: str, event: EventRecord) -> None:
        # The event is tagged with the run it was sent to, so the run is read first; the write is
        # then conditional on that run still being current and unfinished.
        for _ in range(5):
            current = self.get_instance(instance_id)
            if current is None:
                raise InstanceNotFoundError(f"no instance {instance_id!r}")
            if current.status in FINISHED:
                raise InvalidStateError(f"instance {instance_id!r} is {current.status}: it takes no events")
            item = {
                "pk": instance_id,
                "sk": event.key,
                "type": event.type,
                "payload": event.payload,
                "sent_at": event.sent_at,
                "run": current.run,
            }
            values = {f":fin_{s.name.lower()}": s.value for s in FINISHED} | {":run": current.run}
            check = {
                "TableName": self._table,
                "Key": self._key(instance_id),
                "ConditionExpression": f"{RUN_IS} AND NOT {IS_FINISHED}",
                "ExpressionAttributeNames": {"#run": "run", "#status": "status"},
                "ExpressionAttributeValues": to_av(values),
            }
            put = {
                "TableName": self._table,
                "Item": to_av(item),
                "ConditionExpression": ENTRY_IS_NEW,
                "ExpressionAttributeNames": {"#sk": "sk"},
            }
            try:
                self._db.transact_write_items(TransactItems=[{"ConditionCheck": check}, {"Put": put}])
                return
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                    raise
                reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
                if reasons[1:2] == ["ConditionalCheckFailed"]:
                    return  # this very event is stored already: a redelivery
        raise InvalidStateError(f"instance {instance_id!r} kept changing; send the event again")

    def load_events(self, instance_id: str, event_type: str | None = None) -> list[EventRecord]:
        prefix = "e#" if event_type is None else f"e#{event_type}#"
        return [event_from(item) for item in self._query_partition(instance_id, prefix)]

    def _owned_update(
        self,
        instance_id: str,
        owner: str,
        expression: str,
        names: dict[str, str],
        values: dict[str, Any],
        *,
        condition: str = LEASE_IS_MINE,
    ) -> None:
        try:
            self._db.update_item(
                TableName=self._table,
                Key=self._key(instance_id),
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=names | {"#lease_owner": "lease_owner"},
                ExpressionAttributeValues=to_av(values | {":owner": owner}),
            )
        except ClientError as exc:
            if conflict(exc):
                raise LeaseLost(f"instance {instance_id!r} is no longer leased by {owner}") from None
            raise
