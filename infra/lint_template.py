"""Lint template.yaml twice: as SAM, and as the CloudFormation that aws-sam-translator makes of it,
because cfn-lint misses some mistakes in raw SAM (../shared/reference/toolbox.md). Offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import boto3
from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
from samtranslator.translator.transform import transform

from framework.local.template import parse_template

ROOT = Path(__file__).resolve().parents[1]


class OfflinePolicies(ManagedPolicyLoader):
    """No IAM call: the template names no AWS managed policy by name."""

    def __init__(self) -> None:
        super().__init__(boto3.client("iam", region_name="us-east-1"))

    def load(self) -> dict[str, str]:
        return {}


def translated(template: Path) -> dict[str, object]:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    sam = json.loads(json.dumps(parse_template(template.read_text()), default=_intrinsic))
    for resource in sam["Resources"].values():
        if resource.get("Type") == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = "s3://placeholder-bucket/code.zip"
    sam.get("Globals", {}).get("Function", {}).pop("CodeUri", None)
    result: dict[str, object] = transform(sam, {}, OfflinePolicies())
    return result


def _intrinsic(tag: object) -> object:
    name, value = tag.tag, tag.value  # type: ignore[attr-defined]
    if name == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {"Ref": value} if name == "Ref" else {f"Fn::{name}": value}


def main() -> int:
    template = ROOT / "template.yaml"
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "translated.json"
        out.write_text(json.dumps(translated(template), indent=1))
        return subprocess.call([str(Path(sys.executable).parent / "cfn-lint"), str(template), str(out)])


if __name__ == "__main__":
    sys.exit(main())
