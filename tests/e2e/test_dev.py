"""`workflows dev` run as a user runs it: a subprocess driven over HTTP only, stopped with Ctrl-C (SIGINT),
and killed with SIGKILL and started again against the same moto server."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from framework.core.ids import path_segment
from framework.local import LocalRuntime
from framework.local.apigw import http_api_event, http_api_response
from framework.local.dev import (
    DevError,
    DevOptions,
    _environment,
    refuse_cross_site,
    schedule_seconds,
    skip_route,
)
from framework.local.devaws import SerialSender, environment, local_aws_environment, lock_path
from framework.local.devprocess import DevProcess as Dev
from framework.local.devprocess import until
from tests.conftest import free_port
from tests.e2e import devflows

ROOT = Path(__file__).resolve().parents[2]
MODULES = "tests.e2e.devflows"


def gone(pid: int) -> bool:
    """The process has exited (a zombie that nobody reaped yet counts as exited)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        return stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"
    return False


@pytest.fixture
def start_dev(tmp_path: Path) -> Iterator[Callable[..., Dev]]:
    started: list[Dev] = []

    def start(*args: str, modules: str = MODULES, **env: str) -> Dev:
        dev = Dev(tmp_path, f"dev{len(started)}", *args, modules=modules, cwd=ROOT, **env)
        started.append(dev)
        return dev

    yield start
    for dev in started:
        dev.stop(signal.SIGKILL)


def test_dev_serves_the_stack_over_http_and_stops_on_ctrl_c(start_dev: Callable[..., Dev]) -> None:
    dev = start_dev("--port", "0", "--workers", "2", "--sweep-every", "1")
    assert dev.call("GET", "/openapi.json")[0] == 200
    assert dev.call("GET", "/nowhere")[1]["error"] == "NotFound"
    assert dev.call("POST", "/workflows/nope/instances", {})[1]["error"] == "WorkflowNotFoundError"
    # What a web page could send without a CORS preflight is refused, and nothing is written.
    create = "/workflows/dev-order/instances"
    body = json.dumps({"id": "x-1", "params": {"item": "x"}}).encode()
    status, refused = dev.send("POST", create, body, {})
    assert (status, refused["error"]) == (415, "UnsupportedMediaType")
    for kind in ("text/plain", "application/x-www-form-urlencoded"):
        assert dev.send("POST", create, body, {"content-type": kind})[0] == 415
    page = {"origin": "https://example.com"}
    assert dev.send("POST", "/instances/x-1/terminate", b"", page)[1]["error"] == "Forbidden"
    assert dev.send("POST", create, body, page | {"content-type": "application/json"})[0] == 403
    assert dev.call("GET", "/instances/x-1")[0] == 404
    own = {"origin": dev.url, "content-type": "application/json"}  # Swagger UI, served by dev itself
    assert dev.send("POST", "/workflows/nope/instances", b"{}", own)[0] == 404

    status, created = dev.call(
        "POST", "/workflows/dev-order/instances", {"id": "o-1", "params": {"item": "book"}}
    )
    assert (status, created) == (201, {"id": "o-1", "status": "queued"})

    def waiting_for_the_event() -> bool:
        entries = dev.call("GET", "/instances/o-1/history")[1]["entries"]
        at_wait = [e["kind"] for e in entries] == ["step", "sleep", "wait"]
        return at_wait and dev.call("GET", "/instances/o-1")[1]["status"] == "waiting"

    until("the instance to sleep 1 s, then wait for its event", waiting_for_the_event)
    assert dev.call("POST", "/instances/o-1/pause") == (202, {"id": "o-1", "status": "paused"})
    assert dev.call("GET", "/instances/o-1")[1]["status"] == "paused"
    assert dev.call("POST", "/instances/o-1/resume") == (202, {"id": "o-1", "status": "waiting"})
    status, sent = dev.call("POST", "/instances/o-1/events", {"type": "confirm", "payload": {"to": "ana"}})
    assert status == 202 and sent["id"] == "o-1"

    view = until(
        "completion", lambda: (v := dev.call("GET", "/instances/o-1")[1])["status"] == "complete" and v
    )
    assert view["output"] == {"reserved": "reserved book", "shipped": "shipped to ana"}
    entries = dev.call("GET", "/instances/o-1/history")[1]["entries"]
    assert [(e["kind"], e["name"], e["status"]) for e in entries] == [
        ("step", "reserve", "complete"),
        ("sleep", "nap", "complete"),
        ("wait", "confirm", "complete"),
        ("event", "confirm", "consumed"),
        ("step", "ship", "complete"),
    ]
    assert all(len(e["attempts"]) == 1 for e in entries if e["kind"] == "step")
    listed = dev.call("GET", "/workflows/dev-order/instances")[1]["instances"]
    assert [i["id"] for i in listed] == ["o-1"]
    # An id with "/" over HTTP: sent encoded twice, decoded once by dev as by API Gateway, once by the API.
    slash = {"id": "orders/2024/7", "params": {"item": "pen"}}
    assert dev.call("POST", create, slash)[0] == 201
    status, again = dev.call("POST", create, slash)  # the same id, workflow and params: that instance
    assert (status, again["id"]) == (200, "orders/2024/7")
    assert dev.call("GET", "/instances/orders%252F2024%252F7")[1]["id"] == "orders/2024/7"
    assert dev.call("GET", "/instances/orders%2F2024%2F7")[1]["error"] == "NotFound"  # "/" once: a separator
    assert dev.call("POST", "/instances/orders%252F2024%252F7/terminate")[0] == 202

    started = time.monotonic()
    assert dev.stop(signal.SIGINT) == 0
    assert time.monotonic() - started < 15  # seconds: nothing is in flight, so no worker waits
    assert "Traceback" not in dev.err.read_text(), dev.err.read_text()
    assert dev.out.read_text().rstrip().endswith("workflows dev: stopped")
    assert all(gone(pid) for pid in dev.worker_pids)


