"""Metrics, traces and logs of a run: the EMF lines it prints, the span tree it records, and the log
lines of its replays. Nothing that the user passed (params, results, error messages, the output)
reaches any of them. See docs/observability.md."""

from __future__ import annotations

import io
import json
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
from aws_lambda_powertools import Tracer

from framework import NonRetryableError, StepContext, StepFailedError, Workflow
from framework.core import metrics, tracing
from framework.core.logs import logger
from tests.unit.harness import Harness

MARK = "MARK-user-value-7c3e"
T0 = 1_700_000_000.0


def _flow(h: dict[str, Harness]) -> Workflow:
    def flow(event: Any, step: Any) -> Any:
        secret = event.payload["secret"]
        step.do("a", lambda: h["h"].clock.advance(2.5) or {"r": MARK})

        @step.do("flaky", config={"retries": {"limit": 2, "delay": "10 seconds", "backoff": "constant"}})
        def flaky(ctx: StepContext) -> str:
            if ctx.attempt == 1:
                raise ConnectionError(f"refused {MARK}")
            return MARK

        flaky()
        step.sleep("nap", "1 minute")

        def doomed() -> None:
            raise NonRetryableError(f"no {MARK}")

        try:
            step.do("doomed", doomed)
        except StepFailedError:
            pass
        return {"out": secret}

    return Workflow("obs", flow)


def _run(emit: Any = None) -> tuple[Harness, list[list[str]]]:
    """Create, then three invocations, each late: the retry by 3 s, the sleep by 7 s. Return the
    harness and what ``emit`` (a callable run after each invocation) returned for each."""
    box: dict[str, Harness] = {}
    h = box["h"] = Harness(_flow(box))
    out = []
    with metrics.invocation():  # as the API's handler: the create counts
        h.start("obs", params={"secret": MARK}, id="obs-1")
    out.append(emit() if emit else [])
    for late in (None, 10 + 3, 60 + 7):
        if late is not None:
            h.clock.advance(late)
        with metrics.invocation():
            assert h.run_due() == 1
        out.append(emit() if emit else [])
    assert h.client.get("obs-1").status().status == "complete"
    return h, out


# -- metrics ----------------------------------------------------------------------------------------
def _emf(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith('{"_aws"')]


def _values(line: dict[str, Any]) -> dict[str, list[float]]:
    names = [m["Name"] for m in line["_aws"]["CloudWatchMetrics"][0]["Metrics"]]
    return {n: line[n] if isinstance(line[n], list) else [line[n]] for n in names}


