"""DynamoDB capacity units computed from item sizes, as AWS bills them (moto's ConsumedCapacity is wrong).

Usage, around any ``framework.local.LocalRuntime`` run on in-process moto::

    with UnitMeter(rt) as meter:
        rt.client.create(...)
        rt.run_until_idle()
    meter.write_units, meter.read_units      # everything metered, GSI writes included in write_units
    meter.usage()                            # the same as one Usage; subtract two to get a delta
    meter.by_operation()                     # {"PutItem": Usage, "UpdateItem": Usage, ...}
    meter.by_index()                         # {"due-index": write units, ...}
    meter.charges                            # one Charge per request, in order
    meter.unpriced                           # data-plane operations it has no rule for (should be empty)

A ``Charge`` names the first item a write touched (``{"pk": ..., "sk": ...}``), or for a Query on an
index ``{"IndexName": ...}``, so that a benchmark can split units by item kind or phase.

The meter hooks the runtime's engine DynamoDB client (``rt.env.store``), through which the worker, the
sweeper, the cleanup and ``rt.client`` all go; pass more clients with ``clients=``. It reads the items
that a request touches with a client of its own, which is neither hooked nor counted in
``rt.aws_calls``: the item before a write (in ``before-parameter-build``) and after it (``after-call``).

Rules (AWS developer guide: "Item sizes and formats", "read and write operations", GSI writes):

- Item size: the sum over attributes of the name's UTF-8 bytes plus the value's size. String: UTF-8
  bytes; number: 1 byte per 2 significant digits + 1; binary: raw bytes; bool and null: 1; list and map:
  3 + 1 per element + the elements (a map's keys count as names); a set: the sum of its elements.
- Write: 1 unit per KB (1024 bytes) of the larger of the item before and after, at least 1; a delete
  charges the deleted item. A write whose condition fails charges the existing item (at least 1) and
  writes no index. TransactWriteItems charges each action twice, a ConditionCheck too, and a cancelled
  transaction charges each action as a failed write, twice (an assumption: AWS does not document it).
  BatchWriteItem charges each item on its own.
- GSI write, per index, from the index entries before and after (table keys + index keys + projected
  attributes; an item lacking an index key attribute is not in the index): entering the index, 1 write
  of the new entry; leaving, 1 of the old; index key changed, a delete and a put (2); key unchanged but
  a projected attribute changed, 1 of the larger entry; nothing projected changed, 0. Each write is 1
  unit per KB of its entry. Index writes of a transaction are not doubled (they propagate after it).
- Read: 1 unit per 4 KB strongly consistent, half that eventually consistent (GSI reads always are).
  GetItem charges the whole item, even with a projection; a missing item charges 1 (or 0.5). Query and
  Scan charge the sum of the items evaluated on each page, before any filter, rounded up per page, at
  least 1 (or 0.5) per page. BatchGetItem charges each item on its own; TransactGetItems twice.
"""

from __future__ import annotations

import math
import re
import threading
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

KB = 1024
READ_BLOCK = 4 * KB
TRANSACTION = 2  # TransactWriteItems and TransactGetItems bill twice the units of a plain request

AttributeValue = Mapping[str, Any]
Item = Mapping[str, AttributeValue]


# -- sizes -----------------------------------------------------------------------------------------
def _utf8(text: str) -> int:
    return len(text.encode())


def _blob(value: Any) -> int:
    return len(value.encode()) if isinstance(value, str) else len(value)


def number_size(text: str) -> int:
    """Bytes of a DynamoDB number: 1 per 2 significant digits (leading and trailing zeros trimmed) + 1."""
    mantissa = str(Decimal(text).copy_abs()).lower().split("e")[0].replace(".", "")
    digits = len(mantissa.strip("0"))
    return math.ceil(digits / 2) + 1


