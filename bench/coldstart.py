"""Cold start: importing ``handlers.worker``, and handling a first message, in fresh interpreters.

Every figure is timed inside a child interpreter started by subprocess (interpreter start-up is left
out), against a bare ``import boto3`` timed the same way in the same run. The runs alternate, so that
load on the machine falls on both alike; compare the ratios, not the seconds.

The children share a private bytecode cache (``PYTHONPYCACHEPREFIX``), filled by an untimed warm-up:
every module loads from bytecode, as from a package that ships it, whatever the machine's
``PYTHONDONTWRITEBYTECODE`` and site-packages hold.

Time to first step: a child imports ``handlers.worker`` and calls ``handler`` with the SQS event of a
new instance of a 1-step workflow (``bench.coldstart_flow``), configured from environment variables as
in Lambda, against a moto server on 127.0.0.1. The server, the table and queues, the instance and its
message are set up untimed in other processes.

``python -m bench.coldstart [runs]`` prints this section alone.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.report import Check, Plot, Section, Series, render

ROOT = Path(__file__).resolve().parents[1]
TARGET = 1.5  # issue 6: handlers.worker imports in <= 1.5x the time of import boto3
RUNS = 11
REGION = "us-east-1"
MARK = "COLDSTART-RESULT "  # the child's result line; the worker's own log lines go to stdout too
# What a plain workflow's first step should not load: pydantic, and Powertools' parser models (which
# Powertools' batch loads if pydantic came first).
HEAVY = ("pydantic", "aws_lambda_powertools.utilities.parser")

_IMPORT = """
import json, time
wall, cpu = time.perf_counter(), time.process_time()
import {module}
print(json.dumps([time.perf_counter() - wall, time.process_time() - cpu]))
"""

_FIRST_STEP = """
import json, sys, time
event = json.loads(sys.stdin.read())


class Context:
    function_name = "WorkerFunction"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:WorkerFunction"
    aws_request_id = "coldstart"

    def get_remaining_time_in_millis(self):
        return 30_000


started = time.perf_counter()
import handlers.worker
imported = time.perf_counter()
response = handlers.worker.handler(event, Context())
done = time.perf_counter()
heavy = sorted(m for m in sys.modules if m.startswith({heavy!r}))
result = {{"import": imported - started, "total": done - started, "response": response, "heavy": heavy}}
print("\\n" + {mark!r} + json.dumps(result))
"""

_SERVER = """
import logging, sys
from moto.server import ThreadedMotoServer

logging.getLogger("werkzeug").setLevel(logging.ERROR)
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
host, port = server.get_host_and_port()
print(f"http://{host}:{port}", flush=True)
sys.stdin.read()  # serve until the benchmark closes stdin
server.stop()
"""


@dataclass(frozen=True)
class Spread:
    """Median, min and max of a list of seconds."""

    values: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def __str__(self) -> str:
        return f"{self.median:.3f} s (min {min(self.values):.3f}, max {max(self.values):.3f})"


def child_env(pycache: str, **extra: str) -> dict[str, str]:
    """The environment of a timed child: bytecode read from and written to ``pycache`` only."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return env | {"PYTHONPYCACHEPREFIX": pycache} | extra


