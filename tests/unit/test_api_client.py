"""``ApiClient`` without a server: which URLs are signed and how, ids in paths, errors, reading the
API's JSON back, and the CLI's choice between the API and the direct path."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from framework import (
    ApiError,
    ApiUnreachableError,
    InstanceAlreadyExistsError,
    InstanceNotFoundError,
    InvalidParamsError,
    InvalidStateError,
    PayloadTooLargeError,
    SerializationError,
    ThrottledError,
    WorkflowNotFoundError,
    cli,
)
from framework.core.records import Status
from framework.manage.api_client import ApiClient, ApiInstance, api_error, signing_for
from framework.manage.history import HistoryAttempt, HistoryEntry
from framework.manage.status import InstanceStatus, RunningStatus, WaitStatus
from tests.conftest import free_port

EXECUTE_API = "https://abc123.execute-api.eu-west-1.amazonaws.com"
KEY, SECRET, TOKEN = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-token"
NOW = datetime(2026, 11, 25, 21, 35, 26, 386900, tzinfo=UTC)
VIEW = {
    "id": "exp-1",
    "workflow": "expense-approval",
    "status": "waiting",
    "output": None,
    "error": None,
    "created_at": NOW.isoformat(),
    "updated_at": NOW.isoformat(),
    "parent_id": None,
    "waits": [],
    "running_steps": [],
    "counts": {"steps_done": 1, "steps_failed": 0, "retries": 0, "failures": 0},
}


class Sent:
    """Stands for urllib's opener: records each request, answers ``status`` with ``body``."""

    def __init__(self, status: int = 200, body: Any = VIEW) -> None:
        self.status, self.body = status, body
        self.requests: list[urllib.request.Request] = []

    def open(self, request: urllib.request.Request, timeout: float) -> Any:
        self.requests.append(request)
        data = json.dumps(self.body).encode()
        if self.status >= 400:
            raise urllib.error.HTTPError(request.full_url, self.status, "error", {}, io.BytesIO(data))  # type: ignore[arg-type]
        response = io.BytesIO(data)
        response.status = self.status  # type: ignore[attr-defined]
        return response

    def header(self, name: str) -> str | None:
        headers = {k.lower(): v for k, v in self.requests[-1].header_items()}
        return headers.get(name.lower())


def client_of(url: str, sent: Sent, **kwargs: Any) -> ApiClient:
    session = boto3.Session(aws_access_key_id=KEY, aws_secret_access_key=SECRET, aws_session_token=TOKEN)
    client = ApiClient(url, session=session, **kwargs)
    client._opener = sent  # type: ignore[assignment]
    return client


@pytest.mark.parametrize(
    ("url", "signing"),
    [
        (EXECUTE_API, ("execute-api", "eu-west-1")),
        ("https://abc123.execute-api.us-east-1.amazonaws.com/prod/", ("execute-api", "us-east-1")),
        ("https://ABC.Execute-Api.ap-south-1.amazonaws.com", ("execute-api", "ap-south-1")),
        ("https://abc.execute-api.cn-north-1.amazonaws.com.cn", ("execute-api", "cn-north-1")),
        ("https://x-vpce-1.execute-api.eu-central-1.vpce.amazonaws.com", ("execute-api", "eu-central-1")),
        ("https://abcdefg.lambda-url.us-west-2.on.aws/", ("lambda", "us-west-2")),
        ("http://127.0.0.1:8787", None),
        ("http://localhost:8787", None),
        ("https://api.example.com", None),
        ("https://execute-api.eu-west-1.amazonaws.com.example.com", None),
        ("https://a.b.execute-api.eu-west-1.amazonaws.com", None),
    ],
)
def test_the_service_and_region_come_from_the_host(url: str, signing: tuple[str, str] | None) -> None:
    assert signing_for(url) == signing
    assert ApiClient(url).signing == signing


