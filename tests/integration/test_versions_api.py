"""Versions over moto: the HTTP route, the API client and the CLI answer what the direct client does."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from framework import Workflow, WorkflowNotFoundError
from framework.cli import main
from framework.local import LocalRuntime
from framework.manage.api_client import ApiClient
from framework.manage.versions import VersionCount
from tests.integration.apigw import serve_api


def waits(event: Any, step: Any) -> Any:
    step.wait_for_event("go", event_type="go", timeout="1 day")
    return "done"


def waits_again(event: Any, step: Any) -> Any:
    step.wait_for_event("go", event_type="go", timeout="1 day")
    return "done on 2"


@pytest.fixture
def rt() -> Iterator[LocalRuntime]:
    with LocalRuntime(workflows=[Workflow("shipping", waits, version="2026-01")]) as runtime:
        for i in range(2):
            runtime.client.create("shipping", id=f"old{i}")
        runtime.advance(1)
        runtime.client.registry.add(Workflow("shipping", waits_again, version="2026-06"))
        runtime.client.create("shipping", id="new")
        runtime.advance(1)
        yield runtime


def test_the_route_and_the_api_client_count_what_the_direct_client_counts(rt: LocalRuntime) -> None:
    expected = [VersionCount("2026-01", 2, True), VersionCount("2026-06", 1, True)]
    assert rt.client.versions("shipping") == expected
    with serve_api(rt) as url:
        api = ApiClient(url, timeout=30)
        assert api.versions("shipping") == expected
        assert api.get("old0").status().version == "2026-01"
        with pytest.raises(WorkflowNotFoundError):
            api.versions("no-such-flow")
    rt.client.get("old0").send_event("go")
    rt.client.get("old1").terminate()
    rt.advance(1)
    assert rt.client.get("old0").status().output == "done"
    assert rt.client.versions("shipping")[0] == VersionCount("2026-01", 0, True)  # its code may go


def test_the_cli_prints_versions(
    rt: LocalRuntime, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("framework.cli._client", lambda args: rt.client)
    assert main(["versions", "shipping"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "2026-01  2 in flight  registered",
        "2026-06  1 in flight  registered",
    ]
    assert main(["versions", "shipping", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["versions"][1] == {
        "version": "2026-06",
        "in_flight": 1,
        "registered": True,
    }
    assert main(["status", "new"]) == 0
    assert capsys.readouterr().out.splitlines()[0].endswith("version 2026-06")
