"""Callbacks on DynamoDB (moto): the HTTP routes, the inbox actions and the client, end to end."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from framework import CallbackCompletedError, CallbackNotFoundError, WorkflowTimeoutError
from framework.core.callbacks import CallbackId, parse_callback_id
from framework.local import LocalContext, LocalRuntime
from handlers import inbox
from tests.integration import workflows as w
from tests.integration.test_api import Api


@pytest.fixture
def rt() -> Iterator[LocalRuntime]:
    with LocalRuntime(workflows=[w.callback]) as runtime:
        yield runtime


@pytest.fixture
def call(rt: LocalRuntime) -> Api:
    return Api(rt)


def started(rt: LocalRuntime, instance_id: str, params: Any = None) -> str:
    rt.client.create("it-callback", params, id=instance_id)
    rt.advance("1 second")
    assert rt.client.get(instance_id).status().status == "waiting"
    return w.CALLBACK_IDS[instance_id]


def events_of(rt: LocalRuntime, instance_id: str) -> list[Any]:
    record = rt.env.store.get_instance(instance_id)
    assert record is not None
    return rt.env.store.load_events(instance_id, record.run_key)


def test_success_over_http_completes_the_instance_and_a_second_is_409(rt: LocalRuntime, call: Api) -> None:
    cid = started(rt, "cb-http")
    code, body = call("POST", f"/callbacks/{cid}/success", {"result": {"paid": 12.5}})
    assert (code, body) == (202, {"status": "accepted"})
    code, body = call("POST", f"/callbacks/{cid}/success", {"result": "again"})
    assert code == 409 and body["error"] == "CallbackCompletedError" and "already" in body["message"]
    rt.advance("1 second")
    assert rt.client.get("cb-http").status().output == {"paid": 12.5}
    code, body = call("POST", f"/callbacks/{cid}/failure", {"error": "Late"})
    assert code == 409 and body["error"] == "CallbackCompletedError"
    code, body = call("GET", "/instances/cb-http/history", query={"results": "true"})
    assert body["entries"][0]["kind"] == "callback" and body["entries"][0]["result"] == {"paid": 12.5}


def test_failure_over_http_fails_the_wait(rt: LocalRuntime, call: Api) -> None:
    cid = started(rt, "cb-http-fail")
    code, _ = call("POST", f"/callbacks/{cid}/failure", {"error": "Declined", "message": "no funds"})
    assert code == 202
    rt.advance("1 second")
    st = rt.client.get("cb-http-fail").status()
    assert st.status == "errored" and st.error is not None and st.error["name"] == "CallbackFailedError"
    assert "Declined" not in st.error["message"] and "no funds" not in st.error["message"]


def test_forged_malformed_and_stale_ids_are_404_and_store_nothing(rt: LocalRuntime, call: Api) -> None:
    cid = started(rt, "cb-http-bad")
    parsed = parse_callback_id(cid)
    other = ("A" if parsed.token[0] != "A" else "B") + parsed.token[1:]
    for bad in (
        str(CallbackId("cb-http-bad", 1, 0, other)),
        str(CallbackId("cb-http-bad", 1, 1, parsed.token)),
        "not-an-id",
        cid + "x",
        str(CallbackId("nobody", 1, 0, parsed.token)),
    ):
        for route, body in (("success", {"result": 1}), ("failure", {"error": "E"}), ("heartbeat", None)):
            code, answer = call("POST", f"/callbacks/{bad}/{route}", body)
            assert code == 404 and answer["error"] == "CallbackNotFoundError", (bad, route, answer)
            assert parsed.token not in answer["message"]
    assert events_of(rt, "cb-http-bad") == []
    rt.client.get("cb-http-bad").restart()
    rt.advance("1 second")
    code, answer = call("POST", f"/callbacks/{cid}/success", {"result": 1})
    assert code == 404 and "restart" in answer["message"]
    assert events_of(rt, "cb-http-bad") == []
    fresh = w.CALLBACK_IDS["cb-http-bad"]
    assert fresh != cid and call("POST", f"/callbacks/{fresh}/success", {"result": 2})[0] == 202


def test_bad_bodies_are_400_and_heartbeats_are_202(rt: LocalRuntime, call: Api) -> None:
    cid = started(rt, "cb-http-body", {"heartbeat": "5 minutes"})
    assert call("POST", f"/callbacks/{cid}/success", {"result": 1, "extra": 2})[0] == 400
    assert call("POST", f"/callbacks/{cid}/failure", {"message": "no name"})[0] == 400
    assert call("POST", f"/callbacks/{cid}/success", {"result": "x" * 300_000})[0] == 413
    assert call("GET", f"/callbacks/{cid}/success")[0] == 405
    for _ in range(3):
        rt.advance("4 minutes")
        assert call("POST", f"/callbacks/{cid}/heartbeat")[0] == 202
        assert call("POST", f"/callbacks/{cid}/heartbeat")[0] == 202  # twice: one item, applied once
    beats = [e for e in events_of(rt, "cb-http-body") if e.type == "$heartbeat"]
    assert len(beats) == 1
    assert rt.client.get("cb-http-body").status().status == "waiting"
    rt.advance("6 minutes")
    st = rt.client.get("cb-http-body").status()
    assert st.status == "errored" and st.error == {
        "name": "WorkflowTimeoutError",
        "message": "callback 'payment' timed out: no heartbeat for 300 s",
    }
    code, answer = call("POST", f"/callbacks/{cid}/heartbeat")
    assert code == 409 and answer["error"] == "CallbackCompletedError"


def test_the_client_on_dynamodb(rt: LocalRuntime) -> None:
    cid = started(rt, "cb-client", {"timeout": "10 minutes"})
    with pytest.raises(CallbackNotFoundError):
        rt.client.send_callback_success(cid[:-2] + "zz", 1)
    rt.client.send_callback_heartbeat(cid)  # no heartbeat_timeout: accepted, no effect
    rt.advance("11 minutes")
    st = rt.client.get("cb-client").status()
    assert st.error is not None and st.error["name"] == WorkflowTimeoutError.__name__
    with pytest.raises(CallbackCompletedError):
        rt.client.send_callback_success(cid, 1)


def _record(message_id: str, body: Any) -> dict[str, Any]:
    return {
        "messageId": message_id,
        "receiptHandle": "r",
        "body": json.dumps(body),
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1800000000000"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:inbox",
        "awsRegion": "us-east-1",
    }


def test_the_inbox_actions_and_a_redelivered_outcome(rt: LocalRuntime) -> None:
    cid = started(rt, "cb-inbox")
    context = LocalContext("InboxFunction", rt.clock, rt.clock.now() + 30)
    message = {"action": "callback_success", "callback_id": cid, "result": "via inbox"}
    heartbeat = {"action": "callback_heartbeat", "callback_id": cid}
    forged = {"action": "callback_success", "callback_id": "nope", "result": 1}
    batch = {"Records": [_record("m1", heartbeat), _record("m2", message), _record("m3", forged)]}
    out = inbox.handler(batch, context)
    assert out == {"batchItemFailures": [{"itemIdentifier": "m3"}]}
    again = inbox.handler({"Records": [_record("m2", message)]}, context)  # a redelivery: no failure
    assert again == {"batchItemFailures": []}
    rt.advance("1 second")
    assert rt.client.get("cb-inbox").status().output == "via inbox"


def _cli(rt: LocalRuntime, *argv: str) -> int:
    from framework import cli

    return cli.main([*argv, "--table", rt.table_name, "--queue-url", rt.queue_url])


def test_the_cli_sends_a_result_and_a_second_is_refused(
    rt: LocalRuntime, capsys: pytest.CaptureFixture[str]
) -> None:
    cid = started(rt, "cb-cli")
    assert _cli(rt, "callback", "success", cid, '{"paid": 12.5}') == 0
    assert capsys.readouterr().out == "callback success sent\n"
    assert _cli(rt, "callback", "success", cid, "2", "--json") == 1
    err = capsys.readouterr().err
    assert err.startswith("workflows: CallbackCompletedError: ") and err.count("\n") == 1, err
    rt.advance("1 second")
    assert rt.client.get("cb-cli").status().output == {"paid": 12.5}


def test_the_cli_sends_a_result_from_a_file_or_none(rt: LocalRuntime, tmp_path: Any) -> None:
    cid = started(rt, "cb-cli-file")
    (tmp_path / "r.json").write_text('["a", 1]')
    assert _cli(rt, "callback", "success", cid, f"@{tmp_path / 'r.json'}") == 0
    rt.advance("1 second")
    assert rt.client.get("cb-cli-file").status().output == ["a", 1]
    cid = started(rt, "cb-cli-none")
    assert _cli(rt, "callback", "success", cid) == 0
    rt.advance("1 second")
    st = rt.client.get("cb-cli-none").status()
    assert st.status == "complete" and st.output is None


def test_the_cli_fails_a_callback(rt: LocalRuntime, capsys: pytest.CaptureFixture[str]) -> None:
    cid = started(rt, "cb-cli-fail")
    argv = ("callback", "failure", cid, "--error-type", "Declined", "--message", "no funds", "--json")
    assert _cli(rt, *argv) == 0
    assert json.loads(capsys.readouterr().out) == {"callback_id": cid, "sent": "failure"}
    rt.advance("1 second")
    st = rt.client.get("cb-cli-fail").status()
    assert st.status == "errored" and st.error is not None and st.error["name"] == "CallbackFailedError"
    entry = rt.client.get("cb-cli-fail").history()[0].as_dict()
    assert entry["error"] == {"name": "Declined", "message": "no funds"}, entry


def test_the_cli_sends_a_heartbeat(rt: LocalRuntime, capsys: pytest.CaptureFixture[str]) -> None:
    cid = started(rt, "cb-cli-beat", {"heartbeat": "5 minutes"})
    assert _cli(rt, "callback", "heartbeat", cid) == 0
    assert capsys.readouterr().out == "callback heartbeat sent\n"
    assert [e.type for e in events_of(rt, "cb-cli-beat")] == ["$heartbeat"]
    assert _cli(rt, "callback", "heartbeat", "not-an-id") == 1
    assert capsys.readouterr().err.startswith("workflows: CallbackNotFoundError: ")


@pytest.mark.parametrize("text", ["{bad", "", "@/no/such/file.json"])
def test_the_cli_refuses_a_result_that_is_not_json_with_a_usage_error(
    rt: LocalRuntime, text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cid = started(rt, "cb-cli-bad")
    with pytest.raises(SystemExit) as exited:
        _cli(rt, "callback", "success", cid, text)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "argument RESULT_JSON: " in err and "Traceback" not in err, err
    assert "not JSON" in err or "cannot read" in err
    assert events_of(rt, "cb-cli-bad") == []  # nothing sent
    with pytest.raises(SystemExit) as exited:
        _cli(rt, "callback", "failure", cid)  # --error-type is required
    assert exited.value.code == 2


# -- a throttled send: retried, or ThrottledError, and nothing is half written --------------------------
class _Http:
    status_code = 400
    headers: dict[str, str] = {}


def _throttle(rt: LocalRuntime, answer: Any) -> list[int]:
    """Hook the client's store: each TransactWriteItems is first shown to ``answer(n)`` (n from 1); an
    error code (and the fields) it returns is DynamoDB's answer, and the call never reaches the table
    (a before-call hook: botocore's own retries are skipped, as if they had run out). Returns the list
    the calls are counted in."""
    calls: list[int] = []

    def hook(**_: Any) -> Any:
        calls.append(len(calls) + 1)
        error = answer(len(calls))
        if error is None:
            return None
        code, fields = error
        return _Http(), {"Error": {"Code": code, "Message": "throttled"}} | fields

    client = rt.client._env.store._db._client  # type: ignore[attr-defined]  # under ConflictRetrying
    client.meta.events.register("before-call.dynamodb.TransactWriteItems", hook)
    return calls


CANCELLED = "TransactionCanceledException"
THROTTLED_ITEM = {"CancellationReasons": [{"Code": "None"}, {"Code": "None"}, {"Code": "ThrottlingError"}]}


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    from framework.backends import dynamodb_conflicts

    taken: list[float] = []
    monkeypatch.setattr(dynamodb_conflicts, "pause", taken.append)
    return taken


def test_a_transaction_cancelled_once_for_a_throttled_item_is_retried(
    rt: LocalRuntime, pauses: list[float]
) -> None:
    cid = started(rt, "cb-throttled-once")
    calls = _throttle(rt, lambda n: (CANCELLED, THROTTLED_ITEM) if n == 1 else None)
    rt.client.send_callback_success(cid, {"paid": 1})
    assert len(calls) == 2 and len(pauses) == 1
    rt.advance("1 second")
    assert rt.client.get("cb-throttled-once").status().output == {"paid": 1}
    assert [e.kind for e in rt.client.get("cb-throttled-once").history()] == ["callback", "step"]


def test_a_lasting_throttle_is_a_throttled_error_and_writes_nothing(
    rt: LocalRuntime, call: Api, pauses: list[float]
) -> None:
    from framework import ThrottledError

    cid = started(rt, "cb-throttled")
    throttling = [True]
    calls = _throttle(rt, lambda n: (CANCELLED, THROTTLED_ITEM) if throttling[0] else None)
    with pytest.raises(ThrottledError, match="nothing was written") as raised:
        rt.client.send_callback_success(cid, {"paid": 2})
    assert not isinstance(raised.value, ClientError) and len(calls) == 5 and len(pauses) == 4
    with pytest.raises(ThrottledError):
        rt.client.send_callback_heartbeat(cid)
    code, body = call("POST", f"/callbacks/{cid}/success", {"result": 3})
    assert code == 503 and body["error"] == "ThrottledError", body
    assert events_of(rt, "cb-throttled") == []  # nothing half written: no outcome stored
    rt.advance("1 second")
    assert rt.client.get("cb-throttled").status().status == "waiting"
    throttling[0] = False
    rt.client.send_callback_success(cid, {"paid": 4})  # not "already sent": the first left nothing
    rt.advance("1 second")
    assert rt.client.get("cb-throttled").status().output == {"paid": 4}


@pytest.mark.parametrize("code", ["ProvisionedThroughputExceededException", "ThrottlingException"])
def test_a_throttle_left_after_botocores_retries_is_a_throttled_error(rt: LocalRuntime, code: str) -> None:
    from framework import ThrottledError

    cid = started(rt, f"cb-throttled-{code[:4].lower()}")
    calls = _throttle(rt, lambda n: (code, {}) if n == 1 else None)
    with pytest.raises(ThrottledError):
        rt.client.send_callback_failure(cid, "Declined")
    assert len(calls) == 1 and events_of(rt, f"cb-throttled-{code[:4].lower()}") == []
    rt.client.send_callback_failure(cid, "Declined")  # the next send goes through
    assert len(calls) == 2
