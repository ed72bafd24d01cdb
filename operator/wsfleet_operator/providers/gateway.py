"""Gateway API: an HTTPRoute, plus the implementation's policy object for envoy and gke, and a
TraefikService for traefik's cookie affinity.

HTTPRoute rules[].timeouts are left unset: they bound whole requests, which for
an upgraded WebSocket means its lifetime, and the GKE Gateway rejects them.
Idle timeouts and affinity come from the implementation's policy instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wsfleet_operator.durations import format_seconds as fmt
from wsfleet_operator.model import Peers
from wsfleet_operator.providers import gce
from wsfleet_operator.providers.base import (
    GOOGLE_FRONT_ENDS,
    UPSTREAM_IDLE_UNKNOWN,
    Kind,
    LbProfile,
    Provider,
    namespace_named,
)

if TYPE_CHECKING:  # the renderers' input, for types only: render imports this layer
    from wsfleet_operator.render.context import Context, Manifest

HTTP_ROUTE: Kind = ("gateway.networking.k8s.io/v1", "HTTPRoute")
BACKEND_TRAFFIC_POLICY: Kind = ("gateway.envoyproxy.io/v1alpha1", "BackendTrafficPolicy")
GCP_BACKEND_POLICY: Kind = ("networking.gke.io/v1", "GCPBackendPolicy")
HEALTH_CHECK_POLICY: Kind = ("networking.gke.io/v1", "HealthCheckPolicy")
TRAEFIK_SERVICE: Kind = ("traefik.io/v1alpha1", "TraefikService")


def _service_backend(ctx: Context) -> dict[str, Any]:
    return {"name": ctx.name, "port": ctx.spec.port}


def http_route(ctx: Context, backend: dict[str, Any] | None = None) -> Manifest:
    lb = ctx.spec.load_balancer
    assert lb.gateway is not None, "S1 guarantees a gateway reference"
    parent: dict[str, Any] = {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": lb.gateway.name}
    if lb.gateway.namespace:
        parent["namespace"] = lb.gateway.namespace
    if lb.gateway.section_name:
        parent["sectionName"] = lb.gateway.section_name
    rule: dict[str, Any] = {
        "matches": [{"path": {"type": "PathPrefix", "value": lb.path}}],
        "backendRefs": [backend or _service_backend(ctx)],
    }
    if lb.session_persistence:
        rule["sessionPersistence"] = {
            "sessionName": ctx.spec.affinity.cookie_name,
            "type": "Cookie",
            "absoluteTimeout": fmt(ctx.spec.affinity.ttl),
            "cookieConfig": {"lifetimeType": "Permanent"},
        }
    spec: dict[str, Any] = {"parentRefs": [parent], "rules": [rule]}
    if lb.host:
        spec = {**spec, "hostnames": [lb.host]}
    return {
        "apiVersion": HTTP_ROUTE[0],
        "kind": HTTP_ROUTE[1],
        "metadata": ctx.meta(annotations=dict(lb.annotations) or None),
        "spec": spec,
    }


def _route_target(ctx: Context) -> dict[str, str]:
    return {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": ctx.name}


def _service_target(ctx: Context) -> dict[str, str]:
    return {"group": "", "kind": "Service", "name": ctx.name}


def backend_traffic_policy(ctx: Context) -> Manifest:
    spec, t = ctx.spec, ctx.t
    ready = spec.probes.readiness
    body: dict[str, Any] = {
        "targetRefs": [_route_target(ctx)],
        "timeout": {"http": {"connectionIdleTimeout": fmt(t.idle), "maxConnectionDuration": fmt(t.lifetime)}},
        "healthCheck": {
            "active": {
                "type": "HTTP",
                "http": {"path": ready.path, "expectedStatuses": [200]},
                "interval": fmt(ready.period),
                "timeout": fmt(ready.timeout),
                "healthyThreshold": 1,
                "unhealthyThreshold": ready.failure_threshold,
            }
        },
    }
    if spec.affinity.mode == "cookie":
        body["loadBalancer"] = {
            "type": "ConsistentHash",
            "consistentHash": {
                "type": "Cookie",
                "cookie": {"name": spec.affinity.cookie_name, "ttl": fmt(spec.affinity.ttl)},
            },
        }
    elif spec.affinity.mode == "clientIP":
        body["loadBalancer"] = {"type": "ConsistentHash", "consistentHash": {"type": "SourceIP"}}
    return {
        "apiVersion": BACKEND_TRAFFIC_POLICY[0],
        "kind": BACKEND_TRAFFIC_POLICY[1],
        "metadata": ctx.meta(),
        "spec": body,
    }


def gcp_backend_policy(ctx: Context) -> Manifest:
    default: dict[str, Any] = {
        # A lifetime cap for WebSockets, as with BackendConfig (I1, I14).
        "timeoutSec": ctx.t.lifetime,
        "connectionDraining": {"drainingTimeoutSec": ctx.t.lb_drain},
    }
    affinity = gce.session_affinity(ctx)
    if affinity is not None:
        # GCPBackendPolicy uses the same affinity type names as BackendConfig.
        default["sessionAffinity"] = {"type": affinity["affinityType"]}
        if "affinityCookieTtlSec" in affinity:
            default["sessionAffinity"]["cookieTtlSec"] = affinity["affinityCookieTtlSec"]
    return {
        "apiVersion": GCP_BACKEND_POLICY[0],
        "kind": GCP_BACKEND_POLICY[1],
        "metadata": ctx.meta(),
        "spec": {"default": default, "targetRef": _service_target(ctx)},
    }


def health_check_policy(ctx: Context) -> Manifest:
    hc = gce.health_check(ctx)
    return {
        "apiVersion": HEALTH_CHECK_POLICY[0],
        "kind": HEALTH_CHECK_POLICY[1],
        "metadata": ctx.meta(),
        "spec": {
            "default": {
                "checkIntervalSec": hc["checkIntervalSec"],
                "timeoutSec": hc["timeoutSec"],
                "healthyThreshold": hc["healthyThreshold"],
                "unhealthyThreshold": hc["unhealthyThreshold"],
                "config": {"type": "HTTP", "httpHealthCheck": {"port": hc["port"], "requestPath": hc["requestPath"]}},
            },
            "targetRef": _service_target(ctx),
        },
    }


def traefik_service(ctx: Context) -> Manifest:
    """The Service behind a sticky cookie: Traefik's Gateway provider has no affinity setting of
    its own, and HTTPRoute sessionPersistence is not in the standard channel it implements."""
    aff = ctx.spec.affinity
    cookie = {"name": aff.cookie_name, "httpOnly": True, "sameSite": "lax", "maxAge": aff.ttl}
    return {
        "apiVersion": TRAEFIK_SERVICE[0],
        "kind": TRAEFIK_SERVICE[1],
        "metadata": ctx.meta(),
        "spec": {"weighted": {"services": [{**_service_backend(ctx), "sticky": {"cookie": cookie}}]}},
    }


def render_traefik(ctx: Context) -> list[Manifest]:
    if ctx.spec.affinity.mode != "cookie":
        return [http_route(ctx)]
    backend = {"group": TRAEFIK_SERVICE[0].split("/")[0], "kind": TRAEFIK_SERVICE[1], "name": ctx.name}
    return [traefik_service(ctx), http_route(ctx, backend)]


def render_generic(ctx: Context) -> list[Manifest]:
    return [http_route(ctx)]


def render_envoy(ctx: Context) -> list[Manifest]:
    return [http_route(ctx), backend_traffic_policy(ctx)]


def render_gke(ctx: Context) -> list[Manifest]:
    return [http_route(ctx), gcp_backend_policy(ctx), health_check_policy(ctx)]


def _gateway_namespace(ctx: Context) -> Peers:
    # Most implementations run the Gateway's proxies in the Gateway's namespace.
    gw = ctx.spec.load_balancer.gateway
    return namespace_named(gw.namespace if gw is not None and gw.namespace else ctx.namespace)


GENERIC = Provider(
    LbProfile("gateway/generic", "Gateway API", 10, None, upstream_idle=UPSTREAM_IDLE_UNKNOWN),
    (HTTP_ROUTE,),
    render_generic,
    sources=_gateway_namespace,
)
ENVOY = Provider(
    LbProfile(
        "gateway/envoy",
        "Envoy Gateway",
        10,
        "BackendTrafficPolicy connectionIdleTimeout",
        lifetime_setting="BackendTrafficPolicy maxConnectionDuration",
    ),
    (HTTP_ROUTE, BACKEND_TRAFFIC_POLICY),
    render_envoy,
    # Envoy Gateway provisions its proxies in the controller's namespace by default.
    sources=lambda ctx: namespace_named("envoy-gateway-system"),
)
TRAEFIK = Provider(
    LbProfile(
        "gateway/traefik",
        "Traefik",
        10,  # it stops sending new connections to an unready endpoint within 0.2 s of the API write
        None,
        client_ip_affinity=False,  # a TraefikService's only affinity is its sticky cookie
        idle_limit=False,
        upstream_idle=90,  # serversTransport idleConnTimeout, 90 s by default
    ),
    (HTTP_ROUTE, TRAEFIK_SERVICE),
    render_traefik,
    sources=_gateway_namespace,
)
GKE = Provider(
    LbProfile(
        "gateway/gke",
        "GKE Gateway",
        20,
        None,
        lifetime_setting="GCPBackendPolicy timeoutSec",
        drain_setting="GCPBackendPolicy connectionDraining.drainingTimeoutSec",
        fixed_cookie_name="GCLB",
        upstream_idle=gce.GOOGLE_UPSTREAM_IDLE,
    ),
    (HTTP_ROUTE, GCP_BACKEND_POLICY, HEALTH_CHECK_POLICY),
    render_gke,
    sources=lambda ctx: GOOGLE_FRONT_ENDS,
)