def value_size(value: AttributeValue) -> int:
    """Bytes of one attribute value (without its name), in the wire shape ``{"S": "..."}``."""
    (kind, inner), *rest = value.items()
    if rest:
        raise ValueError(f"an attribute value has exactly one type, got {sorted(value)}")
    if kind == "S":
        return _utf8(inner)
    if kind == "N":
        return number_size(inner)
    if kind == "B":
        return _blob(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(_utf8(s) for s in inner)
    if kind == "NS":
        return sum(number_size(n) for n in inner)
    if kind == "BS":
        return sum(_blob(b) for b in inner)
    if kind == "L":
        return 3 + sum(1 + value_size(v) for v in inner)
    if kind == "M":
        return 3 + sum(1 + _utf8(k) + value_size(v) for k, v in inner.items())
    raise ValueError(f"unknown attribute value type {kind!r}")


def item_size(item: Item | None) -> int:
    """Bytes of an item: each attribute's name and value. None (no item) is 0."""
    return sum(_utf8(name) + value_size(v) for name, v in (item or {}).items())


def write_units(size: int) -> int:
    """Write units of one item write of ``size`` bytes: 1 per KB, at least 1."""
    return max(1, math.ceil(size / KB))


def read_units(size: int, *, consistent: bool) -> float:
    """Read units of one read of ``size`` bytes (an item, or a page's sum): 1 per 4 KB, at least 1;
    half for an eventually consistent read."""
    blocks = max(1, math.ceil(size / READ_BLOCK))
    return float(blocks) if consistent else blocks / 2


# -- global secondary indexes ----------------------------------------------------------------------
@dataclass(frozen=True)
class Index:
    """A GSI as far as billing goes: its key attributes and what it projects."""

    name: str
    keys: tuple[str, ...]  # the index's hash and range attributes
    table_keys: tuple[str, ...]
    projection: str = "ALL"  # ALL, KEYS_ONLY or INCLUDE
    include: frozenset[str] = frozenset()

    @classmethod
    def of_table(cls, description: Mapping[str, Any]) -> list[Index]:
        """The GSIs of a ``DescribeTable`` ``Table`` description."""
        table_keys = tuple(k["AttributeName"] for k in description["KeySchema"])
        return [
            cls(
                g["IndexName"],
                tuple(k["AttributeName"] for k in g["KeySchema"]),
                table_keys,
                g["Projection"]["ProjectionType"],
                frozenset(g["Projection"].get("NonKeyAttributes", ())),
            )
            for g in description.get("GlobalSecondaryIndexes", [])
        ]

    def entry(self, item: Item | None) -> dict[str, AttributeValue] | None:
        """The index entry of ``item``: None if the item lacks an index key attribute."""
        if item is None or any(k not in item for k in self.keys):
            return None
        if self.projection == "ALL":
            return dict(item)
        wanted = {*self.table_keys, *self.keys} | (self.include if self.projection == "INCLUDE" else set())
        return {k: v for k, v in item.items() if k in wanted}

    def write_units(self, old: Item | None, new: Item | None) -> int:
        """Write units that a table write from ``old`` to ``new`` costs in this index."""
        before, after = self.entry(old), self.entry(new)
        if before is None and after is None:
            return 0
        if before is None:
            return write_units(item_size(after))
        if after is None:
            return write_units(item_size(before))
        if any(before[k] != after[k] for k in self.keys):
            return write_units(item_size(before)) + write_units(item_size(after))
        if before == after:
            return 0
        return write_units(max(item_size(before), item_size(after)))


# -- what was charged ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Usage:
    """Totals over some requests. ``write_units`` is what AWS bills: the table's plus the indexes'."""

    calls: int = 0
    table_write_units: float = 0.0
    index_write_units: float = 0.0
    read_units: float = 0.0

    @property
    def write_units(self) -> float:
        return self.table_write_units + self.index_write_units

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.calls + other.calls,
            self.table_write_units + other.table_write_units,
            self.index_write_units + other.index_write_units,
            self.read_units + other.read_units,
        )

    def __sub__(self, other: Usage) -> Usage:
        return Usage(
            self.calls - other.calls,
            self.table_write_units - other.table_write_units,
            self.index_write_units - other.index_write_units,
            self.read_units - other.read_units,
        )

    def per(self, n: float) -> dict[str, float]:
        """The figures divided by ``n``, as a dict (for results.json)."""
        return {
            "calls": self.calls / n,
            "write_units": self.write_units / n,
            "table_write_units": self.table_write_units / n,
            "index_write_units": self.index_write_units / n,
            "read_units": self.read_units / n,
        }


