"""Creating an id that exists: success with the same workflow and params (the existing instance, as
Step Functions' StartExecution), InstanceAlreadyExistsError otherwise; race-safe, batches included. And
the new id characters through the whole engine. Rerun on DynamoDB (tests/integration/
test_engine_on_dynamodb.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from framework import InstanceAlreadyExistsError, InstanceNotFoundError
from framework.api.registry import Workflow
from framework.core.ids import key_segment
from tests.unit.harness import Harness


def echo(event: Any, step: Any) -> Any:
    return step.do("echo", lambda: dict(event.payload))


def other(event: Any, step: Any) -> Any:
    return None


def big(event: Any, step: Any) -> Any:
    blob = step.do("big", lambda: "z" * 400_000)  # over the inline limit: S3 (here MemoryBlobs)
    return len(blob)


def parent(event: Any, step: Any) -> Any:
    shipped = step.invoke("ship", "ic-echo", params={"n": 1}, id=f"{event.payload['order']}/ship")
    batch = step.map("each", [{"n": 2}, {"n": 3}], "ic-echo")
    return [shipped, batch.get_results()]


@pytest.fixture
def hc() -> Harness:
    """Named apart from the other modules' ``h``: test_engine_on_dynamodb imports them all."""
    flows = {"ic-echo": echo, "ic-other": other, "ic-big": big, "ic-parent": parent}
    return Harness(*(Workflow(name=name, fn=fn) for name, fn in flows.items()))


def _starts(hc: Harness, instance_id: str) -> int:
    return sum(json.loads(body).get("id") == instance_id for body, _ in hc.queue.sent)


def test_the_same_id_workflow_and_params_is_the_existing_instance(hc: Harness) -> None:
    first = hc.client.create("ic-echo", {"a": 1, "b": [1, 2]}, id="order:123")
    assert first.created and first.id == "order:123"
    writes = hc.store.calls
    again = hc.client.create("ic-echo", {"b": [1, 2], "a": 1}, id="order:123")  # keys in another order
    assert (again.id, again.created) == ("order:123", False)
    assert hc.store.calls == writes + 1  # one conditional put, which returns the stored item; no read
    assert _starts(hc, "order:123") == 1  # nothing sent for the second
    hc.run_until_idle()
    done = hc.client.create("ic-echo", {"a": 1, "b": [1, 2]}, id="order:123")  # finished: still it
    assert not done.created and done.status().output == {"a": 1, "b": [1, 2]}


@pytest.mark.parametrize(
    ("workflow_name", "params"),
    [
        ("ic-echo", {"a": 2, "b": [1, 2]}),
        ("ic-echo", {"a": 1.0, "b": [1, 2]}),  # 1.0 is not 1: numbers keep their spelling
        ("ic-echo", {"a": True, "b": [1, 2]}),
        ("ic-echo", {"a": 1, "b": [2, 1]}),  # arrays keep their order
        ("ic-echo", {"a": 1}),
        ("ic-other", {"a": 1, "b": [1, 2]}),
    ],
)
def test_another_workflow_or_other_params_is_already_exists(
    hc: Harness, workflow_name: str, params: dict[str, Any]
) -> None:
    hc.client.create("ic-echo", {"a": 1, "b": [1, 2]}, id="ana@example.com")
    with pytest.raises(InstanceAlreadyExistsError, match="exists with another workflow or other params"):
        hc.client.create(workflow_name, params, id="ana@example.com")
    assert hc.client.get("ana@example.com").status().workflow == "ic-echo"
    assert _starts(hc, "ana@example.com") == 1


