"""Registering workflows: ``@workflow(name, params=Model)``."""

from __future__ import annotations

import importlib
import inspect
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from framework.core import serde
from framework.errors import (
    DuplicateWorkflowError,
    InvalidConfigError,
    InvalidParamsError,
    PayloadTooLargeError,
    SerializationError,
    WorkflowNotFoundError,
)

if TYPE_CHECKING:
    from pydantic import BaseModel

    from framework.engine.step import Step

NAME_PATTERN = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9_-]{0,63}$")
MAX_PARAMS_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class WorkflowEvent:
    """What the workflow function receives: ``payload`` (dict, or the params model), the instance
    id, ``timestamp``, the creation time as an aware UTC datetime, and the workflow's name. Cloudflare's
    keys read the same: ``event["payload"]``, ``event["timestamp"]``, ``event["instanceId"]``,
    ``event["workflowName"]``."""

    payload: Any
    instance_id: str
    timestamp: datetime
    workflow_name: str = ""

    def __getitem__(self, key: str) -> Any:
        fields = {
            "payload": self.payload,
            "timestamp": self.timestamp,
            "instanceId": self.instance_id,
            "workflowName": self.workflow_name,
        }
        return fields[key]

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        return key in self.keys()

    def keys(self) -> list[str]:
        return ["payload", "timestamp", "instanceId", "workflowName"]


@dataclass(frozen=True, slots=True)
class Workflow:
    """A registered workflow: a function ``fn(event, step)``, or a ``WorkflowEntrypoint`` subclass
    whose ``run(event, step)`` is called on a fresh instance. Calling it calls the code; an async
    workflow's call returns its coroutine."""

    name: str
    fn: Callable[..., Any]
    params: type[BaseModel] | None = None

    @property
    def is_async(self) -> bool:
        code = getattr(self.fn, "run", None) if isinstance(self.fn, type) else self.fn
        return inspect.iscoroutinefunction(code)

    def __call__(self, event: WorkflowEvent, step: Step) -> Any:
        if isinstance(self.fn, type):
            return self.fn().run(event, step)
        return self.fn(event, step)

    def encode_params(self, params: Any) -> str:
        """Validate params against the model and return them as JSON text, checked as ``serde.dumps``
        checks a stored value. Raise InvalidParamsError, SerializationError or PayloadTooLargeError,
        with messages that hold no value and no dict key of the params."""
        what = f"params of workflow {self.name!r}"
        if self.params is not None:
            from pydantic import ValidationError  # loaded already: self.params is a model class

            try:
                model = params if isinstance(params, self.params) else self.params.model_validate(params)
            except ValidationError as exc:
                found = serde.problems(exc, self.params)
                raise InvalidParamsError(
                    f"{what} are invalid: {serde.describe(found)}", details=found
                ) from None
            except RecursionError:  # pydantic on input nested about 1,000 levels deep
                raise SerializationError(f"{what} nest deeper than {serde.MAX_DEPTH} levels") from None
            # Checked as dumped, NaN and infinities kept: a float field accepts inf (and "inf"), which
            # pydantic's own JSON would store as null.
            text = serde.dumps(serde.dump_model(model, what=what), what=what)
        else:
            if params is not None and not isinstance(params, dict):
                raise InvalidParamsError(f"{what} must be a JSON object, not {type(params).__name__}")
            text = serde.dumps(params or {}, what=what)
        size = len(text.encode())
        if size > MAX_PARAMS_BYTES:
            raise PayloadTooLargeError(f"{what} are {size} bytes; the limit is {MAX_PARAMS_BYTES}")
        return text

    def decode_params(self, text: str) -> Any:
        """The params as the workflow receives them. Raise InvalidParamsError if the model no longer
        accepts what was stored (it changed since), without the stored values in the message."""
        data = json.loads(text)
        if self.params is None:
            return data
        from pydantic import ValidationError

        try:
            return self.params.model_validate(data)
        except ValidationError as exc:
            found = serde.problems(exc, self.params)
            raise InvalidParamsError(
                f"params of workflow {self.name!r} no longer fit its model: {serde.describe(found)}",
                details=found,
            ) from None


