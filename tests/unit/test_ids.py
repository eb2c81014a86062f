"""Instance ids: the charset, and every place an id is embedded in other text (blob keys, HTTP paths,
idempotency keys, child ids, callback ids), checked for collisions with hypothesis."""

from __future__ import annotations

import string
import urllib.parse
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from framework import InvalidInstanceIdError
from framework.core.callbacks import CallbackId, new_token, parse_callback_id
from framework.core.ids import (
    MAX_ID_CHARS,
    check_instance_id,
    from_path,
    is_instance_id,
    key_segment,
    path_segment,
)
from framework.core.records import InstanceRecord, Status
from framework.engine.children import default_child_id
from framework.local.apigw import gateway_path

FIRST = string.ascii_letters + string.digits + "_"
REST = FIRST + "-.:@/"
ids = st.builds(lambda a, b: a + b, st.sampled_from(FIRST), st.text(REST, max_size=MAX_ID_CHARS - 1))


@pytest.mark.parametrize(
    "instance_id",
    ["order:123", "ana@example.com", "orders/2024/7", "a.b-c_d", "x//y", "a/", "_:", "9" * 100, "a/../b"],
)
def test_the_keys_users_use_are_ids(instance_id: str) -> None:
    assert check_instance_id(instance_id) == instance_id


@pytest.mark.parametrize(
    "instance_id",
    [
        "",
        "a" * 101,
        "-a",  # would read as a CLI option
        ".",  # "." and ".." are path segments that URL clients resolve away
        "..",
        ".hidden",
        "/orders/1",
        ":a",
        "@a",
        "a#b",  # the sort keys' separator
        "#sweeper",  # the sweeper's own item
        "a%2Fb",  # an id is decoded from a path exactly once
        "a b",
        "a\tb",
        "a\n",
        "a\x00",
        "a\x7f",
        "a\ud800",  # a lone surrogate
        "caf\u00e9",
        "\uff41",  # fullwidth a
        "a+b",
        "a?b",
        "a\\b",
        "a~b",
        7,
        None,
    ],
)
def test_everything_else_is_refused_with_the_typed_error(instance_id: Any) -> None:
    with pytest.raises(InvalidInstanceIdError, match="is invalid: use 1 to 100 letters") as info:
        check_instance_id(instance_id)
    assert isinstance(info.value, ValueError)


@given(ids)
def test_every_string_of_the_charset_is_an_id(instance_id: str) -> None:
    assert is_instance_id(instance_id)


@given(st.text(min_size=1, max_size=120))
def test_an_id_holds_only_the_charset_within_100_characters(text: str) -> None:
    expected = len(text) <= MAX_ID_CHARS and text[0] in FIRST and all(c in REST for c in text)
    assert is_instance_id(text) == expected


@given(ids, ids)
def test_blob_key_segments_never_share_a_prefix(a: str, b: str) -> None:
    """cleanup.purge lists ``results/<segment>/``: no id's listing may find another id's blobs."""
    seg_a, seg_b = key_segment(a), key_segment(b)
    assert "/" not in seg_a and "#" not in seg_a
    assert (seg_b + "/").startswith(seg_a + "/") == (a == b)
    assert urllib.parse.unquote(seg_a) == a


@given(st.text(FIRST + "-", min_size=1, max_size=100))
def test_blob_keys_of_ids_of_the_old_charset_are_unchanged(instance_id: str) -> None:
    assert key_segment(instance_id) == instance_id


@given(ids, st.sampled_from(["", "/history", "/events", "/pause"]))
def test_an_id_encoded_twice_is_one_path_segment_after_api_gateway(instance_id: str, action: str) -> None:
    sent = f"/instances/{path_segment(instance_id)}{action}"
    received = gateway_path(sent)  # what the function sees: API Gateway decoded it once
    parts = received.split("/")
    assert len(parts) == 3 + (action != "")
    assert from_path(parts[2]) == instance_id


@given(ids.filter(lambda i: "/" not in i))
def test_an_id_without_slash_may_be_encoded_once_or_not_at_all(instance_id: str) -> None:
    once = gateway_path("/instances/" + urllib.parse.quote(instance_id, safe=""))
    plain = gateway_path("/instances/" + instance_id)
    assert from_path(once.split("/")[2]) == from_path(plain.split("/")[2]) == instance_id


def test_a_slash_encoded_once_reaches_the_function_as_a_separator() -> None:
    """What API Gateway's HTTP APIs do, and so the local emulation: why ids are encoded twice."""
    assert gateway_path("/instances/orders%2F2024%2F7") == "/instances/orders/2024/7"
    assert gateway_path("/instances/orders%252F2024") == "/instances/orders%2F2024"
    assert from_path("orders%2F2024") == "orders/2024"
    assert from_path("a%FFb") == "a%FFb" and not is_instance_id(from_path("a%FFb"))  # not UTF-8
    assert not is_instance_id(from_path("a%25b"))  # decoded once only: "a%b" holds "%"


@given(ids, st.integers(1, 9999), st.sampled_from(["1", "2.3", "1.10.4"]))
def test_idempotency_keys_name_their_id(instance_id: str, run: int, op: str) -> None:
    """``<id>:<incarnation>.<run>:<op>``: neither incarnation, run nor op holds ":", so the id is the
    key less its last two parts, whatever ":" the id holds."""
    key = f"{instance_id}:5f0c2a9e41b7.{run}:{op}"
    assert key.rsplit(":", 2)[0] == instance_id


@given(ids, st.integers(1, 9999), st.text("0123456789.", min_size=1, max_size=40))
def test_default_child_ids_are_ids(parent_id: str, run: int, op: str) -> None:
    parent = InstanceRecord(parent_id, "w", Status.RUNNING, "{}", 0.0, 0.0, "5f0c2a9e41b7", run=run)
    assert is_instance_id(default_child_id(parent, op))


@given(ids)
def test_callback_ids_carry_any_instance_id(instance_id: str) -> None:
    cid = CallbackId(instance_id, 3, 7, new_token())
    assert parse_callback_id(str(cid)) == cid


def test_the_encoding_example_of_the_http_api_doc_runs() -> None:
    import re
    from pathlib import Path

    text = (Path(__file__).parents[2] / "docs" / "http-api.md").read_text()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", text, re.DOTALL) if "path_segment" in b]
    assert len(blocks) == 1
    exec(compile(blocks[0], "docs/http-api.md", "exec"), {})
