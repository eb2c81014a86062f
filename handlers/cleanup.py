"""The cleanup: a DynamoDB stream of instance items removed by TTL; purges what each left behind."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord

from framework.backends.dynamodb_items import INSTANCE_SK
from framework.core.logs import logger
from framework.engine import cleanup

processor = BatchProcessor(event_type=EventType.DynamoDBStreams)
TTL_PRINCIPAL = "dynamodb.amazonaws.com"


def record_handler(record: DynamoDBRecord) -> int:
    """Purge after a TTL removal of an instance item; ignore every other change."""
    raw = record.raw_event
    keys = (raw.get("dynamodb") or {}).get("Keys") or {}
    by_ttl = (raw.get("userIdentity") or {}).get("principalId") == TTL_PRINCIPAL
    if raw.get("eventName") != "REMOVE" or not by_ttl or keys.get("sk", {}).get("S") != INSTANCE_SK:
        return 0
    return cleanup.purge(keys["pk"]["S"])


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return dict(process_partial_response(event=event, record_handler=record_handler, processor=processor))
