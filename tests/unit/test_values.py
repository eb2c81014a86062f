"""Durations, step configs, result serialization, names and ids."""

from __future__ import annotations

import dataclasses
import math
import random
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import BaseModel

from framework import InvalidConfigError, InvalidInstanceIdError, RetryPolicy, SerializationError, StepConfig
from framework.api.calls import check_name
from framework.core.config import step_config
from framework.core.durations import parse_duration, to_epoch
from framework.core.ids import check_instance_id
from framework.core.serde import decode, encode, roundtrip


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("30 seconds", 30),
        ("1.5 seconds", 1.5),
        ("1 second", 1),
        ("5 minutes", 300),
        ("2 hours", 7200),
        ("3 days", 3 * 86400),
        ("1 week", 7 * 86400),
        ("1 month", 30 * 86400),
        ("2 years", 2 * 365 * 86400),
        ("  10  Minutes ", 600),
        (timedelta(minutes=2), 120),
        (45, 45),
        (0.25, 0.25),
        (0, 0),
    ],
)
def test_durations(value: Any, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    "value",
    [
        "",
        "soon",
        "5",
        "5 fortnights",
        "-1 second",
        "1e3 seconds",
        -1,
        math.inf,
        math.nan,
        True,
        None,
        [1],
        timedelta(seconds=-1),
        "101 years",
        pytest.param(10**400, id="int-beyond-float"),  # OverflowError escaped
        pytest.param(-(10**400), id="negative-int-beyond-float"),
        pytest.param(10**5000, id="int-5000-digits"),  # its repr raises ValueError (over 4,300 digits)
        pytest.param("9" * 5000 + " seconds", id="5000-digit-string"),
    ],
)
def test_bad_durations(value: Any) -> None:
    with pytest.raises(InvalidConfigError):
        parse_duration(value)


def test_instants() -> None:
    when = datetime(2030, 1, 1, tzinfo=timezone(timedelta(hours=2)))
    assert to_epoch(when) == when.timestamp()
    assert to_epoch(1_900_000_000) == 1_900_000_000.0
    with pytest.raises(InvalidConfigError, match="naive"):
        to_epoch(datetime(2030, 1, 1))
    with pytest.raises(InvalidConfigError):
        to_epoch("2030-01-01")  # type: ignore[arg-type]
    for out_of_range in (-1, 10**12, math.nan, math.inf, 10**400, 10**5000):
        with pytest.raises(InvalidConfigError, match="9999"):
            to_epoch(out_of_range)
    # 9999-12-31 west of UTC is in year 10000 in UTC: no datetime holds it, so history could not show it.
    with pytest.raises(InvalidConfigError, match="after 9999"):
        to_epoch(datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-23))))
    assert to_epoch(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)) == 253_402_300_799


def test_config_defaults_and_partial_configs() -> None:
    default = step_config(None, step="s")
    assert default.retries.limit == 5
    assert default.retries.delay == 10
    assert default.retries.backoff == "exponential"
    assert default.timeout == 600
    partial = step_config({"retries": {"limit": 1}}, step="s")
    assert partial.retries.delay == 10 and partial.retries.backoff == "exponential"
    typed = StepConfig(retries=RetryPolicy(limit=2, delay="1 minute"), timeout="5 seconds")
    assert step_config(typed, step="s") is typed
    assert typed.retries.delay == 60 and typed.timeout == 5


@pytest.mark.parametrize(
    "config",
    [
        {"retries": {"limit": -1}},
        {"retries": {"limit": 101}},
        {"retries": {"delay": "often"}},
        {"retries": {"backoff": "fibonacci"}},
        {"retries": {"jitter": "some"}},
        {"retries": {"non_retryable": ["KeyError"]}},
        {"retries": {"retryable": ["ConnectionError"]}},
        {"retries": {"retryable": [int]}},
        {"retries": {"unknown": 1}},
        {"timeout": 0},
        {"timeout": "forever"},
        {"timeotu": "5 seconds"},
        "5 seconds",
        pytest.param({"timeout": 10**400}, id="timeout-int-beyond-float"),
        pytest.param({"retries": {"delay": 10**400}}, id="delay-int-beyond-float"),
        pytest.param({"retries": {"max_delay": -(10**400)}}, id="max-delay-negative-int-beyond-float"),
    ],
)
def test_bad_configs_name_the_step(config: Any) -> None:
    with pytest.raises(InvalidConfigError, match="'my step'"):
        step_config(config, step="my step")


