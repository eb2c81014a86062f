"""The sweeper: on a schedule, re-enqueue instances that are due but have no message in flight."""

from __future__ import annotations

from typing import Any

import framework.backends.dynamodb  # noqa: F401 - every run reads the table: import it (and boto3) at init
from framework.core.logs import logger
from framework.engine.sweeper import sweep


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    return {"requeued": sweep(context=context)}
