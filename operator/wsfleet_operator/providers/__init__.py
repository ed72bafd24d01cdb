"""Load balancers: one module per provider, each holding everything the operator knows of it.

A provider is its timing profile (`LbProfile`: default preStop, its idle, lifetime and draining
settings, their limits, how long it pools idle connections to pods) and its renderer (the objects
it needs, the Service annotations, where its traffic comes from for the NetworkPolicy).
`registry.REGISTRY` is the one table of them.

Why this is not `render/providers/`: the profiles are inputs of timeouts.derive() and of the CEL
rules, which sit below render, and a provider's profile and renderer belong in one module. So the
package sits below timeouts; its renderers take render's `Context`, imported for types only.
"""

from __future__ import annotations

from wsfleet_operator.providers.base import UPSTREAM_IDLE_UNKNOWN, Kind, LbProfile, Provider
from wsfleet_operator.providers.registry import PROFILES, REGISTRY, all_kinds, profile_key, provider_for

__all__ = [
    "PROFILES",
    "REGISTRY",
    "UPSTREAM_IDLE_UNKNOWN",
    "Kind",
    "LbProfile",
    "Provider",
    "all_kinds",
    "profile_key",
    "provider_for",
]
