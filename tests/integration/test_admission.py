"""Refusing bad specs, losing nothing.

Matrix:
- at admission: the API server's CEL refuses a broken spec with a message naming the
  values, and the stored resource is untouched;
- in the operator: with a CRD that lacks the rules (an older CRD, a bypassed webhook),
  a broken spec is stored, and the operator sets Stalled / TimeoutsAligned=False, emits
  a Warning event, and changes no child; kstatus computes Failed with the numbers; fixing the spec
  brings it back to Ready;
- agreement: for every case of the rule tables (broken examples, both sides of each boundary),
  for random specs and for random specs that break exactly one rule, the real API server (a
  server-side dry run) refuses with exactly the rule ids the operator's checker names.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings

from tests.conftest import ROOT
from tests.integration.conftest import Kubectl, Operator, example, wait_until
from tests.integration.test_operator import apply_ok, wait_ready
from tests.support.tools import kstatus
from tests.unit.strategies import broken_rules, raw_specs, resource, single_rule_specs
from tests.unit.test_rules import BOUNDARIES, BROKEN
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
    broken["spec"]["env"] = [{"name": "TZ", "value": "UTC"}, {"name": "WSFLEET_DRAIN_SECONDS", "value": "1"}]
    proc = kubectl.apply(broken)
    assert proc.returncode != 0
    # the API server's words are the operator's: both evaluate the rule's one CEL text
    for v in check(parse_resource(broken).spec):
        assert v.message in proc.stderr, (v.message, proc.stderr)
    assert (
        "I1: loadBalancer.idleTimeout 60s (ingress-nginx proxy-read-timeout / proxy-send-timeout) must exceed the "
        "heartbeat window 50s (25s interval + 25s timeout) by the margin 30s: need at least 80s"
    ) in proc.stderr
    assert "I2: shutdown.terminationGracePeriod 20s must cover preStop 10s + drain 30s + buffer 5s = 45s" in proc.stderr
    # a rule on each item of a list: the API server names the item's index, the message its name
    assert "spec.env[1]: Invalid value" in proc.stderr, proc.stderr
    assert "S7: env 'WSFLEET_DRAIN_SECONDS' uses the reserved prefix WSFLEET_" in proc.stderr
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
    # Flux and Argo CD (kstatus) show the refusal as Failed, with the numbers
    stored = kubectl.get("wss", "chat", namespace)
    assert stored is not None
    (health,) = kstatus(stored)
    assert health["status"] == "Failed", health
    assert "I1: loadBalancer.idleTimeout 60s" in health["message"], health
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


def _server_rules(kubectl: Kubectl, raw: dict[str, Any]) -> set[str] | None:
    """The rule ids in the real API server's refusal of `raw` (a server-side dry run), or None
    when it accepts it. Every error in a refusal must name a rule: one that does not was refused
    for another reason (a schema type, an enum), and the comparison would mean nothing."""
    doc = resource(raw, name="agree")
    doc["metadata"]["namespace"] = "default"
    proc = kubectl("create", "--dry-run=server", "-f", "-", "-o", "name", stdin=yaml.safe_dump(doc), check=False)
    if proc.returncode == 0:
        return None
    # one error: `... is invalid: spec: Invalid value: I1: ...`; several: one `* spec: ...` line each
    errors = re.findall(r'Invalid value: (?:"[^"]*": )?([^\n]*)', proc.stderr)
    assert errors, proc.stderr
    ids = [re.match(r"([IS]\d+): ", e) for e in errors]
    assert all(ids), f"an error names no rule: {proc.stderr}"
    return {m.group(1) for m in ids if m}


# Every case of the rule tables: each broken example, and both sides of each boundary.
TABLE = [(f"{rule}-broken-{i}", raw) for i, (rule, raw, _) in enumerate(BROKEN)] + [
    (f"{rule}-{side}-{i}", raw) for i, (rule, ok, bad) in enumerate(BOUNDARIES) for side, raw in (("ok", ok), ("bad", bad))
]  # fmt: skip


@pytest.mark.parametrize("raw", [raw for _, raw in TABLE], ids=[name for name, _ in TABLE])
def test_api_server_names_the_rules_the_checker_names(kubectl: Kubectl, raw: dict[str, Any]) -> None:
    python = broken_rules(raw)
    there = _server_rules(kubectl, raw)
    assert (there or set()) == python, (raw, there, python)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=raw_specs)
def test_api_server_and_checker_agree(kubectl: Kubectl, raw: dict[str, Any]) -> None:
    python = broken_rules(raw)
    there = _server_rules(kubectl, raw)
    assert (there or set()) == python, (raw, there, python)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=single_rule_specs)
def test_api_server_and_checker_agree_one_rule_at_a_time(kubectl: Kubectl, raw: dict[str, Any]) -> None:
    (rule,) = broken_rules(raw)
    event(rule)
    assert _server_rules(kubectl, raw) == {rule}, raw
