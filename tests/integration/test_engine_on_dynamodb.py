"""The whole engine suite of tests/unit, rerun on DynamoDB (moto in-process) instead of the fake."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from moto import mock_aws

from tests.unit import harness
from tests.unit.test_batch_checks import *  # noqa: F403 - batch results read back from DynamoDB and S3
from tests.unit.test_callbacks import (  # the sends at the moment a callback times out
    test_a_crash_after_the_timeouts_first_write_settles_it_on_replay,  # noqa: F401
    test_a_result_sent_at_the_deadline_after_the_timeout_was_recorded_is_refused,  # noqa: F401
    test_a_result_sent_at_the_deadline_before_the_wake_up_counts,  # noqa: F401
    test_a_result_stored_while_the_worker_writes_the_timeout_still_counts,  # noqa: F401
)
from tests.unit.test_deadline_cuts import *  # noqa: F403
from tests.unit.test_engine import *  # noqa: F403 - collect every engine test here too
from tests.unit.test_engine_failures import *  # noqa: F403
from tests.unit.test_fanout import *  # noqa: F403
from tests.unit.test_idempotent_create import *  # noqa: F403 - the put returns the existing item
from tests.unit.test_invoke import *  # noqa: F403
from tests.unit.test_limits import *  # noqa: F403 - slots, tickets and waiters on DynamoDB items
from tests.unit.test_management import *  # noqa: F403
from tests.unit.test_robustness import *  # noqa: F403
from tests.unit.test_saga import *  # noqa: F403
from tests.unit.test_sweeper_and_logs import *  # noqa: F403
from tests.unit.test_sweeper_marks import *  # noqa: F403

# Fewer examples on moto, where each takes seconds: the fakes run the full count.
del test_any_order_of_duplicate_and_reordered_reports_joins_each_item_once  # noqa: F821


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**REPORT_SCHEDULES)  # noqa: F405
def test_map_reports_in_any_order_on_dynamodb(
    order: list[int], duplicates: list[int], drain: list[bool]
) -> None:
    check_reports_in_any_order(order, duplicates, drain)  # noqa: F405


@pytest.fixture(autouse=True)
def on_dynamodb() -> Iterator[None]:
    harness.BACKEND["store"] = "dynamodb"
    try:
        with mock_aws():
            yield
    finally:
        harness.BACKEND["store"] = "memory"
