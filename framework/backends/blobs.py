"""Where step results too big for a DynamoDB item go: S3, or an in-memory fake."""

from __future__ import annotations

import threading
from typing import Any, Protocol


class BlobStore(Protocol):
    def put(self, key: str, data: bytes) -> None: ...

    def get(self, key: str) -> bytes: ...

    def size(self, key: str) -> int:
        """How many bytes the blob holds, without reading it."""

    def keys(self, prefix: str) -> list[str]:
        """The keys of every blob under ``prefix``."""

    def delete(self, keys: list[str]) -> int:
        """Delete these blobs (one that is gone already is no error); return how many were asked."""


class S3Blobs:
    def __init__(self, client: Any, bucket: str) -> None:
        self._s3 = client
        self._bucket = bucket

    def put(self, key: str, data: bytes) -> None:
        self._s3.put_object(Bucket=self._bucket, Key=key, Body=data, ContentType="application/json")

    def get(self, key: str) -> bytes:
        body: bytes = self._s3.get_object(Bucket=self._bucket, Key=key)["Body"].read()
        return body

    def size(self, key: str) -> int:
        return int(self._s3.head_object(Bucket=self._bucket, Key=key)["ContentLength"])

    def keys(self, prefix: str) -> list[str]:
        pages = self._s3.get_paginator("list_objects_v2").paginate(Bucket=self._bucket, Prefix=prefix)
        return [obj["Key"] for page in pages for obj in page.get("Contents", [])]

    def delete(self, keys: list[str]) -> int:
        for start in range(0, len(keys), 1000):  # DeleteObjects takes 1,000 keys at most
            batch = [{"Key": key} for key in keys[start : start + 1000]]
            self._s3.delete_objects(Bucket=self._bucket, Delete={"Objects": batch, "Quiet": True})
        return len(keys)


class MemoryBlobs:
    def __init__(self) -> None:
        self._data: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def put(self, key: str, data: bytes) -> None:
        with self._lock:
            self._data[key] = data

    def get(self, key: str) -> bytes:
        with self._lock:
            return self._data[key]

    def size(self, key: str) -> int:
        with self._lock:
            return len(self._data[key])

    def keys(self, prefix: str) -> list[str]:
        with self._lock:
            return sorted(key for key in self._data if key.startswith(prefix))

    def delete(self, keys: list[str]) -> int:
        with self._lock:
            for key in keys:
                self._data.pop(key, None)
            return len(keys)
