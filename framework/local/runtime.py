"""``LocalRuntime``: the whole stack on moto, driven like Lambda's event source mapping would drive it.

It creates the table, queues and bucket from ``template.yaml``, calls the worker and sweeper handlers
that the template names (through their import paths), and by default runs on a virtual clock that
moto's SQS delays and visibility timeouts follow too, so hours of sleeps pass in milliseconds.
"""

from __future__ import annotations

import contextlib
import heapq
import importlib
import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, Literal

from framework.blobs import S3Blobs
from framework.client import WorkflowClient
from framework.clock import Clock, SystemClock, VirtualClock
from framework.durations import Duration, parse_duration
from framework.dynamodb import DynamoStore
from framework.environment import Environment, Settings, use
from framework.faults import POINTS, injected
from framework.local.template import FunctionSpec, Stack, load_stack
from framework.queue import SqsQueue
from framework.registry import REGISTRY, Registry, Workflow

WORK_QUEUE = "WorkQueue"
FAR_FUTURE = 200 * 365 * 86400.0
SWEEP_EVERY = 60.0  # the template's schedule: rate(1 minute)
Handler = Callable[[dict[str, Any], Any], Any]


class SimulatedCrash(BaseException):
    """Raised by an injected fault: the invocation dies where it stands, as if the process ended."""


@dataclass
class _Fault:
    point: str
    match: dict[str, Any]
    skip: int


@dataclass(frozen=True)
class _Poller:
    """What Lambda's event source mapping does for one function and one queue."""

    function: FunctionSpec
    queue: str
    batch_size: int
    visibility: int


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


