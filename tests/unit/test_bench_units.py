"""bench.units: item sizes, units and GSI write amplification against hand-computed examples, and the
meter's hooks on a moto table."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from bench.units import Index, UnitMeter, item_size, number_size, read_units, value_size, write_units


# -- sizes -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "size"),
    [
        ({"S": "abc"}, 3),
        ({"S": "héllo"}, 6),  # é is 2 bytes of UTF-8
        ({"S": "€"}, 3),
        ({"B": b"\x00\x01\x02"}, 3),  # raw bytes, not base64
        ({"BOOL": False}, 1),
        ({"NULL": True}, 1),
        ({"L": []}, 3),
        ({"M": {}}, 3),
        ({"L": [{"S": "ab"}, {"N": "1"}]}, 3 + (1 + 2) + (1 + 2)),
        ({"M": {"a": {"S": "xy"}, "bc": {"BOOL": True}}}, 3 + (1 + 1 + 2) + (1 + 2 + 1)),
        ({"M": {"l": {"L": [{"M": {}}]}}}, 3 + (1 + 1 + (3 + (1 + 3)))),
        ({"SS": ["a", "bcd"]}, 1 + 3),
        ({"NS": ["1", "22"]}, 2 + 2),
        ({"BS": [b"ab", b"c"]}, 3),
    ],
)
def test_value_sizes(value: dict[str, Any], size: int) -> None:
    assert value_size(value) == size


@pytest.mark.parametrize(
    ("number", "size"),
    [
        ("0", 1),  # no significant digit
        ("7", 2),
        ("12345", 4),  # 5 digits: 3 bytes + 1
        ("100", 2),  # trailing zeros trimmed: 1 digit
        ("0.0012", 2),  # leading zeros trimmed: 2 digits
        ("-3.14", 3),  # 3 digits
        ("1002", 3),  # inner zeros count
        ("1E+2", 2),
        ("1712345678.123456", 9),  # an epoch time to the microsecond: 16 digits
    ],
)
def test_number_sizes(number: str, size: int) -> None:
    assert number_size(number) == size
    assert value_size({"N": number}) == size


def test_item_size_counts_names_and_values() -> None:
    item = {"pk": {"S": "x"}, "n": {"N": "10"}, "m": {"M": {}}, "é": {"BOOL": True}}
    assert item_size(item) == (2 + 1) + (1 + 2) + (1 + 3) + (2 + 1)
    assert item_size(None) == 0


def test_unknown_type_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown"):
        value_size({"X": 1})


@pytest.mark.parametrize(("size", "units"), [(0, 1), (1, 1), (1024, 1), (1025, 2), (350 * 1024 + 1, 351)])
def test_write_units_per_kb(size: int, units: int) -> None:
    assert write_units(size) == units


@pytest.mark.parametrize(
    ("size", "consistent", "units"),
    [(0, True, 1.0), (0, False, 0.5), (4096, True, 1.0), (4097, True, 2.0), (4097, False, 1.0)],
)
def test_read_units_per_4_kb(size: int, consistent: bool, units: float) -> None:
    assert read_units(size, consistent=consistent) == units


# -- GSI write amplification -------------------------------------------------------------------------
DUE = Index("due", ("shard", "due_at"), ("pk", "sk"), "INCLUDE", frozenset({"status"}))
LISTED = Index("list", ("shard", "created_at"), ("pk", "sk"), "ALL")
KEYS = Index("keys", ("shard", "due_at"), ("pk", "sk"), "KEYS_ONLY")


def inst(**attrs: Any) -> dict[str, Any]:
    item = {"pk": {"S": "i-1"}, "sk": {"S": "instance"}, "shard": {"S": "3"}, "created_at": {"N": "5"}}
    for name, value in attrs.items():
        item[name] = {"N": str(value)} if isinstance(value, int) else {"S": value}
    return item


def test_index_entry_projects_keys_and_included_attributes() -> None:
    item = inst(due_at=10, status="waiting", other="x")
    assert DUE.entry(item) == {k: item[k] for k in ("pk", "sk", "shard", "due_at", "status")}
    assert KEYS.entry(item) == {k: item[k] for k in ("pk", "sk", "shard", "due_at")}
    assert LISTED.entry(item) == item
    assert DUE.entry(inst(status="waiting")) is None  # no due_at: not in the sparse index
    assert DUE.entry(None) is None


@pytest.mark.parametrize(
    ("index", "old", "new", "units"),
    [
        (DUE, inst(status="a"), inst(status="b"), 0),  # in the index neither before nor after
        (DUE, None, inst(status="a"), 0),  # a new item without the index key
        (DUE, inst(status="a"), inst(status="a", due_at=10), 1),  # enters
        (DUE, None, inst(due_at=10), 1),  # a new item enters
        (DUE, inst(due_at=10), inst(status="done"), 1),  # leaves (due_at removed)
        (DUE, inst(due_at=10), None, 1),  # the item is deleted
        (DUE, inst(due_at=10), inst(due_at=20), 2),  # key changed: delete + put
        (DUE, inst(due_at=10, status="a"), inst(due_at=10, status="b"), 1),  # projected attribute
        (DUE, inst(due_at=10, other="a"), inst(due_at=10, other="b"), 0),  # attribute not projected
        (KEYS, inst(due_at=10, status="a"), inst(due_at=10, status="b"), 0),
        (LISTED, inst(other="a"), inst(other="b"), 1),  # ALL projects every attribute
        (LISTED, inst(other="a"), inst(other="a"), 0),
    ],
)
def test_index_write_units(index: Index, old: Any, new: Any, units: int) -> None:
    assert index.write_units(old, new) == units


def test_index_writes_count_kilobytes_of_the_entry() -> None:
    big = "x" * 3000  # the entry is over 2 KB: 3 units each way
    assert LISTED.write_units(inst(other=big), inst(other=big + "y")) == 3
    assert LISTED.write_units(None, inst(other=big)) == 3
    moved = inst(other=big)
    moved["shard"] = {"S": "4"}
    assert LISTED.write_units(inst(other=big), moved) == 6  # a key change: delete 3 + put 3
    assert DUE.write_units(inst(due_at=1, other=big), inst(due_at=2, other=big)) == 2  # big not projected


def test_index_of_table_reads_a_description() -> None:
    description = {
        "KeySchema": [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": "due",
                "KeySchema": [
                    {"AttributeName": "shard", "KeyType": "HASH"},
                    {"AttributeName": "due_at", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["status"]},
            }
        ],
    }
    assert Index.of_table(description) == [DUE]
    assert Index.of_table({"KeySchema": description["KeySchema"]}) == []


# -- the meter on moto ---------------------------------------------------------------------------------
@pytest.fixture
def db() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName="t",
            AttributeDefinitions=[
                {"AttributeName": name, "AttributeType": kind}
                for name, kind in (("pk", "S"), ("sk", "S"), ("shard", "S"), ("due_at", "N"))
            ],
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": "due",
                    "KeySchema": [
                        {"AttributeName": "shard", "KeyType": "HASH"},
                        {"AttributeName": "due_at", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["status"]},
                }
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        yield client


def key(sk: str) -> dict[str, Any]:
    return {"pk": {"S": "p"}, "sk": {"S": sk}}


def test_meter_writes_failed_conditions_and_index_moves(db: Any) -> None:
    new = "attribute_not_exists(sk)"
    with UnitMeter(clients=[db]) as meter:
        db.put_item(
            TableName="t",
            Item=key("a") | {"shard": {"S": "1"}, "due_at": {"N": "5"}},
            ConditionExpression=new,
        )
        with pytest.raises(ClientError):
            db.put_item(TableName="t", Item=key("a"), ConditionExpression=new)
        db.update_item(
            TableName="t",
            Key=key("a"),
            UpdateExpression="SET due_at = :d, body = :b",
            ExpressionAttributeValues={":d": {"N": "6"}, ":b": {"S": "x" * 2000}},
        )
        db.delete_item(TableName="t", Key=key("a"))
    ops = [(c.operation, c.usage.table_write_units, c.index_units, c.failed) for c in meter.charges]
    assert ops == [
        ("PutItem", 1, {"due": 1}, False),  # a new item enters the index
        ("PutItem", 1, {}, True),  # the condition failed: the existing item's size, no index write
        ("UpdateItem", 2, {"due": 2}, False),  # now over 2 KB; due_at moved: delete + put
        ("DeleteItem", 2, {"due": 1}, False),  # the deleted item's size; it leaves the index
    ]
    assert meter.write_units == (1 + 1) + 1 + (2 + 2) + (2 + 1)
    assert meter.by_index() == {"due": 4.0}
    assert meter.by_operation()["PutItem"].calls == 2
    assert meter.charges[0].key == {"pk": "p", "sk": "a"}


def test_meter_doubles_transactions_and_counts_reads(db: Any) -> None:
    body = {"body": {"S": "y" * 1500}}  # each item just under 1.5 KB
    with UnitMeter(clients=[db]) as meter:
        db.transact_write_items(
            TransactItems=[{"Put": {"TableName": "t", "Item": key(sk) | body}} for sk in ("a", "b", "c")]
        )
        db.get_item(TableName="t", Key=key("missing"), ConsistentRead=True)
        db.get_item(TableName="t", Key=key("a"))  # eventually consistent
        db.get_item(TableName="t", Key=key("a"), ProjectionExpression="pk")  # billed whole
        expression = {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "p"}}}
        db.query(TableName="t", ConsistentRead=True, **expression)
        filtered = db.query(
            TableName="t",
            ConsistentRead=True,
            FilterExpression="#b = :none",
            ExpressionAttributeNames={"#b": "body"},
            **(expression | {"ExpressionAttributeValues": {":p": {"S": "p"}, ":none": {"S": "-"}}}),
        )
    assert filtered["Items"] == []
    units = [(c.operation, c.usage.write_units, c.usage.read_units) for c in meter.charges]
    assert units == [
        ("TransactWriteItems", 3 * 2 * 2, 0),  # 3 items of 2 KB, twice
        ("GetItem", 0, 1.0),  # a missing item, strongly consistent
        ("GetItem", 0, 0.5),
        ("GetItem", 0, 0.5),
        ("Query", 0, 2.0),  # about 4.5 KB on one page: 2 units
        ("Query", 0, 2.0),  # the filter returns nothing but read the same items
    ]
    assert meter.read_units == 6.0
    assert meter.unpriced == {}


def test_meter_unhooks_on_exit(db: Any) -> None:
    with UnitMeter(clients=[db]) as meter:
        db.put_item(TableName="t", Item=key("a"))
    db.put_item(TableName="t", Item=key("b"))
    assert len(meter.charges) == 1


def test_the_children_section_counts_what_a_child_adds() -> None:
    from bench.children import CHILDREN, children_section

    section = children_section()
    figures = {c.name: c.value for c in section.checks}
    extra_db = figures["DynamoDB calls per child beyond an instance of its own"]
    # At least the invoke entry's two writes, the report's put and the settle, per child.
    assert 4 <= extra_db < 12
    assert figures[f"DynamoDB reads of the parent's last invocation (the join of {CHILDREN} children)"] <= 2
    assert section.data["with_parent"].get("dynamodb.TransactWriteItems", 0) == 0  # a report is one put


def test_the_fanout_section_shows_the_concurrency_and_a_join_that_does_not_grow() -> None:
    from bench.fanout import CONCURRENCY, ITEM_SECONDS, fanout_section

    items = 20
    section = fanout_section(items=items, scale_items=0)
    figures = {c.name: c.value for c in section.checks}
    for concurrency in CONCURRENCY:
        at = f"max_concurrency {concurrency}"
        # The items run max_concurrency at once, each its ITEM_SECONDS: exactly, on the virtual clock.
        assert figures[f"{at}: virtual seconds to run the map"] == -(-items // concurrency) * ITEM_SECONDS
        assert figures[f"{at}: DynamoDB reads of the parent's replay after the join"] <= 1
        assert 6 < figures[f"{at}: DynamoDB calls per item"] < 20


def test_the_fanout_dev_section_runs_the_map_on_dev_and_counts_at_the_endpoint() -> None:
    from bench.fanout_dev import MESSAGES, fanout_dev_section

    items, concurrency = 30, 10
    section = fanout_dev_section(items=items, concurrency=concurrency)
    at = f"{items}-item map at max_concurrency {concurrency}"
    done = next(c for c in section.checks if c.name.startswith(f"{at} on workflows dev: completed"))
    assert (done.value, done.passed) == (1, True), done.note
    assert section.data["local_completed"] and section.data["dev_exit_code"] == 0
    figures = {c.name: c.value for c in section.checks}
    assert figures[f"{at}: wall time on workflows dev / on LocalRuntime"] > 0
    # Counted at the endpoint: every child is created (a PutItem) and started (a message) at least once.
    assert figures[f"{at} on workflows dev: DynamoDB calls per item (at the endpoint)"] > 2
    assert figures[f"{at} on workflows dev: SQS messages sent per item (at the endpoint)"] >= 1
    calls = section.data["dev_calls"]
    assert calls["dynamodb.PutItem"] >= items and calls[MESSAGES] >= calls["sqs.SendMessage"]


# -- results ----------------------------------------------------------------------------------------
def test_a_partial_run_replaces_its_sections_and_keeps_the_others(tmp_path: Any) -> None:
    import json

    from bench.report import Section, write_results

    def section(key: str, title: str) -> Section:
        s = Section(title)
        s.key = key
        return s

    path = tmp_path / "results.json"
    write_results({"run": 1}, [section("chain", "old chain"), section("sleep", "old sleep")], path)
    write_results({"run": 2}, [section("sleep", "new sleep"), section("limits", "new")], path, merge=True)
    doc = json.loads(path.read_text())
    assert doc["run"] == 2
    assert [(s["key"], s["title"]) for s in doc["sections"]] == [
        ("chain", "old chain"),
        ("sleep", "new sleep"),
        ("limits", "new"),
    ]
    write_results({"run": 3}, [section("chain", "only")], path)  # a full run writes only its own
    assert [s["key"] for s in json.loads(path.read_text())["sections"]] == ["chain"]


def test_every_section_of_make_bench_imports() -> None:
    """A section whose module fails to import would only show in a bench run: import each here, in
    a fresh interpreter (the sections register workflows in the process-wide registry)."""
    import subprocess
    import sys

    code = (
        "import importlib\nfrom bench.__main__ import SECTIONS\n"
        "for key, module, function in SECTIONS:\n"
        "    assert callable(getattr(importlib.import_module(module), function)), key\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
