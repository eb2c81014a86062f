"""Which versions of a workflow's code still have instances in flight (``@workflow(version=...)``).

An old version's code may be deleted once no unfinished instance recorded it: ``WorkflowClient.versions``,
``GET /workflows/{name}/versions`` and ``workflows versions NAME`` answer that. The count reads every
instance of the workflow the table holds (finished ones too, until their TTL), a page of up to 1,000
at a time through the list index: run it before a deploy, not in a hot path."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from framework.api.registry import Registry, version_order
from framework.backends.store import Store
from framework.core.records import FINISHED

PAGE = 1000


@dataclass(frozen=True, slots=True)
class VersionCount:
    """A version of the workflow's code: ``in_flight`` instances recorded it and have not finished
    (queued, running, waiting, paused or rolling back), and ``registered`` says whether the code that
    answers holds it. ``version`` None: instances started while the workflow had no version."""

    version: str | None
    in_flight: int
    registered: bool

    def as_dict(self) -> dict[str, Any]:
        return {"version": self.version, "in_flight": self.in_flight, "registered": self.registered}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VersionCount:
        return cls(data.get("version"), int(data["in_flight"]), bool(data["registered"]))


def count_versions(store: Store, registry: Registry, workflow: str) -> list[VersionCount]:
    """Every version the registry holds for ``workflow``, and every version its unfinished instances
    recorded, oldest first."""
    in_flight: Counter[str | None] = Counter()
    before: tuple[float, str] | None = None
    while True:
        records, more = store.list_instances(workflow, None, PAGE, before)
        in_flight.update(r.code_version for r in records if r.status not in FINISHED)
        if not more or not records:
            break
        before = (records[-1].created_at, records[-1].id)
    registered: set[str | None] = set(registry.versions(workflow))
    if workflow in registry.names() and not registered:
        registered = {None}  # an unversioned workflow: its instances record no version
    found = set(in_flight) | registered
    return [
        VersionCount(v, in_flight[v], v in registered)
        for v in sorted(found, key=lambda v: (v is not None, version_order(v)))
    ]
