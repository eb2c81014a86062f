"""Payloads are never logged: params, step results, event payloads and outputs stay out of every log
record, through the API, the worker and failures. Error messages (written by the workflow's code) are
logged at WARNING only, never at INFO. The framework's own error messages hold no value and no dict key
of what the user passed, so error paths log none either. See docs/guarantees.md, "Logs"."""

from __future__ import annotations

import io
import json
import logging
import math
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel

from framework import NonRetryableError, StepContext, StepFailedError
from framework.api.registry import Workflow
from framework.core import serde
from framework.core.logs import logger
from framework.local import LocalContext, LocalRuntime
from handlers import api
from tests.integration import workflows as w
from tests.integration.apigw import http_event
from tests.integration.test_inbox import dead_letters, put

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


def _level() -> str:
    """The level the ``captured`` fixture set, kept by the runtime (which defaults to WARNING)."""
    return logging.getLevelName(logger.log_level)


@pytest.mark.parametrize("captured", ["INFO", "DEBUG"], indirect=True)
def test_payloads_are_never_logged(captured: io.StringIO, caplog: pytest.LogCaptureFixture) -> None:
    with LocalRuntime(workflows=[Workflow("it-private", private), w.typed], log_level=_level()) as rt:

        def call(
            method: str, path: str, body: Any = None, raw: str | None = None, query: Any = None
        ) -> tuple[int, Any]:
            context = LocalContext("ApiFunction", rt.clock, rt.clock.now() + 30)
            response = api.handler(http_event(method, path, body, raw_body=raw, query=query), context)
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
        assert MARKS["result"] in json.dumps(
            call("GET", "/instances/p0/history", query={"results": "true"})[1]
        )
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


# -- error paths: nothing the user passed reaches a log line through an error message either -------------
SECRETS = {
    "stale": "SECRET-stale-params-01",  # params stored under a model that changed since
    "key": "SECRET-result-key-02",  # a dict key of a step result that cannot be stored
    "nan": "SECRET-nan-key-03",
    "surrogate": "SECRET-surrogate-04",
    "wrong-type": "SECRET-wrong-type-05",  # a model field holding a value its type does not describe
    "validation": "SECRET-user-validation-06",  # a pydantic error raised by the workflow's own code
    "old-result": "SECRET-old-result-07",  # a stored model result its type no longer accepts
    "api": "SECRET-api-08",  # in creates and events the API refuses
    "inbox": "SECRET-inbox-09",  # in inbox messages that are dead-lettered
}


class Stale(BaseModel):
    secret: str


class Changed(BaseModel):
    secret: int


class Rates(BaseModel):
    rates: dict[str, float]


class Note(BaseModel):
    text: str


def results(event: Any, step: Any) -> Any:
    """Steps whose results cannot be stored, each caught; the messages they failed with are returned."""
    bad: list[Any] = [
        {SECRETS["key"]: object()},
        {"a": [{SECRETS["nan"]: math.nan}]},
        {"k": SECRETS["surrogate"] + "\ud800"},
        {SECRETS["surrogate"] + "\udc00": 1},
        Stale.model_construct(secret=[SECRETS["wrong-type"]]),
        # pydantic's text quotes the input; where it failed (here the key "eur") is the workflow's own
        # validation, kept like any message of an exception raised in its code.
        lambda: Rates.model_validate({"rates": {"eur": SECRETS["validation"]}}),
    ]
    failed = []
    for n, value in enumerate(bad):
        body = value if callable(value) else (lambda v=value: v)
        try:
            step.do(f"bad {n}", body, config={"retries": {"limit": 0}})
        except StepFailedError as exc:
            failed.append(f"{exc.error_type}: {exc.error_message}")
    return failed


def old_result(event: Any, step: Any) -> Any:
    note = step.do("note", lambda: Note(text=SECRETS["old-result"]))
    step.sleep("nap", "1 hour")
    return note.text


