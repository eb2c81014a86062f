"""``ApiClient`` against ``handlers.api`` served over loopback HTTP (as API Gateway passes requests), on
moto: the same answers and errors as ``WorkflowClient`` on the same stack."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from framework import (
    ApiError,
    CallbackCompletedError,
    CallbackNotFoundError,
    InstanceAlreadyExistsError,
    InstanceNotFoundError,
    InvalidConfigError,
    InvalidInstanceIdError,
    InvalidParamsError,
    InvalidStateError,
    PayloadTooLargeError,
    SerializationError,
    WorkflowNotFoundError,
)
from framework.local import LocalRuntime
from framework.manage.api_client import ApiClient, ApiInstance
from tests.integration import workflows as w
from tests.integration.apigw import serve_api


@pytest.fixture
def rt() -> Iterator[LocalRuntime]:
    flows = [w.typed, w.approval, w.sleepy, w.refundable, w.callback, w.chain]
    with LocalRuntime(workflows=flows) as runtime:
        yield runtime


@pytest.fixture
def client(rt: LocalRuntime) -> Iterator[ApiClient]:
    with serve_api(rt) as url:
        api = ApiClient(url, timeout=30)
        assert api.signing is None  # loopback: unsigned
        yield api


def test_create_is_idempotent_and_raises_as_the_direct_client(client: ApiClient) -> None:
    made = client.create("it-typed", {"sku": "a", "quantity": 2}, id="o1")
    assert (made.id, made.created) == ("o1", True)
    again = client.create("it-typed", {"quantity": 2, "sku": "a"}, id="o1")  # same params, keys aside
    assert (again.id, again.created) == ("o1", False)
    with pytest.raises(InstanceAlreadyExistsError):
        client.create("it-typed", {"sku": "b", "quantity": 1}, id="o1")
    with pytest.raises(WorkflowNotFoundError):
        client.create("no-such-flow", {}, id="o2")
    with pytest.raises(InvalidParamsError) as bad:
        client.create("it-typed", {"sku": "a", "quantity": "many"}, id="o3")
    assert bad.value.details and bad.value.details[0]["loc"] == ["quantity"]
    with pytest.raises(InvalidInstanceIdError):
        client.create("it-typed", {"sku": "a", "quantity": 1}, id="bad id")
    with pytest.raises(SerializationError):
        client.create("it-typed", {"sku": "a", "quantity": float("nan")}, id="o4")
    with pytest.raises(PayloadTooLargeError):
        client.create("it-chain", {"pad": "x" * 300_000}, id="o5")
    generated = client.create("it-chain", {"steps": 1})
    assert generated.created and len(generated.id) == 36
    assert {i.id for i in client.list(limit=10).instances} == {"o1", generated.id}


def test_status_and_history_equal_the_direct_clients(rt: LocalRuntime, client: ApiClient) -> None:
    client.create("it-approval", id="orders/2024/7")
    rt.advance("1 second")
    direct, over_http = rt.client.get("orders/2024/7"), client.get("orders/2024/7")
    assert over_http.status() == direct.status()
    assert over_http.status().wait is not None and over_http.status().wait.event_type == "approved"
    over_http.send_event("approved", {"by": "bo"})
    rt.advance("1 second")
    status = over_http.status()
    assert status == direct.status() and status.output == {"by": "bo", "escalated": False}
    for results in (False, True):
        pages = list(over_http.history_pages(1, results=results))
        expected = list(direct.history_pages(1, results=results))
        assert len(pages) == len(expected) == 3
        assert [[e.as_dict() for e in p.entries] for p in pages] == [
            [e.as_dict() for e in p.entries] for p in expected
        ]
        assert pages[0].entries == expected[0].entries  # read back into the same objects
    page = over_http.history_page(2)
    assert len(page.entries) == 2 and page.cursor is not None
    assert over_http.history_page(100, page.cursor).entries == direct.history_page(100, page.cursor).entries
    with pytest.raises(InvalidConfigError):
        over_http.history_page(10, "not-a-cursor")
    with pytest.raises(InvalidStateError):  # an event for a finished instance
        over_http.send_event("approved", {})


def test_ids_with_a_slash_or_an_at_sign_are_one_path_segment(rt: LocalRuntime, client: ApiClient) -> None:
    for instance_id in ("orders/2024/7", "ana@example.com", "a/history"):
        assert client.create("it-approval", id=instance_id).created
    rt.advance("1 second")
    client.get("a/history").send_event("approved", {"by": "cy"})
    rt.advance("1 second")
    assert client.get("a/history").status().status == "complete"
    assert client.get("orders/2024/7").status().status == "waiting"  # not "a"'s, not another's
    assert client.get("ana@example.com").status().id == "ana@example.com"
    with pytest.raises(InstanceNotFoundError):
        client.get("orders/2024")
    with pytest.raises(InvalidInstanceIdError):
        client.get("a#b")


def test_controls(rt: LocalRuntime, client: ApiClient) -> None:
    client.create("it-refundable", id="r1")
    client.create("it-sleepy", id="s1")
    rt.advance("1 second")
    sleepy = client.get("s1")
    sleepy.pause()
    assert rt.client.get("s1").status().status == "paused"
    with pytest.raises(InvalidStateError):
        sleepy.pause()
    sleepy.resume()
    assert rt.client.get("s1").status().status == "waiting"
    sleepy.terminate()
    assert rt.client.get("s1").status().status == "terminated"
    sleepy.restart()
    assert rt.client.get("s1").status().status == "queued"
    refundable = client.get("r1")
    refundable.terminate(rollback=True)
    assert rt.client.get("r1").status().status != "terminated"  # the undos run first, in the worker
    rt.advance("1 second")
    assert rt.client.get("r1").status().status == "terminated"
    assert [e.name for e in rt.client.get("r1").history()] == ["charge", "ship", "charge (undo)"]
    with pytest.raises(InstanceNotFoundError):
        client.get("nope")
    with pytest.raises(InstanceNotFoundError):
        ApiInstance(client, "nope").pause()  # a handle without a read: the write says it
    with pytest.raises(ApiError) as no_route:  # dev's own route only
        sleepy.skip_wait()
    assert (no_route.value.status, no_route.value.error) == (404, "NotFound")


def test_lists_by_workflow_and_status_and_across_workflows_in_pages(
    rt: LocalRuntime, client: ApiClient
) -> None:
    for i in range(3):
        client.create("it-sleepy", id=f"s{i}")
        rt.clock.advance(1)
    client.create("it-approval", id="a0")
    rt.advance("1 second")
    assert [i.id for i in client.list("it-sleepy").instances] == ["s2", "s1", "s0"]
    first = client.list("it-sleepy", limit=2)
    assert [i.id for i in first.instances] == ["s2", "s1"] and first.cursor
    rest = client.list("it-sleepy", limit=2, cursor=first.cursor)
    assert [i.id for i in rest.instances] == ["s0"] and rest.cursor is None
    everything: list[str] = []
    cursor = None
    while True:
        page = client.list(limit=3, cursor=cursor)  # GET /instances: every workflow
        everything += [i.id for i in page.instances]
        if not (cursor := page.cursor):
            break
    assert everything == ["a0", "s2", "s1", "s0"]
    direct = rt.client.list(status="waiting")
    assert client.list(status="waiting") == direct and direct.instances
    assert client.list("it-sleepy", status="complete").instances == []
    with pytest.raises(InvalidConfigError):
        client.list(status="bogus")
    with pytest.raises(WorkflowNotFoundError):
        client.list("no-such-flow")
    with pytest.raises(ApiError) as bad:
        client.list(limit=0)
    assert (bad.value.status, bad.value.error) == (400, "BadRequest")


def test_callbacks(rt: LocalRuntime, client: ApiClient) -> None:
    for instance_id in ("c1", "c2", "c3"):
        rt.client.create("it-callback", {"heartbeat": "5 minutes"}, id=instance_id)
    rt.advance("1 second")
    client.send_callback_heartbeat(w.CALLBACK_IDS["c3"])
    client.send_callback_success(w.CALLBACK_IDS["c1"], {"paid": 12.5})
    client.send_callback_failure(w.CALLBACK_IDS["c2"], "Declined", "no funds")
    rt.advance("1 second")
    assert rt.client.get("c1").status().output == {"paid": 12.5}
    assert rt.client.get("c2").status().status == "errored"
    assert rt.client.get("c3").status().status == "waiting"
    with pytest.raises(CallbackCompletedError):
        client.send_callback_success(w.CALLBACK_IDS["c1"], "again")
    with pytest.raises(CallbackNotFoundError):
        client.send_callback_heartbeat("not-a-callback-id")