@pytest.fixture
def endpoint(moto_server: str) -> Iterator[str]:
    """A moto server for dev's --endpoint-url; dev leaves its lock file for the next dev process."""
    yield moto_server
    Path(lock_path(moto_server)).unlink(missing_ok=True)


def test_a_killed_dev_process_loses_nothing_on_restart(start_dev: Callable[..., Dev], endpoint: str) -> None:
    # A 12 s worker timeout means a 17 s lease (timeout + 5 s); the work queue's messages come back 20 s
    # after a receive. The killed invocation's message thus returns once its lease has expired.
    args = ("--endpoint-url", endpoint, "--port", "0", "--workers", "1")
    args += ("--worker-timeout", "12", "--visibility-timeout", "20", "--sweep-every", "1")
    first = start_dev(*args)
    assert (
        first.call("POST", "/workflows/dev-slow/instances", {"id": "s-1", "params": {"steps": 3}})[0] == 201
    )

    def completed_steps(dev: Dev) -> list[str]:
        entries = dev.call("GET", "/instances/s-1/history")[1]["entries"]
        return [e["name"] for e in entries if e["status"] == "complete"]

    until("a step", lambda: len(completed_steps(first)) >= 1)
    first.stop(signal.SIGKILL)  # in the middle of a step's body
    until("the workers to die with their dev process", lambda: all(gone(p) for p in first.worker_pids), 5)

    second = start_dev(*args)  # the same stack: same endpoint, same default prefix
    assert second.call("GET", "/instances/s-1")[1]["status"] == "running"  # the lease is still held
    view = until(
        "completion after the restart",
        lambda: (v := second.call("GET", "/instances/s-1")[1])["status"] == "complete" and v,
        timeout=60,
    )
    assert view["output"] == {"total": 0 + 1 + 2}
    entries = second.call("GET", "/instances/s-1/history")[1]["entries"]
    assert [(e["name"], e["status"]) for e in entries] == [(f"step {i}", "complete") for i in range(3)]
    for entry in entries:  # recorded once each; the crash was free (the first at its position is)
        assert [a["error"] for a in entry["attempts"]] == [None], entry
    assert second.stop(signal.SIGTERM) == 0
    assert "Traceback" not in second.err.read_text(), second.err.read_text()


