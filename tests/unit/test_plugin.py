"""kubectl wsfleet's pure parts: the last rollout read from a Deployment and its ReplicaSets, the
verdict behind the exit code, the text it prints, and its own argument errors. The plugin
against the API server, through the real kubectl: tests/integration/test_plugin.py."""

from __future__ import annotations

import io
import shlex
from typing import Any

import pytest

from tests.support.snippets import tagged
from wsfleet_operator import plugin


def _deployment(revision: str, reason: str, replicas: int, updated: int) -> dict[str, Any]:
    return {
        "metadata": {"annotations": {"deployment.kubernetes.io/revision": revision}},
        "status": {
            "replicas": replicas,
            "updatedReplicas": updated,
            "readyReplicas": replicas,
            "conditions": [
                {"type": "Available", "status": "True"},
                {"type": "Progressing", "status": "True", "reason": reason, "lastUpdateTime": "2026-12-08T10:01:40Z",
                 "message": 'ReplicaSet "chat-6d9" has successfully progressed.'},
            ],
        },
    }  # fmt: skip


def _replica_set(revision: str, created: str) -> dict[str, Any]:
    return {"metadata": {"annotations": {"deployment.kubernetes.io/revision": revision}, "creationTimestamp": created}}


REPLICA_SETS = [_replica_set("1", "2026-12-01T00:00:00Z"), _replica_set("2", "2026-12-08T10:00:00Z")]


def test_a_finished_rollout_lasts_from_its_replica_set_to_available() -> None:
    r = plugin.rollout(_deployment("2", "NewReplicaSetAvailable", 3, 3), REPLICA_SETS)
    assert r is not None
    assert (r["revision"], r["complete"], r["seconds"]) == (2, True, 100)
    assert r["started"] == "2026-12-08T10:00:00Z"


def test_a_rollout_under_way_has_no_duration_yet() -> None:
    r = plugin.rollout(_deployment("2", "ReplicaSetUpdated", 4, 2), REPLICA_SETS)
    assert r is not None
    assert (r["complete"], r["seconds"], r["updated"], r["replicas"]) == (False, None, 2, 4)
    out = io.StringIO()
    plugin.print_status({"name": "chat", "namespace": "ns", "generation": 2, "observedGeneration": 2,
                         "conditions": [], "problems": [], "rollout": r}, out)  # fmt: skip
    assert "Rollout: revision 2, in progress: 2/4 updated" in out.getvalue()


def test_no_deployment_no_rollout() -> None:
    assert plugin.rollout(None, []) is None


@pytest.mark.parametrize(
    ("ready", "holds", "expected"),
    [("True", True, True), ("False", True, False), ("True", False, False)],
)
def test_the_exit_code_says_ready_and_every_rule_holding(ready: str, holds: bool, expected: bool) -> None:
    report = {"conditions": [{"type": "Ready", "status": ready}], "rules": [{"id": "I1", "holds": holds}]}
    assert plugin._ready(report) is expected


def test_pods_print_what_each_one_said() -> None:
    pods = [
        {"name": "chat-a", "node": "node1", "phase": "Running", "ready": True, "terminating": False, "restarts": 0,
         "workload": {"status": "ready", "connections": 12, "draining": False}, "redis": {"ok": True}},
        {"name": "chat-b", "node": "node2", "phase": "Running", "ready": False, "terminating": False, "restarts": 1,
         "workload": {"status": "draining", "connections": 3, "draining": True}, "redis": {"ok": False}},
        {"name": "chat-c", "node": "node2", "phase": "Running", "ready": False, "terminating": False, "restarts": 0,
         "workload": {"error": "ConnectTimeoutError"}, "redis": {"error": "ConnectTimeoutError"}},
    ]  # fmt: skip
    out = io.StringIO()
    plugin.print_status({"name": "chat", "namespace": "ns", "generation": 1, "observedGeneration": 1,
                         "conditions": [], "problems": [], "pods": pods}, out)  # fmt: skip
    lines = {line.split()[0]: line.split() for line in out.getvalue().splitlines() if line.startswith("  chat-")}
    assert lines["chat-a"][5:8] == ["12", "ok", "ready"]
    assert lines["chat-b"][5:8] == ["3", "down", "draining"]
    assert lines["chat-c"][5:8] == ["-", "-", "unreachable"]


def test_a_kubeconfig_that_is_not_there_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    assert plugin.main(["--kubeconfig", "/nonexistent/kubeconfig", "status", "chat"]) == plugin.EXIT_ERROR
    assert "kubectl wsfleet status: kubeconfig /nonexistent/kubeconfig:" in capsys.readouterr().err


def test_the_docs_commands_parse() -> None:
    lines = [line for block in tagged("plugin") for line in block.lines()]
    assert len(lines) >= 4
    for line in lines:
        argv = shlex.split(line)
        assert argv[:2] == ["kubectl", "wsfleet"], line
        plugin.parser().parse_args(argv[2:])
