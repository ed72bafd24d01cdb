"""What every load-balancer provider module provides, and the Ingress they share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from wsfleet_operator.model import Peers
from wsfleet_operator.render.context import Context, Manifest

# (apiVersion, kind) of an object a provider may render; the reconciler deletes owned
# objects of these kinds that a provider switch left behind.
Kind = tuple[str, str]

INGRESS: Kind = ("networking.k8s.io/v1", "Ingress")
CERT_MANAGER_ISSUER = "cert-manager.io/issuer"
CERT_MANAGER_CLUSTER_ISSUER = "cert-manager.io/cluster-issuer"


class Renderer(Protocol):
    def __call__(self, ctx: Context) -> list[Manifest]: ...


class Annotator(Protocol):
    def __call__(self, ctx: Context) -> dict[str, str]: ...


class Sources(Protocol):
    def __call__(self, ctx: Context) -> Peers: ...


def no_annotations(ctx: Context) -> dict[str, str]:
    return {}


def same_namespace(ctx: Context) -> Peers:
    """Any pod of the resource's own namespace: for a load balancer the provider cannot name."""
    return Peers(pods=[{}])


def namespace_named(name: str) -> Peers:
    return Peers(namespaces=[{NAMESPACE_NAME_LABEL: name}])


# Set by the API server on every namespace (since Kubernetes 1.22).
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
# Google front ends and health checkers reach pod IPs directly through NEGs from these
# ranges (GCE Ingress and the GKE Gateway both use container-native load balancing).
GOOGLE_FRONT_ENDS = Peers(cidrs=["35.191.0.0/16", "130.211.0.0/22"])


@dataclass(frozen=True)
class Provider:
    key: str
    kinds: tuple[Kind, ...]
    render: Renderer
    service_annotations: Annotator = no_annotations
    # Who the load balancer's traffic comes from, for the NetworkPolicy (spec.networkPolicy.
    # loadBalancer overrides it).
    sources: Sources = same_namespace


def tls_annotations(ctx: Context) -> dict[str, str]:
    tls = ctx.spec.load_balancer.tls
    if tls is None or tls.issuer is None:
        return {}
    key = CERT_MANAGER_CLUSTER_ISSUER if tls.issuer.kind == "ClusterIssuer" else CERT_MANAGER_ISSUER
    return {key: tls.issuer.name}


def ingress(ctx: Context, annotations: dict[str, str], class_name: str | None) -> Manifest:
    """An Ingress routing the spec's host and path to the Service's http port."""
    lb = ctx.spec.load_balancer
    rule: dict[str, Any] = {
        "http": {
            "paths": [
                {
                    "path": lb.path,
                    "pathType": "Prefix",
                    "backend": {"service": {"name": ctx.name, "port": {"name": "http"}}},
                }
            ]
        }
    }
    if lb.host:
        rule = {"host": lb.host, **rule}
    spec: dict[str, Any] = {"rules": [rule]}
    if class_name:
        spec = {"ingressClassName": class_name, **spec}
    if lb.tls is not None:
        tls: dict[str, Any] = {"secretName": lb.tls.secret_name or f"{ctx.name}-tls"}
        if lb.host:
            tls = {"hosts": [lb.host], **tls}
        spec["tls"] = [tls]
    merged = {**annotations, **tls_annotations(ctx), **lb.annotations}
    return {"apiVersion": INGRESS[0], "kind": INGRESS[1], "metadata": ctx.meta(annotations=merged), "spec": spec}
