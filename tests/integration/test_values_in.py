"""Non-finite numbers and lone surrogates on every path in, on DynamoDB (moto): the Python client, the
CLI and the inbox refuse them before anything is written (the HTTP API's rows are in
test_api_hostile.py), and what a workflow hands the engine is stored or refused at once, never retried
as an engine failure."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import pytest

from examples.approval import expense_approval
from framework import NonRetryableError, SerializationError, StepFailedError, Workflow, cli
from framework.local import LocalRuntime
from tests.integration import workflows as w
from tests.integration.test_inbox import dead_letters, put


@pytest.fixture
def rt() -> Iterator[LocalRuntime]:
    with LocalRuntime(workflows=[expense_approval, w.chain, w.approval]) as runtime:
        yield runtime


def items(rt: LocalRuntime) -> int:
    return int(rt.boto3_client("dynamodb").scan(TableName=rt.table_name, Select="COUNT")["Count"])


@pytest.mark.parametrize("amount", [math.inf, "inf", "Infinity"], ids=repr)
def test_the_client_refuses_a_float_field_holding_inf(rt: LocalRuntime, amount: Any) -> None:
    """``amount: float = Field(gt=0)`` takes inf: its params were stored as {"amount": null}."""
    with pytest.raises(SerializationError, match="NaN or an infinity"):
        rt.client.create("expense-approval", {"employee": "ana", "amount": amount})
    with pytest.raises(SerializationError):
        rt.client.create_batch("expense-approval", [{"params": {"employee": "bo", "amount": amount}}])
    with pytest.raises(SerializationError):
        rt.client.create("it-chain", {"steps": 1, "k": [-math.inf, math.nan]})
    assert items(rt) == 0
    rt.run_until_idle()
    assert items(rt) == 0  # nothing was sent either


@pytest.mark.parametrize(
    ("workflow", "text"),
    [("expense-approval", '{"employee": "x", "amount": 1e999}'), ("it-chain", '{"steps": 1, "k": NaN}')],
)
def test_the_cli_refuses_nan_and_inf(
    rt: LocalRuntime, workflow: str, text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = ["--table", rt.table_name, "--queue-url", rt.queue_url, "--modules", "examples.approval"]
    assert cli.main(["start", workflow, "--params", text, *stack]) == 1
    err = capsys.readouterr().err
    assert err.startswith("workflows: SerializationError: ") and err.count("\n") == 1, err
    assert items(rt) == 0
    rt.client.create("it-approval", id="ap")
    rt.advance(0)
    before = items(rt)
    assert cli.main(["event", "ap", "approved", "--payload", '{"by": [1, -1e999]}', *stack]) == 1
    assert "SerializationError" in capsys.readouterr().err
    assert items(rt) == before


def test_the_inbox_refuses_nan_and_inf_and_lone_surrogates(rt: LocalRuntime) -> None:
    """Its JSON parser takes NaN, Infinity and 1e999 (as floats): the client refuses them, and the
    message goes to the dead-letter queue. A lone surrogate escape is not JSON there at all."""
    rt.client.create("it-approval", id="ap")
    rt.advance(0)
    create = '{"action": "create", "workflow": "%s", "params": %s}'
    bad = [
        create % ("expense-approval", '{"employee": "x", "amount": 1e999}'),
        create % ("expense-approval", '{"employee": "x", "amount": NaN}'),
        create % ("expense-approval", '{"employee": "x", "amount": "inf"}'),
        create % ("it-chain", '{"steps": 1, "k": -Infinity}'),
        create % ("it-chain", '{"k": "\\ud800"}'),
        '{"action": "event", "instance_id": "ap", "type": "approved", "payload": {"by": NaN}}',
        '{"action": "event", "instance_id": "ap", "type": "approved", "payload": [1e400]}',
        '{"action": "event", "instance_id": "ap", "type": "approved", "payload": {"\\udc00": 1}}',
    ]
    for body in bad:
        put(rt, body)
    rt.run_until_idle()  # each is delivered until it is dead-lettered (and "ap" times out meanwhile)
    assert len(dead_letters(rt)) == len(bad)
    assert rt.client.list("expense-approval").instances == rt.client.list("it-chain").instances == []
    assert [e.kind for e in rt.client.get("ap").history() if e.kind == "event"] == []


def test_an_error_message_with_a_lone_surrogate_is_stored_escaped() -> None:
    """It goes into the journal item: DynamoDB's client could not encode it, so every write failed and
    the step was charged crash after crash (6 attempts, InvocationCrashedError)."""

    def flow(event: Any, step: Any) -> Any:
        def body() -> None:
            raise NonRetryableError("refused \ud800 here")

        try:
            step.do("fails", body)
        except StepFailedError as exc:
            return [exc.attempts, exc.error_type, exc.error_message]
        return None

    with LocalRuntime(workflows=[Workflow("vc-surrogate-error", flow)]) as local:
        inst = local.client.create("vc-surrogate-error")
        local.advance(0)
        assert inst.status().output == [1, "NonRetryableError", "refused \\ud800 here"]


def test_a_step_name_with_a_lone_surrogate_fails_where_it_is_written() -> None:
    """The name is stored in the journal item: it failed 13 invocations in a row as an engine failure."""
    with LocalRuntime(
        workflows=[Workflow("vc-surrogate-name", lambda e, s: s.do("x\ud800", lambda: 1))]
    ) as local:
        inst = local.client.create("vc-surrogate-name")
        local.advance(0)
        error = inst.status().error
        assert (
            error is not None
            and error["name"] == "InvalidConfigError"
            and "lone surrogate" in error["message"]
        )
        assert json.dumps(error).encode()
