"""The PodDisruptionBudget."""

from __future__ import annotations

from wsfleet_operator import naming
from wsfleet_operator.render.context import Context, Manifest


def render(ctx: Context) -> Manifest:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": ctx.meta(),
        "spec": {
            "minAvailable": ctx.spec.disruption.min_available,
            "selector": {"matchLabels": naming.selector(ctx.wss)},
            # A pod that is not Ready serves nobody; letting drains evict it keeps a stuck
            # rollout from blocking node maintenance.
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }
