"""The HTTP API's views of instances and of its errors, and the OpenAPI responses of its routes:
shared by ``handlers.api`` and the routers it includes (``handlers.listing``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from handlers.status_views import ProgressFields


class ErrorBody(BaseModel):
    name: str
    message: str


class InstanceView(ProgressFields):
    id: str
    workflow: str
    status: str
    output: Any = None
    error: ErrorBody | None = None
    created_at: str
    updated_at: str
    parent_id: str | None = None  # a child instance (step.invoke): the instance that started it
    version: str | None = None  # the version of the workflow's code it started on


class InstanceList(BaseModel):
    instances: list[InstanceView]
    cursor: str | None


class ErrorResponse(BaseModel):
    error: str = Field(description="the error's name, for example InstanceNotFoundError")
    message: str
    details: list[dict[str, Any]] | None = Field(default=None, description="422 only: pydantic's errors")


ERRORS = {
    400: "bad request: malformed JSON, a bad body, id, query or cursor",
    404: "unknown workflow, instance or callback",
    405: "a known path with a method it does not take",
    409: "an id that holds another workflow or other params, or an operation the state does not allow",
    413: "body over 1 MiB, or a payload over its limit",
    415: "body not sent as application/json",
    422: "params that fail the workflow's model (details: pydantic's errors)",
    503: "DynamoDB throttled the write through every retry; nothing was written",
}


def responses(code: int, model: type[BaseModel], description: str, *errors: int) -> dict[int, Any]:
    """The OpenAPI responses of a route: its success body and the error bodies it can answer with."""
    documented: dict[int, Any] = {
        code: {"description": description, "content": {"application/json": {"model": model}}}
    }
    for status in (400, *errors):
        documented[status] = {
            "description": ERRORS[status],
            "content": {"application/json": {"model": ErrorResponse}},
        }
    return documented
