"""``WorkflowEntrypoint``: Cloudflare's class-based form of a workflow.

Code written for Cloudflare's Python Workflows runs with its import changed to
``from framework import WorkflowEntrypoint``. A subclass is registered when its module is loaded, under
its ``name`` class attribute if it sets one, else under its class name; ``@workflow("name")`` on the
class names it instead.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, ClassVar

from framework.api.registry import register_class


class WorkflowEntrypoint:
    """Subclass it and write ``async def run(self, event, step)`` (a plain ``def run`` works too).

    ``self.env`` holds the function's environment variables, the Lambda counterpart of Cloudflare's
    bindings: resources reach a workflow as names in its environment and clients made from them.
    ``self.ctx`` is None: Lambda has no execution context to give here."""

    name: ClassVar[str | None] = None

    def __init__(self, ctx: Any = None, env: Mapping[str, str] | None = None) -> None:
        self.ctx = ctx
        self.env: Mapping[str, str] = dict(os.environ) if env is None else env

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.run is WorkflowEntrypoint.run:
            return  # a base of the user's own, with no workflow of its own
        declared = cls.__dict__.get("name")
        register_class(cls, declared if isinstance(declared, str) else cls.__name__)

    async def run(self, event: Any, step: Any) -> Any:
        """The workflow's code. Override it."""
        raise NotImplementedError
