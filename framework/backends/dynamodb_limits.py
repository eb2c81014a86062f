"""The limits half of the DynamoDB store: one limiter item per workflow and key, one waiter item per
instance that waits for a slot (docs/table-design.md#limiter-items).

- limiter: ``pk = <limiter key>`` (``limit#<workflow>...``, see ``framework.engine.limits``; ``#``
  begins no instance id, so it meets no instance's partition), ``sk = "limiter"``; its ``holders``
  map a lease owner to the end of its lease, ``starts`` lists the rate's start times, ``ver`` is the
  token each write is conditioned on.
- waiter: the same ``pk``, ``sk = "w#<order>#<instance id>"``, the order padded so that a Query reads
  the oldest first.

Each write is one conditional PutItem or DeleteItem; a failed condition returns the stored item
(``ReturnValuesOnConditionCheckFailure``), so a conflict costs no read. A throttled call is retried by
botocore, then raises: the engine hands the instance over (``framework.engine.limits``).
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from framework.backends.dynamodb_items import TTL_ATTRIBUTE, conflict, from_item, to_av
from framework.backends.dynamodb_manage import TableBase
from framework.backends.limiter import LimiterConflict, LimiterState, Waiter
from framework.core.records import new_version

LIMITER_SK = "limiter"
WAITER = "w#"


def waiter_sk(waiter: Waiter) -> str:
    """Sorts by order: epoch seconds padded to 20 characters with 6 decimals, as event keys are."""
    return f"{WAITER}{waiter.order:020.6f}#{waiter.instance_id}"


def state_from(item: dict[str, Any]) -> LimiterState:
    d = from_item(item)
    holders = {owner: float(until) for owner, until in d.get("holders", {}).items()}
    return LimiterState(holders, tuple(float(t) for t in d.get("starts", [])), d.get("ver"))


class LimitTable(TableBase):
    def get_limiter(self, key: str) -> LimiterState:
        item = self._db.get_item(TableName=self._table, Key=_limiter_key(key), ConsistentRead=True).get(
            "Item"
        )
        return state_from(item) if item else LimiterState()

    def put_limiter(self, key: str, state: LimiterState, expires_at: int) -> str:
        version = new_version()
        item = {
            "pk": key,
            "sk": LIMITER_SK,
            "holders": state.holders,
            "starts": list(state.starts),
            "ver": version,
            TTL_ATTRIBUTE: expires_at,
        }
        if state.version is None:
            extra: dict[str, Any] = {
                "ConditionExpression": "attribute_not_exists(#pk)",
                "ExpressionAttributeNames": {"#pk": "pk"},
            }
        else:
            extra = {
                "ConditionExpression": "#ver = :ver",
                "ExpressionAttributeNames": {"#ver": "ver"},
                "ExpressionAttributeValues": to_av({":ver": state.version}),
            }
        try:
            self._db.put_item(
                TableName=self._table,
                Item=to_av(item),
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                **extra,
            )
        except ClientError as exc:
            if not conflict(exc):
                raise
            stored = exc.response.get("Item")
            # No item returned: a DynamoDB that ignores ReturnValuesOnConditionCheckFailure (dynalite).
            raise LimiterConflict(state_from(stored) if stored else self.get_limiter(key)) from None
        return version

    def add_waiter(self, key: str, waiter: Waiter, expires_at: int) -> None:
        item = {"pk": key, "sk": waiter_sk(waiter), "id": waiter.instance_id, TTL_ATTRIBUTE: expires_at}
        self._db.put_item(TableName=self._table, Item=to_av(item))  # the one writer of its own item

    def oldest_waiters(self, key: str, limit: int) -> list[Waiter]:
        page = self._db.query(
            TableName=self._table,
            KeyConditionExpression="#pk = :pk AND begins_with(#sk, :w)",
            ExpressionAttributeNames={"#pk": "pk", "#sk": "sk"},
            ExpressionAttributeValues=to_av({":pk": key, ":w": WAITER}),
            ConsistentRead=True,
            Limit=limit,
        )
        found = []
        for item in page.get("Items", []):
            order = item["sk"]["S"][len(WAITER) :].split("#", 1)[0]
            found.append(Waiter(float(order), item["id"]["S"]))
        return found

    def take_waiter(self, key: str, waiter: Waiter) -> bool:
        try:
            self._db.delete_item(
                TableName=self._table,
                Key={"pk": {"S": key}, "sk": {"S": waiter_sk(waiter)}},
                ConditionExpression="attribute_exists(#pk)",
                ExpressionAttributeNames={"#pk": "pk"},
            )
        except ClientError as exc:
            if conflict(exc):
                return False  # another releaser took it first, or it was never there
            raise
        return True


def _limiter_key(key: str) -> dict[str, Any]:
    return {"pk": {"S": key}, "sk": {"S": LIMITER_SK}}
