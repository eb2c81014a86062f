"""``WorkflowClient``: start, inspect and manage instances, locally or against AWS."""

from __future__ import annotations

import base64
import binascii
import builtins
import itertools
import json
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import Any

from framework.api.calls import check_event_type
from framework.api.limits import limit_key
from framework.api.registry import Registry, Workflow, check_workflow_name
from framework.backends.blobs import S3Blobs
from framework.backends.dynamodb import DynamoStore
from framework.backends.dynamodb_items import event_key
from framework.backends.environment import Environment, Settings, current, from_env
from framework.backends.queue import SqsQueue
from framework.backends.store import InstanceTaken
from framework.core import metrics, serde
from framework.core.clock import Clock, SystemClock
from framework.core.durations import LATEST_EPOCH, from_epoch
from framework.core.ids import check_instance_id, shown
from framework.core.records import Control, EventRecord, InstanceRecord, Status, new_incarnation
from framework.engine import payloads
from framework.engine.invocation import send_wake
from framework.errors import (
    InstanceAlreadyExistsError,
    InstanceNotFoundError,
    InvalidConfigError,
    InvalidInstanceIdError,
    PayloadTooLargeError,
)
from framework.manage import callbacks
from framework.manage import schedules as schedule_ops
from framework.manage.history import HistoryAttempt, HistoryEntry, build_history
from framework.manage.history_pages import DEFAULT_LIMIT, HistoryPage, every_page, read_page
from framework.manage.schedules import ScheduleInfo
from framework.manage.status import InstancePage, InstanceStatus, RunningStatus, WaitStatus
from framework.manage.versions import VersionCount, count_versions

MAX_JSON_DEPTH = serde.MAX_DEPTH  # nesting of params and event payloads, as of stored values
MAX_BATCH = 100
MAX_BATCH_PARAMS_BYTES = 3_500_000  # DynamoDB transactions take 4 MB in all
MAX_EVENT_BYTES = 256 * 1024
_SENDS = itertools.count()
MAX_LIST = 1000

__all__ = [
    "HistoryAttempt",
    "HistoryEntry",
    "HistoryPage",
    "Instance",
    "InstancePage",
    "InstanceStatus",
    "RunningStatus",
    "WaitStatus",
    "WorkflowClient",
]


_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\Z)', re.DOTALL)  # an unclosed string runs to the end
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_NESTING = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def json_depth(text: str) -> int:
    """How deep the arrays and objects of JSON ``text`` nest (``1`` is ``[1]`` or ``{}``), computed
    without parsing or recursing, so that it is safe on any input (``json.loads`` raises RecursionError
    at about 1,000 levels)."""
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text)).encode()
    return max(itertools.accumulate(map(_NESTING.__getitem__, brackets)), default=0)


