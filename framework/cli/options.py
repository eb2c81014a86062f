"""What the ``workflows`` commands share: the one-line error, and argparse types."""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path
from typing import Any


class CliError(Exception):
    """A one-line message for the user."""


def _read_json(value: str | None, what: str) -> Any:
    if value is None:
        return None
    text = value
    if value.startswith("@"):
        try:
            text = Path(value[1:]).read_text()
        except OSError as exc:
            raise CliError(f"cannot read {what} file {value[1:]}: {exc.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"{what} is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None


def _number(kind: type[int] | type[float], low: float, high: float | None = None) -> Any:
    """An argparse type: a number of ``kind`` from ``low`` to ``high``, or a usage error that says so."""

    def convert(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not math.isfinite(value) or value < low or (high is not None and value > high):
            bounds = f"from {low:g} to {high:g}" if high is not None else f"{low:g} or more"
            raise argparse.ArgumentTypeError(
                f"{text!r} is not {'a whole' if kind is int else 'a'} number {bounds}"
            )
        return value

    return convert


def _prefix(text: str) -> str:
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,29}", text):
        raise argparse.ArgumentTypeError(f"{text!r}: use 1 to 30 lowercase letters, digits and hyphens")
    return text
