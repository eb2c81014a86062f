"""Paged history on moto: through the API handler, the client and the CLI; reads counted with botocore
hooks; pages held under a byte budget far below Lambda's 6 MB response limit."""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from framework import InvalidConfigError, InvalidStateError, workflow
from framework.cli import main
from framework.local import LocalContext, LocalRuntime
from framework.manage import history_pages
from handlers import api
from tests.integration.apigw import http_event

BIG = 900_000
LAMBDA_RESPONSE_LIMIT = 6 * 1024 * 1024


@workflow("hp-big")
def big(event: Any, step: Any) -> str:
    for i in range(8):
        step.do(f"part {i}", lambda i=i: f"{i}" * BIG)
    step.wait_for_event("go", event_type="go", timeout="1 hour")
    return "done"


@workflow("hp-events")
def events(event: Any, step: Any) -> str:
    step.do("a", lambda: 1)
    step.sleep("nap", "10 seconds")
    step.wait_for_event("first", event_type="go", timeout="1 hour")
    step.wait_for_event("second", event_type="go", timeout="1 hour")
    step.sleep("rest", "10 seconds")
    step.do("b", lambda: 2)
    return "done"


@workflow("hp-small")
def small(event: Any, step: Any) -> int:
    for i in range(event.payload["steps"]):
        step.do(f"s{i}", lambda i=i: {"i": i})
    return 0


class Calls:
    """Every DynamoDB and S3 call of the runtime's engine clients, by botocore's ``before-call`` hook."""

    def __init__(self, rt: LocalRuntime) -> None:
        self.seen: Counter[str] = Counter()
        self.params: list[tuple[str, dict[str, Any]]] = []
        for client in (rt.env.store._db, rt.env.blobs._s3):  # type: ignore[attr-defined]
            client.meta.events.register("before-call.*.*", self._count)
            client.meta.events.register("before-parameter-build.*.*", self._note)

    def _count(self, event_name: str, **_: Any) -> None:
        self.seen[".".join(event_name.split(".")[1:3])] += 1

    def _note(self, event_name: str, params: dict[str, Any], **_: Any) -> None:
        self.params.append((".".join(event_name.split(".")[1:3]), dict(params)))

    def take(self) -> Counter[str]:
        seen, self.seen = self.seen, Counter()
        self.params = []
        return seen


@pytest.fixture
def rt() -> Iterator[LocalRuntime]:
    with LocalRuntime(workflows=[big, small, events]) as runtime:
        yield runtime


def call(rt: LocalRuntime, path: str, query: dict[str, str] | None = None) -> tuple[int, Any, int]:
    """The API's answer, and the size of the Lambda response that carries it (the 6 MB limit's)."""
    context = LocalContext("ApiFunction", rt.clock, rt.clock.now() + 30)
    response = api.handler(http_event("GET", path, query=query), context)
    return response["statusCode"], json.loads(response["body"]), len(json.dumps(response))


def finished_big(rt: LocalRuntime) -> None:
    inst = rt.client.create("hp-big", id="big")
    rt.advance("1 minute")
    inst.send_event("go", {"ok": True})
    rt.run_until_idle()
    assert inst.status().status == "complete"


