"""The whole engine suite of tests/unit, rerun on DynamoDB (moto in-process) instead of the fake."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto import mock_aws

from tests.unit import harness
from tests.unit.test_deadline_cuts import *  # noqa: F403
from tests.unit.test_engine import *  # noqa: F403 - collect every engine test here too
from tests.unit.test_engine_failures import *  # noqa: F403
from tests.unit.test_invoke import *  # noqa: F403
from tests.unit.test_management import *  # noqa: F403
from tests.unit.test_robustness import *  # noqa: F403
from tests.unit.test_saga import *  # noqa: F403
from tests.unit.test_sweeper_and_logs import *  # noqa: F403
from tests.unit.test_sweeper_marks import *  # noqa: F403


@pytest.fixture(autouse=True)
def on_dynamodb() -> Iterator[None]:
    harness.BACKEND["store"] = "dynamodb"
    try:
        with mock_aws():
            yield
    finally:
        harness.BACKEND["store"] = "memory"
