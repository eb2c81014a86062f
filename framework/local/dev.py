"""``workflows dev``: the stack of ``template.yaml`` on a moto server, served on 127.0.0.1 until Ctrl-C.

One dev process holds:

- the endpoint: a moto server it starts on 127.0.0.1 (its state ends with the process), or one given
  with ``--endpoint-url`` (its state outlives dev, which finds the same stack again by its prefix);
- the HTTP API: each request becomes an API Gateway HTTP API (payload 2.0) event for the template's
  HTTP function, called through its ``Handler`` import path;
- the other SQS event sources (the inbox) and the sweeper's schedule, on one thread;
- N worker processes (``devworker``), each polling the work queue like Lambda's event source mapping.

Why workers are processes: a worker process is what a Lambda container is, one invocation at a time.
The handlers rely on that: Powertools' batch processor and API resolver keep the current batch or
request in module globals, and step timeouts interrupt a body with SIGALRM, which only works on a
process's main thread. In this process, each function is likewise invoked by one thread at a time.

Why every AWS call is serialised (``SerialSender``): moto's server runs each request on its own thread
with no lock around its backends, so concurrent requests race. Checked on moto 5.2.5: four clients doing
conditional read-modify-write updates of one item got 142 successes for a counter that ended at 140, two
writes that "succeeded" on a stale condition. Leases and journal revisions rely on those conditions, so
dev's processes take turns on the endpoint.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import re
import signal
import socket
import sys
import threading
import time
import traceback
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TextIO

from pydantic import ValidationError

from framework.api.registry import REGISTRY
from framework.backends.environment import ENV_DEV, Settings
from framework.core.ids import from_path
from framework.errors import InstanceNotFoundError, InvalidStateError, WorkflowError
from framework.local import devfile, devreload
from framework.local.apigw import gateway_path, http_api_event, http_api_response
from framework.local.devaws import SerialSender, environment, local_aws_environment, lock_path
from framework.local.devpool import STOP_GRACE, DevError, Workers
from framework.local.runtime import WORK_QUEUE, LocalRuntime
from framework.local.template import load_stack

__all__ = [
    "IDLE",
    "DevError",
    "DevOptions",
    "DevRuntime",
    "refuse_cross_site",
    "run",
    "schedule_seconds",
    "skip",
    "skip_route",
]

IDLE = 0.2  # seconds between polls of an empty queue (short polls: see LocalRuntime.run_forever)
MAX_REQUEST_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit
REGION = "us-east-1"  # the local stack's (LocalRuntime's default): its queue URLs and ARNs name it
FAST_SCALE = 1 / 3600  # --fast: WORKFLOWS_WAIT_SCALE, an hour of waiting lasts a second
SKIP_ROUTE = re.compile(r"/dev/instances/([^/]+)/skip")  # dev's own route, not the deployed API's


@dataclass(frozen=True)
class DevOptions:
    """What ``workflows dev`` was asked for. None means: as the template (or the environment) says."""

    port: int = 8787
    workers: int = 2
    modules: str | None = None  # default: $WORKFLOW_MODULES, else the template's WorkflowModules
    endpoint_url: str | None = None  # default: start a moto server in this process
    prefix: str = "dev"
    template: str | None = None
    sweep_every: float | None = None  # default: the sweeper's rate(...) schedule
    worker_timeout: int | None = None  # default: the worker function's Timeout
    visibility_timeout: int | None = None  # default: the work queue's VisibilityTimeout
    fast: bool = False  # every new wait lasts FAST_SCALE of its time (unless WORKFLOWS_WAIT_SCALE is set)
    reload: bool = True  # reload the workflow modules when their files change


class DevRuntime(LocalRuntime):
    """``LocalRuntime`` as each dev process runs it: on an endpoint and the real clock, engine settings
    from WORKFLOWS_* variables as in Lambda, every AWS call through ``sender``, and the worker's timeout
    and the work queue's receive visibility as ``options`` say."""

    def __init__(self, options: DevOptions, endpoint_url: str, sender: SerialSender) -> None:
        super().__init__(
            endpoint_url=endpoint_url,
            clock="real",
            template=options.template,
            region=REGION,
            prefix=options.prefix,
            settings=Settings.from_env(),
        )
        self._options = options
        self._sender = sender

    def _session(self) -> Any:
        session = super()._session()
        session.events.register("before-send", self._sender)
        return session

    def _start(self) -> None:
        super()._start()
        work = next(p for p in self._pollers if p.queue == WORK_QUEUE)
        timeout = self._options.worker_timeout or work.function.timeout
        visibility = self._options.visibility_timeout or work.visibility
        if visibility < timeout:
            # Lambda refuses the same: a message would come back while its invocation still runs.
            raise DevError(
                f"the work queue's visibility timeout ({visibility} s) is shorter than the worker's timeout "
                f"({timeout} s); raise --visibility-timeout or lower --worker-timeout"
            )
        self.worker = replace(work.function, timeout=timeout)
        self.visibility = visibility
        self._pollers = [
            replace(p, function=self.worker, visibility=visibility) if p.queue == WORK_QUEUE else p
            for p in self._pollers
        ]
        for function in self.functions:  # import the API's handler now: the first request is not slow
            if function.http:
                self._handler(function)


