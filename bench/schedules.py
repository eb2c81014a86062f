"""The AWS calls and cost of one scheduled fire (framework.engine.schedules), on moto through
LocalRuntime, whose botocore hooks count every call the stack makes (``rt.aws_calls``).

One sweeper run with a fire due is compared with the same run with none: the difference is the fire's
own cost (the instance's create, its start message and the mark), apart from the instance's run."""

from __future__ import annotations

from typing import Any

from bench.prices import LAMBDA_REQUEST, MILLION, READ_UNIT, SQS_REQUEST, WRITE_UNIT
from bench.report import Check, Section
from framework import workflow

SCHEDULER_INVOCATION = 1.00e-6  # EventBridge Scheduler, per invocation after the free tier


@workflow("bench-hourly", schedule="0 * * * *")
def bench_hourly(event: Any, step: Any) -> None:
    return None


def _sweep_calls(rt: Any, at: float) -> dict[str, int]:
    rt.clock.set(at)
    before = dict(rt.aws_calls)
    rt.sweep()
    return {k: v - before.get(k, 0) for k, v in rt.aws_calls.items() if v != before.get(k, 0)}


def schedules_section() -> Section:
    from framework.local import LocalRuntime

    with LocalRuntime(workflows=[bench_hourly]) as rt:
        rt.sweep()
        top = (rt.clock.now() // 3600 + 1) * 3600
        idle = _sweep_calls(rt, top - 30)  # a run with nothing due
        fired = _sweep_calls(rt, top + 30)  # a run with one fire due
    extra = {k: fired.get(k, 0) - idle.get(k, 0) for k in set(fired) | set(idle)}
    extra = {k: v for k, v in extra.items() if v}
    writes = extra.get("dynamodb.PutItem", 0) + extra.get("dynamodb.UpdateItem", 0)
    reads = extra.get("dynamodb.GetItem", 0)
    sends = extra.get("sqs.SendMessage", 0)
    per_fire = writes * WRITE_UNIT + reads * READ_UNIT + sends * SQS_REQUEST
    scheduler = per_fire + SCHEDULER_INVOCATION + LAMBDA_REQUEST
    return Section(
        title="Schedules: AWS calls and cost per scheduled fire",
        checks=[
            Check("DynamoDB writes per fire", writes),
            Check("DynamoDB reads per fire (beyond the run's one GetItem per schedule)", reads),
            Check("SQS sends per fire", sends),
            Check(
                "GetItems per sweeper run, fire or not (the sweep mark, and 1 per schedule)",
                idle.get("dynamodb.GetItem", 0),
            ),
            Check("$ per million fires (sweeper)", round(per_fire * MILLION, 3)),
            Check(
                "$ per million fires (EventBridge Scheduler + Lambda, same writes)",
                round(scheduler * MILLION, 3),
            ),
        ],
        data={"idle_run": idle, "fire_run": fired, "per_fire": extra},
    )
