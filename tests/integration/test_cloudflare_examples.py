"""Cloudflare's Python Workflows examples behave on LocalRuntime as Cloudflare's documentation says.

Each test states what the documentation says of its example (pages named in cloudflare_examples.py).
Each test keeps the behaviour as the documentation states it.
"""

from __future__ import annotations

from typing import Any

import pytest

from framework import StepFailedError, WorkflowEntrypoint
from framework.local import LocalRuntime
from tests.integration import cloudflare_examples as cf


def steps(inst: Any) -> list[tuple[str, str]]:
    return [(e.kind, e.name) for e in inst.history() if e.kind != "event"]


def entry(inst: Any, name: str) -> Any:
    (found,) = [e for e in inst.history() if e.name == name]
    return found


def run(cls: type, params: Any = None, until: str | None = None) -> Any:
    with LocalRuntime(workflows=[cls]) as rt:
        inst = rt.client.create(cls.__name__, params, id="x")
        if until:
            rt.advance(until)
        rt.run_until_idle()
        return inst.status(), inst.history(), steps(inst)


def test_getting_started_runs_both_steps_once_in_order(capsys: pytest.CaptureFixture[str]) -> None:
    st, _, order = run(cf.CfPythonWorkflowStarter)
    assert st.status == "complete" and st.output is None
    assert order == [("step", "step1"), ("step", "step2")]
    out = capsys.readouterr().out.splitlines()
    assert out == ["executing step1", "executing step2"]


def test_unnamed_decorator_takes_the_function_name() -> None:
    st, history, order = run(cf.CfMyWorkflow)
    assert st.status == "complete"
    assert order == [("step", "my_first_step")]
    assert history[0].result == "Hello World!"


def test_sleep_waits_ten_seconds() -> None:
    with LocalRuntime(workflows=[cf.CfSleepFragment]) as rt:
        inst = rt.client.create("CfSleepFragment", id="x")
        rt.advance("5 seconds")
        assert inst.status().status == "waiting"
        rt.advance("6 seconds")
        assert inst.status().status == "complete"
        assert steps(inst) == [("sleep", "my-sleep-step")]


def test_sleep_until_a_datetime_ten_seconds_ahead() -> None:
    with LocalRuntime(workflows=[cf.CfSleepUntilFragment]) as rt:
        inst = rt.client.create("CfSleepUntilFragment", id="x")
        rt.advance("5 seconds")
        assert inst.status().status == "waiting"
        # The example reads the wall clock (datetime.now()), which runs ahead of the virtual clock by
        # however long setup took, so the wake comes a little after 10 virtual seconds, never before.
        rt.advance("1 minute")
        assert inst.status().status == "complete"


def test_wait_for_event_resumes_on_an_event_of_its_type() -> None:
    with LocalRuntime(workflows=[cf.CfWaitForEventFragment]) as rt:
        inst = rt.client.create("CfWaitForEventFragment", id="x")
        rt.advance("1 hour")
        assert inst.status().status == "waiting"
        inst.send_event("other-type", {"no": 1})
        rt.advance("1 minute")
        assert inst.status().status == "waiting"
        inst.send_event("my-event-type", {"foo": "bar"})
        rt.run_until_idle()
        assert inst.status().status == "complete"


def test_wait_for_event_times_out_after_24_hours_by_default() -> None:
    with LocalRuntime(workflows=[cf.CfWaitForEventFragment]) as rt:
        inst = rt.client.create("CfWaitForEventFragment", id="x")
        rt.advance("23 hours")
        assert inst.status().status == "waiting"
        rt.advance("2 hours")
        st = inst.status()
        assert st.status == "errored"  # the timeout is an error the example does not catch
        assert st.error is not None and "Timeout" in st.error["name"]


