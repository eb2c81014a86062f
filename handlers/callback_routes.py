"""The HTTP API's callback routes (framework.manage.callbacks): ``POST /callbacks/{callback_id}/success``,
``/failure`` and ``/heartbeat``, each answered 202 ``{"status": "accepted"}``."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Path
from pydantic import BaseModel, ConfigDict, Field

from framework.manage.client import default_client
from handlers.views import responses

router = Router()  # type: ignore[no-untyped-call]  # Powertools leaves Router.__init__ untyped


class CallbackSuccess(BaseModel):
    model_config = ConfigDict(extra="forbid")
    result: Any = Field(default=None, description="The callback's result (JSON, at most 256 KiB)")


class CallbackFailure(BaseModel):
    model_config = ConfigDict(extra="forbid")
    error: str = Field(min_length=1, max_length=256, description="A name for the failure")
    message: str = Field(default="", max_length=4096)


class CallbackAccepted(BaseModel):
    status: str = Field(description='"accepted"')


def _accepted() -> Response[str]:
    body = CallbackAccepted(status="accepted").model_dump_json()
    return Response(status_code=202, content_type=content_types.APPLICATION_JSON, body=body)


@router.post(
    "/callbacks/<callback_id>/success",
    responses=responses(202, CallbackAccepted, "accepted", 404, 409, 413, 415, 503),
)
def callback_success(
    callback_id: Annotated[str, Path()], body: Annotated[CallbackSuccess, Body()]
) -> Response[str]:
    default_client().send_callback_success(callback_id, body.result)
    return _accepted()


@router.post(
    "/callbacks/<callback_id>/failure",
    responses=responses(202, CallbackAccepted, "accepted", 404, 409, 413, 415, 503),
)
def callback_failure(
    callback_id: Annotated[str, Path()], body: Annotated[CallbackFailure, Body()]
) -> Response[str]:
    default_client().send_callback_failure(callback_id, body.error, body.message)
    return _accepted()


@router.post(
    "/callbacks/<callback_id>/heartbeat",
    responses=responses(202, CallbackAccepted, "accepted", 404, 409, 503),
)
def callback_heartbeat(callback_id: Annotated[str, Path()]) -> Response[str]:
    default_client().send_callback_heartbeat(callback_id)
    return _accepted()
