"""The workflow module of the time-to-first-step benchmark: what a user's module looks like, one step.

Loaded by a fresh worker process through ``WORKFLOW_MODULES``, so it imports only what a user's module
would: the framework's public names.
"""

from __future__ import annotations

from typing import Any

from framework import Step, WorkflowEvent, workflow

ONE_STEP = "bench-one-step"


@workflow(ONE_STEP)
def one_step(event: WorkflowEvent, step: Step) -> Any:
    """One step returning a small dict, then the workflow completes."""
    return step.do("only", lambda: {"n": event.payload.get("n", 0)})
