"""The fleet's NetworkPolicy: default deny both ways, then exactly what a WebSocket fleet needs.

Ingress
  - the Socket.IO port (which also serves the health endpoints the LB checks) from the load
    balancer only: the provider's sources (providers/*.py) unless spec.networkPolicy.loadBalancer
    names them;
  - the metrics port from the monitoring namespace only.
Egress
  - Redis and Sentinel (spec.networkPolicy.redis: any address on their ports unless narrowed);
  - DNS, UDP and TCP 53, to any address: kube-dns, NodeLocal DNSCache (a link-local address on
    the node) and a cloud resolver must all keep working;
  - the extra rules of spec.networkPolicy.egress.

Kubelet probes come from the node, which NetworkPolicy implementations let through. Nothing
else is allowed: every rule names its ports and its peers (an omitted peer list, "anyone", is
used only where the spec says "any address" for egress).
"""

from __future__ import annotations

from typing import Any

from wsfleet_common import contract as c
from wsfleet_operator import naming
from wsfleet_operator.model import Peers
from wsfleet_operator.providers import registry
from wsfleet_operator.render.context import Context, Manifest

KIND = ("networking.k8s.io/v1", "NetworkPolicy")
DNS_PORT = 53


def _selector(labels: dict[str, str]) -> dict[str, Any]:
    """A label selector as the API server stores it: {} (everything) has no matchLabels. An
    applied `matchLabels: {}` is stored without it, and the API server counts each apply of it as
    a change (a new generation): the operator then rewrote the policy on every event it caused."""
    return {"matchLabels": dict(labels)} if labels else {}


def _peers(peers: Peers) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"namespaceSelector": _selector(labels)} for labels in peers.namespaces]
    out += [{"podSelector": _selector(labels)} for labels in peers.pods]
    out += [{"ipBlock": {"cidr": cidr}} for cidr in peers.cidrs]
    return out


def _tcp(*ports: int | str) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": p} for p in ports]


def _egress(peers: Peers, ports: list[dict[str, Any]]) -> dict[str, Any]:
    rule: dict[str, Any] = {"ports": ports}
    if not peers.empty:
        rule["to"] = _peers(peers)
    return rule


def load_balancer_sources(ctx: Context) -> Peers:
    chosen = ctx.spec.network_policy.load_balancer
    return chosen if chosen is not None else registry.provider_for(ctx.spec).sources(ctx)


def render(ctx: Context) -> Manifest | None:
    np = ctx.spec.network_policy
    if not np.enabled:
        return None
    monitoring = Peers(namespaces=[{"kubernetes.io/metadata.name": np.monitoring_namespace}])
    ingress = [
        {"from": _peers(load_balancer_sources(ctx)), "ports": _tcp(c.PORT_NAME)},
        {"from": _peers(monitoring), "ports": _tcp(c.METRICS_PORT_NAME)},
    ]
    egress = [
        _egress(np.redis.to, _tcp(*np.redis.ports)),
        {"ports": [{"protocol": "UDP", "port": DNS_PORT}, {"protocol": "TCP", "port": DNS_PORT}]},
        *(_egress(rule.to, _tcp(*rule.ports)) for rule in np.egress),
    ]
    return {
        "apiVersion": KIND[0],
        "kind": KIND[1],
        "metadata": ctx.meta(),
        "spec": {
            "podSelector": {"matchLabels": naming.selector(ctx.wss)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": ingress,
            "egress": egress,
        },
    }
