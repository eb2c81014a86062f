"""Sleep at scale: 30-day sleeps parked in the due-index against the hop chain that they replaced, as
AWS calls counted on LocalRuntime and as dollars per million sleeps.

Measured (counted calls on a virtual clock): a cohort of ``COHORT`` instances that each run
``step.do``, ``step.sleep("30 days")``, ``step.do``; the same cohort with no sleep, whose calls are taken
off to leave what the sleep adds; and a few hops of the old chain, driven by the message that the old
``_suspend`` sent (the worker still sends such a message on as a hop). Computed: the number of hops,
ceil(30 days / 900 s), and the sweeper's runs on its schedule over 30 days, since LocalRuntime runs the
sweeper only when something is due. Prices: ``shared/reference/platform-limits.md``.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from unittest import mock

from bench.counts import WORKER, ops
from bench.prices import (  # the dated price table
    LAMBDA_GB_S_ARM64,
    LAMBDA_REQUEST,
    MILLION,
    PRICE_TABLE,
    READ_UNIT,
    SQS_REQUEST,
    WRITE_UNIT,
)
from bench.report import Check, Section
from bench.workload import CHAIN, Delivery, chain, observe
from framework.durations import parse_duration
from framework.local import LocalRuntime
from framework.local.runtime import SWEEP_EVERY
from framework.local.template import find_template, parse_template
from framework.queue import MAX_DELAY_SECONDS
from framework.worker import send_wake

SLEEP = "30 days"
COHORT = 200  # instances per measured run: moto's Query and UpdateItem slow down as the table grows
HOP_INSTANCES, HOPS = 10, 3  # legacy hop chains measured, and hops of each
AMORTIZE = 10_000  # the scale: the sweeper's fixed cost is shared by this many sleeps
SCALES = (1_000, AMORTIZE, 1_000_000)
DURATION_S = 0.1  # assumed billed Lambda duration per invocation, for the duration figure only


@dataclass(frozen=True)
class Cohort:
    """The calls of ``n`` instances, all created at one virtual instant, from create to complete."""

    n: int
    create: Counter[str]
    after: Counter[str]  # everything counted after the creates: worker, sweeper and poller
    deliveries: list[Delivery]
    sweeps: list[Counter[str]]  # the calls of each sweeper run
    invocations: Counter[str]
    items: list[dict[str, Any]]  # the table at the end, for item sizes

    def worker(self) -> Counter[str]:
        return sum((d.calls for d in self.deliveries), Counter())

    def sweeper(self) -> Counter[str]:
        return sum(self.sweeps, Counter())


@contextmanager
def observe_sweeps(rt: LocalRuntime) -> Iterator[list[Counter[str]]]:
    """Record the calls of each sweeper run, by wrapping the ``sweep`` that its handler calls."""
    import handlers.sweeper as sweeper_handler
    from framework.sweeper import sweep as real

    log: list[Counter[str]] = []

    def recorded(env: Any = None) -> int:
        before = rt.aws_calls.copy()
        try:
            return real(env)
        finally:
            log.append(rt.aws_calls - before)

    with mock.patch.object(sweeper_handler, "sweep", recorded):
        yield log


def scan(rt: LocalRuntime) -> list[dict[str, Any]]:
    """Every item of the table (read after counting is done)."""
    pages = rt.boto3_client("dynamodb").get_paginator("scan").paginate(TableName=rt.table_name)
    return [item for page in pages for item in page["Items"]]


def run_cohort(n: int, sleep: str | None) -> Cohort:
    params: dict[str, Any] = {"steps": 2} | ({"sleep_after": 1, "sleep": sleep} if sleep else {})
    with LocalRuntime(workflows=[chain]) as rt, observe(rt) as deliveries, observe_sweeps(rt) as sweeps:
        mark = rt.aws_calls.copy()
        for first in range(0, n, 100):
            batch = [{"id": f"sleeper-{i}", "params": params} for i in range(first, min(n, first + 100))]
            rt.client.create_batch(CHAIN, batch)
        create = rt.aws_calls - mark
        mark = rt.aws_calls.copy()
        rt.run_until_idle()
        after = rt.aws_calls - mark
        cohort = Cohort(n, create, after, list(deliveries), list(sweeps), Counter(rt.invocations), scan(rt))
    done = [i for i in cohort.items if i["sk"]["S"] == "instance" and i["status"]["S"] == "complete"]
    if len(done) != n:
        raise RuntimeError(f"{n - len(done)} of {n} sleepers did not complete")
    return cohort


@dataclass(frozen=True)
class Hops:
    """Legacy hop chains: the message that the old ``_suspend`` sent, and the hops that it makes."""

    chains: int
    send: Counter[str]  # the old suspend's send_wake, once per chain
    after: Counter[str]
    deliveries: list[Delivery]

    @property
    def hops(self) -> list[Delivery]:
        return [d for d in self.deliveries if d.outcome == "hopped"]


def run_hops(chains: int, hops: int) -> Hops:
    params = {"steps": 2, "sleep_after": 1, "sleep": SLEEP}
    with LocalRuntime(workflows=[chain]) as rt:
        rt.client.create_batch(CHAIN, [{"id": f"hopper-{i}", "params": params} for i in range(chains)])
        rt.advance(0)  # the starts: each instance runs its first step and parks its sleep
        waits = {f"hopper-{i}": rt.env.store.get_instance(f"hopper-{i}") for i in range(chains)}
        with observe(rt) as deliveries:
            mark = rt.aws_calls.copy()
            for instance_id, record in waits.items():
                if record is None or record.wake_at is None:
                    raise RuntimeError(f"{instance_id} is not sleeping: {record}")
                send_wake(rt.env, instance_id, record.wake_at)  # what the old _suspend sent
            send = rt.aws_calls - mark
            mark = rt.aws_calls.copy()
            rt.advance(hops * MAX_DELAY_SECONDS)
            after = rt.aws_calls - mark
        return Hops(chains, send, after, list(deliveries))


def item_bytes(value: dict[str, Any]) -> int:
    """DynamoDB's size of an attribute value (or, for an item, of its attributes), rounded up."""
    kind, inner = next(iter(value.items()))
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        return (len(inner) + 1) // 2 + 1
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(1 + item_bytes(v) for v in inner)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + item_bytes(v) for k, v in inner.items())
    return len(str(inner))


