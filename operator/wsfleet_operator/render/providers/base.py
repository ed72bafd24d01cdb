"""What every load-balancer provider module provides, and the Ingress they share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

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


def no_annotations(ctx: Context) -> dict[str, str]:
    return {}


@dataclass(frozen=True)
class Provider:
    key: str
    kinds: tuple[Kind, ...]
    render: Renderer
    service_annotations: Annotator = no_annotations


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
