"""``ApiClient``: start, inspect and manage instances through the HTTP API (``handlers/api.py``), as
``WorkflowClient`` does directly on DynamoDB and SQS, with the same return values and errors.

Requests to an AWS URL are signed with SigV4 (botocore's ``SigV4Auth``) and the credentials of the
boto3 session: ``<id>.execute-api.<region>.amazonaws.com`` as ``execute-api``,
``<id>.lambda-url.<region>.on.aws`` as ``lambda``, the region taken from the host. Any other host (the
``workflows dev`` API on 127.0.0.1, a custom domain) is sent unsigned, unless ``signing`` names the
service and region. Instance ids go into paths percent-encoded twice (``ids.path_segment``), the API's
rule. An error answer (``{"error", "message"}``) raises the class of ``framework.errors`` that it
names, as the direct client would raise it, else ``ApiError``; no answer at all raises
``ApiUnreachableError``.
"""

from __future__ import annotations

import builtins
import json
import re
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

from framework import errors
from framework.core.ids import path_segment
from framework.errors import (
    ApiError,
    ApiUnreachableError,
    InvalidParamsError,
    SerializationError,
    WorkflowError,
)
from framework.manage.history_pages import DEFAULT_LIMIT, HistoryPage, every_page
from framework.manage.schedules import ScheduleInfo
from framework.manage.status import InstancePage, InstanceStatus
from framework.manage.versions import VersionCount

DEFAULT_TIMEOUT = 30.0  # seconds for one request: API Gateway's own integration limit
USER_AGENT = "lambda-workflows-api-client"
AUTO: Any = object()  # ``signing``'s default: from the host
_AWS_HOSTS = [
    (re.compile(r"[^.]+\.execute-api\.([a-z0-9-]+)\.(?:vpce\.)?amazonaws\.com(?:\.cn)?"), "execute-api"),
    (re.compile(r"[^.]+\.lambda-url\.([a-z0-9-]+)\.on\.aws"), "lambda"),
]
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
# The names of an API answer that raise the framework's own class (the same the direct client raises).
_TYPED: dict[str, type[WorkflowError]] = {
    cls.__name__: cls
    for cls in (
        errors.PayloadTooLargeError,
        errors.WorkflowNotFoundError,
        errors.InstanceNotFoundError,
        errors.CallbackNotFoundError,
        errors.InstanceAlreadyExistsError,
        errors.InvalidStateError,
        errors.InstanceBusyError,
        errors.ThrottledError,
        errors.CallbackCompletedError,
        errors.InvalidInstanceIdError,
        errors.InvalidConfigError,
        errors.SerializationError,
    )
}
_TYPED["PayloadTooLarge"] = errors.PayloadTooLargeError  # a body over 1 MiB, refused before routing


def signing_for(url: str) -> tuple[str, str] | None:
    """The SigV4 service and region of an AWS API ``url`` (from its host), or None for another host."""
    host = (urllib.parse.urlsplit(url).hostname or "").lower()
    for pattern, service in _AWS_HOSTS:
        match = pattern.fullmatch(host)
        if match:
            return service, match[1]
    return None


