"""The schedules' items on the DynamoDB table: one per scheduled workflow, ``pk = schedule#<workflow>``,
``sk = schedule`` (no instance id holds ``#``, so none can collide), with ``mark`` (N), ``paused``
(BOOL) and ``last_fire`` (N, once a fire started an instance). They carry no ``shard``: in no index.

A read is one strongly consistent GetItem; a write one PutItem conditioned on the mark and paused flag
read before it (``SCHEDULE_IS``), or on there being no item yet (``NO_SCHEDULE_YET``)."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from framework.backends.dynamodb_items import conflict, to_av
from framework.backends.dynamodb_manage import TableBase
from framework.backends.store import ScheduleState

SCHEDULE_SK = "schedule"
NO_SCHEDULE_YET = "attribute_not_exists(#pk)"
SCHEDULE_IS = "#mark = :mark AND #paused = :paused"


def schedule_key(workflow: str) -> dict[str, Any]:
    return {"pk": {"S": f"schedule#{workflow}"}, "sk": {"S": SCHEDULE_SK}}


class ScheduleTable(TableBase):
    def schedule_state(self, workflow: str) -> ScheduleState | None:
        item = self._db.get_item(TableName=self._table, Key=schedule_key(workflow), ConsistentRead=True).get(
            "Item"
        )
        if not item:
            return None
        last = item.get("last_fire")
        return ScheduleState(
            mark=float(item["mark"]["N"]),
            paused=bool(item["paused"]["BOOL"]),
            last_fire=None if last is None else float(last["N"]),
        )

    def put_schedule_state(
        self, workflow: str, state: ScheduleState, *, expected: ScheduleState | None
    ) -> bool:
        item = schedule_key(workflow) | to_av({"mark": state.mark, "paused": state.paused})
        if state.last_fire is not None:
            item |= to_av({"last_fire": state.last_fire})
        if expected is None:
            extra: dict[str, Any] = {
                "ConditionExpression": NO_SCHEDULE_YET,
                "ExpressionAttributeNames": {"#pk": "pk"},
            }
        else:
            extra = {
                "ConditionExpression": SCHEDULE_IS,
                "ExpressionAttributeNames": {"#mark": "mark", "#paused": "paused"},
                "ExpressionAttributeValues": to_av({":mark": expected.mark, ":paused": expected.paused}),
            }
        try:
            self._db.put_item(TableName=self._table, Item=item, **extra)
        except ClientError as exc:
            if conflict(exc):
                return False
            raise
        return True
