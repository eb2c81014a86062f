"""The parts of the HTTP API's instance view that say what an instance is doing: its current wait,
the step it runs, and the counts over its run's steps (``InstanceStatus.as_dict`` gives their values)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class WaitView(BaseModel):
    kind: str = Field(description="sleep, retry, event, callback, invoke, condition or map")
    name: str = Field(description="the durable call's name")
    until: str | None = Field(description="ISO 8601: when it ends at the latest; null: no deadline (map)")
    event_type: str | None = Field(default=None, description="event waits: the type waited for")
    attempt: int | None = Field(default=None, description="retries: the attempt that runs next")
    child_id: str | None = Field(default=None, description="invokes: the child instance")


class RunningStepView(BaseModel):
    name: str
    attempt: int = Field(description="1 for the first attempt")
    started_at: str = Field(description="ISO 8601: when this attempt started")


class CountsView(BaseModel):
    steps_done: int = 0
    steps_failed: int = Field(default=0, description="steps whose retries ran out")
    retries: int = Field(default=0, description="failed attempts that another attempt followed")
    failures: int = Field(default=0, description="failed attempts, crashed ones included")


class ProgressFields(BaseModel):
    """Added to the instance view: all optional, so that older clients see what they saw."""

    wait: WaitView | None = Field(default=None, description="waiting or paused: the first of waits")
    waits: list[WaitView] = Field(default_factory=list, description="earliest deadline first, at most 5")
    running_step: RunningStepView | None = Field(
        default=None, description="a step attempt running longer than WORKFLOWS_RUNNING_MARK_SECONDS"
    )
    running_steps: list[RunningStepView] = Field(default_factory=list)
    counts: CountsView = Field(default_factory=CountsView)
