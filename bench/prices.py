"""The dated price table of every benchmark: us-east-1 list prices, in dollars per unit.

Most come from ``shared/reference/platform-limits.md`` ("AWS limits and prices that bound the design",
2026); the few marked otherwise are AWS's public pricing pages as read on the same date. Free tiers are
left out. Re-check all of them before quoting them to users.
"""

from __future__ import annotations

PRICES_AS_OF = "2026"
PRICE_TABLE = 'shared/reference/platform-limits.md, "AWS limits and prices that bound the design" (2026)'
MILLION = 1_000_000

# DynamoDB on-demand
WRITE_UNIT = 0.625e-6  # 1 KB written; a transaction bills 2
READ_UNIT = 0.125e-6  # 4 KB strongly consistent; eventually consistent bills half

# SQS standard queue
SQS_REQUEST = 0.40e-6  # send, receive and delete each count (per 64 KB chunk)

# Lambda
LAMBDA_REQUEST = 0.20e-6
LAMBDA_GB_S_ARM64 = 0.0000133334
LAMBDA_GB_S_X86 = 0.0000166667

# S3 Standard
S3_PUT = 0.005 / 1000
S3_GET = 0.0004 / 1000

# API Gateway HTTP API, per request (first 300 million a month)
HTTP_API_REQUEST = 1.00e-6

# AWS pricing pages (2026), not in the shared table: storage and logs, which grow with retention and
# log volume rather than with calls.
DYNAMODB_STORAGE_GB_MONTH = 0.25  # Standard table class, first 25 GB a month free
DYNAMODB_PITR_GB_MONTH = 0.20  # continuous backups (the template enables point-in-time recovery)
DYNAMODB_ITEM_OVERHEAD = 100  # bytes of storage each item and each index entry adds
LOGS_INGEST_GB = 0.50  # CloudWatch Logs, standard class


def prices() -> dict[str, float | str]:
    """The table as a dict, for results.json."""
    return {
        "as_of": PRICES_AS_OF,
        "source": PRICE_TABLE,
        "dynamodb_write_unit": WRITE_UNIT,
        "dynamodb_read_unit": READ_UNIT,
        "sqs_request": SQS_REQUEST,
        "lambda_request": LAMBDA_REQUEST,
        "lambda_gb_s_arm64": LAMBDA_GB_S_ARM64,
        "lambda_gb_s_x86": LAMBDA_GB_S_X86,
        "s3_put": S3_PUT,
        "s3_get": S3_GET,
        "http_api_request": HTTP_API_REQUEST,
        "dynamodb_storage_gb_month": DYNAMODB_STORAGE_GB_MONTH,
        "dynamodb_pitr_gb_month": DYNAMODB_PITR_GB_MONTH,
        "logs_ingest_gb": LOGS_INGEST_GB,
    }
