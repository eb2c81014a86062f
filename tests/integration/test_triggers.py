"""Event triggers end to end on LocalRuntime (moto): objects put into the uploads bucket and events put on
the stack's bus start workflows through the inbox, once per event however often it is delivered."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from framework.api.registry import Workflow
from framework.api.triggers import trigger_of
from framework.core.logs import logger
from framework.local import LocalRuntime
from tests.integration.test_inbox import dead_letters, put, redelivered_record
from tests.unit.test_triggers import s3_eventbridge, s3_notification


def echo(event: Any, step: Any) -> Any:
    return step.do("echo", lambda: event.payload)


def wf(name: str, trigger: dict[str, Any]) -> Workflow:
    return Workflow(name, echo, trigger=trigger_of(name, trigger))


FLOWS = [
    wf("up-in", {"s3": {"bucket": "uploads", "prefix": "incoming/"}}),
    wf("up-csv", {"s3": {"bucket": "uploads", "suffix": ".csv"}}),
    wf("orders", {"eventbridge": {"source": ["shop"], "detail": {"total": [{"numeric": [">", 10]}]}}}),
]


@pytest.fixture
def rt() -> Iterator[LocalRuntime]:
    with LocalRuntime(workflows=FLOWS) as runtime:
        yield runtime


def started(rt: LocalRuntime) -> dict[str, list[Any]]:
    """Each workflow's instances' outputs (their payloads), after running to idle."""
    rt.run_until_idle()
    found: dict[str, list[Any]] = {}
    for i in rt.client.list(limit=100).instances:
        found.setdefault(i.workflow, []).append(rt.client.get(i.id).status().output)
    return found


def on_bucket(rt: LocalRuntime, message: dict[str, Any]) -> dict[str, Any]:
    """A hand-written S3 event rewritten to name the runtime's uploads bucket."""
    return json.loads(json.dumps(message).replace("stack-uploads-1a2b", rt.uploads_bucket))


def test_a_put_object_starts_each_matching_workflow_once(rt: LocalRuntime) -> None:
    rt.put_object("incoming/a b+c.csv", "hello")
    rt.put_object("incoming/notes.txt", "hi")
    rt.put_object("elsewhere/x.csv", "x")
    rt.put_object("elsewhere/x.txt", "x")  # matches no workflow: dropped
    got = started(rt)
    assert sorted(p["key"] for p in got["up-in"]) == ["incoming/a b+c.csv", "incoming/notes.txt"]
    assert sorted(p["key"] for p in got["up-csv"]) == ["elsewhere/x.csv", "incoming/a b+c.csv"]
    payload = got["up-in"][0]
    assert set(payload) == {"bucket", "key", "size", "etag", "version_id", "sequencer", "event_time"}
    assert payload["bucket"] == rt.uploads_bucket
    assert dead_letters(rt) == []  # nor the s3:TestEvent that configuring the bucket sends


def test_the_same_key_put_twice_starts_twice(rt: LocalRuntime) -> None:
    rt.put_object("incoming/r.txt", "one")
    rt.put_object("incoming/r.txt", "two")
    assert len(started(rt)["up-in"]) == 2


def test_a_redelivered_s3_event_in_either_shape_starts_one_instance(rt: LocalRuntime) -> None:
    for message in (
        s3_notification("incoming/x"),
        s3_notification("incoming/x"),
        s3_eventbridge("incoming/x"),
    ):
        put(rt, on_bucket(rt, message))
    put(rt, {"Type": "Notification", "Message": json.dumps(on_bucket(rt, s3_notification("incoming/x")))})
    assert len(started(rt)["up-in"]) == 1
    assert dead_letters(rt) == []


def test_a_redelivered_eventbridge_event_starts_one_instance(rt: LocalRuntime) -> None:
    event_id = rt.put_event("shop", "Order Placed", {"total": 12})
    rt.put_event("shop", "Order Placed", {"total": 5})  # matches no pattern
    rt.run_until_idle()
    (instance,) = rt.client.list(limit=100).instances
    assert instance.id == f"orders:eb:{event_id}"
    delivered = rt.client.get(instance.id).status().output
    put(rt, delivered)  # the same event again, as EventBridge's at-least-once delivery may
    got = started(rt)
    assert len(got["orders"]) == 1 and got["orders"][0]["detail"] == {"total": 12}
    assert dead_letters(rt) == []


