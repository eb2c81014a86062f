"""Shared fixtures. Tests never reach real AWS: fake credentials and a region are set for every test."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

# Set before any test module imports boto3 or the framework's logger.
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "lambda-workflows-tests")


@pytest.fixture(autouse=True)
def fake_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    for key in (
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "WORKFLOWS_TABLE",
        "WORKFLOWS_QUEUE_URL",
        "WORKFLOW_MODULES",
    ):
        monkeypatch.delenv(key, raising=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def moto_server() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.moto_serial", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        from tests.dynalite import wait_until_listening

        wait_until_listening(port, proc, "the moto server")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def dynalite() -> Iterator[str]:
    """One dynalite server for the session on 127.0.0.1 (see tests/dynalite.py), stopped at its end.
    Tests make tables of their own on it."""
    from tests.dynalite import dynalite_server

    with dynalite_server(free_port()) as url:
        yield url
