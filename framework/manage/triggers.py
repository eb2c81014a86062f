"""Event triggers in the inbox: which registered workflows an S3 or EventBridge event starts, and as what.

Three shapes arrive on the inbox queue besides the inbox's own ``{"action": ...}`` messages:

- an EventBridge event (``version, id, detail-type, source, account, time, region, resources,
  detail``) forwarded by a rule; S3's ``Object Created`` events among them;
- an S3 event notification sent straight to the queue (``{"Records": [{"eventSource": "aws:s3", ...}]}``,
  keys URL-encoded with ``+`` for spaces); S3's ``s3:TestEvent`` is ignored;
- either of them inside an SNS envelope (``{"Type": "Notification", "Message": "<json>"}``).

Each (workflow, event) pair starts at most one instance, whose id is derived from the event: an S3
object from workflow, bucket, key and the object's ``sequencer`` (the same in both delivery shapes of
one put), an EventBridge event from workflow and the event's ``id``. A redelivered event names the same
id, and the idempotent create makes it a no-op. Errors (``BadTriggerEventError``) name the field that
is wrong, never a value.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from framework.api.registry import Registry, Workflow
from framework.core.event_patterns import matches
from framework.errors import WorkflowError

ALIAS_ENV = {"uploads": "UPLOADS_BUCKET"}  # a trigger's bucket alias -> the variable naming the bucket
EVENTBRIDGE_KEYS = frozenset(
    {"version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"}
)
_READABLE = re.compile(r"[A-Za-z0-9_.:@/-]{1,64}")


class BadTriggerEventError(WorkflowError):
    """An S3 or EventBridge event that lacks a field or holds one of the wrong type. Dead-lettered."""


@dataclass(frozen=True, slots=True)
class S3Object:
    """One S3 object created, as either delivery shape tells it."""

    bucket: str
    key: str  # decoded
    size: int | None
    etag: str | None
    version_id: str | None
    sequencer: str | None
    event_time: str | None

    def payload(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "key": self.key,
            "size": self.size,
            "etag": self.etag,
            "version_id": self.version_id,
            "sequencer": self.sequencer,
            "event_time": self.event_time,
        }


@dataclass(frozen=True, slots=True)
class Start:
    """An instance an event starts: its workflow, id and params."""

    workflow: str
    id: str
    params: dict[str, Any]
    kind: str  # "s3" or "eventbridge"


@dataclass(frozen=True, slots=True)
class TriggerEvent:
    """What an inbox message that is not an action holds: S3 objects created, and/or one EventBridge
    event (an S3 event through EventBridge is both). ``ignored`` for S3's test event."""

    objects: tuple[S3Object, ...] = ()
    eventbridge: Mapping[str, Any] | None = None
    ignored: bool = False

    @property
    def kind(self) -> str:
        return "eventbridge" if self.eventbridge is not None else "s3"


def is_trigger_message(message: Any) -> bool:
    """True if ``message`` (decoded JSON) has the shape of an event rather than an inbox action."""
    if not isinstance(message, Mapping):
        return False
    if message.get("Type") == "Notification" and isinstance(message.get("Message"), str):
        return True
    return "Records" in message or message.get("Event") == "s3:TestEvent" or "detail-type" in message


def parse(message: Mapping[str, Any], *, unwrap: bool = True) -> TriggerEvent:
    """The event ``message`` holds (see ``is_trigger_message``). Raise BadTriggerEventError."""
    if unwrap and message.get("Type") == "Notification" and isinstance(message.get("Message"), str):
        try:
            inner = json.loads(message["Message"])
        except (ValueError, RecursionError):
            raise BadTriggerEventError("SNS notification: Message is not JSON") from None
        if not is_trigger_message(inner) or (
            isinstance(inner, Mapping) and inner.get("Type") == "Notification"
        ):
            raise BadTriggerEventError("SNS notification: Message is not an S3 or EventBridge event")
        return parse(inner, unwrap=False)
    if message.get("Event") == "s3:TestEvent":
        return TriggerEvent(ignored=True)
    if "Records" in message:
        return TriggerEvent(objects=tuple(_records(message["Records"])))
    return _eventbridge(message)


def _records(records: Any) -> Iterable[S3Object]:
    if not isinstance(records, list) or not records:
        raise BadTriggerEventError("S3 notification: Records must be a non-empty list")
    for i, record in enumerate(records):
        where = f"S3 notification: Records[{i}]"
        if not isinstance(record, Mapping) or record.get("eventSource") != "aws:s3":
            raise BadTriggerEventError(f"{where}: not an aws:s3 record")
        name = record.get("eventName")
        if not isinstance(name, str):
            raise BadTriggerEventError(f"{where}: eventName must be a string")
        if not name.startswith("ObjectCreated:"):
            continue  # deletions, restores...: nothing starts on them
        s3 = _obj(record.get("s3"), f"{where}.s3")
        bucket = _obj(s3.get("bucket"), f"{where}.s3.bucket")
        obj = _obj(s3.get("object"), f"{where}.s3.object")
        key = _text(obj.get("key"), f"{where}.s3.object.key")
        yield S3Object(
            bucket=_text(bucket.get("name"), f"{where}.s3.bucket.name"),
            # S3 notifications encode keys as HTML forms do: %XX, and + for a space.
            key=_decoded(key, f"{where}.s3.object.key"),
            size=_int(obj.get("size"), f"{where}.s3.object.size"),
            etag=_opt_text(obj.get("eTag"), f"{where}.s3.object.eTag"),
            version_id=_opt_text(obj.get("versionId"), f"{where}.s3.object.versionId"),
            sequencer=_opt_text(obj.get("sequencer"), f"{where}.s3.object.sequencer"),
            event_time=_opt_text(record.get("eventTime"), f"{where}.eventTime"),
        )


