"""Cold start: what the worker imports, measured by module, not by time (bench/coldstart.py times it).

The worker imports at init what every message needs (boto3 and the DynamoDB store, Powertools' batch
processing and Logger, the engine) and nothing that only some workflows need: pydantic, Powertools'
parser models, the client's modules. A plain workflow's first step loads no pydantic either; a step
config or a model does, on first use.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from framework import RetryPolicy, StepConfig
from framework.core.config import DEFAULTS, step_config
from framework.engine.invocation import BadMessageError, WakeMessage

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("pydantic", "aws_lambda_powertools.utilities.parser")
OPTIONAL = {
    "framework.manage.client",
    "framework.manage.history",
    "framework.manage.inbox",
    "framework.core.config_models",
}
NEEDED = {
    "boto3",
    "framework.backends.dynamodb",
    "aws_lambda_powertools.utilities.batch",
    "framework.engine.invocation",
}

# Snapshots of sys.modules in one fresh interpreter: after `import framework`, after importing the
# worker, after a plain workflow's first message (in memory), after a step with a config dict.
_CHILD = """
import json, sys

snapshots = {}
def snap(name):
    snapshots[name] = sorted(sys.modules)

import framework
snap("framework")
import handlers.worker
snap("worker")

from framework import workflow
from framework.api.registry import Registry
from framework.backends.blobs import MemoryBlobs
from framework.backends.environment import Environment, use
from framework.backends.memory import MemoryStore
from framework.backends.queue import MemoryQueue
from framework.core.clock import VirtualClock
from framework.manage.client import WorkflowClient


@workflow("coldstart-plain")
def plain(event, step):
    return step.do("only", lambda: {"ok": True})


@workflow("coldstart-configured")
def configured(event, step):
    return step.do("only", lambda: 1, config={"retries": {"limit": 1}})


class Context:
    function_name = "WorkerFunction"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:WorkerFunction"
    aws_request_id = "coldstart"

    def get_remaining_time_in_millis(self):
        return 30_000


clock = VirtualClock(start=1_700_000_000.0)
env = Environment(
    store=MemoryStore(), queue=MemoryQueue(clock), clock=clock, registry=Registry([plain, configured]),
    blobs=MemoryBlobs(),
)
client = WorkflowClient(environment=env)


def run(name):
    client.create(name, {}, id=name)
    body, _ = env.queue.sent[-1]
    record = {
        "messageId": name, "receiptHandle": "r", "body": body, "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:work", "awsRegion": "us-east-1",
    }
    response = handlers.worker.handler({"Records": [record]}, Context())
    assert response == {"batchItemFailures": []}, response
    assert client.get(name).status().status == "complete"


with use(env):
    run("coldstart-plain")
    snap("plain step")
    run("coldstart-configured")
    snap("configured step")
print(json.dumps(snapshots))
"""


@pytest.fixture(scope="module")
def loaded() -> dict[str, set[str]]:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    snapshots: dict[str, list[str]] = json.loads(done.stdout.splitlines()[-1])
    return {name: set(modules) for name, modules in snapshots.items()}


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.startswith(HEAVY))


def test_import_framework_loads_no_submodule_until_a_name_is_used(loaded: dict[str, set[str]]) -> None:
    assert sorted(m for m in loaded["framework"] if m.startswith("framework.")) == []


def test_the_worker_imports_what_every_message_needs_and_nothing_optional(
    loaded: dict[str, set[str]],
) -> None:
    worker = loaded["worker"]
    assert _heavy(worker) == []
    assert sorted(OPTIONAL & worker) == []
    # Tracing off (the template's default): the X-Ray SDK is never loaded, not even by a message.
    assert [m for m in loaded["plain step"] if m.startswith("aws_xray_sdk")] == []
    # Imported with the handler, not by the first message: the import-time target is not met by
    # shifting the cost of what every message needs into the first one.
    assert sorted(NEEDED - worker) == []


def test_a_plain_first_step_loads_no_pydantic_and_a_step_config_does(loaded: dict[str, set[str]]) -> None:
    assert _heavy(loaded["plain step"]) == []
    assert "pydantic" in loaded["configured step"]
    # Powertools' batch was imported before pydantic: its parser models stay unloaded.
    assert not [m for m in loaded["configured step"] if m.startswith(HEAVY[1])]


def test_the_default_step_config_holds_the_models_defaults() -> None:
    default: Any = step_config(None, step="s")  # typed as StepConfig; it is the pydantic-free stand-in
    assert default is DEFAULTS
    model = StepConfig()
    for name in StepConfig.model_fields:
        if name != "retries":
            assert getattr(default, name) == getattr(model, name), name
    for name in RetryPolicy.model_fields:
        assert getattr(default.retries, name) == getattr(model.retries, name), name
    assert [default.retries.delay_before_retry(n) for n in range(1, 8)] == [
        model.retries.delay_before_retry(n) for n in range(1, 8)
    ]
    # What it does not hold comes from the model itself.
    assert default.model_dump() == model.model_dump()
    with pytest.raises(AttributeError):
        default.timeout = 1.0  # type: ignore[misc]


class _PydanticWakeMessage(BaseModel):
    """The pydantic model that WakeMessage replaced: its parser and writer are the reference."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, max_length=100)
    wake_at: float | None = None


