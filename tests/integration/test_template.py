"""template.yaml: it translates offline, and linting the translation catches what raw SAM linting misses."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from framework.local import LocalRuntime
from framework.local.template import load_stack, parse_template
from infra.lint_template import ROOT, translated

CFN_LINT = str(Path(sys.executable).parent / "cfn-lint")


def test_translation_keeps_partial_batch_responses() -> None:
    resources = translated(ROOT / "template.yaml")["Resources"]
    assert isinstance(resources, dict)
    mappings = [r for r in resources.values() if r["Type"] == "AWS::Lambda::EventSourceMapping"]
    assert len(mappings) == 3  # work queue, inbox, table stream
    assert all(m["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"] for m in mappings)


def test_translated_lint_catches_a_typo_that_raw_lint_misses(tmp_path: Path) -> None:
    bad = (
        (ROOT / "template.yaml").read_text().replace("[ReportBatchItemFailures]", "[ReportBatchItemFailure]")
    )
    raw = tmp_path / "bad.yaml"
    raw.write_text(bad)
    out = tmp_path / "bad.json"
    out.write_text(json.dumps(translated(raw)))
    assert subprocess.run([CFN_LINT, str(raw)], capture_output=True, check=False).returncode == 0
    assert subprocess.run([CFN_LINT, str(out)], capture_output=True, check=False).returncode != 0


ALLOWED_TIMEOUTS = parse_template((ROOT / "template.yaml").read_text())["Parameters"]["WorkerTimeout"][
    "AllowedValues"
]


@pytest.mark.parametrize("timeout", ALLOWED_TIMEOUTS)
def test_work_queue_visibility_is_six_times_the_worker_timeout(timeout: int) -> None:
    """AWS's advice for SQS event sources, for every WorkerTimeout the template allows."""
    stack = load_stack(ROOT / "template.yaml")
    stack.parameters["WorkerTimeout"] = timeout
    queue = stack.of_type("AWS::SQS::Queue")["WorkQueue"]
    worker = stack.of_type("AWS::Serverless::Function")["WorkerFunction"]
    assert int(stack.resolve(worker["Timeout"])) == timeout
    assert int(stack.resolve(queue["VisibilityTimeout"])) >= 6 * timeout


def test_local_stack_matches_what_the_framework_expects() -> None:
    """Keys, indexes, TTL and redrive of the stack built from template.yaml are the ones the code uses."""
    from framework.backends import dynamodb as d
    from framework.backends.dynamodb_items import TTL_ATTRIBUTE
    from framework.backends.dynamodb_manage import LIST_INDEX

    with LocalRuntime(workflows=[]) as rt:
        db, sqs = rt.boto3_client("dynamodb"), rt.boto3_client("sqs")
        table = db.describe_table(TableName=rt.table_name)["Table"]
        assert {k["AttributeName"]: k["KeyType"] for k in table["KeySchema"]} == {"pk": "HASH", "sk": "RANGE"}
        indexes = {i["IndexName"]: i for i in table["GlobalSecondaryIndexes"]}
        assert set(indexes) == {d.DUE_INDEX, LIST_INDEX}
        due = indexes[d.DUE_INDEX]
        assert [k["AttributeName"] for k in due["KeySchema"]] == ["shard", "due_at"]
        assert due["Projection"]["NonKeyAttributes"] == ["wake_at"]  # what the sweeper reads, no more
        assert [k["AttributeName"] for k in indexes[LIST_INDEX]["KeySchema"]] == ["shard", "created_at"]
        assert indexes[LIST_INDEX]["Projection"]["NonKeyAttributes"] == ["workflow"]  # never rewritten
        ttl = db.describe_time_to_live(TableName=rt.table_name)["TimeToLiveDescription"]
        assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": TTL_ATTRIBUTE}
        for queue, dead in (("WorkQueue", "WorkDeadLetterQueue"), ("InboxQueue", "InboxDeadLetterQueue")):
            url = rt._stack.urls[queue]
            attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
            redrive = json.loads(attrs["RedrivePolicy"])
            dead_arn = sqs.get_queue_attributes(QueueUrl=rt._stack.urls[dead], AttributeNames=["QueueArn"])
            assert redrive["deadLetterTargetArn"] == dead_arn["Attributes"]["QueueArn"]
            assert int(redrive["maxReceiveCount"]) == 5
        work = sqs.get_queue_attributes(QueueUrl=rt.queue_url, AttributeNames=["VisibilityTimeout"])
        assert int(work["Attributes"]["VisibilityTimeout"]) == 1800


