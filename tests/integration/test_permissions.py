"""Least privilege, checked both ways: the roles in template.yaml grant every AWS call that each handler
really makes (or the deployed stack would fail), and nothing more (or the grant would be excess).

Every function's calls are recorded while the handlers that the template names run on a local stack, and
each call is turned into the IAM action and resource ARN that AWS would authorize.
"""

from __future__ import annotations

import contextlib
import contextvars
import fnmatch
import importlib
import json
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import botocore.client
import pytest

from framework import workflow
from framework.backends.environment import Settings
from framework.local import LocalContext, LocalRuntime
from framework.local.template import parse_template
from infra.lint_template import ROOT, translated
from tests.integration import workflows as w
from tests.integration.apigw import http_event
from tests.integration.test_cleanup import stream_record

ACCOUNT = "123456789012"
REGION = "us-east-1"
TEMPLATE = parse_template((ROOT / "template.yaml").read_text())
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
FUNCTIONS = {k: v for k, v in RESOURCES.items() if v["Type"] == "AWS::Serverless::Function"}
# What Lambda's event source mappings do with the function's role: not calls that our code makes.
ESM_SQS = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"}
ESM_STREAM = {
    "dynamodb:DescribeStream",
    "dynamodb:GetRecords",
    "dynamodb:GetShardIterator",
    "dynamodb:ListStreams",
}
LOGS = {"logs:CreateLogStream", "logs:PutLogEvents"}
# A stream event source's failure destination: the mapping sends there with the function's role.
ESM_ON_FAILURE = {"sqs:SendMessage"}

_running: contextvars.ContextVar[str | None] = contextvars.ContextVar("running", default=None)
Call = tuple[str, str]  # (IAM action, resource ARN)


@workflow("perm-big-output")
def big_output(event: Any, step: Any) -> Any:
    return step.do("make", lambda: "o" * 2_000) * 200  # a 400 KB output goes to S3


# -- turning calls into (action, resource) --------------------------------------------------------------
def _table_arn(name: str) -> str:
    return f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}"


