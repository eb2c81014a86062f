"""The HTTP API (API Gateway HTTP API, payload v2): start, inspect and manage instances.

Every error is JSON ``{"error": "<Name>", "message": "..."}``: 400 bad input, 404 unknown workflow,
instance or route, 405 a known path with another method, 409 duplicate id or invalid state, 413
oversized body, 415 not JSON, 422 params that fail the workflow's model, 503 a write DynamoDB throttled
through every retry. A 500 is a bug, logged with its traceback. Bodies, params and payloads are never
logged.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
import sys
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from framework import (
    CallbackNotFoundError,
    InstanceAlreadyExistsError,
    InstanceNotFoundError,
    InvalidConfigError,
    InvalidInstanceIdError,
    InvalidParamsError,
    InvalidStateError,
    PayloadTooLargeError,
    SerializationError,
    ThrottledError,
    WorkflowError,
    WorkflowNotFoundError,
)
from framework.core import metrics
from framework.core.callbacks import parse_callback_id
from framework.core.ids import check_instance_id, from_path
from framework.core.logs import logger
from framework.manage.client import MAX_JSON_DEPTH, Instance, default_client, json_depth
from handlers import callback_routes, listing, schedules, ui
from handlers.views import ERRORS, InstanceView, responses

MAX_BODY_BYTES = 1024 * 1024
MAX_MESSAGE_CHARS = 2000  # an error message echoes input: cut it, so that a response stays small
MAX_DETAILS = 20  # of pydantic's errors in a 422: a list param can fail once per item
# API Gateway HTTP APIs pass the path percent-decoded: %0A arrives as a newline, which a route's ``$``
# would ignore (``/instances/x\n`` would read instance ``x``). No valid path holds one.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
STATUS_OF: list[tuple[type[Exception], int]] = [
    (InvalidParamsError, 422),
    (WorkflowNotFoundError, 404),
    (InstanceNotFoundError, 404),
    (CallbackNotFoundError, 404),
    (InstanceAlreadyExistsError, 409),
    (ThrottledError, 503),
    (InvalidStateError, 409),
    (PayloadTooLargeError, 413),
    (InvalidInstanceIdError, 400),
    (InvalidConfigError, 400),
    (SerializationError, 400),
    (WorkflowError, 400),
]

app = APIGatewayHttpResolver(enable_validation=True)
app.enable_swagger(path="/docs", openapi_version="3.1.0", title="Lambda Workflows API")
app.include_router(ui.router)  # GET /ui, the dashboard (HTML, not in the OpenAPI document)
app.include_router(listing.router)  # GET /workflows/{name}/instances and GET /instances
app.include_router(schedules.router)  # GET /schedules, POST /schedules/{name}/pause and /resume
app.include_router(callback_routes.router)  # POST /callbacks/{callback_id}/success, failure, heartbeat


def _decoded_ids(resolver: APIGatewayHttpResolver, next_middleware: NextMiddleware) -> Response[Any]:
    """Every route's ``instance_id``, percent-decoded once more (``ids.from_path``): API Gateway
    decoded the path once already, so an id that holds ``/`` reaches a route as one segment only if
    the client encoded it twice (``ids.path_segment``). Ids hold no ``%``: nothing is decoded twice."""
    args = resolver.context.get("_route_args") or {}
    if "instance_id" in args:
        resolver.context["_route_args"] = {**args, "instance_id": from_path(args["instance_id"])}
    return next_middleware(resolver)


app.use(middlewares=[_decoded_ids])


# -- request and response models ---------------------------------------------------------------------
class CreateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str | None = Field(default=None, description="Instance id; omitted: a UUID is generated")
    params: Any = Field(default=None, description="The workflow's params (checked against its model)")


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    instances: list[CreateRequest] = Field(min_length=1, max_length=100)


class EventRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: str = Field(min_length=1, max_length=100)
    payload: Any = None


class Created(BaseModel):
    id: str
    status: str


class HistoryView(BaseModel):
    id: str
    entries: list[dict[str, Any]]
    cursor: str | None = Field(description="the next page's ?cursor=; null on the last page")


class BatchItem(Created):
    created: bool = Field(description="false: the id held the same workflow and params already")


class CreatedBatch(BaseModel):
    instances: list[BatchItem]


class Accepted(BaseModel):
    id: str
    status: str


def _json(status: int, body: BaseModel) -> Response[str]:
    return Response(
        status_code=status, content_type=content_types.APPLICATION_JSON, body=body.model_dump_json()
    )


def _error(
    status: int,
    name: str,
    message: str,
    *,
    headers: dict[str, str] | None = None,
    details: list[dict[str, Any]] | None = None,
) -> Response[str]:
    if len(message) > MAX_MESSAGE_CHARS:
        message = f"{message[:MAX_MESSAGE_CHARS]}... ({len(message) - MAX_MESSAGE_CHARS} more characters)"
    extra = {} if details is None else {"details": details[:MAX_DETAILS]}
    body = json.dumps({"error": name, "message": message, **extra}, default=str)
    return Response(
        status_code=status, content_type=content_types.APPLICATION_JSON, body=body, headers=headers
    )


def _handle(instance_id: str) -> Instance:
    """A handle without a read: every operation on it reads or writes, and raises
    InstanceNotFoundError itself (``WorkflowClient.get`` would read once more first)."""
    return Instance(default_client(), check_instance_id(instance_id))


def _view(instance_id: str) -> InstanceView:
    return InstanceView.model_validate(_handle(instance_id).status().as_dict())


# -- routes -----------------------------------------------------------------------------------------------
@app.post(
    "/workflows/<name>/instances",
    responses=responses(201, Created, "created", 404, 409, 413, 415, 422)
    | responses(200, Created, "the id holds the same workflow and params already: that instance"),
)
def create(name: Annotated[str, Path()], body: Annotated[CreateRequest, Body()]) -> Response[str]:
    """201 for a new instance; 200 for an id that holds the same workflow and params (idempotent)."""
    inst = default_client().create(name, body.params, id=body.id)
    if not inst.created:
        return _json(200, Created(id=inst.id, status=inst.status().status.value))
    return _json(201, Created(id=inst.id, status="queued"))


@app.post(
    "/workflows/<name>/instances/batch",
    responses=responses(201, CreatedBatch, "created", 404, 409, 413, 415, 422)
    | responses(200, CreatedBatch, "every id held the same workflow and params already"),
)
def create_batch(name: Annotated[str, Path()], body: Annotated[BatchRequest, Body()]) -> Response[str]:
    """201 if any instance is new, else 200; an item whose id held it already has ``created`` false."""
    items = [item.model_dump(exclude_unset=True) for item in body.instances]
    made = default_client().create_batch(name, items)
    listed = [
        BatchItem(id=i.id, status="queued" if i.created else i.status().status.value, created=i.created)
        for i in made
    ]
    code = 201 if any(i.created for i in made) else 200
    return _json(code, CreatedBatch(instances=listed))


@app.get("/instances/<instance_id>", responses=responses(200, InstanceView, "the instance", 404))
def get_instance(instance_id: Annotated[str, Path()]) -> InstanceView:
    return _view(instance_id)


@app.get(
    "/instances/<instance_id>/history",
    responses=responses(200, HistoryView, "a page of the journal, at most 2 MiB", 404, 409),
)
def get_history(
    instance_id: Annotated[str, Path()],
    limit: Annotated[int, Query(ge=1, le=1000, description="entries per page at most")] = 100,
    cursor: Annotated[str | None, Query(max_length=2000, description="the last page's cursor")] = None,
    results: Annotated[bool, Query(description="include results (else each gives result_bytes)")] = False,
) -> Response[str]:
    """A page of the history (framework.manage.history_pages). 409: the instance restarted since the
    cursor was returned. The body is encoded here: its size is what the page's byte budget counted."""
    page = _handle(instance_id).history_page(limit, cursor, results=results)
    body = json.dumps(page.as_dict(instance_id), default=str)
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=body)


