"""GET /ui, the dashboard, through the API handler: the page, its headers, its policy, and its auth."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from framework.local import LocalContext, LocalRuntime
from framework.local.template import parse_template
from handlers import api, ui
from infra.lint_template import ROOT
from tests.integration import workflows as w
from tests.integration.apigw import http_event


@pytest.fixture
def rt() -> Iterator[LocalRuntime]:
    with LocalRuntime(workflows=[w.chain, w.approval]) as runtime:
        yield runtime


def get(rt: LocalRuntime, path: str, method: str = "GET") -> dict[str, Any]:
    context = LocalContext("ApiFunction", rt.clock, rt.clock.now() + 30)
    result: dict[str, Any] = api.handler(http_event(method, path), context)
    return result


def directives(policy: str) -> dict[str, list[str]]:
    return {d.split()[0]: d.split()[1:] for d in (p.strip() for p in policy.split(";")) if d}


def test_ui_serves_the_page_with_its_security_headers(rt: LocalRuntime) -> None:
    response = get(rt, "/ui")
    assert response["statusCode"] == 200
    headers = {k.lower(): v for k, v in response["headers"].items()}
    assert headers["content-type"] == "text/html; charset=utf-8"
    body = response["body"]
    assert body.startswith("<!doctype html>") and "<title>Lambda Workflows</title>" in body
    names = re.search(r'<meta name="lw-workflows" content="([^"]*)">', body)
    assert names and json.loads(html.unescape(names.group(1))) == sorted(["it-chain", "it-approval"])
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"] == "no-store"
    policy = directives(headers["content-security-policy"])
    assert policy["default-src"] == ["'none'"]
    assert policy["connect-src"] == ["'self'"] and policy["frame-ancestors"] == ["'none'"]
    for kind, tag in (
        ("script-src", r'<script type="module">(.*?)</script>'),
        ("style-src", r"<style>(.*?)</style>"),
    ):
        assert not {"'unsafe-inline'", "'unsafe-eval'", "*", "data:", "http:", "https:"} & set(policy[kind])
        (inline,) = re.findall(tag, body, re.DOTALL)  # the one inline block, allowed by its hash alone
        digest = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
        assert policy[kind] == [f"'sha256-{digest}'"]


def test_only_devs_page_carries_the_dev_mark(rt: LocalRuntime, monkeypatch: pytest.MonkeyPatch) -> None:
    """The deployed API's page has no ``lw-dev`` tag (no Skip wait: it has no such route); served in a
    ``workflows dev`` process (``WORKFLOWS_DEV=1``), it has, and its policy's hashes still hold."""
    monkeypatch.delenv("WORKFLOWS_DEV", raising=False)
    deployed = get(rt, "/ui")["body"]
    assert '<meta name="lw-dev"' not in deployed
    monkeypatch.setenv("WORKFLOWS_DEV", "0")
    assert '<meta name="lw-dev"' not in get(rt, "/ui")["body"]
    monkeypatch.setenv("WORKFLOWS_DEV", "1")
    response = get(rt, "/ui")
    body = response["body"]
    assert re.findall(r'<meta name="lw-dev"[^>]*>', body) == ['<meta name="lw-dev" content="1">']
    assert body.index('<meta name="lw-dev"') < body.index("<script") and body.count("<script") == 1
    assert body.replace('<meta name="lw-dev" content="1">\n', "", 1) == deployed
    policy = directives({k.lower(): v for k, v in response["headers"].items()}["content-security-policy"])
    (script,) = re.findall(r'<script type="module">(.*?)</script>', body, re.DOTALL)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert policy["script-src"] == [f"'sha256-{digest}'"]
    assert 'meta[name="lw-dev"]' in script and "/dev${instancePath(id)}/skip" in script


def test_the_page_puts_instance_ids_in_paths_encoded_twice() -> None:
    """Every path the page builds with an instance id goes through ``instancePath``, which encodes it
    twice (API Gateway decodes the path once): no id is ever encoded once into a path."""
    page = ui.page_text()
    assert "const instancePath = (id) => `/instances/${enc(enc(id))}`;" in page
    assert page.count("/instances/") == 1  # that definition: no other path names an instance
    assert re.findall(r"`/workflows/\$\{([^}]*)\}", page) == ["enc(state.workflow)"]


def test_the_page_loads_nothing_from_elsewhere_and_shows_data_as_text() -> None:
    page = ui.page_text()
    assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", page, re.IGNORECASE)  # no CDN, no URL
    assert "innerHTML" not in page and "outerHTML" not in page and "insertAdjacentHTML" not in page
    assert "eval(" not in page and "new Function" not in page and "document.write" not in page
    assert page.count(ui.PLACEHOLDER) == 1


def test_workflow_names_cannot_break_out_of_the_meta_tag() -> None:
    body = ui.render(['it-ui-"quoted"</title>', "<script>alert(1)</script>"])
    meta = re.search(r'<meta name="lw-workflows" content="([^"]*)">', body)
    assert meta is not None and "<" not in meta.group(1)
    assert json.loads(html.unescape(meta.group(1)))[1] == "<script>alert(1)</script>"
    assert body.count("<script") == 1


def test_ui_is_an_html_route_outside_the_openapi_document(rt: LocalRuntime) -> None:
    document = json.loads(api.openapi_document())
    assert not any(path.startswith("/ui") for path in document["paths"])
    response = get(rt, "/ui", method="POST")
    assert response["statusCode"] == 405 and response["headers"]["Allow"] == "GET"
    assert get(rt, "/ui/other")["statusCode"] == 404


def test_ui_is_behind_the_same_authorization_as_every_route() -> None:
    """The HTTP API has one route, ``$default``, which takes IAM (or JWT, by the ApiAuth parameter) and
    never NONE: /ui and the JSON routes that the page fetches (same origin) are authorized alike."""
    resources = parse_template((ROOT / "template.yaml").read_text())["Resources"]
    routes = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::ApiGatewayV2::Route"]
    assert [r["RouteKey"] for r in routes] == ["$default"]
    authorization = routes[0]["AuthorizationType"]
    assert (authorization.tag, authorization.value) == ("If", ["UseJwt", "JWT", "AWS_IAM"])
    functions = [r for r in resources.values() if r["Type"] == "AWS::Serverless::Function"]
    events = [e for f in functions for e in (f["Properties"].get("Events") or {}).values()]
    assert not [e for e in events if e["Type"] in ("Api", "HttpApi")]  # no other way in
    assert 'credentials: "same-origin"' in ui.page_text() and "BASE + path" in ui.page_text()
