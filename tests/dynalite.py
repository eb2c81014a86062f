"""dynalite: a second DynamoDB implementation (Node, on LevelDB in memory), started by the tests.

moto's DynamoDB is the one the other tests use; running the store contract and the duplicate-delivery
test on dynalite as well means moto's behaviour is never the only evidence. ``make test`` installs it
(``npm ci`` in ``infra/dynalite``, pinned by its package-lock.json).

What dynalite lacks, and the tests that need it skip on it (``test_dynalite_lacks_what_the_skips_say``
checks that these are still missing):

- TransactWriteItems (an unknown operation): ``send_event`` and ``create_batch`` need it.
- TTL (UpdateTimeToLive is an unknown operation): its tables are created without one; nothing in the
  tests waits for DynamoDB to delete items.
- ReturnValuesOnConditionCheckFailure: accepted and ignored, so a failed condition carries no item;
  the store reads the item then (``DynamoStore.acquire_lease``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
CLI = ROOT / "infra" / "dynalite" / "node_modules" / "dynalite" / "cli.js"
NO_TRANSACTIONS = "dynalite has no TransactWriteItems (UnknownOperationException), which this needs"
# How long dynalite keeps a new table CREATING. Its default is 500 ms; 200 ms is as sure to catch a
# write that does not wait (a request takes a few ms) and costs each test that creates a table less.
CREATE_TABLE_MS = 200


def wait_until_listening(port: int, proc: subprocess.Popen[Any], what: str) -> None:
    """Wait (up to 10 s) until ``proc`` accepts connections on 127.0.0.1:``port``."""
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return
        except OSError:
            assert proc.poll() is None, f"{what} exited with {proc.returncode}"
            time.sleep(0.1)


@contextmanager
def dynalite_server(port: int) -> Iterator[str]:
    """Run dynalite on 127.0.0.1:``port`` (in memory) until the block ends; yield its URL."""
    if not CLI.is_file():
        why = f"dynalite is not installed ({CLI.relative_to(ROOT)}): `make test` installs it"
        if os.environ.get("CI"):
            pytest.fail(why)  # CI must run the second backend, never skip it quietly
        pytest.skip(why)
    proc = subprocess.Popen(
        [
            "node",
            str(CLI),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--createTableMs",
            str(CREATE_TABLE_MS),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_listening(port, proc, "dynalite")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def client(url: str) -> Any:
    import boto3

    return boto3.client(
        "dynamodb",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def new_table(db: Any) -> str:
    """A new table as template.yaml defines it (without its TTL: dynalite has none), ACTIVE."""
    from framework.local.resources import create_table
    from framework.local.template import load_stack

    stack = load_stack(prefix=f"dyn-{uuid.uuid4().hex[:8]}")
    stack.resources["Table"]["Properties"].pop("TimeToLiveSpecification")
    return create_table(stack, "Table", db)


def split_runtime(dynamodb_url: str, **kwargs: Any) -> Any:
    """A ``LocalRuntime`` whose table is on dynalite (``dynamodb_url``) and whose queues and bucket are on
    its ``endpoint_url`` (a moto server). Its table has no TTL: dynalite has none."""
    from framework.local import LocalRuntime

    class SplitRuntime(LocalRuntime):
        def endpoint_for(self, service: str) -> str | None:
            return dynamodb_url if service == "dynamodb" else super().endpoint_for(service)

    runtime = SplitRuntime(**kwargs)
    runtime._stack.resources["Table"]["Properties"].pop("TimeToLiveSpecification")
    return runtime
