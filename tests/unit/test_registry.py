"""Registration, params validation and the pinned public surface."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, Field

import framework
from framework import (
    DuplicateWorkflowError,
    InvalidConfigError,
    InvalidParamsError,
    PayloadTooLargeError,
    WorkflowError,
    WorkflowNotFoundError,
    workflow,
)
from framework.api.registry import REGISTRY, Registry, Workflow


class Params(BaseModel):
    key: str = Field(min_length=1)
    size: int = 0


@workflow("registry-test-typed", params=Params)
def typed(event: Any, step: Any) -> Any:
    return event.payload


def test_registered_globally_and_callable() -> None:
    assert REGISTRY.get("registry-test-typed") is typed
    assert typed.params is Params


def test_duplicate_names_are_an_error() -> None:
    def other(event: Any, step: Any) -> None: ...

    with pytest.raises(DuplicateWorkflowError, match="registry-test-typed"):
        workflow("registry-test-typed")(other)


def test_reregistering_the_same_function_is_allowed() -> None:
    REGISTRY.add(Workflow("registry-test-typed", typed.fn, Params))


@pytest.mark.parametrize("name", ["", "-x", "a" * 65, "a/b", "with space", "x\n", 3])
def test_bad_workflow_names(name: Any) -> None:
    with pytest.raises(InvalidConfigError):
        workflow(name)


def test_params_must_be_a_model_class() -> None:
    with pytest.raises(InvalidConfigError):
        workflow("registry-test-bad-params", params=dict)  # type: ignore[arg-type]


def test_async_workflows_register_and_generators_are_refused() -> None:
    async def run(event: Any, step: Any) -> None: ...

    def gen(event: Any, step: Any) -> Any:
        yield 1

    registry = Registry([workflow("registry-test-async")(run)])
    assert registry.get("registry-test-async").is_async
    with pytest.raises(InvalidConfigError, match="generator"):
        workflow("registry-test-gen")(gen)


def test_unknown_workflow() -> None:
    with pytest.raises(WorkflowNotFoundError, match="nope"):
        Registry().get("nope")


def test_params_validation() -> None:
    assert typed.decode_params(typed.encode_params({"key": "a"})) == Params(key="a")
    assert typed.encode_params(Params(key="b", size=2)) == '{"key":"b","size":2}'
    with pytest.raises(InvalidParamsError) as info:
        typed.encode_params({"key": "", "size": "big"})
    assert {tuple(d["loc"]) for d in info.value.details} == {("key",), ("size",)}
    untyped = Workflow("untyped", lambda e, s: None)
    assert untyped.decode_params(untyped.encode_params(None)) == {}
    with pytest.raises(InvalidParamsError):
        untyped.encode_params([1, 2])
    with pytest.raises(PayloadTooLargeError):
        untyped.encode_params({"blob": "x" * 300_000})


def test_errors_share_one_base() -> None:
    for name in framework.__all__:
        obj = getattr(framework, name)
        if isinstance(obj, type) and issubclass(obj, Exception) and name.endswith("Error"):
            assert issubclass(obj, WorkflowError), name


def test_public_surface_is_pinned() -> None:
    assert sorted(framework.__all__) == [
        "ApiError",
        "ApiUnreachableError",
        "Backoff",
        "BatchFailedError",
        "BatchItem",
        "BatchItemStatus",
        "BatchResult",
        "CallbackCompletedError",
        "CallbackFailedError",
        "CallbackNotFoundError",
        "ChildWorkflowError",
        "CompletionReason",
        "DuplicateWorkflowError",
        "Instance",
        "InstanceAlreadyExistsError",
        "InstanceBusyError",
        "InstanceNotFoundError",
        "InstanceStatus",
        "InvalidConfigError",
        "InvalidInstanceIdError",
        "InvalidParamsError",
        "InvalidStateError",
        "InvocationCrashedError",
        "Jitter",
        "NonDeterminismError",
        "NonRetryableError",
        "PayloadTooLargeError",
        "RetryPolicy",
        "SerializationError",
        "Status",
        "Step",
        "StepConfig",
        "StepContext",
        "StepFailedError",
        "StepTimeoutError",
        "ThrottledError",
        "UndoFailedError",
        "Workflow",
        "WorkflowClient",
        "WorkflowCodeError",
        "WorkflowEntrypoint",
        "WorkflowError",
        "WorkflowEvent",
        "WorkflowNotFoundError",
        "WorkflowTimeoutError",
        "__version__",
        "poll_every",
        "workflow",
    ]
    for name in framework.__all__:
        assert hasattr(framework, name)


def test_errors_module_imports_nothing_from_the_framework() -> None:
    import ast
    import inspect

    import framework.errors

    tree = ast.parse(inspect.getsource(framework.errors))
    imported = [
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    ] + [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    assert not [m for m in imported if m.startswith("framework")]


def test_suspension_is_not_an_exception() -> None:
    from framework.backends.store import LeaseLost
    from framework.errors import Suspend

    assert not issubclass(Suspend, Exception)
    assert not issubclass(LeaseLost, Exception)


def test_a_module_that_fails_to_import_is_recorded_and_the_others_load(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from framework.api.registry import load_modules

    (tmp_path / "wf_import_boom.py").write_text("raise RuntimeError('boom at import')\n")
    (tmp_path / "wf_import_fine.py").write_text(
        "from framework import workflow\n\n\n@workflow('import-fine')\ndef fine(event, step):\n    return 1\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(RuntimeError, match="boom at import"):
        load_modules("wf_import_boom")
    registry = Registry()
    failed = load_modules(" wf_import_boom , wf_import_fine,", strict=False, registry=registry)
    assert failed == {"wf_import_boom": "RuntimeError: boom at import"}
    assert registry.broken == failed
    assert REGISTRY.get("import-fine").name == "import-fine"
    with pytest.raises(WorkflowNotFoundError, match="wf_import_boom: RuntimeError: boom at import"):
        registry.get("lost")


def test_instances_of_a_broken_module_error_with_the_reason_and_the_queue_moves_on() -> None:
    from tests.unit.harness import Harness

    h = Harness(Workflow("fragile", lambda event, step: step.do("a", lambda: 1)))
    h.start("fragile", id="f1")
    # A new deploy whose module for "fragile" raises at import; "sturdy" still loads.
    registry = Registry([Workflow("sturdy", lambda event, step: step.do("a", lambda: 2))])
    registry.broken["flows.fragile"] = "SyntaxError: invalid syntax (fragile.py, line 3)"
    h.env.registry = registry
    h.client = type(h.client)(environment=h.env)
    h.start("sturdy", id="s1")
    h.run_due()
    broken = h.client.get("f1").status()
    assert broken.status == "errored"
    assert broken.error is not None and broken.error["name"] == "WorkflowNotFoundError"
    assert "flows.fragile: SyntaxError" in broken.error["message"]
    assert h.client.get("s1").status().output == 2


def test_a_container_starts_even_when_a_workflow_module_fails_to_import(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from framework.backends.environment import from_env

    (tmp_path / "wf_import_boom2.py").write_text("import no_such_dependency_here\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(REGISTRY, "broken", {})
    environ = {
        "WORKFLOWS_TABLE": "t",
        "WORKFLOWS_QUEUE_URL": "https://q",
        "WORKFLOW_MODULES": "wf_import_boom2",
    }
    env = from_env(environ, dynamodb=object(), sqs=object())
    assert env.registry.broken == {
        "wf_import_boom2": "ModuleNotFoundError: No module named 'no_such_dependency_here'"
    }
    assert "workflow modules failed to import" in caplog.text
