"""A fast driver for unit tests: the real worker code on the in-memory store and queue, virtual time."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

from framework.api.registry import Registry, Workflow
from framework.backends.blobs import MemoryBlobs
from framework.backends.environment import Environment, Settings
from framework.backends.memory import MemoryStore
from framework.backends.queue import MemoryQueue
from framework.backends.store import Store
from framework.core.clock import VirtualClock
from framework.core.durations import Duration, parse_duration
from framework.engine.invocation import Outcome, process_message
from framework.engine.sweeper import sweep
from framework.local.sweeps import next_sweep
from framework.manage.client import WorkflowClient


class FakeContext:
    def __init__(self, clock: VirtualClock, seconds: float) -> None:
        self._clock = clock
        self._deadline = clock.now() + seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - self._clock.now()) * 1000))


# Which store the harness runs on: the unit tier uses the fake; tests/integration reruns the same
# tests with "dynamodb" (moto in-process, the table as template.yaml defines it).
BACKEND = {"store": "memory"}


def make_store(settings: Settings) -> Store:
    if BACKEND["store"] == "memory":
        return MemoryStore()
    import boto3

    from framework.backends.dynamodb import DynamoStore
    from framework.local.template import load_stack

    stack = load_stack()
    client = boto3.client("dynamodb", region_name="us-east-1")
    name = f"harness-{uuid.uuid4().hex[:8]}"
    props = stack.of_type("AWS::DynamoDB::Table")["Table"]
    keys = ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes")
    client.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST", **{k: stack.resolve(props[k]) for k in keys}
    )
    return DynamoStore(client, name, shards=settings.shards)


class CountingStore:
    """Delegates to a store and counts the calls made through it."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return attr(*args, **kwargs)

        return counted


class Harness:
    def __init__(
        self, *workflows: Workflow, settings: Settings | None = None, invocation_seconds: float = 300
    ):
        self.clock = VirtualClock(start=1_700_000_000.0)
        self.store: Any = CountingStore(make_store(settings or Settings()))
        self.queue = MemoryQueue(self.clock)
        self.blobs = MemoryBlobs()
        self.env = Environment(
            store=self.store,
            queue=self.queue,
            clock=self.clock,
            registry=Registry(workflows),
            blobs=self.blobs,
            settings=settings or Settings(),
        )
        self.client = WorkflowClient(environment=self.env)
        self.outcomes: Counter[Outcome] = Counter()
        self.invocation_seconds = invocation_seconds
        self.last_sweep = float("-inf")

    def deliver(self, body: str) -> Outcome:
        outcome = process_message(body, FakeContext(self.clock, self.invocation_seconds), self.env)
        self.outcomes[outcome] += 1
        return outcome

    def run_due(self) -> int:
        """Deliver every message due now (and those they send that are due now too)."""
        delivered = 0
        while batch := self.queue.due():
            for body in batch:
                self.deliver(body)
                delivered += 1
        return delivered

    def run_until_idle(self, limit: int = 100_000) -> None:
        """Deliver messages, and run the sweeper on its schedule, until nothing is left to do."""
        for _ in range(limit):
            self.run_due()
            nxt = self._next(schedules=False)  # a schedule is never idle
            if nxt is None:
                return
            self._move_to(*nxt)
        raise AssertionError("still busy")

    def advance(self, duration: Duration) -> None:
        end = self.clock.now() + parse_duration(duration)
        while True:
            self.run_due()
            nxt = self._next()
            if nxt is None or nxt[0] > end:
                break
            self._move_to(*nxt)
        self.clock.set(end)
        self.run_due()

    def _next(self, *, schedules: bool = True) -> tuple[float, bool] | None:
        """When something happens next: a message comes due (False), or the sweeper, on its one-minute
        schedule, finds a parked or lost instance or a schedule's fire (True)."""
        message = self.queue.next_due()
        # Uncounted (the inner store): the sweeper's schedule is not the app's.
        registry = self.env.registry if schedules else None
        sweep_at = next_sweep(
            self.store.inner, self.env.settings, self.last_sweep, self.clock.now(), registry=registry
        )
        if sweep_at is not None and (message is None or sweep_at < message):
            return sweep_at, True
        return None if message is None else (message, False)

    def _move_to(self, when: float, sweeps: bool) -> None:
        self.clock.set(max(when, self.clock.now()))
        if sweeps:
            self.last_sweep = self.clock.now()
            sweep(self.env)

    def start(self, workflow: str, params: Any = None, **kwargs: Any) -> Any:
        return self.client.create(workflow, params, **kwargs)


def fail_once(obj: Any, name: str, error: Exception) -> None:
    """Make ``obj.<name>`` raise ``error`` at its next call, then work as before."""
    real, failures = getattr(obj, name), iter([error])

    def flaky(*args: Any, **kwargs: Any) -> Any:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return real(*args, **kwargs)

    setattr(obj, name, flaky)


def journal_items(store: Store, instance_id: str, run: int = 1) -> list[Any]:
    """The journal items of run ``run`` of the instance that has the id now (not its ``tail``)."""
    from framework.core.records import RunKey

    record = store.get_instance(instance_id)
    assert record is not None, instance_id
    return store.load_journal(instance_id, RunKey(record.incarnation, run))
