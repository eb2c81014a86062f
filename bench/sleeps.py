"""Sleep at scale: 30-day sleeps parked in the due-index against the hop chain that they replaced, as
AWS calls and capacity units metered on LocalRuntime, and as dollars per million sleeps.

Measured (counted calls and ``bench.units.UnitMeter`` units on a virtual clock): a cohort of ``COHORT``
instances that each run ``step.do``, ``step.sleep("30 days")``, ``step.do``; the same cohort with no
sleep, whose calls and units are taken off to leave what the sleep adds; and a few hops of the old
chain, driven by the message that the old ``_suspend`` sent (the worker still sends such a message on
as a hop). Computed: the number of hops, ceil(30 days / 900 s), and the sweeper's runs on its schedule
over 30 days, since LocalRuntime runs the sweeper only when something is due: the requests that every
run makes (its index Queries, the read and write of its mark) are priced per run, not per sleep.
Prices: ``shared/reference/platform-limits.md``.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterable, Iterator
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
from bench.units import Charge, UnitMeter, Usage
from bench.workload import CHAIN, Delivery, chain, observe
from framework.backends.dynamodb import SWEEP_MARK_KEY
from framework.backends.queue import BATCH, MAX_DELAY_SECONDS
from framework.core.durations import parse_duration
from framework.engine.invocation import send_wake
from framework.local import LocalRuntime
from framework.local.sweeps import SWEEP_EVERY
from framework.local.template import find_template, parse_template

SLEEP = "30 days"
COHORT = 200  # instances per measured run: moto's Query and UpdateItem slow down as the table grows
HOP_INSTANCES, HOPS = 10, 3  # legacy hop chains measured, and hops of each
AMORTIZE = 10_000  # the scale: the sweeper's fixed cost is shared by this many sleeps
SCALES = (1_000, AMORTIZE, 1_000_000)
DURATION_S = 0.1  # assumed billed Lambda duration per invocation, for the duration figure only
SWEEP_MARK_PK = SWEEP_MARK_KEY["pk"]["S"]
SENDS = ("sqs.SendMessage", "sqs.SendMessageBatch")  # one SQS request each, whatever the batch holds


@dataclass(frozen=True)
class Sweep:
    """One sweeper run: its calls, its metered DynamoDB requests, and the wake-ups it says it sent."""

    calls: Counter[str]
    charges: list[Charge]
    sent: int

    def fixed(self) -> list[Charge]:
        """What the run pays whatever is due: its index Queries, and the read and write of its mark."""
        return [c for c in self.charges if c.operation == "Query" or c.key.get("pk") == SWEEP_MARK_PK]


@dataclass(frozen=True)
class Cohort:
    """The calls and units of ``n`` instances, all created at one virtual instant, from create to complete."""

    n: int
    create: Counter[str]
    after: Counter[str]  # everything counted after the creates: worker, sweeper and poller
    deliveries: list[Delivery]
    sweeps: list[Sweep]
    invocations: Counter[str]
    charges: list[Charge]  # every metered DynamoDB request, in order
    created: int  # charges[:created] are the creates'

    def calls(self) -> Counter[str]:
        return self.create + self.after

    def worker(self) -> Counter[str]:
        return sum((d.calls for d in self.deliveries), Counter())

    def sweeper(self) -> Counter[str]:
        """The sweeper's calls but its fixed ones (see ``Sweep.fixed``)."""
        fixed = Counter(f"dynamodb.{c.operation}" for c in self.fixed())
        return sum((s.calls for s in self.sweeps), Counter()) - fixed

    def fixed(self) -> list[Charge]:
        return [c for s in self.sweeps for c in s.fixed()]

    def roles(self) -> dict[str, list[Charge]]:
        """The metered requests but the sweeper's fixed ones, by who made them."""
        swept = {id(c) for s in self.sweeps for c in s.charges}
        fixed = {id(c) for c in self.fixed()}
        after = self.charges[self.created :]
        return {
            "create": self.charges[: self.created],
            "worker": [c for c in after if id(c) not in swept],
            "sweeper": [c for s in self.sweeps for c in s.charges if id(c) not in fixed],
        }