@pytest.mark.parametrize(
    "body",
    [
        '{"id":"a"}',
        '{"id":"a","wake_at":1700000000.25}',
        '{"id":"a","wake_at":5}',
        '{"id":"a","wake_at":null}',
        '{"id":"a","wake_at":"5.5"}',
        '{"id":"a","wake_at":true}',
        '{"id":"a","wake_at":1e400}',
        ' {"id":"é-ü","wake_at":12345678901234567890123} ',
        '{"id":"a","id":"b"}',
        '{"id":"' + "x" * 100 + '"}',
        '{"id":"' + "x" * 101 + '"}',
        '{"id":""}',
        '{"id":5}',
        '{"id":null}',
        '{"wake_at":1}',
        '{"id":"a","x":1}',
        '{"id":"a","wake_at":"soon"}',
        '{"id":"a","wake_at":[1]}',
        "[1]",
        '"x"',
        "nope",
        "",
        "[" * 100_000,
    ],
)
def test_wake_messages_parse_as_the_pydantic_model_did(body: str) -> None:
    try:
        reference: _PydanticWakeMessage | None = _PydanticWakeMessage.model_validate_json(body)
    except ValidationError:
        reference = None
    if reference is None:
        with pytest.raises(BadMessageError, match=r"^not a wake-up message: "):
            WakeMessage.parse(body)
        return
    parsed = WakeMessage.parse(body)
    assert (parsed.id, parsed.wake_at) == (reference.id, reference.wake_at)
    for exclude_none in (True, False):
        assert parsed.model_dump_json(exclude_none=exclude_none) == reference.model_dump_json(
            exclude_none=exclude_none
        )


@pytest.mark.parametrize("wake_at", [None, 0, 1_700_000_000, 1_700_000_000.125, 1e20, math.inf, math.nan])
def test_wake_messages_are_written_as_the_pydantic_model_wrote_them(wake_at: Any) -> None:
    ours = WakeMessage(id="order-1", wake_at=wake_at)
    reference = _PydanticWakeMessage(id="order-1", wake_at=wake_at)
    for exclude_none in (True, False):
        assert ours.model_dump_json(exclude_none=exclude_none) == reference.model_dump_json(
            exclude_none=exclude_none
        )


@pytest.mark.parametrize("fields", [{"id": ""}, {"id": "x" * 101}, {"id": 5}, {"id": "a", "wake_at": "x"}])
def test_bad_wake_messages_are_value_errors(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        WakeMessage(**fields)


def test_from_env_creates_each_boto3_client_on_first_use(monkeypatch: pytest.MonkeyPatch) -> None:
    from framework.backends import environment

    created: list[str] = []

    class FakeClient:
        def __init__(self, service: str) -> None:
            self.service = service

        def put_object(self, **kwargs: Any) -> None:
            pass

    def client(service: str) -> FakeClient:
        created.append(service)
        return FakeClient(service)

    monkeypatch.setattr(environment, "client", client)
    env = environment.from_env({"WORKFLOWS_TABLE": "t", "WORKFLOWS_QUEUE_URL": "q", "WORKFLOWS_BUCKET": "b"})
    assert created == []
    assert env.blobs is not None
    env.blobs.put("k", b"{}")
    env.blobs.put("k", b"{}")
    assert created == ["s3", "s3"]  # the real client() creates each once per container and reuses it
