"""Event triggers on a local stack: the uploads bucket and the event bus of ``template.yaml``, wired to the
inbox queue as AWS would deliver their events (docs/triggers.md, "Local testing").

On AWS, S3 tells EventBridge and a rule forwards to the inbox. moto's S3-to-EventBridge events carry
one fixed ``sequencer`` for every put, which would make two puts of one key look like a redelivery, so
the local bucket sends S3 event notifications straight to the inbox queue instead (the inbox reads
both shapes). The local bus has a rule that forwards every event to the inbox, as the stack's does.
Idempotent, like ``create_resources``: a process that starts again finds its wiring in place.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from framework.local.template import Stack

UPLOADS = "UploadsBucket"
BUS = "EventBus"
INBOX = "InboxQueue"


def wire_triggers(stack: Stack, s3: Any, events: Any) -> None:
    """Create the bus and its rule to the inbox, and point the uploads bucket's notifications at the inbox.
    Fills ``stack.physical`` with the bus's name. Does nothing for a template without these resources."""
    if INBOX not in stack.urls:
        return
    inbox_arn = stack.arns[INBOX]
    if BUS in stack.of_type("AWS::Events::EventBus"):
        name = stack.physical[BUS] = f"{stack.prefix}-{BUS}"
        with contextlib.suppress(events.exceptions.ResourceAlreadyExistsException):
            events.create_event_bus(Name=name)
        rule = f"{stack.prefix}-to-inbox"
        # The same match-all as the template's rule: the inbox matches the workflows' own patterns.
        events.put_rule(Name=rule, EventBusName=name, EventPattern=json.dumps({"source": [{"prefix": ""}]}))
        events.put_targets(Rule=rule, EventBusName=name, Targets=[{"Id": "inbox", "Arn": inbox_arn}])
    if UPLOADS in stack.physical:
        s3.put_bucket_notification_configuration(
            Bucket=stack.physical[UPLOADS],
            NotificationConfiguration={
                "QueueConfigurations": [{"QueueArn": inbox_arn, "Events": ["s3:ObjectCreated:*"]}]
            },
        )


def put_event(
    events: Any, bus: str, source: str, detail_type: str, detail: Any, resources: list[str] | None = None
) -> str:
    """Put one event on ``bus``; return its id. Raise ValueError if EventBridge refused it."""
    entry = {
        "EventBusName": bus,
        "Source": source,
        "DetailType": detail_type,
        "Detail": json.dumps(detail),
        "Resources": resources or [],
    }
    answer = events.put_events(Entries=[entry])
    (result,) = answer["Entries"]
    if "EventId" not in result:
        raise ValueError(f"EventBridge refused the event: {result.get('ErrorCode', 'unknown error')}")
    return str(result["EventId"])


@contextmanager
def set_environ(values: dict[str, str | None]) -> Iterator[None]:
    """Set the variables that are not None while the runtime is open (the functions' template
    environment that the framework reads from the process), and restore them after."""
    was = {k: os.environ.get(k) for k in values}
    os.environ.update({k: v for k, v in values.items() if v is not None})
    try:
        yield
    finally:
        for k, v in was.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
