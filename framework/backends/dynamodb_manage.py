"""The instance-management half of the DynamoDB store: reads, control, listing and purge.

``DynamoStore`` (framework.backends.dynamodb) adds the engine's hot path: create, lease, journal, release.
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any

from botocore.exceptions import ClientError

from framework.backends.dynamodb_items import (
    INSTANCE_SK,
    TTL_ATTRIBUTE,
    conflict,
    incarnation_of,
    instance_from,
    to_av,
)
from framework.backends.store import control_outcome
from framework.core.records import Control, InstanceRecord, Status, new_version
from framework.errors import InstanceNotFoundError, InvalidStateError

LIST_INDEX = "list-index"
# Every write of the instance item sets a new ``ver``: a write conditioned on the version it read fails
# if anything at all changed since, whichever field that was.
VERSION_IS = "#ver = :was_ver"
NO_VERSION = "attribute_not_exists(#ver)"  # an item written before versions existed
CONTROL_TRIES = 5


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
        for _ in range(CONTROL_TRIES):  # a conflict means the instance moved meanwhile: look again
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
        newest_first = attrgetter("created_at", "id")
        while True:
            page = self._db.query(**kwargs, Limit=max(want * 2, 25))
            items = page.get("Items", [])
            keys = [
                item
                for item in items
                if before is None or (float(item["created_at"]["N"]), item["pk"]["S"]) < before
            ]
            for record in self._records(keys):
                if status is None or record.shown_status == status:
                    found.append(record)
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
            # DynamoDB orders index items by created_at only, ties in no promised order: stop only once
            # past every item that shares the creation time of the last one a page of the list can hold.
            if len(found) >= want and items:
                found.sort(key=newest_first, reverse=True)
                if float(items[-1]["created_at"]["N"]) < found[want - 1].created_at:
                    break
        found.sort(key=newest_first, reverse=True)
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
        """Write the fields that differ between ``current`` and ``after``, if the instance is still
        exactly ``current`` (its version). Return False on a conflict."""

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
                "rollback_requested": r.rollback_requested or None,
                "skip_to": r.skip_to,
                "crash_mark": r.crash_mark,
                "crash_count": r.crash_count or None,
                "backoff": r.backoff or None,
                "released_by": r.released_by,
                TTL_ATTRIBUTE: r.expires_at,
                "tail": len(r.tail) or None,  # only ever removed here (restart)
                "waits": len(r.waits) or None,  # likewise
                "running": len(r.running) or None,  # likewise
                "counts": r.counts.as_item(),
            }

        before, changed = fields(current), fields(after)
        changed = {k: v for k, v in changed.items() if v != before[k]}
        sets = {k: v for k, v in changed.items() if v is not None}
        removes = [k for k, v in changed.items() if v is None]
        if not changed:
            return True
        parts = [("SET", [f"#{k} = :{k}" for k in sets]), ("REMOVE", [f"#{k}" for k in removes])]
        expression = " ".join(f"{verb} {', '.join(items)}" for verb, items in parts if items)
        names = {f"#{k}": k for k in changed} | {"#ver": "ver"}
        values = {f":{k}": v for k, v in sets.items()}
        if current.version:
            return self._update_if(
                current.id, expression, VERSION_IS, names, values | {":was_ver": current.version}
            )
        return self._update_if(current.id, expression, NO_VERSION, names, values)

    @staticmethod
    def _versioned(
        expression: str, names: dict[str, str], values: dict[str, Any]
    ) -> tuple[str, dict[str, str], dict[str, Any]]:
        """``expression`` (an UpdateExpression) that also sets a new version of the item."""
        if "SET " in expression:
            expression = expression.replace("SET ", "SET #ver = :new_ver, ", 1)
        else:
            expression = f"SET #ver = :new_ver {expression}"
        return expression, names | {"#ver": "ver"}, values | {":new_ver": new_version()}

    def _update_if(
        self, instance_id: str, expression: str, condition: str, names: dict[str, str], values: dict[str, Any]
    ) -> bool:
        """Update the instance item, and its version, if ``condition`` holds. Return False if it did
        not."""
        expression, names, values = self._versioned(expression, names, values)
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

    def purge(self, instance_id: str) -> int:
        found = self._query_partition(instance_id, "", keys_only=True)
        # Read after the Query: an item it found was written after its instance was created, so this
        # read sees that instance if it still has the id, and its items are kept.
        current = self.get_instance(instance_id)
        keep = None if current is None else current.incarnation
        keys = [
            {"pk": item["pk"], "sk": item["sk"]}
            for item in found
            if incarnation_of(item["sk"]["S"]) not in (None, keep)
        ]
        self._delete_keys(keys)
        return len(keys)

    def _delete_keys(self, keys: list[dict[str, Any]]) -> None:
        """Delete the items with these keys; one that is gone already is no error."""
        for start in range(0, len(keys), 25):  # BatchWriteItem takes 25 at most
            requests = [{"DeleteRequest": {"Key": key}} for key in keys[start : start + 25]]
            while requests:
                result = self._db.batch_write_item(RequestItems={self._table: requests})
                requests = result.get("UnprocessedItems", {}).get(self._table, [])

    def _query_partition(
        self,
        instance_id: str,
        prefix: str,
        *,
        between: tuple[str, str] | None = None,
        keys_only: bool = False,
    ) -> list[dict[str, Any]]:
        """Every item of the partition whose sort key starts with ``prefix`` (or lies ``between`` two
        keys, both included), in key order, read strongly consistent, all pages; with ``keys_only``,
        only their keys."""
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
        if keys_only:
            kwargs["ProjectionExpression"] = "#pk, #sk"
            kwargs["ExpressionAttributeNames"] = {"#pk": "pk", "#sk": "sk"}
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