def authorizations(service: str, operation: str, params: dict[str, Any]) -> list[Call]:
    """The IAM (action, resource) pairs that AWS checks for one API call."""
    if service == "dynamodb":
        if operation == "TransactWriteItems":
            kinds = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem"}
            kinds["ConditionCheck"] = "ConditionCheckItem"
            return [
                (f"dynamodb:{kinds[kind]}", _table_arn(body["TableName"]))
                for item in params["TransactItems"]
                for kind, body in item.items()
            ]
        if operation in ("BatchWriteItem", "BatchGetItem"):
            return [(f"dynamodb:{operation}", _table_arn(t)) for t in params["RequestItems"]]
        arn = _table_arn(params["TableName"])
        if "IndexName" in params:
            arn += f"/index/{params['IndexName']}"
        return [(f"dynamodb:{operation}", arn)]
    if service == "sqs":
        name = params["QueueUrl"].rsplit("/", 1)[1]
        action = "SendMessage" if operation == "SendMessageBatch" else operation
        return [(f"sqs:{action}", f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}")]
    if service == "s3":
        bucket = f"arn:aws:s3:::{params['Bucket']}"
        if operation == "ListObjectsV2":
            return [("s3:ListBucket", bucket)]
        if operation == "DeleteObjects":
            return [("s3:DeleteObject", f"{bucket}/{o['Key']}") for o in params["Delete"]["Objects"]]
        action = {"HeadObject": "GetObject"}.get(operation, operation)
        return [(f"s3:{action}", f"{bucket}/{params['Key']}")]
    raise AssertionError(f"no IAM mapping for {service}.{operation}")


# -- the template's grants ------------------------------------------------------------------------------
class Arns:
    """Resolve the template's ARN expressions against the names of one local stack."""

    def __init__(self, rt: LocalRuntime) -> None:
        queue = {url.rsplit("/", 1)[1] for url in (rt.queue_url, rt.inbox_url)}
        self.names = {"Table": rt.table_name, "ResultsBucket": rt.bucket_name}
        self.names |= {n.rsplit("-", 1)[1]: n for n in queue}  # "WorkQueue" -> "local-xxxx-WorkQueue"

    def attribute(self, logical: str, attribute: str) -> str:
        kind = RESOURCES[logical]["Type"]
        if kind == "AWS::DynamoDB::Table":
            arn = _table_arn(self.names[logical])
            return arn if attribute == "Arn" else f"{arn}/stream/2026-01-01T00:00:00.000"
        if kind == "AWS::S3::Bucket":
            return f"arn:aws:s3:::{self.names[logical]}"
        if kind == "AWS::SQS::Queue":
            return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{self.names.get(logical, logical)}"
        if kind == "AWS::Logs::LogGroup":
            return f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{logical}:*"
        raise AssertionError(f"no ARN for {logical}.{attribute}")

    def resolve(self, value: Any) -> str:
        tag = getattr(value, "tag", None)
        if tag == "GetAtt":
            return self.attribute(*value.value.split("."))
        if tag == "Sub":

            def field(name: str) -> str:
                return self.attribute(*name.split(".")) if "." in name else self.names[name]

            text: str = value.value
            while "${" in text:
                start = text.index("${")
                end = text.index("}", start)
                text = text[:start] + field(text[start + 2 : end]) + text[end + 1 :]
            return text
        assert isinstance(value, str), f"unexpected resource expression {value!r}"
        return value


def allow_statements(role: str) -> list[dict[str, Any]]:
    statements = []
    for policy in RESOURCES[role]["Properties"]["Policies"]:
        statements += [s for s in policy["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
    return statements


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def grants(role: str, arns: Arns) -> list[tuple[set[str], list[str]]]:
    return [
        (set(as_list(s["Action"])), [arns.resolve(r) for r in as_list(s["Resource"])])
        for s in allow_statements(role)
    ]


def allowed(call: Call, granted: list[tuple[set[str], list[str]]]) -> bool:
    action, arn = call
    return any(
        action in actions and any(fnmatch.fnmatchcase(arn, r) for r in res) for actions, res in granted
    )


def role_of(function: str) -> str:
    role = FUNCTIONS[function]["Properties"]["Role"]
    return str(role.value.split(".")[0])


# -- recording ------------------------------------------------------------------------------------------
@contextlib.contextmanager
def recording() -> Iterator[dict[str, set[Call]]]:
    """Calls made inside each handler, keyed by the function's logical id."""
    calls: dict[str, set[Call]] = defaultdict(set)
    real = botocore.client.BaseClient._make_api_call

    def spy(client: Any, operation: str, params: dict[str, Any]) -> Any:
        function = _running.get()
        if function is not None:
            service = client.meta.service_model.service_name
            calls[function].update(authorizations(service, operation, params))
        return real(client, operation, params)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(botocore.client.BaseClient, "_make_api_call", spy)
        for logical, spec in FUNCTIONS.items():
            module, _, name = spec["Properties"]["Handler"].rpartition(".")
            target = importlib.import_module(module)
            patch.setattr(target, name, _labelled(logical, getattr(target, name)))
        yield calls


def _labelled(logical: str, handler: Callable[..., Any]) -> Callable[..., Any]:
    def run(event: Any, context: Any) -> Any:
        token = _running.set(logical)
        try:
            return handler(event, context)
        finally:
            _running.reset(token)

    return run


def exercise(rt: LocalRuntime) -> None:
    """Every path that calls AWS: the API's routes, the inbox, the worker, the sweeper and the cleanup."""
    from handlers import api, cleanup

    def call(method: str, path: str, body: Any = None, **kw: Any) -> int:
        context = LocalContext("ApiFunction", rt.clock, rt.clock.now() + 30)
        status: int = api.handler(http_event(method, path, body, **kw), context)["statusCode"]
        assert status < 300, (method, path, status)
        return status

    call("POST", "/workflows/it-approval/instances", {"id": "a1"})
    call("POST", "/workflows/it-chain/instances/batch", {"instances": [{"id": "c1"}, {"id": "c2"}]})
    call("POST", "/workflows/it-big/instances", {"id": "big"})
    call("POST", "/workflows/perm-big-output/instances", {"id": "out"})
    rt.advance("1 minute")  # it-approval now waits for its event
    call("POST", "/instances/a1/pause")
    call("POST", "/instances/a1/resume")
    call("POST", "/instances/a1/events", {"type": "approved", "payload": {"by": "api"}})
    call("POST", "/instances/c1/restart")
    call("GET", "/workflows/it-chain/instances", query={"limit": "1"})
    call("GET", "/instances/out")  # its output is read back from S3
    call("GET", "/instances/big/history")  # each result's size: HeadObject
    call("GET", "/instances/big/history", query={"results": "true"})  # the results: GetObject
    sqs = rt.boto3_client("sqs")
    for message in (
        {"action": "create", "workflow": "it-approval", "id": "a2"},
        {"action": "event", "instance_id": "a2", "type": "approved", "payload": {"by": "inbox"}},
    ):
        sqs.send_message(QueueUrl=rt.inbox_url, MessageBody=json.dumps(message))
    rt.run_until_idle()
    call("POST", "/workflows/it-approval/instances", {"id": "a3"})
    call("POST", "/instances/a3/terminate")
    # A lost wake-up: the sweeper finds the instance due and sends it again.
    rt.client.create("it-chain", id="lost")
    sqs.purge_queue(QueueUrl=rt.queue_url)
    rt.advance("5 minutes")
    assert rt.client.get("lost").status().status == "complete"
    # TTL removed "big" and "out": the stream-driven cleanup purges their journals and blobs.
    db = rt.boto3_client("dynamodb")
    for gone in ("big", "out"):
        db.delete_item(TableName=rt.table_name, Key={"pk": {"S": gone}, "sk": {"S": "instance"}})
    context = LocalContext("CleanupFunction", rt.clock, rt.clock.now() + 60)
    cleanup.handler(
        {"Records": [stream_record("big", "instance"), stream_record("out", "instance")]}, context
    )


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[LocalRuntime, dict[str, set[Call]]]]:
    # control_check_seconds=0: the worker looks for pause and terminate at every step (a GetItem).
    settings = Settings(control_check_seconds=0)
    with (
        recording() as calls,
        LocalRuntime(workflows=[w.chain, w.approval, w.big, big_output], settings=settings) as rt,
    ):
        exercise(rt)
        yield rt, calls


# -- the tests ------------------------------------------------------------------------------------------
def test_each_role_grants_exactly_the_calls_its_handler_makes(
    stack: tuple[LocalRuntime, dict[str, set[Call]]],
) -> None:
    rt, calls = stack
    arns = Arns(rt)
    assert set(calls) == set(FUNCTIONS), "every function was exercised"
    for function, made in calls.items():
        granted = grants(role_of(function), arns)
        missing = sorted(c for c in made if not allowed(c, granted))
        assert not missing, f"{function} calls what its role does not grant: {missing}"
        used = {action for action, _ in made} | failure_destination_actions(function)
        excess = {a for actions, _ in granted for a in actions} - used - ESM_SQS - ESM_STREAM - LOGS
        assert not excess, f"{function}'s role grants actions its handler never uses: {sorted(excess)}"


def test_event_sources_and_logs_are_granted_on_their_own_resources(
    stack: tuple[LocalRuntime, dict[str, set[Call]]],
) -> None:
    rt, _ = stack
    arns = Arns(rt)
    for function, spec in FUNCTIONS.items():
        granted = grants(role_of(function), arns)
        group = spec["Properties"]["LoggingConfig"]["LogGroup"].value
        stream = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{group}:log-stream:2026/11/25/abc"
        assert all(allowed((a, stream), granted) for a in LOGS), function
        for event in (spec["Properties"].get("Events") or {}).values():
            source = event["Properties"].get("Queue") or event["Properties"].get("Stream")
            if source is None:
                continue
            arn = arns.resolve(source)
            needed = ESM_SQS if event["Type"] == "SQS" else ESM_STREAM - {"dynamodb:ListStreams"}
            assert all(allowed((a, arn), granted) for a in needed), (function, event["Type"])
            failed = event["Properties"].get("DestinationConfig", {}).get("OnFailure")
            if failed is not None:
                target = arns.resolve(failed["Destination"])
                assert all(allowed((a, target), granted) for a in ESM_ON_FAILURE), (function, target)


def failure_destination_actions(function: str) -> set[str]:
    """What the function's stream event sources send to their failure destinations, if any."""
    events = (FUNCTIONS[function]["Properties"].get("Events") or {}).values()
    return set(ESM_ON_FAILURE) if any("DestinationConfig" in e["Properties"] for e in events) else set()


def test_a_stream_source_gives_up_on_a_failing_purge_into_an_alarmed_queue() -> None:
    """A purge that keeps failing must not block its shard for 24 hours, nor vanish unseen."""
    cleanup = FUNCTIONS["CleanupFunction"]["Properties"]["Events"]["Expired"]["Properties"]
    assert 0 < cleanup["MaximumRetryAttempts"] <= 10 and cleanup["BisectBatchOnFunctionError"] is True
    assert cleanup["MaximumRecordAgeInSeconds"] <= 6 * 3600
    queue = cleanup["DestinationConfig"]["OnFailure"]["Destination"].value.split(".")[0]
    alarmed = [
        r for r in RESOURCES.values() if r["Type"] == "AWS::CloudWatch::Alarm" and _alarm_queue(r) == queue
    ]
    assert alarmed, "the failure destination has an alarm"


def _alarm_queue(alarm: dict[str, Any]) -> Any:
    for dimension in alarm["Properties"].get("Dimensions", []):
        if dimension["Name"] == "QueueName":
            return dimension["Value"].value.split(".")[0]  # GetAtt <logical id>.QueueName
    return None


def _walk_statements(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for logical, resource in template["Resources"].items():
        props = resource.get("Properties") or {}
        documents = [p["PolicyDocument"] for p in props.get("Policies", [])]
        if "PolicyDocument" in props:
            documents.append(props["PolicyDocument"])
        for document in documents:
            for statement in as_list(document["Statement"]):
                yield logical, statement


def _literal(value: Any) -> str:
    """The literal text of a resource expression (intrinsics keep their own text)."""
    if isinstance(value, dict) and "Fn::Sub" in value:
        sub = value["Fn::Sub"]
        return sub if isinstance(sub, str) else sub[0]
    if isinstance(value, dict) and "Fn::Join" in value:
        return "".join(p if isinstance(p, str) else "${x}" for p in value["Fn::Join"][1])
    return value if isinstance(value, str) else ""


# X-Ray's write actions have no resource-level permissions: granted on "*", the one exception, in one
# policy that exists only with Tracing=Active.
XRAY_WRITE = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}


def _xray_exception(resource: dict[str, Any], statement: dict[str, Any]) -> bool:
    return resource.get("Condition") == "TracingOn" and set(as_list(statement["Action"])) <= XRAY_WRITE


def test_no_wildcard_grants_in_the_deployed_template() -> None:
    """On the SAM translation (what CloudFormation deploys): no managed policies, no ``*`` in any allowed
    action, and a ``*`` in a resource only for the keys under one of our own resources (objects under a
    prefix of our bucket, streams of our table), which IAM cannot name one by one, and for X-Ray's writes
    (see XRAY_WRITE)."""
    deployed = translated(ROOT / "template.yaml")
    roles = [r for r in deployed["Resources"].values() if r["Type"] == "AWS::IAM::Role"]
    assert len(roles) == len(FUNCTIONS), "one role per function, none generated by SAM"
    assert not [r for r in roles if r["Properties"].get("ManagedPolicyArns")]
    checked = 0
    for logical, statement in _walk_statements(deployed):
        if statement["Effect"] == "Deny":
            continue  # a Deny narrows access: the bucket's TLS-only policy denies s3:* on purpose
        checked += 1
        for action in as_list(statement["Action"]):
            assert "*" not in action, f"{logical}: wildcard action {action}"
        for resource in as_list(statement.get("Resource", [])):
            text = _literal(resource)
            if text == "*" and _xray_exception(deployed["Resources"][logical], statement):
                continue
            assert text != "*", f"{logical}: Resource '*'"
            if "*" in text:
                assert text.startswith("${") and text.endswith("/*") and text.count("*") == 1, (logical, text)
    assert checked >= 2 * len(FUNCTIONS)


def test_the_wildcard_check_can_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    statement = {"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"}
    monkeypatch.setattr(
        "tests.integration.test_permissions.translated",
        lambda path: {
            "Resources": {
                f"R{i}": {
                    "Type": "AWS::IAM::Role",
                    "Properties": {"Policies": [{"PolicyDocument": {"Statement": [statement] * 2}}]},
                }
                for i in range(len(FUNCTIONS))
            }
        },
    )
    with pytest.raises(AssertionError, match="wildcard action"):
        test_no_wildcard_grants_in_the_deployed_template()


@pytest.mark.parametrize(
    ("condition", "action"),
    [(None, "xray:PutTraceSegments"), ("TracingOn", "s3:GetObject")],
)
def test_the_xray_exception_takes_only_xray_writes_under_the_tracing_condition(
    monkeypatch: pytest.MonkeyPatch, condition: str | None, action: str
) -> None:
    statement = {"Effect": "Allow", "Action": [action], "Resource": "*"}
    policy = {"Type": "AWS::IAM::Policy", "Properties": {"PolicyDocument": {"Statement": [statement] * 2}}}
    if condition:
        policy["Condition"] = condition
    roles = {
        f"R{i}": {"Type": "AWS::IAM::Role", "Properties": {"Policies": []}} for i in range(len(FUNCTIONS))
    }
    monkeypatch.setattr(
        "tests.integration.test_permissions.translated", lambda path: {"Resources": roles | {"P": policy}}
    )
    with pytest.raises(AssertionError, match="Resource '\\*'"):
        test_no_wildcard_grants_in_the_deployed_template()


def test_the_tracing_grant_exists_only_with_tracing_on_and_covers_every_function() -> None:
    deployed = translated(ROOT / "template.yaml")["Resources"]
    assert isinstance(deployed, dict)
    policies = {k: v for k, v in deployed.items() if v["Type"] == "AWS::IAM::Policy"}
    assert list(policies) == ["TracingPolicy"]
    policy = policies["TracingPolicy"]
    assert policy["Condition"] == "TracingOn"
    (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert set(statement["Action"]) == XRAY_WRITE and statement["Resource"] == "*"
    roles = {r["Ref"] for r in policy["Properties"]["Roles"]}
    assert roles == {role_of(function) for function in FUNCTIONS}


def test_the_grant_check_can_fail() -> None:
    granted = [({"dynamodb:GetItem"}, [_table_arn("t")])]
    assert allowed(("dynamodb:GetItem", _table_arn("t")), granted)
    assert not allowed(("dynamodb:PutItem", _table_arn("t")), granted)
    assert not allowed(("dynamodb:GetItem", _table_arn("t") + "/index/list-index"), granted)
