"""The seed story: extract a file's text, verify it with a flaky API, cool down, save the verdict.

``file-processing`` starts by itself when a file lands under ``incoming/`` in the stack's uploads
bucket (docs/triggers.md): its params are then the S3 event's ``bucket``, ``key``, ``size``... and no
``table``, so the verdict is saved next to the file, as ``verdicts/<key>.json``."""

from __future__ import annotations

import json
import os
from typing import Any

import boto3
from pydantic import BaseModel, Field

from framework import StepContext, workflow


class FileParams(BaseModel):
    bucket: str
    key: str = Field(min_length=1, max_length=1024)
    table: str | None = None  # where the verdict is saved; None: in the bucket, under verdicts/


class FlakyVerifier:
    """Stands in for an outside verification API that fails the first ``failures`` calls per key."""

    def __init__(self, failures: int = 2) -> None:
        self.failures = failures
        self.calls: dict[str, int] = {}

    def verify(self, key: str, text: str, idempotency_key: str) -> dict[str, Any]:
        self.calls[key] = self.calls.get(key, 0) + 1
        if self.calls[key] <= self.failures:
            raise ConnectionError(f"verifier unavailable (call {self.calls[key]})")
        return {"words": len(text.split()), "ok": "forbidden" not in text, "request": idempotency_key}


verifier = FlakyVerifier()


def _client(service: str) -> Any:
    return boto3.client(service, region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))


@workflow("file-processing", params=FileParams, trigger={"s3": {"bucket": "uploads", "prefix": "incoming/"}})
def file_processing(event: Any, step: Any) -> dict[str, Any]:
    params: FileParams = event.payload

    def extract() -> str:
        body = _client("s3").get_object(Bucket=params.bucket, Key=params.key)["Body"].read()
        return str(body.decode("utf-8"))

    text: str = step.do("extract text", extract)

    @step.do(
        "verify",
        config={"retries": {"limit": 3, "delay": "2 seconds", "backoff": "linear"}, "timeout": "30 seconds"},
    )
    def verify(ctx: StepContext) -> dict[str, Any]:
        return verifier.verify(params.key, text, ctx.idempotency_key)

    verdict = verify()
    step.sleep("cool down", "1 hour")

    def save() -> str:
        if params.table is None:  # started by an upload: outside incoming/, so it triggers nothing
            body = json.dumps({"ok": verdict["ok"], "words": verdict["words"]})
            _client("s3").put_object(Bucket=params.bucket, Key=f"verdicts/{params.key}.json", Body=body)
            return params.key
        _client("dynamodb").put_item(
            TableName=params.table,
            Item={
                "pk": {"S": params.key},
                "ok": {"BOOL": verdict["ok"]},
                "words": {"N": str(verdict["words"])},
            },
        )
        return params.key

    saved = step.do("save verdict", save)
    return {"key": saved, "verdict": verdict}


class BatchParams(BaseModel):
    bucket: str
    keys: list[str] = Field(min_length=1, max_length=5000)
    table: str
    max_concurrency: int = Field(default=10, ge=1, le=100)
    tolerated_failures: int = Field(default=0, ge=0)


@workflow("file-batch", params=BatchParams)
async def file_batch(event: Any, step: Any) -> dict[str, Any]:
    """The same story over many uploaded files: each file its own scope (extract, verify, save), at most
    ``max_concurrency`` at once, a failed file tolerated up to ``tolerated_failures``."""
    params: BatchParams = event.payload

    async def one_file(step: Any, key: str) -> dict[str, Any]:
        def extract() -> str:
            return str(_client("s3").get_object(Bucket=params.bucket, Key=key)["Body"].read().decode("utf-8"))

        text: str = await step.do("extract text", extract)

        def verify(ctx: StepContext) -> dict[str, Any]:
            return verifier.verify(key, text, ctx.idempotency_key)

        retries = {"limit": 3, "delay": "2 seconds", "retryable": [ConnectionError]}
        verdict: dict[str, Any] = await step.do("verify", verify, config={"retries": retries})

        def save() -> str:
            item = {"pk": {"S": key}, "ok": {"BOOL": verdict["ok"]}, "words": {"N": str(verdict["words"])}}
            _client("dynamodb").put_item(TableName=params.table, Item=item)
            return key

        await step.do("save verdict", save)
        return {"key": key, "ok": verdict["ok"]}

    batch = await step.map(
        "files",
        params.keys,
        one_file,
        max_concurrency=params.max_concurrency,
        tolerated_failures=params.tolerated_failures,
    )
    await step.sleep("cool down", "10 minutes")
    return {
        "ok": [r["key"] for r in batch.get_results() if r["ok"]],
        "flagged": [r["key"] for r in batch.get_results() if not r["ok"]],
        "failed": [params.keys[i.index] for i in batch.failed()],
    }


class UploadParams(BaseModel):
    bucket: str
    keys: list[str] = Field(min_length=1, max_length=10_000)
    table: str
    max_concurrency: int = Field(default=100, ge=1, le=1000)
    tolerated_failures: int | str = "1%"  # a count, or a percentage of the files


@workflow("file-uploads", params=UploadParams)
def file_uploads(event: Any, step: Any) -> dict[str, Any]:
    """The seed story fanned out across invocations: each uploaded file is a ``file-processing`` child
    instance of its own, at most ``max_concurrency`` at once, so the files spread over Lambda
    concurrency. The parent waits at no cost and joins on one summary entry."""
    params: UploadParams = event.payload
    files = [{"bucket": params.bucket, "key": key, "table": params.table} for key in params.keys]
    batch = step.map(
        "files",
        files,
        "file-processing",
        max_concurrency=params.max_concurrency,
        tolerated_failures=params.tolerated_failures,
    )
    results = batch.get_results()
    return {
        "saved": len(results),
        "flagged": sorted(r["key"] for r in results if not r["verdict"]["ok"]),
        "words": sum(r["verdict"]["words"] for r in results),
        "failed": sorted(params.keys[i.index] for i in batch.failed()),
    }
