"""The engine end to end on moto through LocalRuntime: costs, sleeps, retries, crashes, bad input."""

from __future__ import annotations

import json
import logging
import time
from collections import Counter

import pytest

from framework import (
    InstanceAlreadyExistsError,
    InstanceNotFoundError,
    InvalidInstanceIdError,
    InvalidParamsError,
    WorkflowNotFoundError,
)
from framework.backends.store import full_journal
from framework.core.faults import POINTS
from framework.local import LocalRuntime
from tests.integration import workflows as w

ALL = [w.chain, w.sleepy, w.mixed, w.typed, w.big, w.stamp]


def dynamodb_calls(calls: Counter[str]) -> int:
    return sum(n for op, n in calls.items() if op.startswith("dynamodb."))


@pytest.fixture
def rt() -> LocalRuntime:
    with LocalRuntime(workflows=ALL) as runtime:
        yield runtime


def test_chain_costs_one_invocation_and_one_write_per_step(rt: LocalRuntime) -> None:
    inst = rt.client.create("it-chain", {"steps": 10})
    rt.aws_calls.clear()
    rt.run_until_idle()
    calls = Counter(rt.aws_calls)
    assert inst.status().output == {"total": 45}
    assert rt.invocations["WorkerFunction"] == 1
    assert calls["dynamodb.PutItem"] == 10 + 1  # one per step, then the release
    assert calls["dynamodb.UpdateItem"] == 1  # the lease
    assert calls["dynamodb.Query"] == 0 and calls["dynamodb.GetItem"] == 0  # a new instance: nothing to read
    assert calls["sqs.SendMessage"] == 0  # only the start, sent by create


def test_hour_sleep_is_parked_and_woken_by_one_message(rt: LocalRuntime) -> None:
    inst = rt.client.create("it-sleepy")
    rt.advance(0)
    assert inst.status().status == "waiting"
    before, sweeps = Counter(rt.aws_calls), rt.invocations["SweeperFunction"]
    rt.advance("49 minutes")
    during = rt.aws_calls - before
    assert dynamodb_calls(during) == 0 and during["sqs.SendMessage"] == 0  # parked: nothing in flight
    rt.advance("10 minutes")
    assert inst.status().status == "waiting"
    rt.advance("1 minute")
    assert inst.status().output == {"total": 45}
    after = rt.aws_calls - before
    swept = rt.invocations["SweeperFunction"] - sweeps
    assert swept == 1  # 10 minutes before the wake time, it sends the one wake-up
    # The sweeper's three Queries of each shard (parked waits come due, new instances, overdue ones;
    # shared by every instance). The resume reads no journal: this container released it last.
    assert after["dynamodb.Query"] == swept * 3 * rt.env.settings.shards
    assert rt.aws_calls["sqs.SendMessage"] == 1  # the start
    assert rt.aws_calls["sqs.SendMessageBatch"] == 1  # the sweeper's wake-up


def test_retry_backoff_runs_on_virtual_time(rt: LocalRuntime) -> None:
    inst = rt.client.create("it-mixed", id="backoff")
    started = rt.clock.now()
    rt.advance("4 seconds")
    flaky = inst.history()[1]
    assert flaky.status == "retrying" and len(flaky.attempts) == 1
    rt.advance("1 second")
    flaky = inst.history()[1]
    assert flaky.status == "complete" and len(flaky.attempts) == 2
    assert (flaky.attempts[1].started_at - flaky.attempts[0].started_at).total_seconds() == pytest.approx(
        5, abs=1
    )
    rt.run_until_idle()
    assert inst.status().output == {"sum": 6}
    assert rt.clock.now() - started >= 20 * 60


def test_event_timestamp_is_virtual_creation_time(rt: LocalRuntime) -> None:
    rt.advance("3 days")
    created = rt.clock.now()
    inst = rt.client.create("it-stamp")
    rt.run_until_idle()
    assert inst.status().output == pytest.approx(created, abs=0.01)