def test_a_failing_step_is_retried_with_the_defaults_then_caught(capsys: pytest.CaptureFixture[str]) -> None:
    # Defaults: 5 retries, 10 s delay, exponential backoff: 6 attempts, 10+20+40+80+160 s apart.
    st, history, _ = run(cf.CfErrorHandling, until="10 minutes")
    assert st.status == "complete" and st.output is None  # the workflow caught the error
    out = capsys.readouterr().out.splitlines()
    assert out.count("Executing my_failing") == 6
    failing = entry_of(history, "my_failing")
    assert len(failing.attempts) == 6
    gaps = [
        round((b.started_at - a.started_at).total_seconds())
        for a, b in zip(failing.attempts, failing.attempts[1:], strict=False)
    ]
    assert gaps == [10, 20, 40, 80, 160]


def test_a_builtin_error_reaches_the_workflow_as_it_was_raised(capsys: pytest.CaptureFixture[str]) -> None:
    run(cf.CfErrorHandling, until="10 minutes")
    out = capsys.readouterr().out.splitlines()
    assert "Successfully caught TypeError: Intentional error in my_failing" in out


def test_non_retryable_error_fails_the_step_at_once() -> None:
    st, history, _ = run(cf.CfNonRetryable, until="10 minutes")
    assert st.status == "errored"
    assert len(entry_of(history, "validate").attempts) == 1
    assert st.error is not None and "cannot be retried" in st.error["message"]


def entry_of(history: list[Any], name: str) -> Any:
    (found,) = [e for e in history if e.name == name]
    return found


def test_the_decorator_alone_runs_nothing() -> None:
    # "the decorator doesn't make the call to the step": both examples never call theirs.
    for cls in (cf.CfDemoWorkflowClass, cf.CfPayloadWorkflowClass):
        st, _, order = run(cls, {"foo": "bar"})
        assert st.status == "complete" and st.output is None and order == []


def test_ctx_holds_the_step_name_count_attempt_and_resolved_config(
    capsys: pytest.CaptureFixture[str],
) -> None:
    st, _, order = run(cf.CfCtxWorkflow)
    assert st.status == "complete" and st.output == 1
    assert order == [("step", "read_context")]
    name, count, attempt, config = capsys.readouterr().out.splitlines()
    assert (name, count, attempt) == ("read_context", "1", "1")
    # The resolved config, defaults applied: 5 retries, exponential backoff, a 10-minute timeout.
    assert "'limit': 5" in config and "'exponential'" in config and "'timeout'" in config


def test_dag_dependencies_run_once_each_then_the_final_step(capsys: pytest.CaptureFixture[str]) -> None:
    st, history, order = run(cf.CfDagStarter, until="1 minute")
    assert st.status == "complete" and st.output is None
    assert order[0] == ("sleep", "demo sleep")
    assert sorted(order[1:3]) == [("step", "dep_1"), ("step", "dep_2")]
    assert order[3] == ("step", "final_step")
    out = capsys.readouterr().out.splitlines()
    assert out.count("executing dep1") == 1 and out.count("executing dep2") == 1
    assert out[-1] == "dep1 dep2" and out.count("dep1 dep2") == 1
    final = entry_of(history, "final_step")
    assert all(entry_of(history, d).ended_at <= final.started_at for d in ("dep_1", "dep_2"))


def test_dag_depends_list_passes_results_by_position() -> None:
    st, history, order = run(cf.CfDagDepends)
    assert st.status == "complete"
    assert entry_of(history, "my final step").result == 30  # "should return 30"
    assert [n for _, n in order].count("dependency a") == 1 and len(order) == 3


def test_replay_after_a_sleep_does_not_rerun_the_step_before_it() -> None:
    with LocalRuntime(workflows=[cf.CfChangelogStarter]) as rt:
        inst = rt.client.create("CfChangelogStarter", id="x")
        rt.advance(0)
        assert inst.status().status == "waiting"
        rt.advance("11 seconds")
        assert inst.status().status == "complete"
        assert steps(inst) == [
            ("step", "my first step"),
            ("sleep", "my-sleep-step"),
            ("step", "my second step"),
        ]
        first = entry(inst, "my first step")
        assert first.result == "Hello Python!" and len(first.attempts) == 1
        assert entry(inst, "my second step").result == "Hello again!"