@app.post(
    "/instances/<instance_id>/events", responses=responses(202, Accepted, "accepted", 404, 409, 413, 415)
)
def send_event(instance_id: Annotated[str, Path()], body: Annotated[EventRequest, Body()]) -> Response[str]:
    _handle(instance_id).send_event(body.type, body.payload)
    return _json(202, Accepted(id=instance_id, status=str(_view(instance_id).status)))


def _control(instance_id: str, action: str, **options: Any) -> Response[str]:
    getattr(_handle(instance_id), action)(**options)
    return _json(202, Accepted(id=instance_id, status=_view(instance_id).status))


@app.post("/instances/<instance_id>/pause", responses=responses(202, Accepted, "accepted", 404, 409))
def pause(instance_id: Annotated[str, Path()]) -> Response[str]:
    return _control(instance_id, "pause")


@app.post("/instances/<instance_id>/resume", responses=responses(202, Accepted, "accepted", 404, 409))
def resume(instance_id: Annotated[str, Path()]) -> Response[str]:
    return _control(instance_id, "resume")


class TerminateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rollback: StrictBool = Field(
        default=False, description="run the registered undos first (status rollingBack), then terminate"
    )


@app.post("/instances/<instance_id>/terminate", responses=responses(202, Accepted, "accepted", 404, 409))
def terminate(
    instance_id: Annotated[str, Path()],
    rollback: Annotated[
        bool | None, Query(description="run the registered undos first (status rollingBack), then terminate")
    ] = None,
    body: Annotated[TerminateRequest | None, Body()] = None,
) -> Response[str]:
    """``rollback`` from the query or the body (``{"rollback": true}``); both may say it, if alike."""
    in_body = body.rollback if body is not None and "rollback" in body.model_fields_set else None
    if None not in (rollback, in_body) and rollback != in_body:
        return _error(400, "BadRequest", "rollback: the query and the body give different values")
    wanted = bool(rollback or in_body)
    options = {"rollback": True} if wanted else {}  # a plain terminate keeps its plain call
    return _control(instance_id, "terminate", **options)