def _child(script: str, env: dict[str, str], stdin: str = "") -> str:
    done = subprocess.run(
        [sys.executable, "-c", script],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"cold-start child failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return done.stdout


def import_seconds(module: str, env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds that ``import module`` takes in a fresh interpreter."""
    wall, cpu = json.loads(_child(_IMPORT.format(module=module), env))
    return float(wall), float(cpu)


@contextmanager
def _moto_server() -> Iterator[str]:
    server = subprocess.Popen(
        [sys.executable, "-c", _SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        if not url.startswith("http://"):
            raise RuntimeError("the moto server did not start")
        yield url
    finally:
        assert server.stdin is not None
        server.stdin.close()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


class _Stack:
    """The template's table, queues and bucket on the moto server, and new instances to run."""

    def __init__(self, url: str, pycache: str) -> None:
        import boto3

        from bench.coldstart_flow import one_step
        from framework.api.registry import Registry
        from framework.backends.dynamodb import DynamoStore
        from framework.backends.environment import Environment
        from framework.backends.queue import SqsQueue
        from framework.local.resources import create_resources
        from framework.local.template import load_stack
        from framework.manage.client import WorkflowClient

        session = boto3.Session(
            region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        ddb, sqs, s3 = (session.client(s, endpoint_url=url) for s in ("dynamodb", "sqs", "s3"))
        stack = load_stack(prefix=f"coldstart-{uuid.uuid4().hex[:8]}")
        create_resources(stack, ddb, sqs, s3)
        self._sqs = sqs
        self._queue = stack.urls["WorkQueue"]
        self._arn = stack.arns["WorkQueue"]
        env = Environment(
            store=DynamoStore(ddb, stack.physical["Table"]),
            queue=SqsQueue(sqs, self._queue),
            registry=Registry([one_step]),
        )
        self.client = WorkflowClient(environment=env)
        self.workflow = one_step.name
        # The worker's environment as template.yaml sets it, on the moto server. No profile or config
        # file is read: Lambda has none.
        self.env = child_env(
            pycache,
            AWS_ENDPOINT_URL=url,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_DEFAULT_REGION=REGION,
            AWS_CONFIG_FILE=os.devnull,
            AWS_SHARED_CREDENTIALS_FILE=os.devnull,
            POWERTOOLS_SERVICE_NAME="lambda-workflows",
            POWERTOOLS_LOG_LEVEL="INFO",
            WORKFLOWS_TABLE=stack.physical["Table"],
            WORKFLOWS_QUEUE_URL=self._queue,
            WORKFLOWS_BUCKET=stack.physical["ResultsBucket"],
            WORKFLOW_MODULES="bench.coldstart_flow",
        )
        self.env.pop("AWS_PROFILE", None)

    def new_event(self, n: int) -> tuple[str, dict[str, Any]]:
        """Create an instance; return its id and the SQS event that Lambda would hand the worker."""
        from framework.local.eventsource import sqs_record

        instance_id = f"cold-{n}"
        self.client.create(self.workflow, {"n": n}, id=instance_id)
        (message,) = self._sqs.receive_message(
            QueueUrl=self._queue, MaxNumberOfMessages=1, MessageSystemAttributeNames=["All"]
        )["Messages"]
        self._sqs.delete_message(QueueUrl=self._queue, ReceiptHandle=message["ReceiptHandle"])
        return instance_id, {"Records": [sqs_record(message, self._arn, REGION)]}

    def first_step(self, n: int) -> dict[str, Any]:
        """Run a fresh worker on a new instance's message; check that the instance completed."""
        instance_id, event = self.new_event(n)
        script = _FIRST_STEP.format(mark=MARK, heavy=HEAVY)
        out = _child(script, self.env, stdin=json.dumps(event))
        line = next(line for line in reversed(out.splitlines()) if line.startswith(MARK))
        result: dict[str, Any] = json.loads(line.removeprefix(MARK))
        status = self.client.get(instance_id).status()
        if result["response"] != {"batchItemFailures": []} or status.status != "complete":
            raise RuntimeError(f"first step of {instance_id}: {result['response']}, {status.status}")
        return result


def coldstart_section(runs: int = RUNS) -> Section:
    """Import time of ``handlers.worker`` and time to first step, each against ``import boto3``."""
    if runs < 5:
        raise ValueError("use at least 5 runs of each")
    boto3_runs: list[tuple[float, float]] = []
    worker_runs: list[tuple[float, float]] = []
    first: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="coldstart-pycache-") as pycache, _moto_server() as url:
        env = child_env(pycache)
        stack = _Stack(url, pycache)
        # Untimed: fills the bytecode cache and the OS's file cache.
        import_seconds("boto3", env), import_seconds("handlers.worker", env), stack.first_step(0)
        for n in range(1, runs + 1):
            boto3_runs.append(import_seconds("boto3", env))
            worker_runs.append(import_seconds("handlers.worker", env))
            first.append(stack.first_step(n))
    boto3, worker = Spread([w for w, _ in boto3_runs]), Spread([w for w, _ in worker_runs])
    cpu_ratio = statistics.median(c for _, c in worker_runs) / statistics.median(c for _, c in boto3_runs)
    total = Spread([r["total"] for r in first])
    message = Spread([r["total"] - r["import"] for r in first])
    ratio = worker.median / boto3.median
    heavy = sorted({m for r in first for m in r["heavy"]})
    loaded = ", ".join(p for p in HEAVY if any(m.startswith(p) for m in heavy)) or "neither"
    checks = [
        Check("import boto3, median seconds", boto3.median, note=f"{boto3}, {runs} runs"),
        Check("import handlers.worker, median seconds", worker.median, note=f"{worker}, {runs} runs"),
        Check(
            "import handlers.worker / import boto3",
            ratio,
            f"<= {TARGET}",
            ratio <= TARGET,
            f"wall time, ratio of the medians (CPU time: {cpu_ratio:.2f}); per run: "
            + ", ".join(f"{w[0] / b[0]:.2f}" for w, b in zip(worker_runs, boto3_runs, strict=True)),
        ),
        Check(
            "time to first step / import boto3",
            total.median / boto3.median,
            note=f"import and first message of a 1-step workflow on a moto server: {total}; the message "
            f"alone: {message}; of {' and '.join(HEAVY)}, it loaded: {loaded}",
        ),
    ]
    data = {
        "cold_start": {
            "import_boto3_seconds": [w for w, _ in boto3_runs],
            "import_boto3_cpu_seconds": [c for _, c in boto3_runs],
            "import_worker_seconds": [w for w, _ in worker_runs],
            "import_worker_cpu_seconds": [c for _, c in worker_runs],
            "first_step_seconds": [r["total"] for r in first],
            "first_step_import_seconds": [r["import"] for r in first],
            "first_step_loaded": heavy,
        }
    }
    bars = [("import boto3", boto3), ("import handlers.worker", worker), ("first step", total)]
    plot = Plot(
        "coldstart",
        "Cold start in a fresh interpreter, seconds (median, min-max)",
        "",
        "seconds",
        [
            Series(
                "this run",
                [label for label, _ in bars],
                [s.median for _, s in bars],
                low=[min(s.values) for _, s in bars],
                high=[max(s.values) for _, s in bars],
            )
        ],
        kind="bar",
        hlines={f"target: {TARGET} x import boto3": TARGET * boto3.median},
    )
    return Section(
        f"7. Cold start in fresh interpreters ({runs} alternating runs of each)",
        checks,
        data=data,
        plots=[plot],
    )


if __name__ == "__main__":
    print(render([coldstart_section(int(sys.argv[1]) if len(sys.argv) > 1 else RUNS)]))
