"""The Service in front of the workload pods."""

from __future__ import annotations

from typing import Any

from wsfleet_common import contract
from wsfleet_operator import naming
from wsfleet_operator.providers import registry
from wsfleet_operator.render.context import Context, Manifest


def render(ctx: Context) -> Manifest:
    spec = ctx.spec
    body: dict[str, Any] = {
        "type": "ClusterIP",
        "selector": naming.selector(ctx.wss),
        "ports": [
            {
                "name": contract.PORT_NAME,
                "port": spec.port,
                "targetPort": contract.PORT_NAME,
                "protocol": "TCP",
                "appProtocol": "http",
            },
            {
                "name": contract.METRICS_PORT_NAME,
                "port": spec.metrics_port,
                "targetPort": contract.METRICS_PORT_NAME,
                "protocol": "TCP",
            },
        ],
    }
    # Only without a proxy in front does kube-proxy's own affinity decide the backend; the
    # proxies route to endpoints directly and bring their own affinity.
    if spec.load_balancer.provider == "none" and spec.affinity.mode == "clientIP":
        body["sessionAffinity"] = "ClientIP"
        body["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": spec.affinity.ttl}}
    annotations = registry.provider_for(ctx.spec).service_annotations(ctx)
    return {"apiVersion": "v1", "kind": "Service", "metadata": ctx.meta(annotations=annotations), "spec": body}