def api_error(status: int, body: bytes) -> WorkflowError:
    """The exception for an error answer: the framework's class its ``error`` names (an error the
    direct client raises too), else ApiError with the answer's status, name and message."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return ApiError(status, "", body[:200].decode("utf-8", "replace") or "no body")
    name, message = str(data.get("error") or ""), str(data.get("message") or "")
    if name == "InvalidParamsError" and status == 422:
        return InvalidParamsError(message, data.get("details"))
    cls = _TYPED.get(name)
    if cls is not None and (400 <= status < 500 or status == 503):
        return cls(message)
    return ApiError(status, name, message)


class ApiInstance:
    """A handle on one instance, as ``Instance``: each method is one request; nothing is cached."""

    def __init__(self, client: ApiClient, instance_id: str, *, created: bool = False) -> None:
        self._client = client
        self.id = instance_id
        self.created = created  # as ``Instance.created``: True only from a create that wrote it
        self._path = f"/instances/{path_segment(instance_id)}"

    def status(self) -> InstanceStatus:
        return InstanceStatus.from_dict(self._client._call("GET", self._path))

    def history_page(
        self, limit: int = DEFAULT_LIMIT, cursor: str | None = None, *, results: bool = False
    ) -> HistoryPage:
        """One page of the history, as ``Instance.history_page`` (``GET /instances/{id}/history``)."""
        query: dict[str, Any] = {"limit": limit, "results": "true" if results else "false"}
        if cursor is not None:
            query["cursor"] = cursor
        return HistoryPage.from_dict(self._client._call("GET", f"{self._path}/history", query=query))

    def history_pages(self, limit: int = DEFAULT_LIMIT, *, results: bool = False) -> Iterator[HistoryPage]:
        """Every page of the history, first to last, following the cursors."""
        return every_page(self.history_page, limit, results=results)

    def send_event(self, type: str, payload: Any = None) -> None:
        self._client._call("POST", f"{self._path}/events", {"type": type, "payload": payload})

    def pause(self) -> None:
        self._client._call("POST", f"{self._path}/pause")

    def resume(self) -> None:
        self._client._call("POST", f"{self._path}/resume")

    def terminate(self, *, rollback: bool = False) -> None:
        self._client._call("POST", f"{self._path}/terminate", {"rollback": True} if rollback else None)

    def restart(self) -> None:
        self._client._call("POST", f"{self._path}/restart")

    def skip_wait(self) -> None:
        """``workflows dev`` only: its own route ``POST /dev/instances/{id}/skip``. A deployed API has
        no such route, and answers ApiError 404 ``NotFound``."""
        self._client._call("POST", f"/dev{self._path}/skip")

    def __repr__(self) -> str:
        return f"ApiInstance(id={self.id!r})"


class ApiClient:
    """Start and manage instances through the HTTP API at ``api_url`` (the stack's ``ApiUrl`` output,
    or ``workflows dev``'s API). ``session`` is the boto3 session whose credentials sign requests to an
    AWS URL (default: a new ``boto3.Session()``, the standard AWS configuration); ``signing`` is
    ``(service, region)`` to sign for, None to send unsigned, or by default what ``signing_for`` says
    of the URL. ``timeout`` bounds each request, in seconds."""

    def __init__(
        self,
        api_url: str,
        *,
        session: Any = None,
        timeout: float = DEFAULT_TIMEOUT,
        signing: tuple[str, str] | None = AUTO,
    ) -> None:
        parts = urllib.parse.urlsplit(api_url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError(f"the API URL must be an http:// or https:// URL with no query, not {api_url!r}")
        self.api_url = api_url.rstrip("/")
        self.signing = signing_for(api_url) if signing is AUTO else signing
        self.timeout = timeout
        self._session = session
        # A proxy of the environment cannot reach this machine's loopback: send to it directly.
        direct = parts.hostname in _LOOPBACK
        self._opener = urllib.request.build_opener(*([urllib.request.ProxyHandler({})] if direct else []))

    # -- creating and reading --------------------------------------------------------------------------
    def create(self, workflow: str, params: Any = None, *, id: str | None = None) -> ApiInstance:
        """As ``WorkflowClient.create`` (``POST /workflows/{name}/instances``): ``created`` False when
        the id held the same workflow and params already (200), InstanceAlreadyExistsError when it
        holds another."""
        body: dict[str, Any] = {"params": params} if id is None else {"id": id, "params": params}
        status, data = self._send("POST", f"/workflows/{_name(workflow)}/instances", body)
        return ApiInstance(self, data["id"], created=status == 201)

    def get(self, instance_id: str) -> ApiInstance:
        """A handle on an existing instance (one ``GET /instances/{id}``). Raise InstanceNotFoundError."""
        instance = ApiInstance(self, instance_id)
        instance.status()
        return instance

    def list(
        self,
        workflow: str | None = None,
        status: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> InstancePage:
        """As ``WorkflowClient.list``: ``GET /workflows/{name}/instances``, or ``GET /instances`` for
        every workflow."""
        query: dict[str, Any] = {"limit": limit}
        if status is not None:
            query["status"] = str(status)
        if cursor is not None:
            query["cursor"] = cursor
        path = "/instances" if workflow is None else f"/workflows/{_name(workflow)}/instances"
        data = self._call("GET", path, query=query)
        return InstancePage([InstanceStatus.from_dict(i) for i in data["instances"]], data.get("cursor"))

    def versions(self, workflow: str) -> builtins.list[VersionCount]:
        """As ``WorkflowClient.versions`` (``GET /workflows/{name}/versions``): the code that answers is
        the deployed API's."""
        data = self._call("GET", f"/workflows/{_name(workflow)}/versions")
        return [VersionCount.from_dict(v) for v in data["versions"]]

    # -- callbacks ----------------------------------------------------------------------------------------
    def send_callback_success(self, callback_id: str, result: Any = None) -> None:
        self._call("POST", f"/callbacks/{_name(callback_id)}/success", {"result": result})

    def send_callback_failure(self, callback_id: str, error: str, message: str = "") -> None:
        self._call("POST", f"/callbacks/{_name(callback_id)}/failure", {"error": error, "message": message})

    def send_callback_heartbeat(self, callback_id: str) -> None:
        self._call("POST", f"/callbacks/{_name(callback_id)}/heartbeat")

    # -- schedules ----------------------------------------------------------------------------------------
    def schedules(self) -> builtins.list[ScheduleInfo]:
        """As ``WorkflowClient.schedules`` (``GET /schedules``): those of the API's workflows."""
        return [ScheduleInfo.from_dict(s) for s in self._call("GET", "/schedules")["schedules"]]

    def pause_schedule(self, name: str) -> ScheduleInfo:
        return ScheduleInfo.from_dict(self._call("POST", f"/schedules/{_name(name)}/pause"))

    def resume_schedule(self, name: str) -> ScheduleInfo:
        return ScheduleInfo.from_dict(self._call("POST", f"/schedules/{_name(name)}/resume"))

    # -- HTTP -------------------------------------------------------------------------------------------
    def _call(self, method: str, path: str, body: Any = None, *, query: dict[str, Any] | None = None) -> Any:
        return self._send(method, path, body, query=query)[1]

    def _send(
        self, method: str, path: str, body: Any = None, *, query: dict[str, Any] | None = None
    ) -> tuple[int, Any]:
        """One request: ``body`` (None: none) as JSON; the status and the JSON answer of a success."""
        url = self.api_url + path + (f"?{urllib.parse.urlencode(query)}" if query else "")
        data = None if body is None else _encoded(body)
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if data is not None:
            headers["Content-Type"] = "application/json"
        headers = self._signed(method, url, data, headers)
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                status, answer = response.status, response.read()
        except urllib.error.HTTPError as error:
            with error:
                raise api_error(error.code, error.read()) from None
        except (urllib.error.URLError, OSError) as exc:  # refused, reset, timed out, no such host
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, socket.timeout | TimeoutError):
                why = f"no answer within {self.timeout:g} s"
            else:
                why = getattr(reason, "strerror", None) or str(reason) or type(reason).__name__
            raise ApiUnreachableError(f"cannot reach the API at {self.api_url}: {why}") from None
        try:
            return status, json.loads(answer)
        except ValueError:  # not the API: a proxy's page, a wrong URL
            raise ApiError(status, "", "the answer is not JSON: is this the workflows HTTP API?") from None

    def _signed(self, method: str, url: str, data: bytes | None, headers: dict[str, str]) -> dict[str, str]:
        """``headers`` with SigV4's (Authorization, X-Amz-Date, and X-Amz-Security-Token for temporary
        credentials) when the client signs; else as they are."""
        if self.signing is None:
            return headers
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.exceptions import NoCredentialsError

        if self._session is None:
            import boto3

            self._session = boto3.Session()
        credentials = self._session.get_credentials()
        if credentials is None:
            raise NoCredentialsError()
        service, region = self.signing
        request = AWSRequest(method=method, url=url, data=data or b"", headers=headers)
        SigV4Auth(credentials.get_frozen_credentials(), service, region).add_auth(request)
        return dict(request.headers.items())


def _encoded(body: Any) -> bytes:
    """The JSON of a request body; SerializationError, as the direct client raises, for what JSON cannot
    hold (NaN, infinities, objects that are not JSON)."""
    try:
        return json.dumps(body, allow_nan=False).encode()
    except (ValueError, TypeError) as exc:
        raise SerializationError(f"the request cannot be sent as JSON: {type(exc).__name__}") from None


def _name(text: str) -> str:
    """A workflow name or callback id in a path: percent-encoded once (neither holds ``/``; the API
    decodes neither a second time)."""
    return urllib.parse.quote(text, safe="")


__all__ = ["ApiClient", "ApiInstance", "api_error", "signing_for"]
