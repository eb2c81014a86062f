"""Differential test: our EventBridge pattern matcher against moto's EventBridge, through its public API
(a rule with the pattern on a bus, an SQS target, put_events, and what arrives)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from framework.core.event_patterns import matches
from tests.unit.test_event_patterns import CASES, EVENT

# Where moto is known to differ from EventBridge's documented semantics (the unit test holds
# EventBridge's answer): moto compares exact values with Python's ==, so True matches 1, and it
# matches an exact value inside an array of objects only through its own flattening.
MOTO_DIFFERS = {
    json.dumps({"detail": {"customer": {"vip": [1]}}}),
    json.dumps({"detail": {"items": {"sku": ["b-2"]}}}),
}


@pytest.fixture(scope="module")
def bus() -> Iterator[tuple[Any, Any, str]]:
    with mock_aws():
        events, sqs = boto3.client("events", "us-east-1"), boto3.client("sqs", "us-east-1")
        events.create_event_bus(Name="diff")
        yield events, sqs, "diff"


def _delivered(bus: tuple[Any, Any, str], n: int, pattern: dict[str, Any]) -> bool:
    events, sqs, name = bus
    url = sqs.create_queue(QueueName=f"diff-{n}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name=f"r{n}", EventBusName=name, EventPattern=json.dumps(pattern))
    events.put_targets(Rule=f"r{n}", EventBusName=name, Targets=[{"Id": "q", "Arn": arn}])
    entry = {"EventBusName": name, "Source": EVENT["source"], "DetailType": EVENT["detail-type"]}
    events.put_events(Entries=[{**entry, "Detail": json.dumps(EVENT["detail"])}])
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    events.remove_targets(Rule=f"r{n}", EventBusName=name, Ids=["q"])
    events.delete_rule(Name=f"r{n}", EventBusName=name)
    if got and json.dumps(pattern) not in MOTO_DIFFERS:
        arrived = json.loads(got[0]["Body"])
        assert arrived["detail"] == EVENT["detail"]
        assert matches(pattern, arrived) is True  # what moto delivers matches for us too
    return bool(got)


@pytest.mark.parametrize(("n", "case"), list(enumerate(CASES)), ids=[json.dumps(p) for p, _ in CASES])
def test_our_matcher_agrees_with_moto(
    bus: tuple[Any, Any, str], n: int, case: tuple[dict[str, Any], bool]
) -> None:
    pattern, expected = case
    delivered = _delivered(bus, n, pattern)
    if json.dumps(pattern) in MOTO_DIFFERS:
        pytest.skip("moto differs from EventBridge here; see MOTO_DIFFERS")
    assert delivered is expected
    assert matches(pattern, {**EVENT, "id": "x"}) is delivered
