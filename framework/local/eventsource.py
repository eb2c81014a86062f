"""What Lambda hands a function, made locally: its context object, and the event source mapping's side
of SQS (which queue, batch size and visibility; the records of a batch; deleting what did not fail)."""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from framework.core.clock import Clock
from framework.local.template import FunctionSpec

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass
class LocalContext:
    """The parts of Lambda's context object that handlers read; the deadline follows the clock."""

    function_name: str
    clock: Clock
    deadline: float
    memory_limit_in_mb: int = 512
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - self.clock.now()) * 1000))


@dataclass(frozen=True)
class Poller:
    """What Lambda's event source mapping does for one function and one queue."""

    function: FunctionSpec
    queue: str
    batch_size: int
    visibility: int


def delete_done(sqs: Any, url: str, received: list[dict[str, Any]], failed: set[str]) -> None:
    """Delete the received messages that did not fail, as the event source mapping does."""
    done = [
        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
        for i, m in enumerate(received)
        if m["MessageId"] not in failed
    ]
    if done:
        sqs.delete_message_batch(QueueUrl=url, Entries=done)


def sqs_record(message: dict[str, Any], arn: str, region: str) -> dict[str, Any]:
    """The record of an SQS event that Lambda builds from a received ``message``."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": {},
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": arn,
        "awsRegion": region,
    }


def import_handler(path: str) -> Handler:
    """The function that a template's ``Handler`` (``module.name``) names."""
    module, _, name = path.rpartition(".")
    handler: Handler = getattr(importlib.import_module(module), name)
    return handler
