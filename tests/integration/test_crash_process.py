"""A worker process that ends (``os._exit``, as when Lambda's process dies) at each fault point: its
message comes back after the visibility timeout, the lease runs out, and a new process resumes the
instance from the last recorded step. On a moto server, with real worker processes."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from framework.backends.environment import Settings
from framework.backends.store import full_journal
from framework.core.faults import POINTS
from framework.local import LocalRuntime
from tests.integration import workflows as w
from tests.integration.worker_process import ROOT, environment

VISIBILITY = 6  # seconds; longer than a dead invocation's lease (4 s of time + 1 s margin)


@pytest.mark.timeout(180)
def test_a_process_that_dies_at_any_point_is_resumed_by_another(moto_server: str, tmp_path: Path) -> None:
    settings = Settings(sweep_grace=3)
    with LocalRuntime(
        workflows=[w.quick_mixed], endpoint_url=moto_server, prefix="die", settings=settings
    ) as rt:
        rt.boto3_client("sqs").set_queue_attributes(
            QueueUrl=rt.queue_url, Attributes={"VisibilityTimeout": str(VISIBILITY)}
        )
        env = environment(
            rt,
            moto_server,
            WORKFLOWS_TIME_MARGIN="0.5",
            WORKFLOWS_LEASE_MARGIN="1",
            POWERTOOLS_LOG_LEVEL="WARNING",
        )
        marks = tmp_path / "marks"
        marks.mkdir()
        ids = {point: f"die-{point.replace('.', '-')}" for point in POINTS}
        deadline = time.time() + 150
        command = [
            sys.executable,
            "-m",
            "tests.integration.worker_process",
            "--until",
            str(deadline),
            "--invocation-seconds",
            "4",
            "--marks",
            str(marks),
            *[f"--die-at={point}@{instance}" for point, instance in ids.items()],
        ]
        log = tmp_path / "workers.log"
        instances = [rt.client.create("it-quick-mixed", id=instance) for instance in ids.values()]
        deaths = 0
        with log.open("w") as out:  # a file, not a pipe: a full pipe would block the worker
            worker = subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
            try:
                while time.time() < deadline:
                    if worker.poll() is not None:
                        assert worker.returncode == 137, log.read_text()[-2000:]
                        deaths += 1
                        worker = subprocess.Popen(
                            command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
                        )
                    if all(i.status().status == "complete" for i in instances):
                        break
                    rt.sweep()  # the scheduled sweeper, on a short grace
                    time.sleep(1)
            finally:
                worker.terminate()
                worker.wait(timeout=30)
        assert sorted(p.name for p in marks.iterdir()) == sorted(f"{p}@{i}" for p, i in ids.items())
        assert deaths == len(POINTS)
        for inst in instances:
            status = inst.status()
            assert (status.status, status.output) == ("complete", {"sum": 6}), inst.id
            journal = full_journal(rt.env.store, inst.id, 1)
            assert [(e.seq, e.name) for e in journal] == [(0, "a"), (1, "flaky"), (2, "nap"), (3, "c")]
