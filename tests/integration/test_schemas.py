"""Every object the operator renders, checked by the real API server against the real schema of its
kind, with fieldValidation=Strict (a server-side dry run: an unknown or misspelt field is refused,
not dropped).

The control plane holds the upstream CRDs of HTTPRoute, TraefikService, BackendTrafficPolicy,
ServiceMonitor and PrometheusRule (devcluster/schemas.py: from their Go modules, by version).
BackendConfig, GCPBackendPolicy and HealthCheckPolicy have no module this machine reaches, so
their objects meet schemaless stand-ins: they are counted, and the test says so, but a wrong
field in them would pass.

| case                                              | expected                                          |
|---------------------------------------------------|---------------------------------------------------|
| every example in deploy/examples                  | every rendered object accepted                    |
| variants: affinity none / clientIP, CORS, TLS      | every rendered object accepted                    |
| the generic Gateway with sessionPersistence       | refused by the standard channel's HTTPRoute,      |
|                                                   | naming the field (the spec field says it needs    |
|                                                   | the experimental channel)                         |
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from typing import Any

from tests.conftest import EXAMPLES, ROOT
from tests.integration.conftest import STAND_INS, Kubectl, example
from wsfleet_devcluster import schemas
from wsfleet_operator.render import render_all
from wsfleet_operator.validation import parse_and_check

STAND_IN_KINDS = {kind for _, _, kind, _ in STAND_INS}


def _with(doc: dict[str, Any], **spec: Any) -> dict[str, Any]:
    changed = copy.deepcopy(doc)
    changed["spec"].update(spec)
    return changed


def variants(namespace: str) -> dict[str, dict[str, Any]]:
    out = {path.stem: example(path.stem, namespace) for path in EXAMPLES}
    out["gateway-envoy clientIP"] = _with(out["gateway-envoy"], affinity={"mode": "clientIP"})
    out["gateway-envoy none"] = _with(out["gateway-envoy"], affinity={"mode": "none"}, transports=["websocket"])
    out["gateway-traefik none"] = _with(out["gateway-traefik"], affinity={"mode": "none"}, transports=["websocket"])
    nginx = out["nginx"]
    out["nginx clientIP cors"] = _with(
        nginx,
        affinity={"mode": "clientIP"},
        loadBalancer={**nginx["spec"]["loadBalancer"], "cors": {"allowOrigins": ["https://app.example.com"]}},
    )
    return out


def strict_dry_run(kubectl: Kubectl, obj: dict[str, Any]) -> tuple[int, str]:
    proc = kubectl(
        "apply", "--server-side", "--dry-run=server", "--validate=strict", "--field-manager=wsfleet-schema-test",
        "-f", "-", stdin=json.dumps(obj), check=False,
    )  # fmt: skip
    return proc.returncode, proc.stderr.strip()


def test_the_real_crds_are_installed(kubectl: Kubectl) -> None:
    crds = json.loads(kubectl("get", "crd", "-o", "json").stdout)["items"]
    by_kind = {c["spec"]["names"]["kind"]: c for c in crds}
    for kind in schemas.REAL_KINDS:
        assert kind in by_kind, f"the real CRD of {kind} is not installed"
        annotations = by_kind[kind]["metadata"].get("annotations") or {}
        assert "wsfleet.dev/stand-in" not in annotations, f"{kind} is a stand-in, not its real CRD"
        schema = by_kind[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        assert "x-kubernetes-preserve-unknown-fields" not in schema["properties"]["spec"], kind


def test_every_rendered_object_passes_its_real_schema(kubectl: Kubectl, namespace: str) -> None:
    checked: Counter[str] = Counter()
    unchecked: Counter[str] = Counter()
    refused = []
    for name, doc in variants(namespace).items():
        for obj in render_all(parse_and_check(doc, name)):
            kind = obj["kind"]
            (unchecked if kind in STAND_IN_KINDS else checked)[kind] += 1
            rc, err = strict_dry_run(kubectl, obj)
            if rc != 0:
                refused.append(f"{name}: {kind} {obj['metadata']['name']}: {err}")
    assert not refused, "\n".join(refused)
    # what was checked against a real schema, and what only met a stand-in
    assert set(checked) >= schemas.REAL_KINDS, checked
    assert {"Deployment", "Service", "ConfigMap", "NetworkPolicy"} <= set(checked), checked
    assert set(unchecked) <= STAND_IN_KINDS, unchecked
    print(f"checked against real schemas: {dict(checked)}; against schemaless stand-ins only: {dict(unchecked)}")


def test_session_persistence_needs_the_experimental_channel(kubectl: Kubectl, namespace: str) -> None:
    doc = example("gateway", namespace)
    doc["spec"]["loadBalancer"]["sessionPersistence"] = True
    doc["spec"]["affinity"] = {"mode": "cookie"}
    doc["spec"]["transports"] = ["polling", "websocket"]
    (route,) = [o for o in render_all(parse_and_check(doc)) if o["kind"] == "HTTPRoute"]
    assert route["spec"]["rules"][0]["sessionPersistence"]["type"] == "Cookie"
    rc, err = strict_dry_run(kubectl, route)
    assert rc != 0, "the standard channel's HTTPRoute accepted sessionPersistence"
    assert "sessionPersistence" in err, err
    # and the spec field's description, which users read, says so
    reference = (ROOT / "docs" / "crd-reference.md").read_text()
    (row,) = [line for line in reference.splitlines() if "`spec.loadBalancer.sessionPersistence`" in line]
    assert "experimental channel" in row, row