@contextmanager
def observe_sweeps(rt: LocalRuntime, meter: UnitMeter) -> Iterator[list[Sweep]]:
    """Record each sweeper run, by wrapping the ``sweep`` that its handler calls."""
    import handlers.sweeper as sweeper_handler
    from framework.engine.sweeper import sweep as real

    log: list[Sweep] = []

    def recorded(env: Any = None, context: Any = None) -> int:  # the handler passes its Lambda context
        before, first, sent = rt.aws_calls.copy(), len(meter.charges), 0
        try:
            sent = real(env, context=context)
            return sent
        finally:
            log.append(Sweep(rt.aws_calls - before, meter.charges[first:], sent))

    with mock.patch.object(sweeper_handler, "sweep", recorded):
        yield log


def completed(rt: LocalRuntime) -> int:
    """Instances complete in the table (read after metering is done)."""
    pages = rt.boto3_client("dynamodb").get_paginator("scan").paginate(TableName=rt.table_name)
    return sum(
        1
        for page in pages
        for i in page["Items"]
        if i["sk"]["S"] == "instance" and i.get("status", {}).get("S") == "complete"
    )


def run_cohort(n: int, sleep: str | None) -> Cohort:
    params: dict[str, Any] = {"steps": 2} | ({"sleep_after": 1, "sleep": sleep} if sleep else {})
    with (
        LocalRuntime(workflows=[chain]) as rt,
        UnitMeter(rt) as meter,
        observe(rt) as deliveries,
        observe_sweeps(rt, meter) as sweeps,
    ):
        mark = rt.aws_calls.copy()
        for first in range(0, n, 100):
            batch = [{"id": f"sleeper-{i}", "params": params} for i in range(first, min(n, first + 100))]
            rt.client.create_batch(CHAIN, batch)
        create, created = rt.aws_calls - mark, len(meter.charges)
        mark = rt.aws_calls.copy()
        rt.run_until_idle()
        after = rt.aws_calls - mark
        charges = list(meter.charges)
        cohort = Cohort(
            n, create, after, list(deliveries), list(sweeps), Counter(rt.invocations), charges, created
        )
        if meter.unpriced:
            raise RuntimeError(f"DynamoDB calls the meter has no rule for: {sorted(meter.unpriced)}")
        done = completed(rt)
    if done != n:
        raise RuntimeError(f"{n - done} of {n} sleepers did not complete")
    return cohort


@dataclass(frozen=True)
class Hops:
    """Legacy hop chains: the message that the old ``_suspend`` sent, and the hops that it makes."""

    chains: int
    send: Counter[str]  # the old suspend's send_wake, once per chain
    after: Counter[str]
    deliveries: list[Delivery]
    usage: Usage  # DynamoDB units metered while the hops ran

    @property
    def hops(self) -> list[Delivery]:
        return [d for d in self.deliveries if d.outcome == "hopped"]


def run_hops(chains: int, hops: int) -> Hops:
    params = {"steps": 2, "sleep_after": 1, "sleep": SLEEP}
    with LocalRuntime(workflows=[chain]) as rt, UnitMeter(rt) as meter:
        rt.client.create_batch(CHAIN, [{"id": f"hopper-{i}", "params": params} for i in range(chains)])
        rt.advance(0)  # the starts: each instance runs its first step and parks its sleep
        waits = {f"hopper-{i}": rt.env.store.get_instance(f"hopper-{i}") for i in range(chains)}
        with observe(rt) as deliveries, observe_sweeps(rt, meter) as sweeps:
            mark, first = rt.aws_calls.copy(), len(meter.charges)
            for instance_id, record in waits.items():
                if record is None or record.wake_at is None:
                    raise RuntimeError(f"{instance_id} is not sleeping: {record}")
                send_wake(rt.env, instance_id, record.wake_at)  # what the old _suspend sent
            send = rt.aws_calls - mark
            mark = rt.aws_calls.copy()
            rt.advance(hops * MAX_DELAY_SECONDS)
            after = rt.aws_calls - mark
            usage = sum_usage(meter.charges[first:])
        # The units are the hops' only if nothing else ran meanwhile.
        if sweeps or any(d.outcome != "hopped" for d in deliveries):
            outcomes = Counter(d.outcome for d in deliveries)
            raise RuntimeError(f"not only hops: {len(sweeps)} sweeper runs, deliveries {dict(outcomes)}")
        return Hops(chains, send, after, list(deliveries), usage)


def sum_usage(charges: Iterable[Charge]) -> Usage:
    return sum((c.usage for c in charges), Usage())


def per(calls: Counter[str], n: int) -> dict[str, float]:
    return {op: count / n for op, count in sorted(calls.items()) if count}


