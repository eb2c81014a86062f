"""The one Powertools Logger of the framework and its handlers."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger

from framework.core import serde


def _level() -> str | None:
    """On Lambda, the template's ``POWERTOOLS_LOG_LEVEL`` (Powertools reads it); a process off Lambda
    without it (a test, a script, the fakes) logs at WARNING, so a local run prints only what went wrong."""
    if os.environ.get("POWERTOOLS_LOG_LEVEL") or os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        return None
    return "WARNING"


logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "lambda-workflows"), level=_level())


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