def _verify_sigv4(request: urllib.request.Request, service: str, region: str) -> None:
    """Check the request's signature as AWS does (Signature Version 4, written out here from the
    specification, not botocore's code): the canonical request, the string to sign, the key."""
    headers = {k.lower(): v for k, v in request.header_items()}
    algorithm, _, fields = headers["authorization"].partition(" ")
    parts = dict(p.strip().split("=", 1) for p in fields.split(","))
    assert algorithm == "AWS4-HMAC-SHA256"
    stamp = headers["x-amz-date"]
    assert parts["Credential"] == f"{KEY}/{stamp[:8]}/{region}/{service}/aws4_request"
    signed = parts["SignedHeaders"].split(";")
    assert {"host", "x-amz-date", "x-amz-security-token"} <= set(signed)
    assert headers["x-amz-security-token"] == TOKEN
    url = urllib.parse.urlsplit(request.full_url)
    values = {**headers, "host": url.netloc}
    query = sorted(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
    canonical = "\n".join(
        [
            request.get_method(),
            urllib.parse.quote(url.path, safe="/~"),  # each segment encoded once more, but for S3
            "&".join(
                f"{urllib.parse.quote(k, safe='~')}={urllib.parse.quote(v, safe='~')}" for k, v in query
            ),
            "".join(f"{name}:{values[name].strip()}\n" for name in signed),
            ";".join(signed),
            hashlib.sha256(request.data or b"").hexdigest(),  # type: ignore[arg-type]
        ]
    )
    scope = f"{stamp[:8]}/{region}/{service}/aws4_request"
    to_sign = f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    key = f"AWS4{SECRET}".encode()
    for part in (stamp[:8], region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    assert parts["Signature"] == hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def test_an_execute_api_url_is_signed_with_sigv4() -> None:
    sent = Sent()
    client = client_of(EXECUTE_API, sent)
    client.get("orders/2024/7").status()
    _verify_sigv4(sent.requests[-1], "execute-api", "eu-west-1")
    assert sent.requests[-1].full_url == f"{EXECUTE_API}/instances/orders%252F2024%252F7"
    sent.body = {"id": "exp-1", "status": "waiting"}
    ApiInstance(client, "exp-1").send_event("approval", {"approved": True})  # a body, in the signature
    _verify_sigv4(sent.requests[-1], "execute-api", "eu-west-1")
    sent.body = {"id": "exp-1", "entries": [], "cursor": None}
    ApiInstance(client, "exp-1").history_page(10, "c/u=r", results=True)  # a query, in canonical order
    _verify_sigv4(sent.requests[-1], "execute-api", "eu-west-1")
    lam = Sent()
    client_of("https://abcdefg.lambda-url.us-west-2.on.aws", lam).get("x")
    _verify_sigv4(lam.requests[-1], "lambda", "us-west-2")


def test_a_loopback_url_is_sent_unsigned_and_a_named_signing_signs_any_host() -> None:
    sent = Sent()
    client_of("http://127.0.0.1:8787", sent).get("exp-1")
    assert sent.header("authorization") is None and sent.header("x-amz-date") is None
    custom = Sent()
    client_of("https://api.example.com", custom, signing=("execute-api", "eu-west-1")).get("exp-1")
    _verify_sigv4(custom.requests[-1], "execute-api", "eu-west-1")


def test_no_credentials_to_sign_with_fails_before_sending(monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore.exceptions import NoCredentialsError

    class NoCredentials:
        def get_credentials(self) -> None:
            return None

    sent = Sent()
    client = ApiClient(EXECUTE_API, session=NoCredentials())
    client._opener = sent  # type: ignore[assignment]
    with pytest.raises(NoCredentialsError):
        client.get("exp-1")
    assert sent.requests == []


def test_ids_go_into_paths_encoded_twice_and_names_once() -> None:
    sent = Sent()
    client = client_of("http://127.0.0.1:8787/", sent)
    for instance_id, segment in [
        ("orders/2024/7", "orders%252F2024%252F7"),
        ("ana@example.com", "ana%2540example.com"),
        ("order:1", "order%253A1"),
        ("plain-1", "plain-1"),
    ]:
        sent.body = {**VIEW, "id": instance_id}
        client.get(instance_id)
        assert sent.requests[-1].full_url == f"http://127.0.0.1:8787/instances/{segment}"
        client.get(instance_id).pause()
        assert sent.requests[-1].full_url == f"http://127.0.0.1:8787/instances/{segment}/pause"
        assert sent.requests[-1].get_method() == "POST" and sent.requests[-1].data is None
    sent.body = {"id": "x", "status": "queued"}
    client.create("expense-approval", {"a": 1}, id="x")
    assert sent.requests[-1].full_url == "http://127.0.0.1:8787/workflows/expense-approval/instances"
    assert json.loads(sent.requests[-1].data) == {"id": "x", "params": {"a": 1}}  # type: ignore[arg-type]
    assert sent.header("content-type") == "application/json"
    sent.body = {"status": "accepted"}
    client.send_callback_failure("Y2I=", "Declined")
    assert sent.requests[-1].full_url == "http://127.0.0.1:8787/callbacks/Y2I%3D/failure"
    ApiInstance(client, "x").terminate(rollback=True)
    assert json.loads(sent.requests[-1].data) == {"rollback": True}  # type: ignore[arg-type]
    sent.body = {"instances": [], "cursor": None}
    client.list(status="waiting", limit=5, cursor="abc=")
    assert (
        sent.requests[-1].full_url == "http://127.0.0.1:8787/instances?limit=5&status=waiting&cursor=abc%3D"
    )


def test_create_says_whether_it_wrote() -> None:
    sent = Sent(201, {"id": "x", "status": "queued"})
    client = client_of("http://127.0.0.1:8787", sent)
    assert client.create("wf", id="x").created
    sent.status, sent.body = 200, {"id": "x", "status": "complete"}
    again = client.create("wf", id="x")
    assert again.id == "x" and not again.created
    assert json.loads(sent.requests[-1].data) == {"id": "x", "params": None}  # type: ignore[arg-type]
    with pytest.raises(SerializationError):
        client.create("wf", {"n": float("inf")})
    assert len(sent.requests) == 2  # nothing sent


def _error(status: int, name: str | None, message: str = "m", **extra: Any) -> bytes:
    body: dict[str, Any] = {"message": message, **extra}
    if name is not None:
        body["error"] = name
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("status", "name", "expected"),
    [
        (404, "InstanceNotFoundError", InstanceNotFoundError),
        (404, "WorkflowNotFoundError", WorkflowNotFoundError),
        (409, "InstanceAlreadyExistsError", InstanceAlreadyExistsError),
        (409, "InvalidStateError", InvalidStateError),
        (413, "PayloadTooLargeError", PayloadTooLargeError),
        (413, "PayloadTooLarge", PayloadTooLargeError),
        (503, "ThrottledError", ThrottledError),
    ],
)
def test_an_error_the_direct_client_raises_too_raises_its_class(
    status: int, name: str, expected: type[Exception]
) -> None:
    error = api_error(status, _error(status, name, "no instance 'x'"))
    assert type(error) is expected and str(error) == "no instance 'x'"


def test_other_errors_are_api_errors_with_the_answers_status_name_and_message() -> None:
    invalid = api_error(422, _error(422, "InvalidParamsError", "bad", details=[{"loc": ["a"]}]))
    assert isinstance(invalid, InvalidParamsError) and invalid.details == [{"loc": ["a"]}]
    for status, body, name, message in [
        (400, _error(400, "BadRequest", "limit: too small"), "BadRequest", "limit: too small"),
        (404, _error(404, "NotFound", "no route"), "NotFound", "no route"),
        (403, _error(403, None, "Forbidden"), "", "Forbidden"),  # API Gateway's own answer
        (500, _error(500, "InternalError", "logged"), "InternalError", "logged"),
        (500, _error(500, "InstanceNotFoundError", "odd"), "InstanceNotFoundError", "odd"),  # not a 4xx
        (502, b"<html>Bad Gateway</html>", "", "<html>Bad Gateway</html>"),
        (504, b"", "", "no body"),
    ]:
        error = api_error(status, body)
        assert type(error) is ApiError, (status, body)
        assert (error.status, error.error, error.message) == (status, name, message)
    assert str(ApiError(400, "BadRequest", "limit: too small")) == "400 BadRequest: limit: too small"


def test_an_error_answer_over_http_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    sent = Sent(404, {"error": "InstanceNotFoundError", "message": "no instance 'x'"})
    with pytest.raises(InstanceNotFoundError, match="no instance 'x'"):
        client_of("http://127.0.0.1:8787", sent).get("x")


def test_no_answer_is_api_unreachable() -> None:
    port = free_port()
    with pytest.raises(ApiUnreachableError, match=f"cannot reach the API at http://127.0.0.1:{port}"):
        ApiClient(f"http://127.0.0.1:{port}").get("x")  # nothing listens
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        held: list[socket.socket] = []
        accepting = threading.Thread(target=lambda: held.append(silent.accept()[0]), daemon=True)
        accepting.start()
        with pytest.raises(ApiUnreachableError, match=r"no answer within 0\.2 s"):
            ApiClient(url, timeout=0.2).get("x")
        accepting.join(5)
        for conn in held:
            conn.close()
    with pytest.raises(ValueError, match="http:// or https://"):
        ApiClient("ftp://example.com")
    with pytest.raises(ValueError, match="no query"):
        ApiClient("http://127.0.0.1:8787?x=1")


def test_status_and_history_read_back_what_as_dict_gave() -> None:
    wait = WaitStatus("retry", "charge", NOW, attempt=3)
    status = InstanceStatus(
        "exp-1",
        "expense-approval",
        Status.WAITING,
        None,
        None,
        NOW,
        NOW,
        parent_id="p-1",
        waits=(wait, WaitStatus("map", "all", None)),
        running_steps=(RunningStatus("charge", 2, NOW),),
        counts={"steps_done": 1, "steps_failed": 0, "retries": 2, "failures": 2},
    )
    assert InstanceStatus.from_dict(status.as_dict()) == status
    assert InstanceStatus.from_dict(json.loads(json.dumps(status.as_dict()))) == status
    newer = {**VIEW, "status": "hibernating", "new_field": 1}
    assert InstanceStatus.from_dict(newer).status is Status.UNKNOWN
    failed = {"name": "E", "message": "m"}
    entries = [
        HistoryEntry("step", "charge", "complete", NOW, NOW, (HistoryAttempt(NOW, NOW, None),),
                     result_bytes=4, result_omitted="not_requested"),
        HistoryEntry("step", "retry", "retrying", NOW, None,
                     (HistoryAttempt(NOW, NOW, failed), HistoryAttempt(NOW, None, None))),
        HistoryEntry("sleep", "nap", "waiting", NOW, None, wake_at=NOW),
        HistoryEntry("wait", "approval", "complete", NOW, NOW, wake_at=NOW, event_type="ok",
                     payload={"a": 1}),
        HistoryEntry("invoke", "child", "complete", NOW, NOW, result={"r": 1}, wake_at=NOW, child_id="c-1"),
        HistoryEntry("map", "all", "running", NOW, None, progress={"items": 2, "workflow": "w"}),
    ]  # fmt: skip
    for entry in entries:
        assert HistoryEntry.from_dict(entry.as_dict()) == entry, entry.kind


def test_the_cli_goes_through_the_api_with_api_url_before_or_after_the_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("WORKFLOWS_API_URL", raising=False)
    for argv in (
        ["--api-url", "http://127.0.0.1:8787", "status", "x"],
        ["status", "x", "--api-url", "http://127.0.0.1:8787"],
    ):
        args = cli.parser().parse_args(argv)
        client = cli._client(args)
        assert isinstance(client, ApiClient) and client.api_url == "http://127.0.0.1:8787"
    monkeypatch.setenv("WORKFLOWS_API_URL", EXECUTE_API)
    client = cli._client(cli.parser().parse_args(["status", "x"]))
    assert isinstance(client, ApiClient) and client.signing == ("execute-api", "eu-west-1")
    # An option of the direct path on the command line outweighs the environment's API URL.
    assert cli._api_url(cli.parser().parse_args(["status", "x", "--table", "t"])) is None
    for direct in (["--table", "t"], ["--endpoint-url", "http://127.0.0.1:5000"], ["--queue-url", "q"]):
        args = cli.parser().parse_args(["--api-url", "http://127.0.0.1:8787", "status", "x", *direct])
        with pytest.raises(cli.CliError, match=f"give it without {direct[0]}"):
            cli._client(args)
    with pytest.raises(cli.CliError, match="--api-url: the API URL must be"):
        cli._client(cli.parser().parse_args(["--api-url", "127.0.0.1:8787", "status", "x"]))


def test_skip_over_the_api_of_aws_is_refused_before_sending(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["skip", "x", "--api-url", EXECUTE_API]) == 1
    assert "an API on AWS has no skip route" in capsys.readouterr().err


def test_schedules_pause_and_resume_go_to_their_routes() -> None:
    view = {
        "workflow": "nightly",
        "cron": "0 3 * * *",
        "every": None,
        "timezone": "Europe/Paris",
        "catch_up": "last",
        "catch_up_window": 86400.0,
        "paused": False,
        "last_fire": None,
        "next_fire": "2026-12-07T02:00:00+00:00",
    }
    sent = Sent(200, {"schedules": [view]})
    client = client_of("http://127.0.0.1:8787", sent)
    listed = client.schedules()
    assert [s.workflow for s in listed] == ["nightly"] and listed[0].as_dict() == view
    assert sent.requests[-1].full_url == "http://127.0.0.1:8787/schedules"
    sent.body = view | {"paused": True, "next_fire": None}
    assert client.pause_schedule("nightly").paused
    assert (sent.requests[-1].get_method(), sent.requests[-1].full_url) == (
        "POST",
        "http://127.0.0.1:8787/schedules/nightly/pause",
    )
    sent.body = view
    assert not client.resume_schedule("nightly").paused
    assert sent.requests[-1].full_url.endswith("/schedules/nightly/resume")
    sent.status, sent.body = 404, {"error": "WorkflowNotFoundError", "message": "no schedule"}
    with pytest.raises(WorkflowNotFoundError):
        client.pause_schedule("plain")