def by_operation(charges: Iterable[Charge]) -> dict[str, tuple[Usage, Counter[str]]]:
    """Usage and GSI write units per operation."""
    found: dict[str, tuple[Usage, Counter[str]]] = {}
    for c in charges:
        usage, indexes = found.get(c.operation, (Usage(), Counter()))
        indexes.update(c.index_units)
        found[c.operation] = (usage + c.usage, indexes)
    return found


def delta_by_operation(slept: Iterable[Charge], plain: Iterable[Charge], n: int) -> dict[str, dict[str, Any]]:
    """What the sleep adds per instance, by operation: calls, write units (GSI ones apart), read units."""
    a, b = by_operation(slept), by_operation(plain)
    found = {}
    for op in sorted(a.keys() | b.keys()):
        (ua, ia), (ub, ib) = a.get(op, (Usage(), Counter())), b.get(op, (Usage(), Counter()))
        d = ua - ub
        indexes = {k: (ia[k] - ib[k]) / n for k in sorted(ia.keys() | ib.keys()) if ia[k] != ib[k]}
        if d.calls or d.write_units or d.read_units or indexes:
            found[op] = {
                "calls": d.calls / n,
                "write_units": d.write_units / n,
                "read_units": d.read_units / n,
                "index_write_units": indexes,
            }
    return found


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
    waker = slept.sweeper() - plain.sweeper()  # the sweeper's calls per wake-up: its sends
    sweeps = len(slept.sweeps)
    slept_roles, plain_roles = slept.roles(), plain.roles()
    added = {k: sum_usage(slept_roles[k]) - sum_usage(plain_roles[k]) for k in slept_roles}
    engine = added["create"] + added["worker"]  # the same suspend and resume in the hop chain
    sleep_usage = engine + added["sweeper"]
    by_op = delta_by_operation(
        [c for cs in slept_roles.values() for c in cs], [c for cs in plain_roles.values() for c in cs], n
    )
    fixed = sum_usage(slept.fixed())
    fixed_ops = Counter(f"dynamodb.{c.operation}" for c in slept.fixed())
    sends = sum(slept.calls()[op] - plain.calls()[op] for op in SENDS)
    batches = slept.after["sqs.SendMessageBatch"] - plain.after["sqs.SendMessageBatch"]
    wakeups = sum(s.sent for s in slept.sweeps) - sum(s.sent for s in plain.sweeps)
    delivered = len(slept.deliveries) - len(plain.deliveries)
    received = slept.after["sqs.DeleteMessageBatch"] - plain.after["sqs.DeleteMessageBatch"]
    invoked = slept.invocations[WORKER] - plain.invocations[WORKER]
    hops = legacy.hops
    hop_calls = sum((d.calls for d in hops), Counter())
    hop_db = sum(d.dynamodb() for d in hops)
    if not sweeps or not hops:
        raise RuntimeError(f"nothing to measure: {sweeps} sweeper runs, {len(hops)} hops")

    # Each delivered message is priced unbatched: a ReceiveMessage, a DeleteMessageBatch and a worker
    # invocation of its own (the cohort's wake-ups land together and share batches of 10). Sends are
    # requests: the sweeper's SendMessageBatch carries up to BATCH wake-ups for the price of one.
    parked = {
        "sqs_requests": (sends + 2 * delivered) / n,
        "write_units": sleep_usage.write_units / n,
        "read_units": sleep_usage.read_units / n,
        "lambda_requests": delivered / n,
    }

    # -- computed: the sweeper on its schedule, every minute of the 30 days, whatever is due. Its
    # measured runs are some of these runs, so their fixed requests are not counted again per sleep.
    runs = seconds / SWEEP_EVERY
    fixed_ru, fixed_wu = fixed.read_units / sweeps, fixed.write_units / sweeps
    fixed_db = fixed_ru * READ_UNIT + fixed_wu * WRITE_UNIT
    sweeper_fixed = runs * (LAMBDA_REQUEST + fixed_db)
    per_run_ops = ", ".join(f"{op.split('.', 1)[1]} x{k / sweeps:g}" for op, k in sorted(fixed_ops.items()))

    def parked_per_million(sharing: int) -> float:
        return (dollars(parked) + sweeper_fixed / sharing) * MILLION

    # -- computed: the hop chain. The old suspend sent the first message; each of the next
    # ceil(D/900) - 1 deliveries hops, as measured; the last one resumes, as the parked sleep's
    # wake-up does. Its sweeper runs too, but wakes no sleep: none of its cost is charged here.
    hop_count = math.ceil(seconds / MAX_DELAY_SECONDS)
    per_hop_sent = sum(hop_calls[op] for op in SENDS) / len(hops)
    hop_sent = sum(legacy.send[op] for op in SENDS) / legacy.chains + (hop_count - 1) * per_hop_sent
    hop_delivered = (hop_count - 1) + delivered / n
    hopping = {
        "sqs_requests": hop_sent + 2 * hop_delivered,
        "write_units": engine.write_units / n + (hop_count - 1) * legacy.usage.write_units / len(hops),
        "read_units": engine.read_units / n + (hop_count - 1) * legacy.usage.read_units / len(hops),
        "lambda_requests": hop_delivered,
    }
    parked_m, hop_m = parked_per_million(AMORTIZE), dollars(hopping) * MILLION
    messages = delivered / n  # every message sent on LocalRuntime is delivered once

    # -- the words read as money: the wake-up (its send, receive and delete, what the sweeper
    # writes for it, and the sweeper's share) in SQS messages' worth, a message being 3 requests
    one_message = 3 * SQS_REQUEST
    wake = (sends + 2 * delivered) / n * SQS_REQUEST + (
        added["sweeper"].write_units * WRITE_UNIT + added["sweeper"].read_units * READ_UNIT
    ) / n
    room = 2 * one_message - wake
    break_even = (
        f"within 2 from {sweeper_fixed / room:,.0f} sleepers"
        if room > 0
        else f"never within 2: {wake / one_message:.2f} with no sweeper share"
    )

    memory_mb = parse_template(find_template().read_text())["Globals"]["Function"]["MemorySize"]
    per_invocation = DURATION_S * memory_mb / 1024 * LAMBDA_GB_S_ARM64

    def breakdown(u: dict[str, float]) -> str:
        db = u["write_units"] * WRITE_UNIT + u["read_units"] * READ_UNIT
        lam = u["lambda_requests"] * LAMBDA_REQUEST
        return (
            f"SQS {u['sqs_requests']:,.4g} requests ${u['sqs_requests'] * SQS_REQUEST * MILLION:,.2f}; "
            f"DynamoDB {u['write_units']:g} WU + {u['read_units']:g} RU ${db * MILLION:,.2f}; "
            f"Lambda {u['lambda_requests']:,.4g} requests ${lam * MILLION:,.2f}"
        )

    def writes(ops_added: dict[str, dict[str, Any]]) -> str:
        return "; ".join(
            f"{op} {d['calls']:+g} call(s), {d['write_units']:+g} WU"
            + "".join(f" ({u:+g} to {index})" for index, u in d["index_write_units"].items())
            + (f", {d['read_units']:+g} RU" if d["read_units"] else "")
            for op, d in ops_added.items()
        )

    checks = [
        Check(
            "SQS messages per 30-day sleep (parked, measured)",
            messages,
            "<= 2",
            messages <= 2,
            f"{delivered} messages for {n} sleeps, all wake-ups by the sweeper ({wakeups} sent in {batches} "
            f"SendMessageBatch requests of up to {BATCH}: {batches / n:g} send request per sleep at this "
            f"cohort's scale, where the wake-ups come due together; 1 for a wake-up due alone), none on "
            f"suspending; the sweeper is started by its schedule, not by SQS. Hop chain: {hop_sent:,.0f} "
            f"(computed)",
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
            note=breakdown(parked) + f"; sweeper ${sweeper_fixed / AMORTIZE * MILLION:,.2f}. Metered, GSI "
            f"writes included ({sleep_usage.index_write_units / n:g} of the "
            f"{sleep_usage.write_units / n:g} WU); what the sleep adds per instance: {writes(by_op)}",
        ),
        *[
            Check(f"parked: $/M sleeps, sweeper shared by {s:,}", parked_per_million(s))
            for s in SCALES
            if s != AMORTIZE
        ],
        Check(
            "hop chain: $/M sleeps (computed from measured hops)",
            hop_m,
            note=breakdown(hopping) + f"; {hop_count:,} hops = ceil({seconds:.0f}/{MAX_DELAY_SECONDS}), "
            f"each {legacy.usage.write_units / len(hops):g} WU + {legacy.usage.read_units / len(hops):g} RU "
            f"(metered); DynamoDB: the same suspend and resume as parked, less the sweeper's",
        ),
        Check(
            "sweeper's fixed cost over 30 days, $ (computed)",
            sweeper_fixed,
            note=f"{runs:,.0f} runs at rate(1 minute), each 1 Lambda request (${runs * LAMBDA_REQUEST:.4f}) "
            f"+ {per_run_ops} metered per run: "
            f"{fixed_ru:g} RU + {fixed_wu:g} WU (${runs * fixed_db:.4f}); "
            f"a run with nothing new and nothing due skips the mark's write",
        ),
        Check(
            "AWS calls per sleep (parked, measured; receives apart)",
            (sum(worker.values()) + sum(waker.values())) / n,
            note=f"for {n} sleeps: worker {ops(worker)}; sweeper {ops(waker)}, and "
            f"{ops(fixed_ops)} in {sweeps} run(s) (fixed). "
            f"{delivered} messages delivered, in {received} receives with messages and {invoked} worker "
            f"invocations (priced as {delivered} each)",
        ),
        Check(
            "DynamoDB calls per hop of the old chain (measured)",
            hop_db / len(hops),
            "= 0",
            hop_db == 0,
            f"{len(hops)} hops of {legacy.chains} chains driven by the old suspend's message "
            f"({ops(legacy.send)}): {ops(hop_calls)}, "
            f"{legacy.after['sqs.DeleteMessageBatch']} DeleteMessageBatch; "
            f"{legacy.usage.write_units:g} WU, {legacy.usage.read_units:g} RU metered",
        ),
        Check(
            f"wake-up in SQS messages' worth, sweeper shared by {AMORTIZE:,}",
            (wake + sweeper_fixed / AMORTIZE) / one_message,
            note=f"its send (a share of a batch), receive and delete, the sweeper's writes for it "
            f"({added['sweeper'].write_units / n:g} WU) and the sweeper's share, over "
            f"${one_message * MILLION:.2f}/M (send + receive + delete); {break_even}",
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
                "sweeper_per_wake_up": per(waker, n),
                "send_requests": sends / n,
                "wake_ups_sent_by_sweeper": wakeups / n,
                "messages_delivered": delivered / n,
                "receives_with_messages_batched": received / n,
                "worker_invocations_batched": invoked / n,
                "units": sleep_usage.per(n),
                "units_by_role": {k: u.per(n) for k, u in added.items()},
                "units_by_operation": by_op,
            },
            "sweeper_runs": sweeps,
            "sweeper_fixed_per_run": {
                "requests": per(fixed_ops, sweeps),
                "units": fixed.per(sweeps),
            },
            "hops": {
                "chains": legacy.chains,
                "hops": len(hops),
                "old_suspend_send": dict(legacy.send),
                "after": dict(legacy.after),
                "per_hop": per(hop_calls, len(hops)),
                "units_per_hop": legacy.usage.per(len(hops)),
            },
        },
        "computed": {
            "hop_chain_hops": hop_count,
            "sweeper_runs_30_days": runs,
            "sweeper_fixed_dollars_30_days": sweeper_fixed,
            "units_per_sleep": {"parked": parked, "hop_chain": hopping},
            "dollars_per_million_sleeps": {
                "parked_by_sleepers_sharing_the_sweeper": {str(s): parked_per_million(s) for s in SCALES},
                "parked_without_sweeper": dollars(parked) * MILLION,
                "hop_chain": hop_m,
            },
            "sqs_messages_per_sleep": {"parked": messages, "hop_chain": hop_sent},
            "sqs_send_requests_per_sleep": {"parked": sends / n, "hop_chain": hop_sent},
            "wake_up_in_messages_worth": (wake + sweeper_fixed / AMORTIZE) / one_message,
        },
        "assumptions": [
            "a delivered message is priced unbatched: 1 ReceiveMessage, 1 DeleteMessageBatch, 1 invocation",
            f"a send is priced per request: the sweeper's SendMessageBatch carries up to {BATCH} wake-ups "
            f"({batches / n:g} request per sleep here, as the cohort's wake-ups come due together)",
            "write and read units are metered from item sizes (bench.units), GSI writes included",
            "the sweeper's fixed requests (index Queries, the mark's GetItem and PutItem) are priced per run "
            "as measured on a run that sent the cohort's wake-ups; an idle run skips the mark's write",
            "the sweeper's look at each new instance (a list-index Query and a BatchGetItem) is the same "
            "for both cohorts, and no sweeper run on LocalRuntime comes while they are new: it cancels",
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