class Instance:
    """A handle on one instance. Each method reads or writes the store; nothing is cached."""

    def __init__(self, client: WorkflowClient, instance_id: str, *, created: bool = False) -> None:
        self._client = client
        self.id = instance_id
        # True only on a handle that ``create`` or ``create_batch`` returned for an instance that call
        # wrote; False for one that existed already (same workflow and params), and on every other handle.
        self.created = created

    def status(self) -> InstanceStatus:
        return self._client._status(self._client._record(self.id))

    def history(self) -> list[HistoryEntry]:
        """The journal of the current run, oldest first, with the events sent to the instance."""
        return self._client._history(self.id)

    def history_page(
        self, limit: int = DEFAULT_LIMIT, cursor: str | None = None, *, results: bool = False
    ) -> HistoryPage:
        """One page of the history: at most ``limit`` entries (1 to 1,000) and 2 MiB encoded, from
        ``cursor`` (None: the start; else the ``cursor`` of the page before). Results are left out
        unless ``results``: each entry that has one gives ``result_bytes`` and ``result_omitted``. An
        entry that alone passes 2 MiB comes with ``result_omitted="too_large"`` (``history()`` still
        returns it whole). The page's ``cursor`` is None on the last page. Raise InvalidConfigError for
        a bad limit or cursor, InvalidStateError for a cursor of a run that was restarted since. Costs
        three DynamoDB reads, plus one S3 call per result stored there. See
        framework.manage.history_pages for how events are placed."""
        return read_page(
            self._client._env, self._client._record(self.id), limit=limit, cursor=cursor, results=results
        )

    def history_pages(self, limit: int = DEFAULT_LIMIT, *, results: bool = False) -> Iterator[HistoryPage]:
        """Every page of the history, first to last, following the cursors (as ``history_page``)."""
        return every_page(self.history_page, limit, results=results)

    def export(self) -> dict[str, Any]:
        """The current run's recorded history as a JSON-ready document, for ``workflows replay-check``
        (framework.manage.replay_check): the instance, its journal with every result inline, and the
        events waiting for it. It holds the instance's params and results: keep it as you keep them."""
        from framework.manage.replay_check import export_history  # the engine: only for an export

        return export_history(self._client._env, self._client._record(self.id))

    def pause(self) -> None:
        """Pause at the next durable-call boundary (``waitingForPause`` until then)."""
        self._client._control(self.id, Control.PAUSE)

    def resume(self) -> None:
        """Resume a paused instance. Raise InvalidStateError if it is not paused."""
        self._client._control(self.id, Control.RESUME)

    def terminate(self, *, rollback: bool = False) -> None:
        """Stop at the next boundary; later wake-ups do nothing. Raise InvalidStateError if finished.
        With ``rollback``, the next invocation replays the run, runs its registered undos (shown
        ``rollingBack``), then ends it terminated; with nothing to undo it just terminates."""
        self._client._control(self.id, Control.ROLLBACK if rollback else Control.TERMINATE)

    def restart(self) -> None:
        """Run again from the beginning with the same params; the old journal is set aside."""
        self._client._control(self.id, Control.RESTART)

    def skip_wait(self) -> None:
        """End the instance's current wait now, as if its time had passed: the sleep (or retry delay,
        or event, callback or invoke timeout) with the earliest deadline, and any other that ends by
        then. For local development (``workflows skip``, ``workflows dev``); see
        ``framework.engine.skip``. Raise InvalidStateError unless it is ``waiting`` with a deadline
        (a running instance: try again once it waits)."""
        self._client._control(self.id, Control.SKIP)

    def send_event(self, type: str, payload: Any = None) -> None:
        """Deliver an event; a wait for this type wakes at once, else it is buffered (FIFO per type).
        Raise InvalidStateError if the instance is complete, errored or terminated."""
        self._client._send_event(self.id, type, payload)

    def __repr__(self) -> str:
        return f"Instance(id={self.id!r})"