def schedule_seconds(expression: str) -> float:
    """Seconds between runs of an EventBridge ``rate(N unit)`` schedule."""
    match = re.fullmatch(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)", expression.strip())
    if not match:
        raise DevError(f"cannot follow the sweeper's schedule {expression!r}; give --sweep-every SECONDS")
    return int(match[1]) * {"minute": 60, "hour": 3600, "day": 86400}[match[2].rstrip("s")]


# -- the HTTP API ---------------------------------------------------------------------------------------
class _ApiServer(ThreadingHTTPServer):
    daemon_threads = True
    call: Callable[[dict[str, Any]], Any]
    skip: Callable[[str], tuple[int, list[tuple[str, str]], bytes]]


class _ApiHandler(BaseHTTPRequestHandler):
    """Every method and path goes to the HTTP function, as API Gateway's ``$default`` route does."""

    server: _ApiServer
    server_version = "workflows-dev"

    def _serve(self) -> None:
        started = time.monotonic()
        status, headers, data = self._respond()
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        print(f"{self.command} {self.path} {status} {(time.monotonic() - started) * 1000:.0f}ms", flush=True)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _serve

    def _respond(self) -> tuple[int, list[tuple[str, str]], bytes]:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return _gateway_error(411, "Length Required")
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return _gateway_error(400, "Bad Request")
        if length > MAX_REQUEST_BYTES:
            return _gateway_error(413, "Request Entity Too Large")
        body = self.rfile.read(length) if length > 0 else None
        refused = refuse_cross_site(
            self.command,
            body,
            origin=self.headers.get("Origin"),
            content_type=self.headers.get("Content-Type"),
            port=self.server.server_address[1],
        )
        if refused is not None:
            return refused
        url = urllib.parse.urlsplit(self.path)
        skipped = skip_route(url.path)
        if skipped is not None:  # dev's own route: the deployed API has no such thing
            if self.command != "POST":
                return _api_error(405, "MethodNotAllowed", "POST to skip an instance's wait")
            return self.server.skip(skipped)
        try:
            event = http_api_event(
                self.command,
                gateway_path(url.path),  # HTTP APIs pass the path percent-decoded
                raw_query=url.query,
                headers=self.headers.items(),
                body=body,
                source_ip=self.client_address[0],
            )
        except ValidationError:
            return _gateway_error(400, "Bad Request")
        try:
            return http_api_response(self.server.call(event))
        except Exception:  # a function error: API Gateway answers 500; the trace goes to the dev output
            traceback.print_exc()
            return _gateway_error(500, "Internal Server Error")

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Each request is printed once it is answered, with its time (see ``_serve``)."""


def skip_route(path: str) -> str | None:
    """The instance id of a ``/dev/instances/{id}/skip`` request path as the client sent it, or None
    for another path. Decoded as the API's routes decode theirs: once as API Gateway does
    (``gateway_path``), matched, then once more (``ids.from_path``). So an id with ``/`` is sent
    encoded twice (``orders%252F2024%252F7``), and one without may be sent encoded once or as is."""
    route = SKIP_ROUTE.fullmatch(gateway_path(path))
    return None if route is None else from_path(route[1])


def refuse_cross_site(
    method: str, body: bytes | None, *, origin: str | None, content_type: str | None, port: int
) -> tuple[int, list[tuple[str, str]], bytes] | None:
    """The answer to a request that a web page of another site could have made, or None to serve it.

    dev has no authorization (the deployed API takes IAM or JWT), so a page open in the developer's
    browser must not be able to write to it. A browser sends a page's cross-site POST without asking
    first (no CORS preflight) when it has no body type or a form's (``text/plain``, form encodings):

    - a body needs ``Content-Type: application/json``: one with none gets 415 here, in the API's error
      shape (the API function itself reads it as JSON); other types get 415 from the API function;
    - a write whose ``Origin`` (browsers send one with every POST) is not dev's own address
      (``http://127.0.0.1:<port>`` or ``http://localhost:<port>``) gets 403, a body or not. Swagger UI
      at ``/docs`` is dev's own; curl and the SDKs send no ``Origin``."""
    if method in ("GET", "HEAD", "OPTIONS"):
        return None
    if origin is not None and origin not in (f"http://127.0.0.1:{port}", f"http://localhost:{port}"):
        why = f"a request from the page of {origin[:100]!r} refused: workflows dev serves its own pages only"
        return _api_error(403, "Forbidden", why)
    if body and not (content_type or "").strip():
        return _api_error(415, "UnsupportedMediaType", "send the body as application/json (Content-Type)")
    return None


def _api_error(status: int, name: str, message: str) -> tuple[int, list[tuple[str, str]], bytes]:
    """An error in the API function's own shape."""
    data = json.dumps({"error": name, "message": message}).encode()
    return status, [("Content-Type", "application/json")], data


def _gateway_error(status: int, message: str) -> tuple[int, list[tuple[str, str]], bytes]:
    """An error that API Gateway itself answers, in its shape."""
    return status, [("Content-Type", "application/json")], json.dumps({"message": message}).encode()


def _listen(port: int) -> _ApiServer:
    try:
        return _ApiServer(("127.0.0.1", port), _ApiHandler)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise DevError(
                f"port {port} on 127.0.0.1 is in use; pick another with --port (0: any free port)"
            ) from None
        raise DevError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}") from None