class Registry:
    """Workflows by name."""

    def __init__(self, workflows: Iterable[Workflow] = ()) -> None:
        self._workflows: dict[str, Workflow] = {}
        self.broken: dict[str, str] = {}  # workflow module -> why it failed to import
        for wf in workflows:
            self.add(wf)

    def add(self, wf: Workflow | type) -> None:
        """Add a workflow, or the ``WorkflowEntrypoint`` class registered as one."""
        if isinstance(wf, type):
            found = getattr(wf, "__workflow__", None)
            if not isinstance(found, Workflow) or found.fn is not wf:
                raise InvalidConfigError(f"{wf.__qualname__} is not a registered workflow class")
            wf = found
        existing = self._workflows.get(wf.name)
        if existing is not None and _origin(existing.fn) != _origin(wf.fn):
            raise DuplicateWorkflowError(
                f"workflow name {wf.name!r} is taken by {_origin(existing.fn)}; "
                f"cannot register {_origin(wf.fn)} under it too"
            )
        self._workflows[wf.name] = wf

    def remove(self, wf: Workflow) -> None:
        """Take ``wf`` out, if it is registered (a class renamed by ``@workflow``)."""
        if self._workflows.get(wf.name) is wf:
            del self._workflows[wf.name]

    def get(self, name: str) -> Workflow:
        try:
            return self._workflows[name]
        except KeyError:
            known = ", ".join(sorted(self._workflows)) or "none"
            message = f"no workflow named {name!r} (registered: {known})"
            if self.broken:
                failed = "; ".join(f"{module}: {why}" for module, why in sorted(self.broken.items()))
                message += f"; workflow modules that failed to import: {failed}"
            raise WorkflowNotFoundError(message) from None

    def names(self) -> list[str]:
        return sorted(self._workflows)


def _origin(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


REGISTRY = Registry()


def check_workflow_name(name: Any) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise InvalidConfigError(
            f"workflow name {name!r} is invalid: use 1 to 64 letters, digits, '_' or '-', "
            "not starting with '-'"
        )
    return name


def register_class(cls: type, name: str, params: type[BaseModel] | None = None) -> Workflow:
    """Register a ``WorkflowEntrypoint`` subclass as workflow ``name``, in place of any name it was
    registered under before."""
    check_workflow_name(name)
    previous = cls.__dict__.get("__workflow__")
    wf = Workflow(name=name, fn=cls, params=params)
    REGISTRY.add(wf)
    if isinstance(previous, Workflow) and previous.name != name:
        REGISTRY.remove(previous)
    cls.__workflow__ = wf  # type: ignore[attr-defined]
    cls.name = name  # type: ignore[attr-defined]
    return wf


def workflow(name: str, *, params: type[BaseModel] | None = None) -> Callable[[Any], Any]:
    """Register the decorated function as workflow ``name``, or name a ``WorkflowEntrypoint``
    subclass (the class is returned, registered under ``name``). Names are unique per process."""
    check_workflow_name(name)
    if params is not None:
        # Imported here: a workflow without a params model does not load pydantic.
        from pydantic import BaseModel

        if not (isinstance(params, type) and issubclass(params, BaseModel)):
            raise InvalidConfigError(f"params of workflow {name!r} must be a pydantic model class")

    def register(fn: Any) -> Any:
        if isinstance(fn, type) and callable(getattr(fn, "run", None)):
            register_class(fn, name, params)
            return fn
        if inspect.isasyncgenfunction(fn) or inspect.isgeneratorfunction(fn):
            raise InvalidConfigError(f"workflow {name!r} is a generator; use a function or an async function")
        if not callable(fn):
            raise InvalidConfigError(f"workflow {name!r} must decorate a function")
        wf = Workflow(name=name, fn=fn, params=params)
        REGISTRY.add(wf)
        return wf

    return register


def load_modules(
    modules: str | Iterable[str], *, strict: bool = True, registry: Registry = REGISTRY
) -> dict[str, str]:
    """Import workflow modules (comma-separated, or a list), which register their workflows.

    ``strict``: the first module that raises on import raises here. Otherwise every module is tried,
    and the failures are returned and kept in ``registry.broken``, so that the instances of the
    workflows they hold fail with the reason while the others run on (a worker must not stop)."""
    names = modules.split(",") if isinstance(modules, str) else list(modules)
    failures: dict[str, str] = {}
    for module in (m.strip() for m in names):
        if not module:
            continue
        try:
            importlib.import_module(module)
        except Exception as exc:
            if strict:
                raise
            failures[module] = f"{type(exc).__name__}: {exc}"[:1000]
    registry.broken.update(failures)
    return failures
