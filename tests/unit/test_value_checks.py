"""Values that users pass in and workflows return. Every path refuses what JSON cannot store as it
is (NaN, infinities, lone surrogates) with the framework's own error, at once, before anything is
written. No message the framework writes holds a value or a dict key of them: those messages are
stored as the instance's error and logged."""

from __future__ import annotations

import json
import math
import sys
import warnings
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel

from framework import (
    InvalidConfigError,
    InvalidParamsError,
    PayloadTooLargeError,
    SerializationError,
    StepFailedError,
    Workflow,
)
from framework.api.calls import check_name
from framework.core import serde as serde_module
from framework.core.records import ErrorInfo
from framework.engine.invocation import Outcome
from tests.unit.harness import Harness

MARK = "MARK-private-9d41"  # in values and dict keys: no message may show it


class Amount(BaseModel):
    amount: float


class Prices(BaseModel):
    prices: dict[str, float]


class Receipt(BaseModel):
    """A step result type. A test swaps it for an incompatible one to stand for a changed model."""

    total: str


def _amount(event: Any, step: Any) -> Any:
    return event.payload.amount


def _plain(event: Any, step: Any) -> Any:
    return event.payload


def _waits(event: Any, step: Any) -> Any:
    return step.wait_for_event("go", "go", timeout="1 hour").payload


AMOUNT = Workflow("vc-amount", _amount, params=Amount)
PRICES = Workflow("vc-prices", _plain, params=Prices)
PLAIN = Workflow("vc-plain", _plain)
WAITS = Workflow("vc-waits", _waits)

NON_FINITE = [math.inf, -math.inf, math.nan]
# A float field accepts these strings too (pydantic's lax mode), and holds inf or NaN afterwards.
NON_FINITE_TEXT = ["inf", "-Infinity", "nan"]


def harness() -> Harness:
    return Harness(AMOUNT, PRICES, PLAIN, WAITS)


def refused(h: Harness, call: Callable[[], Any], error: type[Exception] = SerializationError) -> str:
    """Run ``call``; it must raise ``error`` without one store call or message. Return the message."""
    calls, queued = h.store.calls, h.queue.next_due()
    with pytest.raises(error) as info:
        call()
    assert (h.store.calls, h.queue.next_due()) == (calls, queued), "nothing is written or sent"
    message = str(info.value)
    assert MARK not in message
    return message


# -- non-finite numbers -------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [*NON_FINITE, *NON_FINITE_TEXT], ids=repr)
def test_a_float_field_that_holds_nan_or_inf_is_refused(value: Any) -> None:
    """pydantic's float accepts inf, and its JSON writes it as null: the instance would run with other
    params. It is refused as SerializationError, through every way of creating an instance."""
    h = harness()
    message = refused(h, lambda: h.start("vc-amount", {"amount": value}))
    assert "NaN or an infinity" in message and "params of workflow 'vc-amount'" in message
    refused(
        h,
        lambda: h.client.create_batch(
            "vc-amount", [{"params": {"amount": 1}}, {"params": {"amount": value}}]
        ),
    )
    refused(h, lambda: h.start("vc-prices", {"prices": {MARK: value}}))
    if isinstance(value, float):
        refused(h, lambda: h.start("vc-amount", Amount(amount=value)))  # a model instance, as it is
        refused(h, lambda: h.start("vc-plain", {MARK: [1, value]}))
        refused(h, lambda: h.client.create_batch("vc-plain", [{"params": {}}, {"params": {MARK: value}}]))


def test_finite_extremes_are_stored_as_they_are() -> None:
    h = harness()
    inst = h.start("vc-amount", {"amount": 1.7976931348623157e308})
    h.run_until_idle()
    assert inst.status().output == 1.7976931348623157e308
    inst = h.start("vc-amount", {"amount": "-0.0"})
    h.run_until_idle()
    assert math.copysign(1, inst.status().output) == -1


@pytest.mark.parametrize("value", NON_FINITE, ids=repr)
def test_an_event_payload_with_nan_or_inf_is_refused(value: float) -> None:
    h = harness()
    inst = h.start("vc-waits")
    h.run_due()
    refused(h, lambda: inst.send_event("go", value))
    refused(h, lambda: inst.send_event("go", {"a": {MARK: [value]}}))
    assert inst.history()[-1].kind == "wait" and inst.status().status == "waiting"


# -- lone surrogates ----------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [f"{MARK}\ud800", "\udfff"], ids=["high", "low"])
def test_params_and_payloads_with_a_lone_surrogate_are_refused(bad: str) -> None:
    h = harness()
    for params in ({"k": bad}, {bad: 1}, {"k": [{"j": bad}]}):
        message = refused(h, lambda p=params: h.start("vc-plain", p))  # type: ignore[misc]
        assert "lone surrogate" in message
    refused(h, lambda: h.start("vc-prices", {"prices": {bad: 1.0}}))
    inst = h.start("vc-waits")
    h.run_due()
    for payload in (bad, {bad: 1}, [1, {"k": bad}]):
        refused(h, lambda p=payload: inst.send_event("go", p))  # type: ignore[misc]


