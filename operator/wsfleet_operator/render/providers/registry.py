"""Provider name -> renderer. Adding a load balancer is one module and one line here.

The keys are the timing profile keys of timeouts.PROFILES; a test checks both
tables list the same providers.
"""

from __future__ import annotations

from wsfleet_operator.render.context import Context, Manifest
from wsfleet_operator.render.providers import alb, gateway, gce, nginx
from wsfleet_operator.render.providers.base import Kind, Provider
from wsfleet_operator.timeouts import profile_key


def _nothing(ctx: Context) -> list[Manifest]:
    return []


NONE = Provider("none", (), _nothing)

REGISTRY: dict[str, Provider] = {
    p.key: p
    for p in (
        nginx.PROVIDER,
        alb.PROVIDER,
        gce.PROVIDER,
        gateway.GENERIC,
        gateway.ENVOY,
        gateway.GKE,
        gateway.TRAEFIK,
        NONE,
    )
}


def provider_for(ctx: Context) -> Provider:
    return REGISTRY[profile_key(ctx.spec)]


def all_kinds() -> tuple[Kind, ...]:
    """Every kind any provider renders, for cleaning up after a provider switch."""
    seen: dict[Kind, None] = {}
    for p in REGISTRY.values():
        seen.update(dict.fromkeys(p.kinds))
    return tuple(seen)
