"""API Gateway HTTP API proxy events (payload format 2.0): requests in, responses out, as API Gateway
shapes them for a Lambda integration on the ``$default`` route and stage.

``workflows dev`` turns each HTTP request into such an event for the template's HTTP function, and
tests build the same events by hand (``tests/integration/apigw.py``).
"""

from __future__ import annotations

import base64
import json
import time
import urllib.parse
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from aws_lambda_powertools.utilities.parser.models import APIGatewayProxyEventV2Model

Headers = Mapping[str, str] | Iterable[tuple[str, str]]


def gateway_path(path: str) -> str:
    """The ``rawPath`` an HTTP API passes for a request ``path`` as the client sent it (no query):
    percent-decoded once, every escape included. ``%2F`` arrives as ``/``, so that no route can tell
    it from a separator, and ``%252F`` as ``%2F``; ``%40`` arrives as ``@``. An escape that is not
    UTF-8 arrives as U+FFFD. So an instance id with ``/`` is sent encoded twice
    (``framework.core.ids.path_segment``), and the API decodes it once more."""
    return urllib.parse.unquote(path or "/")


def http_api_event(
    method: str,
    raw_path: str,
    *,
    raw_query: str = "",
    headers: Headers | None = None,
    body: bytes | str | None = None,
    source_ip: str = "127.0.0.1",
) -> dict[str, Any]:
    """The event of one request. ``raw_path`` is percent-decoded, as HTTP APIs pass it (``rawPath`` and
    ``requestContext.http.path`` alike); ``raw_query`` is not. As API Gateway does: header names are
    lowercased and repeated headers joined with commas; cookies move to ``cookies``; repeated query
    parameters are joined with commas; a body that is not UTF-8 is base64-encoded. The event is checked
    against Powertools' model of what API Gateway sends (``APIGatewayProxyEventV2Model``); a mismatch
    raises pydantic's ValidationError."""
    pairs = headers.items() if isinstance(headers, Mapping) else (headers or [])
    joined: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in pairs:
        key = name.lower()
        if key == "cookie":
            cookies += [c.strip() for c in value.split(";") if c.strip()]
        else:
            joined[key] = f"{joined[key]},{value}" if key in joined else value
    host = joined.get("host", "localhost")
    domain = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    now = time.time()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": joined,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": domain,
            "domainPrefix": domain.split(".")[0],
            "http": {
                "method": method.upper(),
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": joined.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    query: dict[str, str] = {}
    for name, value in urllib.parse.parse_qsl(raw_query, keep_blank_values=True):
        query[name] = f"{query[name]},{value}" if name in query else value
    if query:
        event["queryStringParameters"] = query
    if body is not None and body != b"":
        text = body
        if isinstance(body, bytes):
            try:
                text = body.decode()
            except UnicodeDecodeError:
                text = base64.b64encode(body).decode()
                event["isBase64Encoded"] = True
        event["body"] = text
    APIGatewayProxyEventV2Model.model_validate(event)
    return event


def http_api_response(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """The HTTP response that API Gateway makes of a function's result: status, headers (``cookies``
    become ``Set-Cookie`` headers) and body. With payload format 2.0, a result that is not a dict with
    ``statusCode`` is itself the body of a 200 JSON response."""
    if not (isinstance(result, dict) and "statusCode" in result):
        text = result if isinstance(result, str) else json.dumps(result)
        return 200, [("Content-Type", "application/json")], text.encode()
    headers = [(str(k), str(v)) for k, v in (result.get("headers") or {}).items()]
    headers += [("Set-Cookie", str(c)) for c in result.get("cookies") or []]
    body = result.get("body") or ""
    data = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode()
    return int(result["statusCode"]), headers, data
