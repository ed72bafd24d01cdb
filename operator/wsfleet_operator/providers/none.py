"""No load balancer object: the user routes to the Service with a load balancer of their own.

The operator knows nothing of that load balancer's timing, so the profile assumes the worst it
can: a pooled-connection idle time as long as Envoy's default, and nothing rendered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wsfleet_operator.providers.base import UPSTREAM_IDLE_UNKNOWN, LbProfile, Provider

if TYPE_CHECKING:  # the renderers' input, for types only: render imports this layer
    from wsfleet_operator.render.context import Context, Manifest


def render(ctx: Context) -> list[Manifest]:
    return []


PROVIDER = Provider(LbProfile("none", "your load balancer", 10, None, upstream_idle=UPSTREAM_IDLE_UNKNOWN), (), render)