def test_dev_usage_errors() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        commands = {
            "workers": ["--workers", "0"],
            "prefix": ["--prefix", "Not_Valid"],
            "in use": ["--port", str(port), "--modules", MODULES],
            "unreachable": ["--endpoint-url", f"http://127.0.0.1:{free_port()}", "--port", "0"],
            "broken module": ["--modules", "no_such_workflow_module", "--port", "0"],
        }
        running = {
            name: subprocess.Popen(
                [sys.executable, "-m", "framework.cli", "dev", *args],
                cwd=ROOT,
                env=dict(os.environ, PYTHONPATH=str(ROOT)),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for name, args in commands.items()
        }
        results = {name: (proc.wait(60), proc.communicate()[1]) for name, proc in running.items()}
    code, err = results["workers"]
    assert code == 2 and "argument --workers: '0' is not a whole number 1 or more" in err
    assert results["prefix"][0] == 2
    assert results["in use"] == (
        1,
        f"workflows: port {port} on 127.0.0.1 is in use; pick another with --port (0: any free port)\n",
    )
    code, err = results["unreachable"]
    assert code == 1 and err.startswith("workflows: cannot reach --endpoint-url") and err.count("\n") == 1
    assert results["broken module"] == (
        1,
        "workflows: workflow modules 'no_such_workflow_module' failed to import: "
        "ModuleNotFoundError: No module named 'no_such_workflow_module'\n",
    )


def test_run_forever_polls_the_inbox_and_runs_the_sweeper(moto_server: str) -> None:
    with LocalRuntime(workflows=[devflows.order], endpoint_url=moto_server, prefix="forever") as rt:
        stop = threading.Event()
        thread = threading.Thread(target=rt.run_forever, args=(stop,), kwargs={"sweep_every": 0.5})
        thread.start()
        try:
            body = {"action": "create", "workflow": "dev-order", "id": "f-1", "params": {"item": "pen"}}
            rt.boto3_client("sqs").send_message(QueueUrl=rt.inbox_url, MessageBody=json.dumps(body))
            until("the inbox's create", lambda: rt.invocations["WorkerFunction"] >= 1)
            until("the wait", lambda: rt.client.get("f-1").status().status == "waiting")
            rt.client.get("f-1").send_event("confirm", {"to": "bo"})
            until("completion", lambda: rt.client.get("f-1").status().status == "complete")
            until("a sweep", lambda: rt.invocations["SweeperFunction"] >= 2)
        finally:
            stop.set()
            thread.join(10)
        assert not thread.is_alive()
        assert rt.invocations["InboxFunction"] == 1
    with LocalRuntime(workflows=[devflows.order]) as virtual, pytest.raises(ValueError, match="real clock"):
        virtual.run_forever(threading.Event())


def test_requests_and_responses_as_api_gateway_shapes_them() -> None:
    event = http_api_event(
        "post",
        "/a/b",
        raw_query="x=1&x=2&y=",
        headers=[("Host", "127.0.0.1:8787"), ("X-Twice", "a"), ("x-twice", "b"), ("Cookie", "c=1; d=2")],
        body=b"\xff\x00",
    )
    assert event["requestContext"]["http"]["method"] == "POST"
    assert event["queryStringParameters"] == {"x": "1,2", "y": ""}
    assert event["headers"] == {"host": "127.0.0.1:8787", "x-twice": "a,b"}
    assert event["cookies"] == ["c=1", "d=2"]
    assert event["isBase64Encoded"] and event["body"] == "/wA="
    assert event["requestContext"]["domainName"] == "127.0.0.1"
    assert http_api_response({"statusCode": 204, "headers": {"a": "b"}, "cookies": ["k=v"]}) == (
        204,
        [("a", "b"), ("Set-Cookie", "k=v")],
        b"",
    )
    assert http_api_response({"ok": True}) == (200, [("Content-Type", "application/json")], b'{"ok": true}')
    assert schedule_seconds("rate(1 minute)") == 60 and schedule_seconds("rate(2 hours)") == 7200
    with pytest.raises(DevError, match="--sweep-every"):
        schedule_seconds("cron(0 * * * ? *)")


def test_devs_skip_route_decodes_the_id_as_the_apis_routes_do() -> None:
    """Once as API Gateway does, matched, once more: an id with ``/`` is sent encoded twice, as in every
    route of the API; one without may be sent encoded once or as is."""
    for instance_id in ("orders/2024/7", "ana@example.com", "order:123", "plain-1"):
        assert skip_route(f"/dev/instances/{path_segment(instance_id)}/skip") == instance_id
    assert skip_route("/dev/instances/ana%40example.com/skip") == "ana@example.com"
    assert skip_route("/dev/instances/ana@example.com/skip") == "ana@example.com"
    # Encoded once, a "/" is a separator by the time the route is matched (as API Gateway passes it).
    assert skip_route("/dev/instances/orders%2F2024%2F7/skip") is None
    assert skip_route("/dev/instances/orders/2024/7/skip") is None
    assert skip_route("/instances/a/skip") is None and skip_route("/dev/instances//skip") is None


def test_devs_processes_are_marked_as_dev(monkeypatch: pytest.MonkeyPatch) -> None:
    """``WORKFLOWS_DEV=1`` for dev and its workers (they inherit it): the dashboard shows dev's actions."""
    monkeypatch.delenv("WORKFLOWS_WAIT_SCALE", raising=False)
    changes = _environment(DevOptions(), "http://127.0.0.1:5000")
    assert changes["WORKFLOWS_DEV"] == "1" and "WORKFLOWS_WAIT_SCALE" not in changes
    assert _environment(DevOptions(fast=True), "http://127.0.0.1:5000")["WORKFLOWS_WAIT_SCALE"] == repr(
        1 / 3600
    )


def test_dev_refuses_what_a_web_page_could_send_without_a_preflight() -> None:
    port = 8787
    own = f"http://127.0.0.1:{port}"
    refused = refuse_cross_site("POST", b"{}", origin=None, content_type=None, port=port)
    assert refused is not None and refused[0] == 415
    assert json.loads(refused[2])["error"] == "UnsupportedMediaType"
    assert refuse_cross_site("POST", b"{}", origin=None, content_type=" ", port=port) is not None
    # Other types are the API function's to refuse (415 too); no body needs no type.
    assert refuse_cross_site("POST", b"{}", origin=None, content_type="text/plain", port=port) is None
    assert refuse_cross_site("POST", None, origin=None, content_type=None, port=port) is None
    for origin in ("https://example.com", "http://127.0.0.1:9999", "null", "http://evil.example:8787"):
        answer = refuse_cross_site("POST", None, origin=origin, content_type=None, port=port)
        assert answer is not None and answer[0] == 403, origin
    for origin in (own, f"http://localhost:{port}"):
        assert (
            refuse_cross_site("DELETE", b"{}", origin=origin, content_type="application/json", port=port)
            is None
        )
    assert refuse_cross_site("GET", None, origin="https://example.com", content_type=None, port=port) is None


def test_dev_points_every_boto3_client_at_the_endpoint_with_fake_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "https://s3.example.com")
    monkeypatch.setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "real-looking")
    changes = local_aws_environment("http://127.0.0.1:5000", "us-east-1")
    assert changes["AWS_ENDPOINT_URL"] == "http://127.0.0.1:5000"
    assert changes["AWS_ENDPOINT_URL_S3"] is None and changes["AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"] is None
    assert (changes["AWS_ACCESS_KEY_ID"], changes["AWS_SESSION_TOKEN"]) == ("testing", None)
    with environment(changes):
        import boto3

        assert boto3.client("s3").meta.endpoint_url == "http://127.0.0.1:5000"
        assert "AWS_SESSION_TOKEN" not in os.environ
    assert os.environ["AWS_ENDPOINT_URL_S3"] == "https://s3.example.com"  # put back


