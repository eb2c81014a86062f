"""schemathesis generates requests from the OpenAPI document; the handler must never answer 5xx."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from framework.local import LocalContext, LocalRuntime
from handlers import api
from tests.integration import workflows as w
from tests.integration.apigw import http_event

METHODS = {"DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"}
schema = schemathesis.openapi.from_dict(json.loads(api.openapi_document()))


@pytest.fixture(scope="module")
def rt() -> Iterator[LocalRuntime]:
    with LocalRuntime(workflows=[w.chain, w.typed, w.approval]) as runtime:
        runtime.client.create("it-approval", id="known")
        yield runtime


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case: Any, rt: LocalRuntime) -> None:
    if case.method.upper() not in METHODS:
        return  # API Gateway's HTTP API payload has no such method: it never reaches the handler
    body = case.body if isinstance(case.body, dict | list | str | int | float | bool) else None
    raw = case.body.decode(errors="replace") if isinstance(case.body, bytes) else None
    query = {k: str(v) for k, v in (case.query or {}).items()}
    event = http_event(case.method.upper(), case.formatted_path, body, query=query, raw_body=raw)
    response = api.handler(event, LocalContext("ApiFunction", rt.clock, rt.clock.now() + 30))
    assert response["statusCode"] < 500, response["body"]
    if response["statusCode"] >= 400:
        assert set(json.loads(response["body"])) >= {"error", "message"}