def test_a_run_prints_one_emf_line_per_invocation_with_what_it_did(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    monkeypatch.delenv("POWERTOOLS_METRICS_NAMESPACE", raising=False)
    _, printed = _run(lambda: _emf(capsys.readouterr().out))
    assert [len(lines) for lines in printed] == [1, 1, 1, 1]  # flushed once per invocation
    lines = [lines[0] for lines in printed]
    for line in lines:
        spec = line["_aws"]["CloudWatchMetrics"][0]
        assert spec["Namespace"] == "LambdaWorkflows" and spec["Dimensions"] == [["workflow"]]
        assert line["workflow"] == "obs" and isinstance(line["_aws"]["Timestamp"], int)
        assert {m["Name"]: m["Unit"] for m in spec["Metrics"]}.items() <= metrics.UNITS.items()
        assert MARK not in json.dumps(line) and "obs-1" not in json.dumps(line)
    assert [_values(line) for line in lines] == [
        {"InstancesCreated": [1]},
        {"InstancesStarted": [1], "StepDuration": [2500, 0], "StepsCompleted": [1], "StepRetries": [1]},
        {"WakeUpLag": [3000], "StepDuration": [0], "StepsCompleted": [1]},
        {"WakeUpLag": [7000], "StepDuration": [0], "StepsFailed": [1], "InstancesCompleted": [1]},
    ]


def test_metrics_go_under_the_configured_namespace_and_split_by_workflow(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Shop")
    with metrics.invocation():
        metrics.record("one", "StepsCompleted")
        with metrics.invocation():  # nested: only the outermost prints
            metrics.record("two", "StepsFailed", 2)
        assert capsys.readouterr().out == ""
        metrics.record("one", "StepsCompleted")
    lines = _emf(capsys.readouterr().out)
    assert sorted((line["workflow"], _values(line)) for line in lines) == [
        ("one", {"StepsCompleted": [1, 1]}),
        ("two", {"StepsFailed": [2]}),
    ]
    assert {line["_aws"]["CloudWatchMetrics"][0]["Namespace"] for line in lines} == {"Shop"}


def test_no_metric_line_off_lambda_unless_asked_nor_outside_a_handler(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    _run()
    assert _emf(capsys.readouterr().out) == []
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    metrics.record("obs", "StepsCompleted")  # no invocation open: dropped, never accumulated
    with metrics.invocation():
        pass
    assert capsys.readouterr().out == ""
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "WorkerFunction")
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    with metrics.invocation():
        metrics.record("obs", "StepsCompleted")
    assert capsys.readouterr().out == ""


# -- traces -----------------------------------------------------------------------------------------
class Collector:
    """An X-Ray emitter that keeps what the recorder sends, in this process: no daemon."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send_entity(self, entity: Any) -> None:
        self.sent.append(json.loads(entity.serialize()))

    def set_daemon_address(self, address: str | None) -> None:
        pass

    @property
    def ip(self) -> str:
        return "127.0.0.1"

    @property
    def port(self) -> int:
        return 2000


@pytest.fixture
def recorded() -> Iterator[tuple[Tracer, Collector]]:
    collector = Collector()
    tracer = Tracer(service="lambda-workflows", disabled=False, auto_patch=False)
    recorder = tracer.provider
    kept = recorder.emitter  # the daemon's UDP emitter: put back after, never sent to
    was_sampling = recorder.sampling
    recorder.configure(emitter=collector, sampling=False, context_missing="LOG_ERROR")
    previous = tracing.use(tracer)
    try:
        yield tracer, collector
    finally:
        tracing.use(previous)
        recorder.configure(emitter=kept, sampling=was_sampling)


def _spans(sent: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every span sent, by id, with its parent's id: segments, their nested and streamed subsegments."""
    spans: dict[str, dict[str, Any]] = {}

    def walk(doc: dict[str, Any], parent: str | None) -> None:
        spans[doc["id"]] = doc | {"parent": doc.get("parent_id", parent)}
        for child in doc.get("subsegments", []):
            walk(child, doc["id"])

    for doc in sent:
        walk(doc, None)
    return spans


def _children(spans: dict[str, dict[str, Any]], parent: str) -> list[dict[str, Any]]:
    return sorted((s for s in spans.values() if s["parent"] == parent), key=lambda s: s["start_time"])


def test_each_invocation_is_a_span_in_the_instances_trace_and_each_step_attempt_a_child(
    recorded: tuple[Tracer, Collector],
) -> None:
    _, collector = recorded
    h, _ = _run()
    spans = _spans(collector.sent)
    record = h.store.inner.get_instance("obs-1")
    trace = tracing.trace_id(record)
    assert trace == tracing.trace_id(h.store.inner.get_instance("obs-1"))  # the same on every read
    invocations = sorted(
        (s for s in spans.values() if s["name"] == "invocation"), key=lambda s: s["start_time"]
    )
    assert len(invocations) == 3
    for span in invocations:
        assert span["trace_id"] == trace and span["parent"] is None  # off Lambda: a segment of its own
        assert span["annotations"] | {"outcome": "?"} == {
            "workflow": "obs",
            "instance_trace_id": trace,
            "run": 1,
            "outcome": "?",
        }
    assert [s["annotations"]["outcome"] for s in invocations] == ["suspended", "suspended", "completed"]
    steps = [
        [
            (c["name"], c["annotations"]["step"], c["annotations"]["attempt"], c["annotations"].get("error"))
            for c in _children(spans, span["id"])
        ]
        for span in invocations
    ]
    # A replayed step is no span: each attempt appears once, in the invocation that ran it.
    assert steps == [
        [("step", "a", 1, None), ("step", "flaky", 1, "ConnectionError")],
        [("step", "flaky", 2, None)],
        [("step", "doomed", 1, "NonRetryableError")],
    ]
    first = _children(spans, invocations[0]["id"])
    assert first[0]["start_time"] == T0 and first[0]["end_time"] == T0 + 2.5
    assert first[1].get("error") is True and not first[0].get("error")
    assert MARK not in json.dumps(collector.sent)


def test_on_lambda_the_invocation_is_a_subsegment_of_the_functions_segment(
    recorded: tuple[Tracer, Collector], monkeypatch: pytest.MonkeyPatch
) -> None:
    tracer, collector = recorded
    monkeypatch.setenv("LAMBDA_TASK_ROOT", "/var/task")
    box: dict[str, Harness] = {}
    h = box["h"] = Harness(_flow(box))
    h.start("obs", params={"secret": MARK}, id="obs-2")
    with tracer.provider.in_segment("WorkerFunction"):  # what Lambda opens around a handler
        h.run_due()
    spans = _spans(collector.sent)
    (function,) = [s for s in spans.values() if s["name"] == "WorkerFunction"]
    (invocation,) = _children(spans, function["id"])
    trace = tracing.trace_id(h.store.inner.get_instance("obs-2"))
    assert invocation["name"] == "invocation" and invocation["annotations"]["instance_trace_id"] == trace
    assert invocation["trace_id"] == function["trace_id"] != trace  # linked by annotation, not nested
    names = [
        (c["annotations"]["step"], c["annotations"]["attempt"]) for c in _children(spans, invocation["id"])
    ]
    assert names == [("a", 1), ("flaky", 1)]


def test_tracing_is_off_by_default_off_lambda_and_when_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    previous = tracing.use(None)
    try:
        monkeypatch.delenv("LAMBDA_TASK_ROOT", raising=False)
        monkeypatch.delenv("POWERTOOLS_TRACE_DISABLED", raising=False)
        tracing.reset()
        assert tracing.tracer() is None
        monkeypatch.setenv("LAMBDA_TASK_ROOT", "/var/task")  # on Lambda, the template's default
        monkeypatch.setenv("WORKFLOWS_TRACING", "PassThrough")
        tracing.reset()
        assert tracing.tracer() is None
        monkeypatch.setenv("WORKFLOWS_TRACING", "Active")  # on, but Powertools' switch says off
        monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
        tracing.reset()
        assert tracing.tracer() is None
        _run()  # off: every span call is a no-op
    finally:
        tracing.use(previous)


# -- logs -------------------------------------------------------------------------------------------
def test_replays_log_nothing_about_recorded_steps_and_lines_carry_instance_step_and_attempt() -> None:
    stream = io.StringIO()
    old_level, old_stream = logger.log_level, logger.registered_handler.setStream(stream)  # type: ignore[attr-defined]
    logger.setLevel("INFO")

    def lines() -> list[str]:
        out = [line for line in stream.getvalue().splitlines() if line.startswith("{")]
        stream.seek(0)
        stream.truncate()
        return out

    try:
        _, printed = _run(lines)
    finally:
        logger.setLevel(old_level)
        logger.registered_handler.setStream(old_stream)  # type: ignore[attr-defined]
    parsed = [[json.loads(line) for line in batch] for batch in printed[1:]]
    stepped = defaultdict(list)
    for n, batch in enumerate(parsed):
        for line in batch:
            assert line.get("instance_id") == "obs-1" and line.get("workflow") == "obs", line
            if "step" in line:
                stepped[n].append((line["message"], line["step"], line.get("attempt")))
    assert dict(stepped) == {
        0: [("step completed", "a", 1), ("step attempt failed", "flaky", 1)],
        # the replays of "a" and of flaky's failed attempt log nothing, nor those of the sleep and
        # of flaky's second attempt in the last invocation
        1: [("step completed", "flaky", 2), ("sleep started", "nap", None)],
        2: [("step attempt failed", "doomed", 1), ("step failed", "doomed", 1)],
    }
    assert MARK not in json.dumps([line for batch in parsed for line in batch if line["level"] == "INFO"])


def test_the_parallel_steps_of_an_async_workflow_are_children_of_their_invocation(
    recorded: tuple[Tracer, Collector],
) -> None:
    import asyncio

    _, collector = recorded

    async def flow(event: Any, step: Any) -> Any:
        return await asyncio.gather(*(step.do(f"part {i}", lambda i=i: i) for i in range(3)))

    h = Harness(Workflow("obs-async", flow))
    h.start("obs-async", id="obs-3")
    h.run_until_idle()
    assert h.client.get("obs-3").status().output == [0, 1, 2]
    spans = _spans(collector.sent)
    (invocation,) = [s for s in spans.values() if s["name"] == "invocation"]
    parts = sorted(c["annotations"]["step"] for c in _children(spans, invocation["id"]))
    assert parts == ["part 0", "part 1", "part 2"]
    assert {c["trace_id"] for c in _children(spans, invocation["id"])} == {invocation["trace_id"]}
