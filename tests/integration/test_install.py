"""The install manifests: `kubectl apply -k deploy/operator` (cluster-wide) and
`deploy/operator-namespaced` (one namespace, a Role), and RBAC that is enough and no more.

The strongest check of RBAC is to run the operator with the ServiceAccount's own
token and watch it bring a fleet to Ready; `kubectl auth can-i` then checks what
it must not be able to do.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT
from tests.integration.conftest import RESYNC, Kubectl, Operator, example, wait_until
from tests.integration.test_operator import apply_ok, wait_ready
from wsfleet_devcluster import controlplane
from wsfleet_operator.handlers import CHILD_VERBS, CLUSTER_SCOPED, LEASE_ACCESS, OWN_ACCESS
from wsfleet_operator.render import owned_kinds

SA = "system:serviceaccount:wsfleet-system:wsfleet-operator"


@pytest.fixture
def installed(kubectl: Kubectl) -> Kubectl:
    kubectl("apply", "--server-side", "-k", str(ROOT / "deploy" / "operator"))
    return kubectl


def test_operator_pods_are_admitted_under_restricted(installed: Kubectl) -> None:
    def running() -> bool:
        pods = installed("get", "pods", "-n", "wsfleet-system", "-o", "jsonpath={.items[*].status.phase}").stdout
        return pods.split() == ["Running", "Running"]

    wait_until(running, 60, "both operator pods (leader and standby) to run in the restricted namespace")
    pdb = installed.get("pdb", "wsfleet-operator", "wsfleet-system")
    assert pdb is not None
    assert pdb["spec"]["minAvailable"] == 1


def _granted(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {(g, r, v) for rule in rules for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}


def _needed(kubectl: Kubectl, cluster_scoped: bool) -> set[tuple[str, str, str]]:
    """What the code says the operator touches: CHILD_VERBS on each owned kind, resolved to its
    resource name by the API server's discovery, and OWN_ACCESS."""
    out: set[tuple[str, str, str]] = set()
    for api_version, kind in owned_kinds():
        group = api_version.rpartition("/")[0]
        path = f"/apis/{api_version}" if group else f"/api/{api_version}"
        listing = json.loads(kubectl("get", "--raw", path).stdout)
        (plural,) = [r["name"] for r in listing["resources"] if r["kind"] == kind and "/" not in r["name"]]
        out |= {(group, plural, v) for v in CHILD_VERBS}
    for group, resource, verbs in OWN_ACCESS:
        if cluster_scoped or resource not in CLUSTER_SCOPED:
            out |= {(group, resource, v) for v in verbs}
    if not cluster_scoped:  # the namespaced install's one Role holds the Lease rule too
        group, resource, verbs = LEASE_ACCESS
        out |= {(group, resource, v) for v in verbs}
    return out


@pytest.mark.parametrize(("install", "kind"), [("operator", "ClusterRole"), ("operator-namespaced", "Role")])
def test_rbac_grants_exactly_what_the_operator_touches(kubectl: Kubectl, install: str, kind: str) -> None:
    """Least privilege as an equality: a grant the code does not need, or a need without a grant,
    fails here; a new child kind must come with its rule."""
    docs = yaml.safe_load_all(kubectl("kustomize", str(ROOT / "deploy" / install)).stdout)
    (role,) = [d for d in docs if d["kind"] == kind]
    granted, needed = _granted(role["rules"]), _needed(kubectl, cluster_scoped=kind == "ClusterRole")
    assert granted == needed, (
        f"granted, not needed: {sorted(granted - needed)}; needed, not granted: {sorted(needed - granted)}"
    )


def test_leader_election_may_touch_leases_in_its_own_namespace_only(installed: Kubectl) -> None:
    group, resource, verbs = LEASE_ACCESS
    for verb in verbs:
        assert installed("auth", "can-i", verb, f"{resource}.{group}", f"--as={SA}", "-n", "wsfleet-system",
                         check=False).stdout.strip() == "yes", verb  # fmt: skip
    for verb, where in [("update", "default"), ("delete", "wsfleet-system"), ("create", "kube-system")]:
        proc = installed("auth", "can-i", verb, f"{resource}.{group}", f"--as={SA}", "-n", where, check=False)
        assert proc.stdout.strip() == "no", (verb, where)


@pytest.mark.parametrize(
    ("verb", "resource"),
    [("get", "secrets"), ("list", "secrets"), ("create", "pods"), ("delete", "namespaces"), ("create", "clusterroles")],
)
def test_rbac_denies_what_is_not_needed(installed: Kubectl, verb: str, resource: str) -> None:
    proc = installed("auth", "can-i", verb, resource, f"--as={SA}", "--all-namespaces", check=False)
    assert proc.stdout.strip() == "no"


def _operator_as(
    kubectl: Kubectl, dev_cluster: controlplane.DevCluster, sa_namespace: str, name: str, sa: str = "wsfleet-operator"
) -> Path:
    """A kubeconfig holding the operator ServiceAccount's own token: its RBAC, nothing more."""
    token = kubectl("create", "token", sa, "-n", sa_namespace, "--duration=1h").stdout.strip()
    config = yaml.safe_load(dev_cluster.kubeconfig.read_text())
    config["users"] = [{"name": "wsfleet-operator", "user": {"token": token}}]
    config["contexts"][0]["context"]["user"] = "wsfleet-operator"
    path = dev_cluster.dir / name
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    controlplane.guard(path)
    return path


