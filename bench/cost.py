"""Dollars per million executions of the cost model's reference workload (start, 5 steps, a 1-hour sleep,
5 more steps, complete: ``bench.workload.chain`` with ``REFERENCE``), from calls counted on
LocalRuntime, write and read units from item sizes (``bench.units``, GSI writes included) and the dated
price table (``bench.prices``), broken down by service and by operation.

The checked total is what one execution makes: DynamoDB units, SQS requests, Lambda requests and
duration (at an assumed billed time), S3 requests if any, plus the sweeper's schedule shared by
``EXECUTIONS_PER_MONTH`` executions. Beside it, not in it: the purge of the journal when TTL removes the
instance item at the end of retention, storage and point-in-time recovery for the retention,
CloudWatch Logs, and the event source mappings' empty receives, a fixed cost per queue.

Each delivered message is priced unbatched (a ReceiveMessage, a DeleteMessageBatch and an invocation of
its own), as one instance runs alone here; batching under load lowers these. The resume after the
hour runs in a container that has not seen the instance.
"""

from __future__ import annotations

import io
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import boto3

from bench.counts import WORKER
from bench.prices import (
    DYNAMODB_ITEM_OVERHEAD,
    DYNAMODB_PITR_GB_MONTH,
    DYNAMODB_STORAGE_GB_MONTH,
    LAMBDA_GB_S_ARM64,
    LAMBDA_GB_S_X86,
    LAMBDA_REQUEST,
    LOGS_INGEST_GB,
    MILLION,
    READ_UNIT,
    S3_GET,
    S3_PUT,
    SQS_REQUEST,
    WRITE_UNIT,
    prices,
)
from bench.report import Check, Section
from bench.retry import COLD
from bench.units import Charge, Index, UnitMeter, Usage, item_size
from bench.workload import CHAIN, chain, observe
from framework.backends.dynamodb import SWEEP_MARK_KEY
from framework.backends.environment import Settings
from framework.local import LocalRuntime
from framework.local.sweeps import SWEEP_EVERY
from framework.local.template import find_template, parse_template

REFERENCE = {"steps": 10, "sleep_after": 5, "sleep": "1 hour"}
TARGET = 15.0  # issue 6: <= $15 per million executions
RUNS = 3
EXECUTIONS_PER_MONTH = 1_000_000  # the stated volume that shares the fixed costs
VOLUMES = (10_000, 100_000, EXECUTIONS_PER_MONTH, 10_000_000)
MONTH_S = 730 * 3600  # AWS bills storage per GB-month of 730 hours
# The billed duration of a worker invocation, modelled: the framework's own work, no step bodies. Each
# AWS call it makes waits on the network (DynamoDB and SQS answer in single-digit milliseconds inside a
# region; 8 ms is on the slow side of that), plus a fixed share for the handler and the replay.
CALL_MS, FIXED_MS = 8, 10
# An idle SQS event source mapping: about 5 pollers, each long-polling 20 s (AWS does not publish the
# exact rate; this is the usual figure).
IDLE_POLLERS, POLL_SECONDS = 5, 20
PLATFORM_LOG_BYTES = 300  # Lambda's START, END and REPORT lines per invocation (assumed)
GB = 1024**3

# shared/reference/cost-model.md, "$ per million executions" of the same reference workload.
PEERS = [
    ("AWS Step Functions Standard", "11 state transitions + 10 Lambda requests", 277.0, 277.0),
    ("AWS Lambda durable functions", "12 durable operations + data written and retained", 100.0, 100.0),
    ("Temporal Cloud", "12 actions (+10% plan)", 600.0, 660.0),
    ("Inngest, DBOS Conductor", "about 12 executions or checkpoints", 480.0, 600.0),
    ("Cloudflare Workflows", "1 invocation + about 20 CPU-ms + storage (plus a plan fee)", 1.3, 3.1),
    (
        "cost model's floor, sleep as 4 chained hops",
        "11 WU, 1 RU, ~15 SQS requests, 5 invocations",
        14.4,
        14.4,
    ),
    ("cost model's floor, one hop per sleep", "11 WU, 1 RU, ~6 SQS requests, 2 invocations", 10.0, 11.0),
]


