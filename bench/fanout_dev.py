"""Fan-out on ``workflows dev``: a 5,000-item map at max_concurrency 100 over a one-step workflow, run by
``workflows dev`` as a user runs it (a subprocess, driven over its HTTP API only), and the same map on
LocalRuntime in the same run.

dev's AWS calls are made in its own process and its worker processes, where no botocore hook of ours
reaches: they are counted where they arrive instead, at the endpoint. The bench serves moto itself (a
moto server on a thread of this process, behind a counter of requests by service and operation) and
starts dev with ``--endpoint-url`` on it. Those counts are exact, and are everything the stack did
while the map ran: the workers' idle polls, the sweeper's runs and the bench's own status polls (one
``GET /instances/<id>`` a second) included. LocalRuntime's are its botocore hooks' (``aws_calls``).

Wall time is compared as a ratio, dev's over LocalRuntime's, for the same map in the same run: both run
on one machine, so only their ratio means something. dev's is from the create request to the first
status poll that sees the parent ended; LocalRuntime's from the create to the end of
``run_until_idle`` (a virtual clock: the items take no time of their own).
"""

from __future__ import annotations

import io
import json
import re
import signal
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.fanout_dev_flows import ITEM, PARENT, item, parent
from bench.report import Check, Section
from framework.local import LocalRuntime
from framework.local.devaws import lock_path
from framework.local.devprocess import DevProcess

ROOT = Path(__file__).resolve().parents[1]
MODULES = "bench.fanout_dev_flows"
ITEMS = 5_000
CONCURRENCY = 100
WORKERS = 2  # dev's default
DEADLINE = 30 * 60.0  # seconds the map may take on dev before the run counts as not completed
POLL = 1.0  # seconds between the bench's status polls
ENDED = ("complete", "errored", "terminated")
MESSAGES = "sqs.messages"  # counted beside the calls: SendMessage's one, SendMessageBatch's entries

_SERVICE = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/")


