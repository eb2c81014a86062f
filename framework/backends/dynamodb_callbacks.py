"""The callback half of the DynamoDB store: a send is one transaction that checks the instance's run,
checks the callback's journal entry (its token, still waiting), and puts the event.

On success that is one GetItem (the run's incarnation, which the id does not hold) and one
TransactWriteItems of three items. A refused send reads the entry once more to say why.

A throttled call (the table's throughput, or a request limit) is retried by botocore; a transaction
cancelled for a throttled item, which botocore does not retry, is retried here. A throttle that lasts
through them raises ThrottledError, never botocore's error: nothing was written, as a transaction writes
all of its items or none.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from framework.backends import dynamodb_conflicts
from framework.backends.callbacks import already_sent, check_callback
from framework.backends.dynamodb_conflicts import BASE_DELAY
from framework.backends.dynamodb_items import entry_from, entry_key, event_sk, to_av
from framework.backends.dynamodb_manage import TableBase
from framework.core.callbacks import CallbackId
from framework.core.records import FINISHED, EntryKind, EntryStatus, EventRecord, JournalEntry, RunKey
from framework.errors import InvalidStateError, ThrottledError

TRIES = 5  # the instance moved on between the read and the transaction (a release, a lease)
RUN_IS_OPEN = (
    "#inc = :inc AND #run = :run AND NOT #status IN ("
    + ", ".join(f":fin_{s.name.lower()}" for s in sorted(FINISHED))
    + ")"
)
IS_WAITING_CALLBACK = "#kind = :callback AND #status = :waiting AND #extra.#token = :token"
EVENT_IS_NEW = "attribute_not_exists(#sk)"
EVENT_IS_OLDER = "attribute_not_exists(#sk) OR #sent_at < :sent_at"
# What DynamoDB answers a throttled call with, and a transaction's reasons for a throttled item.
THROTTLED = frozenset(
    {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"}
)
THROTTLED_ITEM = frozenset({"ThrottlingError", "ProvisionedThroughputExceeded"})


def _throttled(exc: ClientError) -> bool:
    """``exc`` is DynamoDB's answer to a throttled call, or a transaction cancelled for a throttled item."""
    code = exc.response.get("Error", {}).get("Code")
    if code in THROTTLED:
        return True
    reasons = {r.get("Code") for r in exc.response.get("CancellationReasons", [])}
    return code == "TransactionCanceledException" and bool(reasons & THROTTLED_ITEM)


class CallbackTable(TableBase):
    def get_entry(self, instance_id: str, run: RunKey, seq: int) -> JournalEntry | None:
        key = {"pk": {"S": instance_id}, "sk": {"S": entry_key(run, seq)}}
        item = self._db.get_item(TableName=self._table, Key=key, ConsistentRead=True).get("Item")
        return entry_from(item) if item else None

    def send_callback(self, callback: CallbackId, event: EventRecord, *, replace: bool = False) -> None:
        try:
            self._send_callback(callback, event, replace=replace)
        except ClientError as exc:
            if not _throttled(exc):
                raise
            raise ThrottledError(
                f"DynamoDB throttled the send to a callback of instance {callback.instance_id!r} "
                f"({exc.operation_name}); nothing was written: send it again later"
            ) from exc

    def _send_callback(self, callback: CallbackId, event: EventRecord, *, replace: bool) -> None:
        for attempt in range(TRIES):
            current = self.get_instance(callback.instance_id)
            if current is None or current.run != callback.run:
                check_callback(callback, current, None)  # raises: no instance, or another run
            assert current is not None
            run = current.run_key
            values: dict[str, Any] = {f":fin_{s.name.lower()}": s.value for s in FINISHED}
            instance_check = {
                "TableName": self._table,
                "Key": self._key(callback.instance_id),
                "ConditionExpression": RUN_IS_OPEN,
                "ExpressionAttributeNames": {"#run": "run", "#status": "status", "#inc": "inc"},
                "ExpressionAttributeValues": to_av(values | {":run": run.number, ":inc": run.incarnation}),
            }
            entry_check = {
                "TableName": self._table,
                "Key": {"pk": {"S": callback.instance_id}, "sk": {"S": entry_key(run, callback.seq)}},
                "ConditionExpression": IS_WAITING_CALLBACK,
                "ExpressionAttributeNames": {
                    "#kind": "kind",
                    "#status": "status",
                    "#extra": "extra",
                    "#token": "token",
                },
                "ExpressionAttributeValues": to_av(
                    {
                        ":callback": EntryKind.CALLBACK.value,
                        ":waiting": EntryStatus.WAITING.value,
                        ":token": callback.token,
                    }
                ),
            }
            item = {
                "pk": callback.instance_id,
                "sk": event_sk(run, event.key),
                "type": event.type,
                "payload": event.payload,
                "sent_at": event.sent_at,
            }
            put: dict[str, Any] = {
                "TableName": self._table,
                "Item": to_av(item),
                "ConditionExpression": EVENT_IS_OLDER if replace else EVENT_IS_NEW,
                "ExpressionAttributeNames": {"#sk": "sk"} | ({"#sent_at": "sent_at"} if replace else {}),
            }
            if replace:
                put["ExpressionAttributeValues"] = to_av({":sent_at": event.sent_at})
            try:
                self._db.transact_write_items(
                    TransactItems=[
                        {"ConditionCheck": instance_check},
                        {"ConditionCheck": entry_check},
                        {"Put": put},
                    ]
                )
                return
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                    raise
                reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
                if THROTTLED_ITEM & set(reasons):  # not an answer: nothing was written, try again
                    if attempt == TRIES - 1:
                        raise
                    dynamodb_conflicts.pause(BASE_DELAY * 2**attempt)
                    continue
            failed = [i for i, code in enumerate(reasons) if code == "ConditionalCheckFailed"]
            if failed == [2]:
                if replace:
                    return  # a later heartbeat is stored: this one changes nothing
                raise already_sent(callback)
            # The instance moved on (another run, finished) or the entry did not match: say which. If
            # nothing is wrong now (a release changed the item meanwhile), try again.
            latest = self.get_instance(callback.instance_id)
            entry = None
            if latest is not None:
                entry = self.get_entry(callback.instance_id, latest.run_key, callback.seq)
            check_callback(callback, latest, entry)
        raise InvalidStateError(f"instance {callback.instance_id!r} kept changing; send the callback again")
