"""Ids with ``/ : @ .`` over the HTTP API, sent as a client sends them and passed on as API Gateway's
HTTP APIs pass them (the path decoded once: ``framework.local.apigw.gateway_path``); and creates of an
existing id: 200 with that instance for the same workflow and params, 409 otherwise; the same in the
CLI. On moto."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest

from framework import cli
from framework.core.ids import path_segment
from framework.local import LocalContext, LocalRuntime
from framework.local.apigw import gateway_path
from handlers import api
from tests.integration import workflows as w
from tests.integration.apigw import http_event

IDS = ["orders/2024/7", "order:123", "ana@example.com", "a.b/c:d@e", "x/history", "y/pause/z"]


@pytest.fixture
def rt() -> Iterator[LocalRuntime]:
    with LocalRuntime(workflows=[w.chain, w.typed, w.approval]) as runtime:
        yield runtime


def send(rt: LocalRuntime, method: str, sent_path: str, body: Any = None) -> tuple[int, Any]:
    """A request whose path is ``sent_path`` as the client wrote it (percent-encoded)."""
    context = LocalContext("ApiFunction", rt.clock, rt.clock.now() + 30)
    response = api.handler(http_event(method, gateway_path(sent_path), body), context)
    return response["statusCode"], json.loads(response["body"])


@pytest.mark.parametrize("instance_id", IDS)
def test_every_route_takes_an_id_encoded_twice(rt: LocalRuntime, instance_id: str) -> None:
    code, body = send(rt, "POST", "/workflows/it-approval/instances", {"id": instance_id})
    assert (code, body) == (201, {"id": instance_id, "status": "queued"})
    rt.advance(0)
    path = f"/instances/{path_segment(instance_id)}"
    code, view = send(rt, "GET", path)
    assert (code, view["id"], view["status"]) == (200, instance_id, "waiting")
    assert send(rt, "POST", f"{path}/pause") == (202, {"id": instance_id, "status": "paused"})
    assert send(rt, "POST", f"{path}/resume") == (202, {"id": instance_id, "status": "waiting"})
    code, sent = send(rt, "POST", f"{path}/events", {"type": "approved", "payload": {"by": "bo"}})
    assert (code, sent["id"]) == (202, instance_id)
    rt.run_until_idle()
    code, history = send(rt, "GET", f"{path}/history")
    assert (code, history["id"]) == (200, instance_id) and history["entries"]
    assert send(rt, "GET", path)[1]["output"]["by"] == "bo"
    assert send(rt, "POST", f"{path}/restart")[0] == 202


def test_an_id_without_slash_may_be_encoded_once_or_sent_as_is(rt: LocalRuntime) -> None:
    send(rt, "POST", "/workflows/it-chain/instances", {"id": "ana@example.com"})
    for sent in ("ana@example.com", "ana%40example.com", "ana%2540example.com"):
        code, view = send(rt, "GET", f"/instances/{sent}")
        assert (code, view["id"]) == (200, "ana@example.com"), sent


def test_a_slash_encoded_once_is_a_separator_and_the_404_says_how_to_send_it(rt: LocalRuntime) -> None:
    send(rt, "POST", "/workflows/it-chain/instances", {"id": "orders/2024/7"})
    code, body = send(rt, "GET", "/instances/" + urllib.parse.quote("orders/2024/7", safe=""))
    assert (code, body["error"]) == (404, "NotFound")
    assert "%252F" in body["message"]
    # Ambiguous once decoded: the history of "x", not the instance "x/history".
    send(rt, "POST", "/workflows/it-chain/instances", {"id": "x"})
    code, body = send(rt, "GET", "/instances/x%2Fhistory")
    assert (code, body["id"]) == (200, "x") and "entries" in body


@pytest.mark.parametrize(
    ("sent", "error"),
    [
        ("a%2523b", "InvalidInstanceIdError"),  # "#": decoded twice, still no id
        ("%252Fa", "InvalidInstanceIdError"),  # leading "/"
        ("a%252520b", "InvalidInstanceIdError"),  # decoded once only: "%20" holds "%"
        ("..%252F..%252Fetc", "InvalidInstanceIdError"),
        ("a%25FFb", "InvalidInstanceIdError"),  # not UTF-8
        ("a%250Ab", "InvalidInstanceIdError"),  # a newline, decoded by the API, not the gateway
    ],
)
def test_what_decodes_to_no_id_is_400(rt: LocalRuntime, sent: str, error: str) -> None:
    for suffix, method in (("", "GET"), ("/history", "GET"), ("/pause", "POST")):
        code, body = send(rt, method, f"/instances/{sent}{suffix}")
        assert (code, body["error"]) == (400, error), (sent, suffix)


def test_creating_an_existing_id_is_200_with_that_instance(rt: LocalRuntime) -> None:
    create = "/workflows/it-typed/instances"
    params = {"sku": "a", "quantity": 2}
    assert send(rt, "POST", create, {"id": "o/1", "params": params})[0] == 201
    rt.run_until_idle()
    rt.aws_calls.clear()
    code, body = send(rt, "POST", create, {"id": "o/1", "params": {"quantity": 2, "sku": "a"}})
    assert (code, body) == (200, {"id": "o/1", "status": "complete"})
    # One put, which fails and returns the stored item; one read for the status; nothing sent.
    assert rt.aws_calls["dynamodb.PutItem"] == 1 and rt.aws_calls["dynamodb.GetItem"] == 1
    assert rt.aws_calls["sqs.SendMessage"] == 0
    code, body = send(rt, "POST", create, {"id": "o/1", "params": {"sku": "a", "quantity": 3}})
    assert (code, body["error"]) == (409, "InstanceAlreadyExistsError")
    code, body = send(rt, "POST", "/workflows/it-chain/instances", {"id": "o/1"})
    assert (code, body["error"]) == (409, "InstanceAlreadyExistsError")


def test_a_batch_of_existing_and_new_ids(rt: LocalRuntime) -> None:
    batch = "/workflows/it-chain/instances/batch"
    assert send(rt, "POST", "/workflows/it-chain/instances", {"id": "b:1"})[0] == 201
    code, body = send(
        rt, "POST", batch, {"instances": [{"id": "b:1"}, {"id": "b:2", "params": {"steps": 1}}]}
    )
    assert code == 201
    assert body["instances"] == [
        {"id": "b:1", "status": "queued", "created": False},
        {"id": "b:2", "status": "queued", "created": True},
    ]
    rt.run_until_idle()
    code, body = send(
        rt, "POST", batch, {"instances": [{"id": "b:1"}, {"id": "b:2", "params": {"steps": 1}}]}
    )
    assert code == 200 and [i["status"] for i in body["instances"]] == ["complete", "complete"]
    code, body = send(
        rt, "POST", batch, {"instances": [{"id": "b:3"}, {"id": "b:2", "params": {"steps": 2}}]}
    )
    assert (code, body["error"]) == (409, "InstanceAlreadyExistsError")
    assert send(rt, "GET", "/instances/b:3")[0] == 404


def test_the_openapi_document_gives_both_answers_of_a_create(rt: LocalRuntime) -> None:
    code, document = send(rt, "GET", "/openapi.json")
    assert code == 200
    responses = document["paths"]["/workflows/{name}/instances"]["post"]["responses"]
    assert {"200", "201", "409"} <= set(responses)


def test_the_cli_takes_the_ids_and_starting_an_existing_one_is_success(
    rt: LocalRuntime, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = ["--table", rt.table_name, "--queue-url", rt.queue_url]
    start = ["start", "it-chain", "--id", "orders/2024/7", "--params", '{"steps": 1}', *stack]
    assert cli.main(start) == 0 and capsys.readouterr().out == "orders/2024/7\n"
    rt.run_until_idle()
    assert cli.main([*start, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "id": "orders/2024/7",
        "status": "complete",
        "created": False,
    }
    assert cli.main(start) == 0
    shown = capsys.readouterr()
    assert shown.out == "orders/2024/7\n" and "exists with the same workflow and params" in shown.err
    assert cli.main(["status", "orders/2024/7", *stack]) == 0
    assert capsys.readouterr().out.startswith("orders/2024/7  it-chain  complete")
    other = ["start", "it-chain", "--id", "orders/2024/7", "--params", '{"steps": 2}', *stack]
    assert cli.main(other) == 1
    assert capsys.readouterr().err.startswith("workflows: InstanceAlreadyExistsError: ")