@pytest.mark.parametrize(
    "result",
    [
        "x\ud800y",
        {"\ud800": 1},
        {"k": ["\udc00"]},
        Receipt(total="\ud800"),
        Prices(prices={"\ud800": 1.0}),  # pydantic's JSON would store the key as U+FFFD
    ],
    ids=["string", "dict-key", "nested", "model-field", "model-dict-key"],
)
def test_a_step_result_with_a_lone_surrogate_fails_the_step_at_once(result: Any) -> None:
    """Not retried (the same value would fail again), and failed as SerializationError: UTF-8 cannot
    encode it, so no store could keep it."""

    def flow(event: Any, step: Any) -> Any:
        try:
            step.do("bad", lambda: result)
        except StepFailedError as exc:
            return [exc.attempts, exc.error_type, exc.error_message]
        return "stored"

    h = Harness(Workflow("vc-surrogate-result", flow))
    inst = h.start("vc-surrogate-result")
    h.run_until_idle()
    attempts, error_type, message = inst.status().output
    assert (attempts, error_type) == (1, "SerializationError")
    assert "lone surrogate" in message
    assert h.outcomes == {Outcome.COMPLETED: 1}


@pytest.mark.parametrize("output", ["x\ud800y", {"\ud800": 1}, [{"k": "\udfff"}]], ids=repr)
def test_an_output_with_a_lone_surrogate_errors_the_instance_at_once(output: Any) -> None:
    """One invocation, errored as SerializationError: not handed over as an engine failure and
    retried until the crash count gives up with InvocationCrashedError."""
    h = Harness(Workflow("vc-surrogate-output", lambda event, step: output))
    inst = h.start("vc-surrogate-output")
    h.run_until_idle()
    error = inst.status().error
    assert error is not None and error["name"] == "SerializationError", error
    assert "output of workflow" in error["message"] and "lone surrogate" in error["message"]
    assert h.outcomes == {Outcome.ERRORED: 1}


def test_stored_error_messages_and_names_are_utf8() -> None:
    """An exception message goes into the journal item; a step name too. A lone surrogate in either
    made every write of the item fail (tests/integration/test_values_in.py shows it on DynamoDB)."""
    info = ErrorInfo.of(ValueError("bad \ud800 value"))
    assert info.message == "bad \\ud800 value"
    for name in ("x\ud800", "\udfffy"):
        with pytest.raises(InvalidConfigError, match="lone surrogate"):
            check_name(name)


# -- messages hold no value and no dict key -----------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "where"),
    [
        ({MARK: object()}, "at [<key>]"),
        ({"a": [1, {MARK: math.nan}]}, "at [<key>][1][<key>]"),
        ([{MARK: {1, 2}}], "at [0][<key>]"),
        ({MARK: {5: "x"}}, "at [<key>]"),
        ({"k": f"{MARK}\ud800"}, "at [<key>]"),
        ({f"{MARK}\ud800": 1}, "in a dict key at the top"),
    ],
)
def test_serialization_errors_show_where_but_no_key_and_no_value(value: Any, where: str) -> None:
    with pytest.raises(SerializationError) as info:
        serde_module.encode(value, what="result of step 's'")
    assert where in str(info.value) and MARK not in str(info.value)


def test_invalid_params_name_the_models_fields_but_no_dict_key_or_value() -> None:
    h = harness()
    message = refused(h, lambda: h.start("vc-prices", {"prices": {MARK: MARK}}), InvalidParamsError)
    assert "prices.*: Input should be a valid number" in message
    with pytest.raises(InvalidParamsError) as info:
        h.start("vc-prices", {"prices": {MARK: MARK}})
    assert [(d["loc"], d["type"]) for d in info.value.details] == [(("prices", "*"), "float_parsing")]
    assert MARK not in json.dumps(info.value.details)
    refused(h, lambda: h.start("vc-amount", {"amount": MARK, MARK: 1}), InvalidParamsError)


def test_params_that_no_longer_fit_the_model_error_the_instance_without_their_values() -> None:
    class Before(BaseModel):
        amount: str

    h = Harness(Workflow("vc-evolves", _plain, params=Before))
    inst = h.start("vc-evolves", {"amount": MARK})
    h.env.registry.add(Workflow("vc-evolves", _plain, params=Amount))  # deployed before it ran
    h.run_until_idle()
    error = inst.status().error
    assert error is not None and error["name"] == "InvalidParamsError", error
    assert "no longer fit its model" in error["message"] and "amount: Input should be" in error["message"]
    assert MARK not in error["message"] and "input" not in error["message"]


