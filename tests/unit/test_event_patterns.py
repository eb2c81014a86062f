"""EventBridge event patterns: the grammar's checks, matching, and hostile events that must not crash it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from framework import workflow
from framework.api.triggers import trigger_of
from framework.core.event_patterns import check_pattern, matches, wildcard
from framework.errors import InvalidConfigError

EVENT: dict[str, Any] = {
    "id": "e1",
    "source": "shop",
    "detail-type": "Order Placed",
    "detail": {
        "total": 12.5,
        "count": 3,
        "state": "PAID",
        "tags": ["red", "blue"],
        "items": [{"sku": "a-1", "qty": 2}, {"sku": "b-2", "qty": 1}],
        "customer": {"email": "Ana@Example.com", "vip": True},
        "note": None,
        "file": "reports/2026/q1.csv",
    },
}

# (pattern, expected) against EVENT, by EventBridge's documented semantics. The differential test
# (tests/integration/test_event_patterns_moto.py) checks the ones moto implements the same way.
CASES: list[tuple[dict[str, Any], bool]] = [
    ({"source": ["shop"]}, True),
    ({"source": ["bank", "shop"]}, True),
    ({"source": ["bank"]}, False),
    ({"source": ["shop"], "detail-type": ["Order Shipped"]}, False),
    ({"detail": {"state": ["PAID"]}}, True),
    ({"detail": {"count": [3]}}, True),
    ({"detail": {"count": ["3"]}}, False),
    ({"detail": {"customer": {"vip": [True]}}}, True),
    ({"detail": {"customer": {"vip": [1]}}}, False),
    ({"detail": {"note": [None]}}, True),
    ({"detail": {"missing": [None]}}, False),
    ({"detail": {"tags": ["blue"]}}, True),
    ({"detail": {"tags": ["green"]}}, False),
    ({"detail": {"items": {"sku": ["b-2"]}}}, True),
    ({"detail": {"items": {"sku": ["c-3"]}}}, False),
    ({"detail": {"file": [{"prefix": "reports/"}]}}, True),
    ({"detail": {"file": [{"prefix": "Reports/"}]}}, False),
    ({"detail": {"file": [{"prefix": {"equals-ignore-case": "REPORTS/"}}]}}, True),
    ({"detail": {"file": [{"suffix": ".csv"}]}}, True),
    ({"detail": {"file": [{"suffix": {"equals-ignore-case": ".CSV"}}]}}, True),
    ({"detail": {"file": [{"suffix": ".txt"}]}}, False),
    ({"detail": {"state": [{"anything-but": "FAILED"}]}}, True),
    ({"detail": {"state": [{"anything-but": ["PAID", "FAILED"]}]}}, False),
    ({"detail": {"state": [{"anything-but": {"prefix": "PA"}}]}}, False),
    ({"detail": {"state": [{"anything-but": {"prefix": "NO"}}]}}, True),
    ({"detail": {"state": [{"anything-but": {"suffix": "ID"}}]}}, False),
    ({"detail": {"count": [{"anything-but": [1, 2]}]}}, True),
    ({"detail": {"total": [{"numeric": [">", 10]}]}}, True),
    ({"detail": {"total": [{"numeric": [">", 10, "<=", 12.5]}]}}, True),
    ({"detail": {"total": [{"numeric": [">", 10, "<", 12.5]}]}}, False),
    ({"detail": {"total": [{"numeric": ["=", 12.5]}]}}, True),
    ({"detail": {"state": [{"numeric": [">", 0]}]}}, False),
    ({"detail": {"total": [{"exists": True}]}}, True),
    ({"detail": {"gone": [{"exists": True}]}}, False),
    ({"detail": {"gone": [{"exists": False}]}}, True),
    ({"detail": {"total": [{"exists": False}]}}, False),
    ({"detail": {"customer": {"email": [{"equals-ignore-case": "ana@example.COM"}]}}}, True),
    ({"detail": {"customer": {"email": [{"equals-ignore-case": "bo@example.com"}]}}}, False),
    ({"detail": {"file": [{"wildcard": "reports/*/q1.csv"}]}}, True),
    ({"detail": {"file": [{"wildcard": "reports/*.txt"}]}}, False),
    ({"$or": [{"source": ["bank"]}, {"detail": {"count": [3]}}]}, True),
    ({"$or": [{"source": ["bank"]}, {"detail": {"count": [4]}}]}, False),
    ({"source": ["shop"], "$or": [{"detail": {"state": ["PAID"]}}, {"detail": {"count": [9]}}]}, True),
]


@pytest.mark.parametrize(("pattern", "expected"), CASES, ids=[json.dumps(p) for p, _ in CASES])
def test_matching_follows_eventbridge(pattern: dict[str, Any], expected: bool) -> None:
    assert check_pattern(pattern) == pattern
    assert matches(pattern, EVENT) is expected


def test_anything_but_and_string_matchers_need_the_field() -> None:
    assert not matches({"detail": {"gone": [{"anything-but": "x"}]}}, EVENT)
    assert not matches({"detail": {"gone": [{"prefix": ""}]}}, EVENT)


def test_an_event_that_is_not_an_object_matches_nothing() -> None:
    for event in (None, [], "shop", 1, [EVENT]):
        assert not matches({"source": ["shop"]}, event)


@pytest.mark.parametrize(
    "pattern",
    [
        {},
        {"source": "shop"},
        {"source": []},
        {"source": [{"prefix": 1}]},
        {"source": [{"cidr": "10.0.0.0/8"}]},
        {"source": [{"prefix": "a", "suffix": "b"}]},
        {"detail": {}},
        {"n": [{"numeric": [">"]}]},
        {"n": [{"numeric": ["~", 1]}]},
        {"n": [{"numeric": [">", float("inf")]}]},
        {"n": [{"numeric": [">", True]}]},
        {"n": [{"exists": "yes"}]},
        {"n": [{"anything-but": []}]},
        {"n": [{"anything-but": {"wildcard": "*"}}]},
        {"n": [{"anything-but": [None]}]},
        {"$or": [{"a": ["x"]}]},
        {"$or": {"a": ["x"]}},
        {"n": [float("nan")]},
        {"n": [["nested list"]]},
        {1: ["x"]},
    ],
)
def test_the_grammar_refuses_what_it_does_not_support(pattern: Any) -> None:
    with pytest.raises(InvalidConfigError):
        check_pattern(pattern)


def test_a_pattern_nested_too_deep_is_refused() -> None:
    pattern: dict[str, Any] = {"x": ["y"]}
    for _ in range(20):
        pattern = {"a": pattern}
    with pytest.raises(InvalidConfigError, match="deeper"):
        check_pattern(pattern)


def test_wildcards_escape_stars_and_take_bounded_time() -> None:
    assert wildcard(r"a\*b", "a*b") and not wildcard(r"a\*b", "axb")
    assert wildcard("*", "") and wildcard("a*", "a") and not wildcard("a*b", "ab c")
    # Backtracking regexes take exponential time on this; the two-pointer match is quadratic at most.
    assert not wildcard("*a" * 40 + "b", "a" * 5000)


def test_the_trigger_declaration_checks_s3_keys_and_patterns() -> None:
    assert trigger_of("w", {"s3": {"bucket": "b", "prefix": "in/", "suffix": ".csv"}}) is not None
    for bad in (
        {"s3": {"bucket": "b", "prefixes": "in/"}},
        {"s3": {"bucket": "b", "prefix": 3}},
        {"s3": {"bucket": ""}},
        {"s3": {"prefix": "in/"}},
        {"eventbridge": {"source": "shop"}},
        {"eventbridge": {}},
        {"sqs": {}},
    ):
        with pytest.raises(InvalidConfigError):
            trigger_of("w", bad)
    with pytest.raises(InvalidConfigError):

        @workflow("bad-trigger", trigger={"eventbridge": {"detail": {"n": [{"numeric": ["<"]}]}}})
        def bad(event: Any, step: Any) -> None: ...


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=30,
)
PATTERNS = [p for p, _ in CASES]


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    event=JSON, detail=JSON, text=st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF))
)
def test_hostile_events_never_crash_the_matcher(event: Any, detail: Any, text: str) -> None:
    shaped = {
        "source": text,
        "detail": {"file": text, "total": detail, "items": [detail, event], "tags": event},
    }
    for pattern in PATTERNS:
        assert matches(pattern, event) in (True, False)
        assert matches(pattern, shaped) in (True, False)


def test_a_very_deep_event_is_matched_without_recursing_into_it() -> None:
    deep: Any = "leaf"
    for _ in range(100_000):
        deep = {"detail": deep}
    assert not matches({"detail": {"detail": {"x": ["y"]}}}, deep)
    assert matches({"detail": {"detail": [{"exists": True}]}}, deep)
