"""Pure renderers: (WebSocketService) -> the manifests of every child object.

Nothing here talks to the API. A renderer returns None when its object must not
exist (an HPA while autoscaling is disabled), and the reconciler deletes it.
The order of render_all() is the apply order: the Service and load-balancer
objects come before the Deployment, because ALB and NEG readiness gates are
injected only into pods created after them.
"""

from __future__ import annotations

from collections.abc import Callable

from wsfleet_operator.model import WebSocketService
from wsfleet_operator.providers import registry
from wsfleet_operator.render import configmap, deployment, hpa, monitoring, network_policy, pdb, service
from wsfleet_operator.render.context import Context, Manifest

SingleRenderer = Callable[[Context], Manifest | None]

# The NetworkPolicy comes first: no pod of the fleet exists before its policy does.
BEFORE_PROVIDER: tuple[SingleRenderer, ...] = (network_policy.render, configmap.render, service.render)
AFTER_PROVIDER: tuple[SingleRenderer, ...] = (
    deployment.render,
    hpa.render,
    pdb.render,
    monitoring.render_service_monitor,
    monitoring.render_prometheus_rule,
)

# Kinds rendered outside the provider registry, for owned-object cleanup.
CORE_KINDS = (
    ("v1", "ConfigMap"),
    ("v1", "Service"),
    ("apps/v1", "Deployment"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("policy/v1", "PodDisruptionBudget"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    network_policy.KIND,
)


def render_context(ctx: Context) -> list[Manifest]:
    out = [m for r in BEFORE_PROVIDER if (m := r(ctx)) is not None]
    out += registry.provider_for(ctx.spec).render(ctx)
    out += [m for r in AFTER_PROVIDER if (m := r(ctx)) is not None]
    return out


def render_all(wss: WebSocketService) -> list[Manifest]:
    """Every child object, in apply order."""
    return render_context(Context.of(wss))


def owned_kinds() -> tuple[tuple[str, str], ...]:
    return CORE_KINDS + registry.all_kinds()