def test_the_template_names_the_ttl_attribute_the_framework_writes() -> None:
    from framework.backends.dynamodb_items import TTL_ATTRIBUTE

    table = load_stack(ROOT / "template.yaml").of_type("AWS::DynamoDB::Table")["Table"]
    assert table["TimeToLiveSpecification"] == {"AttributeName": TTL_ATTRIBUTE, "Enabled": True}


def _dashboard(namespace: str) -> dict[str, Any]:
    """The dashboard's body as CloudFormation would render it, with ``namespace`` as MetricsNamespace."""
    body = parse_template((ROOT / "template.yaml").read_text())["Resources"]["Dashboard"]["Properties"]
    text = body["DashboardBody"].value  # a !Sub
    values = {"MetricsNamespace": namespace, "AWS::Region": "us-east-1"}
    rendered = re.sub(r"\$\{([^}]+)\}", lambda m: values.get(m.group(1), f"<{m.group(1)}>"), text)
    result: dict[str, Any] = json.loads(rendered)
    return result


def test_the_dashboard_charts_every_metric_the_framework_emits_by_its_namespace_and_dimension() -> None:
    from framework.core import metrics

    template = parse_template((ROOT / "template.yaml").read_text())
    assert template["Parameters"]["MetricsNamespace"]["Default"] == metrics.DEFAULT_NAMESPACE
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert env["POWERTOOLS_METRICS_NAMESPACE"].value == "MetricsNamespace"  # !Ref: the code's namespace
    widgets = _dashboard("Shop")["widgets"]
    expressions = [
        m[0]["expression"]
        for w in widgets
        for m in w["properties"]["metrics"]
        if isinstance(m[0], dict) and "expression" in m[0]
    ]
    searched = [re.search(r"SEARCH\('\{([^}]*)\} MetricName=\"(\w+)\"", e) for e in expressions]
    assert all(searched), expressions
    assert {s.group(1) for s in searched if s} == {f"Shop,{metrics.DIMENSION}"}
    assert {s.group(2) for s in searched if s} == set(metrics.UNITS)
    # Whatever else it charts, it names our own resources: no other function's or queue's metrics.
    named = [m[3] for w in widgets for m in w["properties"]["metrics"] if isinstance(m[0], str)]
    assert named and all(
        n in ("<WorkerFunction>", "<WorkQueue.QueueName>", "<WorkDeadLetterQueue.QueueName>") for n in named
    )


def test_tracing_is_a_template_option_off_by_default() -> None:
    template = parse_template((ROOT / "template.yaml").read_text())
    parameter = template["Parameters"]["Tracing"]
    assert parameter["Default"] == "PassThrough" and set(parameter["AllowedValues"]) == {
        "PassThrough",
        "Active",
    }
    functions = translated(ROOT / "template.yaml")["Resources"]
    assert isinstance(functions, dict)
    lambdas = [r for r in functions.values() if r["Type"] == "AWS::Lambda::Function"]
    assert len(lambdas) == 5
    for function in lambdas:
        props = function["Properties"]
        assert props["TracingConfig"] == {"Mode": {"Ref": "Tracing"}}
        assert props["Environment"]["Variables"]["WORKFLOWS_TRACING"] == {"Ref": "Tracing"}
    # The local stack runs with the default: tracing off.
    stack = load_stack(ROOT / "template.yaml")
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert stack.resolve(variables["WORKFLOWS_TRACING"]) == "PassThrough"
