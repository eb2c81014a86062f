"""Traces with Powertools Tracer (AWS X-Ray) that follow an instance across invocations.

Contract:

- Off unless turned on: on Lambda when ``WORKFLOWS_TRACING`` is ``Active`` (the template's ``Tracing``
  parameter, which also sets the functions' X-Ray mode) and ``POWERTOOLS_TRACE_DISABLED`` is not true,
  or in-process by :func:`use` (a test, a local run). Off, every function here is a no-op and nothing
  of Powertools' Tracer or the X-Ray SDK is imported.
- The instance's trace: :func:`trace_id` derives an X-Ray trace id from what the instance item holds
  from its create on (its id, its incarnation and its creation time), so every invocation of every run
  names the same trace, with no attribute or write of its own.
- Each invocation is a span: on Lambda a subsegment ``invocation`` of the function's segment, annotated
  with ``instance_trace_id`` (the link: X-Ray finds every invocation of an instance by it); off Lambda
  a segment of its own in the instance's trace itself. Its annotations: ``workflow``,
  ``instance_trace_id``, ``run``, and ``outcome`` when it ends.
- Each step attempt run in the invocation is a child span ``step`` of it, annotated ``step`` (the
  step's name), ``attempt`` and, for a failed attempt, ``error`` (the exception's class name) with the
  error flag. Never a param, payload, result or error message: no annotation or metadata holds one.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

    from framework.core.records import InstanceRecord

_TRUE = {"1", "true", "yes", "on", "y", "t"}
_state: dict[str, Any] = {"tracer": None, "checked": False}
_open: list[Any] = []  # the invocation spans open, innermost last


def use(tracer: Tracer | None) -> Tracer | None:
    """Trace with ``tracer`` from now on (None: off). Return the one used before."""
    previous: Tracer | None = _state["tracer"]
    _state.update(tracer=tracer, checked=True)
    return previous


def reset() -> None:
    """Forget the tracer in use: the next :func:`tracer` looks at the environment again."""
    _state.update(tracer=None, checked=False)


def tracer() -> Tracer | None:
    """The Tracer in use, or None when tracing is off. Built on first use on Lambda."""
    if not _state["checked"]:
        _state["checked"] = True
        active = os.environ.get("WORKFLOWS_TRACING", "").strip() == "Active"
        disabled = os.environ.get("POWERTOOLS_TRACE_DISABLED", "").strip().lower() in _TRUE
        if active and not disabled and os.environ.get("LAMBDA_TASK_ROOT"):
            from aws_lambda_powertools import Tracer

            # boto3's calls become subsegments too; their metadata names tables, queues and keys only.
            _state["tracer"] = Tracer(patch_modules=["botocore"])
    found: Tracer | None = _state["tracer"]
    return found


def trace_id(instance: InstanceRecord) -> str:
    """The instance's X-Ray trace id: ``1-<creation time, 8 hex>-<24 hex>``, the same on every read."""
    digest = hashlib.sha256(f"{instance.id}\x00{instance.incarnation}".encode()).hexdigest()[:24]
    return f"1-{int(instance.created_at) & 0xFFFFFFFF:08x}-{digest}"


@contextlib.contextmanager
def invocation(instance: InstanceRecord) -> Iterator[None]:
    """The span of one invocation of ``instance`` (see the module's contract)."""
    found = tracer()
    if found is None:
        yield
        return
    recorder: Any = found.provider
    own = not os.environ.get("LAMBDA_TASK_ROOT")  # off Lambda no segment is open: open one
    linked = trace_id(instance)
    if own:
        span = recorder.begin_segment("invocation", traceid=linked, sampling=1)
    else:
        span = recorder.begin_subsegment("invocation")
    if span is None:  # X-Ray found no segment to hang it on (its context_missing strategy logged it)
        yield
        return
    span.put_annotation("workflow", instance.workflow)
    span.put_annotation("instance_trace_id", linked)
    span.put_annotation("run", instance.run)
    _open.append(span)
    try:
        yield
    finally:
        _open.remove(span)
        if own:
            recorder.end_segment()
        else:
            recorder.end_subsegment()


def outcome(value: str) -> None:
    """Annotate the innermost open invocation span with how it ended."""
    if _open:
        _open[-1].put_annotation("outcome", value)


def step(name: str, attempt: int, started: float, ended: float, error: str | None = None) -> None:
    """A child span of the open invocation for one attempt of step ``name``, from ``started`` to
    ``ended`` (epoch seconds). ``error``: the class name of what the attempt failed with."""
    if not _open:
        return
    from aws_xray_sdk.core.models.subsegment import Subsegment  # type: ignore[import-untyped]

    parent = _open[-1]
    segment = parent if not hasattr(parent, "parent_segment") else parent.parent_segment
    span = Subsegment("step", "local", segment)
    span.start_time = started
    parent.add_subsegment(span)
    span.put_annotation("step", name)
    span.put_annotation("attempt", attempt)
    if error is not None:
        span.put_annotation("error", error)
        span.add_error_flag()
    span.close(max(ended, started))