def test_malformed_events_are_dead_lettered_and_the_rest_of_the_batch_goes_on(rt: LocalRuntime) -> None:
    bad = {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "s3": {}}]}
    good = on_bucket(rt, s3_notification("incoming/ok"))
    batch = {"Records": [redelivered_record("m-bad", bad), redelivered_record("m-good", good)]}
    response = rt.invoke("InboxFunction", batch)
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-bad"}]}
    put(rt, bad)
    assert len(started(rt)["up-in"]) == 1
    assert len(dead_letters(rt)) == 1


MARK = "MARK-trigger-7d3e"


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    old_stream = logger.registered_handler.setStream(stream)  # type: ignore[attr-defined]
    try:
        yield stream
    finally:
        logger.registered_handler.setStream(old_stream)  # type: ignore[attr-defined]


def test_trigger_events_never_reach_the_logs(logs: io.StringIO) -> None:
    with LocalRuntime(workflows=FLOWS, log_level="DEBUG") as rt:
        rt.put_object(f"incoming/{MARK}.txt", MARK)
        rt.put_object(f"nowhere/{MARK}.txt", MARK)  # dropped, with a log line
        rt.put_event("shop", "Order Placed", {"total": 99, "secret": MARK})
        rt.put_event("shop", MARK, {"total": 1, "secret": MARK})  # dropped
        put(rt, {"Records": [{"eventSource": "aws:s3", "eventName": MARK}]})  # not a create: dropped
        put(
            rt,
            {
                "Records": [
                    {"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "s3": {"bucket": MARK}}
                ]
            },
        )
        put(rt, {"detail-type": MARK, "source": MARK, "id": 1})
        rt.run_until_idle()
        assert len(dead_letters(rt)) == 2
    text = logs.getvalue()
    assert "matched no workflow" in text and "inbox message failed" in text
    assert MARK not in text


def test_the_file_processing_example_starts_on_an_upload() -> None:
    from examples.file_processing import file_processing

    with LocalRuntime(workflows=[file_processing]) as rt:
        rt.put_object("incoming/report.txt", "a short report")
        rt.put_object("other/ignored.txt", "not under incoming/")
        rt.run_until_idle()
        (instance,) = rt.client.list(limit=10).instances
        status = rt.client.get(instance.id).status()
        assert status.status == "complete" and status.output["key"] == "incoming/report.txt"
        saved = rt.boto3_client("s3").get_object(
            Bucket=rt.uploads_bucket, Key="verdicts/incoming/report.txt.json"
        )
        assert json.loads(saved["Body"].read()) == {"ok": True, "words": 3}
        assert rt.client.list(limit=10).instances == [instance]  # the saved verdict started nothing


def test_on_a_moto_server_as_workflows_dev_runs_it_uploads_and_bus_events_start_workflows(
    moto_server: str,
) -> None:
    """``workflows dev`` runs LocalRuntime on a moto server and the real clock: the same wiring holds."""
    with LocalRuntime(workflows=FLOWS, endpoint_url=moto_server, prefix="trig") as rt:
        stop = threading.Event()
        thread = threading.Thread(target=rt.run_forever, args=(stop,), kwargs={"idle": 0.05})
        thread.start()
        try:
            rt.put_object("incoming/dev.txt", "hi")
            rt.put_event("shop", "Order Placed", {"total": 50})
            for _ in range(200):  # up to 20 s: a poll, not a timing assert
                if len(rt.client.list(limit=10).instances) == 2:
                    break
                time.sleep(0.1)
        finally:
            stop.set()
            thread.join(10)
        assert sorted(i.workflow for i in rt.client.list(limit=10).instances) == ["orders", "up-in"]
