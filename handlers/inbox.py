"""The inbox: outside producers start instances and send events through an SQS queue."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from framework.core import metrics
from framework.core.logs import log_failed_record, logger
from framework.manage import inbox
from framework.manage.client import default_client

processor = BatchProcessor(event_type=EventType.SQS)


def record_handler(record: SQSRecord) -> str:
    """One message. Raising marks it failed: SQS redelivers it, then moves it to the inbox's DLQ."""
    try:
        sent_at = int(record.attributes.sent_timestamp) / 1000
        return inbox.apply(default_client(), record.body, message_id=record.message_id, sent_at=sent_at)
    except Exception as exc:
        log_failed_record("inbox message", record, exc)
        raise


# log_event=False whatever POWERTOOLS_LOGGER_LOG_EVENT says: messages hold params and payloads.
@logger.inject_lambda_context(clear_state=True, log_event=False)
@metrics.flushed  # one EMF line per workflow per invocation (framework/core/metrics.py)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return dict(process_partial_response(event=event, record_handler=record_handler, processor=processor))
