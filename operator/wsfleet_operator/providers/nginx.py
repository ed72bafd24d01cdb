"""ingress-nginx. Retired upstream (no releases since March 2026); supported for existing installs.

Every config reload replaces nginx workers, and WebSockets on old workers are cut
after worker-shutdown-timeout: the operations runbook covers that.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wsfleet_operator.providers.base import INGRESS, LbProfile, Provider, ingress, namespace_named

if TYPE_CHECKING:  # the renderers' input, for types only: render imports this layer
    from wsfleet_operator.render.context import Context, Manifest

P = "nginx.ingress.kubernetes.io/"


def ingress_annotations(ctx: Context) -> dict[str, str]:
    spec, t = ctx.spec, ctx.t
    lb, aff = spec.load_balancer, spec.affinity
    out = {
        # I1: both directions, or a one-way stream (server pushes only) still idles out.
        P + "proxy-read-timeout": str(t.idle),
        P + "proxy-send-timeout": str(t.idle),
        P + "proxy-buffering": "off",
        # Long-polling POSTs carry whole messages.
        P + "proxy-body-size": str(spec.max_payload_bytes),
        P + "limit-rps": str(lb.rate_limit.rps),
    }
    if lb.rate_limit.connections is not None:
        out[P + "limit-connections"] = str(lb.rate_limit.connections)
    if aff.mode == "cookie":
        cross_site = bool(lb.cors.allow_origins)
        out.update(
            {
                P + "affinity": "cookie",
                # persistent: scaling out never moves existing sessions.
                P + "affinity-mode": "persistent",
                P + "session-cookie-name": aff.cookie_name,
                P + "session-cookie-max-age": str(aff.ttl),
                P + "session-cookie-expires": str(aff.ttl),
                P + "session-cookie-path": lb.path,
                # After a pod drains, the next request lands elsewhere and the cookie follows it.
                P + "session-cookie-change-on-failure": "true",
                # Browser clients on another origin only send a SameSite=None cookie.
                P + "session-cookie-samesite": "None" if cross_site else "Lax",
            }
        )
        if cross_site:
            out[P + "session-cookie-secure"] = "true"
    elif aff.mode == "clientIP":
        out[P + "upstream-hash-by"] = "$remote_addr"
    if lb.cors.allow_origins:
        out.update(
            {
                P + "enable-cors": "true",
                P + "cors-allow-origin": ", ".join(lb.cors.allow_origins),
                P + "cors-allow-credentials": "true",
            }
        )
    return out


def render(ctx: Context) -> list[Manifest]:
    return [ingress(ctx, ingress_annotations(ctx), ctx.spec.load_balancer.class_name or "nginx")]


# The controller's pods proxy every connection; ingress-nginx's own install uses this namespace.
PROVIDER = Provider(
    # upstream-keepalive-timeout: ingress-nginx keeps an idle pooled connection to a pod 60 s by default
    LbProfile("nginx", "ingress-nginx", 10, "proxy-read-timeout / proxy-send-timeout", upstream_idle=60),
    (INGRESS,),
    render,
    sources=lambda ctx: namespace_named("ingress-nginx"),
)
