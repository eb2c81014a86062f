"""handlers/api.py driven with real API Gateway HTTP API (v2) proxy events, on moto."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from framework import cli
from framework.local import LocalContext, LocalRuntime
from handlers import api
from tests.integration import workflows as w
from tests.integration.apigw import http_event


class Api:
    def __init__(self, rt: LocalRuntime) -> None:
        self.rt = rt

    def __call__(self, method: str, path: str, body: Any = None, **kwargs: Any) -> tuple[int, Any]:
        context = LocalContext("ApiFunction", self.rt.clock, self.rt.clock.now() + 30)
        response = api.handler(http_event(method, path, body, **kwargs), context)
        assert response["headers"]["Content-Type"].startswith("application/json")
        return response["statusCode"], json.loads(response["body"])


@pytest.fixture
def rt() -> Iterator[LocalRuntime]:
    with LocalRuntime(workflows=[w.chain, w.typed, w.approval, w.sleepy, w.refundable]) as runtime:
        yield runtime


@pytest.fixture
def call(rt: LocalRuntime) -> Api:
    return Api(rt)


def test_create_status_history_and_list(rt: LocalRuntime, call: Api) -> None:
    code, body = call(
        "POST", "/workflows/it-typed/instances", {"id": "o1", "params": {"sku": "a", "quantity": 2}}
    )
    assert (code, body) == (201, {"id": "o1", "status": "queued"})
    code, body = call("POST", "/workflows/it-typed/instances", {"params": {"sku": "b", "quantity": 1}})
    assert code == 201 and len(body["id"]) == 36
    rt.run_until_idle()
    code, body = call("GET", "/instances/o1")
    assert code == 200
    assert (
        body["status"] == "complete" and body["output"] == {"sku": "a", "total": 6} and body["error"] is None
    )
    assert set(body) == {
        "id",
        "workflow",
        "status",
        "output",
        "error",
        "created_at",
        "updated_at",
        "parent_id",
        "version",
        "wait",
        "waits",
        "running_step",
        "running_steps",
        "counts",
    }
    assert body["counts"] == {"steps_done": 1, "steps_failed": 0, "retries": 0, "failures": 0}
    assert (body["wait"], body["waits"], body["running_step"], body["running_steps"]) == (None, [], None, [])
    assert body["parent_id"] is None  # set on child instances (step.invoke)
    assert body["version"] is None  # it-typed declares no version
    code, body = call("GET", "/instances/o1/history")
    assert code == 200 and [e["name"] for e in body["entries"]] == ["price"]
    assert body["entries"][0]["attempts"][0]["error"] is None
    code, body = call("GET", "/workflows/it-typed/instances", query={"limit": "1"})
    assert code == 200 and len(body["instances"]) == 1 and body["cursor"]
    code, body2 = call("GET", "/workflows/it-typed/instances", query={"limit": "1", "cursor": body["cursor"]})
    assert code == 200 and len(body2["instances"]) == 1 and body2["cursor"] is None
    assert body["instances"][0]["id"] != body2["instances"][0]["id"]
    code, body = call("GET", "/workflows/it-typed/instances", query={"status": "errored"})
    assert (code, body["instances"]) == (200, [])


def test_status_says_what_the_instance_waits_for(rt: LocalRuntime, call: Api) -> None:
    from framework.core.durations import from_epoch

    assert call("POST", "/workflows/it-approval/instances", {"id": "wt"})[0] == 201
    asked = rt.clock.now()
    rt.advance(0)
    code, body = call("GET", "/instances/wt")
    until = from_epoch(asked + 86400).isoformat()
    wait = {"kind": "event", "name": "approval", "until": until, "event_type": "approved"}
    wait |= {"attempt": None, "child_id": None}
    assert code == 200 and body["status"] == "waiting"
    assert (body["wait"], body["waits"]) == (wait, [wait])
    assert body["counts"] == {"steps_done": 1, "steps_failed": 0, "retries": 0, "failures": 0}
    code, listed = call("GET", "/workflows/it-approval/instances")
    assert code == 200 and listed["instances"][0]["wait"] == wait  # the list shows it too, at no cost


def test_batch(rt: LocalRuntime, call: Api) -> None:
    code, body = call(
        "POST", "/workflows/it-chain/instances/batch", {"instances": [{"id": "b1"}, {"params": {"steps": 2}}]}
    )
    assert code == 201 and [i["status"] for i in body["instances"]] == ["queued", "queued"]
    code, body = call(
        "POST",
        "/workflows/it-chain/instances/batch",
        {"instances": [{"id": "b2"}, {"id": "b1", "params": {"steps": 5}}]},
    )
    assert code == 409 and body["error"] == "InstanceAlreadyExistsError"
    assert call("GET", "/instances/b2")[0] == 404  # all or nothing
    code, body = call("POST", "/workflows/it-chain/instances/batch", {"instances": [{}] * 101})
    assert code == 400 and body["error"] == "BadRequest"


def test_events_pause_resume_terminate_restart(rt: LocalRuntime, call: Api) -> None:
    assert call("POST", "/workflows/it-approval/instances", {"id": "ap"})[0] == 201
    rt.advance(0)
    assert call("GET", "/instances/ap")[1]["status"] == "waiting"
    assert call("POST", "/instances/ap/pause") == (202, {"id": "ap", "status": "paused"})
    assert call("POST", "/instances/ap/pause")[0] == 409
    code, body = call("POST", "/instances/ap/resume")
    assert (code, body["status"]) == (202, "waiting")
    code, body = call("POST", "/instances/ap/events", {"type": "approved", "payload": {"by": "bo"}})
    assert code == 202
    rt.advance(0)  # the event wakes the wait at once: no time needs to pass
    code, body = call("GET", "/instances/ap")
    assert body["status"] == "complete" and body["output"]["by"] == "bo"
    code, body = call("POST", "/instances/ap/events", {"type": "approved"})
    assert (code, body["error"]) == (409, "InvalidStateError")
    assert call("POST", "/instances/ap/restart")[1]["status"] == "queued"
    rt.advance(0)
    assert call("POST", "/instances/ap/terminate") == (202, {"id": "ap", "status": "terminated"})
    assert call("POST", "/instances/ap/terminate")[0] == 409
    assert call("POST", "/instances/ap/resume")[0] == 409


def test_terminate_with_rollback_runs_the_undos_then_terminates(rt: LocalRuntime, call: Api) -> None:
    assert call("POST", "/workflows/it-refundable/instances", {"id": "rf"})[0] == 201
    rt.advance(0)
    assert call("GET", "/instances/rf")[1]["status"] == "waiting"
    code, body = call("POST", "/instances/rf/terminate", query={"rollback": "true"})
    assert code == 202 and body["status"] != "terminated"  # the undos run first, in the worker
    rt.advance(0)
    assert call("GET", "/instances/rf")[1]["status"] == "terminated"
    entries = call("GET", "/instances/rf/history", query={"results": "true"})[1]["entries"]
    assert [e["name"] for e in entries] == ["charge", "ship", "charge (undo)"]
    assert entries[-1]["status"] == "complete"
    assert entries[-1]["result"] == {"refunded": 30, "because": "RollbackRequested"}
    assert call("POST", "/instances/rf/terminate", query={"rollback": "true"})[0] == 409


def _undone(call: Api, instance_id: str) -> bool:
    return [e["name"] for e in call("GET", f"/instances/{instance_id}/history")[1]["entries"]][-1] == (
        "charge (undo)"
    )


@pytest.mark.parametrize(
    ("body", "query", "undone"),
    [
        ({"rollback": True}, None, True),
        ({"rollback": False}, None, False),
        ({}, None, False),
        ({"rollback": True}, {"rollback": "true"}, True),  # both, alike
    ],
    ids=["body-true", "body-false", "empty-body", "both"],
)
def test_terminate_takes_rollback_from_a_json_body(
    rt: LocalRuntime, call: Api, body: Any, query: Any, undone: bool
) -> None:
    assert call("POST", "/workflows/it-refundable/instances", {"id": "rb"})[0] == 201
    rt.advance(0)
    code, answer = call("POST", "/instances/rb/terminate", body, query=query)
    assert code == 202, answer
    assert (answer["status"] != "terminated") is undone  # a rollback runs the undos first, in the worker
    rt.advance(0)
    assert call("GET", "/instances/rb")[1]["status"] == "terminated"
    assert _undone(call, "rb") is undone


@pytest.mark.parametrize(
    ("body", "query"),
    [
        ({"rollback": "true"}, None),
        ({"rollback": 1}, None),
        ({"rollback": None}, None),
        ({"rollback": True, "now": True}, None),
        ([True], None),
        ({"rollback": True}, {"rollback": "false"}),
    ],
    ids=["string", "number", "null", "extra-key", "not-an-object", "query-disagrees"],
)
def test_terminate_refuses_a_rollback_that_is_not_a_boolean(
    rt: LocalRuntime, call: Api, body: Any, query: Any
) -> None:
    assert call("POST", "/workflows/it-refundable/instances", {"id": "rbad"})[0] == 201
    rt.advance(0)
    code, answer = call("POST", "/instances/rbad/terminate", body, query=query)
    assert code == 400 and set(answer) == {"error", "message"} and answer["error"] == "BadRequest", answer
    assert call("GET", "/instances/rbad")[1]["status"] == "waiting"  # nothing was done


def test_the_cli_terminates_with_rollback(rt: LocalRuntime) -> None:
    rt.client.create("it-refundable", id="rc")
    rt.advance(0)
    stack = ["--table", rt.table_name, "--queue-url", rt.queue_url]
    assert cli.main(["terminate", "rc", "--rollback", *stack]) == 0
    rt.advance(0)
    assert rt.client.get("rc").status().status == "terminated"
    assert [e.name for e in rt.client.get("rc").history()][-1] == "charge (undo)"


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "code", "error"),
    [
        ("POST", "/workflows/nope/instances", {"body": {}}, 404, "WorkflowNotFoundError"),
        ("GET", "/workflows/nope/instances", {}, 404, "WorkflowNotFoundError"),
        ("GET", "/instances/missing", {}, 404, "InstanceNotFoundError"),
        ("GET", "/instances/missing/history", {}, 404, "InstanceNotFoundError"),
        ("POST", "/instances/missing/pause", {}, 404, "InstanceNotFoundError"),
        ("POST", "/instances/missing/events", {"body": {"type": "x"}}, 404, "InstanceNotFoundError"),
        ("GET", "/instances/bad%20id", {}, 400, "InvalidInstanceIdError"),
        ("GET", "/nowhere", {}, 404, "NotFound"),
        ("POST", "/workflows/it-typed/instances", {"raw_body": "{not json"}, 400, "MalformedJSON"),
        ("POST", "/workflows/it-typed/instances", {"body": {"idd": "typo"}}, 400, "BadRequest"),
        ("POST", "/workflows/it-typed/instances", {"body": {"id": "../x"}}, 400, "InvalidInstanceIdError"),
        (
            "POST",
            "/workflows/it-typed/instances",
            {"body": {"params": {"sku": 1}}},
            422,
            "InvalidParamsError",
        ),
        ("POST", "/instances/x/events", {"body": {"payload": 1}}, 400, "BadRequest"),
        ("GET", "/workflows/it-chain/instances", {"query": {"limit": "0"}}, 400, "BadRequest"),
        ("GET", "/workflows/it-chain/instances", {"query": {"status": "sleepy"}}, 400, "InvalidConfigError"),
        ("GET", "/workflows/it-chain/instances", {"query": {"cursor": "zzz"}}, 400, "InvalidConfigError"),
        (
            "POST",
            "/workflows/it-chain/instances",
            {"raw_body": "x" * (1024 * 1024 + 1)},
            413,
            "PayloadTooLarge",
        ),
        (
            "POST",
            "/workflows/it-chain/instances",
            {"raw_body": "id=1", "headers": {"content-type": "application/x-www-form-urlencoded"}},
            415,
            "UnsupportedMediaType",
        ),
    ],
)
def test_errors_are_json_with_the_right_code(
    call: Api, method: str, path: str, kwargs: dict[str, Any], code: int, error: str
) -> None:
    got, body = call(method, path, **kwargs)
    assert (got, body["error"]) == (code, error), body
    assert isinstance(body["message"], str) and body["message"]


def test_duplicate_id_is_409_and_bad_params_write_nothing(rt: LocalRuntime, call: Api) -> None:
    assert call("POST", "/workflows/it-chain/instances", {"id": "dup"})[0] == 201
    code, body = call("POST", "/workflows/it-chain/instances", {"id": "dup", "params": {"steps": 2}})
    assert (code, body["error"]) == (409, "InstanceAlreadyExistsError")
    code, body = call(
        "POST", "/workflows/it-typed/instances", {"id": "dup", "params": {"sku": "a", "quantity": 1}}
    )
    assert (code, body["error"]) == (409, "InstanceAlreadyExistsError")
    rt.aws_calls.clear()
    code, body = call("POST", "/workflows/it-typed/instances", {"params": {"sku": "a", "quantity": "x"}})
    assert code == 422 and body["details"][0]["loc"] == ["quantity"]
    assert not any(op in rt.aws_calls for op in ("dynamodb.PutItem", "sqs.SendMessage"))


def test_openapi_document_validates(call: Api) -> None:
    from openapi_spec_validator import validate

    code, doc = call("GET", "/openapi.json")
    assert code == 200
    validate(doc)
    pause = doc["paths"]["/instances/{instance_id}/pause"]["post"]["responses"]
    assert set(pause) == {"202", "400", "404", "409"}  # the errors it really answers with, documented
    assert pause["409"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")
    paths = set(doc["paths"])
    assert {
        "/workflows/{name}/instances",
        "/instances/{instance_id}",
        "/instances/{instance_id}/events",
    } <= paths


def test_a_child_workflow_is_an_instance_of_the_api_with_its_parent() -> None:
    from examples.fulfilment import order_fulfilment, shipping

    with LocalRuntime(workflows=[order_fulfilment, shipping]) as runtime:
        call = Api(runtime)
        params = {"order": "o9", "amount": 30, "address": "1 Main St"}
        code, _ = call("POST", "/workflows/order-fulfilment/instances", {"id": "o9", "params": params})
        assert code == 201
        runtime.run_until_idle()
        code, child = call("GET", "/instances/o9-ship")
        assert code == 200 and child["parent_id"] == "o9" and child["status"] == "complete"
        code, parent = call("GET", "/instances/o9")
        assert parent["output"] == {
            "order": "o9",
            "shipped": True,
            "label": "courier-7/o9",
            "courier": "courier-7",
        }
        code, history = call("GET", "/instances/o9/history", query={"results": "true"})
        (invoke,) = [e for e in history["entries"] if e["kind"] == "invoke"]
        assert invoke["child_id"] == "o9-ship" and invoke["result"]["label"] == "courier-7/o9"
        code, listed = call("GET", "/workflows/shipping/instances")
        assert [i["parent_id"] for i in listed["instances"]] == ["o9"]
