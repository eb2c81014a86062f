"""The one Powertools Logger of the framework and its handlers."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger

from framework.core import serde

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "lambda-workflows"))


def log_failed_record(what: str, record: Any, error: BaseException) -> None:
    """Log why an SQS record failed; it will be delivered again, then dead-lettered."""
    logger.warning(
        f"{what} failed",
        extra={
            "message_id": record.message_id,
            "receive_count": record.attributes.approximate_receive_count,
            "reason": f"{type(error).__name__}: {serde.error_text(error)}",
        },
    )
