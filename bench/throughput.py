"""Steps per second: the framework on LocalRuntime against the raw boto3 floor, in the same process."""

from __future__ import annotations

import gc
import json
import statistics
import time
from typing import Any

import boto3
from moto import mock_aws

from bench.report import Check, Section
from bench.workload import CHAIN, chain
from framework.local import LocalRuntime

REGION = "us-east-1"


def framework_seconds(instances: int, steps: int) -> float:
    """Create ``instances`` chains and run them to the end on a fresh LocalRuntime; set-up is untimed."""
    with LocalRuntime(workflows=[chain]) as rt:
        gc.collect()
        start = time.perf_counter()
        handles = [rt.client.create(CHAIN, {"steps": steps}, id=f"bench-{i}") for i in range(instances)]
        rt.run_until_idle()
        elapsed = time.perf_counter() - start
        unfinished = [h.id for h in handles if h.status().status != "complete"]
        if unfinished:
            raise RuntimeError(f"throughput run left instances unfinished: {unfinished}")
    return elapsed


def floor_seconds(instances: int, steps: int) -> float:
    """The same work with no framework, on a fresh in-process moto: per instance one SQS send, receive
    and delete, and ``steps`` conditional PutItems. Table and queue creation are untimed."""
    with mock_aws():
        db = boto3.client("dynamodb", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        db.create_table(
            TableName="floor",
            AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"} for k in ("pk", "sk")],
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        url = sqs.create_queue(QueueName="floor")["QueueUrl"]
        gc.collect()
        start = time.perf_counter()
        for i in range(instances):
            sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"id": f"bench-{i}"}))
        for _ in range(instances):
            message = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)["Messages"][0]
            pk = json.loads(message["Body"])["id"]
            for seq in range(steps):
                db.put_item(
                    TableName="floor",
                    Item={
                        "pk": {"S": pk},
                        "sk": {"S": f"j#0001#{seq:06d}"},
                        "result": {"S": json.dumps({"i": seq})},
                    },
                    ConditionExpression="attribute_not_exists(sk)",
                )
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return time.perf_counter() - start


def throughput_section(instances: int = 20, steps: int = 10, runs: int = 7) -> Section:
    """One discarded warm-up pair, then ``runs`` pairs; the order within a pair alternates."""
    framework_seconds(instances, steps)
    floor_seconds(instances, steps)
    pairs: list[tuple[float, float]] = []
    for run in range(runs):
        if run % 2:
            floor = floor_seconds(instances, steps)
            ours = framework_seconds(instances, steps)
        else:
            ours = framework_seconds(instances, steps)
            floor = floor_seconds(instances, steps)
        pairs.append((ours, floor))
    total = instances * steps
    per_run = [
        {"framework_steps_per_s": total / ours, "floor_steps_per_s": total / floor, "ratio": ours / floor}
        for ours, floor in pairs
    ]

    def line(name: str, key: str, digits: int, note: str) -> Check:
        values = [r[key] for r in per_run]
        median = statistics.median(values)
        return Check(
            name,
            round(median, digits) if digits else round(median),
            note=f"median of {runs}; min {min(values):.{digits}f}, max {max(values):.{digits}f}. {note}",
        )

    checks = [
        line(
            "framework steps/s",
            "framework_steps_per_s",
            0,
            "creates + LocalRuntime.run_until_idle (worker, poller, its last look at the sweeper index)",
        ),
        line(
            "raw boto3 floor steps/s",
            "floor_steps_per_s",
            0,
            "conditional PutItems + SQS send/receive/delete",
        ),
        line("framework time / floor time", "ratio", 2, "per run, each against the floor measured beside it"),
    ]
    data: dict[str, Any] = {
        "workload": {"instances": instances, "steps": steps, "runs": runs, "warmup_runs": 1},
        "runs": per_run,
    }
    return Section(
        f"4. Throughput: {instances} instances x {steps} steps, fresh in-process moto per run",
        checks,
        data,
    )
