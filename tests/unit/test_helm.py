"""The Helm chart (deploy/helm/wsfleet) against the kustomize install, with helm built from
helm.sh/helm/v4 (`make controlplane`). No cluster: the chart on a cluster is
tests/integration/test_helm.py.

| check                       | how                                                                        |
|-----------------------------|----------------------------------------------------------------------------|
| lint                        | `helm lint --strict`, for both scopes                                      |
| one install, two paths      | `helm template` with the defaults = `kubectl kustomize deploy/operator` less its Namespace; with scope=namespace = deploy/operator-namespaced. Helm's own labels aside, every field is compared, and the operator's arguments as the wsfleet CLI parses them |
| the CRD                     | the chart's copy is `wsfleet crd`'s; kept on uninstall unless crds.keep=false; absent with crds.install=false |
| bad values                  | a scope that is neither gets an error naming values.yaml and the value     |
"""

from __future__ import annotations

import copy
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT
from tests.support.snippets import tagged
from wsfleet_devcluster import builds
from wsfleet_operator import cli

BIN = Path(sys.executable).parent
CHART = ROOT / "deploy" / "helm" / "wsfleet"
HELM_LABELS = {
    "helm.sh/chart",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
}


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    binary = builds.helm_binary()
    assert binary.is_file(), f"{binary} is missing: run `make controlplane` (builds.ensure_helm)"
    proc = subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=120, check=False)
    if check:
        assert proc.returncode == 0, f"helm {' '.join(args)}: {proc.stderr}"
    return proc


def template(namespace: str, *sets: str) -> list[dict[str, Any]]:
    out = helm("template", "wsfleet", str(CHART), "--namespace", namespace, *(f"--set={s}" for s in sets)).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def kustomize(directory: Path) -> list[dict[str, Any]]:
    proc = subprocess.run([str(BIN / "kubectl"), "kustomize", str(directory)], capture_output=True, text=True,
                          timeout=60, check=True)  # fmt: skip
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def _args(argv: list[str]) -> dict[str, Any]:
    return vars(cli.parser().parse_args(argv))


def normal(doc: dict[str, Any]) -> dict[str, Any]:
    """What the two install paths must agree on: labels on the objects' metadata and Helm's CRD
    policy aside (Helm labels everything); pod labels without Helm's; the operator's arguments
    as parsed, so `--resync=30` given or defaulted compare equal."""
    d = copy.deepcopy(doc)
    d["metadata"].pop("labels", None)
    annotations = d["metadata"].pop("annotations", {}) or {}
    annotations.pop("helm.sh/resource-policy", None)
    if annotations:
        d["metadata"]["annotations"] = annotations
    if d["kind"] == "Deployment":
        pod = d["spec"]["template"]
        pod["metadata"]["labels"] = {k: v for k, v in pod["metadata"]["labels"].items() if k not in HELM_LABELS}
        container = pod["spec"]["containers"][0]
        container["args"] = _args(container["args"])
    return d


def _by_key(docs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"]): normal(d) for d in docs}


@pytest.mark.parametrize("scope", ["cluster", "namespace"])
def test_the_chart_lints_clean(scope: str) -> None:
    proc = helm("lint", "--strict", str(CHART), f"--set=scope={scope}", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


def test_the_chart_renders_what_kustomize_renders() -> None:
    chart = _by_key(template("wsfleet-system"))
    kust = _by_key([d for d in kustomize(ROOT / "deploy" / "operator") if d["kind"] != "Namespace"])
    assert sorted(chart) == sorted(kust)
    for key, doc in kust.items():
        assert chart[key] == doc, key


def test_the_namespaced_chart_renders_what_the_namespaced_kustomization_renders() -> None:
    kust_docs = kustomize(ROOT / "deploy" / "operator-namespaced")
    namespace = kust_docs[0]["metadata"]["namespace"]
    chart = _by_key(template(namespace, "scope=namespace", "crds.install=false"))
    kust = _by_key(kust_docs)
    assert sorted(chart) == sorted(kust)
    for key, doc in kust.items():
        assert chart[key] == doc, key
    container = chart[("Deployment", "wsfleet-operator")]["spec"]["template"]["spec"]["containers"][0]
    assert container["args"]["namespace"] == ["$(POD_NAMESPACE)"]


def test_the_chart_crd_is_the_generated_one_and_kept_on_uninstall() -> None:
    (crd,) = [d for d in template("wsfleet-system") if d["kind"] == "CustomResourceDefinition"]
    generated = yaml.safe_load((ROOT / "crds" / "websocketservices.wsfleet.dev.yaml").read_text())
    assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert crd["spec"] == generated["spec"]
    (unkept,) = [d for d in template("x", "crds.keep=false") if d["kind"] == "CustomResourceDefinition"]
    assert "helm.sh/resource-policy" not in (unkept["metadata"].get("annotations") or {})
    assert not [d for d in template("x", "crds.install=false") if d["kind"] == "CustomResourceDefinition"]


def test_values_reach_the_operator() -> None:
    docs = template("ops", "fullnameOverride=fleet-op", "resync=20", "logFormat=text", "metrics.port=0",
                    "leaderElection.leaseDuration=30s", "replicas=1", "image.tag=9.9.9")  # fmt: skip
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    args = _args(container["args"])
    assert (args["resync"], args["log_format"], args["metrics_port"]) == (20.0, "text", 0)
    assert (args["leader_elect"], args["leader_elect_lease_duration"]) == (True, 30.0)
    assert args["leader_elect_resource_name"] == "fleet-op"
    assert container["image"].endswith(":9.9.9")
    assert [p["name"] for p in container["ports"]] == ["health"]
    assert not [d for d in docs if d["kind"] == "PodDisruptionBudget"], "no PDB over a single replica"
    without = template("ops", "leaderElection.enabled=false", "replicas=1")
    (deployment,) = [d for d in without if d["kind"] == "Deployment"]
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert not _args(deployment["spec"]["template"]["spec"]["containers"][0]["args"])["leader_elect"]
    assert not [d for d in without if d["kind"] == "Role"]


def test_a_bad_scope_is_refused_naming_the_value() -> None:
    proc = helm("template", "wsfleet", str(CHART), "--set=scope=everywhere", check=False)
    assert proc.returncode != 0
    assert 'values.yaml: scope: "everywhere": must be cluster' in proc.stderr


def _has(values: dict[str, Any], dotted: str) -> bool:
    node: Any = values
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def test_the_docs_helm_commands_name_the_chart_and_its_values() -> None:
    """README's `helm-install` and docs/operator.md's `helm` blocks: each install or upgrade
    renders with `helm template` and the same arguments, and every --set key is in values.yaml."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    lines = [x for tag in ("helm-install", "helm") for block in tagged(tag) for x in block.lines()]
    assert len(lines) >= 6
    for line in lines:
        argv = shlex.split(line)
        assert argv[0] == "helm", line
        if argv[1] == "uninstall":
            continue
        assert argv[1] in ("install", "upgrade"), line
        _release, chart, *rest = argv[2:]
        assert (ROOT / chart).resolve() == CHART, line
        sets = [rest[i + 1] for i, a in enumerate(rest) if a == "--set"]
        assert all(_has(values, s.partition("=")[0]) for s in sets), line
        namespace = rest[rest.index("-n") + 1] if "-n" in rest else rest[rest.index("--namespace") + 1]
        template(namespace, *sets)
