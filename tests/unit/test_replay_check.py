"""The replay gate: exported histories replayed against changed code, with no step body run."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from framework import InvalidConfigError
from framework.api.registry import Registry, Workflow
from framework.backends.environment import Settings
from framework.core import serde
from framework.manage.replay_check import check_history
from tests.unit.harness import Harness

RAN: Counter[str] = Counter()


def body(name: str) -> Any:
    def run() -> str:
        RAN[name] += 1
        return name

    return run


def v1(event: Any, step: Any) -> Any:
    step.do("reserve", body("reserve"))
    step.do("charge", body("charge"))
    step.sleep("settle", 3600)
    step.do("ship", body("ship"))
    return "done"


def inserted(event: Any, step: Any) -> Any:
    step.do("reserve", body("reserve"))
    step.do("fraud check", body("fraud"))
    step.do("charge", body("charge"))
    step.sleep("settle", 3600)
    step.do("ship", body("ship"))
    return "done"


def removed(event: Any, step: Any) -> Any:
    step.do("reserve", body("reserve"))
    step.sleep("settle", 3600)
    step.do("ship", body("ship"))
    return "done"


def reordered(event: Any, step: Any) -> Any:
    step.do("charge", body("charge"))
    step.do("reserve", body("reserve"))
    step.sleep("settle", 3600)
    step.do("ship", body("ship"))
    return "done"


def patched(event: Any, step: Any) -> Any:
    step.do("reserve", body("reserve"))
    if step.patched("fraud-check"):
        step.do("fraud check", body("fraud"))
    step.do("charge", body("charge"))
    step.sleep("settle", 3600)
    step.do("ship", body("ship"))
    return "done"


def appended(event: Any, step: Any) -> Any:  # a new step after the sleep: past the history
    step.do("reserve", body("reserve"))
    step.do("charge", body("charge"))
    step.sleep("settle", 3600)
    step.do("receipt", body("receipt"))
    step.do("ship", body("ship"))
    return "done"


def as_order(fn: Any) -> Registry:
    return Registry([Workflow(name="order", fn=fn)])


@pytest.fixture
def exports() -> dict[str, Any]:
    """Exports of two instances of v1, one asleep and one complete, through JSON as a file holds them."""
    h = Harness(Workflow(name="order", fn=v1), settings=Settings(inline_result_bytes=1))  # results in blobs
    asleep = h.start("order", {"n": 1})
    done = h.start("order", {"n": 2})
    h.run_due()
    h.advance("2 hours")
    asleep = h.start("order", {"n": 3})
    h.run_due()
    assert done.status().status == "complete" and asleep.status().status == "waiting"
    RAN.clear()
    return {
        name: json.loads(json.dumps(inst.export())) for name, inst in (("asleep", asleep), ("done", done))
    }


@pytest.mark.parametrize("which", ["asleep", "done"])
def test_the_same_code_passes_and_runs_no_body(exports: dict[str, Any], which: str) -> None:
    result = check_history(exports[which], as_order(v1))
    assert result.ok, result.message
    assert not RAN


@pytest.mark.parametrize("code", [inserted, removed, reordered], ids=lambda f: f.__name__)
@pytest.mark.parametrize("which", ["asleep", "done"])
def test_a_changed_step_order_fails_naming_the_first_diverging_call(
    exports: dict[str, Any], which: str, code: Any
) -> None:
    result = check_history(exports[which], as_order(code))
    assert not result.ok
    assert result.message.startswith("NonDeterminismError: ")
    assert "durable call" in result.message or "never reached" in result.message
    assert not RAN  # no body ran, even of the new code's steps


@pytest.mark.parametrize("which", ["asleep", "done"])
def test_a_patched_change_passes(exports: dict[str, Any], which: str) -> None:
    result = check_history(exports[which], as_order(patched))
    assert result.ok, result.message
    assert not RAN


def test_a_step_appended_past_the_history_passes_for_the_instance_that_has_not_reached_it(
    exports: dict[str, Any],
) -> None:
    assert check_history(exports["asleep"], as_order(appended)).ok
    done = check_history(exports["done"], as_order(appended))
    assert not done.ok and "'receipt'" in done.message  # the complete one recorded 'ship' there


def test_a_workflow_missing_from_the_new_code_fails(exports: dict[str, Any]) -> None:
    result = check_history(exports["asleep"], Registry([Workflow(name="other", fn=v1)]))
    assert not result.ok and "order" in result.message


@pytest.mark.parametrize(
    "document",
    [None, [], {"format": "x"}, {"format": "lambda-workflows.history", "version": 99}, {
        "format": "lambda-workflows.history", "version": 1, "instance": {}, "journal": [], "events": [],
    }],
)  # fmt: skip
def test_a_document_that_is_not_an_export_is_a_typed_error(document: Any) -> None:
    with pytest.raises(InvalidConfigError):
        check_history(document, as_order(v1))


def test_the_export_holds_results_inline(exports: dict[str, Any]) -> None:
    doc = exports["done"]
    assert all(e.get("result_ref") is None for e in doc["journal"])
    steps = [serde.decode(e["result"]) for e in doc["journal"] if e["kind"] == "step"]
    assert steps == ["reserve", "charge", "ship"]


def test_an_event_waiting_for_the_instance_goes_with_the_export() -> None:
    def approval(event: Any, step: Any) -> Any:
        step.do("ask", body("ask"))
        answer = step.wait_for_event("approval", "approved", timeout="1 day")
        step.do("act", body("act"))
        return answer.payload

    h = Harness(Workflow(name="approval", fn=approval))
    inst = h.start("approval")
    h.run_due()
    inst.pause()
    h.run_due()
    inst.send_event("approved", {"by": "ana"})
    doc = json.loads(json.dumps(inst.export()))
    assert [e["type"] for e in doc["events"]] == ["approved"]
    RAN.clear()
    assert check_history(doc, Registry([Workflow(name="approval", fn=approval)])).ok
    assert not RAN  # the event was taken and 'act' reached: the history ends there

    def renamed(event: Any, step: Any) -> Any:
        step.do("ask", body("ask"))
        answer = step.wait_for_event("approval v2", "approved", timeout="1 day")
        return answer.payload

    result = check_history(doc, Registry([Workflow(name="approval", fn=renamed)]))
    assert not result.ok and "'approval v2'" in result.message