class _Echo(BaseHTTPRequestHandler):
    """Answers any POST as DynamoDB's ListTables would, on a keep-alive connection."""

    protocol_version = "HTTP/1.1"
    peers: ClassVar[list[tuple[str, int]]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.peers.append(self.client_address)
        data = b'{"TableNames": []}'
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


def _socket_to(peer: tuple[str, int]) -> socket.socket:
    """This process's socket whose local address is ``peer`` (the client end of a connection)."""
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            if not os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                continue
            candidate = socket.socket(fileno=os.dup(int(fd)))
            if candidate.family == socket.AF_INET and candidate.getsockname() == peer:
                return candidate
            candidate.close()
    raise AssertionError(f"no socket of this process is bound to {peer}")


def test_dev_sends_with_the_socket_options_of_botocores_own_clients() -> None:
    """TCP_NODELAY: without it, each call on a keep-alive connection waits for a delayed ACK (about 40
    ms). Seen on the connection's socket itself, against a plain boto3 client's."""
    import boto3

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    sender = SerialSender(lock_path(url))
    clients = []  # kept, and their pools (with the connection open: keep-alive) with them
    try:
        options = {}
        for name in ("botocore", "dev"):
            session = boto3.Session(region_name="us-east-1")
            if name == "dev":
                session.events.register("before-send", sender)
            clients.append(session.client("dynamodb", endpoint_url=url))
            clients[-1].list_tables()
            with _socket_to(_Echo.peers[-1]) as sock:
                options[name] = (
                    sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY),
                    sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                )
        assert options["dev"] == options["botocore"] and options["dev"][0] != 0
    finally:
        for client in clients:
            client.close()
        sender.close()
        server.shutdown()
        server.server_close()
        Path(lock_path(url)).unlink(missing_ok=True)


