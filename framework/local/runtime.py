"""``LocalRuntime``: the whole stack on moto, driven like Lambda's event source mapping would drive it.

It creates the table, queues and bucket from ``template.yaml``, calls the worker and sweeper handlers
that the template names (through their import paths), and by default runs on a virtual clock that
moto's SQS delays and visibility timeouts follow too, so hours of sleeps pass in milliseconds.
"""

from __future__ import annotations

import heapq
import logging
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Collection, Iterable
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, Literal, Self

from framework.api.registry import REGISTRY, Registry, Workflow
from framework.backends.blobs import S3Blobs
from framework.backends.dynamodb import INSTANCE_IS_NEW, DynamoStore
from framework.backends.dynamodb_items import INSTANCE_SK
from framework.backends.environment import Environment, Settings, use
from framework.backends.queue import SqsQueue
from framework.core.clock import Clock, SystemClock, VirtualClock
from framework.core.durations import Duration, parse_duration
from framework.core.faults import CHILD_POINTS, LIMIT_POINTS, POINTS, SCHEDULE_POINTS, injected
from framework.core.logs import logger
from framework.local.eventsource import Handler, LocalContext, Poller, delete_done, import_handler, sqs_record
from framework.local.resources import create_resources
from framework.local.sweeps import next_sweep
from framework.local.template import FunctionSpec, Stack, load_stack
from framework.local.triggers import BUS, UPLOADS, put_event, set_environ, wire_triggers
from framework.manage.client import WorkflowClient

WORK_QUEUE = "WorkQueue"
log = logging.getLogger(__name__)


class SimulatedCrash(BaseException):
    """Raised by an injected fault: the invocation dies where it stands, as if the process ended."""


@dataclass
class _Fault:
    point: str
    match: dict[str, Any]
    skip: int


