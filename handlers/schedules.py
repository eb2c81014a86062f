"""The HTTP API's schedules: ``GET /schedules`` lists those of the workflows this function registers;
``POST /schedules/{name}/pause`` and ``POST /schedules/{name}/resume`` answer the schedule after
(framework.manage.schedules). An unknown workflow, or one with no schedule, is a 404."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path
from pydantic import BaseModel, Field

from framework.manage.client import default_client
from framework.manage.schedules import ScheduleInfo
from handlers.views import responses

router = Router()  # type: ignore[no-untyped-call]  # Powertools leaves Router.__init__ untyped


class ScheduleView(BaseModel):
    workflow: str
    cron: str | None = Field(description="the cron expression, or null for every=")
    every: float | None = Field(description="seconds between fires, or null for a cron")
    timezone: str
    catch_up: str = Field(description="none, last or all")
    catch_up_window: float = Field(description="seconds; how far back catch_up=all starts missed fires")
    paused: bool
    last_fire: str | None = Field(description="the newest fire that started an instance (ISO 8601)")
    next_fire: str | None = Field(description="when the next fire is due (ISO 8601); null while paused")


class ScheduleList(BaseModel):
    schedules: list[ScheduleView]


def _view(info: ScheduleInfo) -> ScheduleView:
    return ScheduleView.model_validate(info.as_dict())


@router.get("/schedules", responses=responses(200, ScheduleList, "the schedules, by workflow name"))
def list_schedules() -> ScheduleList:
    return ScheduleList(schedules=[_view(s) for s in default_client().schedules()])


@router.post(
    "/schedules/<name>/pause", responses=responses(200, ScheduleView, "the schedule, paused", 404, 409)
)
def pause_schedule(name: Annotated[str, Path()]) -> ScheduleView:
    return _view(default_client().pause_schedule(name))


@router.post(
    "/schedules/<name>/resume",
    responses=responses(200, ScheduleView, "the schedule, firing again from now", 404, 409),
)
def resume_schedule(name: Annotated[str, Path()]) -> ScheduleView:
    return _view(default_client().resume_schedule(name))