@dataclass
class Execution:
    """One reference execution on a fresh LocalRuntime, as metered."""

    calls: Counter[str]  # every counted call from create to complete (sweeper and poller included)
    charges: list[Charge]  # every metered DynamoDB request from create to complete
    sweeps: list[tuple[Counter[str], list[Charge]]]  # each sweeper run's calls and requests
    delivered: int  # messages the event source mapping delivered to the worker
    worker_calls: int  # AWS calls the worker made while handling them
    invocations: Counter[str]
    items: list[dict[str, Any]]  # the instance's items when it completed
    indexes: list[Index]
    cleanup_calls: Counter[str] = field(default_factory=Counter)
    cleanup_charges: list[Charge] = field(default_factory=list)
    log_bytes: int = 0
    log_lines: int = 0


@contextmanager
def observe_sweeps(rt: LocalRuntime, meter: UnitMeter) -> Iterator[list[tuple[Counter[str], list[Charge]]]]:
    """Record the calls and metered requests of each sweeper run (wraps the ``sweep`` its handler calls)."""
    import handlers.sweeper as module

    real = module.sweep
    log: list[tuple[Counter[str], list[Charge]]] = []

    def recorded(env: Any = None, context: Any = None) -> int:
        before, first = rt.aws_calls.copy(), len(meter.charges)
        try:
            return real(env, context=context)
        finally:
            log.append((rt.aws_calls - before, meter.charges[first:]))

    with mock.patch.object(module, "sweep", recorded):
        yield log


@contextmanager
def captured_logs() -> Iterator[io.StringIO]:
    """The framework's log lines at INFO, the template's default LogLevel, into a buffer."""
    from framework.core.logs import logger

    level, buffer = logger.log_level, io.StringIO()
    handler = logger.registered_handler
    stream = handler.setStream(buffer)
    logger.setLevel("INFO")
    try:
        yield buffer
    finally:
        logger.setLevel(level)
        handler.setStream(stream)


def stream_removal(instance_id: str) -> dict[str, Any]:
    """The stream record of TTL removing an instance item, as the cleanup's event source delivers it."""
    return {
        "eventID": f"{instance_id}-ttl",
        "eventName": "REMOVE",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "userIdentity": {"type": "Service", "principalId": "dynamodb.amazonaws.com"},
        "dynamodb": {
            "Keys": {"pk": {"S": instance_id}, "sk": {"S": "instance"}},
            "SequenceNumber": "1",
            "SizeBytes": 40,
            "StreamViewType": "KEYS_ONLY",
        },
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2026",
    }


def run_reference(*, cold: bool = True, logs: bool = False) -> Execution:
    """One reference execution from create to complete, then its purge at the end of retention. With
    ``cold``, the resume after the sleep runs in a container that has not seen the instance (an hour
    is longer than Lambda keeps an idle container), so the journal cache does not help it."""
    instance_id = "reference-0"
    settings = COLD if cold else Settings()
    with (
        LocalRuntime(workflows=[chain], settings=settings) as rt,
        UnitMeter(rt) as meter,
        observe(rt) as deliveries,
    ):
        capture = captured_logs() if logs else nullcontext(io.StringIO())
        with observe_sweeps(rt, meter) as sweeps, capture as out:
            mark = rt.aws_calls.copy()
            rt.client.create(CHAIN, REFERENCE, id=instance_id)
            rt.run_until_idle()
            calls = rt.aws_calls - mark
            charges = list(meter.charges)
            log_text = out.getvalue()
        status = rt.client.get(instance_id).status()
        if status.status != "complete":
            raise RuntimeError(f"the reference execution ended {status.status}: {status.error}")
        plain = boto3.client("dynamodb", region_name="us-east-1")
        pages = plain.get_paginator("query").paginate(
            TableName=rt.table_name,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": instance_id}},
        )
        items = [item for page in pages for item in page["Items"]]
        description = plain.describe_table(TableName=rt.table_name)["Table"]
        execution = Execution(
            calls,
            charges,
            list(sweeps),
            len(deliveries),
            sum(sum(d.calls.values()) for d in deliveries),
            Counter(rt.invocations),
            items,
            Index.of_table(description),
            log_bytes=len(log_text.encode()),
            log_lines=log_text.count("\n"),
        )
        # What TTL does at the end of retention (free), then the stream-driven purge, metered.
        key = {"pk": {"S": instance_id}, "sk": {"S": "instance"}}
        plain.delete_item(TableName=rt.table_name, Key=key)
        first, mark = len(meter.charges), rt.aws_calls.copy()
        response = rt.invoke("CleanupFunction", {"Records": [stream_removal(instance_id)]}) or {}
        if response.get("batchItemFailures"):
            raise RuntimeError(f"the cleanup failed: {response}")
        execution.cleanup_calls = rt.aws_calls - mark
        execution.cleanup_charges = meter.charges[first:]
        return execution


