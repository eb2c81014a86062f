"""The instance-management half of the DynamoDB store: reads, control, listing and purge.

``DynamoStore`` (framework.dynamodb) adds the engine's hot path: create, lease, journal, release.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from framework.dynamodb_items import INSTANCE_SK, TTL_ATTRIBUTE, conflict, instance_from, to_av
from framework.errors import InstanceNotFoundError, InvalidStateError
from framework.records import Control, InstanceRecord, Status
from framework.store import control_outcome

LIST_INDEX = "list-index"
UNCHANGED_SINCE_READ = "#rev_status = :was_status AND #rev_updated_at = :was_updated_at"


class TableBase:
    """One DynamoDB table, through an injected low-level client."""

    def __init__(self, client: Any, table_name: str, *, shards: int = 8) -> None:
        self._db = client
        self._table = table_name
        self._shards = shards

    def get_instance(self, instance_id: str) -> InstanceRecord | None:
        item = self._db.get_item(TableName=self._table, Key=self._key(instance_id), ConsistentRead=True).get(
            "Item"
        )
        return instance_from(item) if item else None

    def control(self, instance_id: str, action: Control, now: float, expires_at: int) -> InstanceRecord:
        for _ in range(5):  # a conflict means the instance moved meanwhile: look again
            current = self.get_instance(instance_id)
            if current is None:
                raise InstanceNotFoundError(f"no instance {instance_id!r}")
            after = control_outcome(current, action, now, expires_at)
            if self._replace_instance(current, after):
                return after
        raise InvalidStateError(f"instance {instance_id!r} kept changing; try {action.value} again")

    def list_instances(
        self, workflow: str | None, status: Status | None, limit: int, before: tuple[float, str] | None
    ) -> tuple[list[InstanceRecord], bool]:
        found: list[InstanceRecord] = []
        for shard in range(self._shards):
            found += self._list_shard(str(shard), workflow, status, limit + 1, before)
        found.sort(key=lambda r: (r.created_at, r.id), reverse=True)
        return found[:limit], len(found) > limit

    def _list_shard(
        self,
        shard: str,
        workflow: str | None,
        status: Status | None,
        want: int,
        before: tuple[float, str] | None,
    ) -> list[InstanceRecord]:
        names = {"#shard": "shard"}
        values: dict[str, Any] = {":shard": shard}
        key = "#shard = :shard"
        if before is not None:
            key += " AND #created_at <= :before"
            names["#created_at"] = "created_at"
            values[":before"] = before[0]
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": LIST_INDEX,
            "ScanIndexForward": False,
        }
        if workflow is not None:
            kwargs["FilterExpression"] = "#workflow = :workflow"
            names["#workflow"] = "workflow"
            values[":workflow"] = workflow
        kwargs |= {
            "KeyConditionExpression": key,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": to_av(values),
        }
        found: list[InstanceRecord] = []
        while len(found) < want:
            page = self._db.query(**kwargs, Limit=max(want * 2, 25))
            keys = [
                item
                for item in page.get("Items", [])
                if before is None or (float(item["created_at"]["N"]), item["pk"]["S"]) < before
            ]
            for record in self._records(keys):
                if status is None or record.shown_status == status:
                    found.append(record)
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return found[:want]

    def _records(self, index_items: list[dict[str, Any]]) -> list[InstanceRecord]:
        """The instance items behind ``list-index`` items, in the same order. The index holds keys and
        the workflow name only, so that status writes never touch it: listing reads the items here."""
        items: dict[str, dict[str, Any]] = {}
        for start in range(0, len(index_items), 100):  # BatchGetItem takes 100 keys at most
            pending = {
                self._table: {"Keys": [self._key(i["pk"]["S"]) for i in index_items[start : start + 100]]}
            }
            while pending:
                result = self._db.batch_get_item(RequestItems=pending)
                items |= {item["pk"]["S"]: item for item in result["Responses"].get(self._table, [])}
                pending = result.get("UnprocessedKeys") or {}
        # An instance purged between the two reads is left out.
        return [instance_from(items[i["pk"]["S"]]) for i in index_items if i["pk"]["S"] in items]

    def _replace_instance(self, current: InstanceRecord, after: InstanceRecord) -> bool:
        """Write the fields that differ between ``current`` and ``after``, if the instance still has
        ``current``'s status and update time. Return False on a conflict."""

        def fields(r: InstanceRecord) -> dict[str, Any]:
            return {
                "status": r.status.value,
                "updated_at": r.updated_at,
                "run": r.run,
                "wake_at": r.wake_at,
                "due_at": r.due_at,
                "output": r.output,
                "output_ref": r.output_ref,
                "error": r.error.as_dict() if r.error else None,
                "lease_owner": r.lease_owner,
                "lease_until": r.lease_until,
                "pause_requested": r.pause_requested or None,
                "crash_mark": r.crash_mark,
                "crash_count": r.crash_count or None,
                "released_by": r.released_by,
                TTL_ATTRIBUTE: r.expires_at,
                "tail": len(r.tail) or None,  # only ever removed here (restart)
            }

        before, changed = fields(current), fields(after)
        changed = {k: v for k, v in changed.items() if v != before[k]}
        sets = {k: v for k, v in changed.items() if v is not None}
        removes = [k for k, v in changed.items() if v is None]
        if not changed:
            return True
        parts = [("SET", [f"#{k} = :{k}" for k in sets]), ("REMOVE", [f"#{k}" for k in removes])]
        expression = " ".join(f"{verb} {', '.join(items)}" for verb, items in parts if items)
        names = {f"#{k}": k for k in changed} | {"#rev_status": "status", "#rev_updated_at": "updated_at"}
        values = {f":{k}": v for k, v in sets.items()} | {
            ":was_status": current.status.value,
            ":was_updated_at": current.updated_at,
        }
        return self._update_if(current.id, expression, UNCHANGED_SINCE_READ, names, values)

    def _update_if(
        self, instance_id: str, expression: str, condition: str, names: dict[str, str], values: dict[str, Any]
    ) -> bool:
        """Update the instance item if ``condition`` holds. Return False if it did not."""
        try:
            self._db.update_item(
                TableName=self._table,
                Key=self._key(instance_id),
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=to_av(values),
            )
        except ClientError as exc:
            if conflict(exc):
                return False
            raise
        return True

    def purge(self, instance_id: str, before: float | None = None) -> int:
        limit = float("inf") if before is None else before

        def old(item: dict[str, Any]) -> bool:
            when = item.get("started_at") or item.get("sent_at")
            return item["sk"]["S"] != INSTANCE_SK and (when is None or float(when["N"]) < limit)

        keys = [
            {"pk": item["pk"], "sk": item["sk"]}
            for item in self._query_partition(instance_id, "")
            if old(item)
        ]
        for start in range(0, len(keys), 25):  # BatchWriteItem takes 25 at most
            requests = [{"DeleteRequest": {"Key": key}} for key in keys[start : start + 25]]
            while requests:
                result = self._db.batch_write_item(RequestItems={self._table: requests})
                requests = result.get("UnprocessedItems", {}).get(self._table, [])
        return len(keys)

    def _query_partition(
        self, instance_id: str, prefix: str, *, between: tuple[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """Every item of the partition whose sort key starts with ``prefix`` (or lies ``between`` two
        keys, both included), in key order, read strongly consistent, all pages."""
        names = {"#pk": "pk", "#sk": "sk"}
        if between is not None:
            key = "#pk = :pk AND #sk BETWEEN :low AND :high"
            values = {":low": between[0], ":high": between[1]}
        elif prefix:
            key, values = "#pk = :pk AND begins_with(#sk, :prefix)", {":prefix": prefix}
        else:  # the whole partition
            key, values, names = "#pk = :pk", {}, {"#pk": "pk"}
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": key,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": to_av(values | {":pk": instance_id}),
            "ConsistentRead": True,
        }
        items: list[dict[str, Any]] = []
        while True:
            page = self._db.query(**kwargs)
            items += page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    @staticmethod
    def _key(instance_id: str) -> dict[str, Any]:
        return {"pk": {"S": instance_id}, "sk": {"S": INSTANCE_SK}}
