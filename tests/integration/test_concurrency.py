"""Real concurrency: worker processes on a moto server (127.0.0.1), every message delivered twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from framework.local import LocalRuntime
from tests.integration import workflows as w

ROOT = Path(__file__).resolve().parents[2]
INSTANCES = 40
WORKERS = 3


def test_worker_processes_with_duplicates_record_each_step_once(moto_server: str, tmp_path: Path) -> None:
    with LocalRuntime(workflows=[w.sleepy], endpoint_url=moto_server, prefix="conc") as rt:
        env = dict(
            os.environ,
            AWS_ENDPOINT_URL=moto_server,
            WORKFLOWS_TABLE=rt.table_name,
            WORKFLOWS_QUEUE_URL=rt.queue_url,
            WORKFLOWS_BUCKET=rt.bucket_name,
            WORKFLOW_MODULES="tests.integration.workflows",
            POWERTOOLS_LOG_LEVEL="INFO",
            PYTHONPATH=str(ROOT),
        )
        until = time.time() + 90
        logs = [tmp_path / f"worker{n}.log" for n in range(WORKERS)]
        workers = []
        for log in logs:
            with log.open("w") as out:  # a file, not a pipe: a full pipe would block the worker
                workers.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "tests.integration.worker_process", "--until", str(until)],
                        env=env,
                        cwd=ROOT,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                    )
                )
        instances = [
            rt.client.create("it-sleepy", {"sleep": "2 seconds"}, id=f"c{i}") for i in range(INSTANCES)
        ]
        try:
            pending = set(range(INSTANCES))
            while pending and time.time() < until:
                pending = {i for i in pending if instances[i].status().status != "complete"}
                time.sleep(0.5)
        finally:
            for proc in workers:
                proc.terminate()
                proc.wait(timeout=30)
        assert not pending, f"stuck: {sorted(pending)}"
        for inst in instances:
            assert inst.status().output == {"total": 45}
            journal = rt.env.store.load_journal(inst.id, 1)
            assert [e.seq for e in journal] == list(range(11))
            assert all(e.rev == 1 for e in journal)  # each entry written once, never replaced
        lines = [
            json.loads(line) for log in logs for line in log.read_text().splitlines() if line.startswith("{")
        ]
        skipped = sum(1 for line in lines if line.get("message") == "wake-up skipped")
        lost = sum(1 for line in lines if str(line.get("message", "")).startswith("lease lost"))
        print(
            f"\nconcurrency: {INSTANCES} instances, {WORKERS} processes, every message twice: "
            f"{skipped} duplicate wake-ups turned away, {lost} journal write conflicts"
        )
        assert skipped >= INSTANCES  # duplicates were delivered, and the lease or due check turned them away
