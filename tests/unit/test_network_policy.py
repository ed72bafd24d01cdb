"""The rendered NetworkPolicy.

Matrix:
  provider         default load-balancer source              override (spec.networkPolicy.loadBalancer)
  nginx            namespace ingress-nginx                   replaces the default
  alb              private ranges (VPC CIDR unknown)         replaces the default
  gce, gke         Google front-end ranges                   replaces the default
  gateway/generic  the Gateway's namespace                   replaces the default
  gateway/envoy    namespace envoy-gateway-system            replaces the default
  none             pods of the resource's own namespace      replaces the default
Every variant, and arbitrary specs (hypothesis): every container port has exactly one ingress
rule, no rule admits "anyone", only the listed egress ports are open, opting out renders nothing.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given

from tests.unit.strategies import accepted_specs, resource
from wsfleet_operator import naming
from wsfleet_operator.render import owned_kinds, render_all
from wsfleet_operator.validation import SpecError, check, parse_and_check, parse_resource

PROVIDERS: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {
    "nginx": (
        {"provider": "nginx"},
        [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}],
    ),
    "alb": (
        {"provider": "alb"},
        [{"ipBlock": {"cidr": c}} for c in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")],
    ),
    "gce": ({"provider": "gce"}, [{"ipBlock": {"cidr": c}} for c in ("35.191.0.0/16", "130.211.0.0/22")]),
    "gateway/gke": (
        {"provider": "gateway", "implementation": "gke", "gateway": {"name": "gw", "namespace": "infra"}},
        [{"ipBlock": {"cidr": c}} for c in ("35.191.0.0/16", "130.211.0.0/22")],
    ),
    "gateway/generic": (
        {"provider": "gateway", "gateway": {"name": "gw", "namespace": "infra"}},
        [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "infra"}}}],
    ),
    "gateway/envoy": (
        {"provider": "gateway", "implementation": "envoy", "gateway": {"name": "gw"}},
        [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "envoy-gateway-system"}}}],
    ),
    "none": ({"provider": "none"}, [{"podSelector": {}}]),  # every pod of the namespace
}


def policy(spec: dict[str, Any]) -> dict[str, Any] | None:
    wss = parse_resource(resource(spec))
    assert check(wss.spec) == []
    found = [m for m in render_all(wss) if m["kind"] == "NetworkPolicy"]
    return found[0] if found else None


def deployment_ports(spec: dict[str, Any]) -> set[str]:
    wss = parse_resource(resource(spec))
    (deploy,) = [m for m in render_all(wss) if m["kind"] == "Deployment"]
    return {p["name"] for c in deploy["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])}


def assert_tight(np: dict[str, Any], ports: set[str]) -> None:
    """Each exposed port admitted by exactly one rule, from named peers; nothing else admitted."""
    spec = np["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"], "both directions default-deny"
    admitted = [p["port"] for rule in spec["ingress"] for p in rule["ports"]]
    assert sorted(admitted) == sorted(ports), f"ingress ports {admitted} vs container ports {sorted(ports)}"
    for rule in spec["ingress"]:
        assert rule.get("from"), f"an ingress rule without peers admits anyone: {rule}"
        assert all(p["protocol"] == "TCP" for p in rule["ports"])
    for rule in spec["egress"]:
        assert rule.get("ports"), f"an egress rule without ports opens every port: {rule}"


@pytest.mark.parametrize("key", PROVIDERS)
def test_ingress_comes_from_the_providers_load_balancer_only(key: str) -> None:
    lb, expected = PROVIDERS[key]
    np = policy({"loadBalancer": lb})
    assert np is not None
    assert np["metadata"]["name"] == "chat"
    assert np["spec"]["podSelector"] == {"matchLabels": naming.selector(parse_resource(resource({})))}
    http, metrics = np["spec"]["ingress"]
    assert http == {"from": expected, "ports": [{"protocol": "TCP", "port": "http"}]}
    assert metrics == {
        "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
        "ports": [{"protocol": "TCP", "port": "metrics"}],
    }
    assert_tight(np, deployment_ports({"loadBalancer": lb}))


@pytest.mark.parametrize("key", PROVIDERS)
def test_spec_sources_replace_the_providers_default(key: str) -> None:
    lb, _ = PROVIDERS[key]
    chosen = {"cidrs": ["10.20.0.0/16"], "namespaces": [{"team": "edge"}], "pods": [{"app": "proxy"}]}
    np = policy({"loadBalancer": lb, "networkPolicy": {"loadBalancer": chosen, "monitoringNamespace": "obs"}})
    assert np is not None
    http, metrics = np["spec"]["ingress"]
    assert http["from"] == [
        {"namespaceSelector": {"matchLabels": {"team": "edge"}}},
        {"podSelector": {"matchLabels": {"app": "proxy"}}},
        {"ipBlock": {"cidr": "10.20.0.0/16"}},
    ]
    assert metrics["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "obs"}}}]


def test_egress_is_redis_dns_and_the_extra_rules_only() -> None:
    np = policy({})
    assert np is not None
    redis, dns = np["spec"]["egress"]
    assert redis == {"ports": [{"protocol": "TCP", "port": 6379}, {"protocol": "TCP", "port": 26379}]}
    assert dns == {"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}

    np = policy(
        {
            "networkPolicy": {
                "redis": {"to": {"cidrs": ["10.9.0.5/32"]}, "ports": [6380]},
                "egress": [{"to": {"namespaces": [{"name": "auth"}]}, "ports": [443, 8443]}, {"ports": [9000]}],
            }
        }
    )
    assert np is not None
    redis, dns, extra, anywhere = np["spec"]["egress"]
    assert redis == {"ports": [{"protocol": "TCP", "port": 6380}], "to": [{"ipBlock": {"cidr": "10.9.0.5/32"}}]}
    assert extra == {
        "ports": [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 8443}],
        "to": [{"namespaceSelector": {"matchLabels": {"name": "auth"}}}],
    }
    assert anywhere == {"ports": [{"protocol": "TCP", "port": 9000}]}


def test_opting_out_renders_no_policy_and_the_reconciler_deletes_it() -> None:
    assert policy({"networkPolicy": {"enabled": False}}) is None
    assert ("networking.k8s.io/v1", "NetworkPolicy") in owned_kinds(), "an opted-out policy is pruned"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ({"loadBalancer": {"cidrs": ["10.0.0.0"]}}, "10.0.0.0", "pattern"),
        ({"loadBalancer": {}}, "{}", "admits anyone"),
        ({"egress": [{"ports": []}]}, "[]", "at least 1"),
        ({"egress": [{"ports": [0]}]}, "0", "greater than or equal to 1"),
        ({"monitoringNamespace": "Not A Namespace"}, "Not A Namespace", "pattern"),
    ],
)
def test_bad_network_policy_fields_are_refused_with_the_value(field: dict[str, Any], value: str, message: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_and_check(resource({"networkPolicy": field}))
    text = str(err.value)
    assert "networkPolicy" in text, text
    assert message in text, text


@given(accepted_specs)  # refused specs are never rendered (the operator applies nothing for them)
def test_every_spec_gets_a_tight_policy(spec: dict[str, Any]) -> None:
    wss = parse_resource(resource(spec))
    assert not check(wss.spec)
    rendered = render_all(wss)
    nps = [m for m in rendered if m["kind"] == "NetworkPolicy"]
    if not wss.spec.network_policy.enabled:
        assert nps == []
        return
    (deploy,) = [m for m in rendered if m["kind"] == "Deployment"]
    ports = {p["name"] for c in deploy["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])}
    assert_tight(nps[0], ports)


def _empty_selectors(node: Any, path: str = "") -> list[str]:
    if isinstance(node, dict):
        here = [path] if node.get("matchLabels") == {} else []
        return here + [p for k, v in node.items() for p in _empty_selectors(v, f"{path}.{k}")]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in _empty_selectors(v, f"{path}[{i}]")]
    return []


@given(accepted_specs)
def test_no_selector_carries_an_empty_match_labels(spec: dict[str, Any]) -> None:
    """The API server stores `matchLabels: {}` as no matchLabels and takes every apply of it for a
    change (a new generation, a watch event): the operator would rewrite the object for ever.
    tests/integration/test_operator.py shows it with the API server's audit log."""
    for m in render_all(parse_resource(resource(spec))):
        assert _empty_selectors(m) == [], (m["kind"], _empty_selectors(m))
