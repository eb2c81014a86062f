"""AWS calls and dollars per triggered start: an S3 object created, and an event put on the stack's bus,
each carried to the inbox and turned into one instance (docs/triggers.md, "Costs").

Counted on LocalRuntime (botocore hooks, ``rt.aws_calls``): the inbox invocation's own calls, with
DynamoDB units from item sizes (``bench.units``). Added by the model, as AWS bills them and the local
stack cannot show: EventBridge's delivery into the inbox queue (one SQS SendMessage), the event source
mapping's ReceiveMessage and DeleteMessageBatch (priced unbatched: one event alone), one inbox Lambda
request and its duration, and for a custom event its PutEvents entry. S3's events to EventBridge's
default bus cost nothing; a rule's delivery to a target costs nothing. The start's own work (its first
worker run) is the workflow's, counted by the cost section.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from bench.cost import CALL_MS, FIXED_MS
from bench.prices import LAMBDA_GB_S_ARM64, LAMBDA_REQUEST, MILLION, READ_UNIT, SQS_REQUEST, WRITE_UNIT
from bench.report import Check, Section
from bench.units import UnitMeter
from framework.api.registry import Workflow
from framework.api.triggers import trigger_of
from framework.local import LocalRuntime
from framework.local.eventsource import sqs_record

# EventBridge custom events: $1.00 per million entries put (64 KB chunks); AWS services' events to the
# default bus (S3's among them) are free, and so is a rule's delivery to a target (AWS pricing, 2026).
EVENTBRIDGE_EVENT = 1.00e-6
INBOX_MEMORY_GB = 0.5  # the template's Globals MemorySize: 512
MODEL_SQS = {
    "SendMessage (EventBridge to inbox)": 1,
    "ReceiveMessage (event source)": 1,
    "DeleteMessageBatch": 1,
}
RUNS = 20


def _noop(event: Any, step: Any) -> None:
    return None


FLOWS = [
    Workflow(
        "bench-s3", _noop, trigger=trigger_of("bench-s3", {"s3": {"bucket": "uploads", "prefix": "in/"}})
    ),
    Workflow("bench-eb", _noop, trigger=trigger_of("bench-eb", {"eventbridge": {"source": ["bench"]}})),
]


def _inbox_calls(rt: LocalRuntime, meter: UnitMeter) -> tuple[Counter[str], float, float]:
    """Deliver what waits on the inbox to the inbox function, one message per invocation; return the
    calls, write units and read units of those invocations."""
    sqs = rt._clients["sqs"]  # uncounted: the receive is modelled, priced below
    calls: Counter[str] = Counter()
    writes = reads = 0.0
    while True:
        got = sqs.receive_message(
            QueueUrl=rt.inbox_url, MaxNumberOfMessages=1, MessageSystemAttributeNames=["All"]
        )
        if not got.get("Messages"):
            return calls, writes, reads
        (message,) = got["Messages"]
        sqs.delete_message(QueueUrl=rt.inbox_url, ReceiptHandle=message["ReceiptHandle"])
        if "s3:TestEvent" in message["Body"]:
            continue
        before, used = rt.aws_calls.copy(), meter.usage()
        response = rt.invoke(
            "InboxFunction", {"Records": [sqs_record(message, rt._stack.arns["InboxQueue"], "us-east-1")]}
        )
        if response.get("batchItemFailures"):
            raise RuntimeError("the inbox failed a trigger event")
        calls += rt.aws_calls - before
        delta = meter.usage() - used
        writes += delta.write_units
        reads += delta.read_units


def measure(kind: str) -> dict[str, Any]:
    with LocalRuntime(workflows=FLOWS) as rt, UnitMeter(rt) as meter:
        for i in range(RUNS):
            if kind == "s3":
                rt._clients["s3"].put_object(Bucket=rt.uploads_bucket, Key=f"in/file-{i}", Body=b"x")
            else:
                rt._clients["events"].put_events(
                    Entries=[
                        {
                            "EventBusName": rt.event_bus_name,
                            "Source": "bench",
                            "DetailType": "t",
                            "Detail": "{}",
                        }
                    ]
                )
        calls, writes, reads = _inbox_calls(rt, meter)
        if len(rt.client.list(limit=100).instances) != RUNS:
            raise RuntimeError(f"{kind}: expected {RUNS} instances")
    per = {op: n / RUNS for op, n in sorted(calls.items())}
    sqs_requests = sum(v for op, v in per.items() if op.startswith("sqs.")) + sum(MODEL_SQS.values())
    duration_s = (FIXED_MS + CALL_MS * sum(per.values())) / 1000
    dollars = {
        "dynamodb": writes / RUNS * WRITE_UNIT + reads / RUNS * READ_UNIT,
        "sqs": sqs_requests * SQS_REQUEST,
        "lambda": LAMBDA_REQUEST + duration_s * INBOX_MEMORY_GB * LAMBDA_GB_S_ARM64,
        "eventbridge": EVENTBRIDGE_EVENT if kind == "eventbridge" else 0.0,
    }
    return {
        "inbox_calls_per_start": per,
        "modelled_sqs_per_start": MODEL_SQS,
        "write_units_per_start": writes / RUNS,
        "read_units_per_start": reads / RUNS,
        "inbox_invocations_per_start": 1,
        "billed_ms_modelled": round(duration_s * 1000, 1),
        "dollars_per_million_starts": {k: round(v * MILLION, 3) for k, v in dollars.items()},
        "total_per_million_starts": round(sum(dollars.values()) * MILLION, 3),
    }


def triggers_section() -> Section:
    figures = {kind: measure(kind) for kind in ("s3", "eventbridge")}
    checks = []
    for kind, f in figures.items():
        calls = sum(f["inbox_calls_per_start"].values())
        checks.append(Check(f"{kind} start: AWS calls of the inbox per start", calls))
        checks.append(
            Check(
                f"{kind} start: $ per million starts (trigger to instance queued)",
                f["total_per_million_starts"],
            )
        )
    return Section("Triggered starts: calls and cost per start", checks=checks, data={"per_kind": figures})
