"""`kubectl wsfleet` through the real kubectl, which finds the console script kubectl-wsfleet on
PATH, against the real API server.

| command                   | checked                                                                 |
|---------------------------|-------------------------------------------------------------------------|
| `kubectl plugin list`     | kubectl finds it                                                        |
| `status NAME -o json`     | the operator's conditions and timeouts, every rule holding, one entry per pod, the Deployment's rollout (revision 1, complete, a duration); each kwok pod reported unreachable by the pod proxy (kwok runs no container) without failing the command |
| `status NAME`             | the text: Ready True, the rule count, the pods; exit 0                  |
| `explain-timeouts NAME`   | the same hierarchy and timeline `wsfleet check` prints for the same spec |
| `check -f`, `render -f`   | what `wsfleet check` and `wsfleet render` print                         |
| a missing resource        | exit 2, naming namespace/name                                           |

What the workload says of itself through the pod proxy (connections, draining, Redis) needs
real pods: tests/integration/nodes.
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

from tests.conftest import ROOT
from tests.integration.conftest import BIN, Kubectl, Operator, example
from tests.integration.test_operator import apply_ok, wait_ready
from wsfleet_devcluster import controlplane


def kubectl_wsfleet(kubectl: Kubectl, *args: str) -> subprocess.CompletedProcess[str]:
    controlplane.guard(kubectl.kubeconfig)
    env = {**os.environ, "KUBECONFIG": str(kubectl.kubeconfig), "PATH": f"{BIN}:{os.environ['PATH']}"}
    return subprocess.run([str(BIN / "kubectl"), "wsfleet", *args], capture_output=True, text=True, timeout=120,
                          env=env, check=False)  # fmt: skip


def _ready_fleet(kubectl: Kubectl, namespace: str) -> str:
    doc = example("none", namespace)
    apply_ok(kubectl, doc)
    wait_ready(kubectl, doc["metadata"]["name"], namespace)
    return str(doc["metadata"]["name"])


def test_kubectl_finds_the_plugin(kubectl: Kubectl) -> None:
    env = {**os.environ, "KUBECONFIG": str(kubectl.kubeconfig), "PATH": f"{BIN}:{os.environ['PATH']}"}
    listed = subprocess.run([str(BIN / "kubectl"), "plugin", "list"], capture_output=True, text=True, env=env,
                            timeout=60, check=False)  # fmt: skip
    assert f"{BIN}/kubectl-wsfleet" in listed.stdout, listed.stdout + listed.stderr


def test_status_reports_the_fleet(kubectl: Kubectl, operator: Operator, namespace: str) -> None:
    name = _ready_fleet(kubectl, namespace)
    proc = kubectl_wsfleet(kubectl, "status", name, "-n", namespace, "-o", "json")
    assert proc.returncode == 0, proc.stderr
    report: dict[str, Any] = json.loads(proc.stdout)
    conditions = {c["type"]: c["status"] for c in report["conditions"]}
    assert conditions["Ready"] == "True"
    assert conditions["TimeoutsAligned"] == "True"
    assert report["timeouts"]["terminationGracePeriodSeconds"] > 0
    assert report["rules"]
    assert all(r["holds"] for r in report["rules"])
    live = kubectl.get("deployment", name, namespace)
    assert live is not None
    assert len(report["pods"]) == live["spec"]["replicas"]
    for pod in report["pods"]:
        assert pod["phase"] == "Running"
        assert pod["ready"]
        assert "error" in pod["workload"], pod  # kwok's pods run no workload to answer the proxy
    rollout = report["rollout"]
    assert (rollout["revision"], rollout["complete"]) == (1, True)
    assert rollout["seconds"] is not None
    assert rollout["seconds"] >= 0

    text = kubectl_wsfleet(kubectl, "status", name, "-n", namespace)
    assert text.returncode == 0, text.stderr
    assert "Ready            True" in text.stdout
    assert f"Rules: {len(report['rules'])} of {len(report['rules'])} hold" in text.stdout
    assert sum(line.startswith(f"  {name}-") for line in text.stdout.splitlines()) == len(report["pods"])


def test_explain_timeouts_reads_the_live_spec(kubectl: Kubectl, operator: Operator, namespace: str) -> None:
    name = _ready_fleet(kubectl, namespace)
    kubectl("patch", "wss", name, "-n", namespace, "--type=merge", "-p", '{"spec": {"shutdown": {"drain": "45s"}}}')
    proc = kubectl_wsfleet(kubectl, "explain-timeouts", name, "-n", namespace)
    assert proc.returncode == 0, proc.stderr
    live = kubectl.get("wss", name, namespace)
    assert live is not None
    spec_file = kubectl.kubeconfig.parent / f"{name}-live.json"
    spec_file.write_text(json.dumps(live))

    def explained(path: str) -> str:
        proc = subprocess.run([str(BIN / "wsfleet"), "check", "-f", path], capture_output=True, text=True,
                              timeout=60, check=False)  # fmt: skip
        return proc.stdout.split("Timeout hierarchy\n", 1)[1].split("\nDerived:", 1)[0].strip()

    expected = explained(str(spec_file))
    assert expected != explained(str(ROOT / "deploy" / "examples" / "none.yaml")), "the drain changed the timeline"
    assert expected in proc.stdout, (expected, proc.stdout)


def test_check_and_render_are_wsfleets_own(kubectl: Kubectl) -> None:
    example_file = str(ROOT / "deploy" / "examples" / "alb.yaml")
    for command in ("check", "render"):
        plugin = kubectl_wsfleet(kubectl, command, "-f", example_file)
        own = subprocess.run([str(BIN / "wsfleet"), command, "-f", example_file], capture_output=True, text=True,
                             timeout=60, check=False)  # fmt: skip
        assert plugin.returncode == own.returncode == 0, plugin.stderr
        assert plugin.stdout == own.stdout


def test_a_missing_resource_is_named(kubectl: Kubectl, namespace: str) -> None:
    proc = kubectl_wsfleet(kubectl, "status", "nope", "-n", namespace)
    assert proc.returncode == 2
    assert f"websocketservice {namespace}/nope: not found" in proc.stderr
