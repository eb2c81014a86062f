"""The inbox queue: outside producers start instances and send events through SQS."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from framework.local import LocalContext, LocalRuntime
from handlers import inbox
from tests.integration import workflows as w


@pytest.fixture
def rt() -> Iterator[LocalRuntime]:
    with LocalRuntime(workflows=[w.chain, w.approval, w.typed]) as runtime:
        yield runtime


def put(rt: LocalRuntime, message: Any) -> None:
    body = message if isinstance(message, str) else json.dumps(message)
    rt.boto3_client("sqs").send_message(QueueUrl=rt.inbox_url, MessageBody=body)


def dead_letters(rt: LocalRuntime) -> list[str]:
    sqs = rt.boto3_client("sqs")
    url = rt._stack.urls["InboxDeadLetterQueue"]
    return [m["Body"] for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])]


def redelivered_record(message_id: str, body: Any) -> dict[str, Any]:
    """One SQS record as the inbox's event source delivers it (the same each time it comes back)."""
    return {
        "messageId": message_id,
        "receiptHandle": "r",
        "body": json.dumps(body),
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1800000000000"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:inbox",
        "awsRegion": "us-east-1",
    }


def test_create_through_the_inbox_and_duplicates_count_as_success(rt: LocalRuntime) -> None:
    put(rt, {"action": "create", "workflow": "it-typed", "id": "q1", "params": {"sku": "s", "quantity": 1}})
    put(rt, {"action": "create", "workflow": "it-typed", "id": "q1", "params": {"sku": "s", "quantity": 1}})
    rt.run_until_idle()
    assert rt.client.get("q1").status().output == {"sku": "s", "total": 3}
    assert dead_letters(rt) == []


def test_conflicting_creates_and_malformed_messages_reach_the_dead_letter_queue(rt: LocalRuntime) -> None:
    put(rt, {"action": "create", "workflow": "it-typed", "id": "q2", "params": {"sku": "s", "quantity": 1}})
    bad = [
        {"action": "create", "workflow": "it-typed", "id": "q2", "params": {"sku": "other", "quantity": 1}},
        "not json",
        {"action": "launch", "workflow": "it-chain"},
        {"action": "create", "workflow": "nope"},
        {"action": "create", "workflow": "it-typed", "params": {"sku": 1}},
        {"action": "event", "instance_id": "ghost", "type": "x"},
    ]
    for message in bad:
        put(rt, message)
    rt.run_until_idle()
    assert rt.client.get("q2").status().status == "complete"
    assert len(dead_letters(rt)) == len(bad)


def test_events_through_the_inbox_wake_the_wait_once(rt: LocalRuntime) -> None:
    rt.client.create("it-approval", id="ap")
    rt.advance(0)
    put(rt, {"action": "event", "instance_id": "ap", "type": "approved", "payload": {"by": "inbox"}})
    rt.advance(0)
    assert rt.client.get("ap").status().output == {"by": "inbox", "escalated": False}


def test_a_redelivered_event_is_kept_once(rt: LocalRuntime) -> None:
    rt.client.create("it-approval", id="ap2")
    rt.advance(0)
    body = {"action": "event", "instance_id": "ap2", "type": "approved", "payload": {"by": "x"}}
    record = redelivered_record("m-1", body)
    context = LocalContext("InboxFunction", rt.clock, rt.clock.now() + 30)
    for _ in range(2):
        assert inbox.handler({"Records": [record]}, context) == {"batchItemFailures": []}
    events = [e for e in rt.client.get("ap2").history() if e.kind == "event"]
    assert len(events) == 1


def test_a_redelivered_create_without_an_id_starts_one_instance(rt: LocalRuntime) -> None:
    context = LocalContext("InboxFunction", rt.clock, rt.clock.now() + 30)
    body = {"action": "create", "workflow": "it-chain", "params": {"steps": 1}}
    record = redelivered_record("0f0e7a4c-3d7e-4a39-9d1b-4a8f9d0c1b2a", body)
    for _ in range(2):
        assert inbox.handler({"Records": [record]}, context) == {"batchItemFailures": []}
    assert [i.id for i in rt.client.list().instances] == [f"inbox-{record['messageId']}"]


def test_a_create_with_the_new_id_characters_and_its_duplicate_in_another_key_order(rt: LocalRuntime) -> None:
    message = {"action": "create", "workflow": "it-typed", "id": "orders/2024/7"}
    put(rt, message | {"params": {"sku": "s", "quantity": 1}})
    put(rt, message | {"params": {"quantity": 1, "sku": "s"}})  # the same params, keys in another order
    put(rt, {"action": "event", "instance_id": "ana@example.com", "type": "x"})  # a valid id, no instance
    rt.run_until_idle()
    assert rt.client.get("orders/2024/7").status().output == {"sku": "s", "total": 3}
    assert len(dead_letters(rt)) == 1  # the event for an unknown instance only
