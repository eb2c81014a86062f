"""The one Powertools Logger of the framework and its handlers."""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "lambda-workflows"))
