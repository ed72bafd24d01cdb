"""The install manifests: `kubectl apply -k deploy/operator`, and RBAC that is enough and no more.

The strongest check of RBAC is to run the operator with the ServiceAccount's own
token and watch it bring a fleet to Ready; `kubectl auth can-i` then checks what
it must not be able to do.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
import yaml

from tests.conftest import ROOT
from tests.integration.conftest import Kubectl, Operator, example, wait_until
from tests.integration.test_operator import apply_ok, wait_ready
from wsfleet_operator.devcluster import cluster
from wsfleet_operator.render import owned_kinds

SA = "system:serviceaccount:wsfleet-system:wsfleet-operator"


@pytest.fixture
def installed(kubectl: Kubectl) -> Kubectl:
    kubectl("apply", "--server-side", "-k", str(ROOT / "deploy" / "operator"))
    return kubectl


def test_operator_pod_is_admitted_under_restricted(installed: Kubectl) -> None:
    def running() -> bool:
        pods = installed("get", "pods", "-n", "wsfleet-system", "-o", "jsonpath={.items[*].status.phase}").stdout
        return pods.split() == ["Running"]

    wait_until(running, 60, "the operator pod to run in the restricted wsfleet-system namespace")


@pytest.mark.parametrize(
    ("verb", "resource"),
    [("get", "secrets"), ("list", "secrets"), ("create", "pods"), ("delete", "namespaces"), ("create", "clusterroles")],
)
def test_rbac_denies_what_is_not_needed(installed: Kubectl, verb: str, resource: str) -> None:
    proc = installed("auth", "can-i", verb, resource, f"--as={SA}", "--all-namespaces", check=False)
    assert proc.stdout.strip() == "no"


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
    installed: Kubectl, operator: Operator, dev_cluster: cluster.DevCluster
) -> Iterator[Operator]:
    token = installed("create", "token", "wsfleet-operator", "-n", "wsfleet-system", "--duration=1h").stdout.strip()
    config = yaml.safe_load(dev_cluster.kubeconfig.read_text())
    config["users"] = [{"name": "wsfleet-operator", "user": {"token": token}}]
    config["contexts"][0]["context"]["user"] = "wsfleet-operator"
    path = dev_cluster.dir / "operator-sa.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    cluster.guard(path)
    operator.stop()  # only the ServiceAccount's operator may act during this test
    sa_operator = Operator(path, dev_cluster.dir / "logs" / "operator-sa.log")
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
    # JSON log lines: the text to search is in their message and traceback, unescaped.
    raw = operator_as_service_account.log.read_text().splitlines()
    lines = [json.loads(line) for line in raw if line.startswith("{")]
    assert lines, "the operator logs JSON lines"
    log = "\n".join(f"{d['message']}\n{d.get('exc_info', '')}" for d in lines)
    log += "\n".join(line for line in raw if not line.startswith("{"))
    log = log.replace('\\"', '"')  # the API's Status body, quoted inside the exception text
    # An RBAC denial reads `... is forbidden: User "system:serviceaccount:..." cannot <verb> ...`.
    # (Other 403s, from namespaces that earlier tests are deleting, are not about RBAC.)
    denials = re.findall(r'is forbidden: User "[^"]+" cannot [^\n]*', log)
    assert denials == []