class CountingEndpoint:
    """A moto server on 127.0.0.1 (``url``), on a thread of this process, that counts each request as
    ``service.Operation`` (``dynamodb.PutItem``, ``sqs.SendMessage``; ``s3.<METHOD>`` for S3) in
    ``calls``, and the messages that SQS sends carry under ``sqs.messages``."""

    def __init__(self) -> None:
        import logging

        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
        from moto.server import MotoRequestHandler
        from werkzeug.serving import make_server

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._app = DomainDispatcherApplication(create_backend_app)
        self._server = make_server(
            "127.0.0.1", 0, self._counted, threaded=True, request_handler=MotoRequestHandler
        )
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> CountingEndpoint:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._thread.join(10)
        self._server.server_close()
        Path(lock_path(self.url)).unlink(missing_ok=True)  # dev leaves it for the next dev process

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return self.calls.copy()

    def _counted(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        found = _SERVICE.search(environ.get("HTTP_AUTHORIZATION", ""))
        service = found.group(1) if found else "unsigned"
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        operation = target.rsplit(".", 1)[-1] if target else environ.get("REQUEST_METHOD", "?")
        messages = 0
        if service == "sqs" and operation in ("SendMessage", "SendMessageBatch"):
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            environ["wsgi.input"] = io.BytesIO(body)
            messages = len(json.loads(body).get("Entries", [None]))
        with self._lock:
            self.calls[f"{service}.{operation}"] += 1
            self.calls[MESSAGES] += messages
        result: Iterable[bytes] = self._app(environ, start_response)
        return result


class _CountingRuntime(LocalRuntime):
    """LocalRuntime that also counts the messages its sends carry, under ``sqs.messages``."""

    def _session(self) -> Any:
        session = super()._session()
        for operation in ("SendMessage", "SendMessageBatch"):
            session.events.register(f"before-parameter-build.sqs.{operation}", self._messages)
        return session

    def _messages(self, params: dict[str, Any], **_: Any) -> None:
        self.aws_calls[MESSAGES] += len(params.get("Entries", [params]))


def run_local(items: int, concurrency: int) -> dict[str, Any]:
    """The map on LocalRuntime: its output, wall seconds and AWS calls."""
    with _CountingRuntime(workflows=[item, parent]) as rt:
        before = rt.aws_calls.copy()
        started = time.perf_counter()
        run = rt.client.create(PARENT, {"items": items, "concurrency": concurrency}, id="parent")
        rt.run_until_idle()
        seconds = time.perf_counter() - started
        status = run.status()
        return {
            "completed": status.status == "complete",
            "output": status.output,
            "seconds": seconds,
            "calls": rt.aws_calls - before,
        }


@contextmanager
def _dev(endpoint: str, workers: int) -> Iterator[DevProcess]:
    with tempfile.TemporaryDirectory(prefix="bench-dev-") as logs:
        args = ("--port", "0", "--workers", str(workers), "--endpoint-url", endpoint)
        with DevProcess(Path(logs), "dev", *args, modules=MODULES, cwd=ROOT) as dev:  # killed on exit
            yield dev


def run_dev(
    items: int, concurrency: int, workers: int = WORKERS, deadline: float = DEADLINE
) -> dict[str, Any]:
    """The map on ``workflows dev``: whether the parent completed within ``deadline`` seconds, its
    output, wall seconds, the AWS calls at the endpoint meanwhile, and what the HTTP API lists of the
    children. The dev process is stopped (SIGINT; SIGKILL if that fails) whatever happens."""
    with CountingEndpoint() as endpoint, _dev(endpoint.url, workers) as dev:
        before = endpoint.snapshot()
        started = time.perf_counter()
        body = {"id": "parent", "params": {"items": items, "concurrency": concurrency}}
        status, created = dev.call("POST", f"/workflows/{PARENT}/instances", body)
        if status != 201:
            raise RuntimeError(f"dev refused the map's create: {status} {created}")
        polls, view = 0, {}
        while time.perf_counter() - started < deadline:
            time.sleep(POLL)
            polls += 1
            view = dev.call("GET", "/instances/parent")[1]
            if view.get("status") in ENDED:
                break
        seconds = time.perf_counter() - started
        calls = endpoint.snapshot() - before
        children = list(dev.instances(ITEM))
        code = dev.stop(signal.SIGINT)
        tracebacks = dev.err.read_text().count("Traceback")
    return {
        "completed": view.get("status") == "complete",
        "status": view.get("status"),
        "output": view.get("output"),
        "seconds": seconds,
        "calls": calls,
        "polls": polls,
        "children": len(children),
        "children_complete": sum(c["status"] == "complete" for c in children),
        "children_of_parent": len({c["id"] for c in children if c["parent_id"] == "parent"}),
        "exit_code": code,
        "tracebacks": tracebacks,
    }


def db(calls: Counter[str]) -> int:
    return sum(n for op, n in calls.items() if op.startswith("dynamodb."))


def sends(calls: Counter[str]) -> int:
    return calls["sqs.SendMessage"] + calls["sqs.SendMessageBatch"]


def fanout_dev_section(
    items: int = ITEMS, concurrency: int = CONCURRENCY, workers: int = WORKERS, deadline: float = DEADLINE
) -> Section:
    local = run_local(items, concurrency)
    dev = run_dev(items, concurrency, workers, deadline)
    expected = {"succeeded": items, "sum": items * (items - 1)}
    exact = dev["completed"] and dev["output"] == expected
    joined = dev["children"] == dev["children_of_parent"] == dev["children_complete"] == items
    at = f"{items}-item map at max_concurrency {concurrency}"
    ratio = dev["seconds"] / local["seconds"]
    dev_calls, local_calls = dev["calls"], local["calls"]
    checks = [
        Check(
            f"{at} on workflows dev: completed with the exact output, each item one child",
            1 if exact and joined and not dev["tracebacks"] else 0,
            target="1",
            passed=bool(exact and joined and not dev["tracebacks"]),
            note=f"parent {dev['status']}; {dev['children']} children listed over the HTTP API, "
            f"{dev['children_of_parent']} of the parent, {dev['children_complete']} complete; "
            f"{dev['tracebacks']} tracebacks in dev's output; {workers} workers"
            + ("" if dev["completed"] else f"; not ended after {deadline:.0f} s"),
        ),
        Check(
            f"{at}: wall time on workflows dev / on LocalRuntime",
            round(ratio, 1),
            note=f"{round(dev['seconds'])} s against {round(local['seconds'], 1)} s in this run; dev sends "
            "every AWS call through one lock to a moto server over HTTP (docs/local-testing.md)",
        ),
        Check(
            f"{at} on workflows dev: DynamoDB calls per item (at the endpoint)",
            round(db(dev_calls) / items, 2),
            note=f"LocalRuntime: {round(db(local_calls) / items, 2)}; dev's include its sweeps and the "
            f"bench's {dev['polls']} status polls, and its workers' journal caches are per process",
        ),
        Check(
            f"{at} on workflows dev: SQS messages sent per item (at the endpoint)",
            round(dev_calls[MESSAGES] / items, 2),
            note=f"in {round(sends(dev_calls) / items, 2)} send calls per item; LocalRuntime: "
            f"{round(local_calls[MESSAGES] / items, 2)} messages in {round(sends(local_calls) / items, 2)}",
        ),
    ]
    data = {
        "items": items,
        "concurrency": concurrency,
        "workers": workers,
        "dev_seconds": round(dev["seconds"], 1),
        "local_seconds": round(local["seconds"], 1),
        "dev_calls": dict(dev_calls),
        "local_calls": dict(local_calls),
        "dev_status_polls": dev["polls"],
        "dev_exit_code": dev["exit_code"],
        "local_completed": local["completed"] and local["output"] == expected,
    }
    return Section(
        f"12. Fan-out on workflows dev: a {items}-item map over a one-step workflow at max_concurrency "
        f"{concurrency}, against LocalRuntime",
        checks,
        data,
    )
