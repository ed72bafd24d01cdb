"""GKE Ingress with a BackendConfig.

For WebSockets through the external Application Load Balancer, BackendConfig
timeoutSec is the *lifetime* of a connection, idle or not. Its default (30 s)
kills every socket at 30 s; we set it to maxConnectionLifetime (I1, I14).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from wsfleet_operator.providers.base import GOOGLE_FRONT_ENDS, INGRESS, Kind, LbProfile, Provider, ingress

if TYPE_CHECKING:  # the renderers' input, for types only: render imports this layer
    from wsfleet_operator.render.context import Context, Manifest

BACKEND_CONFIG: Kind = ("cloud.google.com/v1", "BackendConfig")
INGRESS_CLASS_ANNOTATION = "kubernetes.io/ingress.class"


def health_check(ctx: Context) -> dict[str, Any]:
    ready = ctx.spec.probes.readiness
    return {
        "checkIntervalSec": ready.period,
        "timeoutSec": ready.timeout,
        "healthyThreshold": 1,
        "unhealthyThreshold": ready.failure_threshold,
        "type": "HTTP",
        "requestPath": ready.path,
        "port": ctx.spec.port,
    }


def session_affinity(ctx: Context) -> dict[str, Any] | None:
    aff = ctx.spec.affinity
    if aff.mode == "cookie":
        return {"affinityType": "GENERATED_COOKIE", "affinityCookieTtlSec": aff.ttl}
    if aff.mode == "clientIP":
        return {"affinityType": "CLIENT_IP"}
    return None


def backend_config(ctx: Context) -> Manifest:
    t = ctx.t
    spec: dict[str, Any] = {
        "timeoutSec": t.lifetime,
        "connectionDraining": {"drainingTimeoutSec": t.lb_drain},
        "healthCheck": health_check(ctx),
    }
    affinity = session_affinity(ctx)
    if affinity is not None:
        spec["sessionAffinity"] = affinity
    return {"apiVersion": BACKEND_CONFIG[0], "kind": BACKEND_CONFIG[1], "metadata": ctx.meta(), "spec": spec}


def render(ctx: Context) -> list[Manifest]:
    # GKE selects its controller by the legacy annotation; ingressClassName is not read by it.
    cls = ctx.spec.load_balancer.class_name or "gce"
    return [backend_config(ctx), ingress(ctx, {INGRESS_CLASS_ANNOTATION: cls}, None)]


def service_annotations(ctx: Context) -> dict[str, str]:
    return {
        "cloud.google.com/backend-config": json.dumps({"default": ctx.name}),
        "cloud.google.com/neg": json.dumps({"ingress": True}),
    }


# Google's load balancers keep an idle connection to a backend 600 s; it cannot be set.
GOOGLE_UPSTREAM_IDLE = 600

PROVIDER = Provider(
    LbProfile(
        "gce",
        "GKE Ingress",
        20,
        None,
        lifetime_setting="BackendConfig timeoutSec",
        drain_setting="BackendConfig connectionDraining.drainingTimeoutSec",
        fixed_cookie_name="GCLB",
        upstream_idle=GOOGLE_UPSTREAM_IDLE,
    ),
    (INGRESS, BACKEND_CONFIG),
    render,
    service_annotations,
    sources=lambda ctx: GOOGLE_FRONT_ENDS,
)
