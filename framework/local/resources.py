"""Create the table, queues and bucket of ``template.yaml`` on an endpoint (moto, in-process or a server).

Applied from the template: the table's keys, indexes and TTL; the queues' visibility timeout,
retention, delay and redrive policy. Names are ``<prefix>-<logical id>``.

Shared by ``LocalRuntime`` and ``workflows dev``. Creation is idempotent: an existing table, queue or
bucket of the same name is reused, and the queues' attributes are set again from the template, so a
process that starts again on a long-running endpoint finds the stack it left there.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from framework.local.template import Stack

# How the ``table_exists`` waiter polls DescribeTable: a local endpoint makes a table ACTIVE within a
# second (dynalite: 500 ms by default), so poll often, for a minute at most. The waiter's own default
# (every 20 s) would add 20 s to each start.
TABLE_POLL = {"Delay": 0.2, "MaxAttempts": 300}


def create_resources(stack: Stack, dynamodb: Any, sqs: Any, s3: Any) -> None:
    """Create (or find) every table, queue and bucket of ``stack`` and fill in ``stack.physical`` (names),
    ``stack.urls`` (queue URLs) and ``stack.arns`` (queue ARNs). Names are ``<prefix>-<logical id>``.
    Each table is ACTIVE when this returns."""
    for logical in stack.of_type("AWS::DynamoDB::Table"):
        create_table(stack, logical, dynamodb)
    queues = stack.of_type("AWS::SQS::Queue")
    for logical in queues:  # first all queues, then their redrive policies, which refer to each other
        name = stack.physical[logical] = f"{stack.prefix}-{logical}"
        # Without attributes, CreateQueue returns the URL of an existing queue of that name.
        url = stack.urls[logical] = sqs.create_queue(QueueName=name)["QueueUrl"]
        stack.arns[logical] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
    for logical, props in queues.items():
        attributes: dict[str, str] = {
            key: str(stack.resolve(props[key]))
            for key in ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds")
            if key in props
        }
        if "RedrivePolicy" in props:
            attributes["RedrivePolicy"] = json.dumps(stack.resolve(props["RedrivePolicy"]))
        if attributes:
            sqs.set_queue_attributes(QueueUrl=stack.urls[logical], Attributes=attributes)
    for logical in stack.of_type("AWS::S3::Bucket"):
        name = stack.physical[logical] = f"{stack.prefix}-{logical}".lower()
        s3.create_bucket(Bucket=name)  # us-east-1 answers 200 for a bucket that the caller already owns


def create_table(stack: Stack, logical: str, dynamodb: Any) -> str:
    """Create (or find) the table ``logical`` of ``stack``, wait until it is ACTIVE, then apply its TTL.
    Return its name, ``<prefix>-<logical id>``.

    DynamoDB, DynamoDB Local and dynalite create a table CREATING and answer ResourceNotFoundException
    to reads and writes until it is ACTIVE; moto makes it ACTIVE at once, which would hide a missing
    wait. The indexes defined with a table are ACTIVE with it."""
    props = stack.of_type("AWS::DynamoDB::Table")[logical]
    name = stack.physical[logical] = f"{stack.prefix}-{logical}"
    args: dict[str, Any] = {
        k: stack.resolve(props[k]) for k in ("AttributeDefinitions", "KeySchema") if k in props
    }
    if props.get("GlobalSecondaryIndexes"):
        args["GlobalSecondaryIndexes"] = stack.resolve(props["GlobalSecondaryIndexes"])
    # An existing table belongs to a local stack kept by a long-running endpoint: reuse it (it may
    # still be CREATING, if another process has just created it).
    with contextlib.suppress(dynamodb.exceptions.ResourceInUseException):
        dynamodb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST", **args)
    dynamodb.get_waiter("table_exists").wait(TableName=name, WaiterConfig=TABLE_POLL)
    spec = stack.resolve(props.get("TimeToLiveSpecification") or {})
    if spec.get("Enabled") in (True, "true", "True"):
        # DynamoDB refuses to enable TTL twice; moto records it, though it never deletes anything.
        now = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        if now.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
            dynamodb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": spec["AttributeName"]},
            )
    return name
