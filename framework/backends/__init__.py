"""Storage, queue and blob backends (DynamoDB, SQS, S3 and in-memory ones) and the ``Environment`` that
holds them. They know records, not the engine: nothing here imports ``framework.engine``."""
