"""ServiceMonitor and PrometheusRule (Prometheus Operator), when enabled.

The alerts are the fleet's SLIs:
- connection churn: disconnects per minute above 1% of connected clients;
- heartbeat timeouts: clients lost to ping timeouts above 0.5% of connected clients per minute;
- availability: readiness answers that were healthy (draining pods excluded) below 99.9%;
and one about the workload itself:
- fast path off by a version mismatch: a pod runs the stock path because its installed libraries
  differ from the ones the fast path was written for (a custom image), which costs about three
  times the memory per connection and most of the throughput (docs/benchmarks.md).
"""

from __future__ import annotations

from typing import Any

from wsfleet_common import contract as c
from wsfleet_operator import naming
from wsfleet_operator.durations import format_seconds as fmt
from wsfleet_operator.render.context import Context, Manifest

CHURN_PER_MINUTE = 0.01
HEARTBEAT_TIMEOUTS_PER_MINUTE = 0.005
AVAILABILITY = 0.999


def _meta(ctx: Context, selector_labels: dict[str, str]) -> dict[str, Any]:
    """Child metadata plus the labels the user's Prometheus selects on (ours win on conflict)."""
    meta = ctx.meta()
    meta["labels"] = {**selector_labels, **meta["labels"]}
    return meta


def render_service_monitor(ctx: Context) -> Manifest | None:
    sm = ctx.spec.monitoring.service_monitor
    if not sm.enabled:
        return None
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": _meta(ctx, sm.labels),
        "spec": {
            "selector": {"matchLabels": naming.selector(ctx.wss)},
            "endpoints": [{"port": c.METRICS_PORT_NAME, "path": c.METRICS_PATH, "interval": fmt(sm.interval)}],
        },
    }


def expressions(ctx: Context) -> dict[str, str]:
    """The alert expressions, scoped to this fleet's Service."""
    sel = f'namespace="{ctx.namespace}", service="{ctx.name}"'
    connected = f"clamp_min(sum({c.METRIC_CONNECTIONS}{{{sel}}}), 1)"
    ready = f'{c.METRIC_HEALTH_CHECKS}{{{sel}, endpoint="ready"'
    return {
        "WsfleetConnectionChurnHigh": (
            f"sum(rate({c.METRIC_DISCONNECTS}{{{sel}}}[5m])) * 60 / {connected} > {CHURN_PER_MINUTE}"
        ),
        "WsfleetHeartbeatTimeoutsHigh": (
            f"sum(rate({c.METRIC_HEARTBEAT_TIMEOUTS}{{{sel}}}[5m])) * 60 / {connected} > {HEARTBEAT_TIMEOUTS_PER_MINUTE}"
        ),
        "WsfleetAvailabilityLow": (
            f'sum(rate({ready}, result="ok"}}[30m])) / '
            f'clamp_min(sum(rate({ready}, result!="draining"}}[30m])), 1e-9) < {AVAILABILITY}'
        ),
        "WsfleetFastPathVersionMismatch": f"max({c.METRIC_FAST_PATH_MISMATCH}{{{sel}}}) > 0",
    }


DESCRIPTIONS = {
    "WsfleetConnectionChurnHigh": (
        "warning",
        "10m",
        f"More than {CHURN_PER_MINUTE:.0%} of connected clients disconnect per minute. "
        "Look for LB idle timeouts, pod restarts or an ingress reload.",
    ),
    "WsfleetHeartbeatTimeoutsHigh": (
        "warning",
        "10m",
        f"More than {HEARTBEAT_TIMEOUTS_PER_MINUTE:.1%} of connected clients per minute are lost to ping timeouts. "
        "Look for saturated pods (CPU) or an LB that drops idle connections.",
    ),
    "WsfleetAvailabilityLow": (
        "critical",
        "5m",
        f"Readiness availability is below {AVAILABILITY:.1%} over 30 minutes (draining pods excluded). "
        "Check /health/database: Redis is the usual cause.",
    ),
    "WsfleetFastPathVersionMismatch": (
        "warning",
        "15m",
        "Pods run the stock path: their python-engineio, python-socketio, uvicorn, wsproto or redis differs from "
        "the version the fast path was written for (the workload's start-up warning names it). Expect about "
        "3x the memory per connection and less throughput; use the released image or the pinned versions.",
    ),
}


def render_prometheus_rule(ctx: Context) -> Manifest | None:
    pr = ctx.spec.monitoring.prometheus_rule
    if not pr.enabled:
        return None
    rules: list[dict[str, Any]] = []
    for alert, expr in expressions(ctx).items():
        severity, for_, summary = DESCRIPTIONS[alert]
        rules.append(
            {
                "alert": alert,
                "expr": expr,
                "for": for_,
                "labels": {"severity": severity},
                "annotations": {"summary": summary, "fleet": f"{ctx.namespace}/{ctx.name}"},
            }
        )
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": _meta(ctx, pr.labels),
        "spec": {"groups": [{"name": f"wsfleet.{ctx.name}", "rules": rules}]},
    }