class CfEventShapes(WorkflowEntrypoint):
    """Not an example: reads the documented keys of the event and of a waited-for event."""

    async def run(self, event: Any, step: Any) -> Any:
        got = await step.wait_for_event("approval", "approved", timeout="1 hour")
        return {
            "payload": event["payload"],
            "instanceId": event["instanceId"],
            "workflowName": event["workflowName"],
            "has_timestamp": event["timestamp"] is not None,
            "got": {"type": got.type, "payload": got.payload, "has_timestamp": got.timestamp is not None},
        }


class CfWaitedEventKeys(WorkflowEntrypoint):
    """Not an example: reads a waited-for event by key, as the Python SDK's dict conversion gives it."""

    async def run(self, event: Any, step: Any) -> Any:
        got = await step.wait_for_event("approval", "approved", timeout="1 hour")
        return {"type": got["type"], "payload": got["payload"], "has_timestamp": "timestamp" in got}


def test_event_and_waited_event_shapes() -> None:
    with LocalRuntime(workflows=[CfEventShapes]) as rt:
        inst = rt.client.create("CfEventShapes", {"order": 7}, id="x")
        rt.advance(0)
        inst.send_event("approved", {"by": "ana"})
        rt.run_until_idle()
        st = inst.status()
    assert st.status == "complete", st.error
    assert st.output == {
        "payload": {"order": 7},
        "instanceId": "x",
        "workflowName": "CfEventShapes",
        "has_timestamp": True,
        "got": {"type": "approved", "payload": {"by": "ana"}, "has_timestamp": True},
    }


def test_waited_event_reads_by_key_like_the_run_event() -> None:
    with LocalRuntime(workflows=[CfWaitedEventKeys]) as rt:
        inst = rt.client.create("CfWaitedEventKeys", id="x")
        rt.advance(0)
        inst.send_event("approved", {"by": "ana"})
        rt.run_until_idle()
        st = inst.status()
    assert st.status == "complete", st.error
    assert st.output == {"type": "approved", "payload": {"by": "ana"}, "has_timestamp": True}


BODIES: list[str] = []


class CfSharedDependency(WorkflowEntrypoint):
    """Not an example: one dependency named by two concurrent steps, and a finished step called again.

    The DAG page: "If a dependency has already completed, it will be skipped and its return value will
    be reused." So ``base`` runs once for ``left`` and ``right``, and calling ``left`` a second time gives
    its result without running its body again."""

    async def run(self, event: Any, step: Any) -> Any:
        @step.do()
        async def base() -> int:
            BODIES.append("base")
            return 1

        @step.do(concurrent=True)
        async def left(base: int) -> int:
            BODIES.append("left")
            return base + 10

        @step.do(concurrent=True)
        async def right(base: int) -> int:
            BODIES.append("right")
            return base + 20

        first = [await left(), await right()]
        await step.sleep("between", "1 second")
        return [*first, await left()]


class CfCatchTypeError(WorkflowEntrypoint):
    """Not an example: ``except TypeError`` catches a step that failed for good with a TypeError."""

    async def run(self, event: Any, step: Any) -> Any:
        @step.do("broken", config={"retries": {"limit": 1, "delay": "1 second"}})
        async def broken() -> None:
            BODIES.append("broken")
            raise TypeError("bad type")

        try:
            await broken()
        except TypeError as e:
            return {"step_failed": isinstance(e, StepFailedError), "message": str(e)}
        return None


def test_a_dependency_shared_by_two_steps_runs_once_and_a_done_step_is_not_rerun() -> None:
    BODIES.clear()
    st, _, order = run(CfSharedDependency, until="1 minute")
    assert st.status == "complete", st.error
    assert st.output == [11, 21, 11]
    assert sorted(BODIES) == ["base", "left", "right"]
    assert [n for _, n in order].count("base") == 1


def test_except_type_error_catches_a_failed_step() -> None:
    BODIES.clear()
    st, _, _ = run(CfCatchTypeError, until="1 minute")
    assert st.status == "complete", st.error
    assert st.output is not None and st.output["step_failed"] is True
    assert "bad type" in st.output["message"]
    assert BODIES == ["broken", "broken"]  # one retry: two attempts