@pytest.mark.parametrize("captured", ["DEBUG"], indirect=True)
def test_user_values_are_never_logged_on_error_paths(
    captured: io.StringIO,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    recwarn: pytest.WarningsRecorder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The framework's logger at DEBUG, every other logger at INFO (botocore's DEBUG is a dump of the
    wire, by design), warnings and stderr. Each secret is a value or a dict key that some error path
    used to put in a message, which the worker or the inbox logs (and stores as the error)."""
    stale = Workflow("lp-stale", lambda event, step: event.payload.secret, params=Stale)
    workflows = [stale, Workflow("lp-results", results), Workflow("lp-old-result", old_result)]
    workflows += [Workflow("lp-rates", lambda event, step: None, params=Rates), w.chain, w.approval]
    with LocalRuntime(workflows=workflows, log_level=_level()) as rt:

        def call(method: str, path: str, raw: str) -> tuple[int, str]:
            context = LocalContext("ApiFunction", rt.clock, rt.clock.now() + 30)
            response = api.handler(http_event(method, path, raw_body=raw), context)
            return response["statusCode"], response["body"]

        rt.client.create("lp-stale", {"secret": SECRETS["stale"]}, id="stale")
        rt.env.registry.add(Workflow("lp-stale", stale.fn, params=Changed))  # deployed before it ran
        rt.client.create("lp-results", id="results")
        rt.client.create("lp-old-result", id="old-result")
        rt.client.create("it-approval", id="ap")
        rt.advance(0)
        monkeypatch.setattr(sys.modules[__name__], "Note", Changed)  # the result's type changed
        serde._import_type.cache_clear()
        try:
            rt.advance("2 hours")
        finally:
            serde._import_type.cache_clear()

        api_rows = [
            ("/workflows/lp-rates/instances", '{"params": {"rates": {"%s": "x"}}}', 422),
            ("/workflows/lp-rates/instances", '{"params": {"rates": {"%s": 1e999}}}', 400),
            ("/workflows/it-chain/instances", '{"params": {"%s": -1e999}}', 400),
            ("/workflows/it-chain/instances", '{"params": {"%s": 1, "%s": 2}}', 400),
            ("/instances/ap/events", '{"type": "approved", "payload": {"%s": [1e400]}}', 400),
        ]
        for path, body, status in api_rows:
            code, text = call("POST", path, body.replace("%s", SECRETS["api"]))
            assert code == status and SECRETS["api"] not in text, text
        inbox_messages = [
            '{"action": "create", "workflow": "it-chain", "params": {"%s": NaN}}',
            '{"action": "create", "workflow": "lp-rates", "params": {"rates": {"%s": "x"}}}',
            '{"action": "create", "workflow": "lp-rates", "params": {"rates": {"%s": "inf"}}}',
            '{"action": "%s", "workflow": "it-chain"}',
            '{"action": "create", "workflow": "it-chain", "%s": 1}',
            '{"action": "event", "instance_id": "ap", "type": "approved", "payload": {"%s": Infinity}}',
        ]
        for body in inbox_messages:
            put(rt, body.replace("%s", SECRETS["inbox"]))
        rt.run_until_idle()
        assert len(dead_letters(rt)) == len(inbox_messages)

        errors = {i: rt.client.get(i).status().error for i in ("stale", "old-result")}
        assert errors["stale"] is not None and errors["stale"]["name"] == "InvalidParamsError"
        assert errors["old-result"] is not None and errors["old-result"]["name"] == "SerializationError"
        failed = rt.client.get("results").status().output
        assert len(failed) == 6 and all("SerializationError" in m or "ValidationError" in m for m in failed)
        stored = json.dumps([errors, failed])
        assert not [s for s in SECRETS.values() if s in stored], stored

    lines = [line for line in captured.getvalue().splitlines() if line.strip()]
    assert any("inbox message failed" in line for line in lines), "the capture works"
    assert any("instance errored" in line for line in lines)
    texts = [*lines, *(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)]
    texts += [str(warning.message) for warning in recwarn]
    texts += capsys.readouterr()
    for text in texts:
        leaked = [name for name, secret in SECRETS.items() if secret in text]
        assert not leaked, f"{leaked} logged: {text[:500]}"
