"""Hostile input on the HTTP API: every row gets its exact status and error name, a JSON body of
``{"error", "message"}`` (``details`` too on a 422), and leaves nothing behind: no item written, no
message sent.

Not covered here: huge headers and request lines. API Gateway HTTP APIs refuse a request line plus
headers over 10 KB before Lambda runs, and Lambda refuses events over 6 MB, so neither reaches the
handler (see docs/http-api.md, "Responses that API Gateway or Lambda send").
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import BaseModel

from framework.api.registry import Workflow
from framework.local import LocalContext, LocalRuntime
from handlers import api
from tests.integration import workflows as w
from tests.integration.apigw import http_event

MIB = 1024 * 1024
KIB256 = 256 * 1024
WRITES = (
    "dynamodb.PutItem",
    "dynamodb.UpdateItem",
    "dynamodb.DeleteItem",
    "dynamodb.TransactWriteItems",
    "dynamodb.BatchWriteItem",
    "sqs.SendMessage",
    "sqs.SendMessageBatch",
    "s3.PutObject",
)


class Tags(BaseModel):
    tags: list[int]


tagged = Workflow("it-hostile-tags", lambda event, step: None, params=Tags)


class Money(BaseModel):
    amount: float  # pydantic's float takes inf and NaN (and "inf"): only the storage check refuses them
    rates: dict[str, float] = {}


money = Workflow("it-hostile-money", lambda event, step: None, params=Money)
NO_BODY = object()


@dataclass(frozen=True)
class Req:
    method: str
    path: str
    body: Any = NO_BODY  # sent as JSON
    raw: str | None = None  # sent as is
    b64: bytes | None = None  # sent base64-encoded, with isBase64Encoded, as API Gateway sends binary
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    no_content_type: bool = False

    def event(self) -> dict[str, Any]:
        body = None if self.body is NO_BODY else self.body
        event = http_event(
            self.method, self.path, body, query=self.query, headers=self.headers, raw_body=self.raw
        )
        if self.b64 is not None:
            event["body"] = base64.b64encode(self.b64).decode()
            event["isBase64Encoded"] = True
        if self.no_content_type:
            del event["headers"]["content-type"]
        return event


def padded(text: str, size: int) -> str:
    """``text`` (a JSON object) padded with spaces to ``size`` UTF-8 bytes: still the same JSON."""
    return text[:-1] + " " * (size - len(text.encode())) + "}"


def nested(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


def cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


CREATE = "/workflows/it-chain/instances"
MONEY = "/workflows/it-hostile-money/instances"
TYPED = "/workflows/it-typed/instances"
EVENTS = "/instances/known/events"
LIST = "/workflows/it-chain/instances"
P = pytest.param

CASES = [
    # -- sizes: the body limit counts decoded UTF-8 bytes, and the limit itself passes -------------------
    P(Req("POST", CREATE, raw=padded('{"id": "big"}', MIB + 1)), 413, "PayloadTooLarge", id="body-1MiB+1"),
    P(Req("POST", CREATE, raw=padded('{"id": "at-limit"}', MIB)), 201, None, id="body-exactly-1MiB"),
    P(
        Req("POST", CREATE, raw=json.dumps({"params": {"k": "é" * 524_300}}, ensure_ascii=False)),
        413,
        "PayloadTooLarge",
        id="body-under-1Mi-chars-over-1MiB-bytes",
    ),
    P(Req("POST", CREATE, b64=padded("{}", MIB + 1).encode()), 413, "PayloadTooLarge", id="base64-body-over"),
    P(
        Req("POST", CREATE, body={"params": {"k": "x" * KIB256}}),
        413,
        "PayloadTooLargeError",
        id="params-over",
    ),
    P(Req("POST", CREATE, body={"params": {"k": "x" * (KIB256 - 8)}}), 201, None, id="params-exactly-256KiB"),
    P(
        Req("POST", EVENTS, body={"type": "t", "payload": "x" * (KIB256 - 1)}),
        413,
        "PayloadTooLargeError",
        id="event-payload-over",
    ),
    P(
        Req("POST", EVENTS, body={"type": "t", "payload": "€" * 90_000}),
        413,
        "PayloadTooLargeError",
        id="event-payload-multibyte-over",
    ),
    P(
        Req("POST", EVENTS, body={"type": "t", "payload": "x" * (KIB256 - 2)}),
        202,
        None,
        id="event-payload-exactly-256KiB",
    ),
    # -- deep JSON: refused before parsing, which would recurse -----------------------------------------
    P(Req("POST", CREATE, raw=nested(10_000)), 400, "BadRequest", id="deep-array-10000"),
    P(Req("POST", CREATE, raw="[" * 10_000), 400, "BadRequest", id="deep-unclosed-10000"),
    P(
        Req("POST", CREATE, raw='{"params": ' + '{"a": ' * 10_000 + "1" + "}" * 10_001),
        400,
        "BadRequest",
        id="deep-params-objects",
    ),
    P(
        Req("POST", EVENTS, raw='{"type": "t", "payload": ' + nested(64) + "}"),
        400,
        "BadRequest",
        id="deep-event-body-65",
    ),
    P(Req("POST", CREATE, raw='{"params": {"x": ' + nested(62) + "}}"), 201, None, id="depth-exactly-64"),
    P(Req("POST", "/instances/known/pause", raw=nested(5000)), 400, "BadRequest", id="deep-body-on-pause"),
    # -- not JSON, or not strict JSON ---------------------------------------------------------------------
    P(Req("POST", CREATE, raw="{not json"), 400, "MalformedJSON", id="truncated"),
    # An unclosed string of escaped quotes: the nesting scan once backtracked on it (80 KB took 39 s).
    P(Req("POST", CREATE, raw='{"id": "' + '\\"' * 300_000), 400, "MalformedJSON", id="unclosed-escapes"),
    P(Req("POST", CREATE, raw='{"id": "a"} x'), 400, "MalformedJSON", id="trailing-garbage"),
    P(Req("POST", CREATE, raw="{'id': 'a'}"), 400, "MalformedJSON", id="single-quotes"),
    P(Req("POST", CREATE, raw='\ufeff{"id": "bom"}'), 400, "MalformedJSON", id="byte-order-mark"),
    P(Req("POST", CREATE, raw='{"params": {"k": NaN}}'), 400, "MalformedJSON", id="NaN-literal"),
    P(Req("POST", CREATE, raw='{"params": {"k": -Infinity}}'), 400, "MalformedJSON", id="Infinity-literal"),
    P(Req("POST", CREATE, raw='{"params": {"k": 1e999}}'), 400, "SerializationError", id="float-overflow"),
    # -- numbers that are not finite: no params or payload may hold one, whatever a model accepts --------
    P(
        Req("POST", CREATE, raw='{"params": {"k": -1e999}}'),
        400,
        "SerializationError",
        id="float-overflow-neg",
    ),
    P(
        Req("POST", CREATE, raw='{"params": {"k": [1, {"j": 1e400}]}}'),
        400,
        "SerializationError",
        id="float-overflow-nested",
    ),
    P(
        Req("POST", MONEY, raw='{"params": {"amount": 1e999}}'),
        400,
        "SerializationError",
        id="float-field-1e999",
    ),
    P(
        Req("POST", MONEY, raw='{"params": {"amount": -1e999}}'),
        400,
        "SerializationError",
        id="float-field--1e999",
    ),
    P(
        Req("POST", MONEY, body={"params": {"amount": "inf"}}),
        400,
        "SerializationError",
        id="float-field-inf-string",
    ),
    P(
        Req("POST", MONEY, body={"params": {"amount": "NaN"}}),
        400,
        "SerializationError",
        id="float-field-nan-string",
    ),
    P(
        Req("POST", MONEY, raw='{"params": {"amount": 1, "rates": {"eur": 1e999}}}'),
        400,
        "SerializationError",
        id="float-dict-field-1e999",
    ),
    P(
        Req("POST", MONEY, raw='{"params": {"amount": NaN}}'),
        400,
        "MalformedJSON",
        id="float-field-NaN-literal",
    ),
    P(
        Req("POST", MONEY, raw='{"params": {"amount": Infinity}}'),
        400,
        "MalformedJSON",
        id="float-field-Infinity-literal",
    ),
    P(Req("POST", MONEY, body={"params": {"amount": 1e308}}), 201, None, id="float-field-largest-finite"),
    P(
        Req(
            "POST",
            MONEY + "/batch",
            raw='{"instances": [{"params": {"amount": 1}}, {"params": {"amount": 1e999}}]}',
        ),
        400,
        "SerializationError",
        id="batch-one-infinite-writes-none",
    ),
    P(
        Req("POST", CREATE + "/batch", raw='{"instances": [{"params": {}}, {"params": {"k": -1e999}}]}'),
        400,
        "SerializationError",
        id="batch-untyped-infinite-writes-none",
    ),
    P(
        Req("POST", EVENTS, raw='{"type": "t", "payload": -1e999}'),
        400,
        "SerializationError",
        id="event-payload--inf",
    ),
    P(
        Req("POST", EVENTS, raw='{"type": "t", "payload": {"a": [1e999]}}'),
        400,
        "SerializationError",
        id="event-payload-nested-inf",
    ),
    P(Req("POST", EVENTS, raw='{"type": "t", "payload": NaN}'), 400, "MalformedJSON", id="event-payload-NaN"),
    P(
        Req("POST", EVENTS, raw='{"type": "t", "payload": {"a": -Infinity}}'),
        400,
        "MalformedJSON",
        id="event-payload-Infinity",
    ),
    P(
        Req("POST", CREATE, raw='{"params": {"k": ' + "7" * 5000 + "}}"),
        400,
        "MalformedJSON",
        id="integer-5000-digits",
    ),
    P(Req("POST", CREATE, raw='{"id": "dup-a", "id": "dup-b"}'), 400, "MalformedJSON", id="duplicate-keys"),
    P(
        Req("POST", CREATE, raw='{"params": {"k": 1, "k": 2}}'),
        400,
        "MalformedJSON",
        id="duplicate-keys-nested",
    ),
    P(Req("POST", CREATE, raw="[]"), 400, "BadRequest", id="array-body"),
    P(Req("POST", CREATE, raw='"x"'), 400, "BadRequest", id="string-body"),
    P(Req("POST", CREATE, raw="null"), 400, "BadRequest", id="null-body"),
    P(Req("POST", CREATE), 400, "BadRequest", id="no-body"),
    P(Req("POST", "/instances/known/pause", raw="garbage"), 400, "MalformedJSON", id="garbage-on-pause"),
    # -- media types and encodings ------------------------------------------------------------------------
    P(
        Req("POST", CREATE, raw="{}", headers={"content-type": "text/plain"}),
        415,
        "UnsupportedMediaType",
        id="text-plain",
    ),
    P(
        Req(
            "POST",
            CREATE,
            raw="--x\r\n\r\n{}\r\n--x--",
            headers={"content-type": "multipart/form-data; boundary=x"},
        ),
        415,
        "UnsupportedMediaType",
        id="multipart",
    ),
    P(
        Req("POST", CREATE, raw="id=a", headers={"content-type": "application/x-www-form-urlencoded"}),
        415,
        "UnsupportedMediaType",
        id="form-urlencoded",
    ),
    P(
        Req("POST", CREATE, raw="{}", headers={"content-type": "application/xml"}),
        415,
        "UnsupportedMediaType",
        id="xml",
    ),
    P(
        Req("POST", CREATE, raw="{}", headers={"content-type": "application/jsonx"}),
        415,
        "UnsupportedMediaType",
        id="json-prefix-only",
    ),
    P(
        Req("POST", CREATE, raw="{}", headers={"content-type": "application/json; charset=latin-1"}),
        415,
        "UnsupportedMediaType",
        id="charset-latin-1",
    ),
    P(
        Req(
            "POST",
            CREATE,
            raw='{"id": "upper-ct"}',
            headers={"content-type": 'APPLICATION/JSON; charset="UTF-8"'},
        ),
        201,
        None,
        id="upper-case-json-utf8",
    ),
    P(
        Req("POST", CREATE, raw='{"id": "../x"}', no_content_type=True),
        400,
        "InvalidInstanceIdError",
        id="no-content-type-is-json",
    ),
    P(Req("POST", CREATE, b64=b'{"id": "\xff\xfe"}'), 400, "MalformedJSON", id="base64-not-utf8"),
    P(Req("POST", CREATE, b64='{"id": "x"}'.encode("utf-16")), 400, "MalformedJSON", id="base64-utf16"),
    P(Req("POST", CREATE, b64=b'{"id": "a#b"}'), 400, "InvalidInstanceIdError", id="base64-decoded-and-read"),
    P(Req("POST", CREATE, raw='{"id": "\\ud800"}'), 400, "MalformedJSON", id="lone-surrogate-id"),
    P(
        Req("POST", CREATE, raw='{"params": {"k": "a\\udc00"}}'),
        400,
        "MalformedJSON",
        id="lone-surrogate-params",
    ),
    P(Req("POST", CREATE, raw='{"params": {"\\ud83d": 1}}'), 400, "MalformedJSON", id="lone-surrogate-key"),
    P(
        Req("POST", EVENTS, raw='{"type": "t", "payload": "\\udfff"}'),
        400,
        "MalformedJSON",
        id="lone-surrogate-payload",
    ),
    P(
        Req("POST", MONEY, raw='{"params": {"amount": 1, "rates": {"\\ud800": 1}}}'),
        400,
        "MalformedJSON",
        id="lone-surrogate-typed-dict-key",
    ),
    P(
        Req("POST", CREATE + "/batch", raw='{"instances": [{"params": {}}, {"params": {"k": "\\ud800"}}]}'),
        400,
        "MalformedJSON",
        id="lone-surrogate-in-batch",
    ),
    P(
        Req("POST", EVENTS, raw='{"type": "t", "payload": {"\\udc00x": 1}}'),
        400,
        "MalformedJSON",
        id="lone-surrogate-payload-key",
    ),
    P(
        Req("POST", EVENTS, raw='{"type": "t", "payload": ["a", {"b": "\\ud83d"}]}'),
        400,
        "MalformedJSON",
        id="lone-surrogate-payload-nested",
    ),
    P(
        Req("POST", CREATE, raw='{"id": "pair", "params": {"k": "\\ud83d\\ude00"}}'),
        201,
        None,
        id="surrogate-pair-is-fine",
    ),
    # -- ids in bodies ------------------------------------------------------------------------------------
    P(Req("POST", CREATE, body={"id": "../etc/passwd"}), 400, "InvalidInstanceIdError", id="body-id-dotdot"),
    P(Req("POST", CREATE, body={"id": "a#b"}), 400, "InvalidInstanceIdError", id="body-id-hash"),
    P(Req("POST", CREATE, body={"id": "/a"}), 400, "InvalidInstanceIdError", id="body-id-leading-slash"),
    P(Req("POST", CREATE, body={"id": "a%2Fb"}), 400, "InvalidInstanceIdError", id="body-id-percent"),
    P(Req("POST", CREATE, body={"id": "a\x00b"}), 400, "InvalidInstanceIdError", id="body-id-NUL"),
    P(Req("POST", CREATE, body={"id": "known2\n"}), 400, "InvalidInstanceIdError", id="body-id-trailing-LF"),
    P(Req("POST", CREATE, body={"id": "a\tb"}), 400, "InvalidInstanceIdError", id="body-id-tab"),
    P(Req("POST", CREATE, body={"id": ""}), 400, "InvalidInstanceIdError", id="body-id-empty"),
    P(Req("POST", CREATE, body={"id": "-x"}), 400, "InvalidInstanceIdError", id="body-id-leading-dash"),
    P(Req("POST", CREATE, body={"id": "a" * 101}), 400, "InvalidInstanceIdError", id="body-id-101"),
    P(Req("POST", CREATE, body={"id": "b" * 100}), 201, None, id="body-id-exactly-100"),
    P(
        Req("POST", CREATE, body={"id": "\u202eabc"}),
        400,
        "InvalidInstanceIdError",
        id="body-id-RTL-override",
    ),
    P(Req("POST", CREATE, body={"id": "\U0001f600"}), 400, "InvalidInstanceIdError", id="body-id-emoji"),
    P(Req("POST", CREATE, body={"id": "cafe\u0301"}), 400, "InvalidInstanceIdError", id="body-id-NFD"),
    P(Req("POST", CREATE, body={"id": "caf\u00e9"}), 400, "InvalidInstanceIdError", id="body-id-NFC"),
    P(Req("POST", CREATE, body={"id": "\u212a"}), 400, "InvalidInstanceIdError", id="body-id-Kelvin-sign"),
    P(
        Req("POST", CREATE, body={"id": "\uff41\uff42"}),
        400,
        "InvalidInstanceIdError",
        id="body-id-fullwidth",
    ),
    P(Req("POST", CREATE, body={"id": "\u0665"}), 400, "InvalidInstanceIdError", id="body-id-arabic-digit"),
    P(Req("POST", CREATE, body={"id": 5}), 400, "BadRequest", id="body-id-number"),
    P(Req("POST", CREATE, body={"id": ["a"]}), 400, "BadRequest", id="body-id-list"),
    P(
        Req("POST", CREATE + "/batch", body={"instances": [{"id": "ok-1"}, {"id": "../"}]}),
        400,
        "InvalidInstanceIdError",
        id="batch-one-bad-id-writes-none",
    ),
    # -- ids in paths: percent-encoded (REST, local) and decoded (API Gateway HTTP APIs decode rawPath) -----
    P(Req("GET", "/instances/..%2F..%2Fetc%2Fpasswd"), 400, "InvalidInstanceIdError", id="path-id-%2F"),
    P(Req("GET", "/instances/%2e%2e%2f"), 400, "InvalidInstanceIdError", id="path-id-%2e%2e%2f"),
    P(Req("GET", "/instances/../../etc"), 404, "NotFound", id="path-dotdot-decoded"),
    P(Req("POST", "/instances/../known/pause"), 404, "NotFound", id="path-dotdot-on-action"),
    P(Req("GET", "/instances/a%00b"), 400, "InvalidInstanceIdError", id="path-id-%00"),
    P(Req("GET", "/instances/a\x00b"), 400, "BadRequest", id="path-id-NUL-decoded"),
    P(Req("GET", "/instances/known\n"), 400, "BadRequest", id="path-id-trailing-LF-decoded"),
    P(Req("POST", "/instances/known\r/pause"), 400, "BadRequest", id="path-id-CR-decoded"),
    P(Req("GET", "/instances/%E2%80%AEknown"), 400, "InvalidInstanceIdError", id="path-id-RTL-encoded"),
    P(Req("GET", "/instances/\u202eknown"), 400, "InvalidInstanceIdError", id="path-id-RTL-decoded"),
    P(Req("GET", "/instances/\U0001f600"), 400, "InvalidInstanceIdError", id="path-id-emoji-decoded"),
    P(
        Req("POST", "/instances/\U0001f600/pause"),
        400,
        "InvalidInstanceIdError",
        id="path-id-emoji-on-action",
    ),
    P(Req("GET", "/instances/e\u0301"), 400, "InvalidInstanceIdError", id="path-id-combining"),
    P(Req("GET", "/instances/a%20b"), 400, "InvalidInstanceIdError", id="path-id-space"),
    P(Req("GET", "/instances/" + "a" * 101), 400, "InvalidInstanceIdError", id="path-id-101"),
    P(Req("GET", "/instances/" + "a" * 5000), 400, "InvalidInstanceIdError", id="path-id-5000"),
    P(Req("GET", "/instances/" + "c" * 100), 404, "InstanceNotFoundError", id="path-id-100-unknown"),
    P(Req("GET", "/instances/KNOWN"), 404, "InstanceNotFoundError", id="path-id-case-differs"),
    # -- workflows ----------------------------------------------------------------------------------------
    P(Req("POST", "/workflows/nope/instances", body={}), 404, "WorkflowNotFoundError", id="workflow-unknown"),
    P(
        Req("POST", "/workflows/..%2F..%2Fx/instances", body={}),
        404,
        "WorkflowNotFoundError",
        id="workflow-traversal",
    ),
    P(
        Req("POST", "/workflows/" + "w" * 65 + "/instances", body={}),
        404,
        "WorkflowNotFoundError",
        id="workflow-name-65",
    ),
    P(Req("GET", "/workflows/\U0001f600/instances"), 404, "WorkflowNotFoundError", id="workflow-emoji"),
    P(Req("GET", "/workflows/it-CHAIN/instances"), 404, "WorkflowNotFoundError", id="workflow-case-differs"),
    # -- events -------------------------------------------------------------------------------------------
    P(Req("POST", EVENTS, body={"type": "t" * 101}), 400, "BadRequest", id="event-type-101"),
    P(Req("POST", EVENTS, body={"type": "a b"}), 400, "InvalidConfigError", id="event-type-space"),
    P(Req("POST", EVENTS, body={"type": "a\x00"}), 400, "InvalidConfigError", id="event-type-NUL"),
    P(
        Req("POST", EVENTS, body={"type": "appr\u043eved"}),
        400,
        "InvalidConfigError",
        id="event-type-cyrillic-o",
    ),
    P(Req("POST", EVENTS, body={"type": ""}), 400, "BadRequest", id="event-type-empty"),
    P(Req("POST", EVENTS, body={"type": 5}), 400, "BadRequest", id="event-type-number"),
    P(Req("POST", EVENTS, body={"payload": 1}), 400, "BadRequest", id="event-type-missing"),
    P(Req("POST", EVENTS, body={"type": "t", "extra": 1}), 400, "BadRequest", id="event-extra-key"),
    P(
        Req("POST", EVENTS, raw='{"type": "t", "payload": 1e400}'),
        400,
        "SerializationError",
        id="event-payload-inf",
    ),
    P(
        Req("POST", "/instances/missing/events", body={"type": "t"}),
        404,
        "InstanceNotFoundError",
        id="event-unknown-instance",
    ),
    P(
        Req("POST", "/instances/done/events", body={"type": "t"}),
        409,
        "InvalidStateError",
        id="event-finished-instance",
    ),
    # -- params of the wrong type -------------------------------------------------------------------------
    P(Req("POST", TYPED, body={"params": [1]}), 422, "InvalidParamsError", id="typed-params-list"),
    P(Req("POST", TYPED, body={"params": "x"}), 422, "InvalidParamsError", id="typed-params-string"),
    P(Req("POST", TYPED, body={}), 422, "InvalidParamsError", id="typed-params-missing"),
    P(
        Req("POST", TYPED, body={"params": {"sku": "a", "quantity": "x"}}),
        422,
        "InvalidParamsError",
        id="typed-field-wrong-type",
    ),
    P(
        Req("POST", TYPED, raw='{"params": {"sku": "a", "quantity": 1e400}}'),
        422,
        "InvalidParamsError",
        id="typed-field-infinite",
    ),
    P(
        Req("POST", TYPED, body={"params": {"sku": None, "quantity": 1}}),
        422,
        "InvalidParamsError",
        id="typed-field-null",
    ),
    P(
        Req("POST", "/workflows/it-hostile-tags/instances", body={"params": {"tags": ["x"] * 50_000}}),
        422,
        "InvalidParamsError",
        id="typed-50000-errors",
    ),
    P(Req("POST", CREATE, body={"params": "x"}), 422, "InvalidParamsError", id="untyped-params-string"),
    P(Req("POST", CREATE, body={"params": [1, 2]}), 422, "InvalidParamsError", id="untyped-params-list"),
    P(Req("POST", CREATE, body={"params": 5}), 422, "InvalidParamsError", id="untyped-params-number"),
    P(Req("POST", CREATE, body={"params": {}, "idd": "typo"}), 400, "BadRequest", id="unknown-body-key"),
    # -- query parameters ---------------------------------------------------------------------------------
    P(Req("GET", LIST, query={"limit": "0"}), 400, "BadRequest", id="limit-0"),
    P(Req("GET", LIST, query={"limit": "1000000000"}), 400, "BadRequest", id="limit-10^9"),
    P(Req("GET", LIST, query={"limit": "-1"}), 400, "BadRequest", id="limit-negative"),
    P(Req("GET", LIST, query={"limit": "ten"}), 400, "BadRequest", id="limit-not-a-number"),
    P(Req("GET", LIST, query={"limit": "1.5"}), 400, "BadRequest", id="limit-float"),
    P(Req("GET", LIST, query={"limit": "9" * 5000}), 400, "BadRequest", id="limit-5000-digits"),
    P(Req("GET", LIST, query={"limit": "1,2"}), 400, "BadRequest", id="limit-repeated"),
    P(Req("GET", LIST, query={"cursor": "!!!"}), 400, "InvalidConfigError", id="cursor-garbage"),
    P(Req("GET", LIST, query={"cursor": "x" * 1001}), 400, "BadRequest", id="cursor-1001-chars"),
    P(
        Req("GET", LIST, query={"cursor": cursor([True, "a"])}),
        400,
        "InvalidConfigError",
        id="cursor-tampered-bool",
    ),
    P(
        Req("GET", LIST, query={"cursor": cursor(["1", "a"])}),
        400,
        "InvalidConfigError",
        id="cursor-tampered-string-time",
    ),
    P(
        Req("GET", LIST, query={"cursor": cursor([1, "../x"])}),
        400,
        "InvalidConfigError",
        id="cursor-tampered-id",
    ),
    P(
        Req("GET", LIST, query={"cursor": cursor([1e300, "a"])}),
        400,
        "InvalidConfigError",
        id="cursor-tampered-time",
    ),
    P(
        Req("GET", LIST, query={"cursor": base64.urlsafe_b64encode(b"[" * 700).decode()}),
        400,
        "InvalidConfigError",
        id="cursor-deep",
    ),
    P(Req("GET", LIST, query={"status": "sleepy"}), 400, "InvalidConfigError", id="status-unknown"),
    P(Req("GET", LIST, query={"status": "s" * 5000}), 400, "InvalidConfigError", id="status-5000-chars"),
    # -- methods and routes -------------------------------------------------------------------------------
    P(Req("DELETE", "/instances/known"), 405, "MethodNotAllowed", id="DELETE-instance"),
    P(Req("GET", "/instances/known/pause"), 405, "MethodNotAllowed", id="GET-on-action"),
    P(Req("PUT", CREATE, body={}), 405, "MethodNotAllowed", id="PUT-instances"),
    P(Req("PATCH", "/instances/known"), 405, "MethodNotAllowed", id="PATCH-instance"),
    P(Req("HEAD", "/instances/known"), 405, "MethodNotAllowed", id="HEAD-instance"),
    P(Req("OPTIONS", "/instances/known"), 405, "MethodNotAllowed", id="OPTIONS-instance"),
    P(Req("DELETE", "/instances/\U0001f600"), 405, "MethodNotAllowed", id="DELETE-odd-id"),
    P(Req("GET", "/nowhere"), 404, "NotFound", id="unknown-route"),
    P(Req("DELETE", "/instances"), 405, "MethodNotAllowed", id="collection-other-method"),
    P(Req("GET", "/instance"), 404, "NotFound", id="collection-misspelt"),
    P(Req("GET", "/instances/known/"), 404, "NotFound", id="trailing-slash"),
    P(Req("POST", "/instances//pause"), 404, "NotFound", id="empty-segment"),
    P(Req("GET", "/instances/known/history/extra"), 404, "NotFound", id="extra-segment"),
]


@pytest.fixture(scope="module")
def rt() -> Iterator[LocalRuntime]:
    with LocalRuntime(workflows=[w.chain, w.typed, w.approval, tagged, money]) as runtime:
        runtime.client.create("it-approval", id="known")
        runtime.client.create("it-chain", {"steps": 1}, id="done")
        runtime.advance(0)  # runs both; "known" then waits a day for its event
        assert runtime.client.get("known").status().status == "waiting"
        assert runtime.client.get("done").status().status == "complete"
        yield runtime


@pytest.fixture(scope="module")
def snapshot(rt: LocalRuntime) -> Callable[[], tuple[list[str], int]]:
    db, sqs = rt.boto3_client("dynamodb"), rt.boto3_client("sqs")  # made once: a client takes 0.2 s

    def take() -> tuple[list[str], int]:
        """Every item of the table, and how many messages the work queue holds."""
        items: list[str] = []
        start: dict[str, Any] = {}
        while True:
            page = db.scan(TableName=rt.table_name, **start)
            items += [json.dumps(i, sort_keys=True) for i in page["Items"]]
            if "LastEvaluatedKey" not in page:
                break
            start = {"ExclusiveStartKey": page["LastEvaluatedKey"]}
        counts = sqs.get_queue_attributes(QueueUrl=rt.queue_url, AttributeNames=["All"])["Attributes"]
        queued = sum(int(counts[f"ApproximateNumberOfMessages{k}"]) for k in ("", "NotVisible", "Delayed"))
        return sorted(items), queued

    return take


@pytest.mark.parametrize(("req", "status", "error"), CASES)
def test_hostile_request(
    rt: LocalRuntime, snapshot: Callable[[], tuple[list[str], int]], req: Req, status: int, error: str | None
) -> None:
    before = snapshot()
    rt.aws_calls.clear()
    response = api.handler(req.event(), LocalContext("ApiFunction", rt.clock, rt.clock.now() + 30))
    writes = {op: n for op, n in rt.aws_calls.items() if op in WRITES}

    assert response["headers"]["Content-Type"] == "application/json"
    assert response["isBase64Encoded"] is False
    body = json.loads(response["body"])
    if error is None:  # at a limit: accepted
        assert response["statusCode"] == status, body
        assert writes, "an accepted request writes"
        return
    assert (response["statusCode"], body.get("error")) == (status, error), body
    assert set(body) == ({"error", "message", "details"} if status == 422 else {"error", "message"})
    message = body["message"]
    assert isinstance(message, str) and message.strip()
    assert "Traceback" not in message and 'File "' not in message
    assert len(message) <= 2100, "a message echoing input is cut"
    if status == 405:
        assert response["headers"]["Allow"] in message
    if status == 422:
        assert isinstance(body["details"], list) and len(body["details"]) <= 20
    assert not writes, writes
    assert snapshot() == before, "nothing is written, nothing is sent"


def test_the_table_is_broad() -> None:
    assert len(CASES) >= 35
    names = {p.values[2] for p in CASES}
    assert {"PayloadTooLarge", "MalformedJSON", "UnsupportedMediaType", "MethodNotAllowed"} <= names


def test_ids_are_exact_code_points(rt: LocalRuntime) -> None:
    """No normalisation and no case folding: only ASCII ids are valid, and two ids are one id only
    when they are the same characters."""
    context = LocalContext("ApiFunction", rt.clock, rt.clock.now() + 30)
    created = api.handler(http_event("POST", CREATE, {"id": "Case-1"}), context)
    assert created["statusCode"] == 201
    assert api.handler(http_event("GET", "/instances/Case-1"), context)["statusCode"] == 200
    assert api.handler(http_event("GET", "/instances/case-1"), context)["statusCode"] == 404
    assert api.handler(http_event("POST", CREATE, {"id": "case-1"}), context)["statusCode"] == 201
