"""WorkflowClient configured the way users configure it against AWS (here: moto in-process)."""

from __future__ import annotations

import pytest

from framework import WorkflowClient
from framework.backends.environment import from_env
from framework.local import LocalRuntime
from tests.integration import workflows as w


def test_client_from_names_and_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    with LocalRuntime(workflows=[w.chain]) as rt:
        direct = WorkflowClient(table_name=rt.table_name, queue_url=rt.queue_url, workflows=[w.chain])
        inst = direct.create("it-chain", {"steps": 3}, id="direct")
        monkeypatch.setenv("WORKFLOWS_TABLE", rt.table_name)
        monkeypatch.setenv("WORKFLOWS_QUEUE_URL", rt.queue_url)
        monkeypatch.setenv("WORKFLOW_MODULES", "tests.integration.workflows")
        env_client = WorkflowClient.from_env()
        rt.run_until_idle()
        assert inst.status().output == {"total": 3}
        assert env_client.get("direct").status().output == {"total": 3}
        assert from_env().settings.retention_days == 30


def test_client_needs_its_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    from framework import InvalidConfigError

    with pytest.raises(ValueError, match="table_name"):
        WorkflowClient()
    with pytest.raises(InvalidConfigError, match="WORKFLOWS_TABLE"):
        WorkflowClient.from_env()
    monkeypatch.setenv("WORKFLOWS_TABLE", "t")
    monkeypatch.setenv("WORKFLOWS_QUEUE_URL", "q")
    monkeypatch.setenv("WORKFLOWS_RETENTION_DAYS", "soon")
    with pytest.raises(InvalidConfigError, match="WORKFLOWS_RETENTION_DAYS"):
        WorkflowClient.from_env()
