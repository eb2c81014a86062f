"""Payloads are never logged: params, step results, event payloads and outputs stay out of every log
record, through the API, the worker and failures. Error messages (written by the workflow's code) are
logged at WARNING only, never at INFO. See docs/guarantees.md, "Logs"."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from framework import NonRetryableError, StepContext
from framework.local import LocalContext, LocalRuntime
from framework.logs import logger
from framework.registry import Workflow
from handlers import api
from tests.integration import workflows as w
from tests.integration.apigw import http_event

MARKS = {
    "params": "MARK-params-1f9c",
    "result": "MARK-result-2b7d",
    "event": "MARK-event-3e5a",
    "output": "MARK-output-4c1f",
    "rejected": "MARK-rejected-6a3b",  # in requests the API refuses
    "error": "MARK-error-5d2e",  # in exception messages: logged at WARNING, never at INFO
}
PAYLOADS = [v for k, v in MARKS.items() if k != "error"]


def private(event: Any, step: Any) -> Any:
    secret = event.payload["secret"]
    token = step.do("fetch", lambda: {"token": MARKS["result"]})

    @step.do("flaky", config={"retries": {"limit": 2, "delay": "1 second", "backoff": "constant"}})
    def flaky(ctx: StepContext) -> str:
        if ctx.attempt == 1:
            raise ConnectionError(f"upstream refused: {MARKS['error']}")
        return "ok"

    flaky()
    step.sleep("nap", "1 minute")
    got = step.wait_for_event("approval", "go", timeout="1 hour")
    if got.payload.get("fail"):
        raise NonRetryableError(f"refused: {MARKS['error']}")
    return {"out": MARKS["output"], "secret": secret, "token": token, "event": got.payload}


@pytest.fixture
def captured(caplog: pytest.LogCaptureFixture, request: pytest.FixtureRequest) -> Iterator[io.StringIO]:
    """The framework's Powertools logger, written to a stream at the level under test; every other
    logger (botocore, Powertools' resolver) through caplog at INFO."""
    stream = io.StringIO()
    old_level = logger.log_level
    old_stream = logger.registered_handler.setStream(stream)  # type: ignore[attr-defined]
    logger.setLevel(request.param)
    caplog.set_level(logging.INFO)
    try:
        yield stream
    finally:
        logger.setLevel(old_level)
        logger.registered_handler.setStream(old_stream)  # type: ignore[attr-defined]


@pytest.mark.parametrize("captured", ["INFO", "DEBUG"], indirect=True)
def test_payloads_are_never_logged(captured: io.StringIO, caplog: pytest.LogCaptureFixture) -> None:
    with LocalRuntime(workflows=[Workflow("it-private", private), w.typed]) as rt:

        def call(method: str, path: str, body: Any = None, raw: str | None = None) -> tuple[int, Any]:
            context = LocalContext("ApiFunction", rt.clock, rt.clock.now() + 30)
            response = api.handler(http_event(method, path, body, raw_body=raw), context)
            return response["statusCode"], json.loads(response["body"])

        for i in range(2):
            code, _ = call(
                "POST",
                "/workflows/it-private/instances",
                {"id": f"p{i}", "params": {"secret": MARKS["params"]}},
            )
            assert code == 201
        rt.advance("2 minutes")  # fetch, a failed attempt, its retry, the nap: both wait for "go"
        for i, fail in enumerate([False, True]):
            assert call("GET", f"/instances/p{i}")[1]["status"] == "waiting"
            code, _ = call(
                "POST",
                f"/instances/p{i}/events",
                {"type": "go", "payload": {"note": MARKS["event"], "fail": fail}},
            )
            assert code == 202
        rt.advance(0)
        code, done = call("GET", "/instances/p0")
        assert (code, done["status"], done["output"]["out"]) == (200, "complete", MARKS["output"])
        code, failed = call("GET", "/instances/p1")
        assert failed["status"] == "errored" and MARKS["error"] in failed["error"]["message"]
        assert MARKS["result"] in json.dumps(call("GET", "/instances/p0/history")[1])
        assert call("GET", "/workflows/it-private/instances")[0] == 200
        # Refused requests: nothing of their bodies is logged either.
        bad = {"params": {"sku": MARKS["rejected"], "quantity": MARKS["rejected"]}}
        assert call("POST", "/workflows/it-typed/instances", bad)[0] == 422
        assert (
            call("POST", "/workflows/it-private/instances", raw='{"params": ' + MARKS["rejected"] + "}")[0]
            == 400
        )
        assert call("POST", "/instances/p0/events", {"type": "go", "payload": MARKS["rejected"]})[0] == 409

    lines = [json.loads(line) for line in captured.getvalue().splitlines() if line.startswith("{")]
    assert any(line["message"] == "step completed" for line in lines), "the capture works"
    records = [(line["level"], json.dumps(line)) for line in lines]
    records += [(r.levelname, f"{r.getMessage()} {r.__dict__}") for r in caplog.records]
    for level, text in records:
        leaked = [mark for mark in PAYLOADS if mark in text]
        assert not leaked, f"{leaked} logged at {level}: {text[:500]}"
        if logging.getLevelName(level) < logging.WARNING:
            assert MARKS["error"] not in text, f"an error message logged at {level}: {text[:500]}"
    # Error messages are logged, at WARNING: the failed attempt and the errored instance.
    warned = [line["message"] for line in lines if MARKS["error"] in json.dumps(line)]
    assert {"step attempt failed", "instance errored"} <= set(warned)
