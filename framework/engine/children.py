"""Child instances (``step.invoke``): how one is started, and how its end reaches its parent once.

A child is an ordinary instance with a :class:`~framework.core.records.ParentLink`. When it finishes, its
release keeps a ``due_at`` (the sweeper's index), and then it *reports*: it sends its parent an event
keyed by the child's incarnation and run, conditioned on the parent's run being the one that started it,
kicks the parent, and drops its ``due_at``. A report sent twice stores one event (the store dedups by
key), and the parent's invoke entry takes it once; a child that died before it reported is found by the
sweeper, whose wake-up of the finished child reports instead (``framework.engine.invocation``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from framework.api.limits import limit_key
from framework.backends.environment import Environment
from framework.core import serde
from framework.core.faults import point
from framework.core.records import FINISHED, EventRecord, InstanceRecord, ParentLink, Status, new_incarnation

# The event type of every child's report to its parent. ``$`` is not allowed in the event types users
# send, so no client, API caller or inbox message can forge one. One type for all of a parent's children:
# a replay reads the reports of all of them in one query.
REPORTS = "$child"


def report_prefix(op: str) -> str:
    """The key prefix of the reports to the invoke at ``op``."""
    return f"{REPORTS}#{op}#"


def reports_to(events: list[EventRecord], op: str) -> list[EventRecord]:
    """The reports among ``events`` (the parent's, of type REPORTS) meant for the invoke at ``op``."""
    prefix = report_prefix(op)
    return [e for e in events if e.key.startswith(prefix)]


def default_child_id(parent: InstanceRecord, op: str) -> str:
    """The id of a child started without one: fixed by the parent's incarnation, run and op, so every
    replay names the same child and a restarted run starts new ones."""
    where = op.replace(".", "_")
    if len(where) > 20:  # a call deep in scopes: a digest keeps the id within 100 characters
        where = hashlib.sha256(op.encode()).hexdigest()[:20]
    return f"{parent.id[:60]}-{parent.incarnation}-{parent.run}-{where}"


def child_record(
    env: Environment, workflow: str, params: Any, child_id: str, parent: ParentLink, now: float
) -> InstanceRecord:
    """The new child instance, its params checked against its workflow's model."""
    wf = env.registry.get(workflow)
    text = wf.encode_params(params)
    return InstanceRecord(
        id=child_id,
        workflow=wf.name,
        status=Status.QUEUED,
        params=text,
        created_at=now,
        updated_at=now,
        incarnation=new_incarnation(),
        parent=parent,
        code_version=wf.version,
        limit_key=limit_key(wf.name, wf.limits, lambda: wf.decode_params(text)),
    )


def needs_report(record: InstanceRecord | None) -> bool:
    """A finished child whose report may not have reached its parent yet."""
    return (
        record is not None
        and record.parent is not None
        and record.status in FINISHED
        and record.due_at is not None
    )


def report(env: Environment, child: InstanceRecord, wake: Callable[[str], None]) -> None:
    """Tell ``child``'s parent how it ended, then forget that a report is owed. Safe to repeat. A parent
    that is gone, finished, or on another run (restarted) never takes the report."""
    link = child.parent
    assert link is not None and child.status in FINISHED
    payload: dict[str, Any] = {"child_id": child.id, "status": child.status.value}
    payload |= {"output": child.output, "output_ref": child.output_ref}
    if child.error is not None:
        payload["error"] = child.error.as_dict()
    text = serde.dumps(payload, what="child report")
    # The key holds the op and the child's run: a report sent again lands on the same key.
    event = EventRecord(
        f"{report_prefix(link.op)}{child.incarnation}.{child.run}", REPORTS, text, env.clock.now()
    )
    point("child.before_report", instance_id=child.id)
    # Put under the run that started the child, without reading the parent: one write. A parent
    # that finished, was restarted or is gone never reads that run's events again.
    env.store.put_event(link.instance_id, link.run, event)
    point("child.before_parent_wake", instance_id=child.id)
    wake(link.instance_id)
    if child.due_at is not None:
        env.store.settle(child.id, child.due_at)