def _eventbridge(message: Mapping[str, Any]) -> TriggerEvent:
    for field in ("id", "detail-type", "source"):
        _text(message.get(field), f"EventBridge event: {field}")
    detail = message.get("detail", {})
    if not isinstance(detail, Mapping):
        raise BadTriggerEventError("EventBridge event: detail must be an object")
    objects: tuple[S3Object, ...] = ()
    if message.get("source") == "aws.s3" and message.get("detail-type") == "Object Created":
        bucket = _obj(detail.get("bucket"), "EventBridge event: detail.bucket")
        obj = _obj(detail.get("object"), "EventBridge event: detail.object")
        objects = (
            S3Object(
                bucket=_text(bucket.get("name"), "EventBridge event: detail.bucket.name"),
                key=_text(obj.get("key"), "EventBridge event: detail.object.key"),  # not encoded here
                size=_int(obj.get("size"), "EventBridge event: detail.object.size"),
                etag=_opt_text(obj.get("etag", obj.get("eTag")), "EventBridge event: detail.object.etag"),
                version_id=_opt_text(obj.get("version-id"), "EventBridge event: detail.object.version-id"),
                sequencer=_opt_text(obj.get("sequencer"), "EventBridge event: detail.object.sequencer"),
                event_time=_opt_text(message.get("time"), "EventBridge event: time"),
            ),
        )
    return TriggerEvent(objects=objects, eventbridge=message)


def _obj(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise BadTriggerEventError(f"{where} must be an object")
    return value


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise BadTriggerEventError(f"{where} must be a non-empty string")
    return value


def _opt_text(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadTriggerEventError(f"{where} must be a string")
    return value


def _int(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadTriggerEventError(f"{where} must be an integer")
    return value


def _decoded(key: str, where: str) -> str:
    try:
        return urllib.parse.unquote_plus(key, errors="strict")
    except UnicodeDecodeError:
        raise BadTriggerEventError(f"{where} is not URL-encoded UTF-8") from None


# -- matching and ids --------------------------------------------------------------------------------
def resolve_bucket(name: str, environ: Mapping[str, str] | None = None) -> str:
    """The bucket a trigger's ``bucket`` names: an alias of the stack's (``uploads``: the bucket in
    ``UPLOADS_BUCKET``) when that variable is set, else the literal bucket name."""
    env = os.environ if environ is None else environ
    variable = ALIAS_ENV.get(name)
    return (env.get(variable) or name) if variable else name


def s3_matches(trigger: Mapping[str, str], obj: S3Object, environ: Mapping[str, str] | None = None) -> bool:
    return (
        obj.bucket == resolve_bucket(trigger["bucket"], environ)
        and obj.key.startswith(trigger.get("prefix", ""))
        and obj.key.endswith(trigger.get("suffix", ""))
    )


def _digest(*parts: str | None) -> str:
    # surrogatepass: a key or id decoded from JSON may hold a lone surrogate, which plain UTF-8 refuses.
    text = json.dumps(list(parts), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def s3_instance_id(workflow: str, obj: S3Object) -> str:
    """``<workflow>:s3:<32 hex>``, from workflow, bucket, key and sequencer. An event without a
    sequencer (moto's local S3 sends none) is named by its ETag, version and time instead."""
    if obj.sequencer:
        return f"{workflow}:s3:{_digest(workflow, obj.bucket, obj.key, obj.sequencer)}"
    fallback = _digest(workflow, obj.bucket, obj.key, "", obj.etag, obj.version_id, obj.event_time)
    return f"{workflow}:s3:{fallback}"


def eventbridge_instance_id(workflow: str, event_id: str) -> str:
    """``<workflow>:eb:<event id>`` when the event's id fits the id charset (EventBridge's are UUIDs),
    else ``<workflow>:eb:<32 hex>`` of it."""
    if _READABLE.fullmatch(event_id) and len(workflow) + 4 + len(event_id) <= 100:
        return f"{workflow}:eb:{event_id}"
    return f"{workflow}:eb:{_digest(workflow, event_id)}"


def starts(registry: Registry, event: TriggerEvent, environ: Mapping[str, str] | None = None) -> list[Start]:
    """The instances ``event`` starts: for each registered workflow whose trigger matches, one per S3
    object created (an S3 trigger), else one for the EventBridge event (a pattern)."""
    found: list[Start] = []
    for wf in registry.all():
        found.extend(_starts_of(wf, event, environ))
    return found


def _starts_of(wf: Workflow, event: TriggerEvent, environ: Mapping[str, str] | None) -> list[Start]:
    trigger = wf.trigger
    if trigger is None or event.ignored:
        return []
    if trigger.s3 is not None:
        s3 = trigger.s3
        objects = [o for o in event.objects if s3_matches(s3, o, environ)]
        if objects:
            return [Start(wf.name, s3_instance_id(wf.name, o), o.payload(), "s3") for o in objects]
    eventbridge = event.eventbridge
    if (
        trigger.eventbridge is not None
        and eventbridge is not None
        and matches(trigger.eventbridge, eventbridge)
    ):
        params = {k: v for k, v in eventbridge.items() if k in EVENTBRIDGE_KEYS}
        return [Start(wf.name, eventbridge_instance_id(wf.name, params["id"]), params, "eventbridge")]
    return []