def test_eight_results_of_900_kb_page_far_below_6_mb(rt: LocalRuntime) -> None:
    finished_big(rt)
    whole = rt.client.get("big").history()  # the unpaged form, as before: every result, 7.2 MB
    assert sum(len(json.dumps(e.as_dict(), default=str)) for e in whole) > 7_000_000
    names = [f"part {i}" for i in range(8)]

    code, body, size = call(rt, "/instances/big/history")  # no results: one small page
    assert code == 200 and body["cursor"] is None and size < 20_000
    assert [e["name"] for e in body["entries"]] == [*names, "go", "go"]
    for entry in body["entries"][:8]:
        assert "result" not in entry and entry["result_omitted"] == "not_requested"
        assert (
            entry["result_bytes"] == len(json.dumps({"$value": "0" * BIG}, separators=(",", ":"))) == BIG + 13
        )
    assert [e["kind"] for e in body["entries"][8:]] == ["wait", "event"]

    sizes, entries, cursor = [], [], None
    while True:  # results asked for: two per page under the 2 MiB budget, every one reachable
        code, body, size = call(rt, "/instances/big/history", {"results": "true"} | _at(cursor))
        assert code == 200
        sizes.append(size)
        entries += body["entries"]
        cursor = body["cursor"]
        if cursor is None:
            break
    assert len(sizes) == 4 and max(sizes) <= history_pages.PAGE_BYTES < LAMBDA_RESPONSE_LIMIT / 2
    assert [e["name"] for e in entries] == [*names, "go", "go"]
    assert [e["result"] for e in entries[:8]] == [f"{i}" * BIG for i in range(8)]
    assert all("result_omitted" not in e for e in entries)

    code, body, _ = call(rt, "/instances/big/history", {"limit": "3"})  # the count limit too
    assert [e["name"] for e in body["entries"]] == names[:3] and body["cursor"]


def _at(cursor: str | None) -> dict[str, str]:
    return {} if cursor is None else {"cursor": cursor}


def test_reads_per_page_are_exact(rt: LocalRuntime) -> None:
    finished_big(rt)
    calls = Calls(rt)
    inst = rt.client.get("big")
    calls.take()
    page = inst.history_page(limit=4)
    # The instance, one Query page of the journal (limit + 1 items), one of the stored events; the
    # size of each result in S3 by HeadObject, none read.
    assert calls.seen == {"dynamodb.GetItem": 1, "dynamodb.Query": 2, "s3.HeadObject": 4}
    (journal,) = [p for name, p in calls.params if name == "dynamodb.Query" and "BETWEEN" in str(p)]
    assert journal["Limit"] == 5 and journal["ConsistentRead"] is True
    calls.take()
    rest = inst.history_page(limit=4, cursor=page.cursor)
    assert calls.seen == {"dynamodb.GetItem": 1, "dynamodb.Query": 2, "s3.HeadObject": 4}
    calls.take()
    last = inst.history_page(limit=4, cursor=rest.cursor)
    assert calls.take() == {"dynamodb.GetItem": 1, "dynamodb.Query": 2}
    assert [e.kind for e in last.entries] == ["wait", "event"] and last.cursor is None
    inst.history_page(limit=2, results=True)  # results: each read once, its size from what was read
    assert calls.take() == {"dynamodb.GetItem": 1, "dynamodb.Query": 2, "s3.GetObject": 2}