def _rbac_denials(log: Path) -> list[str]:
    # JSON log lines: the text to search is in their message and traceback, unescaped.
    raw = log.read_text().splitlines()
    lines = [json.loads(line) for line in raw if line.startswith("{")]
    assert lines, "the operator logs JSON lines"
    text = "\n".join(f"{d['message']}\n{d.get('exc_info', '')}" for d in lines)
    text += "\n".join(line for line in raw if not line.startswith("{"))
    text = text.replace('\\"', '"')  # the API's Status body, quoted inside the exception text
    # An RBAC denial reads `... is forbidden: User "system:serviceaccount:..." cannot <verb> ...`.
    # (Other 403s, from namespaces that earlier tests are deleting, are not about RBAC.)
    return re.findall(r'is forbidden: User "[^"]+" cannot [^\n]*', text)


def _resource(api_version: str, kind: str) -> str:
    plural = kind.lower()
    plural = plural[:-1] + "ies" if plural.endswith("y") else plural + "es" if plural.endswith("s") else plural + "s"
    group = api_version.rpartition("/")[0]
    return f"{plural}.{group}" if group else plural


@pytest.mark.parametrize("kind", owned_kinds(), ids=[k for _, k in owned_kinds()])
def test_rbac_allows_every_verb_on_every_kind_the_operator_renders(installed: Kubectl, kind: tuple[str, str]) -> None:
    """Tied to the renderers: a new child kind without its RBAC rule fails here."""
    resource = _resource(*kind)
    for verb in ("get", "list", "watch", "create", "patch", "delete"):
        proc = installed("auth", "can-i", verb, resource, f"--as={SA}", "-n", "default", check=False)
        assert proc.stdout.strip() == "yes", f"{verb} {resource}: {proc.stdout} {proc.stderr}"


@pytest.fixture
def operator_as_service_account(
    installed: Kubectl, operator: Operator, dev_cluster: controlplane.DevCluster
) -> Iterator[Operator]:
    path = _operator_as(installed, dev_cluster, "wsfleet-system", "operator-sa.kubeconfig")
    operator.stop()  # only the ServiceAccount's operator may act during this test
    # as deploy/operator runs it: with leader election, on the Lease in its own namespace
    sa_operator = Operator(path, dev_cluster.dir / "logs" / "operator-sa.log",
                           args=("--leader-elect", "--leader-elect-resource-namespace=wsfleet-system"))  # fmt: skip
    sa_operator.start()
    try:
        yield sa_operator
    finally:
        sa_operator.stop()
        operator.start()


def test_rbac_is_enough_to_bring_a_fleet_to_ready(
    installed: Kubectl, operator_as_service_account: Operator, namespace: str
) -> None:
    apply_ok(installed, example("gateway-envoy", namespace))
    wait_ready(installed, "chat-envoy", namespace)
    assert installed.get("backendtrafficpolicy", "chat-envoy", namespace) is not None
    assert installed.get("servicemonitor", "chat-envoy", namespace) is not None
    assert _rbac_denials(operator_as_service_account.log) == []


def test_namespaced_install_runs_a_fleet_in_its_namespace_only(
    kubectl: Kubectl, operator: Operator, dev_cluster: controlplane.DevCluster, namespace: str, tmp_path: Path
) -> None:
    """deploy/operator-namespaced, for a team without cluster-admin: a Role in one namespace, and
    the operator (as its ServiceAccount, --namespace from the downward API) manages that one only."""
    kubectl("apply", "--server-side", "-k", str(ROOT / "crds"))  # the cluster admin's part, once
    overlay = tmp_path / "team"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        # kustomize takes relative paths only
        yaml.safe_dump(
            {"namespace": namespace, "resources": [os.path.relpath(ROOT / "deploy" / "operator-namespaced", overlay)]}
        )
    )
    kubectl("apply", "--server-side", "-k", str(overlay))
    rendered = yaml.safe_load_all(kubectl("kustomize", str(overlay)).stdout)
    kinds = {(d["kind"], d["metadata"].get("namespace")) for d in rendered}
    expected = ("ServiceAccount", "Role", "RoleBinding", "Deployment", "PodDisruptionBudget")
    assert kinds == {(k, namespace) for k in expected}, kinds
    sa = f"system:serviceaccount:{namespace}:wsfleet-operator"
    for verb, resource, where in [("list", "websocketservices", "default"), ("list", "namespaces", None),
                                  ("get", "secrets", namespace), ("create", "pods", namespace)]:  # fmt: skip
        scope = ["-n", where] if where else ["--all-namespaces"]
        assert kubectl("auth", "can-i", verb, resource, f"--as={sa}", *scope, check=False).stdout.strip() == "no"
    # The operator as the pod would run it: its token, `--namespace=$(POD_NAMESPACE)` expanded.
    path = _operator_as(kubectl, dev_cluster, namespace, "operator-team.kubeconfig")
    operator.stop()
    team = Operator(path, dev_cluster.dir / "logs" / "operator-team.log",
                    args=(f"--namespace={namespace}", "--leader-elect"))  # fmt: skip
    team.start()
    other = f"{namespace}-other"
    kubectl("create", "namespace", other)
    try:
        apply_ok(kubectl, example("gateway-envoy", namespace))
        apply_ok(kubectl, example("gateway-envoy", other))
        wait_ready(kubectl, "chat-envoy", namespace)
        time.sleep(3 * RESYNC)  # several resyncs: the other namespace's resource stays untouched
        assert kubectl.get("wss", "chat-envoy", other).get("status") is None
        assert kubectl.get("deployment", "chat-envoy", other) is None
        assert _rbac_denials(team.log) == []
    finally:
        team.stop()
        kubectl("delete", "namespace", other, "--wait=false")
        operator.start()