class LocalRuntime:
    """The local harness for tests, the demo and users. Use it as a context manager."""

    def __init__(
        self,
        workflows: Iterable[Workflow] | None = None,
        *,
        clock: Literal["virtual", "real"] | None = None,
        endpoint_url: str | None = None,
        template: str | None = None,
        region: str = "us-east-1",
        prefix: str | None = None,
        settings: Settings | None = None,
    ) -> None:
        clock = clock or ("real" if endpoint_url else "virtual")
        if clock == "virtual" and endpoint_url:
            raise ValueError(
                "the virtual clock needs in-process moto: a separate server keeps real time; "
                "use clock='real' with endpoint_url"
            )
        if clock not in ("virtual", "real"):
            raise ValueError(f"clock must be 'virtual' or 'real', not {clock!r}")
        self.clock: Clock = VirtualClock() if clock == "virtual" else SystemClock()
        self._virtual = clock == "virtual"
        self._endpoint = endpoint_url
        self._region = region
        self._registry = Registry(workflows) if workflows is not None else REGISTRY
        self._settings = settings or Settings()
        self._stack = load_stack(template, prefix=prefix or f"local-{uuid.uuid4().hex[:8]}")
        self._exit = ExitStack()
        self._due: list[float] = []  # times at which some message may become visible
        self._faults: list[_Fault] = []
        self.aws_calls: Counter[str] = Counter()
        self.invocations: Counter[str] = Counter()
        self.crashes = 0
        self._last_sweep = float("-inf")
        self._invoking: str | None = None

    # -- set-up ----------------------------------------------------------------------------------
    def __enter__(self) -> LocalRuntime:
        try:
            self._start()
        except BaseException:
            self._exit.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._exit.close()

    def _start(self) -> None:
        for key, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": self._region,
        }.items():
            os.environ.setdefault(key, value)
        if self._endpoint is None:
            from moto import mock_aws

            self._exit.enter_context(mock_aws())
            if self._virtual:
                from framework.local.motoclock import follow_clock

                self._exit.enter_context(follow_clock(self.clock))
        import boto3

        # Set-up and the runtime's own look-ups go uncounted; the event source mapping's receives and
        # deletes are counted, as AWS bills them.
        quiet = boto3.Session(region_name=self._region)
        self._clients = {s: quiet.client(s, endpoint_url=self._endpoint) for s in ("dynamodb", "sqs", "s3")}
        self._poller = self.boto3_client("sqs")
        engine_session = boto3.Session(region_name=self._region)
        engine_session.events.register("before-call.*.*", self._count)
        engine_session.events.register("before-parameter-build.sqs.SendMessage", self._track_send)
        engine = {s: engine_session.client(s, endpoint_url=self._endpoint) for s in ("dynamodb", "sqs", "s3")}
        self._create_resources()
        stack = self._stack
        self.env = Environment(
            store=DynamoStore(engine["dynamodb"], stack.physical["Table"], shards=self._settings.shards),
            queue=SqsQueue(engine["sqs"], stack.urls[WORK_QUEUE]),
            blobs=S3Blobs(engine["s3"], stack.physical["ResultsBucket"]),
            clock=self.clock,
            registry=self._registry,
            settings=self._settings,
        )
        self._exit.enter_context(use(self.env))
        self._exit.enter_context(injected(self._fault))
        self.client = WorkflowClient(environment=self.env)
        # The runtime's own look at the sweeper index is not the application's: keep it out of aws_calls.
        self._quiet_store = DynamoStore(
            self._clients["dynamodb"], stack.physical["Table"], shards=self._settings.shards
        )
        functions = stack.functions()
        self._worker = _one(f for f in functions if any(e["Queue"] == WORK_QUEUE for e in f.sqs_events))
        self._sweeper = _one(f for f in functions if f.schedules)
        # Every SQS event source of the template gets a poller: the work queue's and the inbox's.
        self._pollers = [
            _Poller(
                f, e["Queue"], e["BatchSize"], int(self._queue_attribute(e["Queue"], "VisibilityTimeout"))
            )
            for f in functions
            for e in f.sqs_events
        ]
        self._handlers = {
            f.logical_id: _import_handler(f.handler)
            for f in {p.function.logical_id: p.function for p in self._pollers}.values()
        } | {self._sweeper.logical_id: _import_handler(self._sweeper.handler)}

    def _create_resources(self) -> None:
        stack, db, sqs, s3 = self._stack, self._clients["dynamodb"], self._clients["sqs"], self._clients["s3"]
        for logical, props in stack.of_type("AWS::DynamoDB::Table").items():
            name = stack.physical[logical] = f"{stack.prefix}-{logical}"
            args: dict[str, Any] = {
                k: stack.resolve(props[k]) for k in ("AttributeDefinitions", "KeySchema") if k in props
            }
            if props.get("GlobalSecondaryIndexes"):
                args["GlobalSecondaryIndexes"] = stack.resolve(props["GlobalSecondaryIndexes"])
            # An existing table belongs to a local stack kept by a long-running endpoint: reuse it.
            with contextlib.suppress(db.exceptions.ResourceInUseException):
                db.create_table(TableName=name, BillingMode="PAY_PER_REQUEST", **args)
        queues = stack.of_type("AWS::SQS::Queue")
        for logical in queues:  # first all queues, then their redrive policies, which refer to each other
            name = stack.physical[logical] = f"{stack.prefix}-{logical}"
            url = stack.urls[logical] = sqs.create_queue(QueueName=name)["QueueUrl"]
            stack.arns[logical] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
                "Attributes"
            ]["QueueArn"]
        for logical, props in queues.items():
            attributes: dict[str, str] = {
                key: str(stack.resolve(props[key]))
                for key in ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds")
                if key in props
            }
            if "RedrivePolicy" in props:
                attributes["RedrivePolicy"] = json.dumps(stack.resolve(props["RedrivePolicy"]))
            if attributes:
                sqs.set_queue_attributes(QueueUrl=stack.urls[logical], Attributes=attributes)
        for logical in stack.of_type("AWS::S3::Bucket"):
            name = stack.physical[logical] = f"{stack.prefix}-{logical}".lower()
            s3.create_bucket(Bucket=name)

    def _queue_attribute(self, logical: str, name: str) -> str:
        attrs = self._clients["sqs"].get_queue_attributes(
            QueueUrl=self._stack.urls[logical], AttributeNames=[name]
        )
        return str(attrs["Attributes"][name])

    # -- botocore hooks --------------------------------------------------------------------------
    def _count(self, event_name: str, **kwargs: Any) -> None:
        service, operation = event_name.split(".", 2)[1:]
        self.aws_calls[f"{service}.{operation}"] += 1

    def _track_send(self, params: dict[str, Any], **_: Any) -> None:
        heapq.heappush(self._due, self.clock.now() + int(params.get("DelaySeconds", 0)))

    def _fault(self, name: str, info: dict[str, Any]) -> None:
        if self._invoking is None:
            return  # faults stand for a dying Lambda: the client's own calls are left alone
        for fault in self._faults:
            if fault.point == name and all(info.get(k) == v for k, v in fault.match.items()):
                fault.skip -= 1
                if fault.skip < 0:
                    self._faults.remove(fault)
                    raise SimulatedCrash(f"injected crash at {name} {info}")
                return

    # -- public API ------------------------------------------------------------------------------
    @property
    def queue_url(self) -> str:
        return self._stack.urls[WORK_QUEUE]

    @property
    def inbox_url(self) -> str:
        return self._stack.urls["InboxQueue"]

    @property
    def dead_letter_queue_url(self) -> str:
        return self._stack.urls["WorkDeadLetterQueue"]

    @property
    def table_name(self) -> str:
        return self._stack.physical["Table"]

    @property
    def bucket_name(self) -> str:
        return self._stack.physical["ResultsBucket"]

    def boto3_client(self, service: str) -> Any:
        """A client on the runtime's endpoint (counted in ``aws_calls``), for tests and examples."""
        import boto3

        session = boto3.Session(region_name=self._region)
        session.events.register("before-call.*.*", self._count)
        session.events.register("before-parameter-build.sqs.SendMessage", self._track_send)
        return session.client(service, endpoint_url=self._endpoint)

    def crash_at(self, point: str, *, skip: int = 0, **match: Any) -> None:
        """Kill the invocation at fault point ``point`` (see ``framework.faults.POINTS``) as if its
        process died there: the next time it is reached with info equal to ``match`` (for example
        ``name="verify"``), after ``skip`` matching passes. Each call arms one crash."""
        if point not in POINTS:
            raise ValueError(f"unknown fault point {point!r}; known: {', '.join(POINTS)}")
        self._faults.append(_Fault(point, match, skip))

    def run_until_idle(self, max_deliveries: int = 100_000) -> None:
        """Deliver messages and jump the clock to each next due one, until only instances that wait
        with no deadline are left."""
        self._pump(None, max_deliveries)

    def advance(self, duration: Duration) -> None:
        """Move the clock by ``duration``, processing what comes due on the way, in order of due time."""
        self._pump(self.clock.now() + parse_duration(duration), 100_000)

    def sweep(self) -> Any:
        """Run the sweeper handler once, as its schedule would."""
        self._last_sweep = self.clock.now()
        event = {"source": "aws.events", "detail-type": "Scheduled Event", "time": "", "detail": {}}
        return self._invoke(self._sweeper, event)

    # -- the event source mapping ----------------------------------------------------------------
    def _pump(self, until: float | None, max_deliveries: int) -> None:
        for _ in range(max_deliveries):
            if self._deliver_batch():
                continue
            now = self.clock.now()
            # On real time a message may become visible a moment after its due time: keep looking
            # for a while before giving up on it.
            settle = 0.0 if self._virtual else 2.0
            while self._due and self._due[0] <= now - settle:
                heapq.heappop(self._due)
            candidates = [max(self._due[0], now + settle / 40)] if self._due else []
            sweep_at = self._next_sweep()
            if sweep_at is not None:
                candidates.append(sweep_at)
            nxt = min(candidates, default=None)
            if nxt is None or (until is not None and nxt > until):
                break
            self._wait_until(nxt)
            if sweep_at is not None and nxt >= sweep_at:
                self.sweep()
        else:
            raise RuntimeError(f"still busy after {max_deliveries} deliveries: is a workflow looping?")
        if until is not None:
            self._wait_until(until)
            self._drain()

    def _drain(self) -> None:
        while self._deliver_batch():
            pass

    def _deliver_batch(self) -> bool:
        """One receive on each queue with messages ready; True if any batch was delivered."""
        delivered = False
        for poller in self._pollers:
            delivered = self._deliver(poller) or delivered
        return delivered

    def _next_sweep(self) -> float | None:
        """When the scheduled sweeper would next find work: like its schedule, at most once a minute."""
        due = self._quiet_store.due_instances(self.clock.now() + FAR_FUTURE, 1)
        if not due:
            return None
        return max(
            due[0].due_at + self._settings.sweep_grace, self._last_sweep + SWEEP_EVERY, self.clock.now()
        )

    def _wait_until(self, when: float) -> None:
        if isinstance(self.clock, VirtualClock):
            self.clock.set(when)
        else:
            time.sleep(max(0.0, when - self.clock.now()))

    def _deliver(self, poller: _Poller) -> bool:
        sqs, url = self._poller, self._stack.urls[poller.queue]
        received = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=min(poller.batch_size, 10),
            MessageSystemAttributeNames=["All"],
            WaitTimeSeconds=0,
        ).get("Messages", [])
        if not received:
            return False
        now = self.clock.now()
        arn = self._stack.arns[poller.queue]
        records = [sqs_record(m, arn, self._region) for m in received]
        try:
            response = self._invoke(poller.function, {"Records": records}) or {}
            failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
        except SimulatedCrash:
            self.crashes += 1
            failed = {m["MessageId"] for m in received}
        except Exception:  # a function error: Lambda returns the whole batch to the queue
            failed = {m["MessageId"] for m in received}
        done = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
            for i, m in enumerate(received)
            if m["MessageId"] not in failed
        ]
        if done:
            sqs.delete_message_batch(QueueUrl=url, Entries=done)
        if failed:
            # They come back once the visibility timeout has passed (moto: strictly after it).
            heapq.heappush(self._due, now + poller.visibility + 0.001)
        return True

    def _invoke(self, function: FunctionSpec, event: dict[str, Any]) -> Any:
        self.invocations[function.logical_id] += 1
        context = LocalContext(function.logical_id, self.clock, self.clock.now() + function.timeout)
        self._invoking = function.logical_id
        try:
            return self._handlers[function.logical_id](event, context)
        finally:
            self._invoking = None


def sqs_record(message: dict[str, Any], arn: str, region: str) -> dict[str, Any]:
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


def _import_handler(path: str) -> Handler:
    module, _, name = path.rpartition(".")
    handler: Handler = getattr(importlib.import_module(module), name)
    return handler


def _one(functions: Iterable[FunctionSpec]) -> FunctionSpec:
    found = list(functions)
    if len(found) != 1:
        raise ValueError(f"template.yaml must define exactly one such function, found {len(found)}")
    return found[0]


__all__ = ["LocalContext", "LocalRuntime", "SimulatedCrash", "Stack", "sqs_record"]
