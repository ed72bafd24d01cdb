"""Refusing bad specs, losing nothing.

Matrix:
- at admission: the API server's CEL refuses a broken spec with a message naming the
  values, and the stored resource is untouched;
- in the operator: with a CRD that lacks the rules (an older CRD, a bypassed webhook),
  a broken spec is stored, and the operator sets Stalled / TimeoutsAligned=False, emits
  a Warning event, and changes no child; fixing the spec brings it back to Ready;
- agreement: on random specs, the real API server and the Python checker accept and
  refuse the same ones.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings

from tests.conftest import ROOT
from tests.integration.conftest import Kubectl, Operator, example, wait_until
from tests.integration.test_operator import apply_ok, wait_ready
from tests.unit.strategies import raw_specs, resource
from wsfleet_operator import crd
from wsfleet_operator.validation import check, parse_resource


def test_cel_refuses_with_the_values(kubectl: Kubectl, operator: Operator, namespace: str) -> None:
    doc = example("nginx", namespace)
    apply_ok(kubectl, doc)
    before = kubectl.get("wss", "chat", namespace)
    assert before is not None
    broken = copy.deepcopy(doc)
    broken["spec"]["loadBalancer"]["idleTimeout"] = "60s"
    broken["spec"]["shutdown"] = {"terminationGracePeriod": "20s"}
    proc = kubectl.apply(broken)
    assert proc.returncode != 0
    assert "I1: loadBalancer.idleTimeout 60s must exceed the heartbeat window 50s by the margin 30s" in proc.stderr
    assert "I2: shutdown.terminationGracePeriod 20s must cover preStop 10s + drain 30s + buffer 5s" in proc.stderr
    after = kubectl.get("wss", "chat", namespace)
    assert after is not None
    assert after["metadata"]["generation"] == before["metadata"]["generation"]


@pytest.fixture
def crd_without_rules(kubectl: Kubectl) -> Iterator[None]:
    """Install the CRD with its cross-field rules stripped, as an older release would have; restore it after."""
    stripped = crd.crd()
    spec_schema = stripped["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    spec_schema.pop("x-kubernetes-validations")
    kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", stdin=yaml.safe_dump(stripped))
    try:
        yield
    finally:
        kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / crd.CRD_FILE))


def test_operator_refuses_what_the_crd_let_through(
    kubectl: Kubectl, operator: Operator, namespace: str, crd_without_rules: None
) -> None:
    doc = example("nginx", namespace)
    apply_ok(kubectl, doc)
    wait_ready(kubectl, "chat", namespace)
    children = {
        kind: (kubectl.get(kind, name, namespace) or {})["metadata"]["resourceVersion"]
        for kind, name in (("deployment", "chat"), ("configmap", "chat-config"), ("ingress", "chat"))
    }

    broken = copy.deepcopy(doc)
    broken["spec"]["loadBalancer"]["idleTimeout"] = "60s"
    apply_ok(kubectl, broken)  # the stripped CRD lets it in
    stalled = wait_until(
        lambda: (
            (kubectl.condition("chat", namespace, "Stalled") or {}).get("status") == "True"
            and kubectl.condition("chat", namespace, "Stalled")
        ),
        30,
        "Stalled=True",
    )
    assert "I1: loadBalancer.idleTimeout 60s" in stalled["message"]
    assert "need at least 80s" in stalled["message"]
    aligned = kubectl.condition("chat", namespace, "TimeoutsAligned")
    assert aligned is not None
    assert (aligned["status"], aligned["reason"]) == ("False", "Misaligned")
    ready = kubectl.condition("chat", namespace, "Ready")
    assert ready is not None
    assert ready["status"] == "False"
    assert "last good fleet keeps running" in ready["message"]

    events = json.loads(kubectl("get", "events", "-n", namespace, "-o", "json").stdout)["items"]
    warnings = [e for e in events if e["type"] == "Warning" and e["reason"] == "InvalidSpec"]
    assert warnings
    assert "I1:" in warnings[0]["message"]

    for kind, name in (("deployment", "chat"), ("configmap", "chat-config"), ("ingress", "chat")):
        obj = kubectl.get(kind, name, namespace)
        assert obj is not None
        assert obj["metadata"]["resourceVersion"] == children[kind], f"{kind} changed while the spec was refused"
    ingress = kubectl.get("ingress", "chat", namespace)
    assert ingress is not None
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-read-timeout"] == "80"

    apply_ok(kubectl, doc)
    wait_ready(kubectl, "chat", namespace)
    stalled_again = kubectl.condition("chat", namespace, "Stalled")
    assert stalled_again is not None
    assert stalled_again["status"] == "False"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=raw_specs)
def test_api_server_and_checker_agree(kubectl: Kubectl, raw: dict[str, Any]) -> None:
    doc = resource(raw, name="agree")
    doc["metadata"]["namespace"] = "default"
    accepted_here = not check(parse_resource(doc).spec)
    proc = kubectl("create", "--dry-run=server", "-f", "-", "-o", "name", stdin=yaml.safe_dump(doc), check=False)
    accepted_there = proc.returncode == 0
    if not accepted_there:
        assert "Invalid value" in proc.stderr, proc.stderr  # refused by validation, not for another reason
    assert accepted_there == accepted_here, (raw, proc.stderr, [v.message for v in check(parse_resource(doc).spec)])