# -- the endpoint -----------------------------------------------------------------------------------------
@contextlib.contextmanager
def _moto_server() -> Iterator[str]:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def _check_endpoint(url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DevError(f"--endpoint-url {url!r} is not an http:// or https:// URL")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=3).close()
    except OSError as exc:
        raise DevError(f"cannot reach --endpoint-url {url}: {exc.strerror or exc}") from None


# -- the dev process ---------------------------------------------------------------------------------------
def run(options: DevOptions, out: TextIO | None = None) -> None:
    """Serve the stack until SIGINT or SIGTERM, then stop everything and return. Raise DevError (nothing
    left running) when it cannot start."""
    out = out or sys.stdout
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)  # the logs of a long-running process, as they come
    stop, force = threading.Event(), threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        (force if stop.is_set() else stop).set()  # a second Ctrl-C stops busy workers at once

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with contextlib.ExitStack() as stack:
            tick = _serve(options, stop, force, stack, out)
            while not stop.wait(0.2):
                tick()
            print("workflows dev: stopping", file=out, flush=True)
        print("workflows dev: stopped", file=out, flush=True)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _modules(options: DevOptions) -> str:
    return (
        options.modules
        or os.environ.get("WORKFLOW_MODULES")
        or str(load_stack(options.template).parameters.get("WorkflowModules") or "")
    )