def test_retry_delays() -> None:
    exp = RetryPolicy(delay=2, backoff="exponential", max_delay=10)
    assert [exp.delay_before_retry(n) for n in range(1, 6)] == [2, 4, 8, 10, 10]
    lin = RetryPolicy(delay=3, backoff="linear")
    assert [lin.delay_before_retry(n) for n in (1, 2, 3)] == [3, 6, 9]
    const = RetryPolicy(delay=3, backoff="constant")
    assert [const.delay_before_retry(n) for n in (1, 2, 3)] == [3, 3, 3]
    jitter = RetryPolicy(delay=8, backoff="constant", jitter="full")
    rng = random.Random(1)
    delays = [jitter.delay_before_retry(1, rng) for _ in range(50)]
    assert all(0 <= d <= 8 for d in delays) and len(set(delays)) > 40
    huge = RetryPolicy(delay=1, limit=100)
    assert huge.delay_before_retry(100) == 100 * 365 * 86400  # capped: a datetime must hold the wake time


class Model(BaseModel):
    name: str
    when: datetime


@dataclasses.dataclass
class Inner:
    n: int


@dataclasses.dataclass
class Outer:
    inner: Inner
    tags: list[str]


def test_serde_roundtrips() -> None:
    for value in [None, 1, 1.5, "s", True, [1, "a"], {"a": {"b": [None]}}]:
        assert roundtrip(value, what="r")[1] == value
    model = Model(name="n", when=datetime(2030, 1, 1, tzinfo=UTC))
    assert decode(encode(model, what="r")) == model
    outer = Outer(Inner(1), ["t"])
    assert decode(encode(outer, what="r")) == outer


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ({"s": {1, 2}}, "builtins.set"),
        ({1: "int key"}, "dict key of type int"),
        (float("nan"), "NaN or an infinity"),
        ([datetime.now(UTC)], "datetime.datetime"),
        (object(), "builtins.object"),
    ],
)
def test_serde_rejects_with_the_type(value: Any, fragment: str) -> None:
    with pytest.raises(SerializationError, match="result of step 'x'") as info:
        encode(value, what="result of step 'x'")
    assert fragment in str(info.value)


def test_serde_rejects_local_classes() -> None:
    @dataclasses.dataclass
    class Local:
        n: int

    with pytest.raises(SerializationError, match="module level"):
        encode(Local(1), what="r")


@pytest.mark.parametrize("name", ["a", "x" * 256, "with space", "ünïcödé", "loop 1"])
def test_good_step_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "x" * 257, "tab\there", "nl\n", "\x00", 5, None])
def test_bad_step_names(name: Any) -> None:
    with pytest.raises(InvalidConfigError):
        check_name(name)


@pytest.mark.parametrize(
    "instance_id", ["a", "A_1-b", "_x", "9" * 100, "a/b", "order:123", "ana@example.com", "a.", "x/../y"]
)
def test_good_ids(instance_id: str) -> None:
    assert check_instance_id(instance_id) == instance_id


@pytest.mark.parametrize(
    "instance_id", ["", "-a", "a" * 101, "../x", "/a", ".", "a#b", "a%2F", "a b", "é", "a\n", "a\ud800", 7]
)
def test_bad_ids(instance_id: Any) -> None:
    with pytest.raises(InvalidInstanceIdError) as info:
        check_instance_id(instance_id)
    assert isinstance(info.value, ValueError)


def test_a_result_nested_too_deep_fails_the_step_at_once() -> None:
    from framework import StepFailedError, Workflow
    from tests.unit.harness import Harness

    deep: Any = 1
    for _ in range(1000):
        deep = [deep]
    with pytest.raises(SerializationError, match="nests deeper than 64 levels"):
        encode(deep, what="result")
    edge: Any = 1
    for _ in range(64):
        edge = [edge]
    assert decode(encode(edge, what="result")) == edge

    def flow(event: Any, step: Any) -> str:
        try:
            step.do("deep", lambda: deep)
        except StepFailedError as exc:
            return str(exc)
        return "stored"

    h = Harness(Workflow("too-deep", flow))
    inst = h.start("too-deep")
    h.run_until_idle()
    assert "nests deeper than 64 levels" in inst.status().output
    (entry,) = inst.history()
    assert len(entry.attempts) == 1  # not retried: the same value would fail again


@pytest.mark.parametrize("raw", ["nan", "inf", "-Infinity", "1e999"])
def test_settings_refuse_nan_and_infinity(raw: str) -> None:
    """float() takes these, and no setting means them: a time margin of NaN compares false with
    everything, so no step would ever be too close to the deadline."""
    from framework.backends.environment import Settings

    with pytest.raises(InvalidConfigError, match="WORKFLOWS_TIME_MARGIN"):
        Settings.from_env({"WORKFLOWS_TIME_MARGIN": raw})
    assert Settings.from_env({"WORKFLOWS_TIME_MARGIN": "2.5"}).time_margin == 2.5
