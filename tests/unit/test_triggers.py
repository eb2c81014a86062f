"""Which workflows an S3 or EventBridge event starts, under which ids (framework.manage.triggers), on
hand-written events: no AWS."""

from __future__ import annotations

import json
from typing import Any

import pytest

from framework.api.registry import Registry, Workflow
from framework.api.triggers import trigger_of
from framework.core.ids import is_instance_id
from framework.manage import triggers as t

ENV = {"UPLOADS_BUCKET": "stack-uploads-1a2b"}


def wf(name: str, trigger: dict[str, Any]) -> Workflow:
    return Workflow(name, lambda event, step: None, trigger=trigger_of(name, trigger))


def s3_notification(
    key: str, sequencer: str | None = "0055AED6DCD90281E5", name: str = "ObjectCreated:Put"
) -> dict[str, Any]:
    obj: dict[str, Any] = {"key": key, "size": 5, "eTag": "abc", "versionId": "v1"}
    if sequencer is not None:
        obj["sequencer"] = sequencer
    record = {
        "eventSource": "aws:s3",
        "eventName": name,
        "eventTime": "2026-12-06T10:00:00.000Z",
        "s3": {"bucket": {"name": "stack-uploads-1a2b"}, "object": obj},
    }
    return {"Records": [record]}


def s3_eventbridge(key: str, sequencer: str = "0055AED6DCD90281E5", event_id: str = "e-1") -> dict[str, Any]:
    return {
        "version": "0",
        "id": event_id,
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": "123456789012",
        "time": "2026-12-06T10:00:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:s3:::stack-uploads-1a2b"],
        "detail": {
            "bucket": {"name": "stack-uploads-1a2b"},
            "object": {"key": key, "size": 5, "etag": "abc", "version-id": "v1", "sequencer": sequencer},
            "reason": "PutObject",
        },
    }


REGISTRY = Registry(
    [
        wf("up-in", {"s3": {"bucket": "uploads", "prefix": "incoming/"}}),
        wf("up-csv", {"s3": {"bucket": "uploads", "suffix": ".csv"}}),
        wf("other-bucket", {"s3": {"bucket": "someone-elses"}}),
        wf("orders", {"eventbridge": {"source": ["shop"], "detail-type": ["Order Placed"]}}),
        Workflow("plain", lambda event, step: None),
    ]
)


def starts(message: dict[str, Any]) -> list[t.Start]:
    assert t.is_trigger_message(message)
    return t.starts(REGISTRY, t.parse(message), ENV)


def test_both_s3_shapes_of_one_put_start_the_same_instance() -> None:
    direct = starts(s3_notification("incoming/a+b%C3%A9.csv"))
    through_eventbridge = starts(s3_eventbridge("incoming/a bé.csv"))
    assert [(s.workflow, s.id) for s in direct] == [(s.workflow, s.id) for s in through_eventbridge]
    assert {s.workflow for s in direct} == {"up-in", "up-csv"}  # two workflows, one instance each
    for s in direct:
        assert s.id.startswith(f"{s.workflow}:s3:") and is_instance_id(s.id)
        assert s.params == {
            "bucket": "stack-uploads-1a2b",
            "key": "incoming/a bé.csv",
            "size": 5,
            "etag": "abc",
            "version_id": "v1",
            "sequencer": "0055AED6DCD90281E5",
            "event_time": s.params["event_time"],
        }


def test_another_sequencer_is_another_instance_and_the_same_is_the_same() -> None:
    first = starts(s3_notification("incoming/x"))
    assert starts(s3_notification("incoming/x")) == first
    assert starts(s3_notification("incoming/x", sequencer="0055AED6DCD90281F0"))[0].id != first[0].id


def test_prefix_suffix_and_bucket_filter() -> None:
    assert [s.workflow for s in starts(s3_notification("incoming/x.txt"))] == ["up-in"]
    assert [s.workflow for s in starts(s3_notification("elsewhere/x.csv"))] == ["up-csv"]
    assert starts(s3_notification("elsewhere/x.txt")) == []
    # Without UPLOADS_BUCKET the alias is a literal bucket name, which this event's bucket is not.
    assert t.starts(REGISTRY, t.parse(s3_notification("incoming/x")), {}) == []


def test_only_objects_created_start_and_the_test_event_is_ignored() -> None:
    assert starts(s3_notification("incoming/x", name="ObjectRemoved:Delete")) == []
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "stack-uploads-1a2b"}
    assert t.parse(test_event).ignored and starts(test_event) == []


def test_eventbridge_ids_are_the_event_id_or_its_hash() -> None:
    event = {
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": "Order Placed",
        "source": "shop",
        "account": "1",
        "time": "t",
        "region": "r",
        "resources": [],
        "detail": {"n": 1},
    }
    (start,) = starts(event)
    assert start.id == "orders:eb:6a7e8feb-b491-4cf7-a9f1-bf3703467718"
    assert start.params == event
    odd = starts({**event, "id": "spaces and # and " + "x" * 200})[0].id
    assert odd.startswith("orders:eb:") and is_instance_id(odd)
    assert starts({**event, "source": "bank"}) == []


def test_an_sns_envelope_is_unwrapped_once() -> None:
    inner = s3_notification("incoming/x")
    assert starts({"Type": "Notification", "Message": json.dumps(inner)}) == starts(inner)
    with pytest.raises(t.BadTriggerEventError):
        t.parse({"Type": "Notification", "Message": "not json"})


def test_a_long_workflow_name_and_a_surrogate_key_still_give_a_valid_id() -> None:
    name = "w" * 64
    obj = t.S3Object("b", "\ud800key", None, None, None, "seq", None)
    assert is_instance_id(t.s3_instance_id(name, obj))
    assert is_instance_id(t.eventbridge_instance_id(name, "6a7e8feb-b491-4cf7-a9f1-bf3703467718"))


SECRET = "MARK-secret-9f1c"


@pytest.mark.parametrize(
    "message",
    [
        {"Records": []},
        {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "s3": SECRET}]},
        {
            "Records": [
                {
                    "eventSource": "aws:s3",
                    "eventName": "ObjectCreated:Put",
                    "s3": {"bucket": {"name": SECRET}, "object": {"key": 7}},
                }
            ]
        },
        {
            "Records": [
                {
                    "eventSource": "aws:s3",
                    "eventName": "ObjectCreated:Put",
                    "s3": {"bucket": {"name": SECRET}, "object": {"key": "%ff" + SECRET}},
                }
            ]
        },
        {"Records": [{"eventSource": SECRET}]},
        {"detail-type": SECRET, "source": "shop", "id": 3},
        {"detail-type": "Object Created", "source": "aws.s3", "id": "1", "detail": {"bucket": SECRET}},
        {"detail-type": "x", "source": "shop", "id": "1", "detail": [SECRET]},
    ],
)
def test_malformed_events_say_which_field_and_never_a_value(message: dict[str, Any]) -> None:
    with pytest.raises(t.BadTriggerEventError) as caught:
        t.parse(message)
    assert SECRET not in str(caught.value) and "ff" not in str(caught.value)
