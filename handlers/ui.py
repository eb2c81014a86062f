"""The dashboard: ``GET /ui`` serves one HTML page over the JSON API (``framework/dashboard/index.html``).

The page is static: its style and its script (an ES module) are inline, and the only value put in at
serving time is the list of registered workflow names, HTML-escaped into a ``<meta>`` attribute. The
page reads everything else from the API's own routes on the same origin, so it is under the same
authorization as they are (on AWS, the HTTP API's ``$default`` route: IAM or JWT).

The response's Content-Security-Policy allows that one script and that one style by their SHA-256 (no
``unsafe-inline``, no ``unsafe-eval``), fetches to the page's own origin only, and nothing else: no
other script, style, font, frame, form target or base URL. The page is not framed, not sniffed, and not
cached. The route is left out of the OpenAPI document, which describes the JSON API.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import json
import re
from importlib import resources

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from framework.manage.client import default_client

PAGE = ("dashboard", "index.html")  # under the framework package: package data, in every function's zip
PLACEHOLDER = "__WORKFLOWS__"
CONTENT_TYPE = "text/html; charset=utf-8"
_SCRIPT = re.compile(r'<script type="module">(.*?)</script>', re.DOTALL)
_STYLE = re.compile(r"<style>(.*?)</style>", re.DOTALL)

router = Router()  # type: ignore[no-untyped-call]  # Powertools leaves Router.__init__ untyped


@functools.cache
def page_text() -> str:
    """The page as shipped, with its placeholder for the workflow names."""
    return resources.files("framework").joinpath(*PAGE).read_text(encoding="utf-8")


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


@functools.cache
def content_security_policy() -> str:
    """The policy of the page: its one inline script and one inline style by hash, and fetches to its
    own origin. Raises ValueError if the page has other than one of each (a hash would miss it)."""
    text = page_text()
    scripts, styles = _SCRIPT.findall(text), _STYLE.findall(text)
    if len(scripts) != 1 or len(styles) != 1 or text.count("<script") != 1 or text.count("<style") != 1:
        raise ValueError("the dashboard page must hold one <script type=module> and one <style>")
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src {_sha256(scripts[0])}",
            f"style-src {_sha256(styles[0])}",
            "connect-src 'self'",
            "img-src 'self' data:",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


def security_headers() -> dict[str, str]:
    """The headers sent with the page besides its content type."""
    return {
        "Content-Security-Policy": content_security_policy(),
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }


def render(workflow_names: list[str]) -> str:
    """The page with ``workflow_names`` as a JSON list in its ``lw-workflows`` meta tag, escaped for an
    HTML attribute (quotes included), so that no name can end the attribute or the tag."""
    return page_text().replace(PLACEHOLDER, html.escape(json.dumps(workflow_names), quote=True), 1)


@router.get("/ui", include_in_schema=False)
def dashboard() -> Response[str]:
    return Response(
        status_code=200,
        content_type=CONTENT_TYPE,
        body=render(default_client().registry.names()),
        headers=security_headers(),
    )