@app.post("/instances/<instance_id>/restart", responses=responses(202, Accepted, "accepted", 404, 409))
def restart(instance_id: Annotated[str, Path()]) -> Response[str]:
    return _control(instance_id, "restart")


@app.get("/openapi.json", include_in_schema=False)
def openapi() -> Response[str]:
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=openapi_document())


def openapi_document() -> str:
    """The OpenAPI 3.1 document. Powertools adds a generic 422 to every route; bad bodies are answered
    with 400 here, so only the 422 this API really sends (params that fail a model) is kept."""
    document = json.loads(app.get_openapi_json_schema(title="Lambda Workflows API", version="1.0.0"))
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            if responses.get("422", {}).get("description") != ERRORS[422]:
                responses.pop("422", None)
    return json.dumps(document)


# -- errors -------------------------------------------------------------------------------------------------
@app.exception_handler(RequestValidationError)
def bad_request(exc: RequestValidationError) -> Response[str]:
    """Bodies reach the routes already checked (see ``_checked``): what fails here fails the model."""
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return _error(400, "MalformedJSON", "the body is not valid JSON")
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body') or 'body'}: {e.get('msg')}"
        for e in errors
    )
    return _error(400, "BadRequest", problems or "the request is invalid")


@app.exception_handler(WorkflowError)
def workflow_error(exc: WorkflowError) -> Response[str]:
    return _workflow_error(exc)


def _workflow_error(exc: WorkflowError) -> Response[str]:
    status = next(code for kind, code in STATUS_OF if isinstance(exc, kind))
    details = exc.details if isinstance(exc, InvalidParamsError) else None
    return _error(status, type(exc).__name__, str(exc), details=details)


@app.not_found
def not_found(exc: Exception) -> Response[str]:
    """No route took the request. A path that fits a route once any segment is allowed (Powertools only
    matches segments of URL-safe characters) names a bad id or workflow: answer as the route would.
    A known path with another method is 405 with ``Allow``; anything else 404."""
    method, path = app.current_event.http_method.upper(), app.current_event.path
    fits = [(route, match) for route in _routes() if (match := _loose(route.path).match(path))]
    for route, match in fits:
        if route.method == method:
            segments = match.groupdict()
            try:
                if "instance_id" in segments:
                    check_instance_id(from_path(segments["instance_id"]))
                if "name" in segments:
                    default_client().registry.get(segments["name"])
                if "callback_id" in segments:
                    parse_callback_id(segments["callback_id"])
            except WorkflowError as error:
                return _workflow_error(error)
    allowed = sorted({route.method for route, _ in fits})
    shown = json.dumps(path[:200])
    if allowed:
        message = f"{method} is not allowed on {shown}; allowed: {', '.join(allowed)}"
        return _error(405, "MethodNotAllowed", message, headers={"Allow": ", ".join(allowed)})
    hint = ""
    if path.startswith("/instances/"):  # most likely an id with "/" sent encoded once, or not at all
        hint = "; in a path, an instance id is percent-encoded twice ('/' as %252F, see docs/http-api.md)"
    return _error(404, "NotFound", f"no route {method} {shown}{hint}")


def _routes() -> list[Any]:
    return [*app._static_routes, *app._dynamic_routes]


@functools.cache
def _loose(rule: str) -> re.Pattern[str]:
    """A route's path with ``<param>`` matching any one segment, up to the very end (not ``$``)."""
    return re.compile("^" + re.sub(r"<(\w+)>", r"(?P<\1>[^/]+)", rule) + r"\Z")


@app.exception_handler(Exception)
def internal_error(exc: Exception) -> Response[str]:
    logger.exception("unhandled error in the API")
    return _error(500, "InternalError", "an internal error occurred; it has been logged")


class Rejected(Exception):
    """A request answered before routing."""

    def __init__(self, status: int, name: str, message: str) -> None:
        super().__init__(message)
        self.status, self.name, self.message = status, name, message


