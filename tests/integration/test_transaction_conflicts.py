"""DynamoDB's transaction conflicts, injected into moto's answers, on every write that can meet one.

Real DynamoDB refuses a PutItem or UpdateItem on an item that a TransactWriteItems in flight includes
(``TransactionConflictException``) and cancels a transaction that meets a write in flight on one of its
items (``TransactionCanceledException``, reason ``TransactionConflict``); moto never does either, and
botocore retries neither. ``Conflicts`` answers chosen calls as DynamoDB would, through a botocore
``before-call`` hook (the call is then not sent), on the runtime's own boto3 sessions.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

from framework.backends import dynamodb_conflicts
from framework.backends.dynamodb_conflicts import ATTEMPTS, ConflictRetrying, transaction_conflict
from framework.errors import InstanceBusyError
from framework.local import LocalContext, LocalRuntime
from handlers import api
from tests.integration import workflows as w
from tests.integration.apigw import http_event


class Conflicts:
    """Answers the next ``times`` calls of ``operation`` whose item or key has a sort key starting
    with ``sk`` with a transaction conflict: ``TransactionConflictException``, or for TransactWriteItems
    a cancellation whose reasons are ``reasons``."""

    def __init__(self, operation: str, times: int, *, sk: str = "instance", reasons: list[str] | None = None):
        self.operation, self.left, self.sk, self.reasons = operation, times, sk, reasons
        self.hits = 0

    def __call__(self, params: dict[str, Any], model: Any, **_: Any) -> Any:
        if model.name != self.operation or self.left == 0:
            return None
        body = json.loads(params["body"])
        items = [body] + [next(iter(t.values())) for t in body.get("TransactItems", [])]
        keys = [(i.get("Item") or i.get("Key") or {}).get("sk", {}).get("S", "") for i in items]
        if not any(k.startswith(self.sk) for k in keys):
            return None
        self.left -= 1
        self.hits += 1
        http = AWSResponse("http://127.0.0.1/", 400, {}, None)
        if self.reasons is None:
            error = {"Code": "TransactionConflictException", "Message": "Transaction is ongoing for the item"}
            return http, {"Error": error, "ResponseMetadata": {"HTTPStatusCode": 400}}
        error = {"Code": "TransactionCanceledException", "Message": "Transaction cancelled"}
        reasons = [{"Code": code} for code in self.reasons]
        return http, {
            "Error": error,
            "CancellationReasons": reasons,
            "ResponseMetadata": {"HTTPStatusCode": 400},
        }


class ConflictingRuntime(LocalRuntime):
    """A LocalRuntime whose boto3 sessions answer through ``conflicts`` first."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conflicts: list[Conflicts] = []

    def conflict(self, operation: str, times: int, **kwargs: Any) -> Conflicts:
        injected = Conflicts(operation, times, **kwargs)
        self.conflicts.append(injected)
        return injected

    def _answer(self, **kwargs: Any) -> Any:
        for injected in self.conflicts:
            answer = injected(**kwargs)
            if answer is not None:
                return answer
        return None

    def _session(self) -> Any:
        session = super()._session()
        session.events.register("before-call.dynamodb.*", self._answer)
        return session


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The backoff pauses of the conflict retries, noted instead of taken."""
    taken: list[float] = []
    monkeypatch.setattr(dynamodb_conflicts, "pause", taken.append)
    return taken


@pytest.fixture
def rt(pauses: list[float]) -> Iterator[ConflictingRuntime]:
    with ConflictingRuntime(workflows=[w.chain, w.approval, w.swallower]) as runtime:
        yield runtime


def call(rt: LocalRuntime, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    context = LocalContext("ApiFunction", rt.clock, rt.clock.now() + 30)
    response = api.handler(http_event(method, path, body), context)
    return response["statusCode"], json.loads(response["body"])


def error(code: str, reasons: list[str] | None = None) -> ClientError:
    response: dict[str, Any] = {"Error": {"Code": code, "Message": "m"}}
    if reasons is not None:
        response["CancellationReasons"] = [{"Code": r} for r in reasons]
    return ClientError(response, "TransactWriteItems")  # type: ignore[arg-type]


def test_what_counts_as_a_transaction_conflict() -> None:
    assert transaction_conflict(error("TransactionConflictException"))
    assert transaction_conflict(error("TransactionCanceledException", ["None", "TransactionConflict"]))
    # A failed condition is an answer, whatever else conflicted.
    assert not transaction_conflict(
        error("TransactionCanceledException", ["ConditionalCheckFailed", "TransactionConflict"])
    )
    assert not transaction_conflict(error("TransactionCanceledException", ["None", "ThrottlingError"]))
    assert not transaction_conflict(error("ConditionalCheckFailedException"))
    assert not transaction_conflict(ValueError("x"))


def test_only_writes_are_retried_with_a_growing_bounded_backoff(pauses: list[float]) -> None:
    calls: list[str] = []

    class Client:
        def put_item(self, **kwargs: Any) -> Any:
            calls.append("put")
            raise error("TransactionConflictException")

        def update_item(self, **kwargs: Any) -> Any:
            calls.append("update")
            raise error("ConditionalCheckFailedException")

        def get_item(self, **kwargs: Any) -> Any:
            calls.append("get")
            raise error("TransactionConflictException")

    client = ConflictRetrying(Client())
    with pytest.raises(InstanceBusyError, match="TransactWriteItems met another write in flight") as busy:
        client.put_item(TableName="t")
    assert isinstance(busy.value.__cause__, ClientError)
    assert calls == ["put"] * ATTEMPTS and len(pauses) == ATTEMPTS - 1
    assert all(later >= earlier for earlier, later in itertools.pairwise(pauses))
    assert sum(pauses) < 0.4
    calls.clear()
    with pytest.raises(ClientError):
        client.update_item(TableName="t")  # not a conflict: at once
    with pytest.raises(ClientError):
        client.get_item(TableName="t")  # reads are never refused for a transaction: passed as they are
    assert calls == ["update", "get"]


def test_a_lease_refused_during_a_transaction_is_taken_on_the_next_try(rt: ConflictingRuntime) -> None:
    conflicts = rt.conflict("UpdateItem", 1)  # the lease's UpdateItem
    rt.client.create("it-chain", {"steps": 2}, id="c1")
    rt.run_until_idle()
    assert conflicts.hits == 1
    assert rt.client.get("c1").status().output == {"total": 1}
    assert rt.invocations["WorkerFunction"] == 1  # the same delivery: no message failed and came back


def test_a_release_refused_during_a_transaction_is_written_on_the_next_try(rt: ConflictingRuntime) -> None:
    rt.client.create("it-chain", {"steps": 2}, id="c1")
    conflicts = rt.conflict("PutItem", 1)  # the release: PutItem of the instance item
    rt.run_until_idle()
    assert conflicts.hits == 1
    assert rt.client.get("c1").status().output == {"total": 1}
    # No hand-over: one invocation, no crash counted, no attempt charged.
    assert rt.invocations["WorkerFunction"] == 1
    assert [len(e.attempts) for e in rt.client.get("c1").history()] == [1, 1]


def test_a_write_that_keeps_conflicting_is_handed_over_not_errored(rt: ConflictingRuntime) -> None:
    rt.client.create("it-swallower", None, id="s1")
    conflicts = rt.conflict("PutItem", ATTEMPTS, sk="j#")  # every try of the first journal write
    rt.run_until_idle()
    assert conflicts.hits == ATTEMPTS
    # The workflow's ``except Exception`` never saw the InstanceBusyError: the invocation handed the
    # instance over, and the next one ran it to the end.
    status = rt.client.get("s1").status()
    assert status.status == "complete" and status.output == {"swallowed": False}
    assert rt.invocations["WorkerFunction"] == 2


def test_control_retries_a_conflict_then_answers_409_busy(rt: ConflictingRuntime) -> None:
    rt.client.create("it-approval", None, id="a1")
    rt.advance("1 minute")  # to its wait for the approval
    conflicts = rt.conflict("UpdateItem", 1)
    assert call(rt, "POST", "/instances/a1/pause") == (202, {"id": "a1", "status": "paused"})
    assert conflicts.hits == 1
    rt.conflict("UpdateItem", ATTEMPTS)
    status, body = call(rt, "POST", "/instances/a1/resume")
    assert (status, body["error"]) == (409, "InstanceBusyError"), body
    assert "try again" in body["message"]
    assert rt.client.get("a1").status().status == "paused"  # nothing written
    assert call(rt, "POST", "/instances/a1/resume")[0] == 202


def test_create_and_create_batch_retry_a_conflict_then_answer_409_busy(rt: ConflictingRuntime) -> None:
    rt.conflict("PutItem", 1)
    assert call(rt, "POST", "/workflows/it-chain/instances", {"id": "one"})[0] == 201
    rt.conflict("TransactWriteItems", 2, reasons=["None", "TransactionConflict"])
    batch = {"instances": [{"id": "b1"}, {"id": "b2"}]}
    assert call(rt, "POST", "/workflows/it-chain/instances/batch", batch)[0] == 201
    rt.conflict("TransactWriteItems", ATTEMPTS, reasons=["TransactionConflict", "None"])
    status, body = call(rt, "POST", "/workflows/it-chain/instances/batch", {"instances": [{"id": "b3"}]})
    assert (status, body["error"]) == (409, "InstanceBusyError"), body
    assert _missing(rt, "b3")  # nothing written
    # A taken id is the answer, even when another item of the batch conflicted (b1 holds other params:
    # the cancellation carries no item here, so the store reads it).
    rt.conflict("TransactWriteItems", 1, reasons=["ConditionalCheckFailed", "TransactionConflict"])
    taken = {"instances": [{"id": "b1", "params": {"steps": 3}}, {"id": "b4"}]}
    status, body = call(rt, "POST", "/workflows/it-chain/instances/batch", taken)
    assert (status, body["error"]) == (409, "InstanceAlreadyExistsError")


def _missing(rt: LocalRuntime, instance_id: str) -> bool:
    return call(rt, "GET", f"/instances/{instance_id}")[0] == 404


def test_send_event_retries_a_conflict_then_answers_409_busy(rt: ConflictingRuntime) -> None:
    rt.client.create("it-approval", None, id="a1")
    rt.advance("1 minute")  # to its wait for the approval
    rt.conflict("TransactWriteItems", 2, sk="e#", reasons=["TransactionConflict", "None"])
    event = {"type": "approved", "payload": {"by": "ana"}}
    assert call(rt, "POST", "/instances/a1/events", event)[0] == 202
    rt.conflict("TransactWriteItems", ATTEMPTS, sk="e#", reasons=["None", "TransactionConflict"])
    status, body = call(rt, "POST", "/instances/a1/events", event)
    assert (status, body["error"]) == (409, "InstanceBusyError"), body
    rt.advance("1 minute")
    assert rt.client.get("a1").status().output == {"by": "ana", "escalated": False}
    events = [e for e in rt.client.get("a1").history() if e.kind == "event"]
    assert len(events) == 1  # the refused one was never stored
