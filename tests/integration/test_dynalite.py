"""What dynalite (a second DynamoDB implementation, tests/dynalite.py) shows that moto hides: a table is
CREATING for a while after CreateTable, and a failed condition may come back without the item."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from framework.local.resources import create_resources
from framework.local.template import load_stack
from tests.dynalite import client, new_table, split_runtime
from tests.integration import workflows as w


@pytest.fixture
def db(dynalite: str) -> Any:
    return client(dynalite)


@pytest.fixture
def moto() -> Iterator[dict[str, Any]]:
    """In-process moto for the queues and the bucket (a client with an endpoint of its own, such as
    dynalite's, is passed through to it)."""
    with mock_aws():
        yield {s: boto3.client(s, region_name="us-east-1") for s in ("sqs", "s3")}


def test_dynalite_lacks_what_the_skips_say(db: Any) -> None:
    """The reasons given where tests skip on dynalite (tests/dynalite.py), checked: when a dynalite
    release adds one of these, this fails, and the skip can go."""
    name = new_table(db)
    with pytest.raises(ClientError, match="UnknownOperationException"):
        db.transact_write_items(
            TransactItems=[{"Put": {"TableName": name, "Item": {"pk": {"S": "a"}, "sk": {"S": "b"}}}}]
        )
    with pytest.raises(ClientError, match="UnknownOperationException"):
        db.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "x"}
        )
    db.put_item(TableName=name, Item={"pk": {"S": "a"}, "sk": {"S": "b"}})
    with pytest.raises(ClientError) as failed:
        db.put_item(
            TableName=name,
            Item={"pk": {"S": "a"}, "sk": {"S": "b"}},
            ConditionExpression="attribute_not_exists(pk)",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    assert failed.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert "Item" not in failed.value.response  # ignored: the store reads the item instead


def test_the_local_table_is_ready_for_writes_when_it_is_created(db: Any, moto: dict[str, Any]) -> None:
    stack = load_stack(prefix="ready")
    # The table alone, so that nothing else takes time between its creation and the look below; and
    # without its TTL, which dynalite has not.
    stack.resources = {"Table": stack.resources["Table"]}
    stack.resources["Table"]["Properties"].pop("TimeToLiveSpecification")
    create_resources(stack, db, moto["sqs"], moto["s3"])
    # At once: dynalite keeps a new table CREATING for 200 ms, and refuses writes to it until then.
    table = db.describe_table(TableName=stack.physical["Table"])["Table"]
    assert table["TableStatus"] == "ACTIVE"
    assert {i["IndexStatus"] for i in table["GlobalSecondaryIndexes"]} == {"ACTIVE"}
    db.put_item(TableName=stack.physical["Table"], Item={"pk": {"S": "a"}, "sk": {"S": "instance"}})
    create_resources(stack, db, moto["sqs"], moto["s3"])  # again: the same table, found


def test_the_table_is_waited_for_before_anything_else_touches_it() -> None:
    """On moto too: the waiter's DescribeTable comes between CreateTable and the first other call."""
    calls: list[str] = []
    with mock_aws():
        clients = {s: boto3.client(s, region_name="us-east-1") for s in ("dynamodb", "sqs", "s3")}
        clients["dynamodb"].meta.events.register(
            "before-call.dynamodb.*", lambda model, **_: calls.append(model.name)
        )
        stack = load_stack(prefix="order")
        create_resources(stack, clients["dynamodb"], clients["sqs"], clients["s3"])
        assert calls == ["CreateTable", "DescribeTable", "DescribeTimeToLive", "UpdateTimeToLive"]
        calls.clear()
        create_resources(stack, clients["dynamodb"], clients["sqs"], clients["s3"])
        assert calls == ["CreateTable", "DescribeTable", "DescribeTimeToLive"]  # found, already ACTIVE


def test_a_local_runtime_with_its_table_on_dynalite_runs_workflows(dynalite: str) -> None:
    """LocalRuntime (virtual clock, queues and bucket on in-process moto) with the table on dynalite:
    leases, journal, release, and a lease refused to a duplicate, on the second implementation."""
    with split_runtime(dynalite, workflows=[w.chain]) as rt:
        inst = rt.client.create("it-chain", {"steps": 3}, id="d1")  # the first write, right after start
        rt.run_until_idle()
        assert inst.status().output == {"total": 3}
        assert [e.name for e in inst.history()] == ["step 0", "step 1", "step 2"]
        # A duplicate wake-up of a finished instance: the lease is refused with the instance as stored.
        body = '{"id":"d1"}'
        rt.boto3_client("sqs").send_message(QueueUrl=rt.queue_url, MessageBody=body)
        rt.run_until_idle()
        assert rt.invocations["WorkerFunction"] == 2 and inst.status().status == "complete"
