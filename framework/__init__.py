"""Lambda Workflows: durable, multi-step Python workflows on AWS Lambda, DynamoDB and SQS.

The public names are imported on first use (PEP 562), so that a handler importing one framework module
does not pay for the others: the worker never loads the client, and pydantic only if a workflow uses it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from framework.calls import StepContext
    from framework.client import Instance, InstanceStatus, WorkflowClient
    from framework.config import Backoff, Jitter, RetryPolicy, StepConfig
    from framework.engine import Step
    from framework.entrypoint import WorkflowEntrypoint
    from framework.errors import (
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
        WorkflowCodeError,
        WorkflowError,
        WorkflowNotFoundError,
        WorkflowTimeoutError,
    )
    from framework.records import Status
    from framework.registry import Workflow, WorkflowEvent, workflow

__version__ = "0.1.0"

# Public name -> the module that defines it.
_EXPORTS = {
    "StepContext": "framework.calls",
    "Instance": "framework.client",
    "InstanceStatus": "framework.client",
    "WorkflowClient": "framework.client",
    "Backoff": "framework.config",
    "Jitter": "framework.config",
    "RetryPolicy": "framework.config",
    "StepConfig": "framework.config",
    "Step": "framework.engine",
    "WorkflowEntrypoint": "framework.entrypoint",
    **dict.fromkeys(
        [
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
            "WorkflowCodeError",
            "WorkflowError",
            "WorkflowNotFoundError",
            "WorkflowTimeoutError",
        ],
        "framework.errors",
    ),
    "Status": "framework.records",
    "Workflow": "framework.registry",
    "WorkflowEvent": "framework.registry",
    "workflow": "framework.registry",
}


def __getattr__(name: str) -> Any:
    """Import a public name's module on first access, and keep the name here for the next one. A
    submodule's name imports it, as the eager imports did: ``import framework; framework.client``."""
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
    "Backoff",
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
    "Workflow",
    "WorkflowClient",
    "WorkflowCodeError",
    "WorkflowEntrypoint",
    "WorkflowError",
    "WorkflowEvent",
    "WorkflowNotFoundError",
    "WorkflowTimeoutError",
    "__version__",
    "workflow",
]
