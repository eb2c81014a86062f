"""The HTTP API's lists of instances, newest first, a page at a time: of one workflow
(``GET /workflows/{name}/instances``) or of every workflow (``GET /instances``). Both take a ``status``
filter, a ``limit`` and the ``cursor`` of the page before (``WorkflowClient.list``). And the versions of a
workflow's code with the instances left on each (``GET /workflows/{name}/versions``)."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from pydantic import BaseModel

from framework.manage.client import default_client
from handlers.views import InstanceList, InstanceView, responses


class VersionView(BaseModel):
    version: str | None  # None: instances started while the workflow had no version
    in_flight: int  # unfinished instances that recorded this version
    registered: bool  # whether the deployed code holds this version


class VersionList(BaseModel):
    workflow: str
    versions: list[VersionView]


router = Router()  # type: ignore[no-untyped-call]  # Powertools leaves Router.__init__ untyped

Status = Annotated[str | None, Query(description="only instances of this status")]
Limit = Annotated[int, Query(ge=1, le=1000, description="instances per page at most")]
Cursor = Annotated[str | None, Query(max_length=1000, description="the last page's cursor")]


def _page(workflow: str | None, status: str | None, limit: int, cursor: str | None) -> InstanceList:
    page = default_client().list(workflow=workflow, status=status, limit=limit, cursor=cursor)
    return InstanceList(
        instances=[InstanceView.model_validate(i.as_dict()) for i in page.instances], cursor=page.cursor
    )


@router.get(
    "/workflows/<name>/instances",
    responses=responses(200, InstanceList, "a page of the workflow's instances", 404),
)
def list_instances(
    name: Annotated[str, Path()], status: Status = None, limit: Limit = 50, cursor: Cursor = None
) -> InstanceList:
    default_client().registry.get(name)  # 404 for an unknown workflow
    return _page(name, status, limit, cursor)


@router.get("/instances", responses=responses(200, InstanceList, "a page of every workflow's instances"))
def list_all_instances(status: Status = None, limit: Limit = 50, cursor: Cursor = None) -> InstanceList:
    """Instances of every workflow, registered in this function or not."""
    return _page(None, status, limit, cursor)


@router.get(
    "/workflows/<name>/versions",
    responses=responses(
        200, VersionList, "the versions of the workflow's code, and instances left on each", 404
    ),
)
def list_versions(name: Annotated[str, Path()]) -> VersionList:
    """A version with no instance in flight may have its code deleted. Reads every instance of the
    workflow."""
    client = default_client()
    client.registry.get(name)  # 404 for an unknown workflow
    found = client.versions(name)
    return VersionList(workflow=name, versions=[VersionView.model_validate(v.as_dict()) for v in found])
