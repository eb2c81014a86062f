"""Lambda Workflows: durable, multi-step Python workflows on AWS Lambda, DynamoDB and SQS.

The public names are imported on first use (PEP 562), so that a handler importing one framework module
does not pay for the others: the worker never loads the client, and pydantic only if a workflow uses it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from framework.api.batch import BatchItem, BatchItemStatus, BatchResult, CompletionReason
    from framework.api.calls import StepContext
    from framework.api.conditions import poll_every
    from framework.api.entrypoint import WorkflowEntrypoint
    from framework.api.registry import Workflow, WorkflowEvent, workflow
    from framework.core.config import Backoff, Jitter, RetryPolicy, StepConfig
    from framework.core.records import Status
    from framework.engine.step import Step
    from framework.errors import (
        ApiError,
        ApiUnreachableError,
        BatchFailedError,
        CallbackCompletedError,
        CallbackFailedError,
        CallbackNotFoundError,
        ChildWorkflowError,
        DuplicateWorkflowError,
        InstanceAlreadyExistsError,
        InstanceBusyError,
        InstanceNotFoundError,
        InvalidConfigError,
        InvalidInstanceIdError,
        InvalidParamsError,
        InvalidStateError,
        InvocationCrashedError,
        NonDeterminismError,
        NonRetryableError,
        PayloadTooLargeError,
        SerializationError,
        StepFailedError,
        StepTimeoutError,
        ThrottledError,
        UndoFailedError,
        WorkflowCodeError,
        WorkflowError,
        WorkflowNotFoundError,
        WorkflowTimeoutError,
    )
    from framework.manage.client import Instance, InstanceStatus, WorkflowClient

__version__ = "0.1.0"

# Public name -> the module that defines it.
_EXPORTS = {
    **dict.fromkeys(
        ["BatchItem", "BatchItemStatus", "BatchResult", "CompletionReason"], "framework.api.batch"
    ),
    "StepContext": "framework.api.calls",
    "poll_every": "framework.api.conditions",
    "Instance": "framework.manage.client",
    "InstanceStatus": "framework.manage.client",
    "WorkflowClient": "framework.manage.client",
    "Backoff": "framework.core.config",
    "Jitter": "framework.core.config",
    "RetryPolicy": "framework.core.config",
    "StepConfig": "framework.core.config",
    "Step": "framework.engine.step",
    "WorkflowEntrypoint": "framework.api.entrypoint",
    **dict.fromkeys(
        [
            "ApiError",
            "ApiUnreachableError",
            "BatchFailedError",
            "CallbackCompletedError",
            "ChildWorkflowError",
            "CallbackFailedError",
            "CallbackNotFoundError",
            "DuplicateWorkflowError",
            "InstanceAlreadyExistsError",
            "InstanceBusyError",
            "InstanceNotFoundError",
            "InvalidConfigError",
            "InvalidInstanceIdError",
            "InvalidParamsError",
            "InvalidStateError",
            "InvocationCrashedError",
            "NonDeterminismError",
            "NonRetryableError",
            "PayloadTooLargeError",
            "SerializationError",
            "StepFailedError",
            "StepTimeoutError",
            "ThrottledError",
            "UndoFailedError",
            "WorkflowCodeError",
            "WorkflowError",
            "WorkflowNotFoundError",
            "WorkflowTimeoutError",
        ],
        "framework.errors",
    ),
    "Status": "framework.core.records",
    "Workflow": "framework.api.registry",
    "WorkflowEvent": "framework.api.registry",
    "workflow": "framework.api.registry",
}


def __getattr__(name: str) -> Any:
    """Import a public name's module on first access, and keep the name here for the next one. A
    submodule's name imports it, as the eager imports did: ``import framework; framework.manage``."""
    module = _EXPORTS.get(name)
    if module is None:
        if name.startswith("__"):  # probes such as __wrapped__ name no submodule
            raise AttributeError(f"module 'framework' has no attribute {name!r}")
        try:
            return importlib.import_module(f"framework.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"framework.{name}":
                raise  # the submodule exists but needs something missing
            raise AttributeError(f"module 'framework' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


__all__ = [
    "ApiError",
    "ApiUnreachableError",
    "Backoff",
    "BatchFailedError",
    "BatchItem",
    "BatchItemStatus",
    "BatchResult",
    "CallbackCompletedError",
    "CallbackFailedError",
    "CallbackNotFoundError",
    "ChildWorkflowError",
    "CompletionReason",
    "DuplicateWorkflowError",
    "Instance",
    "InstanceAlreadyExistsError",
    "InstanceBusyError",
    "InstanceNotFoundError",
    "InstanceStatus",
    "InvalidConfigError",
    "InvalidInstanceIdError",
    "InvalidParamsError",
    "InvalidStateError",
    "InvocationCrashedError",
    "Jitter",
    "NonDeterminismError",
    "NonRetryableError",
    "PayloadTooLargeError",
    "RetryPolicy",
    "SerializationError",
    "Status",
    "Step",
    "StepConfig",
    "StepContext",
    "StepFailedError",
    "StepTimeoutError",
    "ThrottledError",
    "UndoFailedError",
    "Workflow",
    "WorkflowClient",
    "WorkflowCodeError",
    "WorkflowEntrypoint",
    "WorkflowError",
    "WorkflowEvent",
    "WorkflowNotFoundError",
    "WorkflowTimeoutError",
    "__version__",
    "poll_every",
    "workflow",
]
