"""Shared fixtures. Tests never reach real AWS: fake credentials and a region are set for every test."""

from __future__ import annotations

import os

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
