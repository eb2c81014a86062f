"""A worker process for the concurrency test: polls the work queue like Lambda's event source mapping
and calls ``handlers.worker.handler``. Each message is put back once more, so every wake-up is
delivered at least twice, possibly to two processes at once. Stops when ``--until`` has passed."""

from __future__ import annotations

import argparse
import os
import time
import uuid
from typing import Any

import boto3

from framework.local.runtime import sqs_record
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--until", type=float, required=True)
    args = parser.parse_args()
    sqs = boto3.client("sqs")
    url = os.environ["WORKFLOWS_QUEUE_URL"]
    while time.time() < args.until:
        messages: list[dict[str, Any]] = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=1,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
        ).get("Messages", [])
        for m in messages:
            if "dup" not in m.get("MessageAttributes", {}):
                sqs.send_message(
                    QueueUrl=url,
                    MessageBody=m["Body"],
                    MessageAttributes={"dup": {"DataType": "String", "StringValue": "1"}},
                )
        if not messages:
            continue
        arn = "arn:aws:sqs:us-east-1:123456789012:work"
        records = [sqs_record(m, arn, "us-east-1") for m in messages]
        try:
            failed = {
                f["itemIdentifier"] for f in handler({"Records": records}, Context(60))["batchItemFailures"]
            }
        except Exception:
            failed = {m["MessageId"] for m in messages}
        done = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
            for i, m in enumerate(messages)
            if m["MessageId"] not in failed
        ]
        if done:
            sqs.delete_message_batch(QueueUrl=url, Entries=done)


if __name__ == "__main__":
    main()
