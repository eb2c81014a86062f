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

from framework.backends.dynamodb_callbacks import CallbackTable
from framework.backends.dynamodb_conflicts import ConflictRetrying
from framework.backends.dynamodb_items import (
    EVENT,
    MAX_SEQ,
    conflict,
    entry_from,
    entry_key,
    entry_to,
    event_from,
    event_sk,
    from_item,
    instance_from,
    instance_to,
    run_prefix,
    to_av,
)
from framework.backends.dynamodb_limits import LimitTable
from framework.backends.dynamodb_manage import LIST_INDEX
from framework.backends.dynamodb_schedules import ScheduleTable
from framework.backends.store import (
    PAUSABLE,
    WATCHED,
    DueInstance,
    InstanceTaken,
    LeaseConflict,
    LeaseLost,
    Release,
    released,
    shard_of,
)
from framework.core.progress import RunningStep, StepCounts
from framework.core.records import (
    FINISHED,
    RUNNABLE,
    EventRecord,
    InstanceRecord,
    JournalEntry,
    Lease,
    RunKey,
    Status,
    new_version,
)
from framework.errors import InstanceNotFoundError, InvalidStateError

DUE_INDEX = "due-index"
QUERY_PAGE = 1000  # items per sweeper Query page

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
PAUSE_IS_REQUESTED = "#pause_requested = :yes"
RELEASE_TRIES = 5  # pause and resume flipping the request faster than a release can be written
NO_MARK_YET = "attribute_not_exists(#pk)"
NO_DUE_AT = "attribute_not_exists(#due_at)"
IS_WATCHED = "#status IN (" + ", ".join(f":st_{s.name.lower()}" for s in sorted(WATCHED)) + ")"
MARK_IS_BEHIND = "#swept_until < :swept_until"
MARK_IS_AHEAD = "#swept_until > :now"  # written by a sweeper whose clock ran fast
# The sweeper's one item: "#" can begin no instance id.
SWEEP_MARK_KEY = {"pk": {"S": "#sweeper"}, "sk": {"S": "mark"}}
IS_FINISHED = "#status IN (" + ", ".join(f":fin_{s.name.lower()}" for s in sorted(FINISHED)) + ")"
RUN_IS = "#inc = :inc AND #run = :run"


