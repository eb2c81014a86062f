"""The handlers print the metrics of each invocation: the API's and the inbox's creates, the worker's
runs, each as EMF lines that CloudWatch turns into the metrics that template.yaml's dashboard charts.
See docs/observability.md."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from framework import Workflow
from framework.local import LocalContext, LocalRuntime
from handlers import api
from tests.integration.apigw import http_event
from tests.integration.test_inbox import put

MARK = "MARK-param-91ae"


def shipped(event: Any, step: Any) -> Any:
    step.do("pack", lambda: {"box": event.payload["secret"]})
    step.sleep("wait for the van", "5 minutes")
    return step.do("ship", lambda: "shipped")


def test_api_inbox_and_worker_print_each_invocations_metrics(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    with LocalRuntime(workflows=[Workflow("it-shipped", shipped)]) as rt:
        context = LocalContext("ApiFunction", rt.clock, rt.clock.now() + 30)
        body = {"id": "ship-1", "params": {"secret": MARK}}
        response = api.handler(http_event("POST", "/workflows/it-shipped/instances", body), context)
        assert response["statusCode"] == 201
        api_lines = _emf(capsys.readouterr().out)
        put(rt, {"action": "create", "workflow": "it-shipped", "id": "ship-2", "params": {"secret": MARK}})
        rt.run_until_idle()
        assert [rt.client.get(i).status().status for i in ("ship-1", "ship-2")] == ["complete"] * 2
        later = _emf(capsys.readouterr().out)
    assert [_values(line) for line in api_lines] == [{"InstancesCreated": [1]}]
    totals: Counter[str] = Counter()
    for line in api_lines + later:
        spec = line["_aws"]["CloudWatchMetrics"][0]
        assert spec["Namespace"] == "LambdaWorkflows" and spec["Dimensions"] == [["workflow"]]
        assert line["workflow"] == "it-shipped"
        assert MARK not in json.dumps(line) and "ship-1" not in json.dumps(line)
        for name, values in _values(line).items():
            totals[name] += len(values) if name in ("StepDuration", "WakeUpLag") else int(sum(values))
    assert totals == {
        "InstancesCreated": 2,
        "InstancesStarted": 2,
        "StepsCompleted": 4,
        "StepDuration": 4,
        "WakeUpLag": 2,  # one per sleep
        "InstancesCompleted": 2,
    }


def _emf(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith('{"_aws"')]


def _values(line: dict[str, Any]) -> dict[str, list[float]]:
    names = [m["Name"] for m in line["_aws"]["CloudWatchMetrics"][0]["Metrics"]]
    return {n: line[n] if isinstance(line[n], list) else [line[n]] for n in names}
