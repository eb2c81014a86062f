"""Real concurrency: worker processes (not threads) on a moto server (127.0.0.1) poll one queue, and
every message is delivered twice on purpose. 1,000 instances with the table on moto's DynamoDB (about
130 s), then 1,000 with it on dynalite, a second implementation (tests/dynalite.py; about 45 s, the
queues staying on moto). A larger run is `make bench`'s, not a test's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from framework.local import LocalRuntime
from tests import dynalite
from tests.integration import workflows as w
from tests.integration.worker_process import ROOT, environment

WORKERS = 3


@dataclass(frozen=True)
class Outcome:
    instances: int
    seconds: float
    duplicates_turned_away: int
    lease_conflicts: int


def run_concurrently(
    rt: LocalRuntime,
    endpoint: str,
    tmp_path: Path,
    *,
    instances: int,
    params: dict[str, Any],
    deadline: float,
    dynamodb: str | None = None,
    workflow: str = "it-chain",
    params_of: Any = None,
    extra_env: dict[str, str] | None = None,
) -> Outcome:
    """Start ``instances`` instances of it-chain, paced so that the queue stays shallow (moto's SQS
    slows down with depth), and wait for all of them to finish. ``dynamodb``: the table's endpoint, if it
    is not ``endpoint``."""
    env = environment(rt, endpoint, POWERTOOLS_LOG_LEVEL="INFO") | (extra_env or {})
    if dynamodb is not None:
        env["AWS_ENDPOINT_URL_DYNAMODB"] = dynamodb
    logs = [tmp_path / f"worker{n}.log" for n in range(WORKERS)]
    workers = []
    started = time.time()
    for log in logs:
        with log.open("w") as out:  # a file, not a pipe: a full pipe would block the worker
            workers.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "tests.integration.worker_process",
                        "--until",
                        str(deadline),
                        "--duplicate",
                    ],
                    env=env,
                    cwd=ROOT,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )
    sqs, db = rt.boto3_client("sqs"), rt.boto3_client("dynamodb")
    try:
        for i in range(instances):
            # One PutItem each: moto's TransactWriteItems (create_batch) slows down as the table grows.
            rt.client.create(workflow, params if params_of is None else params_of(i), id=f"c{i}")
            if i % 50 == 49:
                while _depth(sqs, rt.queue_url) > 100 and time.time() < deadline:
                    time.sleep(0.2)
        print(f"{time.time() - started:.0f} s: {instances} created", flush=True)
        while (done := _finished(db, rt.table_name)) < instances and time.time() < deadline:
            print(f"{time.time() - started:.0f} s: {done} complete", flush=True)
            time.sleep(5)
    finally:
        for proc in workers:
            proc.terminate()
            proc.wait(timeout=30)
    lines = [
        json.loads(line) for log in logs for line in log.read_text().splitlines() if line.startswith("{")
    ]
    return Outcome(
        instances=instances,
        seconds=time.time() - started,
        duplicates_turned_away=sum(1 for line in lines if line.get("message") == "wake-up skipped"),
        lease_conflicts=sum(1 for line in lines if str(line.get("message", "")).startswith("lease lost")),
    )


def _depth(sqs: Any, url: str) -> int:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attrs["Attributes"]["ApproximateNumberOfMessages"])


def _finished(db: Any, table: str) -> int:
    count = 0
    for page in db.get_paginator("scan").paginate(
        TableName=table,
        Select="COUNT",
        FilterExpression="#sk = :instance AND #status = :complete",
        ExpressionAttributeNames={"#sk": "sk", "#status": "status"},
        ExpressionAttributeValues={":instance": {"S": "instance"}, ":complete": {"S": "complete"}},
    ):
        count += page["Count"]
    return count


@pytest.mark.timeout(420)
@pytest.mark.parametrize("backend", ["moto", "dynalite"])
def test_a_thousand_instances_on_worker_processes_with_every_message_twice(
    backend: str, moto_server: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    instances = int(os.environ.get("CONCURRENCY_INSTANCES", "1000"))
    table_at = None
    if backend == "moto":
        runtime = LocalRuntime(workflows=[w.chain], endpoint_url=moto_server, prefix="conc")
    else:
        table_at = request.getfixturevalue("dynalite")
        runtime = dynalite.split_runtime(
            table_at, workflows=[w.chain], endpoint_url=moto_server, prefix="conc"
        )
    with runtime as rt:
        outcome = run_concurrently(
            rt,
            moto_server,
            tmp_path,
            instances=instances,
            params={"steps": 1},
            deadline=time.time() + 360,
            dynamodb=table_at,
        )
        # One scan checks them all: every instance complete, and one journal entry each, written once.
        items = [
            item
            for page in rt.boto3_client("dynamodb").get_paginator("scan").paginate(TableName=rt.table_name)
            for item in page["Items"]
        ]
        status = {i["pk"]["S"]: i["status"]["S"] for i in items if i["sk"]["S"] == "instance"}
        stuck = sorted(k for k, v in status.items() if v != "complete")
        assert len(status) == instances and not stuck, f"stuck: {stuck[:20]} ({len(stuck)} in all)"
        # A run's last entry goes with the finishing write, as the instance item's ``tail``.
        written = [i for i in items if i["sk"]["S"].startswith("j#")]
        written += [e["M"] | {"pk": i["pk"]} for i in items if "tail" in i for e in i["tail"]["L"]]
        entries = Counter(i["pk"]["S"] for i in written)
        assert entries == Counter({f"c{i}": 1 for i in range(instances)}), "each step recorded once"
        assert all(i["rev"]["N"] == "1" for i in written), "never replaced"
        assert rt.client.get("c0").status().output == {"total": 0}
        print(
            f"\nconcurrency: {outcome.instances} instances, {WORKERS} processes, every message twice, "
            f"{outcome.seconds:.0f} s: {outcome.duplicates_turned_away} duplicate wake-ups turned away, "
            f"{outcome.lease_conflicts} journal write conflicts"
        )
        # Duplicates were delivered, and the lease or due check turned them away.
        assert outcome.duplicates_turned_away >= instances


@pytest.mark.timeout(420)
def test_a_limited_workflow_under_the_thousand_instances_with_every_message_twice(
    moto_server: str, tmp_path: Path
) -> None:
    """The same run with concurrency=2 per key over 5 keys: the most step bodies running at once,
    counted inside the bodies across the worker processes, is never above 2 per key (10 in all)."""
    instances = int(os.environ.get("CONCURRENCY_INSTANCES", "1000"))
    counter = tmp_path / "bodies.json"
    with LocalRuntime(workflows=[w.limited], endpoint_url=moto_server, prefix="lim") as rt:
        run_concurrently(
            rt,
            moto_server,
            tmp_path,
            instances=instances,
            params={},
            deadline=time.time() + 360,
            workflow="it-limited",
            params_of=lambda i: {"customer": f"k{i % 5}"},
            extra_env={"LIMIT_COUNTER": str(counter)},
        )
        db = rt.boto3_client("dynamodb")
        assert _finished(db, rt.table_name) == instances
    seen = json.loads(counter.read_text())
    assert max(seen[f"max k{k}"] for k in range(5)) <= 2, seen
    assert seen["max *"] <= 10, seen
    assert seen["max *"] >= 2, seen  # the workers did overlap
