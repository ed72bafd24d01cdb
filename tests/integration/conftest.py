"""Integration tier: a real control plane (etcd, kube-apiserver, controller-manager,
scheduler, kwok) built from Go modules, and the operator as a real process.

The cluster lives in a temporary directory and is torn down after the session.
Every API call goes through the kubeconfig that the harness created, and
`controlplane.guard` refuses any other: a developer's real cluster is never touched.

Third-party kinds (HTTPRoute, BackendConfig, BackendTrafficPolicy, GKE policies,
Prometheus Operator objects) are installed as stand-in CRDs with a schemaless
spec: they let the operator create, own and delete those objects for real, but
do not validate their fields the way the upstream CRDs would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT
from tests.support.processes import JsonLines
from tests.support.secrets import REDIS_PASSWORD
from wsfleet_devcluster import builds, controlplane, schemas

BIN = Path(sys.executable).parent
RESYNC = 3.0  # seconds; the operator's full-resync interval in these tests

# Schemaless stand-ins for the kinds whose real CRDs no module this machine reaches ships
# (devcluster/schemas.py says which); every other kind the providers render gets its real CRD.
STAND_INS = [
    ("cloud.google.com", "v1", "BackendConfig", "backendconfigs"),
    ("networking.gke.io", "v1", "GCPBackendPolicy", "gcpbackendpolicies"),
    ("networking.gke.io", "v1", "HealthCheckPolicy", "healthcheckpolicies"),
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.5) -> Any:
    """Poll until predicate() is truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


@dataclass
class Kubectl:
    kubeconfig: Path

    def __call__(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        controlplane.guard(self.kubeconfig)
        proc = subprocess.run(
            [str(BIN / "kubectl"), *args],
            input=stdin,
            capture_output=True,
            text=True,
            env={**os.environ, "KUBECONFIG": str(self.kubeconfig)},
            timeout=120,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
        return proc

    def get(self, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
        proc = self("get", kind, name, "-n", namespace, "-o", "json", "--show-managed-fields", check=False)
        if proc.returncode != 0:
            if "NotFound" in proc.stderr:
                return None
            raise AssertionError(proc.stderr)
        obj: dict[str, Any] = json.loads(proc.stdout)
        return obj

    def apply(self, doc: dict[str, Any], *extra: str) -> subprocess.CompletedProcess[str]:
        return self("apply", "-f", "-", *extra, stdin=yaml.safe_dump(doc), check=False)

    def condition(self, name: str, namespace: str, kind: str) -> dict[str, Any] | None:
        obj = self.get("wss", name, namespace)
        for c in ((obj or {}).get("status") or {}).get("conditions", []):
            if c["type"] == kind:
                return dict(c)
        return None


@pytest.fixture(scope="session")
def dev_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[controlplane.DevCluster]:
    builds.ensure_binaries(out=sys.stderr)
    dc = controlplane.DevCluster(tmp_path_factory.mktemp("cluster"))
    dc.up(out=sys.stderr)
    try:
        yield dc
    finally:
        dc.down()


def stand_in_crd(group: str, version: str, kind: str, plural: str) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{group}",
            # Groups under k8s.io need this annotation; "unapproved, ..." is the honest value for a stand-in.
            "annotations": {"wsfleet.dev/stand-in": "true", "api-approved.kubernetes.io": "unapproved, test stand-in"},
        },
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "listKind": f"{kind}List", "singular": kind.lower()},
            "versions": [
                {
                    "name": version,
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                        }
                    },
                }
            ],
        },
    }