# log_event=False whatever POWERTOOLS_LOGGER_LOG_EVENT says: the event holds the body (params, payloads).
@logger.inject_lambda_context(clear_state=True, log_event=False)
@metrics.flushed  # one EMF line per workflow per invocation (framework/core/metrics.py)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        event = _checked(event)
    except Rejected as exc:
        return _raw_error(exc.status, exc.name, exc.message)
    return app.resolve(event, context)


def _checked(event: dict[str, Any]) -> dict[str, Any]:
    """Check the body before routing, on every route: its size (decoded), media type and charset,
    UTF-8, nesting depth, and that it is strict JSON (no duplicate keys, no NaN, no lone surrogates).
    Return the event with the body as plain UTF-8 text and ``Content-Type: application/json``, which
    is what the resolver reads."""
    if CONTROL.search(str(event.get("rawPath", ""))):
        raise Rejected(400, "BadRequest", "the path holds a control character")
    headers = {str(k).lower(): v for k, v in (event.get("headers") or {}).items()}
    headers["content-type"] = content_types.APPLICATION_JSON
    body = event.get("body")
    if body is None or body == "":
        return {**event, "headers": headers, "body": None, "isBase64Encoded": False}
    if not isinstance(body, str):
        raise Rejected(400, "BadRequest", "the body is not a string")
    if event.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(body, validate=True)
        except binascii.Error:
            raise Rejected(
                400, "MalformedJSON", "the body is marked base64 but is not valid base64"
            ) from None
    else:
        raw = body.encode("utf-8", "surrogatepass")
    if len(raw) > MAX_BODY_BYTES:
        raise Rejected(413, "PayloadTooLarge", f"the body is {len(raw)} bytes; the limit is {MAX_BODY_BYTES}")
    _check_media_type(_header(event))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejected(
            400, "MalformedJSON", f"the body is not UTF-8: bad byte at offset {exc.start}"
        ) from None
    depth = json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise Rejected(
            400, "BadRequest", f"the body nests {depth} levels deep; the limit is {MAX_JSON_DEPTH}"
        )
    _strict_json(text)
    return {**event, "headers": headers, "body": text, "isBase64Encoded": False}


def _header(event: dict[str, Any]) -> str:
    found = [v for k, v in (event.get("headers") or {}).items() if str(k).lower() == "content-type"]
    return str(found[0]) if found else ""


def _check_media_type(value: str) -> None:
    """``application/json``, any case, with at most a UTF-8 charset; no header at all means JSON."""
    media, *parameters = (part.strip() for part in value.split(";"))
    if media and media.lower() != content_types.APPLICATION_JSON:
        raise Rejected(415, "UnsupportedMediaType", f"send the body as application/json, not {media[:100]!r}")
    for parameter in parameters:
        name, _, charset = parameter.partition("=")
        if name.strip().lower() == "charset" and charset.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise Rejected(415, "UnsupportedMediaType", f"send the body as UTF-8, not {charset[:50]!r}")


class _BadJSON(ValueError):
    pass


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) < len(pairs):
        raise _BadJSON("a key appears twice in one object")  # not which: a key of params is data
    return obj


def _constant(name: str) -> Any:
    raise _BadJSON(f"{name} is not JSON")


def _integer(digits: str) -> int:
    if len(digits) > sys.get_int_max_str_digits():
        raise _BadJSON(f"a number has {len(digits)} digits; the limit is {sys.get_int_max_str_digits()}")
    return int(digits)


def _strict_json(text: str) -> None:
    try:
        parsed = json.loads(text, object_pairs_hook=_object, parse_constant=_constant, parse_int=_integer)
        if "\\ud" in text.lower():  # a \uD800-\uDFFF escape: it must pair into one character
            json.dumps(parsed, ensure_ascii=False).encode()
    except json.JSONDecodeError as exc:
        raise Rejected(400, "MalformedJSON", f"the body is not valid JSON: {exc}") from None
    except UnicodeEncodeError:
        raise Rejected(
            400,
            "MalformedJSON",
            "the body holds a lone surrogate (\\ud800 to \\udfff, unpaired): not Unicode text",
        ) from None
    except _BadJSON as exc:
        raise Rejected(400, "MalformedJSON", f"the body is not valid JSON: {exc}") from None


def _raw_error(status: int, name: str, message: str) -> dict[str, Any]:
    """An error answered before the resolver runs."""
    return {
        "statusCode": status,
        "headers": {"Content-Type": content_types.APPLICATION_JSON},
        "body": json.dumps({"error": name, "message": message}),
        "isBase64Encoded": False,
    }