SWEEP_MARK_PK = SWEEP_MARK_KEY["pk"]["S"]


def billed_ms_of(execution: Execution) -> float:
    """The modelled billed duration of one worker invocation (see CALL_MS)."""
    invocations = execution.invocations[WORKER] or 1
    return FIXED_MS + CALL_MS * execution.worker_calls / invocations


def sweeper_queries(execution: Execution) -> list[Charge]:
    """The sweeper's own requests on every run, whatever is due: its index Queries, and the read and
    write of its mark (the item ``#sweeper``). Its schedule's fixed cost."""
    return [
        c
        for _, charges in execution.sweeps
        for c in charges
        if c.operation == "Query" or c.key.get("pk") == SWEEP_MARK_PK
    ]


def variable_charges(execution: Execution) -> list[Charge]:
    """The execution's own DynamoDB requests: all but the sweeper's Queries."""
    fixed = {id(c) for c in sweeper_queries(execution)}
    return [c for c in execution.charges if id(c) not in fixed]


def sum_usage(charges: list[Charge]) -> Usage:
    return sum((c.usage for c in charges), Usage())


def kind_of(charge: Charge) -> str:
    sk = charge.key.get("sk", "")
    if "IndexName" in charge.key:
        return f"on {charge.key['IndexName']}"
    if sk == "instance":
        return "instance item"
    if sk.startswith("j#"):
        return "journal"
    if charge.operation == "Query":
        return "a partition (the journal on resume)"
    return "other items"


@dataclass(frozen=True)
class Deployment:
    """What template.yaml deploys, as far as prices go."""

    memory_mb: int
    arch: str
    queues: int  # SQS event sources, each with its own idle pollers
    retention_days: int  # how long a finished instance is kept (the RetentionDays parameter)

    @classmethod
    def of_template(cls) -> Deployment:
        template = parse_template(find_template().read_text())
        function = template["Globals"]["Function"]
        queues = sum(
            1
            for resource in template["Resources"].values()
            if resource["Type"] == "AWS::Serverless::Function"
            for event in (resource["Properties"].get("Events") or {}).values()
            if event["Type"] == "SQS"
        )
        retention = int(template["Parameters"]["RetentionDays"]["Default"])
        return cls(int(function["MemorySize"]), str(function["Architectures"][0]), queues, retention)


@dataclass(frozen=True)
class Priced:
    """One line of the breakdown: a service and operation, what was billed, and its $ per million."""

    service: str
    what: str
    units: str
    dollars: float  # per execution


