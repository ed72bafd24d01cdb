"""The generated parts of the guides, and the install manifests they describe.

| check                                              | fails when                                        |
|----------------------------------------------------|---------------------------------------------------|
| every generated block of every page is fresh       | a renderer changed and `wsfleet crd` was not run  |
| a stale block is detected, an unknown one refused  | the check itself stopped working                  |
| the namespaced Role = the ClusterRole minus the cluster-scoped rules | one RBAC file gained a kind the other lacks |
| the namespaced install watches its own namespace   | the patch or the downward-API variable is gone    |
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT
from wsfleet_operator import docs
from wsfleet_operator.timeouts import derive


def test_generated_blocks_are_fresh() -> None:
    stale = docs.stale(ROOT)
    assert not stale, f"{[str(p) for p in stale]}: generated blocks differ; run `wsfleet crd` to regenerate them"


def test_a_changed_example_makes_the_page_stale(tmp_path: Path) -> None:
    for part in ("docs", "deploy"):
        shutil.copytree(ROOT / part, tmp_path / part)
    assert docs.stale(tmp_path) == []
    alb = tmp_path / "deploy" / "examples" / "alb.yaml"
    alb.write_text(alb.read_text().replace("drain: 30s", "drain: 40s"))
    assert set(docs.stale(tmp_path)) == {tmp_path / p for p in docs.PAGES}
    docs.write(tmp_path)
    assert docs.stale(tmp_path) == []
    guide = (tmp_path / docs.PAGES[0]).read_text()
    assert (
        "| `deploy/examples/alb.yaml` | alb | 50s (25s + 25s) | 80s | 86400s | 30s | 40s | 75s | 75s | cookie |"
        in guide
    )


def test_an_unknown_block_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown generated block 'nope'"):
        docs.fill("<!-- generated: nope -->\n<!-- /generated -->", ROOT, "x.md")


def test_the_guide_quotes_what_the_renderer_derives() -> None:
    guide = (ROOT / docs.PAGES[0]).read_text()
    for src, wss in docs._examples(ROOT):
        t = derive(wss.spec)
        assert f"| `{src}` | {t.profile.key} |" in guide
        assert f"| {t.grace}s |" in guide


def _rules(path: Path, kind: str) -> list[dict[str, Any]]:
    doc = next(d for d in yaml.safe_load_all(path.read_text()) if d and d["kind"] == kind)
    return list(doc["rules"])


def test_namespaced_role_matches_the_cluster_role_minus_cluster_scoped_rules() -> None:
    cluster_rules = _rules(ROOT / "deploy" / "operator" / "rbac.yaml", "ClusterRole")
    role_rules = _rules(ROOT / "deploy" / "operator-namespaced" / "rbac.yaml", "Role")
    cluster_scoped = [r for r in cluster_rules if set(r["resources"]) <= {"customresourcedefinitions", "namespaces"}]
    assert len(cluster_scoped) == 2
    lease_rules = _rules(ROOT / "deploy" / "operator" / "rbac.yaml", "Role")
    assert role_rules == [r for r in cluster_rules if r not in cluster_scoped] + lease_rules


def test_namespaced_install_watches_its_own_namespace() -> None:
    kustomization = yaml.safe_load((ROOT / "deploy" / "operator-namespaced" / "kustomization.yaml").read_text())
    (patch,) = kustomization["patches"]
    assert "--namespace=$(POD_NAMESPACE)" in patch["patch"]
    path = ROOT / "deploy" / "operator" / "deployment" / "deployment.yaml"
    deployment = next(d for d in yaml.safe_load_all(path.read_text()) if d["kind"] == "Deployment")
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
