"""`make demo`: the file-processing workflow on the embedded local stack (in-process moto, virtual
clock). A flaky API is retried with backoff, a crash kills the run mid-way, and the instance resumes
from its last recorded step. Runs in a few seconds."""

from __future__ import annotations

import os

os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")  # keep the demo's output to the timeline

from examples.file_processing import file_processing, verifier
from examples.orders import CALLS, OrderDag, async_order
from framework.core.logs import logger
from framework.local import LocalRuntime
from framework.manage.timeline import format_timeline


def main() -> None:
    if os.environ["POWERTOOLS_LOG_LEVEL"] == "ERROR":
        logger.setLevel("ERROR")  # the logger may exist already (`workflows demo` imports the framework)
    with LocalRuntime(workflows=[file_processing, async_order, OrderDag]) as rt:
        s3, db = rt.boto3_client("s3"), rt.boto3_client("dynamodb")
        s3.create_bucket(Bucket="uploads")
        s3.put_object(Bucket="uploads", Key="report.txt", Body=b"quarterly report: all figures verified")
        db.create_table(
            TableName="verdicts",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        print("1. upload s3://uploads/report.txt and start the workflow")
        inst = rt.client.create(
            "file-processing",
            params={"bucket": "uploads", "key": "report.txt", "table": "verdicts"},
            id="report-1",
        )
        print("2. arm a crash: the worker dies right after 'verify' is recorded")
        rt.crash_at("journal.after_write", name="verify", status="complete")
        rt.advance("10 minutes")
        print(f"   crashed invocations: {rt.crashes}; status now: {inst.status().status}")
        print("   recorded so far:", [f"{e.name} ({e.status})" for e in inst.history()])
        print("3. let SQS redeliver and the clock run: the instance resumes from the last recorded step")
        rt.run_until_idle()
        status = inst.status()
        print()
        print(format_timeline(status, inst.history()))
        print()
        saved = db.get_item(TableName="verdicts", Key={"pk": {"S": "report.txt"}})["Item"]
        print(f"saved verdict: {saved}")
        calls = verifier.calls["report.txt"]
        print(f"verifier calls: {calls} (2 failures, then success; not re-run after the crash)")
        print(
            f"worker invocations: {rt.invocations['WorkerFunction']}, AWS calls: {sum(rt.aws_calls.values())}"
        )
        assert status.status == "complete", status
        print()
        _async_order(rt)


def _async_order(rt: LocalRuntime) -> None:
    print("4. an async workflow: three prices at once, then stock and fraud checks side by side")
    inst = rt.client.create(
        "async-order", {"items": ["book", "pen", "lamp"], "customer": "ana"}, id="order-1"
    )
    rt.advance("2 hours")  # past its one-hour cool-off: it waits for an approval
    print(f"   status after its cool-off: {inst.status().status}; send the approval event")
    inst.send_event("approved", {"by": "lee"})
    rt.run_until_idle()
    status = inst.status()
    print()
    print(format_timeline(status, inst.history()))
    print()
    print(f"output: {status.output}")
    print(f"step bodies run: {sum(CALLS.values())} for {len(CALLS)} steps (none again on replay)")
    assert status.status == "complete", status


if __name__ == "__main__":
    main()
