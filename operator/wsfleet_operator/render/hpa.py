"""The HorizontalPodAutoscaler: fast scale-up, slow and bounded scale-down.

Scale-down is what hurts a WebSocket fleet: every removed pod sends its clients
reconnecting. A 5 minute stabilisation and at most 50% per minute keep those
waves small; scale-up doubles at once because a saturated pod drops heartbeats.
"""

from __future__ import annotations

from typing import Any

from wsfleet_common import contract
from wsfleet_operator.model import ScalingRule
from wsfleet_operator.render.context import Context, Manifest


def _behavior(rule: ScalingRule) -> dict[str, Any]:
    return {
        "stabilizationWindowSeconds": rule.stabilization,
        "selectPolicy": "Max",
        "policies": [{"type": "Percent", "value": rule.percent, "periodSeconds": rule.period}],
    }


def render(ctx: Context) -> Manifest | None:
    a = ctx.spec.autoscaling
    if not a.enabled:
        return None
    metrics: list[dict[str, Any]] = [
        {"type": "Resource", "resource": {"name": name, "target": {"type": "Utilization", "averageUtilization": pct}}}
        for name, pct in (("cpu", a.cpu), ("memory", a.memory))
        if pct > 0
    ]
    if a.connections_per_pod is not None:
        metrics.append(
            {
                "type": "Pods",
                "pods": {
                    "metric": {"name": contract.METRIC_CONNECTIONS},
                    "target": {"type": "AverageValue", "averageValue": str(a.connections_per_pod)},
                },
            }
        )
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": ctx.meta(),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": ctx.name},
            "minReplicas": ctx.spec.replicas.min,
            "maxReplicas": ctx.spec.replicas.max,
            "metrics": metrics,
            "behavior": {"scaleUp": _behavior(a.scale_up), "scaleDown": _behavior(a.scale_down)},
        },
    }
