"""What an invocation runs against: store, queue, blobs, clock, workflows and settings.

In Lambda, ``current()`` builds it once per container from environment variables, creating boto3
clients lazily. The local runtime and tests install their own with ``use()``.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from framework.api.registry import REGISTRY, Registry, load_modules
from framework.backends.blobs import BlobStore, S3Blobs
from framework.backends.journal_cache import JournalCache
from framework.backends.queue import MAX_DELAY_SECONDS, Queue, SqsQueue
from framework.backends.store import Store
from framework.core.clock import Clock, SystemClock
from framework.errors import InvalidConfigError

ENV_TABLE = "WORKFLOWS_TABLE"
ENV_QUEUE_URL = "WORKFLOWS_QUEUE_URL"
ENV_BUCKET = "WORKFLOWS_BUCKET"
ENV_MODULES = "WORKFLOW_MODULES"
# "1" in the processes of ``workflows dev`` only, never on Lambda: the dashboard page it serves then
# offers dev's own actions (skipping a wait), which the deployed API has no route for.
ENV_DEV = "WORKFLOWS_DEV"
MAX_HISTORY = 100_000  # journal keys hold six digits of seq; this leaves them far apart


@dataclass(frozen=True, slots=True)
class Settings:
    """Tunables. Each has an environment variable ``WORKFLOWS_<NAME>``."""

    retention_days: int = 30
    max_result_bytes: int = 1024 * 1024  # Cloudflare's limit on a step result
    inline_result_bytes: int = 350_000  # bigger results go to the blob store (DynamoDB item: 400 KB)
    time_margin: float = 10.0  # a new step does not start with less Lambda time left than this
    lease_margin: float = 5.0  # the lease outlives the invocation's deadline by this much
    default_invocation_seconds: float = 900.0  # the deadline when there is no Lambda context
    max_crashes: int = 12  # crashes in a row without progress before the instance errors
    sweep_grace: float = 120.0  # how late a due instance may be before the sweeper re-enqueues it
    park_lead: float = 600.0  # a wait over 900 s is parked: the sweeper sends its wake-up this early
    sweep_limit: int = 1000
    shards: int = 8
    control_check_seconds: float = 1.0  # how often a running invocation looks for pause/terminate
    max_history: int = 10_000  # durable calls one run may make (HistoryLimitError beyond)
    journal_cache_mb: int = 64  # a warm container keeps the journals it replayed: resumes read less
    # A step attempt that runs this long is marked in the instance item, for its status to show
    # (framework.engine.running): two writes for such a step, none for a shorter one.
    running_mark_seconds: float = 1.0
    # Every new wait (sleep, retry delay, timeout) lasts this fraction of its time: under 1 for local
    # development only (``workflows dev --fast``), never on AWS.
    wait_scale: float = 1.0

    def __post_init__(self) -> None:
        if not 1 <= self.max_history <= MAX_HISTORY:
            raise InvalidConfigError(
                f"WORKFLOWS_MAX_HISTORY must be 1 to {MAX_HISTORY}, not {self.max_history}"
            )
        if not 0 < self.park_lead + self.sweep_grace < MAX_DELAY_SECONDS:
            # A parked wait's wake-up is sent park_lead + sweep_grace before it ends, as one SQS delay.
            raise InvalidConfigError(
                f"WORKFLOWS_PARK_LEAD + WORKFLOWS_SWEEP_GRACE must be under {MAX_DELAY_SECONDS} s, not "
                f"{self.park_lead + self.sweep_grace:g}"
            )
        if self.running_mark_seconds < 0:
            raise InvalidConfigError(
                f"WORKFLOWS_RUNNING_MARK_SECONDS must be 0 or more, not {self.running_mark_seconds}"
            )
        if not 0 < self.wait_scale <= 1:
            raise InvalidConfigError(
                f"WORKFLOWS_WAIT_SCALE must be over 0 and at most 1, not {self.wait_scale}"
            )
        if self.journal_cache_mb < 0:
            raise InvalidConfigError(
                f"WORKFLOWS_JOURNAL_CACHE_MB must be 0 or more, not {self.journal_cache_mb}"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name in cls.__dataclass_fields__:
            raw = environ.get(f"WORKFLOWS_{name.upper()}")
            if raw is None:
                continue
            kind = type(getattr(cls(), name))
            try:
                values[name] = kind(raw)
                if not math.isfinite(values[name]):  # float("nan"), float("inf"): no setting means them
                    raise ValueError(raw)
            except ValueError:
                raise InvalidConfigError(
                    f"WORKFLOWS_{name.upper()}={raw!r} is not a valid {kind.__name__}"
                ) from None
        return cls(**values)


@dataclass(slots=True)
class Environment:
    store: Store
    queue: Queue
    clock: Clock = field(default_factory=SystemClock)
    registry: Registry = REGISTRY
    blobs: BlobStore | None = None
    settings: Settings = field(default_factory=Settings)
    journals: JournalCache | None = None  # built from ``settings`` on first use (``journal_cache()``)
    # A replay check (framework.manage.replay_check) on a throwaway store: no step body runs; a call
    # that would run one waits for ever instead, so the check ends where the recorded history does.
    replay_only: bool = False

    def journal_cache(self) -> JournalCache:
        if self.journals is None:
            self.journals = JournalCache(self.settings.journal_cache_mb * 1024 * 1024)
        return self.journals


def from_env(environ: Mapping[str, str] | None = None, **clients: Any) -> Environment:
    """Build the Environment from environment variables. ``clients`` may inject boto3 clients."""
    from framework.backends.dynamodb import DynamoStore

    environ = os.environ if environ is None else environ
    missing = [name for name in (ENV_TABLE, ENV_QUEUE_URL) if not environ.get(name)]
    if missing:
        raise InvalidConfigError(f"set {' and '.join(missing)} to the table name and work queue URL")
    if environ.get(ENV_MODULES):
        # A module that fails to import must not stop the container: its workflows' instances error
        # with the reason (Registry.get), and every other workflow runs on.
        failed = load_modules(environ[ENV_MODULES], strict=False)
        if failed:
            from framework.core.logs import logger

            logger.error("workflow modules failed to import", extra={"modules": failed})
    settings = Settings.from_env(environ)
    bucket = environ.get(ENV_BUCKET)
    return Environment(
        store=DynamoStore(
            clients.get("dynamodb") or LazyClient("dynamodb"), environ[ENV_TABLE], shards=settings.shards
        ),
        queue=SqsQueue(clients.get("sqs") or LazyClient("sqs"), environ[ENV_QUEUE_URL]),
        blobs=S3Blobs(clients.get("s3") or LazyClient("s3"), bucket) if bucket else None,
        settings=settings,
    )


_clients: dict[str, Any] = {}
_lock = threading.Lock()
_default: Environment | None = None
_override: list[Environment] = []


def client(service: str) -> Any:
    """A boto3 client, created once per container and reused."""
    with _lock:
        if service not in _clients:
            import boto3

            _clients[service] = boto3.client(service)
        return _clients[service]


class LazyClient:
    """Stands for ``client(service)`` and creates it on first use. A cold start then pays only for
    the clients its messages use: a step that stores no large result never creates S3's client
    (about 60 ms), an early hop never creates DynamoDB's."""

    __slots__ = ("service",)

    def __init__(self, service: str) -> None:
        self.service = service

    def __getattr__(self, name: str) -> Any:
        return getattr(client(self.service), name)

    def __repr__(self) -> str:
        return f"LazyClient({self.service!r})"


def current() -> Environment:
    """The Environment installed by ``use()``, else the one built from environment variables."""
    global _default  # noqa: PLW0603 - one Environment per container, built on first use
    if _override:
        return _override[-1]
    with _lock:
        cached = _default
    if cached is None:
        cached = from_env()
        with _lock:
            _default = cached
    return cached


@contextmanager
def use(env: Environment) -> Iterator[Environment]:
    """Make ``env`` the current Environment inside the block (local runtime, tests)."""
    _override.append(env)
    try:
        yield env
    finally:
        _override.remove(env)
