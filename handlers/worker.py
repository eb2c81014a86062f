"""The worker: an SQS event source of wake-up messages, with partial batch failure reporting.

What every message needs is imported here, at init: Powertools' batch processing and Logger, the engine,
and the DynamoDB store with boto3. What only some workflows need is imported on first use: pydantic (for
models and step configs), S3 (for large results) and the client's modules.
"""

from __future__ import annotations

from typing import Any

# Before anything that may import pydantic: Powertools' batch types load its parser models when
# pydantic is already imported, which the worker does not use.
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

import framework.backends.dynamodb  # noqa: F401 - the store of every message; environment.from_env uses it
from framework.core import metrics
from framework.core.logs import log_failed_record, logger
from framework.engine.invocation import process_message

processor = BatchProcessor(event_type=EventType.SQS)


def record_handler(record: SQSRecord, lambda_context: Any = None) -> str:
    """One message. Raising marks it failed: SQS redelivers it, then moves it to the DLQ."""
    try:
        return process_message(record.body, lambda_context).value
    except Exception as exc:
        log_failed_record("message", record, exc)
        raise


# log_event=False whatever POWERTOOLS_LOGGER_LOG_EVENT says: the log lines name what matters.
@logger.inject_lambda_context(clear_state=True, log_event=False)
@metrics.flushed  # one EMF line per workflow per invocation (framework/core/metrics.py)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return dict(
        process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
    )