def priced(execution: Execution, deployment: Deployment) -> dict[str, Any]:
    """Price one execution. Return the checked total's lines, the fixed costs and the extras."""
    fixed_queries = sweeper_queries(execution)
    variable = variable_charges(execution)
    calls = execution.calls
    lines: list[Priced] = []

    # DynamoDB, by operation and item: table units and each GSI's writes apart.
    groups: dict[tuple[str, str], list[Charge]] = {}
    for c in variable:
        groups.setdefault((c.operation, kind_of(c)), []).append(c)
    for (op, kind), charges in sorted(groups.items()):
        usage = sum_usage(charges)
        by_index: Counter[str] = Counter()
        for c in charges:
            by_index.update(c.index_units)
        if usage.table_write_units:
            lines.append(
                Priced(
                    "DynamoDB",
                    f"{op} x{usage.calls}, {kind}: table writes",
                    f"{usage.table_write_units:g} WU",
                    usage.table_write_units * WRITE_UNIT,
                )
            )
        for index, units in sorted(by_index.items()):
            lines.append(
                Priced(
                    "DynamoDB",
                    f"{op} x{usage.calls}, {kind}: {index} writes",
                    f"{units:g} WU",
                    units * WRITE_UNIT,
                )
            )
        if usage.read_units:
            lines.append(
                Priced(
                    "DynamoDB",
                    f"{op} x{usage.calls}, {kind}",
                    f"{usage.read_units:g} RU",
                    usage.read_units * READ_UNIT,
                )
            )

    # SQS: every send, and per delivered message one receive and one delete (unbatched).
    sends = calls["sqs.SendMessage"] + calls["sqs.SendMessageBatch"]  # the sweeper sends in batches
    receives = execution.delivered
    deletes = execution.delivered
    lines += [
        Priced(
            "SQS",
            "SendMessage (start) and SendMessageBatch (the sweeper's wake-ups, one request each here)",
            f"{sends} requests",
            sends * SQS_REQUEST,
        ),
        Priced("SQS", "ReceiveMessage delivering a message", f"{receives} requests", receives * SQS_REQUEST),
        Priced("SQS", "DeleteMessageBatch after a delivery", f"{deletes} requests", deletes * SQS_REQUEST),
    ]
    invocations = execution.invocations[WORKER]
    billed_ms = billed_ms_of(execution)
    gb_s = billed_ms / 1000 * deployment.memory_mb / 1024
    duration = gb_s * (LAMBDA_GB_S_ARM64 if deployment.arch == "arm64" else LAMBDA_GB_S_X86)
    lines.append(
        Priced(
            "Lambda", "worker invocations (requests)", f"{invocations} requests", invocations * LAMBDA_REQUEST
        )
    )
    lines.append(
        Priced(
            "Lambda",
            f"worker duration at {billed_ms:.0f} ms each ({FIXED_MS} ms + {CALL_MS} ms per AWS call, "
            f"modelled), {deployment.memory_mb} MB {deployment.arch}",
            f"{invocations * gb_s:g} GB-s",
            invocations * duration,
        )
    )
    puts, gets = calls["s3.PutObject"], calls["s3.GetObject"]
    if puts or gets:
        lines.append(
            Priced("S3", "PutObject + GetObject", f"{puts} PUT, {gets} GET", puts * S3_PUT + gets * S3_GET)
        )

    # The sweeper's schedule: a fixed cost per month, shared by the month's executions.
    runs = len(execution.sweeps)
    queries_per_run = len(fixed_queries) / runs if runs else 0.0
    query_ru_per_run = sum_usage(fixed_queries).read_units / runs if runs else 0.0
    mark_wu_per_run = sum_usage(fixed_queries).write_units / runs if runs else 0.0
    sweeps_month = MONTH_S / SWEEP_EVERY
    sweeper_ms = FIXED_MS + CALL_MS * queries_per_run  # its Queries and mark reads, modelled as above
    sweeper_duration = duration / billed_ms * sweeper_ms
    sweeper_month = sweeps_month * (
        LAMBDA_REQUEST + sweeper_duration + query_ru_per_run * READ_UNIT + mark_wu_per_run * WRITE_UNIT
    )
    lines.append(
        Priced(
            "sweeper (fixed, shared)",
            f"its schedule, shared by {EXECUTIONS_PER_MONTH:,} executions a month",
            f"{sweeps_month:,.0f} runs/month x (1 request + {sweeper_ms:.0f} ms + "
            f"{queries_per_run:g} Queries "
            f"and mark reads, {query_ru_per_run:g} RU, {mark_wu_per_run:g} WU of mark writes)",
            sweeper_month / EXECUTIONS_PER_MONTH,
        )
    )

    # Not in the checked total.
    cleanup = sum_usage(execution.cleanup_charges)
    cleanup_dollars = (
        cleanup.write_units * WRITE_UNIT + cleanup.read_units * READ_UNIT + LAMBDA_REQUEST + duration
    )
    retention_months = deployment.retention_days * 86400 / MONTH_S
    table_bytes = sum(item_size(i) + DYNAMODB_ITEM_OVERHEAD for i in execution.items)
    index_bytes = sum(
        item_size(entry) + DYNAMODB_ITEM_OVERHEAD
        for index in execution.indexes
        for entry in map(index.entry, execution.items)
        if entry is not None
    )
    storage = (table_bytes + index_bytes) / GB * retention_months * DYNAMODB_STORAGE_GB_MONTH
    pitr = table_bytes / GB * retention_months * DYNAMODB_PITR_GB_MONTH
    log_bytes = execution.log_bytes + PLATFORM_LOG_BYTES * (invocations + 1)
    logs = log_bytes / GB * LOGS_INGEST_GB
    queues = deployment.queues
    idle_receives_month = queues * IDLE_POLLERS * MONTH_S / POLL_SECONDS
    return {
        "lines": lines,
        "total": sum(line.dollars for line in lines),
        "sweeper_month": sweeper_month,
        "sweeps_month": sweeps_month,
        "queries_per_run": queries_per_run,
        "duration_per_invocation": duration,
        "cleanup": cleanup,
        "cleanup_dollars": cleanup_dollars,
        "table_bytes": table_bytes,
        "index_bytes": index_bytes,
        "storage": storage,
        "pitr": pitr,
        "log_bytes": log_bytes,
        "logs": logs,
        "queues": queues,
        "idle_receives_month": idle_receives_month,
        "idle_month": idle_receives_month * SQS_REQUEST,
        "retention_days": deployment.retention_days,
    }


