"""template.yaml: it translates offline, and linting the translation catches what raw SAM linting misses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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
