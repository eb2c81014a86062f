"""A worker process for the concurrency and crash tests: polls the work queue like Lambda's event source
mapping and calls ``handlers.worker.handler``. Stops when ``--until`` has passed.

``--duplicate``: each message is put back once more, so every wake-up is delivered at least twice,
possibly to two processes at once. ``--die-at POINT@INSTANCE``: the process ends itself (``os._exit``)
the first time it reaches that fault point for that instance; a marker file in ``--marks`` makes it
once per pair across restarts."""

from __future__ import annotations

import argparse
import os
import time
import uuid
from pathlib import Path
from typing import Any

import boto3

from framework.core import faults
from framework.local.eventsource import delete_done, sqs_record
from handlers.worker import handler


class Context:
    def __init__(self, seconds: float) -> None:
        self.deadline = time.time() + seconds
        self.function_name = "worker"
        self.memory_limit_in_mb = 512
        self.invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:worker"
        self.aws_request_id = str(uuid.uuid4())

    def get_remaining_time_in_millis(self) -> int:
        return int((self.deadline - time.time()) * 1000)


ROOT = Path(__file__).resolve().parents[2]


def environment(rt: Any, endpoint: str, **extra: str) -> dict[str, str]:
    """The environment of a worker process on ``rt``'s stack behind ``endpoint`` (a moto server)."""
    return (
        dict(
            os.environ,
            AWS_ENDPOINT_URL=endpoint,
            WORKFLOWS_TABLE=rt.table_name,
            WORKFLOWS_QUEUE_URL=rt.queue_url,
            WORKFLOWS_BUCKET=rt.bucket_name,
            WORKFLOW_MODULES="tests.integration.workflows",
            PYTHONPATH=str(ROOT),
        )
        | extra
    )


def _die_once(pairs: set[tuple[str, ...]], marks: Path) -> faults.Hook:
    def hook(where: str, info: dict[str, Any]) -> None:
        pair = (where, str(info.get("instance_id")))
        if pair in pairs and not (mark := marks / "@".join(pair)).exists():
            mark.touch()
            os._exit(137)  # as if Lambda's process died here: no cleanup, no exception handling

    return hook


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--until", type=float, required=True)
    parser.add_argument("--duplicate", action="store_true")
    parser.add_argument("--die-at", action="append", default=[])
    parser.add_argument("--marks", type=Path)
    parser.add_argument("--invocation-seconds", type=float, default=60)
    args = parser.parse_args()
    with faults.injected(_die_once({tuple(spec.split("@", 1)) for spec in args.die_at}, args.marks)):
        poll(args)


def poll(args: argparse.Namespace) -> None:
    sqs = boto3.client("sqs")
    url = os.environ["WORKFLOWS_QUEUE_URL"]
    while time.time() < args.until:
        messages: list[dict[str, Any]] = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=0,  # moto's long polling spins in the server: poll, then sleep here
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
        ).get("Messages", [])
        for m in messages:
            if args.duplicate and "dup" not in m.get("MessageAttributes", {}):
                sqs.send_message(
                    QueueUrl=url,
                    MessageBody=m["Body"],
                    MessageAttributes={"dup": {"DataType": "String", "StringValue": "1"}},
                )
        if not messages:
            time.sleep(0.2)
            continue
        arn = "arn:aws:sqs:us-east-1:123456789012:work"
        records = [sqs_record(m, arn, "us-east-1") for m in messages]
        try:
            failed = {
                f["itemIdentifier"]
                for f in handler({"Records": records}, Context(args.invocation_seconds))["batchItemFailures"]
            }
        except Exception:
            failed = {m["MessageId"] for m in messages}
        delete_done(sqs, url, messages, failed)


if __name__ == "__main__":
    main()
