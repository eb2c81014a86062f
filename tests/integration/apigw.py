"""API Gateway HTTP API (payload format 2.0) proxy events for tests, built by the same code that
``workflows dev`` uses (``framework.local.apigw``)."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from framework.local.apigw import http_api_event


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
