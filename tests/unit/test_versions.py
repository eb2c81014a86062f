"""Workflow versions: instances record the version they start on, run its code while it is
registered, and the count of instances left per version says when old code may go."""

from __future__ import annotations

from typing import Any

import pytest

from framework import DuplicateWorkflowError, InvalidConfigError, workflow
from framework.api.registry import Registry, Workflow, version_order
from framework.manage.versions import VersionCount
from tests.unit.harness import Harness


def order_v1(event: Any, step: Any) -> Any:
    step.sleep("settle", "1 hour")
    return step.do("charge", lambda: "v1")


def order_v2(event: Any, step: Any) -> Any:
    step.sleep("settle", "1 hour")
    checked = step.do("fraud check", lambda: "ok")
    return step.do("charge", lambda: f"v2 after {checked}")


V1 = Workflow("order", order_v1, version="1")
V2 = Workflow("order", order_v2, version="2")


def test_new_instances_start_on_the_highest_version_and_keep_the_one_they_recorded() -> None:
    h = Harness(V1)
    old = h.start("order", id="old")
    h.run_due()  # old sleeps, recorded on version 1
    h.env.registry.add(V2)  # the deploy: both versions' code ships
    new = h.start("order", id="new")
    h.run_until_idle()
    assert (old.status().version, old.status().output) == ("1", "v1")
    assert (new.status().version, new.status().output) == ("2", "v2 after ok")


def test_an_instance_whose_version_is_gone_runs_the_newest_code() -> None:
    h = Harness(Workflow("order", order_v1, version="1"))
    inst = h.start("order", id="left")
    h.run_due()
    h.env.registry = Registry([Workflow("order", order_v1, version="2")])  # v1 deleted, same code
    h.run_until_idle()
    assert (inst.status().status, inst.status().version) == ("complete", "1")


def test_versions_count_unfinished_instances_per_version() -> None:
    h = Harness(V1)
    for i in range(3):
        h.start("order", id=f"a{i}")
    h.run_due()
    h.env.registry.add(V2)
    h.start("order", id="b0")
    h.run_due()
    assert h.client.versions("order") == [VersionCount("1", 3, True), VersionCount("2", 1, True)]
    h.run_until_idle()  # every instance completes: none left on either version
    assert h.client.versions("order") == [VersionCount("1", 0, True), VersionCount("2", 0, True)]


def test_a_version_removed_from_the_code_is_listed_while_instances_recorded_it() -> None:
    h = Harness(V1)
    h.start("order", id="a")
    h.run_due()
    h.env.registry = Registry([V2])
    assert h.client.versions("order") == [VersionCount("1", 1, False), VersionCount("2", 0, True)]


def test_an_unversioned_workflow_counts_under_none() -> None:
    h = Harness(Workflow("plain", order_v1))
    h.start("plain")
    h.run_due()
    assert h.client.versions("plain") == [VersionCount(None, 1, True)]
    h.env.registry = Registry([Workflow("plain", order_v2, version="2")])
    assert h.client.versions("plain") == [VersionCount(None, 1, False), VersionCount("2", 0, True)]
    assert h.client.versions("plain")[0].as_dict() == {
        "version": None,
        "in_flight": 1,
        "registered": False,
    }


def test_registry_versions_and_their_order() -> None:
    registry = Registry([Workflow("o", order_v2, version="10"), Workflow("o", order_v1, version="9")])
    assert registry.get("o").version == "10"  # by number, not by text
    assert registry.get("o", "9").fn is order_v1
    assert registry.get("o", "unknown").version == "10"
    assert registry.versions("o") == ["9", "10"]
    assert version_order("2024-06-01") < version_order("2024-12-01") < version_order("2025-01-01")
    assert version_order("1.2") < version_order("1.10")
    registry.remove(registry.get("o", "10"))
    assert registry.get("o").version == "9"


def test_one_version_twice_or_versioned_beside_unversioned_is_refused() -> None:
    registry = Registry([Workflow("o", order_v1, version="1")])
    with pytest.raises(DuplicateWorkflowError, match="version '1'"):
        registry.add(Workflow("o", order_v2, version="1"))
    with pytest.raises(DuplicateWorkflowError, match="different version"):
        registry.add(Workflow("o", order_v2))
    registry.add(Workflow("o", order_v1, version="3"))  # the same code re-versioned (a reload)
    assert registry.versions("o") == ["3"]


@pytest.mark.parametrize("bad", ["", "-1", "a b", "x" * 41, 1.5, True, "é"])
def test_a_bad_version_is_refused_at_declaration(bad: Any) -> None:
    with pytest.raises(InvalidConfigError, match="version of workflow"):
        workflow("versioned-bad", version=bad)


def test_an_int_version_reads_as_text() -> None:
    wf = workflow("versioned-int-test", version=3)(order_v1)
    assert wf.version == "3"


def test_the_replay_gate_checks_each_history_against_the_version_it_recorded() -> None:
    from framework.manage.replay_check import check_history, export_history

    h = Harness(V1)
    h.start("order", id="old")
    h.run_until_idle()  # old is complete: its journal holds settle and charge, recorded on version 1
    record = h.store.get_instance("old")
    document = export_history(h.env, record)
    assert check_history(document, Registry([V1, V2])).ok  # version 1's code is kept: it replays
    # With version 1 deleted, the history replays on version 2, whose inserted step diverges.
    assert not check_history(document, Registry([V2])).ok