class DynamoStore(LimitTable, CallbackTable, ScheduleTable):
    """Store on one DynamoDB table, through an injected low-level client."""

    def __init__(self, client: Any, table_name: str, *, shards: int = 8) -> None:
        # Every write is retried on a transaction conflict, then InstanceBusyError (see the module).
        super().__init__(ConflictRetrying(client), table_name, shards=shards)

    def create_instances(self, records: list[InstanceRecord]) -> None:
        puts = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": self._new_item(r),
                    "ConditionExpression": INSTANCE_IS_NEW,
                    "ExpressionAttributeNames": {"#pk": "pk"},
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            }
            for r in records
        ]
        try:
            self._db.transact_write_items(TransactItems=puts)
        except ClientError as exc:
            reasons = exc.response.get("CancellationReasons", [])
            taken = [
                (r.id, why.get("Item"))
                for r, why in zip(records, reasons, strict=False)
                if why.get("Code") == "ConditionalCheckFailed"
            ]
            if taken:
                existing = self._taken(taken)
                raise InstanceTaken(
                    f"instances already exist: {', '.join(i for i, _ in taken)}", existing
                ) from None
            raise

    def create_instance(self, record: InstanceRecord) -> None:
        try:
            self._db.put_item(
                TableName=self._table,
                Item=self._new_item(record),
                ConditionExpression=INSTANCE_IS_NEW,
                ExpressionAttributeNames={"#pk": "pk"},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if conflict(exc):
                existing = self._taken([(record.id, exc.response.get("Item"))])
                raise InstanceTaken(f"instance {record.id!r} already exists", existing) from None
            raise

    def _taken(self, taken: list[tuple[str, dict[str, Any] | None]]) -> dict[str, InstanceRecord]:
        """The instances that hold the taken ids, from the items the failed write returned. A DynamoDB
        that returns none (dynalite ignores ReturnValuesOnConditionCheckFailure) costs a read."""
        found = {i: instance_from(item) if item else self.get_instance(i) for i, item in taken}
        return {i: record for i, record in found.items() if record is not None}

    def _new_item(self, record: InstanceRecord) -> dict[str, Any]:
        return instance_to(record, shard_of(record.id, self._shards), new_version())

    def acquire_lease(
        self, instance_id: str, owner: str, now: float, until: float, *, require_due: bool
    ) -> Lease:
        condition = f"{IS_RUNNABLE} AND {LEASE_IS_FREE}" + (f" AND {IS_DUE}" if require_due else "")
        names = {"#status": "status", "#lease_until": "lease_until", "#lease_owner": "lease_owner"}
        names |= {"#updated_at": "updated_at", "#wake_at": "wake_at"}
        if not require_due:
            names["#due_at"] = "due_at"
        values: dict[str, Any] = {f":st_{s.name.lower()}": s.value for s in RUNNABLE}
        values |= {":now": now, ":until": until, ":owner": owner, ":running": Status.RUNNING.value}
        # An empty map of running steps: mark_running sets its keys, and a crashed invocation's go.
        names["#steps"], values[":no_steps"] = "running", {}
        expression, names, values = self._versioned(
            "SET #status = :running, #lease_owner = :owner, #lease_until = :until, "
            "#updated_at = :now, #steps = :no_steps"
            + ("" if require_due else ", #due_at = :until REMOVE #wake_at"),
            names,
            values,
        )
        try:
            old = self._db.update_item(
                TableName=self._table,
                Key=self._key(instance_id),
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=to_av(values),
                ReturnValues="ALL_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if conflict(exc):
                item = exc.response.get("Item")
                # No item: DynamoDB's answer for a missing instance, and the only answer of a DynamoDB
                # that ignores ReturnValuesOnConditionCheckFailure (dynalite). Read it to be sure.
                raise LeaseConflict(instance_from(item) if item else self.get_instance(instance_id)) from None
            raise
        return Lease(owner=owner, until=until, previous=instance_from(old["Attributes"]))

    def load_journal(self, instance_id: str, run: RunKey, from_seq: int = 0) -> list[JournalEntry]:
        between = (entry_key(run, from_seq), entry_key(run, MAX_SEQ))
        return [entry_from(item) for item in self._query_partition(instance_id, "", between=between)]

    def load_journal_page(
        self, instance_id: str, run: RunKey, from_seq: int, limit: int
    ) -> tuple[list[JournalEntry], bool]:
        page = self._db.query(
            TableName=self._table,
            KeyConditionExpression="#pk = :pk AND #sk BETWEEN :low AND :high",
            ExpressionAttributeNames={"#pk": "pk", "#sk": "sk"},
            ExpressionAttributeValues=to_av(
                {":pk": instance_id, ":low": entry_key(run, from_seq), ":high": entry_key(run, MAX_SEQ)}
            ),
            ConsistentRead=True,
            Limit=limit,
        )
        return [entry_from(item) for item in page.get("Items", [])], "LastEvaluatedKey" in page

    def write_entry(self, instance_id: str, run: RunKey, entry: JournalEntry) -> None:
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
            "SET #lease_until = :now, #due_at = :due_at, #backoff = :backoff REMOVE #steps",
            {"#lease_until": "lease_until", "#due_at": "due_at", "#backoff": "backoff", "#steps": "running"},
            {":now": now, ":due_at": due_at, ":backoff": backoff},
        )

    def mark_running(self, instance_id: str, owner: str, step: RunningStep) -> None:
        # The map exists while the lease does: acquire_lease set it.
        names, values = {"#steps": "running", "#op": step.op}, {":step": step.as_item()}
        self._owned_update(instance_id, owner, "SET #steps.#op = :step", names, values)

    def clear_running(self, instance_id: str, owner: str, op: str, counts: StepCounts) -> None:
        names = {"#steps": "running", "#op": op, "#counts": "counts"}
        stored = counts.as_item()
        if stored is None:
            self._owned_update(instance_id, owner, "REMOVE #steps.#op, #counts", names, {})
        else:
            expression = "SET #counts = :counts REMOVE #steps.#op"
            self._owned_update(instance_id, owner, expression, names, {":counts": stored})

    def record_crash(self, instance_id: str, owner: str, mark: str, count: int) -> None:
        self._owned_update(
            instance_id,
            owner,
            "SET #crash_mark = :mark, #crash_count = :count",
            {"#crash_mark": "crash_mark", "#crash_count": "crash_count"},
            {":mark": mark, ":count": count},
        )

    def mark_rolling_back(self, instance_id: str, owner: str) -> None:
        self._owned_update(
            instance_id,
            owner,
            "SET #status = :status",
            {"#status": "status"},
            {":status": Status.ROLLING_BACK.value},
        )

    def release(self, lease: Lease, release: Release) -> Status:
        if release.status not in PAUSABLE:
            self._release(lease, release, LEASE_IS_MINE)
            return release.status
        # A WAITING release is stored PAUSED if a pause request is there. Each attempt is conditioned on
        # the request being there or not, as it assumes: a resume() (or a pause()) that lands between
        # two attempts makes the next one fail and look again, so it is never overwritten.
        pause = False
        for _ in range(RELEASE_TRIES):
            status = Status.PAUSED if pause else release.status
            assumed = PAUSE_IS_REQUESTED if pause else NO_PAUSE_REQUESTED
            try:
                self._release(lease, replace(release, status=status), f"{LEASE_IS_MINE} AND {assumed}")
                return status
            except LeaseLost:
                current = self.get_instance(lease.previous.id)  # read only on conflict
                if current is None or current.lease_owner != lease.owner:
                    raise
                pause = current.pause_requested
        raise LeaseLost(f"instance {lease.previous.id!r}: pause requests kept changing during the release")

    def _release(self, lease: Lease, release: Release, condition: str) -> None:
        """Put the whole item: the lease holder knows it, and a put is a smaller request than an update
        that names every attribute to drop. Nobody else writes the item while the lease is live, but
        for a pause request, which ``condition`` checks, and a terminate or restart, which takes the
        lease away."""
        after = released(lease, release)
        names = {"#lease_owner": "lease_owner"}
        values: dict[str, Any] = {":owner": lease.owner}
        if "#pause_requested" in condition:
            names["#pause_requested"] = "pause_requested"
        if ":yes" in condition:
            values[":yes"] = True
        try:
            self._db.put_item(
                TableName=self._table,
                Item=self._new_item(after),
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=to_av(values),
            )
        except ClientError as exc:
            if conflict(exc):
                raise LeaseLost(f"instance {after.id!r} is no longer leased by {lease.owner}") from None
            raise

    def due_instances(self, before: float, limit: int, *, after: float | None = None) -> list[DueInstance]:
        if after is not None and after >= before:
            return []  # an empty window; DynamoDB refuses a BETWEEN whose low end is above its high end
        found: list[DueInstance] = []
        key, values = "#shard = :shard AND #due_at <= :before", {":before": before}
        if after is not None:
            key, values = "#shard = :shard AND #due_at BETWEEN :after AND :before", values | {":after": after}
        for shard in range(self._shards):
            kwargs: dict[str, Any] = {
                "TableName": self._table,
                "IndexName": DUE_INDEX,
                "KeyConditionExpression": key,
                "ExpressionAttributeNames": {"#shard": "shard", "#due_at": "due_at"},
                "ExpressionAttributeValues": to_av(values | {":shard": str(shard)}),
                "Limit": min(limit, QUERY_PAGE),
            }
            taken = 0
            while taken < limit:  # a page stops at 1 MB, or at Limit: read on to ``limit`` items
                page = self._db.query(**kwargs)
                for item in page.get("Items", []):
                    d = from_item(item)
                    if after is None or d["due_at"] > after:  # BETWEEN includes ``after``
                        found.append(DueInstance(d["pk"], float(d["due_at"]), d.get("wake_at")))
                        taken += 1
                if "LastEvaluatedKey" not in page:
                    break
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return sorted(found, key=lambda due: due.due_at)[:limit]

    def created_between(self, after: float, until: float) -> list[InstanceRecord]:
        if after >= until:
            return []  # an empty window; DynamoDB refuses a BETWEEN whose low end is above its high end
        found: list[InstanceRecord] = []
        for shard in range(self._shards):
            kwargs: dict[str, Any] = {
                "TableName": self._table,
                "IndexName": LIST_INDEX,
                "KeyConditionExpression": "#shard = :shard AND #created_at BETWEEN :after AND :until",
                "ExpressionAttributeNames": {"#shard": "shard", "#created_at": "created_at"},
                "ExpressionAttributeValues": to_av({":shard": str(shard), ":after": after, ":until": until}),
            }
            while True:
                page = self._db.query(**kwargs)
                keys = [i for i in page.get("Items", []) if float(i["created_at"]["N"]) > after]
                found += self._records(keys)
                if "LastEvaluatedKey" not in page:
                    break
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return found

    def watch(self, instance_id: str, due_at: float) -> bool:
        values = {f":st_{s.name.lower()}": s.value for s in WATCHED} | {":due_at": due_at}
        return self._update_if(
            instance_id,
            "SET #due_at = :due_at",
            f"{NO_DUE_AT} AND {IS_WATCHED}",
            {"#due_at": "due_at", "#status": "status"},
            values,
        )

    def sweep_mark(self) -> float | None:
        item = self._db.get_item(TableName=self._table, Key=SWEEP_MARK_KEY, ConsistentRead=True).get("Item")
        return float(item["swept_until"]["N"]) if item else None

    def set_sweep_mark(self, swept_until: float, *, now: float | None = None) -> None:
        condition, values = f"{NO_MARK_YET} OR {MARK_IS_BEHIND}", {":swept_until": swept_until}
        if now is not None:
            condition, values = f"{condition} OR {MARK_IS_AHEAD}", values | {":now": now}
        try:
            self._db.put_item(
                TableName=self._table,
                Item=SWEEP_MARK_KEY | to_av({"swept_until": swept_until}),
                ConditionExpression=condition,
                ExpressionAttributeNames={"#pk": "pk", "#swept_until": "swept_until"},
                ExpressionAttributeValues=to_av(values),
            )
        except ClientError as exc:
            if not conflict(exc):  # a later sweep got there first: keep its mark
                raise

    def postpone(self, instance_id: str, due_at: float, new_due_at: float, *, now: float) -> bool:
        return self._update_if(
            instance_id,
            "SET #due_at = :new_due_at",
            f"{DUE_AT_IS} AND {LEASE_IS_FREE}",
            {"#due_at": "due_at", "#lease_until": "lease_until"},
            {":due_at": due_at, ":new_due_at": new_due_at, ":now": now},
        )

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
                "sk": event_sk(current.run_key, event.key),
                "type": event.type,
                "payload": event.payload,
                "sent_at": event.sent_at,
            }
            values: dict[str, Any] = {f":fin_{s.name.lower()}": s.value for s in FINISHED}
            values |= {":run": current.run, ":inc": current.incarnation}
            check = {
                "TableName": self._table,
                "Key": self._key(instance_id),
                "ConditionExpression": f"{RUN_IS} AND NOT {IS_FINISHED}",
                "ExpressionAttributeNames": {"#run": "run", "#status": "status", "#inc": "inc"},
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

    def put_event(self, instance_id: str, run: RunKey, event: EventRecord) -> None:
        item = {
            "pk": instance_id,
            "sk": event_sk(run, event.key),
            "type": event.type,
            "payload": event.payload,
            "sent_at": event.sent_at,
        }
        try:
            self._db.put_item(
                TableName=self._table,
                Item=to_av(item),
                ConditionExpression=ENTRY_IS_NEW,
                ExpressionAttributeNames={"#sk": "sk"},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise  # (a stored key is a redelivery: the first event stays)

    def settle(self, instance_id: str, due_at: float) -> bool:
        values = {f":fin_{s.name.lower()}": s.value for s in FINISHED} | {":due_at": due_at}
        return self._update_if(
            instance_id,
            "REMOVE #due_at",
            f"#due_at = :due_at AND {IS_FINISHED}",
            {"#due_at": "due_at", "#status": "status"},
            values,
        )

    def load_events(self, instance_id: str, run: RunKey, event_type: str | None = None) -> list[EventRecord]:
        prefix = run_prefix(EVENT, run) + ("" if event_type is None else f"{event_type}#")
        return [event_from(item) for item in self._query_partition(instance_id, prefix)]

    def delete_events(self, instance_id: str, run: RunKey, keys: list[str]) -> None:
        self._delete_keys([{"pk": {"S": instance_id}, "sk": {"S": event_sk(run, key)}} for key in keys])

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
        names, values = names | {"#lease_owner": "lease_owner"}, values | {":owner": owner}
        if not self._update_if(instance_id, expression, condition, names, values):
            raise LeaseLost(f"instance {instance_id!r} is no longer leased by {owner}")
