"""Messages from outside producers on the inbox queue: start an instance, or send it an event.

``{"action": "create", "workflow", "id"?, "params"?}``,
``{"action": "event", "instance_id", "type", "payload"?}``, or a callback's
``{"action": "callback_success", "callback_id", "result"?}``,
``{"action": "callback_failure", "callback_id", "error", "message"?}`` or
``{"action": "callback_heartbeat", "callback_id"}``. SQS may deliver a message twice: a create
whose id exists with the same workflow and params counts as success, an event is keyed by the SQS
message, so it is kept once, and a callback's second outcome (a redelivery, or another sender's) is
dropped as "callback already completed", not dead-lettered: the first outcome counts.

S3 and EventBridge events on the queue start the workflows whose trigger they match
(``framework.manage.triggers``): one instance per workflow and event, under an id derived from the
event, so a redelivery starts nothing new. An event that matches no workflow is dropped with a log
line (no payload); a malformed one raises BadInboxMessageError.
"""

from __future__ import annotations

import contextlib
import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from framework.core import serde
from framework.core.logs import logger
from framework.errors import CallbackCompletedError, InstanceAlreadyExistsError, WorkflowError
from framework.manage import callbacks, triggers
from framework.manage.client import WorkflowClient


class InboxCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Literal["create"]
    workflow: str = Field(min_length=1, max_length=64)
    id: str | None = None
    params: Any = None


class InboxEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Literal["event"]
    instance_id: str = Field(min_length=1, max_length=100)
    type: str = Field(min_length=1, max_length=100)
    payload: Any = None


class InboxCallback(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Literal["callback_success", "callback_failure", "callback_heartbeat"]
    callback_id: str = Field(min_length=1, max_length=400)
    result: Any = None
    error: str | None = Field(default=None, min_length=1, max_length=256)
    message: str = Field(default="", max_length=4096)


InboxMessage = Annotated[InboxCreate | InboxEvent | InboxCallback, Field(discriminator="action")]
_messages: TypeAdapter[InboxCreate | InboxEvent | InboxCallback] = TypeAdapter(InboxMessage)
_NAMES = frozenset(
    {
        "create",
        "event",
        "callback_success",
        "callback_failure",
        "callback_heartbeat",
        *InboxCreate.model_fields,
        *InboxEvent.model_fields,
        *InboxCallback.model_fields,
    }
)


class BadInboxMessageError(WorkflowError):
    """An inbox message that is not one of the two shapes. It goes to the inbox's DLQ."""


def apply(client: WorkflowClient, body: str, *, message_id: str, sent_at: float) -> str:
    """Carry out one inbox message and return what it did. Raise on anything to be retried or
    dead-lettered; the reason goes in the exception's message."""
    try:
        decoded = json.loads(body)
    except (ValueError, RecursionError):
        decoded = None  # not JSON: the shapes' own check below says so
    if isinstance(decoded, dict) and "action" not in decoded and triggers.is_trigger_message(decoded):
        return _trigger(client, decoded)
    try:
        message = _messages.validate_json(body)
    except ValidationError as exc:
        # Logged as the reason it failed: no value of the message, and no key but the shapes' own.
        first = serde.problems(exc, names=_NAMES)[0]
        where = ".".join(str(p) for p in first["loc"]) or "message"
        raise BadInboxMessageError(f"not an inbox message: {where}: {first['msg']}") from None
    if isinstance(message, InboxCallback):
        return _callback(client, message, sent_at)
    if isinstance(message, InboxEvent):
        client._send_event(
            message.instance_id, message.type, message.payload, event_id=message_id, sent_at=sent_at
        )
        return "event"
    if message.id is None:
        # A redelivered message must not start a second instance: name it after the SQS message.
        message = message.model_copy(update={"id": f"inbox-{message_id}"})
    # An id that holds the same workflow and params is success (a redelivery): the client says so.
    # Another instance under the id raises InstanceAlreadyExistsError, and the message is retried.
    created = client.create(message.workflow, message.params, id=message.id).created
    return "create" if created else "duplicate create"


def _callback(client: WorkflowClient, message: InboxCallback, sent_at: float) -> str:
    """A callback's outcome or heartbeat, at the time SQS took the message."""
    env, cid = client._env, message.callback_id
    try:
        if message.action == "callback_heartbeat":
            callbacks.send_heartbeat(env, cid, sent_at=sent_at)
        elif message.action == "callback_success":
            callbacks.send_success(env, cid, message.result, sent_at=sent_at)
        else:
            callbacks.send_failure(env, cid, message.error or "", message.message, sent_at=sent_at)
    except CallbackCompletedError:
        if message.action == "callback_heartbeat":
            raise
        return "callback already completed"
    return message.action


def _trigger(client: WorkflowClient, message: dict[str, Any]) -> str:
    """Start the instances an S3 or EventBridge event starts. Raise on a malformed event, or on a
    create that fails (the message is retried; the starts made already are no-ops the next time)."""
    try:
        event = triggers.parse(message)
    except triggers.BadTriggerEventError as exc:
        raise BadInboxMessageError(f"not an inbox message: {exc}") from None
    if event.ignored:
        return "s3 test event ignored"
    starts = triggers.starts(client.registry, event)
    if not starts:
        # Logged without the event: its keys, names and details are the sender's data.
        logger.info("trigger event matched no workflow; dropped", extra={"kind": event.kind})
        return "no trigger matched"
    created = 0
    for start in starts:
        # The id names the event, so an instance under it with other params is this event's, delivered
        # before in the other shape (S3 direct vs through EventBridge), whose event time differs. The
        # first delivery's payload counts.
        with contextlib.suppress(InstanceAlreadyExistsError):
            created += client.create(start.workflow, start.params, id=start.id).created
    return f"trigger: {created} started, {len(starts) - created} already started"