def test_the_workflows_own_clients_under_dev_reach_the_endpoint_only(
    start_dev: Callable[..., Dev], endpoint: str, tmp_path: Path
) -> None:
    """The file-processing example reads its file with a boto3 client of its own: under dev it must get
    it from the local endpoint, and no request of such a client may leave 127.0.0.1."""
    import boto3

    log = tmp_path / "requests.log"
    dev = start_dev(
        "--endpoint-url", endpoint, "--port", "0", "--workers", "1",
        modules="examples.file_processing,tests.e2e.requestlog",
        REQUEST_LOG=str(log),
        # Should a request go elsewhere all the same, it goes to a closed local port, never out.
        HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9", NO_PROXY="127.0.0.1,localhost",
    )  # fmt: skip
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket="uploads")
    s3.put_object(Bucket="uploads", Key="a.txt", Body=b"three words here")
    params = {"bucket": "uploads", "key": "a.txt", "table": "verdicts"}
    assert dev.call("POST", "/workflows/file-processing/instances", {"id": "f-1", "params": params})[0] == 201

    def sent() -> list[list[str]]:
        return [line.split() for line in log.read_text().splitlines()] if log.exists() else []

    def elsewhere() -> list[str]:
        return [url for _, _, url in sent() if urllib.parse.urlsplit(url).hostname != "127.0.0.1"]

    def extracted() -> Any:
        entries = dev.call("GET", "/instances/f-1/history?results=true")[1]["entries"]
        return [e for e in entries if e["name"] == "extract text" and e["status"] == "complete"]

    done = until("the file's text, or a request elsewhere", lambda: elsewhere() or extracted())
    assert not elsewhere(), elsewhere()
    assert done[0]["result"] == "three words here"
    worker = {str(pid) for pid in dev.worker_pids}
    assert any(pid in worker and "/uploads/a.txt" in url for pid, _, url in sent()), sent()


def test_a_fan_out_map_over_a_workflow_completes_on_dev(start_dev: Callable[..., Dev]) -> None:
    """Each item a child instance, run by dev's worker processes, joined exactly once."""
    items, concurrency = 150, 20
    dev = start_dev("--port", "0", "--workers", "2")
    body = {"id": "map-1", "params": {"items": items, "concurrency": concurrency}}
    created = dev.call("POST", "/workflows/dev-fanout/instances", body)
    assert created == (201, {"id": "map-1", "status": "queued"})

    def ended() -> Any:
        view = dev.call("GET", "/instances/map-1")[1]
        return view["status"] not in ("queued", "running", "waiting") and view

    view = until("the map's parent to end", ended, timeout=110, every=1)
    assert (view["status"], view["output"]) == (
        "complete",
        {"succeeded": items, "sum": sum(i * i for i in range(items))},
    ), view
    children = list(dev.instances("dev-square", page=40))  # pages: the cursor is followed
    assert len(children) == items
    assert {c["parent_id"] for c in children} == {"map-1"}
    assert len({c["id"] for c in children}) == items
    assert {c["status"] for c in children} == {"complete"}
    assert [i["id"] for i in dev.instances("dev-fanout")] == ["map-1"]
    assert dev.stop(signal.SIGINT) == 0
    assert "Traceback" not in dev.err.read_text(), dev.err.read_text()


def test_an_upload_and_an_event_put_on_dev_start_their_workflows(start_dev: Callable[..., Dev]) -> None:
    import boto3

    dev = start_dev("--port", "0", "--workers", "1")
    banner = dev.out.read_text()
    endpoint = re.search(r"endpoint:\s+(\S+)", banner)
    bucket = re.search(r"uploads:\s+(\S+)", banner)
    bus = re.search(r"event bus:\s+(\S+)", banner)
    assert endpoint and bucket and bus, banner
    aws = {"endpoint_url": endpoint.group(1), "region_name": "us-east-1"}
    aws |= {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    s3 = boto3.client("s3", **aws)
    s3.put_object(Bucket=bucket.group(1), Key="in/report.csv", Body=b"a,b\n")
    s3.put_object(Bucket=bucket.group(1), Key="elsewhere/skip.csv", Body=b"x")  # not under in/
    detail = json.dumps({"order": "o-7"})
    entry = {"Source": "dev.shop", "DetailType": "OrderPlaced", "Detail": detail}
    boto3.client("events", **aws).put_events(Entries=[entry | {"EventBusName": bus.group(1)}])

    def done(workflow: str) -> list[dict[str, Any]]:
        found = list(dev.instances(workflow))
        return found if found and all(i["status"] == "complete" for i in found) else []

    uploads = until("the upload's instance completes", lambda: done("dev-upload"))
    assert [dev.call("GET", f"/instances/{path_segment(i['id'])}")[1]["output"] for i in uploads] == [
        {"key": "in/report.csv", "size": 4}
    ]
    (ordered,) = until("the event's instance completes", lambda: done("dev-ordered"))
    assert dev.call("GET", f"/instances/{path_segment(ordered['id'])}")[1]["output"] == "o-7"