@pytest.mark.parametrize("same", [True, False])
def test_two_creates_racing_on_one_id_both_succeed_if_they_agree(hc: Harness, same: bool) -> None:
    """The second create's put fails because the first wrote between its checks and its put: the
    failed put itself returns what the first wrote, so no read can miss it."""
    store, raced = hc.store.inner, []
    real = store.create_instance

    def racing(record: Any) -> None:
        if raced:
            return real(record)
        raced.append(None)
        raced[0] = hc.client.create("ic-echo", {"n": 1}, id="orders/2024/7")  # it writes first
        return real(record)

    store.create_instance = racing
    try:
        if same:
            mine = hc.client.create("ic-echo", {"n": 1}, id="orders/2024/7")
            assert [raced[0].created, mine.created] == [True, False]
        else:
            with pytest.raises(InstanceAlreadyExistsError):
                hc.client.create("ic-echo", {"n": 2}, id="orders/2024/7")
    finally:
        del store.create_instance
    assert _starts(hc, "orders/2024/7") == 1
    hc.run_until_idle()
    assert hc.client.get("orders/2024/7").status().output == {"n": 1}


def test_create_batch_writes_the_new_ids_and_returns_the_existing_ones(hc: Harness) -> None:
    hc.client.create("ic-echo", {"n": 1}, id="b/1")
    made = hc.client.create_batch(
        "ic-echo",
        [{"id": "b/1", "params": {"n": 1}}, {"id": "b/2", "params": {"n": 2}}, {"params": {"n": 3}}],
    )
    assert [(m.id, m.created) for m in made[:2]] == [("b/1", False), ("b/2", True)] and made[2].created
    assert _starts(hc, "b/1") == 1 and _starts(hc, "b/2") == 1
    again = hc.client.create_batch(
        "ic-echo", [{"id": "b/1", "params": {"n": 1}}, {"id": "b/2", "params": {"n": 2}}]
    )
    assert [m.created for m in again] == [False, False]
    with pytest.raises(InstanceAlreadyExistsError, match="another workflow or other params"):
        hc.client.create_batch("ic-echo", [{"id": "b/9", "params": {}}, {"id": "b/1", "params": {"n": 9}}])
    with pytest.raises(InstanceNotFoundError):
        hc.client.get("b/9")  # nothing of a refused batch is written
    hc.run_until_idle()
    assert [m.status().output for m in made] == [{"n": 1}, {"n": 2}, {"n": 3}]


def test_a_batch_racing_a_create_writes_the_rest(hc: Harness) -> None:
    store, raced = hc.store.inner, []
    real = store.create_instances

    def racing(records: Any) -> None:
        if not raced:
            raced.append(hc.client.create("ic-echo", {"n": 2}, id="r:2"))  # a put, not this method
        return real(records)

    store.create_instances = racing
    try:
        made = hc.client.create_batch(
            "ic-echo", [{"id": "r:1", "params": {"n": 1}}, {"id": "r:2", "params": {"n": 2}}]
        )
    finally:
        del store.create_instances
    assert [m.created for m in made] == [True, False]
    assert _starts(hc, "r:1") == 1 and _starts(hc, "r:2") == 1


@pytest.mark.parametrize("instance_id", ["orders/2024/7", "order:123", "ana@example.com", "a.b", "a", "a/b"])
def test_ids_with_the_new_characters_run_and_their_blobs_are_their_own(hc: Harness, instance_id: str) -> None:
    inst = hc.client.create("ic-big", id=instance_id)
    hc.run_until_idle()
    assert inst.status().output == 400_000
    assert hc.client.get(instance_id).history()[0].result == "z" * 400_000
    keys = hc.blobs.keys(f"results/{key_segment(instance_id)}/")
    assert len(keys) == 1 and keys[0].count("/") == 6  # results/<id>/<inc>/<run>/<seq>/<attempt>/<owner>


def test_children_of_a_parent_with_the_new_characters(hc: Harness) -> None:
    order = "shop@example.com/orders/" + "7" * 76  # 100 characters
    inst = hc.client.create("ic-parent", {"order": "o:7"}, id=order)
    hc.run_until_idle()
    assert inst.status().output == [{"n": 1}, [{"n": 2}, {"n": 3}]]
    children = [i for i in hc.client.list(workflow="ic-echo").instances if i.parent_id == order]
    assert len(children) == 3 and "o:7/ship" in {c.id for c in children}
    assert all(c.status == "complete" for c in children)