class WorkflowClient:
    """Start and manage workflow instances.

    ``WorkflowClient(table_name=..., queue_url=...)`` talks to AWS with the standard configuration
    (``endpoint_url`` for a local stack); ``WorkflowClient.from_env()`` reads the same environment
    variables as the Lambda functions. ``create`` checks params against the workflow's model, so the
    workflow must be registered in this process (imported, or listed in ``WORKFLOW_MODULES``).
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
    def from_env(cls, *, endpoint_url: str | None = None) -> WorkflowClient:
        """Configure from WORKFLOWS_TABLE, WORKFLOWS_QUEUE_URL, WORKFLOWS_BUCKET and WORKFLOW_MODULES."""
        if endpoint_url is None:
            return cls(environment=from_env())
        import boto3

        clients = {s: boto3.client(s, endpoint_url=endpoint_url) for s in ("dynamodb", "sqs", "s3")}
        return cls(environment=from_env(**clients))

    @property
    def registry(self) -> Registry:
        return self._env.registry

    # -- creating ----------------------------------------------------------------------------------
    def create(self, workflow: str | Workflow, params: Any = None, *, id: str | None = None) -> Instance:
        """Validate, write and enqueue a new instance; return its handle, ``created`` True. Nothing is
        written if validation fails.

        Idempotent, as Step Functions' StartExecution is: if ``id`` exists with the same workflow and
        the same params (compared as stored, see ``serde.same_json``), that instance's handle is
        returned, ``created`` False, whatever its status, and nothing is written or sent. With another
        workflow or other params: InstanceAlreadyExistsError. The existing instance comes back with the
        failed conditional write itself, so two creates that race on one id both succeed if they agree.
        """
        record = self._new_record(workflow, params, id, self._env.clock.now())
        if not self._write([record], batch=False):
            return Instance(self, record.id)
        # The start carries its due time, like every wake-up: a duplicate delivered after the instance
        # has moved on to a later wait fails the lease's due check and costs one write, no replay.
        send_wake(self._env, record.id, record.created_at)
        metrics.record(record.workflow, "InstancesCreated")
        return Instance(self, record.id, created=True)

    def _write(self, records: builtins.list[InstanceRecord], *, batch: bool) -> set[str]:
        """Write the records whose ids are free (a conditional put, or a transaction for a batch),
        leave those whose ids hold the same instance already, and return the ids written. Raise
        InstanceAlreadyExistsError, writing nothing, if an id holds another instance."""
        pending = records
        for _ in range(len(records) + 2):  # each round drops an id, but for ids that TTL just freed
            try:
                if batch:
                    self._env.store.create_instances(pending)
                else:
                    self._env.store.create_instance(pending[0])
                return {r.id for r in pending}
            except InstanceTaken as taken:
                for r in pending:
                    if r.id in taken.existing:
                        _check_same(r, taken.existing[r.id])
                pending = [r for r in pending if r.id not in taken.existing]
            if not pending:
                return set()
        raise InstanceAlreadyExistsError("the ids were taken and freed again on every try; try again")

    def create_batch(self, workflow: str | Workflow, items: list[dict[str, Any]]) -> list[Instance]:
        """Create up to 100 instances of one workflow: ``[{"id": ..., "params": ...}, ...]`` (both
        optional). All are validated first and written in one transaction: all, or none. As for
        ``create``, an id that holds the same workflow and params already is success (its handle has
        ``created`` False) and the others are written; one that holds another instance raises
        InstanceAlreadyExistsError, and nothing is written."""
        if not isinstance(items, list) or not 1 <= len(items) <= MAX_BATCH:
            raise InvalidConfigError(f"a batch holds 1 to {MAX_BATCH} instances")
        now = self._env.clock.now()
        records = []
        for item in items:
            if not isinstance(item, dict) or set(item) - {"id", "params"}:
                # Not the item itself: it holds params, which no message may show.
                raise InvalidConfigError('each batch item is {"id"?, "params"?}, with no other keys')
            records.append(self._new_record(workflow, item.get("params"), item.get("id"), now))
        size = sum(len(r.params.encode()) for r in records)
        if size > MAX_BATCH_PARAMS_BYTES:
            raise PayloadTooLargeError(
                f"the batch's params are {size} bytes; one transaction takes {MAX_BATCH_PARAMS_BYTES}"
            )
        ids = [r.id for r in records]
        if len(set(ids)) != len(ids):
            raise InstanceAlreadyExistsError("the batch names one id twice")
        written = self._write(records, batch=True)
        for record in records:
            if record.id in written:
                send_wake(self._env, record.id, now)
        if written:
            metrics.record(records[0].workflow, "InstancesCreated", len(written))
        return [Instance(self, r.id, created=r.id in written) for r in records]

    def _new_record(
        self, workflow: str | Workflow, params: Any, instance_id: str | None, now: float
    ) -> InstanceRecord:
        name = workflow.name if isinstance(workflow, Workflow) else workflow
        instance_id = str(uuid.uuid4()) if instance_id is None else check_instance_id(instance_id)
        wf = self.registry.get(name)
        text = wf.encode_params(params)
        return InstanceRecord(
            id=instance_id,
            workflow=wf.name,
            status=Status.QUEUED,
            params=text,
            created_at=now,
            updated_at=now,
            incarnation=new_incarnation(),
            code_version=wf.version,
            limit_key=limit_key(wf.name, wf.limits, lambda: wf.decode_params(text)),
            # No due_at: the sweeper looks at each new instance once, a grace after its creation, and
            # re-enqueues it if its start message was lost (framework/engine/sweeper.py).
        )

    # -- reading -----------------------------------------------------------------------------------
    def get(self, instance_id: str) -> Instance:
        """A handle on an existing instance. Raise InstanceNotFoundError."""
        self._record(check_instance_id(instance_id))
        return Instance(self, instance_id)

    def list(
        self,
        workflow: str | None = None,
        status: str | Status | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> InstancePage:
        """Instances, newest first, optionally of one workflow and one status."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST:
            raise InvalidConfigError(f"limit must be 1 to {MAX_LIST}, got {limit!r}")
        try:
            wanted = None if status is None else Status(status)
        except ValueError:
            raise InvalidConfigError(
                f"status {shown(status, 60)} is unknown; one of: {', '.join(s.value for s in Status)}"
            ) from None
        before = _decode_cursor(cursor)
        records, more = self._env.store.list_instances(workflow, wanted, limit, before)
        next_cursor = _encode_cursor(records[-1]) if more and records else None
        return InstancePage([self._status(r, with_output=False) for r in records], next_cursor)

    def versions(self, workflow: str) -> builtins.list[VersionCount]:
        """The versions of ``workflow``'s code registered here or recorded by its unfinished instances,
        oldest first, each with its count of instances in flight: a version with none left may have its
        code deleted (docs/changing-code.md). Reads every instance of the workflow."""
        return count_versions(self._env.store, self.registry, check_workflow_name(workflow))

    def _record(self, instance_id: str) -> InstanceRecord:
        record = self._env.store.get_instance(check_instance_id(instance_id))
        if record is None:
            raise InstanceNotFoundError(f"no instance {instance_id!r}")
        return record

    def _status(self, record: InstanceRecord, *, with_output: bool = True) -> InstanceStatus:
        output = None
        if with_output and record.status is Status.COMPLETE:
            output = payloads.load(self._env, record.output, record.output_ref)
        return InstanceStatus(
            id=record.id,
            workflow=record.workflow,
            status=record.shown_status,
            output=output,
            error=record.error.as_dict() if record.error else None,
            created_at=from_epoch(record.created_at),
            updated_at=from_epoch(record.updated_at),
            parent_id=record.parent.instance_id if record.parent else None,
            version=record.code_version,
            **self._progress(record),
        )

    def _progress(self, record: InstanceRecord) -> dict[str, Any]:
        """What the instance is doing: its waits while it waits (or is paused), the steps marked
        running while the invocation that marked them holds a live lease, the run's counts."""
        waits = record.waits if record.status in (Status.WAITING, Status.PAUSED) else ()
        live = record.lease_until is not None and record.lease_until >= self._env.clock.now()
        marked = record.running if live and record.lease_owner else ()
        steps = sorted(marked, key=lambda s: (s.started_at, s.op))
        return {
            "waits": tuple(WaitStatus.of(w) for w in waits),
            "running_steps": tuple(RunningStatus(s.name, s.attempt, from_epoch(s.started_at)) for s in steps),
            "counts": record.counts.as_dict(),
        }

    def _history(self, instance_id: str) -> builtins.list[HistoryEntry]:
        record = self._record(instance_id)
        journal = record.with_tail(self._env.store.load_journal(instance_id, record.run_key))
        events = self._env.store.load_events(instance_id, record.run_key)
        return build_history(self._env, journal, events, self._env.clock.now())

    # -- managing ----------------------------------------------------------------------------------
    def _control(self, instance_id: str, action: Control) -> None:
        now = self._env.clock.now()
        expires = int(now + self._env.settings.retention_days * 86400)
        after = self._env.store.control(check_instance_id(instance_id), action, now, expires)
        if action is Control.RESTART:
            send_wake(self._env, instance_id, now)
        elif action is Control.ROLLBACK:  # a kick: its next invocation runs the undos now
            send_wake(self._env, instance_id, None)
        elif action is Control.TERMINATE and after.parent is not None:
            # A kick: the worker finds a terminated child that owes its parent a report, and sends it.
            send_wake(self._env, instance_id, None)
        elif action is Control.SKIP:  # a kick: the invocation it starts ends the wait (engine.skip)
            send_wake(self._env, instance_id, None)
        elif action is Control.RESUME and after.status is Status.WAITING:
            # A kick, not the old wake time: an event sent while paused must be taken at once.
            send_wake(self._env, instance_id, None)

    def _send_event(
        self,
        instance_id: str,
        event_type: str,
        payload: Any,
        *,
        event_id: str | None = None,
        sent_at: float | None = None,
    ) -> None:
        """``event_id`` and ``sent_at`` make a redelivered event (the inbox's SQS message) land on the
        same key, so it is kept once."""
        check_instance_id(instance_id)
        check_event_type(event_type)
        text = serde.dumps(payload, what="event payload")
        size = len(text.encode())
        if size > MAX_EVENT_BYTES:
            raise PayloadTooLargeError(f"event payload is {size} bytes; the limit is {MAX_EVENT_BYTES}")
        now = self._env.clock.now() if sent_at is None else sent_at
        # Events of one type are taken first in, first out by key: sends from one process at the same
        # clock reading (a virtual clock, or a coarse one) keep their order through the counter.
        key = event_key(event_type, now, event_id or f"{next(_SENDS):012d}-{uuid.uuid4().hex}")
        self._env.store.send_event(instance_id, EventRecord(key, event_type, text, now))
        send_wake(self._env, instance_id, None)  # a kick: wakes a wait at once, whatever its deadline

    # -- callbacks (framework.manage.callbacks) ------------------------------------------------------
    def send_callback_success(self, callback_id: str, result: Any = None) -> None:
        """Complete a callback with ``result`` (JSON, at most 256 KiB); its instance wakes at once. Raise
        CallbackNotFoundError for an id that names no callback of the instance's current run (malformed,
        forged, of an earlier run), CallbackCompletedError if it has its outcome already or its instance
        finished. Nothing is stored then."""
        callbacks.send_success(self._env, callback_id, result)

    def send_callback_failure(self, callback_id: str, error: str, message: str = "") -> None:
        """Fail a callback: its ``result()`` raises CallbackFailedError carrying ``error`` (a name) and
        ``message``. Raises as ``send_callback_success`` does."""
        callbacks.send_failure(self._env, callback_id, error, message)

    def send_callback_heartbeat(self, callback_id: str) -> None:
        """Keep a callback with a ``heartbeat_timeout`` alive: its heartbeat deadline moves to now plus
        that timeout. Wakes nothing. Raises as ``send_callback_success`` does."""
        callbacks.send_heartbeat(self._env, callback_id)

    # -- schedules (framework.manage.schedules) --------------------------------------------------------
    def schedules(self) -> builtins.list[ScheduleInfo]:
        """The schedules of the workflows registered here, by name, with their state."""
        return schedule_ops.list_schedules(self._env)

    def pause_schedule(self, name: str) -> ScheduleInfo:
        """Stop ``name``'s fires until resumed. Raise WorkflowNotFoundError (also for no schedule)."""
        return schedule_ops.pause(self._env, name)

    def resume_schedule(self, name: str) -> ScheduleInfo:
        """Fire again from now on; fires missed while paused are dropped. Raise WorkflowNotFoundError."""
        return schedule_ops.resume(self._env, name)


