"""The replay gate: exported histories replayed against changed code, with no step body run."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import pytest

from framework import InvalidConfigError
from framework.api.registry import Registry, Workflow
from framework.backends.environment import Settings
from framework.backends.store import full_journal
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


def test_the_export_hides_callback_tokens_and_still_replays() -> None:
    def pay(event: Any, step: Any) -> Any:
        cb = step.create_callback("payment", timeout="1 hour")
        step.do("ask provider", body("ask"))
        return cb.result()

    h = Harness(Workflow(name="pay", fn=pay))
    inst = h.start("pay")
    h.run_due()
    token = full_journal(h.store, inst.id, 1)[0].extra["token"]
    callback_id = next(e for e in full_journal(h.store, inst.id, 1) if e.kind.value == "callback")
    assert callback_id is not None
    inst.pause()
    h.run_due()
    from framework.core.callbacks import CallbackId

    h.client.send_callback_success(str(CallbackId(inst.id, 1, 0, token)), {"ok": True})
    text = json.dumps(inst.export())
    assert token not in text  # the export cannot complete the callback
    RAN.clear()
    result = check_history(json.loads(text), Registry([Workflow(name="pay", fn=pay)]))
    assert result.ok, result.message  # the hidden token still matches its outcome
    assert not RAN


def test_the_export_keeps_the_history_limit_of_its_deployment(exports: dict[str, Any]) -> None:
    doc = dict(exports["done"], settings={"max_history": 2})
    result = check_history(doc, as_order(v1))
    assert not result.ok and result.message.startswith("HistoryLimitError: ")
    assert check_history(dict(exports["done"], settings={}), as_order(v1)).ok


def test_a_call_inserted_before_a_scope_in_progress_fails_the_check() -> None:
    def inner(step: Any) -> str:
        step.do("charge", body("charge"))
        step.sleep("settle", 3600)
        return "done"

    def parent(event: Any, step: Any) -> Any:
        return step.child("order", inner)

    def inserted_first(event: Any, step: Any) -> Any:
        step.do("new", body("new"))
        return step.child("order", inner)

    h = Harness(Workflow(name="parent", fn=parent))
    inst = h.start("parent")
    h.run_due()
    doc = json.loads(json.dumps(inst.export()))
    RAN.clear()
    assert check_history(doc, Registry([Workflow(name="parent", fn=parent)])).ok
    result = check_history(doc, Registry([Workflow(name="parent", fn=inserted_first)]))
    assert not result.ok and "NonDeterminismError" in result.message
    assert not RAN


def test_a_check_that_runs_out_of_history_with_recorded_calls_left_fails() -> None:
    async def two(event: Any, step: Any) -> Any:
        async def left() -> str:
            await step.do("l1", body("l1"))
            await step.sleep("l nap", 3600)
            return "l"

        async def right() -> str:
            await step.do("r1", body("r1"))
            await step.do("r2", body("r2"))
            await step.sleep("r nap", 3600)
            return "r"

        return await asyncio.gather(left(), right())

    async def right_shorter(event: Any, step: Any) -> Any:
        async def left() -> str:
            await step.do("l1", body("l1"))
            await step.sleep("l nap", 3600)  # still asleep: the check suspends here
            return "l"

        async def right() -> str:
            await step.do("r1", body("r1"))
            return "r"  # r2 and the nap removed

        return await asyncio.gather(left(), right())

    h = Harness(Workflow(name="two", fn=two))
    inst = h.start("two")
    h.run_due()
    doc = json.loads(json.dumps(inst.export()))
    RAN.clear()
    result = check_history(doc, Registry([Workflow(name="two", fn=right_shorter)]))
    assert not result.ok and "never reached" in result.message, result.message
    assert not RAN


def test_a_rolling_back_history_replays_through_its_undos() -> None:
    def trip(event: Any, step: Any) -> Any:
        @step.with_rollback("book hotel")
        def book() -> str:
            return body("book")()

        @book.undo
        def cancel(err: Any, output: str) -> None:
            body("cancel")()

        book()
        step.sleep("wait", 3600)
        return "booked"

    h = Harness(Workflow(name="trip", fn=trip))
    inst = h.start("trip")
    h.run_due()
    inst.terminate(rollback=True)
    h.run_until_idle()
    assert inst.status().status == "terminated"
    doc = json.loads(json.dumps(inst.export()))
    RAN.clear()
    assert check_history(doc, Registry([Workflow(name="trip", fn=trip)])).ok
    assert not RAN