class LocalRuntime:
    """The local harness for tests, the demo and users. Use it as a context manager.

    The framework logs at ``log_level`` while the runtime is open (default: ``POWERTOOLS_LOG_LEVEL``,
    else WARNING, so a local run prints only what went wrong), and at its previous
    level after.
    """

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
        log_level: str | None = None,
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
        # Local runs are quiet: WARNING unless asked for here or through Powertools' variables.
        self._log_level = (log_level or os.environ.get("POWERTOOLS_LOG_LEVEL") or "WARNING").upper()
        if not isinstance(logging.getLevelName(self._log_level), int):
            raise ValueError(f"log_level must be a logging level name such as 'INFO', not {log_level!r}")
        self._stack = load_stack(template, prefix=prefix or f"local-{uuid.uuid4().hex[:8]}")
        self._exit = ExitStack()
        self._due: list[float] = []  # times at which some message may become visible
        self._unwatched: dict[str, float] = {}  # instances created that the sweeper has yet to look at
        self._faults: list[_Fault] = []
        self.aws_calls: Counter[str] = Counter()
        self.invocations: Counter[str] = Counter()
        self.crashes = 0
        self.fault_hits: Counter[str] = Counter()  # fault points reached inside invocations
        self._last_sweep = float("-inf")
        # The function invoking on this thread, if any: faults fire only inside handler invocations.
        self._local = threading.local()
        self._handlers: dict[str, Handler] = {}

    # -- set-up ----------------------------------------------------------------------------------
    def __enter__(self) -> Self:
        try:
            self._start()
        except BaseException:
            self._exit.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._exit.close()

    def _start(self) -> None:
        was = logger.log_level
        logger.setLevel(self._log_level)
        self._exit.callback(logger.setLevel, was)
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
        # Set-up and the runtime's own look-ups go uncounted; the event source mapping's receives and
        # deletes are counted, as AWS bills them.
        quiet = self._session()
        self._clients = {
            s: quiet.client(s, endpoint_url=self.endpoint_for(s)) for s in ("dynamodb", "sqs", "s3")
        }
        self._poller = self.boto3_client("sqs")
        engine_session = self._session()
        self._hook(engine_session)
        engine = {
            s: engine_session.client(s, endpoint_url=self.endpoint_for(s)) for s in ("dynamodb", "sqs", "s3")
        }
        stack = self._stack
        create_resources(stack, self._clients["dynamodb"], self._clients["sqs"], self._clients["s3"])
        self._clients["events"] = quiet.client("events", endpoint_url=self.endpoint_for("events"))
        wire_triggers(stack, self._clients["s3"], self._clients["events"])
        self._exit.enter_context(set_environ({"UPLOADS_BUCKET": stack.physical.get(UPLOADS)}))
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
        functions = self.functions = stack.functions()
        self._worker = _one(f for f in functions if any(e["Queue"] == WORK_QUEUE for e in f.sqs_events))
        self._sweeper = _one(f for f in functions if f.schedules)
        # Every SQS event source of the template gets a poller: the work queue's and the inbox's.
        self._pollers = [
            Poller(f, e["Queue"], e["BatchSize"], int(self._queue_attribute(e["Queue"], "VisibilityTimeout")))
            for f in functions
            for e in f.sqs_events
        ]
        # Import the polled and scheduled handlers now, so that a broken one fails at start; others
        # (the API's) are imported when first invoked.
        for f in [*(p.function for p in self._pollers), self._sweeper]:
            self._handler(f)

    def endpoint_for(self, service: str) -> str | None:
        """The endpoint of ``service`` (``dynamodb``, ``sqs``, ``s3``): ``endpoint_url``, or None for moto
        in this process. A subclass may put one service elsewhere (the tests run the table on dynalite)."""
        return self._endpoint

    def _session(self) -> Any:
        """A boto3 session for the runtime's clients (a subclass may hook how requests are sent)."""
        import boto3

        return boto3.Session(region_name=self._region)

    def _queue_attribute(self, logical: str, name: str) -> str:
        attrs = self._clients["sqs"].get_queue_attributes(
            QueueUrl=self._stack.urls[logical], AttributeNames=[name]
        )
        return str(attrs["Attributes"][name])

    # -- botocore hooks --------------------------------------------------------------------------
    def _count(self, event_name: str, **kwargs: Any) -> None:
        service, operation = event_name.split(".", 2)[1:]
        self.aws_calls[f"{service}.{operation}"] += 1

    def _hook(self, session: Any) -> None:
        """Count the calls of ``session``'s clients, and note the sends and creates they make."""
        session.events.register("before-call.*.*", self._count)
        for operation in ("SendMessage", "SendMessageBatch"):
            session.events.register(f"before-parameter-build.sqs.{operation}", self._track_send)
        for operation in ("PutItem", "TransactWriteItems"):
            session.events.register(f"before-parameter-build.dynamodb.{operation}", self._track_create)

    def _track_create(self, params: dict[str, Any], **_: Any) -> None:
        """Note each instance created, which the sweeper must look at once (see ``next_sweep``)."""
        puts = [t["Put"] for t in params.get("TransactItems", []) if "Put" in t] or [params]
        for put in puts:
            item = put.get("Item", {})
            if (
                put.get("ConditionExpression") == INSTANCE_IS_NEW
                and item.get("sk", {}).get("S") == INSTANCE_SK
            ):
                self._unwatched[item["pk"]["S"]] = float(item["created_at"]["N"])

    def _track_send(self, params: dict[str, Any], **_: Any) -> None:
        for message in params.get("Entries", [params]):  # SendMessageBatch, or SendMessage
            heapq.heappush(self._due, self.clock.now() + int(message.get("DelaySeconds", 0)))

    def _fault(self, name: str, info: dict[str, Any]) -> None:
        if getattr(self._local, "invoking", None) is None:
            return  # faults stand for a dying Lambda: the client's own calls are left alone
        self.fault_hits[name] += 1
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

    @property
    def uploads_bucket(self) -> str:
        """The uploads bucket: a trigger's ``{"s3": {"bucket": "uploads"}}`` names it (docs/triggers.md)."""
        return self._stack.physical[UPLOADS]

    @property
    def event_bus_name(self) -> str:
        return self._stack.physical[BUS]

    def put_object(self, key: str, body: bytes | str = b"", *, bucket: str | None = None) -> None:
        """Put an object (into the uploads bucket by default); its notification reaches the inbox, and
        ``run_until_idle`` starts the workflows it triggers."""
        data = body.encode() if isinstance(body, str) else body
        self.boto3_client("s3").put_object(Bucket=bucket or self.uploads_bucket, Key=key, Body=data)

    def put_event(
        self, source: str, detail_type: str, detail: Any = None, *, resources: list[str] | None = None
    ) -> str:
        """Put an event on the stack's bus (it reaches the inbox as on AWS); return its id."""
        client = self.boto3_client("events")
        return put_event(client, self.event_bus_name, source, detail_type, detail or {}, resources)

    def boto3_client(self, service: str) -> Any:
        """A client on the runtime's endpoint (counted in ``aws_calls``), for tests and examples."""
        session = self._session()
        self._hook(session)
        return session.client(service, endpoint_url=self.endpoint_for(service))

    def crash_at(self, point: str, *, skip: int = 0, **match: Any) -> None:
        """Kill the invocation at fault point ``point`` (see ``framework.core.faults.POINTS``) as if its
        process died there: the next time it is reached with info equal to ``match`` (for example
        ``name="verify"``), after ``skip`` matching passes. Each call arms one crash."""
        known = POINTS + CHILD_POINTS + LIMIT_POINTS + SCHEDULE_POINTS
        if point not in known:
            raise ValueError(f"unknown fault point {point!r}; known: {', '.join(known)}")
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

    def _scheduled_sweep(self) -> None:
        """The schedule's run: a run that dies is a Lambda error, and the next run tries again."""
        try:
            self.sweep()
        except SimulatedCrash:
            self.crashes += 1
        except Exception:
            log.exception("sweeper run failed; the next run tries again")

    def invoke(self, function: FunctionSpec | str, event: dict[str, Any]) -> Any:
        """Call a function of the template (one of ``functions``, or its logical id) with ``event``, as
        Lambda would: its ``Handler`` import path, and a ``LocalContext`` whose deadline is the function's
        ``Timeout``. What the handler raises propagates."""
        if isinstance(function, str):
            found = [f for f in self.functions if f.logical_id == function]
            if not found:
                raise ValueError(f"no function {function!r} in the template")
            function = found[0]
        return self._invoke(function, event)

    def run_forever(
        self,
        stop: threading.Event,
        *,
        queues: Collection[str] | None = None,
        sweep_every: float | None = None,
        idle: float = 0.2,
    ) -> None:
        """Poll as the event source mappings and the sweeper's schedule do, on the real clock, until
        ``stop`` is set: deliver batches from ``queues`` (logical ids; default: every SQS event source),
        and run the sweeper at once, then every ``sweep_every`` seconds (None: never). A round that
        delivers nothing waits ``idle`` seconds. A failing AWS call is logged and the loop goes on.

        For ``workflows dev``. ``invoke`` may run on other threads meanwhile; the handlers themselves
        decide whether concurrent invocations are safe (Lambda runs one at a time per container)."""
        if self._virtual:
            raise ValueError("run_forever needs the real clock: the virtual clock moves only in advance()")
        pollers = [p for p in self._pollers if queues is None or p.queue in queues]
        next_sweep = time.monotonic()
        while not stop.is_set():
            self._due.clear()  # due times steer _pump, not this loop: do not let them pile up
            delivered = False
            try:
                if sweep_every is not None and time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + sweep_every
                    self.sweep()
                for poller in pollers:
                    delivered = self._deliver(poller) or delivered
            except Exception as exc:  # the endpoint is down or refuses: keep polling, as Lambda does
                log.warning("local runtime: %s: %s; trying again in 1 s", type(exc).__name__, exc)
                stop.wait(1.0)
                continue
            if not delivered:
                stop.wait(idle)

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
            sweep_at = self._next_sweep(schedules=until is not None)  # a schedule is never idle
            if sweep_at is not None:
                candidates.append(sweep_at)
            nxt = min(candidates, default=None)
            if nxt is None or (until is not None and nxt > until):
                break
            self._wait_until(nxt)
            if sweep_at is not None and nxt >= sweep_at:
                self._scheduled_sweep()
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

    def _next_sweep(self, *, schedules: bool = True) -> float | None:
        """When the scheduled sweeper would next find work: like its schedule, at most once a minute.
        With ``schedules``, a schedule's next fire is work too (``advance`` fires them)."""
        return next_sweep(
            self._quiet_store,
            self._settings,
            self._last_sweep,
            self.clock.now(),
            self._unwatched,
            registry=self._registry if schedules else None,
        )

    def _wait_until(self, when: float) -> None:
        if isinstance(self.clock, VirtualClock):
            self.clock.set(when)
        else:
            time.sleep(max(0.0, when - self.clock.now()))

    def _deliver(self, poller: Poller) -> bool:
        sqs, url = self._poller, self._stack.urls[poller.queue]
        received = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=min(poller.batch_size, 10),
            MessageSystemAttributeNames=["All"],
            # Short polls: a long poll would hold a serialised endpoint (workflows dev) for its wait.
            WaitTimeSeconds=0,
            VisibilityTimeout=poller.visibility,
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
        delete_done(sqs, url, received, failed)
        if failed:
            # They come back once the visibility timeout has passed (moto: strictly after it).
            heapq.heappush(self._due, now + poller.visibility + 0.001)
        return True

    def _handler(self, function: FunctionSpec) -> Handler:
        if function.logical_id not in self._handlers:
            self._handlers[function.logical_id] = import_handler(function.handler)
        return self._handlers[function.logical_id]

    def _invoke(self, function: FunctionSpec, event: dict[str, Any]) -> Any:
        handler = self._handler(function)
        self.invocations[function.logical_id] += 1
        context = LocalContext(function.logical_id, self.clock, self.clock.now() + function.timeout)
        self._local.invoking = function.logical_id
        try:
            return handler(event, context)
        finally:
            self._local.invoking = None


def _one(functions: Iterable[FunctionSpec]) -> FunctionSpec:
    found = list(functions)
    if len(found) != 1:
        raise ValueError(f"template.yaml must define exactly one such function, found {len(found)}")
    return found[0]


__all__ = ["LocalRuntime", "SimulatedCrash", "Stack"]
