"""API Gateway HTTP API (payload format 2.0) proxy events for tests, built by the same code that
``workflows dev`` uses (``framework.local.apigw``)."""

from __future__ import annotations

import contextlib
import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from framework.local import LocalContext, LocalRuntime
from framework.local.apigw import gateway_path, http_api_event, http_api_response


def http_event(
    method: str,
    path: str,
    body: Any = None,
    *,
    query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    raw_body: str | None = None,
) -> dict[str, Any]:
    """An event for ``method path`` with ``body`` sent as JSON (or ``raw_body`` as is), validated against
    the shape API Gateway really sends."""
    text = raw_body if raw_body is not None else (None if body is None else json.dumps(body))
    all_headers = {"content-type": "application/json", "host": "api.example.com", "user-agent": "tests"}
    return http_api_event(
        method,
        path,
        raw_query=urllib.parse.urlencode(query or {}),
        headers=all_headers | (headers or {}),
        body=text,
    )


@contextlib.contextmanager
def serve_api(rt: LocalRuntime) -> Iterator[str]:
    """``handlers.api`` on 127.0.0.1 over HTTP, as ``workflows dev`` and API Gateway serve it (the path
    decoded once, the request as a payload 2.0 event), on ``rt``'s stack; yields its URL. One request
    at a time, as in one Lambda container."""
    from handlers import api

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            event = http_api_event(
                self.command,
                gateway_path(url.path),
                raw_query=url.query,
                headers=self.headers.items(),
                body=self.rfile.read(length) if length else None,
            )
            context = LocalContext("ApiFunction", rt.clock, rt.clock.now() + 30)
            status, headers, data = http_api_response(api.handler(event, context))
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _serve

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