def cost_section(runs: int = RUNS) -> Section:
    started = time.perf_counter()
    executions = [run_reference() for _ in range(runs)]
    warm = run_reference(cold=False, logs=True)  # for its logs, and what a warm resume saves
    deployment = Deployment.of_template()
    results = [priced(e, deployment) for e in executions]
    totals = [r["total"] * MILLION for r in results]
    p = results[0]  # the runs are compared below; any one of them gives the breakdown
    total = statistics.median(totals)
    e = executions[0]
    logs = priced(warm, deployment)
    by_service: Counter[str] = Counter()
    for line in p["lines"]:
        by_service[line.service] += line.dollars * MILLION
    variable = variable_charges(e)
    usage = sum_usage(variable)
    sqs_requests = e.calls["sqs.SendMessage"] + e.calls["sqs.SendMessageBatch"] + 2 * e.delivered
    units = (
        f"{usage.write_units:g} WU ({usage.table_write_units:g} table + {usage.index_write_units:g} GSI), "
        f"{usage.read_units:g} RU, {sqs_requests} SQS requests, "
        f"{e.invocations[WORKER]} worker invocations"
    )
    warm_total = logs["total"] * MILLION
    kinds: dict[str, Usage] = {}
    for c in variable:
        kinds[kind_of(c)] = kinds.get(kind_of(c), Usage()) + c.usage
    where = "; ".join(
        f"{kind}: {u.write_units:g} WU ({u.index_write_units:g} to GSIs)"
        for kind, u in sorted(kinds.items())
        if u.write_units
    )
    per_100_ms = p["duration_per_invocation"] / billed_ms_of(e) * 100 * e.invocations[WORKER] * MILLION
    cleanup = p["cleanup"]
    stored = f"{p['table_bytes']:,} B in the table + {p['index_bytes']:,} B in GSIs"
    extras = {
        f"purge at the end of retention ({cleanup.write_units:g} WU, {cleanup.read_units:g} RU, "
        "1 invocation)": p["cleanup_dollars"],
        f"storage for {p['retention_days']} days ({stored})": p["storage"],
        f"point-in-time recovery for {p['retention_days']} days": p["pitr"],
        f"CloudWatch Logs at INFO ({logs['log_bytes']:,} B: {warm.log_lines} lines of ours + "
        f"{PLATFORM_LOG_BYTES} B per invocation)": logs["logs"],
    }
    all_in = total + sum(extras.values()) * MILLION
    checks = [
        Check(
            "$ per million executions (the cost model's basis)",
            round(total, 2),
            f"<= {TARGET:g}",
            total <= TARGET,
            f"{units}. Writes by item: {where}. {spread(totals).capitalize()}; sweeper shared by "
            f"{EXECUTIONS_PER_MONTH:,} executions a month; "
            f"the resume in a fresh container (in a warm one: ${warm_total:.2f}); each 100 ms more of "
            f"billed duration per invocation adds ${per_100_ms:.2f}",
        ),
        *[
            Check(f"  {service}", round(dollars, 2), note=f"{dollars / total:.0%} of the total")
            for service, dollars in by_service.most_common()
        ],
        *[
            Check(
                f"    {line.service}: {line.what}",
                round(line.dollars * MILLION, 2),
                note=f"{line.units}; {line.dollars * MILLION / total:.0%}",
            )
            for line in sorted(p["lines"], key=lambda line: -line.dollars)
        ],
        Check(
            "GSI write amplification, $ per million executions",
            round(usage.index_write_units * WRITE_UNIT * MILLION, 2),
            note=f"{usage.index_write_units:g} of {usage.write_units:g} WU go to indexes: "
            + ", ".join(f"{k} {v:g}" for k, v in _by_index(variable).items()),
        ),
        *[
            Check(f"not in the total: {what}", round(dollars * MILLION, 2))
            for what, dollars in extras.items()
        ],
        Check("all in: the total + the lines above, $ per million executions", round(all_in, 2)),
        Check(
            "fixed: empty receives of the event source mappings, $ per month",
            round(p["idle_month"], 2),
            note=f"{p['queues']} queues x ~{IDLE_POLLERS} pollers x 1 receive per {POLL_SECONDS} s = "
            f"{p['idle_receives_month']:,.0f} receives a month, whatever the load: per queue, not per "
            f"execution (${p['idle_month'] / EXECUTIONS_PER_MONTH * MILLION:,.2f}/M at "
            f"{EXECUTIONS_PER_MONTH:,} a month)",
        ),
        *[
            Check(
                f"sweeper's share at {volume:,} executions a month, $ per million",
                round(p["sweeper_month"] / volume * MILLION, 2),
                note=f"${p['sweeper_month']:,.3f} a month" if volume == VOLUMES[0] else "",
            )
            for volume in VOLUMES
            if volume != EXECUTIONS_PER_MONTH
        ],
        *[
            Check(
                f"peer: {name}",
                high,
                note=f"{what}; "
                + (f"${low:g} to ${high:g}" if low != high else f"${high:g}")
                + " (cost-model.md)",
            )
            for name, what, low, high in PEERS
        ],
    ]
    data = {
        "elapsed_seconds": round(time.perf_counter() - started, 1),
        "prices": prices(),
        "workload": {"params": REFERENCE, "runs": runs},
        "dollars_per_million": {
            "total": total,
            "runs": totals,
            "by_service": dict(by_service),
            "by_line": {f"{line.service}: {line.what}": line.dollars * MILLION for line in p["lines"]},
            "not_in_total": {what: dollars * MILLION for what, dollars in extras.items()},
            "all_in": all_in,
        },
        "per_execution": {
            "calls": dict(e.calls),
            "units": usage.per(1),
            "by_index": _by_index(variable),
            "by_operation": {op: u.per(1) for op, u in _by_operation(variable).items()},
            "messages_delivered": e.delivered,
            "invocations": dict(e.invocations),
            "sweeper_runs": len(e.sweeps),
            "cleanup_calls": dict(e.cleanup_calls),
            "cleanup_units": p["cleanup"].per(1),
            "item_bytes": {"table": p["table_bytes"], "indexes": p["index_bytes"]},
            "log_bytes": logs["log_bytes"],
        },
        "fixed_per_month": {
            "sweeper": p["sweeper_month"],
            "sweeper_runs": p["sweeps_month"],
            "idle_receives": p["idle_receives_month"],
            "idle_receives_dollars": p["idle_month"],
        },
        "assumptions": [
            f"Lambda: {deployment.memory_mb} MB {deployment.arch} (template.yaml Globals), billed "
            f"{FIXED_MS} ms + {CALL_MS} ms per AWS call per invocation",
            "a delivered message is priced unbatched: 1 ReceiveMessage, 1 DeleteMessageBatch, 1 invocation",
            f"fixed costs shared by {EXECUTIONS_PER_MONTH:,} executions a month",
            f"idle event source mapping: {IDLE_POLLERS} pollers x 1 long poll per {POLL_SECONDS} s per queue",
            "TTL deletes are free; the purge's writes are not; its stream reads by Lambda are free",
            "GSI writes of a transaction are charged once (they propagate after it commits)",
            "not priced: the EventBridge rule that starts the sweeper, API Gateway (a start through the "
            "HTTP API adds $1.00/M), KMS, data transfer, free tiers",
        ],
        "peers": [{"name": n, "billed": w, "low": lo, "high": hi} for n, w, lo, hi in PEERS],
    }
    return Section(
        "Cost: $ per million executions of the reference workload (start, 5 steps, a 1-hour sleep, "
        f"5 steps, complete), prices of {prices()['as_of']}",
        checks,
        data,
    )


def spread(values: list[float]) -> str:
    if max(values) == min(values):
        return f"the same in all {len(values)} runs"
    return f"median of {len(values)}; min {min(values):.2f}, max {max(values):.2f}"


def _by_index(charges: list[Charge]) -> dict[str, float]:
    found: Counter[str] = Counter()
    for c in charges:
        found.update(c.index_units)
    return {k: float(v) for k, v in sorted(found.items())}


def _by_operation(charges: list[Charge]) -> dict[str, Usage]:
    found: dict[str, Usage] = {}
    for c in charges:
        found[c.operation] = found.get(c.operation, Usage()) + c.usage
    return found