def test_a_stored_model_result_that_no_longer_fits_fails_at_the_step_without_its_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On replay the stored result is rebuilt with its type. If the type changed meanwhile, step.do
    raises SerializationError (not retried as an engine failure), and the message holds no value."""

    def flow(event: Any, step: Any) -> Any:
        receipt = step.do("receipt", lambda: Receipt(total=MARK))
        step.sleep("nap", "1 hour")
        return receipt.total

    h = Harness(Workflow("vc-result-model", flow))
    inst = h.start("vc-result-model")
    h.run_due()  # the step ran; the instance sleeps
    h.outcomes.clear()

    class Changed(BaseModel):
        total: int

    monkeypatch.setattr(sys.modules[__name__], "Receipt", Changed)
    serde_module._import_type.cache_clear()
    try:
        h.advance("2 hours")
    finally:
        serde_module._import_type.cache_clear()
    error = inst.status().error
    assert error is not None and error["name"] == "SerializationError", error
    assert "Receipt" in error["message"] and "total: Input should be" in error["message"]
    assert MARK not in error["message"]
    assert h.outcomes == {Outcome.ERRORED: 1}


def test_a_model_field_of_the_wrong_type_is_refused_without_pydantic_quoting_it() -> None:
    """pydantic serializes a field whose value does not fit its type with a warning that quotes the
    value (printed to stderr, which Lambda sends to the logs), and stores it anyway."""
    bad = Amount.model_construct(amount=MARK)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        with pytest.raises(SerializationError) as info:
            serde_module.encode(bad, what="result of step 's'")
        assert "does not fit its type" in str(info.value) and MARK not in str(info.value)
        h = harness()
        refused(h, lambda: h.start("vc-amount", bad))


def test_a_validation_error_raised_by_workflow_code_is_stored_without_its_input() -> None:
    def flow(event: Any, step: Any) -> Any:
        step.do(
            "check",
            lambda: Amount.model_validate({"amount": event.payload["secret"]}),
            config={"retries": {"limit": 0}},
        )

    h = Harness(Workflow("vc-user-validation", flow))
    inst = h.start("vc-user-validation", {"secret": MARK})
    h.run_until_idle()
    error = inst.status().error
    assert error is not None and "ValidationError" in error["message"]
    assert "Amount: 1 error(s): amount: Input should be a valid number" in error["message"]
    assert MARK not in error["message"]


def test_a_bad_batch_item_is_not_shown() -> None:
    h = harness()
    message = refused(
        h, lambda: h.client.create_batch("vc-plain", [{"params": {MARK: 1}, "x": MARK}]), InvalidConfigError
    )
    assert "no other keys" in message


def test_params_over_the_limit_are_refused() -> None:
    h = harness()
    refused(h, lambda: h.start("vc-plain", {MARK: "x" * 300_000}), PayloadTooLargeError)


class Loose(BaseModel):
    value: Any = None


def test_an_integer_too_long_to_write_is_refused_on_every_path() -> None:
    """json.dumps raises ValueError past 4,300 digits: it must come out as SerializationError."""
    huge = 10**5000
    h = harness()
    assert "4300 digits" in refused(h, lambda: h.start("vc-plain", {"n": huge}))
    inst = h.start("vc-waits")
    h.run_due()
    refused(h, lambda: inst.send_event("go", [huge]))
    for value in (huge, {"k": [huge]}, Loose(value=huge)):
        with pytest.raises(SerializationError, match="4300 digits"):
            serde_module.encode(value, what="result of step 's'")


def test_a_model_result_nested_too_deep_fails_the_step_at_once() -> None:
    """pydantic raises ValueError ("Circular reference detected") for it: not an engine failure."""
    deep: Any = 1
    for _ in range(3000):
        deep = [deep]

    def flow(event: Any, step: Any) -> Any:
        try:
            step.do("deep", lambda: Loose(value=deep))
        except StepFailedError as exc:
            return [exc.attempts, exc.error_type]
        return "stored"

    h = Harness(Workflow("vc-deep-model", flow))
    inst = h.start("vc-deep-model")
    h.run_until_idle()
    assert inst.status().output == [1, "SerializationError"]


def test_an_exception_whose_message_raises_is_still_recorded() -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    def flow(event: Any, step: Any) -> Any:
        def body() -> None:
            raise Unprintable

        step.do("x", body, config={"retries": {"limit": 0}})

    h = Harness(Workflow("vc-unprintable", flow))
    inst = h.start("vc-unprintable")
    h.run_until_idle()
    error = inst.status().error
    assert error is not None and error["name"] == "StepFailedError"
    assert "Unprintable" in error["message"] and h.outcomes == {Outcome.ERRORED: 1}
