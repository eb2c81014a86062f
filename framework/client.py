"""``WorkflowClient``: create instances and read their status, locally or against AWS."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from framework import payloads
from framework.blobs import S3Blobs
from framework.clock import Clock, SystemClock
from framework.durations import from_epoch
from framework.dynamodb import DynamoStore
from framework.environment import Environment, Settings, from_env
from framework.errors import InstanceNotFoundError, InvalidInstanceIdError
from framework.queue import SqsQueue
from framework.records import EntryKind, EntryStatus, InstanceRecord, JournalEntry, Status
from framework.registry import Registry, Workflow
from framework.worker import send_wake

ID_PATTERN = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9_-]{0,99}$")


def check_instance_id(instance_id: Any) -> str:
    if not isinstance(instance_id, str) or not ID_PATTERN.fullmatch(instance_id):
        raise InvalidInstanceIdError(
            f"instance id {instance_id!r} is invalid: use 1 to 100 letters, digits, '_' or '-', "
            "not starting with '-'"
        )
    return instance_id


@dataclass(frozen=True, slots=True)
class InstanceStatus:
    """A snapshot of an instance. ``error`` is ``{"name", "message"}`` or None."""

    id: str
    workflow: str
    status: Status
    output: Any
    error: dict[str, str] | None
    created_at: datetime
    updated_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "workflow": self.workflow,
            "status": self.status.value,
            "output": self.output,
            "error": self.error,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class HistoryAttempt:
    started_at: datetime
    ended_at: datetime | None
    error: dict[str, str] | None


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One durable call of the current run, in order. Steps have ``attempts`` and ``result``; sleeps
    have ``wake_at``."""

    kind: str
    name: str
    status: str
    started_at: datetime
    ended_at: datetime | None
    attempts: tuple[HistoryAttempt, ...] = ()
    result: Any = None
    error: dict[str, str] | None = None
    wake_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        def when(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        data: dict[str, Any] = {
            "kind": self.kind,
            "name": self.name,
            "status": self.status,
            "started_at": when(self.started_at),
            "ended_at": when(self.ended_at),
        }
        if self.kind == EntryKind.STEP:
            data["attempts"] = [
                {"started_at": when(a.started_at), "ended_at": when(a.ended_at), "error": a.error}
                for a in self.attempts
            ]
            data["result"] = self.result
            data["error"] = self.error
        if self.kind == EntryKind.SLEEP:
            data["wake_at"] = when(self.wake_at)
        return data


class Instance:
    """A handle on one instance. Each method reads or writes the store; nothing is cached."""

    def __init__(self, client: WorkflowClient, instance_id: str) -> None:
        self._client = client
        self.id = instance_id

    def status(self) -> InstanceStatus:
        return self._client._status(self.id)

    def history(self) -> list[HistoryEntry]:
        """The journal of the current run, oldest first."""
        return self._client._history(self.id)

    def __repr__(self) -> str:
        return f"Instance(id={self.id!r})"


class WorkflowClient:
    """Start and inspect workflow instances.

    ``WorkflowClient(table_name=..., queue_url=...)`` talks to AWS with the standard configuration
    (``endpoint_url`` for a local stack); ``WorkflowClient.from_env()`` reads the same environment
    variables as the Lambda functions. Workflows must be registered in this process (imported, or
    listed in ``WORKFLOW_MODULES``) so that params can be checked before anything is written.
    """

    def __init__(
        self,
        table_name: str | None = None,
        queue_url: str | None = None,
        *,
        bucket_name: str | None = None,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        clock: Clock | None = None,
        workflows: Iterable[Workflow] | None = None,
        environment: Environment | None = None,
    ) -> None:
        if environment is None:
            if not table_name or not queue_url:
                raise ValueError("give table_name and queue_url, or use WorkflowClient.from_env()")
            import boto3

            def make(service: str) -> Any:
                return boto3.client(service, endpoint_url=endpoint_url, region_name=region_name)

            settings = Settings.from_env()
            environment = Environment(
                store=DynamoStore(make("dynamodb"), table_name, shards=settings.shards),
                queue=SqsQueue(make("sqs"), queue_url),
                blobs=S3Blobs(make("s3"), bucket_name) if bucket_name else None,
                clock=clock or SystemClock(),
                settings=settings,
            )
        if workflows is not None:
            environment = replace(environment, registry=Registry(workflows))
        self._env = environment

    @classmethod
    def from_env(cls) -> WorkflowClient:
        """Configure from WORKFLOWS_TABLE, WORKFLOWS_QUEUE_URL, WORKFLOWS_BUCKET and WORKFLOW_MODULES."""
        return cls(environment=from_env())

    @property
    def registry(self) -> Registry:
        return self._env.registry

    def create(self, workflow: str | Workflow, params: Any = None, *, id: str | None = None) -> Instance:
        """Validate, write and enqueue a new instance. Nothing is written if validation fails."""
        name = workflow.name if isinstance(workflow, Workflow) else workflow
        instance_id = str(uuid.uuid4()) if id is None else check_instance_id(id)
        wf = self.registry.get(name)
        params_text = wf.encode_params(params)
        now = self._env.clock.now()
        record = InstanceRecord(
            id=instance_id,
            workflow=wf.name,
            status=Status.QUEUED,
            params=params_text,
            created_at=now,
            updated_at=now,
            due_at=now,  # the sweeper re-enqueues it if the send below is lost
        )
        self._env.store.create_instance(record)
        # The start carries its due time, like every wake-up: a duplicate delivered after the instance
        # has moved on to a later wait fails the lease's due check and costs one write, no replay.
        send_wake(self._env, instance_id, now)
        return Instance(self, instance_id)

    def get(self, instance_id: str) -> Instance:
        """A handle on an existing instance. Raise InstanceNotFoundError."""
        self._record(check_instance_id(instance_id))
        return Instance(self, instance_id)

    def _record(self, instance_id: str) -> InstanceRecord:
        record = self._env.store.get_instance(instance_id)
        if record is None:
            raise InstanceNotFoundError(f"no instance {instance_id!r}")
        return record

    def _history(self, instance_id: str) -> list[HistoryEntry]:
        record = self._record(instance_id)
        now = self._env.clock.now()
        return [self._history_entry(e, now) for e in self._env.store.load_journal(instance_id, record.run)]

    def _history_entry(self, entry: JournalEntry, now: float) -> HistoryEntry:
        def when(epoch: float | None) -> datetime | None:
            return None if epoch is None else from_epoch(epoch)

        status = entry.status.value
        ended = entry.ended_at
        if entry.kind is EntryKind.SLEEP:
            done = entry.wake_at is not None and entry.wake_at <= now
            status, ended = ("complete", entry.wake_at) if done else ("waiting", None)
        elif entry.status is EntryStatus.STARTED:
            status = "running"
        return HistoryEntry(
            kind=entry.kind.value,
            name=entry.name,
            status=status,
            started_at=from_epoch(entry.started_at),
            ended_at=when(ended),
            attempts=tuple(
                HistoryAttempt(
                    from_epoch(a.started_at), when(a.ended_at), a.error.as_dict() if a.error else None
                )
                for a in entry.attempts
            ),
            result=(
                payloads.load(self._env, entry.result, entry.result_ref)
                if entry.status is EntryStatus.COMPLETE
                else None
            ),
            error=entry.error.as_dict() if entry.error else None,
            wake_at=when(entry.wake_at),
        )

    def _status(self, instance_id: str) -> InstanceStatus:
        record = self._record(instance_id)
        output = (
            payloads.load(self._env, record.output, record.output_ref)
            if record.status is Status.COMPLETE
            else None
        )
        return InstanceStatus(
            id=record.id,
            workflow=record.workflow,
            status=record.status,
            output=output,
            error=record.error.as_dict() if record.error else None,
            created_at=from_epoch(record.created_at),
            updated_at=from_epoch(record.updated_at),
        )
