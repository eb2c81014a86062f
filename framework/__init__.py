"""Lambda Workflows: durable, multi-step Python workflows on AWS Lambda, DynamoDB and SQS."""

from framework.calls import StepContext
from framework.client import Instance, InstanceStatus, WorkflowClient
from framework.config import Backoff, Jitter, RetryPolicy, StepConfig
from framework.engine import Step
from framework.errors import (
    DuplicateWorkflowError,
    InstanceAlreadyExistsError,
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
    WorkflowError,
    WorkflowNotFoundError,
    WorkflowTimeoutError,
)
from framework.records import Status
from framework.registry import Workflow, WorkflowEvent, workflow

__version__ = "0.1.0"

__all__ = [
    "Backoff",
    "DuplicateWorkflowError",
    "Instance",
    "InstanceAlreadyExistsError",
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
    "WorkflowError",
    "WorkflowEvent",
    "WorkflowNotFoundError",
    "WorkflowTimeoutError",
    "__version__",
    "workflow",
]
