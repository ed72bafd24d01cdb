"""What every load-balancer provider module provides, and the Ingress they share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from wsfleet_operator.model import Peers

if TYPE_CHECKING:  # the renderers' input, for types only: render imports this layer
    from wsfleet_operator.render.context import Context, Manifest


@dataclass(frozen=True)
class LbProfile:
    """What the operator must know about a load balancer's timing behaviour: timeouts.derive()
    and the invariants read it."""

    key: str
    label: str
    # Default preStop. Proxies that follow Endpoints (ingress-nginx, Envoy) stop sending new
    # requests within a second of the pod turning unready; 10 s covers the kubelet's 2 failed probes
    # of the default 3 s readiness period and one more for the LB to follow (I3). Cloud load
    # balancers deregister through their controller and lag:
    # users of the AWS Load Balancer Controller ended up with 25-70 s, GCE NEGs take ~20-30 s.
    pre_stop: int
    idle_setting: str | None  # the rendered idle-timeout setting, if the provider has one
    idle_max: int | None = None
    lifetime_setting: str | None = None  # a lifetime cap that also bounds idle sockets
    drain_setting: str | None = None  # the LB's own connection draining, if it has one
    drain_max: int | None = None
    cookie_ttl_max: int | None = None
    client_ip_affinity: bool = True
    fixed_cookie_name: str | None = None
    # False: the load balancer never closes an upgraded connection for being silent (Traefik: Go's
    # net/http clears the deadlines when the proxy hijacks the connection), so only the heartbeat
    # notices a dead peer, and no idle timeout is rendered.
    idle_limit: bool = True
    # How long the load balancer keeps an idle pooled connection to a backend for reuse; None: the
    # rendered idle timeout governs backend connections too (ALB, Envoy Gateway). The workload keeps
    # idle HTTP connections open longer than this: a backend that closes one first races the LB's
    # next request on it, and the LB answers that request (a publish POST) with 502.
    upstream_idle: int | None = None


# Where the provider's pooled-connection idle time is unknown: Envoy's default upstream idle timeout
# (1 h), the longest of the proxies we know, for Envoy-based Gateways such as Istio or Cilium.
UPSTREAM_IDLE_UNKNOWN = 3600
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
    """One load balancer: its timing profile and what the operator renders for it."""

    profile: LbProfile
    kinds: tuple[Kind, ...]
    render: Renderer
    service_annotations: Annotator = no_annotations
    # Who the load balancer's traffic comes from, for the NetworkPolicy (spec.networkPolicy.
    # loadBalancer overrides it).
    sources: Sources = same_namespace

    @property
    def key(self) -> str:
        return self.profile.key


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