def _environment(options: DevOptions, endpoint: str) -> dict[str, str | None]:
    """The environment changes of dev's processes: AWS calls to ``endpoint``; ``WORKFLOWS_DEV=1``, so
    that the dashboard offers dev's own actions; with ``--fast``, short waits (``WORKFLOWS_WAIT_SCALE``,
    unless it is set)."""
    changes = local_aws_environment(endpoint, REGION)
    changes[ENV_DEV] = "1"
    if options.fast and "WORKFLOWS_WAIT_SCALE" not in os.environ:
        changes["WORKFLOWS_WAIT_SCALE"] = repr(FAST_SCALE)
    return changes


def _serve(
    options: DevOptions,
    stop: threading.Event,
    force: threading.Event,
    stack: contextlib.ExitStack,
    out: TextIO,
) -> Callable[[], None]:
    """Start every part, registering on ``stack`` how to stop it (it unwinds in reverse order). Return
    what the main loop calls five times a second: replace dead workers, reload changed code."""
    api = _listen(options.port)  # first: a port in use fails before anything starts
    stack.callback(api.server_close)
    modules = _modules(options)
    if options.endpoint_url:
        endpoint = options.endpoint_url.rstrip("/")
        _check_endpoint(endpoint)
    else:
        endpoint = stack.enter_context(_moto_server())
        stack.callback(Path(lock_path(endpoint)).unlink, missing_ok=True)
    # Before the workflow modules are imported (one may make a client as it loads) and before the
    # workers start (they inherit it).
    stack.enter_context(environment(_environment(options, endpoint)))
    sys.path.insert(0, str(Path.cwd()))
    imported, error = devreload.imported_by(modules)
    if error is not None:  # the user's module: say which, in one line
        why = f"{type(error).__name__}: {error}"
        raise DevError(f"workflow modules {modules!r} failed to import: {why}") from None
    rt = stack.enter_context(DevRuntime(options, endpoint, SerialSender(lock_path(endpoint))))
    api_function = [f for f in rt.functions if f.http]
    if len(api_function) != 1:
        raise DevError(f"the template must have one function behind its HTTP API, not {len(api_function)}")
    scheduled = [f for f in rt.functions if f.schedules]
    sweep_every = options.sweep_every or (schedule_seconds(scheduled[0].schedules[0]) if scheduled else None)

    # One API invocation at a time, as in one Lambda container: Powertools' resolver is a module global
    # that holds the current request.
    api_lock = threading.Lock()

    def call(event: dict[str, Any]) -> Any:
        with api_lock:
            return rt.invoke(api_function[0], event)

    api.call = call
    api.skip = lambda instance_id: skip(rt, instance_id)
    spec = {"options": asdict(options), "endpoint": endpoint, "modules": modules, "parent": os.getpid()}
    workers = Workers(options.workers, [sys.executable, "-m", "framework.local.devworker", json.dumps(spec)])
    stack.callback(workers.stop, force)
    workers.start(stop)
    serving = threading.Thread(target=api.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    serving.start()
    stack.callback(api_lock.acquire, timeout=STOP_GRACE)  # let a request in flight finish
    stack.callback(api.shutdown)
    others = {e["Queue"] for f in rt.functions for e in f.sqs_events} - {WORK_QUEUE}
    pump_stop = threading.Event()
    pump = threading.Thread(
        target=rt.run_forever,
        args=(pump_stop,),
        kwargs={"queues": others, "sweep_every": sweep_every, "idle": IDLE},
        daemon=True,
    )
    pump.start()
    stack.callback(pump.join, STOP_GRACE)
    stack.callback(pump_stop.set)
    watcher = devreload.Watcher(Path.cwd(), imported) if options.reload else None
    url = f"http://127.0.0.1:{api.server_address[1]}"
    found = devfile.DevStack(
        os.getpid(), url, endpoint, REGION, rt.table_name, rt.queue_url, rt.inbox_url, rt.bucket_name,
        options.prefix,
    )  # fmt: skip
    if not stop.is_set():
        stack.callback(devfile.remove, devfile.write(Path.cwd(), found), os.getpid())
        _banner(out, options, rt, found, workers, sweep_every, watcher)
    return devreload.ticker(workers, watcher, modules, api_lock, stop, out)


def skip(rt: DevRuntime, instance_id: str) -> tuple[int, list[tuple[str, str]], bytes]:
    """``POST /dev/instances/{id}/skip``: ``Instance.skip_wait()``, answered in the API's shapes (202
    ``{"id", "status"}``; 404, 409 or 400 ``{"error", "message"}``)."""
    try:
        instance = rt.client.get(instance_id)
        instance.skip_wait()
        status = instance.status().status.value
    except InstanceNotFoundError as exc:
        return _api_error(404, type(exc).__name__, str(exc))
    except InvalidStateError as exc:
        return _api_error(409, type(exc).__name__, str(exc))
    except WorkflowError as exc:  # an invalid id
        return _api_error(400, type(exc).__name__, str(exc))
    data = json.dumps({"id": instance_id, "status": status}).encode()
    return 202, [("Content-Type", "application/json")], data


def _banner(
    out: TextIO,
    options: DevOptions,
    rt: DevRuntime,
    found: devfile.DevStack,
    workers: Workers,
    sweep_every: float | None,
    watcher: devreload.Watcher | None,
) -> None:
    url, endpoint = found.api_url, found.endpoint_url
    names = REGISTRY.names()
    kept = "its state outlives dev" if options.endpoint_url else "moto in this process: state ends with it"
    pids = ", ".join(str(p.pid) for p in workers.procs)
    sweeps = f"every {sweep_every:g} s" if sweep_every else "off"
    scale = rt.env.settings.wait_scale
    waits = "real time" if scale == 1 else f"1/{1 / scale:g} of their time (an hour: {3600 * scale:g} s)"
    reload = f"on, {len(watcher.files)} files watched" if watcher is not None else "off"
    lines = [
        f"workflows dev: stack {options.prefix!r}, workflows: {', '.join(names) or 'none'}",
        f"  API:       {url}   (Swagger UI: {url}/docs)",
        f"  dashboard: {url}/ui",
        f"  endpoint:  {endpoint}   ({kept})",
        f"  table:     {rt.table_name}",
        f"  queue:     {rt.queue_url}",
        f"  inbox:     {rt.inbox_url}",
        f"  bucket:    {rt.bucket_name}",
        f"  uploads:   {rt.uploads_bucket}   (an object put here starts its s3 triggers)",
        f"  event bus: {rt.event_bus_name}   (an event put here starts its eventbridge triggers)",
        f"  workers:   {len(workers.procs)} processes (pids {pids}), timeout {rt.worker.timeout} s, "
        f"visibility {rt.visibility} s; sweeper {sweeps}",
        f"  waits:     {waits}; skip one: workflows skip ID (or POST {url}/dev/instances/ID/skip)",
        f"  reload:    {reload}",
        f"  found by:  workflows commands run here or below ({devfile.FOLDER}/{devfile.NAME})",
        "For boto3, the AWS CLI or workflows elsewhere, paste:",
        *(f"  export {name}={value}" for name, value in found.environment().items()),
    ]
    if names:
        lines.append(f"try: curl -s {url}/workflows/{names[0]}/instances")
    lines.append("Ctrl-C stops it.")
    print("\n".join(lines), file=out, flush=True)