_default: WorkflowClient | None = None


def default_client() -> WorkflowClient:
    """The client on the current Environment (see ``framework.backends.environment.current``), made once per
    container and made again only if the Environment changes (the local runtime installs its own)."""
    global _default  # noqa: PLW0603 - one client per container
    env = current()
    if _default is None or _default._env is not env:
        _default = WorkflowClient(environment=env)
    return _default


def _check_same(record: InstanceRecord, existing: InstanceRecord) -> None:
    """Raise InstanceAlreadyExistsError unless ``existing`` is what ``record`` would create."""
    if existing.workflow != record.workflow or not serde.same_json(existing.params, record.params):
        raise InstanceAlreadyExistsError(
            f"instance {shown(record.id)} exists with another workflow or other params"
        )


def _encode_cursor(record: InstanceRecord) -> str:
    return base64.urlsafe_b64encode(json.dumps([record.created_at, record.id]).encode()).decode()


def _decode_cursor(cursor: str | None) -> tuple[float, str] | None:
    if cursor is None:
        return None
    try:
        created_at, instance_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        # Only what _encode_cursor writes: a number (not a bool or a string) and a valid id.
        if isinstance(created_at, bool) or not isinstance(created_at, int | float):
            raise TypeError("created_at is not a number")
        if not 0 <= created_at <= LATEST_EPOCH:  # NaN fails this too
            raise ValueError("created_at out of range")
        return float(created_at), check_instance_id(instance_id)
    except (ValueError, TypeError, RecursionError, binascii.Error, InvalidInstanceIdError):
        raise InvalidConfigError("cursor is not one this API returned") from None
