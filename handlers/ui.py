"""The dashboard: ``GET /ui`` serves one HTML page over the JSON API (``framework/dashboard/index.html``).

The page is static: its style and its script (an ES module) are inline, and the only values put in at
serving time are the list of registered workflow names, HTML-escaped into a ``<meta>`` attribute, and,
in ``workflows dev``'s processes (``WORKFLOWS_DEV=1``), a ``<meta name="lw-dev">`` tag that shows dev's
own actions. Neither is inside the script or the style, so their hashes hold. The
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
import os
import re
from importlib import resources

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from framework.backends.environment import ENV_DEV
from framework.manage.client import default_client

PAGE = ("dashboard", "index.html")  # under the framework package: package data, in every function's zip
PLACEHOLDER = "__WORKFLOWS__"
_WORKFLOWS_META = '<meta name="lw-workflows"'
DEV_META = '<meta name="lw-dev" content="1">'
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


def render(workflow_names: list[str], *, dev: bool = False) -> str:
    """The page with ``workflow_names`` as a JSON list in its ``lw-workflows`` meta tag, escaped for an
    HTML attribute (quotes included), so that no name can end the attribute or the tag. With ``dev``,
    the page also carries ``DEV_META``, before that tag (outside the hashed script and style)."""
    text = page_text().replace(PLACEHOLDER, html.escape(json.dumps(workflow_names), quote=True), 1)
    return text.replace(_WORKFLOWS_META, f"{DEV_META}\n{_WORKFLOWS_META}", 1) if dev else text


def in_dev() -> bool:
    """Whether this process is one of ``workflows dev``'s (it sets ``WORKFLOWS_DEV=1``)."""
    return os.environ.get(ENV_DEV) == "1"


@router.get("/ui", include_in_schema=False)
def dashboard() -> Response[str]:
    return Response(
        status_code=200,
        content_type=CONTENT_TYPE,
        body=render(default_client().registry.names(), dev=in_dev()),
        headers=security_headers(),
    )
