"""What ``WorkflowClient`` and ``ApiClient`` return about instances: their status, what they wait for,
the steps they run, and pages of them. ``as_dict`` gives the HTTP API's JSON of each (``GET
/instances/{id}``); ``from_dict`` reads that JSON back, so that a client of the API returns the same
objects as the direct client."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from framework.core.durations import from_epoch
from framework.core.progress import StepCounts, WaitInfo
from framework.core.records import Status


def parse_time(text: Any) -> datetime | None:
    """An ISO 8601 time as ``as_dict`` writes it (None stays None)."""
    return None if text is None else datetime.fromisoformat(str(text))


def _time(text: Any) -> datetime:
    when = parse_time(text)
    if when is None:
        raise ValueError("a required time is missing")
    return when


@dataclass(frozen=True, slots=True)
class WaitStatus:
    """What a waiting (or paused) instance waits for: ``kind`` (sleep, retry, event, callback, invoke,
    condition, map), the durable call's ``name``, ``until`` when it ends at the latest (None: no
    deadline, a map's children), and as the kind has them the ``event_type``, the retry's next
    ``attempt``, the invoked ``child_id``."""

    kind: str
    name: str
    until: datetime | None
    event_type: str | None = None
    attempt: int | None = None
    child_id: str | None = None

    @classmethod
    def of(cls, wait: WaitInfo) -> WaitStatus:
        until = None if wait.until is None else from_epoch(wait.until)
        return cls(wait.kind.value, wait.name, until, wait.event_type, wait.attempt, wait.child_id)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WaitStatus:
        return cls(
            data["kind"],
            data["name"],
            parse_time(data.get("until")),
            data.get("event_type"),
            data.get("attempt"),
            data.get("child_id"),
        )

    def as_dict(self) -> dict[str, Any]:
        shown = {"kind": self.kind, "name": self.name, "until": _iso(self.until)}
        return shown | {"event_type": self.event_type, "attempt": self.attempt, "child_id": self.child_id}


@dataclass(frozen=True, slots=True)
class RunningStatus:
    """A step attempt that runs now, and has run longer than ``running_mark_seconds``."""

    name: str
    attempt: int
    started_at: datetime

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunningStatus:
        return cls(data["name"], data["attempt"], _time(data["started_at"]))

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "attempt": self.attempt, "started_at": self.started_at.isoformat()}


@dataclass(frozen=True, slots=True)
class InstanceStatus:
    """A snapshot of an instance. ``error`` is ``{"name", "message"}`` or None.

    What it is doing (docs/execution-model.md#status): ``wait``, the first of ``waits`` (earliest
    deadline first; several in an async run), set while it is waiting or paused; ``running_step``, the
    first of ``running_steps`` (earliest start first), set while an invocation runs a step attempt that
    has run longer than ``running_mark_seconds``; ``counts`` over the current run's steps (steps_done,
    steps_failed, retries, failures), as of the instance item's last write by the engine."""

    id: str
    workflow: str
    status: Status
    output: Any
    error: dict[str, str] | None
    created_at: datetime
    updated_at: datetime
    parent_id: str | None = None  # the instance whose ``step.invoke`` started this one
    version: str | None = None  # the workflow code's version it started on (``@workflow(version=)``)
    waits: tuple[WaitStatus, ...] = ()
    running_steps: tuple[RunningStatus, ...] = ()
    counts: dict[str, int] = field(default_factory=StepCounts().as_dict)

    @property
    def wait(self) -> WaitStatus | None:
        return self.waits[0] if self.waits else None

    @property
    def running_step(self) -> RunningStatus | None:
        return self.running_steps[0] if self.running_steps else None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InstanceStatus:
        """The status ``as_dict`` gave (the HTTP API's instance view). A status this version does not
        know reads as ``unknown``; fields a newer API adds are ignored."""
        try:
            status = Status(data["status"])
        except ValueError:
            status = Status.UNKNOWN
        return cls(
            id=data["id"],
            workflow=data["workflow"],
            status=status,
            output=data.get("output"),
            error=data.get("error"),
            created_at=_time(data["created_at"]),
            updated_at=_time(data["updated_at"]),
            parent_id=data.get("parent_id"),
            version=data.get("version"),
            waits=tuple(WaitStatus.from_dict(w) for w in data.get("waits") or ()),
            running_steps=tuple(RunningStatus.from_dict(r) for r in data.get("running_steps") or ()),
            counts=StepCounts().as_dict() | dict(data.get("counts") or {}),
        )

    def as_dict(self) -> dict[str, Any]:
        shown_parent = {} if self.parent_id is None else {"parent_id": self.parent_id}
        return shown_parent | {
            "id": self.id,
            "workflow": self.workflow,
            "status": self.status.value,
            "output": self.output,
            "error": self.error,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "version": self.version,
            "wait": self.wait.as_dict() if self.wait else None,
            "waits": [w.as_dict() for w in self.waits],
            "running_step": self.running_step.as_dict() if self.running_step else None,
            "running_steps": [r.as_dict() for r in self.running_steps],
            "counts": dict(self.counts),
        }


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat()


@dataclass(frozen=True, slots=True)
class InstancePage:
    """One page of ``WorkflowClient.list``: pass ``cursor`` back for the next, until it is None."""

    instances: list[InstanceStatus]
    cursor: str | None
