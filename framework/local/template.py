"""Read ``template.yaml`` to stand up the same table, queues and bucket locally.

Only what a local stack needs is resolved: ``!Ref`` to parameters (their defaults) and resources,
``!GetAtt X.Arn`` / ``X.QueueName``, ``!FindInMap`` and plain ``!Sub``. Resource names are the logical
ids, prefixed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from framework.errors import InvalidConfigError


class _Tag:
    def __init__(self, tag: str, value: Any) -> None:
        self.tag = tag
        self.value = value


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps CloudFormation's short-form tags (``!Ref``, ``!GetAtt`` ...)."""


def _construct_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> _Tag:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return _Tag(suffix, value)


_Loader.add_multi_constructor("!", _construct_tag)


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    handler: str  # "package.module.function", as Lambda resolves it
    timeout: int
    environment: dict[str, str]
    sqs_events: list[dict[str, Any]] = field(default_factory=list)  # Queue (logical id), BatchSize
    schedules: list[str] = field(default_factory=list)
    http: bool = False  # behind the stack's HTTP API (an HttpApi event or an ApiGatewayV2 integration)


@dataclass
class Stack:
    """The resources of ``template.yaml`` with names for one local stack."""

    prefix: str
    parameters: dict[str, Any]
    resources: dict[str, dict[str, Any]]
    globals: dict[str, Any]
    mappings: dict[str, Any] = field(default_factory=dict)
    physical: dict[str, str] = field(default_factory=dict)  # logical id -> name (table, queue, bucket)
    urls: dict[str, str] = field(default_factory=dict)  # queue logical id -> URL
    arns: dict[str, str] = field(default_factory=dict)

    def of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        return {k: v.get("Properties", {}) or {} for k, v in self.resources.items() if v.get("Type") == kind}

    def resolve(self, value: Any) -> Any:
        if isinstance(value, _Tag):
            return self._resolve_tag(value.tag, value.value)
        if isinstance(value, dict):
            if len(value) == 1:
                ((key, inner),) = value.items()
                if key == "Ref" or key.startswith("Fn::"):
                    return self._resolve_tag(key.removeprefix("Fn::"), inner)
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        return value

    def _resolve_tag(self, tag: str, value: Any) -> Any:
        if tag == "Ref":
            if value in self.parameters:
                return self.parameters[value]
            if value in self.urls:
                return self.urls[value]
            if value in self.physical:
                return self.physical[value]
            raise InvalidConfigError(f"template: cannot resolve !Ref {value} locally")
        if tag == "GetAtt":
            logical, _, attribute = (value if isinstance(value, str) else ".".join(value)).partition(".")
            if attribute == "Arn" and logical in self.arns:
                return self.arns[logical]
            if attribute in ("QueueName", "Name") and logical in self.physical:
                return self.physical[logical]
            raise InvalidConfigError(f"template: cannot resolve !GetAtt {value} locally")
        if tag == "Sub":
            text = value if isinstance(value, str) else value[0]
            return re.sub(r"\$\{([^}]+)\}", lambda m: str(self._resolve_tag("Ref", m.group(1))), text)
        if tag == "FindInMap":
            name, top, second = (self.resolve(v) for v in value)
            try:
                return self.mappings[name][str(top)][second]
            except KeyError:
                raise InvalidConfigError(
                    f"template: !FindInMap {name}.{top}.{second} is not defined"
                ) from None
        raise InvalidConfigError(f"template: !{tag} is not supported by the local stack")

    def _integrated(self) -> set[str]:
        """Logical ids of the functions that an ``AWS::ApiGatewayV2::Integration`` targets."""
        found = set()
        for props in self.of_type("AWS::ApiGatewayV2::Integration").values():
            uri = props.get("IntegrationUri")
            target = uri.value if isinstance(uri, _Tag) and uri.tag == "GetAtt" else None
            if isinstance(uri, dict) and "Fn::GetAtt" in uri:
                target = uri["Fn::GetAtt"]
            if target is not None:
                found.add((target if isinstance(target, str) else ".".join(target)).split(".")[0])
        return found

    def functions(self) -> list[FunctionSpec]:
        defaults = self.globals.get("Function", {}) or {}
        integrated = self._integrated()
        specs = []
        for logical, props in self.of_type("AWS::Serverless::Function").items():
            env = dict(defaults.get("Environment", {}).get("Variables", {}))
            env.update((props.get("Environment") or {}).get("Variables", {}))
            sqs, schedules = [], []
            http = logical in integrated
            for event in (props.get("Events") or {}).values():
                http = http or event.get("Type") == "HttpApi"
                if event.get("Type") == "SQS":
                    queue_ref = event["Properties"]["Queue"]
                    target = queue_ref.value if isinstance(queue_ref, _Tag) else queue_ref["Fn::GetAtt"]
                    target = target if isinstance(target, str) else ".".join(target)
                    sqs.append(
                        {
                            "Queue": target.split(".")[0],
                            "BatchSize": int(self.resolve(event["Properties"].get("BatchSize", 10))),
                        }
                    )
                elif event.get("Type") == "Schedule":
                    schedules.append(str(self.resolve(event["Properties"]["Schedule"])))
            specs.append(
                FunctionSpec(
                    logical_id=logical,
                    handler=props["Handler"],
                    timeout=int(self.resolve(props.get("Timeout", defaults.get("Timeout", 3)))),
                    environment={k: str(self.resolve(v)) for k, v in env.items()},
                    sqs_events=sqs,
                    schedules=schedules,
                    http=http,
                )
            )
        return specs


def find_template(path: str | Path | None = None) -> Path:
    """``path``; else ``template.yaml`` in the working folder or above; else the copy in the package."""
    if path is not None:
        found = Path(path)
        if not found.is_file():
            raise InvalidConfigError(f"template {found} does not exist")
        return found
    for folder in [Path.cwd(), *Path.cwd().parents, Path(__file__).resolve().parents[2]]:
        candidate = folder / "template.yaml"
        if candidate.is_file() and "AWS::Serverless" in candidate.read_text():
            return candidate
    packaged = resources.files("framework").joinpath("_data/template.yaml")
    if packaged.is_file():
        return Path(str(packaged))
    raise InvalidConfigError("no template.yaml found; pass template=PATH")


def parse_template(text: str) -> dict[str, Any]:
    """The template as data; CloudFormation's short-form tags stay tag objects (``.tag``, ``.value``)."""
    raw: dict[str, Any] = yaml.load(text, Loader=_Loader)
    return raw


def load_stack(path: str | Path | None = None, *, prefix: str = "local") -> Stack:
    raw = parse_template(find_template(path).read_text())
    params = {name: spec.get("Default") for name, spec in (raw.get("Parameters") or {}).items()}
    return Stack(
        prefix=prefix,
        parameters=params,
        resources=raw.get("Resources") or {},
        globals=raw.get("Globals") or {},
        mappings=raw.get("Mappings") or {},
    )