def units(size: int, unit: int) -> int:
    return max(1, math.ceil(size / unit))


def per(calls: Counter[str], n: int) -> dict[str, float]:
    return {op: count / n for op, count in sorted(calls.items()) if count}


def dollars(u: dict[str, float]) -> float:
    """Dollars for billed units: SQS requests, DynamoDB write and read units, Lambda requests."""
    return (
        u["sqs_requests"] * SQS_REQUEST
        + u["write_units"] * WRITE_UNIT
        + u["read_units"] * READ_UNIT
        + u["lambda_requests"] * LAMBDA_REQUEST
    )


def sleeps_section() -> Section:
    started = time.perf_counter()
    seconds = parse_duration(SLEEP)
    slept, plain = run_cohort(COHORT, SLEEP), run_cohort(COHORT, None)
    legacy = run_hops(HOP_INSTANCES, HOPS)
    elapsed = time.perf_counter() - started
    n = COHORT

    # -- measured: what one sleep adds (the cohort with the sleep minus the one without), per instance
    fewer = [op for op, count in plain.worker().items() if count > slept.worker()[op]]
    if fewer:
        raise RuntimeError(f"the cohort with no sleep made more {fewer}: the difference is not the sleep's")
    worker = slept.worker() - plain.worker()
    sweeper = slept.sweeper()
    sweeps = len(slept.sweeps)
    queries = sweeper["dynamodb.Query"]
    waker = sweeper - Counter({"dynamodb.Query": queries})  # per instance due: a postpone and a send
    queries_per_run = queries / sweeps
    sent = slept.after["sqs.SendMessage"] - plain.after["sqs.SendMessage"]
    delivered = len(slept.deliveries) - len(plain.deliveries)
    received = slept.after["sqs.DeleteMessageBatch"] - plain.after["sqs.DeleteMessageBatch"]
    invoked = slept.invocations[WORKER] - plain.invocations[WORKER]
    hops = legacy.hops
    hop_calls = sum((d.calls for d in hops), Counter())
    hop_db = sum(d.dynamodb() for d in hops)
    if not sweeps or not hops:
        raise RuntimeError(f"nothing to measure: {sweeps} sweeper runs, {len(hops)} hops")
    unpriced = {op for op in worker + waker + hop_calls if op.startswith("dynamodb.")} - {
        "dynamodb.PutItem",
        "dynamodb.UpdateItem",
        "dynamodb.Query",
    }
    if unpriced:
        raise RuntimeError(f"DynamoDB calls with no unit rule here: {sorted(unpriced)}")

    # -- billed units, from item sizes. A journal PutItem (the item is in no index) writes its size. An
    # UpdateItem of the instance item writes it, its list-index copy (ALL projection), and moves its
    # due-index entry (due_at changes: a delete and a put). The resume's journal Query is strongly
    # consistent: the instance's whole journal, in 4 KB units.
    instances = [i for i in slept.items if i["sk"]["S"] == "instance"]
    entries = [i for i in slept.items if i["sk"]["S"] != "instance"]
    instance_bytes = max(item_bytes({"M": i}) for i in instances)
    entry_bytes = max(item_bytes({"M": i}) for i in entries)
    journals: Counter[str] = Counter()
    for i in entries:
        journals[i["pk"]["S"]] += item_bytes({"M": i})
    put_wu = units(entry_bytes, 1024)
    update_wu = 2 * units(instance_bytes, 1024) + 2
    query_ru = units(max(journals.values()), 4096)

    def wu(calls: Counter[str], *, over: int = n, indexes: bool = True) -> float:
        """Write units of ``calls``, per one of ``over`` (sleeps, or hops)."""
        update = update_wu if indexes else units(instance_bytes, 1024)
        return (calls["dynamodb.PutItem"] * put_wu + calls["dynamodb.UpdateItem"] * update) / over

    # Each delivered message is priced unbatched: a ReceiveMessage, a DeleteMessageBatch and a worker
    # invocation of its own (the cohort's wake-ups land together and share batches of 10).
    parked = {
        "sqs_requests": (sent + 2 * delivered) / n,
        "write_units": wu(worker + waker),
        "read_units": worker["dynamodb.Query"] * query_ru / n,
        "lambda_requests": delivered / n,
    }

    # -- computed: the sweeper on its schedule, every minute of the 30 days, whatever is due. Its
    # measured runs are some of these runs, so their Queries are not counted again per sleep.
    runs = seconds / SWEEP_EVERY
    sweeper_fixed = runs * (LAMBDA_REQUEST + queries_per_run * READ_UNIT)

    def parked_per_million(sharing: int) -> float:
        return (dollars(parked) + sweeper_fixed / sharing) * MILLION

    # -- computed: the hop chain. The old suspend sent the first message (and there was no postpone);
    # each of the next ceil(D/900) - 1 deliveries hops, as measured; the last one resumes, as the parked
    # sleep's wake-up does. Its sweeper runs too, but wakes no sleep: none of its cost is charged here.
    hop_count = math.ceil(seconds / MAX_DELAY_SECONDS)
    per_hop_sent = hop_calls["sqs.SendMessage"] / len(hops)
    hop_sent = legacy.send["sqs.SendMessage"] / legacy.chains + (hop_count - 1) * per_hop_sent
    hop_delivered = (hop_count - 1) + delivered / n
    hopping = {
        "sqs_requests": hop_sent + 2 * hop_delivered,
        "write_units": wu(worker) + (hop_count - 1) * wu(hop_calls, over=len(hops)),
        "read_units": parked["read_units"],
        "lambda_requests": hop_delivered,
    }
    parked_m, hop_m = parked_per_million(AMORTIZE), dollars(hopping) * MILLION
    messages = sent / n  # the sweeper's sends are the wake-ups: it sends nothing else

    # -- the words read as money: the wake-up (its message, the postpone, the sweeper's share)
    # in SQS messages' worth, a message being its send, receive and delete
    one_message = 3 * SQS_REQUEST
    wake = {
        indexes: (sent + 2 * delivered) / n * SQS_REQUEST + wu(waker, indexes=indexes) * WRITE_UNIT
        for indexes in (True, False)
    }

    def break_even(indexes: bool) -> str:
        room = 2 * one_message - wake[indexes]
        if room > 0:
            return f"within 2 from {sweeper_fixed / room:,.0f} sleepers"
        return f"never within 2: {wake[indexes] / one_message:.2f} with no sweeper share"

    memory_mb = parse_template(find_template().read_text())["Globals"]["Function"]["MemorySize"]
    per_invocation = DURATION_S * memory_mb / 1024 * LAMBDA_GB_S_ARM64

    def breakdown(u: dict[str, float]) -> str:
        db = u["write_units"] * WRITE_UNIT + u["read_units"] * READ_UNIT
        lam = u["lambda_requests"] * LAMBDA_REQUEST
        return (
            f"SQS {u['sqs_requests']:,.0f} requests ${u['sqs_requests'] * SQS_REQUEST * MILLION:,.2f}; "
            f"DynamoDB {u['write_units']:g} WU + {u['read_units']:g} RU ${db * MILLION:,.2f}; "
            f"Lambda {u['lambda_requests']:,.0f} requests ${lam * MILLION:,.2f}"
        )

    checks = [
        Check(
            "SQS messages per 30-day sleep (parked, measured)",
            messages,
            "<= 2",
            messages <= 2,
            f"{sent} SendMessage for {n} sleeps, all by the sweeper ({sweeps} run(s)), none on suspending; "
            f"the sweeper is started by its schedule, not by SQS. Hop chain: {hop_sent:,.0f} (computed)",
        ),
        Check(
            "parked cheaper than the hop chain (hop $ / parked $)",
            hop_m / parked_m,
            "> 1",
            parked_m < hop_m,
            f"sweeper shared by {AMORTIZE:,} sleeps; shared by {SCALES[0]:,}: "
            f"{hop_m / parked_per_million(SCALES[0]):,.0f}x",
        ),
        Check(
            f"parked: $/M sleeps, sweeper shared by {AMORTIZE:,}",
            parked_m,
            note=breakdown(parked) + f"; sweeper ${sweeper_fixed / AMORTIZE * MILLION:,.2f}. Index writes "
            f"included; base table only: {wu(worker + waker, indexes=False):g} WU",
        ),
        *[
            Check(f"parked: $/M sleeps, sweeper shared by {s:,}", parked_per_million(s))
            for s in SCALES
            if s != AMORTIZE
        ],
        Check(
            "hop chain: $/M sleeps (computed from measured hops)",
            hop_m,
            note=breakdown(hopping) + f"; {hop_count:,} hops = ceil({seconds:.0f}/{MAX_DELAY_SECONDS})",
        ),
        Check(
            "sweeper's fixed cost over 30 days, $ (computed)",
            sweeper_fixed,
            note=f"{runs:,.0f} runs at rate(1 minute), each 1 Lambda request (${runs * LAMBDA_REQUEST:.4f}) "
            f"+ {queries_per_run:g} due-index Queries (measured per run) at 1 RU "
            f"(${runs * queries_per_run * READ_UNIT:.4f})",
        ),
        Check(
            "AWS calls per sleep (parked, measured; receives apart)",
            (sum(worker.values()) + sum(waker.values())) / n,
            note=f"for {n} sleeps: worker {ops(worker)}; sweeper {ops(waker)}, and {queries} Queries in "
            f"{sweeps} run(s). {delivered} messages delivered, in {received} receives with messages and "
            f"{invoked} worker invocations (priced as {delivered} each)",
        ),
        Check(
            "DynamoDB calls per hop of the old chain (measured)",
            hop_db / len(hops),
            "= 0",
            hop_db == 0,
            f"{len(hops)} hops of {legacy.chains} chains driven by the old suspend's message "
            f"({ops(legacy.send)}): {ops(hop_calls)}, "
            f"{legacy.after['sqs.DeleteMessageBatch']} DeleteMessageBatch",
        ),
        Check(
            f"wake-up in SQS messages' worth, sweeper shared by {AMORTIZE:,}",
            (wake[True] + sweeper_fixed / AMORTIZE) / one_message,
            note=f"its message, the postpone (with index writes) and the sweeper's share, over "
            f"${one_message * MILLION:.2f}/M (send + receive + delete); {break_even(True)}; "
            f"base-table writes only: {(wake[False] + sweeper_fixed / AMORTIZE) / one_message:.2f}, "
            f"{break_even(False)}",
        ),
        Check(
            f"Lambda duration, $/M invocations at {DURATION_S * 1000:.0f} ms (assumed)",
            per_invocation * MILLION,
            note=f"not in the figures above; {memory_mb} MB arm64: parked "
            f"+${(parked['lambda_requests'] + runs / AMORTIZE) * per_invocation * MILLION:,.2f}/M sleeps "
            f"(sweeper shared by {AMORTIZE:,}), "
            f"hop chain +${hopping['lambda_requests'] * per_invocation * MILLION:,.2f}/M sleeps",
        ),
    ]
    data = {
        "elapsed_seconds": round(elapsed, 1),
        "prices": {
            "source": PRICE_TABLE,
            "sqs_request": SQS_REQUEST,
            "dynamodb_write_unit": WRITE_UNIT,
            "dynamodb_read_unit": READ_UNIT,
            "lambda_request": LAMBDA_REQUEST,
            "lambda_gb_s_arm64": LAMBDA_GB_S_ARM64,
        },
        "measured": {
            "instances": n,
            "sleep_seconds": seconds,
            "with_sleep": {"create": dict(slept.create), "after_create": dict(slept.after)},
            "without_sleep": {"create": dict(plain.create), "after_create": dict(plain.after)},
            "per_sleep": {
                "worker": per(worker, n),
                "sweeper_per_instance_due": per(waker, n),
                "send_message": sent / n,
                "messages_delivered": delivered / n,
                "receives_with_messages_batched": received / n,
                "worker_invocations_batched": invoked / n,
            },
            "sweeper_runs": sweeps,
            "sweeper_queries_per_run": queries_per_run,
            "item_bytes": {"instance_max": instance_bytes, "journal_entry_max": entry_bytes},
            "hops": {
                "chains": legacy.chains,
                "hops": len(hops),
                "old_suspend_send": dict(legacy.send),
                "after": dict(legacy.after),
                "per_hop": per(hop_calls, len(hops)),
            },
        },
        "computed": {
            "hop_chain_hops": hop_count,
            "sweeper_runs_30_days": runs,
            "sweeper_fixed_dollars_30_days": sweeper_fixed,
            "units_per_sleep": {"parked": parked, "hop_chain": hopping},
            "parked_write_units_base_table_only": wu(worker + waker, indexes=False),
            "dollars_per_million_sleeps": {
                "parked_by_sleepers_sharing_the_sweeper": {str(s): parked_per_million(s) for s in SCALES},
                "parked_without_sweeper": dollars(parked) * MILLION,
                "hop_chain": hop_m,
            },
            "sqs_messages_per_sleep": {"parked": messages, "hop_chain": hop_sent},
            "wake_up_in_messages_worth": (wake[True] + sweeper_fixed / AMORTIZE) / one_message,
        },
        "assumptions": [
            "a delivered message is priced unbatched: 1 ReceiveMessage, 1 DeleteMessageBatch, 1 invocation",
            "an instance-item UpdateItem writes the item, its list-index copy and moves its due-index entry",
            "a sweeper Query is priced 1 read unit: it returns <= 4 KB (GSI reads, eventually consistent, "
            "bill half)",
            "the sweeper's fixed cost is shared by sleepers that sleep through the same 30 days",
            "not priced: the event source mapping's empty polls, the EventBridge schedule, logs; Lambda "
            "duration is shown apart, at an assumed billed duration",
        ],
    }
    return Section(
        f"3. Sleep at scale: step.sleep({SLEEP!r}) parked vs a hop chain ({n} instances measured; "
        "$ per million sleeps)",
        checks,
        data,
    )
