"""What ``step.map`` and ``step.parallel`` return: a :class:`BatchResult`, with AWS durable functions'
field names, and the completion policy that decides when a batch ends."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from framework.errors import InvalidConfigError, StepFailedError, rebuilt_error


class BatchItemStatus(StrEnum):
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    STARTED = "STARTED"  # still running when a completion policy ended the batch


class CompletionReason(StrEnum):
    ALL_COMPLETED = "ALL_COMPLETED"
    MIN_SUCCESSFUL_REACHED = "MIN_SUCCESSFUL_REACHED"
    FAILURE_TOLERANCE_EXCEEDED = "FAILURE_TOLERANCE_EXCEEDED"


@dataclass(frozen=True, slots=True)
class BatchError:
    """How an item failed: the error's ``type`` and ``message``, and, when a step inside the item failed
    for good, that ``step`` and its ``attempts``."""

    type: str
    message: str
    step: str | None = None
    attempts: int = 0

    @classmethod
    def of(cls, error: BaseException, message: str) -> BatchError:
        """``message``: the error's text as the engine stores it (cut, UTF-8). A failed step keeps its
        original error's message, as its journal entry stored it."""
        if isinstance(error, StepFailedError):
            return cls(error.error_type, error.error_message, error.step, error.attempts)
        return cls(type(error).__name__, message)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.step is not None:
            data |= {"step": self.step, "attempts": self.attempts}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BatchError:
        return cls(data["type"], data["message"], data.get("step"), data.get("attempts", 0))

    def exception(self, where: str) -> Exception:
        """The error to raise for it: the same on first run and on replay."""
        return rebuilt_error(where, self.to_dict())


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One item of a map, or one branch of a parallel, by its position."""

    index: int
    status: BatchItemStatus
    result: Any = None
    error: BatchError | None = None

    def to_dict(self) -> dict[str, Any]:
        error = self.error.to_dict() if self.error else None
        return {"index": self.index, "status": self.status.value, "result": self.result, "error": error}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BatchItem:
        error = BatchError.from_dict(data["error"]) if data.get("error") else None
        return cls(data["index"], BatchItemStatus(data["status"]), data.get("result"), error)


@dataclass(frozen=True, slots=True)
class BatchResult:
    """The outcome of a batch: every item that started, in index order, and why the batch ended.
    Items a completion policy kept from starting are not in ``all``."""

    all: list[BatchItem]
    completion_reason: CompletionReason
    name: str = field(default="batch", compare=False)

    def succeeded(self) -> list[BatchItem]:
        return [i for i in self.all if i.status is BatchItemStatus.SUCCEEDED]

    def failed(self) -> list[BatchItem]:
        return [i for i in self.all if i.status is BatchItemStatus.FAILED]

    def started(self) -> list[BatchItem]:
        return [i for i in self.all if i.status is BatchItemStatus.STARTED]

    @property
    def status(self) -> BatchItemStatus:
        return BatchItemStatus.FAILED if self.has_failure else BatchItemStatus.SUCCEEDED

    @property
    def has_failure(self) -> bool:
        return any(i.status is BatchItemStatus.FAILED for i in self.all)

    def throw_if_error(self) -> None:
        """Raise the first failed item's error, if any item failed."""
        for item in self.failed():
            assert item.error is not None
            raise item.error.exception(f"{self.name}[{item.index}]")

    def get_results(self) -> list[Any]:
        """The results of the items that succeeded, in index order."""
        return [i.result for i in self.succeeded()]

    def get_errors(self) -> list[BatchError | None]:
        return [i.error for i in self.failed()]

    @property
    def success_count(self) -> int:
        return len(self.succeeded())

    @property
    def failure_count(self) -> int:
        return len(self.failed())

    @property
    def started_count(self) -> int:
        return len(self.started())

    @property
    def total_count(self) -> int:
        return len(self.all)

    def to_dict(self) -> dict[str, Any]:
        return {"all": [i.to_dict() for i in self.all], "completionReason": self.completion_reason.value}

    @classmethod
    def from_dict(cls, data: dict[str, Any], name: str = "batch") -> BatchResult:
        items = [BatchItem.from_dict(i) for i in data["all"]]
        return cls(items, CompletionReason(data["completionReason"]), name)


@dataclass(frozen=True, slots=True)
class CompletionPolicy:
    """When a batch of ``total`` items ends. With neither field set it fails fast: at the first failed
    item. ``tolerated_failures`` is a count, or a percentage of ``total`` ("10%"); with only
    ``min_successful`` set, the batch fails once that many successes can no longer be reached."""

    total: int
    min_successful: int | None = None
    tolerated_count: int | None = None
    tolerated_percent: float | None = None

    @classmethod
    def of(cls, what: str, total: int, min_successful: Any, tolerated_failures: Any) -> CompletionPolicy:
        """Check the arguments of ``what`` (a map or parallel); raise InvalidConfigError naming it."""
        if min_successful is not None and (not _is_count(min_successful) or not 0 <= min_successful <= total):
            raise InvalidConfigError(
                f"min_successful of {what} must be a whole number from 0 to its {total} items, "
                f"got {_shown(min_successful)}"
            )
        count: int | None = None
        percent: float | None = None
        if _is_count(tolerated_failures) and tolerated_failures >= 0:
            count = tolerated_failures
        elif isinstance(tolerated_failures, str) and tolerated_failures.strip().endswith("%"):
            try:
                percent = float(tolerated_failures.strip()[:-1])
            except ValueError:
                percent = math.nan
            if not 0 <= percent <= 100:
                raise InvalidConfigError(
                    f"tolerated_failures of {what} must be a percentage from 0% to 100%, "
                    f"got {_shown(tolerated_failures)}"
                )
        elif tolerated_failures is not None:
            raise InvalidConfigError(
                f"tolerated_failures of {what} must be a count (0 or more) or a percentage such as "
                f"'10%', got {_shown(tolerated_failures)}"
            )
        if min_successful is None and count is None and percent is None:
            count = 0  # fail fast
        return cls(total, min_successful, count, percent)

    def reason(self, succeeded: int, failed: int) -> CompletionReason | None:
        """Why the batch ends with these counts so far, or None while it goes on."""
        if self.tolerated_count is not None and failed > self.tolerated_count:
            return CompletionReason.FAILURE_TOLERANCE_EXCEEDED
        if (
            self.tolerated_percent is not None
            and self.total
            and failed * 100 / self.total > self.tolerated_percent
        ):
            return CompletionReason.FAILURE_TOLERANCE_EXCEEDED
        if self.min_successful is not None:
            if succeeded >= self.min_successful:
                return CompletionReason.MIN_SUCCESSFUL_REACHED
            untolerated = self.tolerated_count is None and self.tolerated_percent is None
            if untolerated and self.total - failed < self.min_successful:
                return CompletionReason.FAILURE_TOLERANCE_EXCEEDED
        if succeeded + failed >= self.total:
            return CompletionReason.ALL_COMPLETED
        return None


def check_concurrency(what: str, max_concurrency: Any) -> int | None:
    if max_concurrency is not None and (not _is_count(max_concurrency) or max_concurrency < 1):
        raise InvalidConfigError(
            f"max_concurrency of {what} must be a whole number of 1 or more, got {_shown(max_concurrency)}"
        )
    return max_concurrency  # type: ignore[no-any-return]


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _shown(value: Any) -> str:
    """A bad argument, as an error message shows it: its type only, and the value if it is a number
    or short text (these are arguments the workflow's code wrote, not the user's data)."""
    if isinstance(value, int | float | str) and len(repr(value)) <= 40:
        return repr(value)
    return f"a {type(value).__name__}"