def test_typed_params_and_nothing_written_on_bad_input(rt: LocalRuntime) -> None:
    rt.aws_calls.clear()
    with pytest.raises(InvalidParamsError) as info:
        rt.client.create("it-typed", {"sku": "a", "quantity": "many"})
    assert info.value.details[0]["loc"] == ("quantity",)
    with pytest.raises(WorkflowNotFoundError):
        rt.client.create("nope", {})
    with pytest.raises(InvalidInstanceIdError):
        rt.client.create("it-chain", {}, id="../etc")
    with pytest.raises(InvalidInstanceIdError):
        rt.client.create("it-chain", {}, id="")
    assert not rt.aws_calls  # validation happens before any write
    inst = rt.client.create("it-typed", {"sku": "a", "quantity": 2}, id="order-1")
    with pytest.raises(InstanceAlreadyExistsError):
        rt.client.create("it-typed", {"sku": "b", "quantity": 1}, id="order-1")
    rt.run_until_idle()
    assert inst.status().output == {"sku": "a", "total": 6}
    with pytest.raises(InstanceNotFoundError):
        rt.client.get("missing")
    assert rt.client.get("order-1").status().status == "complete"


def test_large_results_go_through_s3(rt: LocalRuntime) -> None:
    inst = rt.client.create("it-big")
    rt.run_until_idle()
    assert inst.status().output == 500_000
    assert rt.aws_calls["s3.PutObject"] == 2  # each large result once
    assert inst.history()[0].result == "z" * 500_000


def test_malformed_messages_fail_alone_and_reach_the_dead_letter_queue(rt: LocalRuntime) -> None:
    sqs = rt.boto3_client("sqs")
    for body in ["not json", json.dumps({"id": "ghost", "wake_at": 1}), json.dumps({"action": "what"})]:
        sqs.send_message(QueueUrl=rt.queue_url, MessageBody=body)
    inst = rt.client.create("it-chain", {"steps": 2})
    rt.run_until_idle()
    assert inst.status().status == "complete"  # the good message in the same batch succeeded
    dead = []
    while batch := sqs.receive_message(QueueUrl=rt.dead_letter_queue_url, MaxNumberOfMessages=10).get(
        "Messages"
    ):
        dead += [m["Body"] for m in batch]
        sqs.delete_message_batch(
            QueueUrl=rt.dead_letter_queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
        )
    assert sorted(dead) == sorted(
        ["not json", json.dumps({"id": "ghost", "wake_at": 1}), '{"action": "what"}']
    )


@pytest.mark.parametrize("point", POINTS)
def test_a_crash_at_any_point_resumes_from_the_last_recorded_step(point: str) -> None:
    with LocalRuntime(workflows=ALL) as rt:
        baseline = rt.client.create("it-mixed", id="base")
        rt.run_until_idle()
        expected = baseline.status().output
        w.BODY_RUNS.clear()
        rt.crash_at(point)
        inst = rt.client.create("it-mixed", id=f"crash-{point.replace('.', '-')}")
        rt.run_until_idle()
        assert rt.crashes == 1
        st = inst.status()
        assert st.status == "complete" and st.output == expected
        history = inst.history()
        assert [e.name for e in history] == ["a", "flaky", "nap", "c"]
        runs = {k.split(":")[1]: n for k, n in w.BODY_RUNS.items() if k.startswith(inst.id)}
        assert (
            runs["a"] <= 2 and runs["c"] <= 2 and runs["flaky"] <= 3
        )  # at most once more than without a fault
        journal = full_journal(rt.env.store, inst.id, 1)
        assert len(journal) == 4 and len({e.seq for e in journal}) == 4


def test_real_clock_honours_sqs_delays() -> None:
    with LocalRuntime(workflows=ALL, clock="real") as rt:
        inst = rt.client.create("it-sleepy", {"sleep": "1 second"})
        started = time.monotonic()
        rt.run_until_idle()
        assert inst.status().output == {"total": 45}
        assert time.monotonic() - started >= 1.0


def test_virtual_clock_rejects_an_external_endpoint() -> None:
    with pytest.raises(ValueError, match="virtual clock"):
        LocalRuntime(endpoint_url="http://127.0.0.1:1", clock="virtual")


def test_a_local_run_logs_at_warning_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    from framework.core.logs import logger

    monkeypatch.delenv("POWERTOOLS_LOG_LEVEL", raising=False)
    before = logger.log_level
    with LocalRuntime(workflows=[]):
        assert logger.log_level == logging.WARNING
    assert logger.log_level == before
    with LocalRuntime(workflows=[], log_level="debug"):
        assert logger.log_level == logging.DEBUG
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "INFO")
    with LocalRuntime(workflows=[]):
        assert logger.log_level == logging.INFO
    with pytest.raises(ValueError, match="log_level"):
        LocalRuntime(workflows=[], log_level="loud")