@pytest.fixture(scope="session")
def kubectl(dev_cluster: controlplane.DevCluster) -> Kubectl:
    k = Kubectl(dev_cluster.kubeconfig)
    k("apply", "--server-side", "-k", str(ROOT / "crds"))
    # the upstream CRDs of the other kinds the providers render (devcluster/schemas.py)
    for path in schemas.crd_files(dev_cluster.dir / "schemas"):
        k("apply", "--server-side", "-f", str(path))
    for args in STAND_INS:
        k("apply", "--server-side", "-f", "-", stdin=yaml.safe_dump(stand_in_crd(*args)))
    k("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    return k


@dataclass
class Operator:
    kubeconfig: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    metrics_port: int = 0
    health_port: int = 0
    resync: float = RESYNC
    verbose: bool = True
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)  # beside the test's own environment

    def start(self) -> None:
        self.metrics_port, self.health_port = controlplane.free_port(), controlplane.free_port()
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    str(BIN / "wsfleet"),
                    "operator",
                    f"--kubeconfig={self.kubeconfig}",
                    f"--resync={self.resync}",
                    "--bind=127.0.0.1",
                    f"--metrics-port={self.metrics_port}",
                    f"--health-port={self.health_port}",
                    *(["--verbose"] if self.verbose else []),
                    *self.args,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                # As the shipped image and Deployment run it (Dockerfile.operator, deploy/operator).
                env={**os.environ, "MALLOC_ARENA_MAX": "2", **self.env},
            )
        wait_until(self.healthy, 60, "the operator's /healthz")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def health(self) -> dict[str, Any]:
        """/healthz's answer: with --leader-elect it says whether this replica leads, and who does."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=2) as r:
            body: dict[str, Any] = json.loads(r.read())
        return body

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            return str(r.read().decode())

    def counter(self, prefix: str) -> float:
        """The sum of a metric's samples whose line starts with `prefix` (name and labels)."""
        return sum(float(x.rsplit(" ", 1)[1]) for x in self.metrics().splitlines() if x.startswith(prefix))

    def writes(self) -> float:
        return self.counter("wsfleet_operator_api_writes_total{")

    def reconciles(self, result: str) -> float:
        return self.counter(f'wsfleet_operator_reconciles_total{{result="{result}"}}')

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None


class Audit(JsonLines):
    """The API server's audit log of the operator's writes (devcluster.AUDIT_POLICY), read as it
    grows: what the operator wrote, counted by the API server rather than by the operator."""

    def writes(
        self, namespace: str, *, dry_run: bool = False, user: str = controlplane.OPERATOR_USER
    ) -> list[dict[str, Any]]:
        """The operator's create/update/patch/delete requests in `namespace` (answered), real ones
        or dry runs (an apply with dryRun=All, which is how it compares before it writes)."""
        return [
            e for e in self.read()
            if e["user"]["username"] == user
            and e.get("objectRef", {}).get("namespace") == namespace
            and ("dryRun=All" in e["requestURI"]) == dry_run
        ]  # fmt: skip


@pytest.fixture(scope="session")
def audit(dev_cluster: controlplane.DevCluster) -> Audit:
    return Audit(dev_cluster.audit_log)


@pytest.fixture(scope="session")
def operator(kubectl: Kubectl, dev_cluster: controlplane.DevCluster) -> Iterator[Operator]:
    # its own user (system:masters), so the audit log tells its writes from the tests' kubectl
    op = Operator(dev_cluster.operator_kubeconfig, dev_cluster.dir / "logs" / "operator.log")
    op.start()
    try:
        yield op
    finally:
        op.stop()


_counter = iter(range(10_000))


@pytest.fixture
def namespace(kubectl: Kubectl) -> Iterator[str]:
    """A fresh namespace that enforces PodSecurity 'restricted'."""
    name = f"t{next(_counter)}-{os.getpid() % 1000}"
    kubectl("create", "namespace", name)
    kubectl("label", "namespace", name, "pod-security.kubernetes.io/enforce=restricted")
    kubectl(
        "create",
        "secret",
        "generic",
        "wsfleet-redis",
        "-n",
        name,
        f"--from-literal=url=redis://:{REDIS_PASSWORD}@redis:6379/0",
    )
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)


def example(name: str, namespace: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "deploy" / "examples" / f"{name}.yaml").read_text())
    doc["metadata"]["namespace"] = namespace
    return doc
