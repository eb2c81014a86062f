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

from framework.api.limits import Limits, limits_of
from framework.api.schedules import Schedule, schedule_of
from framework.api.triggers import Trigger, trigger_of
from framework.core import serde
from framework.core.durations import Duration
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
VERSION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")
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
    # The code's version, recorded by each instance it starts (``InstanceRecord.code_version``). Several
    # versions of one name may be registered: new instances start on the highest, and an instance runs
    # the version it recorded while that version is registered (docs/changing-code.md).
    version: str | None = None
    schedule: Schedule | None = None
    trigger: Trigger | None = None
    limits: Limits | None = None

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
        self._workflows: dict[str, Workflow] = {}  # name -> the version new instances start on
        self._versions: dict[str, dict[str | None, Workflow]] = {}
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
        versions = self._versions.setdefault(wf.name, {})
        for version, existing in list(versions.items()):
            if _origin(existing.fn) == _origin(wf.fn):
                del versions[version]  # the same code registered again (a reload), maybe re-versioned
            elif version == wf.version:
                shown = "" if version is None else f" version {version!r}"
                raise DuplicateWorkflowError(
                    f"workflow name {wf.name!r}{shown} is taken by {_origin(existing.fn)}; "
                    f"cannot register {_origin(wf.fn)} under it too"
                )
            elif version is None or wf.version is None:
                raise DuplicateWorkflowError(
                    f"workflow {wf.name!r} is registered by {_origin(existing.fn)} and "
                    f"{_origin(wf.fn)}: give each a different version"
                )
        versions[wf.version] = wf
        self._workflows[wf.name] = _latest(versions)

    def remove(self, wf: Workflow) -> None:
        """Take ``wf`` out, if it is registered (a class renamed by ``@workflow``)."""
        versions = self._versions.get(wf.name, {})
        if versions.get(wf.version) is wf:
            del versions[wf.version]
            if versions:
                self._workflows[wf.name] = _latest(versions)
            else:
                del self._workflows[wf.name]
                del self._versions[wf.name]

    def get(self, name: str, version: str | None = None) -> Workflow:
        """The workflow ``name``: its code of ``version`` if that version is registered, else the
        version new instances start on. Raise WorkflowNotFoundError."""
        try:
            latest = self._workflows[name]
        except KeyError:
            known = ", ".join(sorted(self._workflows)) or "none"
            message = f"no workflow named {name!r} (registered: {known})"
            if self.broken:
                failed = "; ".join(f"{module}: {why}" for module, why in sorted(self.broken.items()))
                message += f"; workflow modules that failed to import: {failed}"
            raise WorkflowNotFoundError(message) from None
        if version is not None:
            return self._versions[name].get(version, latest)
        return latest

    def versions(self, name: str) -> list[str]:
        """The versions of ``name`` registered here, oldest first (none for an unversioned one)."""
        found = [v for v in self._versions.get(name, {}) if v is not None]
        return sorted(found, key=version_order)

    def names(self) -> list[str]:
        return sorted(self._workflows)

    def all(self) -> list[Workflow]:
        """The workflow each name starts new instances on, by name."""
        return [self._workflows[name] for name in self.names()]


def _latest(versions: dict[str | None, Workflow]) -> Workflow:
    return max(versions.values(), key=lambda w: version_order(w.version))


def version_order(version: str | None) -> tuple[tuple[int, int | str], ...]:
    """How versions sort: by their dot- or dash-separated parts, numbers as numbers ("2" < "10",
    "2024-06-01" < "2024-12-01"), a number part before a text part."""
    if version is None:
        return ()
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[.\-_]", version))


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


def check_version(name: str, version: Any) -> str | None:
    if version is None:
        return None
    if isinstance(version, int) and not isinstance(version, bool):
        version = str(version)
    if not isinstance(version, str) or not VERSION_PATTERN.fullmatch(version):
        raise InvalidConfigError(
            f"version of workflow {name!r} must be an int or 1 to 40 letters, digits, '.', '_' or '-'"
        )
    return version


@dataclass(frozen=True, slots=True)
class Options:
    """What ``@workflow`` declares besides the name and the code."""

    params: type[BaseModel] | None = None
    version: str | None = None
    schedule: Schedule | None = None
    trigger: Trigger | None = None
    limits: Limits | None = None


def register_class(cls: type, name: str, options: Options | None = None) -> Workflow:
    """Register a ``WorkflowEntrypoint`` subclass as workflow ``name``, in place of any name it was
    registered under before."""
    check_workflow_name(name)
    previous = cls.__dict__.get("__workflow__")
    wf = _make(name, cls, options or Options())
    REGISTRY.add(wf)
    if isinstance(previous, Workflow) and previous.name != name:
        REGISTRY.remove(previous)
    cls.__workflow__ = wf  # type: ignore[attr-defined]
    cls.name = name  # type: ignore[attr-defined]
    return wf


def _make(name: str, fn: Any, options: Options) -> Workflow:
    return Workflow(
        name=name,
        fn=fn,
        params=options.params,
        version=options.version,
        schedule=options.schedule,
        trigger=options.trigger,
        limits=options.limits,
    )


def workflow(
    name: str,
    *,
    params: type[BaseModel] | None = None,
    version: str | int | None = None,
    schedule: str | None = None,
    every: Duration | None = None,
    timezone: str | None = None,
    catch_up: str | None = None,
    catch_up_window: Duration | None = None,
    trigger: dict[str, Any] | None = None,
    concurrency: int | None = None,
    rate: str | None = None,
    key: Callable[[Any], Any] | None = None,
) -> Callable[[Any], Any]:
    """Register the decorated function as workflow ``name``, or name a ``WorkflowEntrypoint``
    subclass (the class is returned, registered under ``name``). A name is unique per process and
    version. ``schedule``/``every`` start it on a clock (docs/schedules.md), ``trigger`` on S3 or
    EventBridge events (docs/triggers.md), and ``concurrency``/``rate``/``key`` bound how many of its
    instances run (docs/limits.md). Raise InvalidConfigError on any bad option."""
    check_workflow_name(name)
    if params is not None:
        # Imported here: a workflow without a params model does not load pydantic.
        from pydantic import BaseModel

        if not (isinstance(params, type) and issubclass(params, BaseModel)):
            raise InvalidConfigError(f"params of workflow {name!r} must be a pydantic model class")
    options = Options(
        params=params,
        version=check_version(name, version),
        schedule=schedule_of(name, schedule, every, timezone, catch_up, catch_up_window),
        trigger=trigger_of(name, trigger),
        limits=limits_of(name, concurrency, rate, key),
    )

    def register(fn: Any) -> Any:
        if isinstance(fn, type) and callable(getattr(fn, "run", None)):
            register_class(fn, name, options)
            return fn
        if inspect.isasyncgenfunction(fn) or inspect.isgeneratorfunction(fn):
            raise InvalidConfigError(f"workflow {name!r} is a generator; use a function or an async function")
        if not callable(fn):
            raise InvalidConfigError(f"workflow {name!r} must decorate a function")
        wf = _make(name, fn, options)
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