def test_pages_of_every_size_add_up_to_the_history(rt: LocalRuntime) -> None:
    inst = rt.client.create("hp-small", {"steps": 23}, id="small")
    rt.run_until_idle()
    whole = [e.as_dict() for e in inst.history()]
    for limit in (1, 2, 5, 22, 23, 24, 1000):
        pages = list(inst.history_pages(limit, results=True))
        assert all(len(p.entries) <= limit for p in pages)
        assert [e.as_dict() | {"result_bytes": 0} for p in pages for e in p.entries] == [
            e | {"result_bytes": 0} for e in whole
        ], limit
        assert len(pages) == -(-23 // limit)  # no empty last page
    plain = inst.history_page(limit=1000)
    assert [e.result_bytes for e in plain.entries] == [
        len(json.dumps({"$value": {"i": i}}, separators=(",", ":"))) for i in range(23)
    ]


def test_a_buffered_event_and_one_left_over_find_their_places(rt: LocalRuntime) -> None:
    inst = rt.client.create("hp-big", id="early")
    inst.send_event("go", {"n": 1})  # sent before the wait begins: the wait takes it from the buffer
    inst.send_event("go", {"n": 2})  # nobody waits for the second
    rt.run_until_idle()
    whole = [_plain(e.as_dict()) for e in inst.history()]
    (one_page,) = inst.history_pages(1000)
    assert [_plain(e.as_dict()) for e in one_page.entries] == whole
    assert [(e["kind"], e.get("status"), e.get("payload")) for e in whole if e["kind"] != "step"] == [
        ("wait", "complete", {"n": 1}),  # the virtual clock: sent as the steps ran, so after them
        ("event", "consumed", {"n": 1}),
        ("event", "buffered", {"n": 2}),
    ]
    for limit in (1, 2, 3, 9):  # each entry once, in the same order, whatever the page size
        pages = list(inst.history_pages(limit))
        entries = [_plain(e.as_dict()) for p in pages for e in p.entries]
        assert [(e["kind"], e["name"], e.get("payload")) for e in entries] == [
            (e["kind"], e["name"], e.get("payload")) for e in whole
        ], limit


def test_deleted_events_beside_their_waits_match_the_history(rt: LocalRuntime) -> None:
    inst = rt.client.create("hp-events", id="ev")
    rt.advance("5 seconds")
    inst.send_event("go", {"n": 1})  # during the nap: buffered, taken by "first" as it begins
    rt.advance("10 seconds")
    inst.send_event("go", {"n": 2})  # "second" waits for it
    rt.advance("1 minute")
    assert inst.status().status == "complete"
    stored = rt.env.store.load_events("ev", rt.env.store.get_instance("ev").run_key)  # type: ignore[union-attr]
    assert stored == []  # both taken, and deleted as the run suspended: only the waits hold them
    order = [
        ("step", "a"),
        ("sleep", "nap"),
        ("event", "go"),  # sent during the nap, before "first" began
        ("wait", "first"),
        ("wait", "second"),
        ("event", "go"),  # sent after "second" began: just after it
        ("sleep", "rest"),
        ("step", "b"),
    ]
    (one,) = inst.history_pages(1000)
    whole = [_plain(e.as_dict()) for e in one.entries]
    assert [(e["kind"], e["name"]) for e in whole] == order
    assert [e["payload"] for e in whole if e["kind"] == "event"] == [{"n": 1}, {"n": 2}]
    # history() places the second by time alone: "rest" began at the same virtual instant, so after it.
    assert [(e.kind, e.name) for e in inst.history()] == [*order[:5], order[6], order[5], order[7]]
    for limit in range(1, 10):
        pages = list(inst.history_pages(limit))
        assert [_plain(e.as_dict()) for p in pages for e in p.entries] == whole, limit
        assert all(len(p.entries) <= max(limit, 2) for p in pages)


def _plain(entry: dict[str, Any]) -> dict[str, Any]:
    """An entry without its result and the fields that say whether a page has it."""
    return {k: v for k, v in entry.items() if k not in ("result", "result_bytes", "result_omitted")}


def test_an_entry_too_large_for_a_page_comes_cut_and_marked(
    rt: LocalRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    finished_big(rt)
    monkeypatch.setattr(history_pages, "PAGE_BYTES", 500_000)
    code, body, size = call(rt, "/instances/big/history", {"results": "true", "limit": "2"})
    assert code == 200 and size < 500_000 and len(body["entries"]) == 1
    (entry,) = body["entries"]
    assert (
        entry["result_omitted"] == "too_large" and entry["result_bytes"] == BIG + 13 and "result" not in entry
    )
    assert rt.client.get("big").history()[0].result == "0" * BIG  # the client's history() has it whole


def _cursor(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode()


def test_bad_and_tampered_cursors_are_400_never_500(rt: LocalRuntime) -> None:
    rt.client.create("hp-small", {"steps": 3}, id="c1")
    rt.client.create("hp-small", {"steps": 3}, id="c2")
    rt.run_until_idle()
    good = rt.client.get("c1").history_page(limit=1).cursor
    assert good is not None
    real = json.loads(base64.urlsafe_b64decode(good + "=" * (-len(good) % 4)))
    bad = [
        "",
        "not base64 !",
        "e30",  # {}
        _cursor([1, 2]),
        _cursor(real | {"seq": -1}),
        _cursor(real | {"seq": True}),
        _cursor(real | {"seq": "1"}),
        _cursor(real | {"mark": float("nan")}),
        _cursor(real | {"mark": 1e300}),
        _cursor(real | {"after": [1, 2, 3]}),
        _cursor(real | {"after": ["x", "k"]}),
        _cursor(real | {"v": 2}),
        _cursor(real | {"extra": 1}),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        "[" * 5000,
    ]
    for cursor in bad:
        code, body, _ = call(rt, "/instances/c1/history", {"cursor": cursor})
        assert code == 400 and body["error"] in ("InvalidConfigError", "BadRequest"), (cursor, body)
        if len(cursor) <= 2000:
            with pytest.raises(InvalidConfigError):
                rt.client.get("c1").history_page(cursor=cursor)
    code, body, _ = call(rt, "/instances/c2/history", {"cursor": good})  # another instance's
    assert (code, body["error"]) == (400, "InvalidConfigError")
    for query in ({"limit": "0"}, {"limit": "1001"}, {"limit": "x"}, {"results": "maybe"}):
        assert call(rt, "/instances/c1/history", query)[0] == 400, query
    for limit in (0, 1001, True, 2.0):
        with pytest.raises(InvalidConfigError):
            rt.client.get("c1").history_page(limit=limit)  # type: ignore[arg-type]
    assert call(rt, "/instances/missing/history")[:2] == (
        404,
        {"error": "InstanceNotFoundError", "message": "no instance 'missing'"},
    )
    rt.client.get("c1").restart()  # the cursor names a run that is gone now
    code, body, _ = call(rt, "/instances/c1/history", {"cursor": good})
    assert (code, body["error"]) == (409, "InvalidStateError")
    with pytest.raises(InvalidStateError):
        rt.client.get("c1").history_page(cursor=good)


def test_the_cli_pages_with_limit_cursor_and_results(
    rt: LocalRuntime, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    finished_big(rt)
    monkeypatch.setattr("framework.cli._client", lambda args: rt.client)
    assert main(["history", "big"]) == 0
    out = capsys.readouterr().out
    assert out.count("result: 900,013 bytes (--results shows it)") == 8 and "more:" not in out
    assert out.startswith("instance big (hp-big): complete") and "output: " in out
    assert main(["history", "big", "--limit", "3", "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert len(first["entries"]) == 3 and first["cursor"]
    assert main(["history", "big", "--cursor", first["cursor"], "--limit", "1", "--results"]) == 0
    out = capsys.readouterr().out
    assert "'part 3'" in out and 'result: "3333' in out and "more: workflows history big --cursor " in out
    assert "instance big" not in out and "output:" not in out  # the heading and end belong to others
    assert main(["history", "big", "--json", "--results"]) == 0
    whole = json.loads(capsys.readouterr().out)
    assert whole["cursor"] is None and [e["result"] for e in whole["entries"][:8]] == [
        f"{i}" * BIG for i in range(8)
    ]
    with pytest.raises(SystemExit) as usage:
        main(["history", "big", "--limit", "0"])
    assert usage.value.code == 2
    capsys.readouterr()
    assert main(["history", "big", "--cursor", "tampered"]) == 1
    assert capsys.readouterr().err.startswith("workflows: InvalidConfigError: cursor is not one")


def test_the_openapi_document_gives_the_query_parameters() -> None:
    document = json.loads(api.openapi_document())
    operation = document["paths"]["/instances/{instance_id}/history"]["get"]
    parameters = {p["name"]: p["schema"] for p in operation["parameters"] if p["in"] == "query"}
    assert (parameters["limit"]["minimum"], parameters["limit"]["maximum"]) == (1, history_pages.MAX_LIMIT)
    assert parameters["limit"]["default"] == history_pages.DEFAULT_LIMIT
    assert parameters["results"]["type"] == "boolean" and parameters["results"]["default"] is False
    assert "cursor" in parameters and {"200", "400", "404", "409"} <= set(operation["responses"])
    assert "cursor" in document["components"]["schemas"]["HistoryView"]["required"]