@dataclass(frozen=True)
class Charge:
    """One request: its operation, the key of the first item it touched (``{"pk": "...", ...}`` as
    plain strings), what it cost, and whether its condition failed (or its transaction was cancelled)."""

    operation: str
    key: dict[str, str]
    usage: Usage
    index_units: dict[str, float] = field(default_factory=dict)
    failed: bool = False


def _plain_key(key: Item | None) -> dict[str, str]:
    return {k: str(next(iter(v.values()))) for k, v in (key or {}).items()}


_REFERENCE = re.compile(r"[#:][A-Za-z0-9_]+")
WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})
READS = frozenset({"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"})
# Query and Scan parameters that narrow what a page returns, but not what it bills.
NARROWING = frozenset(
    {
        "FilterExpression",
        "ProjectionExpression",
        "Select",
        "AttributesToGet",
        "QueryFilter",
        "ScanFilter",
        "ConditionalOperator",
    }
)
# Control-plane and metadata calls: no capacity units.
FREE = frozenset({"DescribeTable", "ListTables", "DescribeTimeToLive", "DescribeContinuousBackups"})


_session: Any = None  # one boto3 session for every meter's own client


class UnitMeter:
    """Meters the DynamoDB requests made through ``rt``'s engine client (and ``clients``) while inside
    ``with``, one ``Charge`` each, in the order they complete. Safe to use from several threads."""

    def __init__(self, rt: Any = None, *, clients: Iterable[Any] = ()) -> None:
        hooked = list(clients)
        if rt is not None:
            engine = getattr(getattr(getattr(rt, "env", None), "store", None), "_db", None)
            if engine is None:
                raise TypeError("UnitMeter needs a LocalRuntime whose env.store is a DynamoStore")
            hooked.insert(0, engine)
        if not hooked:
            raise ValueError("UnitMeter needs a runtime or a client to hook")
        self._hooked = hooked
        self._id = f"unit-meter-{uuid.uuid4().hex}"
        self._quiet: Any = None
        self._tables: dict[str, tuple[tuple[str, ...], list[Index]]] = {}
        self._lock = threading.Lock()
        self.charges: list[Charge] = []
        self.unpriced: Counter[str] = Counter()  # data-plane operations with no rule here

    # -- the hooks -------------------------------------------------------------------------------
    def __enter__(self) -> UnitMeter:
        import boto3

        global _session
        if _session is None:
            _session = boto3.session.Session()  # loading the service models is what takes time: once
        first = self._hooked[0]
        # A plain client on the same endpoint: its reads go through no hook and no aws_calls counter.
        self._quiet = _session.client(
            "dynamodb", region_name=first.meta.region_name, endpoint_url=first.meta.endpoint_url
        )
        for client in self._hooked:
            events = client.meta.events
            events.register_last("before-parameter-build.dynamodb", self._before, unique_id=self._id + "b")
            events.register_last("after-call.dynamodb", self._after, unique_id=self._id + "a")
        return self

    def __exit__(self, *exc: object) -> None:
        for client in self._hooked:
            events = client.meta.events
            events.unregister("before-parameter-build.dynamodb", unique_id=self._id + "b")
            events.unregister("after-call.dynamodb", unique_id=self._id + "a")

    def _before(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        op = model.name
        # Each item a write touches, as (table, key), with the item as it stands before the write.
        before = [(t, self._get(*t)) for t in self._targets(op, params)] if op in WRITES else []
        context[self._id] = (op, params, before)

    def _after(self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        stashed = context.pop(self._id, None)
        if stashed is None:
            return
        op, params, before = stashed
        code = parsed.get("Error", {}).get("Code", "") if http_response.status_code >= 300 else ""
        if code and code not in ("ConditionalCheckFailedException", "TransactionCanceledException"):
            return  # rejected before any item was read or written (validation, throttling)
        if op in WRITES:
            charge = self._write(op, params, before, failed=bool(code))
        elif op in READS:
            charge = self._read(op, params, parsed)
        else:
            if op not in FREE:
                with self._lock:
                    self.unpriced[op] += 1
            charge = Charge(op, {}, Usage(calls=1))
        with self._lock:
            self.charges.append(charge)

    # -- item look-ups (unhooked) ----------------------------------------------------------------
    def _schema(self, table: str) -> tuple[tuple[str, ...], list[Index]]:
        if table not in self._tables:
            description = self._quiet.describe_table(TableName=table)["Table"]
            keys = tuple(k["AttributeName"] for k in description["KeySchema"])
            self._tables[table] = (keys, Index.of_table(description))
        return self._tables[table]

    def _get(self, table: str, key: Item) -> dict[str, Any] | None:
        found = self._quiet.get_item(TableName=table, Key=dict(key), ConsistentRead=True).get("Item")
        return dict(found) if found is not None else None

    def _targets(self, op: str, params: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """(table, key) of each item that a write touches, in request order."""

        def target(table: str, item: Item) -> tuple[str, dict[str, Any]]:
            return table, {k: item[k] for k in self._schema(table)[0]}

        if op == "PutItem":
            return [target(params["TableName"], params["Item"])]
        if op in ("UpdateItem", "DeleteItem"):
            return [target(params["TableName"], params["Key"])]
        if op == "BatchWriteItem":
            return [
                target(table, r["PutRequest"]["Item"] if "PutRequest" in r else r["DeleteRequest"]["Key"])
                for table, requests in params["RequestItems"].items()
                for r in requests
            ]
        found = []
        for action in params["TransactItems"]:
            (kind, body), *_ = action.items()
            found.append(target(body["TableName"], body["Item"] if kind == "Put" else body["Key"]))
        return found

    # -- writes ----------------------------------------------------------------------------------
    def _write(
        self, op: str, params: dict[str, Any], before: list[tuple[Any, Any]], *, failed: bool
    ) -> Charge:
        table_units = 0.0
        index_units: Counter[str] = Counter()
        factor = TRANSACTION if op == "TransactWriteItems" else 1
        for ((table, key), old), (kind, put) in zip(before, self._actions(op, params), strict=True):
            if failed or kind == "ConditionCheck":
                table_units += factor * write_units(item_size(old))
                continue
            new = None if kind == "Delete" else put if kind == "Put" else self._get(table, key)
            table_units += factor * write_units(max(item_size(old), item_size(new)))
            for index in self._schema(table)[1]:
                units = index.write_units(old, new)
                if units:
                    index_units[index.name] += units
        key = _plain_key(before[0][0][1]) if before else {}
        usage = Usage(1, table_units, float(sum(index_units.values())), 0.0)
        return Charge(op, key, usage, {k: float(v) for k, v in index_units.items()}, failed)

    @staticmethod
    def _actions(op: str, params: dict[str, Any]) -> list[tuple[str, Item | None]]:
        """Each item write of a request as (Put | Update | Delete | ConditionCheck, the put item)."""
        if op == "PutItem":
            return [("Put", params["Item"])]
        if op in ("UpdateItem", "DeleteItem"):
            return [(op.removesuffix("Item"), None)]
        if op == "BatchWriteItem":
            return [
                ("Put", r["PutRequest"]["Item"]) if "PutRequest" in r else ("Delete", None)
                for requests in params["RequestItems"].values()
                for r in requests
            ]
        found: list[tuple[str, Item | None]] = []
        for action in params["TransactItems"]:
            (kind, body), *_ = action.items()
            found.append((kind, body.get("Item")))
        return found

    # -- reads -----------------------------------------------------------------------------------
    def _read(self, op: str, params: dict[str, Any], parsed: dict[str, Any]) -> Charge:
        if op == "GetItem":
            item = parsed.get("Item")
            if item is not None and ("ProjectionExpression" in params or "AttributesToGet" in params):
                item = self._get(params["TableName"], params["Key"])  # billed whole
            units = read_units(item_size(item), consistent=bool(params.get("ConsistentRead")))
            return Charge(op, _plain_key(params["Key"]), Usage(1, read_units=units))
        if op in ("Query", "Scan"):
            items = parsed.get("Items", [])
            if NARROWING.intersection(params):
                items = self._unfiltered(op, params)
            consistent = bool(params.get("ConsistentRead")) and "IndexName" not in params
            units = read_units(sum(item_size(i) for i in items), consistent=consistent)
            key = {"IndexName": params["IndexName"]} if "IndexName" in params else {}
            return Charge(op, key, Usage(1, read_units=units))
        if op == "BatchGetItem":
            units = 0.0
            for table, request in params["RequestItems"].items():
                consistent = bool(request.get("ConsistentRead"))
                for key in request["Keys"]:
                    units += read_units(item_size(self._get(table, key)), consistent=consistent)
            return Charge(op, {}, Usage(1, read_units=units))
        units = 0.0
        for action in params["TransactItems"]:
            body = action["Get"]
            item = self._get(body["TableName"], body["Key"])
            units += TRANSACTION * read_units(item_size(item), consistent=True)
        return Charge(op, {}, Usage(1, read_units=units))

    def _unfiltered(self, op: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        """The items a filtered or projected page evaluated: the same page again, unfiltered and whole."""
        again = {k: v for k, v in params.items() if k not in NARROWING}
        # DynamoDB rejects names and values that no remaining expression uses.
        used = set(_REFERENCE.findall(again.get("KeyConditionExpression", "")))
        for field_name in ("ExpressionAttributeNames", "ExpressionAttributeValues"):
            if field_name in again:
                kept = {k: v for k, v in again[field_name].items() if k in used}
                if kept:
                    again[field_name] = kept
                else:
                    del again[field_name]
        call = self._quiet.query if op == "Query" else self._quiet.scan
        return list(call(**again).get("Items", []))

    # -- results ---------------------------------------------------------------------------------
    def usage(self) -> Usage:
        """Totals so far. Take one before and one after a phase, and subtract, to meter the phase."""
        with self._lock:
            return sum((c.usage for c in self.charges), Usage())

    @property
    def write_units(self) -> float:
        """Write units so far, table and GSIs."""
        return self.usage().write_units

    @property
    def read_units(self) -> float:
        return self.usage().read_units

    @property
    def index_write_units(self) -> float:
        return self.usage().index_write_units

    def by_operation(self, since: int = 0) -> dict[str, Usage]:
        """Totals per operation ("PutItem", ...) over ``charges[since:]``."""
        found: dict[str, Usage] = {}
        with self._lock:
            for c in self.charges[since:]:
                found[c.operation] = found.get(c.operation, Usage()) + c.usage
        return dict(sorted(found.items()))

    def by_index(self, since: int = 0) -> dict[str, float]:
        """GSI write units per index over ``charges[since:]``."""
        found: Counter[str] = Counter()
        with self._lock:
            for c in self.charges[since:]:
                found.update(c.index_units)
        return {k: float(v) for k, v in sorted(found.items())}
