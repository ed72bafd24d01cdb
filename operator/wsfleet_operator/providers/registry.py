"""The one provider table: profile key -> provider (its timing profile and its renderer).

Adding a load balancer is one module (a `Provider` with its `LbProfile`, its renderer, its
Service annotations and where its traffic comes from) and one entry here; timeouts.derive(), the
CEL rules, the docs' provider table and the renderers all read this table.
"""

from __future__ import annotations

from wsfleet_operator.model import WebSocketServiceSpec
from wsfleet_operator.providers import alb, gateway, gce, nginx, none
from wsfleet_operator.providers.base import Kind, LbProfile, Provider

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
        none.PROVIDER,
    )
}

# The profiles alone, in the registry's order: a view of REGISTRY, not a second table.
PROFILES: dict[str, LbProfile] = {key: p.profile for key, p in REGISTRY.items()}


def profile_key(spec: WebSocketServiceSpec) -> str:
    lb = spec.load_balancer
    return f"gateway/{lb.implementation}" if lb.provider == "gateway" else lb.provider


def provider_for(spec: WebSocketServiceSpec) -> Provider:
    return REGISTRY[profile_key(spec)]


def all_kinds() -> tuple[Kind, ...]:
    """Every kind any provider renders, for cleaning up after a provider switch."""
    seen: dict[Kind, None] = {}
    for p in REGISTRY.values():
        seen.update(dict.fromkeys(p.kinds))
    return tuple(seen)
