"""Crash at every point of every example workflow: every fault point (the first, a middle and the last
time it is reached in a run), for each example workflow and path. Each case crashes once: the invocation
dies where it stands, as if its process ended. SQS redelivery and the sweeper recover it. Asserted
against a run with no fault: the same final status and output, each step recorded exactly once, each
step body finished at most once more, and nothing left stuck."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from examples.approval import expense_approval
from examples.file_processing import file_batch, file_processing, file_uploads
from examples.fulfilment import order_fulfilment, shipping
from examples.orders import OrderDag, async_order
from examples.payments import PROVIDER, webhook_payment
from framework.backends.store import full_journal
from framework.core.faults import POINTS, injected
from framework.core.records import Status
from framework.local import LocalRuntime

CHILD_WORKFLOWS = ("file-processing", "shipping")
FINAL = {Status.COMPLETE, Status.ERRORED, Status.TERMINATED}


@dataclass(frozen=True)
class Run:
    status: str
    output: Any
    # (instance, op id, kind, name) of each journal entry of the instance ("<id>") and of its child
    # instances: storage order (seq) follows completion order, which differs between runs of
    # concurrent steps; identities do not.
    entries: list[tuple[str, str, str, str]]
    bodies: Counter[str]  # step name -> bodies that returned


def _until_final(rt: LocalRuntime, case: str) -> None:
    """Run the stack until the instance has finished (at most 30 virtual days)."""
    for _ in range(30 * 24):
        if rt.client.get(case).status().status in FINAL:
            return
        rt.advance("1 hour")


def _file_processing(rt: LocalRuntime, case: str) -> None:
    s3 = rt.boto3_client("s3")
    s3.put_object(Bucket="uploads", Key=case, Body=b"quarterly report: all figures verified")
    rt.client.create("file-processing", {"bucket": "uploads", "key": case, "table": "verdicts"}, id=case)
    _until_final(rt, case)


def _file_batch(rt: LocalRuntime, case: str) -> None:
    s3 = rt.boto3_client("s3")
    keys = [f"{case}/{n}" for n in range(4)]
    for n, key in enumerate(keys):
        s3.put_object(
            Bucket="uploads", Key=key, Body=b"forbidden words" if n == 2 else b"all figures verified"
        )
    params = {"bucket": "uploads", "keys": keys, "table": "verdicts", "max_concurrency": 2}
    rt.client.create("file-batch", params, id=case)
    _until_final(rt, case)


def _file_uploads(rt: LocalRuntime, case: str) -> None:
    s3 = rt.boto3_client("s3")
    keys = [f"{case}/{n}" for n in range(4)]
    for n, key in enumerate(keys[:3]):  # the last file was never uploaded: its child fails
        s3.put_object(
            Bucket="uploads", Key=key, Body=b"forbidden words" if n == 1 else b"all figures verified"
        )
    params = {
        "bucket": "uploads",
        "keys": keys,
        "table": "verdicts",
        "max_concurrency": 2,
        "tolerated_failures": 1,
    }
    rt.client.create("file-uploads", params, id=case)
    _until_final(rt, case)


def _approved(rt: LocalRuntime, case: str) -> None:
    # A timeout under 900 s: its wake-up is sent at once (a longer one is parked for the sweeper).
    params = {"employee": "ana", "amount": 12.5, "approval_timeout": "15 minutes"}
    inst = rt.client.create("expense-approval", params, id=case)
    rt.advance("5 minutes")
    inst.send_event("approval", {"approved": True, "by": "lee"})
    _until_final(rt, case)


def _escalated(rt: LocalRuntime, case: str) -> None:
    params = {"employee": "bo", "amount": 99, "approval_timeout": "2 hours"}
    inst = rt.client.create("expense-approval", params, id=case)
    rt.advance("3 hours")  # the approver never answers: escalate, then wait for the manager
    inst.send_event("approval", {"approved": False, "by": "manager"})
    _until_final(rt, case)


def _async_order(rt: LocalRuntime, case: str) -> None:
    params = {"items": ["book", "pen", "lamp"], "customer": "ana", "cool_off": "10 minutes"}
    inst = rt.client.create("async-order", params, id=case)
    rt.advance("20 minutes")  # parallel steps, then the sleep: it waits for its approval
    inst.send_event("approved", {"by": "lee"})
    _until_final(rt, case)


def _order_dag(rt: LocalRuntime, case: str) -> None:
    rt.client.create("order-dag", {"items": ["book", "lamp"], "customer": "ana"}, id=case)
    _until_final(rt, case)


def _fulfilment(rt: LocalRuntime, case: str) -> None:
    rt.client.create("order-fulfilment", {"order": case, "amount": 30, "address": "1 Main St"}, id=case)
    _until_final(rt, case)


def _payment(rt: LocalRuntime, case: str) -> None:
    # A timeout under 900 s: its wake-up is sent at once (a longer one is parked for the sweeper).
    rt.client.create("webhook-payment", {"order": case, "amount": 30, "timeout": "14 minutes"}, id=case)
    for _ in range(14):  # until the provider was asked, with the callback id (a crash delays it)
        if case in PROVIDER:
            break
        rt.advance("1 minute")
    rt.client.send_callback_success(PROVIDER[case], {"charge_id": f"ch-{case}"})
    _until_final(rt, case)


SCENARIOS: dict[str, Callable[[LocalRuntime, str], None]] = {
    "file-processing": _file_processing,
    "file-batch": _file_batch,  # step.map over files, two at a time
    "file-uploads": _file_uploads,  # step.map over a workflow: a child instance per file, two at a time
    "expense-approval": _approved,
    "expense-escalated": _escalated,
    "async-order": _async_order,  # an async workflow with steps in parallel
    "order-dag": _order_dag,  # a Cloudflare-style class: a DAG of concurrent steps
    "order-fulfilment": _fulfilment,  # a child workflow: its end reported once, whatever crashes
    "webhook-payment": _payment,  # a callback answered by a provider's webhook
}


class Harness:
    """One local stack for every case: cases run one at a time, each on its own instance."""

    def __init__(self, rt: LocalRuntime) -> None:
        self.rt = rt
        self.bodies: Counter[str] = Counter()
        self.cases = 0

    def hook(self, where: str, info: dict[str, Any]) -> None:
        if where == "step.after_body":
            self.bodies[str(info["name"])] += 1

    def run(self, scenario: str, crash: tuple[str, int] | None = None) -> tuple[str, Run]:
        self.cases += 1
        case = f"{scenario}-{self.cases}"
        self.bodies.clear()
        hits_before = Counter(self.rt.fault_hits)
        crashes_before = self.rt.crashes
        if crash is not None:
            self.rt.crash_at(crash[0], skip=crash[1])
        SCENARIOS[scenario](self.rt, case)
        inst = self.rt.client.get(case)
        status = inst.status()
        if crash is not None:
            assert self.rt.crashes == crashes_before + 1, f"the crash at {crash} never happened"
        self.hits = self.rt.fault_hits - hits_before
        # A finished instance may leave a wake-up hopping towards a wait's deadline (days away): it
        # would be turned away, and it costs each following case its hops. Clear it.
        self.rt.boto3_client("sqs").purge_queue(QueueUrl=self.rt.queue_url)
        # Outputs may quote the instance id and its incarnation (idempotency keys): compare them without.
        incarnation = self.rt.env.store.get_instance(case).incarnation  # type: ignore[union-attr]
        # Child ids quote them too (a fan-out names each item's child after the run).
        entries = sorted(
            (
                instance.replace(case, "<id>").replace(incarnation, "<incarnation>"),
                e.op_id,
                str(e.kind),
                e.name,
            )
            for instance in [case, *self._children(case)]
            for e in full_journal(self.rt.env.store, instance, 1)
        )
        text = json.dumps(status.output).replace(case, "<id>").replace(incarnation, "<incarnation>")
        output = json.loads(text)
        return case, Run(str(status.status), output, entries, Counter(self.bodies))

    def _children(self, case: str) -> list[str]:
        """The ids of the instance's children: every scenario's child workflows, listed page by page."""
        found = []
        for workflow in CHILD_WORKFLOWS:
            cursor = None
            while True:
                page = self.rt.client.list(workflow=workflow, limit=100, cursor=cursor)
                found += [i.id for i in page.instances if i.parent_id == case]
                if not (cursor := page.cursor):
                    break
        return found


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    workflows = [
        file_processing,
        file_batch,
        file_uploads,
        expense_approval,
        async_order,
        OrderDag,
        order_fulfilment,
        shipping,
        webhook_payment,
    ]
    with LocalRuntime(workflows=workflows) as rt:
        rt.boto3_client("s3").create_bucket(Bucket="uploads")
        rt.boto3_client("dynamodb").create_table(
            TableName="verdicts",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        h = Harness(rt)
        with injected(h.hook):
            yield h


@pytest.mark.timeout(300)
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_a_crash_at_every_point_and_every_hit_recovers_to_the_same_result(
    harness: Harness, scenario: str
) -> None:
    _, baseline = harness.run(scenario)
    assert baseline.status in FINAL and len(set(baseline.entries)) == len(baseline.entries)
    hits = harness.hits
    assert set(POINTS) <= set(hits), f"the scenario reaches every fault point: {sorted(hits)}"
    tried = 0
    for point in sorted(hits):  # every point, and a child's report points where a scenario has children
        # The first, a middle and the last time the point is reached in the run.
        for nth in sorted({0, hits[point] // 2, hits[point] - 1}):
            _, run = harness.run(scenario, crash=(point, nth))
            where = f"{scenario}: crash at {point} #{nth}"
            assert run.status == baseline.status, where
            assert run.output == baseline.output, where
            assert run.entries == baseline.entries, f"{where}: each step recorded exactly once"
            for name, finished in run.bodies.items():
                assert finished <= baseline.bodies[name] + 1, f"{where}: body {name!r} ran {finished}x"
            tried += 1
    print(f"\ncrash matrix: {scenario}: {tried} cases over {len(POINTS)} points")
    assert tried >= len(POINTS)
