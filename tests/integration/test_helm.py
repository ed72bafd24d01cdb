"""The Helm chart on the real API server, with helm built from helm.sh/helm/v4.

| step                       | checked                                                                     |
|----------------------------|-----------------------------------------------------------------------------|
| `helm template`, both scopes | every object accepted by a server-side dry run with strict field validation |
| `helm install`             | takes over the CRD the cluster already has (--take-ownership, as a kustomize user moving to Helm would); the operator, run with the Deployment's own arguments and the chart's ServiceAccount token, brings a WebSocketService to Ready without an RBAC denial |
| `helm upgrade`, changed CRD | refused while kubectl's field manager co-owns the adopted CRD; with --force-conflicts the chart's changed CRD reaches the API server (Helm upgrades a templated CRD); new values reach the Deployment |
| `helm uninstall`           | the operator, its RBAC and ServiceAccount are gone; the CRD, the WebSocketService and its fleet stay (crds.keep) |

kwok's nodes run no containers, so the chart's pod does not run here: the operator runs as a
process with exactly the container's arguments (less the three ports and the resync this harness
sets) and POD_NAMESPACE as the downward API gives it. The same objects run on real kubelets in
tests/integration/nodes, installed with kustomize, and tests/unit/test_helm.py shows the chart and
kustomize render the same objects.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT
from tests.integration.conftest import Kubectl, Operator, example
from tests.integration.test_install import _operator_as, _rbac_denials
from tests.integration.test_operator import apply_ok, wait_ready
from wsfleet_devcluster import builds, controlplane

CHART = ROOT / "deploy" / "helm" / "wsfleet"
RELEASE = "wsfleet-helm"  # objects named wsfleet-helm-operator: apart from test_install's kustomize install
CRD = "websocketservices.wsfleet.dev"
HARNESS_FLAGS = ("--metrics-port", "--health-port", "--resync")


class Helm:
    def __init__(self, kubeconfig: Path, home: Path) -> None:
        controlplane.guard(kubeconfig)
        self.kubeconfig = kubeconfig
        self.env = {**os.environ, "HELM_CACHE_HOME": str(home / "cache"), "HELM_CONFIG_HOME": str(home / "config"),
                    "HELM_DATA_HOME": str(home / "data")}  # fmt: skip

    def __call__(self, *args: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        binary = builds.helm_binary()
        assert binary.is_file(), f"{binary} is missing: run `make controlplane` (builds.ensure_helm)"
        proc = subprocess.run([str(binary), f"--kubeconfig={self.kubeconfig}", *args], input=stdin,
                              capture_output=True, text=True, timeout=300, env=self.env, check=False)  # fmt: skip
        if check:
            assert proc.returncode == 0, f"helm {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
        return proc


@pytest.fixture
def helm(dev_cluster: controlplane.DevCluster, tmp_path: Path) -> Helm:
    return Helm(dev_cluster.kubeconfig, tmp_path / "helm")


@pytest.mark.parametrize("scope", ["cluster", "namespace"])
def test_the_rendered_chart_passes_a_strict_server_side_dry_run(
    helm: Helm, kubectl: Kubectl, namespace: str, scope: str
) -> None:
    rendered = helm("template", RELEASE, str(CHART), "-n", namespace, f"--set=scope={scope}").stdout
    kinds = sorted(d["kind"] for d in yaml.safe_load_all(rendered) if d)
    assert "Deployment" in kinds
    assert "CustomResourceDefinition" in kinds
    proc = kubectl("apply", "--server-side", "--force-conflicts", "--dry-run=server", "--validate=strict",
                   "-f", "-", stdin=rendered, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("(server dry run)") == len(kinds), proc.stdout


def _container(kubectl: Kubectl, namespace: str) -> dict[str, Any]:
    deployment = kubectl.get("deployment", f"{RELEASE}-operator", namespace)
    assert deployment is not None
    container: dict[str, Any] = deployment["spec"]["template"]["spec"]["containers"][0]
    return container


@pytest.fixture
def crd_restored(kubectl: Kubectl) -> Iterator[None]:
    """The session's CRD as the kubectl fixture installed it, after the chart changed it."""
    yield
    live = kubectl.get("crd", CRD, "")
    columns = live["spec"]["versions"][0].get("additionalPrinterColumns", []) if live else []
    for i, column in reversed(list(enumerate(columns))):
        if column["name"] == "Chart":
            kubectl("patch", "crd", CRD, "--type=json",
                    "-p", f'[{{"op": "remove", "path": "/spec/versions/0/additionalPrinterColumns/{i}"}}]')  # fmt: skip


def test_install_upgrade_uninstall(
    helm: Helm, kubectl: Kubectl, operator: Operator, dev_cluster: controlplane.DevCluster,
    namespace: str, *, tmp_path: Path, crd_restored: None,
) -> None:  # fmt: skip
    release_ns = f"{namespace}-op"
    # The CRD is already on the cluster (kubectl apply -k crds): Helm takes it over, as it would
    # from a user who installed with kustomize first.
    helm("install", RELEASE, str(CHART), "-n", release_ns, "--create-namespace", "--take-ownership", "--wait=hookOnly")
    assert "deployed" in helm("status", RELEASE, "-n", release_ns).stdout
    container = _container(kubectl, release_ns)
    args = [a for a in container["args"][1:] if not a.startswith(HARNESS_FLAGS)]
    assert "--leader-elect" in args
    token = _operator_as(kubectl, dev_cluster, release_ns, "operator-helm.kubeconfig", sa=f"{RELEASE}-operator")
    operator.stop()
    chart_op = Operator(token, dev_cluster.dir / "logs" / "operator-helm.log", args=tuple(args),
                        env={"POD_NAMESPACE": release_ns})  # fmt: skip
    chart_op.start()
    try:
        doc = example("none", namespace)
        apply_ok(kubectl, doc)
        wait_ready(kubectl, doc["metadata"]["name"], namespace)
        assert chart_op.health()["leading"]
        lease = kubectl.get("lease", f"{RELEASE}-operator", release_ns)
        assert lease is not None
        assert lease["spec"]["holderIdentity"] == chart_op.health()["identity"]
        assert _rbac_denials(chart_op.log) == []

        # A new chart version whose CRD changed, and a changed value.
        chart = tmp_path / "wsfleet"
        shutil.copytree(CHART, chart)
        crd_file = chart / "files" / f"{CRD}.yaml"
        crd = yaml.safe_load(crd_file.read_text())
        crd["spec"]["versions"][0].setdefault("additionalPrinterColumns", []).append(
            {"name": "Chart", "type": "string", "jsonPath": ".metadata.name", "priority": 1}
        )
        crd_file.write_text(yaml.safe_dump(crd))
        meta = yaml.safe_load((chart / "Chart.yaml").read_text())
        (chart / "Chart.yaml").write_text(yaml.safe_dump({**meta, "version": "0.1.1"}))
        # kubectl's field manager still co-owns the adopted CRD's .spec.versions (server-side
        # apply): the first upgrade that changes it must force, as docs/operator.md says.
        refused = helm("upgrade", RELEASE, str(chart), "-n", release_ns, "--set=resync=20", "--wait=hookOnly",
                       check=False)  # fmt: skip
        assert refused.returncode != 0
        assert 'conflict with "kubectl": .spec.versions' in refused.stderr
        helm("upgrade", RELEASE, str(chart), "-n", release_ns, "--set=resync=20", "--wait=hookOnly",
             "--force-conflicts")  # fmt: skip
        live = kubectl.get("crd", CRD, "")
        assert live is not None
        assert "Chart" in [c["name"] for c in live["spec"]["versions"][0]["additionalPrinterColumns"]]
        assert "--resync=20" in _container(kubectl, release_ns)["args"]
        assert "0.1.1" in helm("list", "-n", release_ns).stdout
    finally:
        chart_op.stop()
        operator.start()

    helm("uninstall", RELEASE, "-n", release_ns)
    assert kubectl.get("deployment", f"{RELEASE}-operator", release_ns) is None
    assert kubectl.get("serviceaccount", f"{RELEASE}-operator", release_ns) is None
    assert kubectl.get("clusterrole", f"{RELEASE}-operator", "") is None
    assert kubectl.get("crd", CRD, "") is not None, "the CRD is kept (helm.sh/resource-policy: keep)"
    name = doc["metadata"]["name"]
    assert kubectl.get("wss", name, namespace) is not None, "the fleet's resource stays"
    assert kubectl.get("deployment", name, namespace) is not None, "and so does its fleet"
    kubectl("delete", "namespace", release_ns, "--wait=false")
