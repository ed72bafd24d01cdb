"""The Grafana dashboard for a fleet and the operator, generated from the metric names.

Written to deploy/monitoring/grafana-dashboard.json by ``wsfleet crd`` (checked by ``--check``);
the panels name metrics through the contract's constants, so a renamed metric changes the
dashboard, and tests/unit/test_promql.py checks every expression with promtool and every metric
against what the workload and the operator export.

Variables: ``$datasource`` (Prometheus), ``$namespace`` and ``$service`` (the fleet: the
Service the ServiceMonitor scrapes through).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wsfleet_common import contract as c

FILE = Path("deploy") / "monitoring" / "grafana-dashboard.json"
FLEET = 'namespace="$namespace", service="$service"'


@dataclass(frozen=True)
class Panel:
    title: str
    exprs: tuple[tuple[str, str], ...]  # (PromQL, legend)
    unit: str = "short"
    description: str = ""


def _sum_rate(metric: str, by: str = "", window: str = "$__rate_interval") -> str:
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping} (rate({metric}{{{FLEET}}}[{window}]))"


ROWS: tuple[tuple[str, tuple[Panel, ...]], ...] = (
    (
        "Connections",
        (
            Panel("Connected clients per pod", ((f"sum by (pod) ({c.METRIC_CONNECTIONS}{{{FLEET}}})", "{{pod}}"),),
                  description="Balanced within the spread expected after the last rollout."),
            Panel("Connects and disconnects per second", (
                (_sum_rate(c.METRIC_CONNECTS), "connects"),
                (_sum_rate(c.METRIC_DISCONNECTS, "reason"), "disconnect: {{reason}}"),
            ), unit="ops", description="transport_close or ping_timeout outside rollouts: see the runbook, High churn."),
            Panel("Churn: disconnects per minute / connected", ((
                f"{_sum_rate(c.METRIC_DISCONNECTS, window='5m')} * 60 / clamp_min(sum({c.METRIC_CONNECTIONS}{{{FLEET}}}), 1)",
                "churn",
            ),), unit="percentunit", description="WsfleetConnectionChurnHigh fires above 1% for 10 minutes."),
            Panel("Heartbeat timeouts per second", ((_sum_rate(c.METRIC_HEARTBEAT_TIMEOUTS), "ping timeouts"),),
                  unit="ops"),
        ),
    ),
    (
        "Messages",
        (
            Panel("Messages in per second", ((_sum_rate(c.METRIC_MESSAGES_IN, "source"), "{{source}}"),), unit="ops"),
            Panel("Deliveries per second", ((_sum_rate(c.METRIC_MESSAGES_OUT, "path"), "{{path}}"),), unit="ops",
                  description="direct: written to an established WebSocket; queued: long-polling; replay: recovery."),
            Panel("Replay on reconnect", ((_sum_rate(c.METRIC_REPLAY, "result"), "{{result}}"),), unit="ops",
                  description="miss: a client's history was gone (TTL, max messages, Redis failover)."),
            Panel("Slow consumers cut off per second", ((_sum_rate(c.METRIC_SLOW_CONSUMERS), "cut off"),),
                  unit="ops"),
        ),
    ),
    (
        "Admission and health",
        (
            Panel("Handshakes refused per second", ((_sum_rate(c.METRIC_HANDSHAKE_REJECTIONS, "reason"), "{{reason}}"),),
                  unit="ops", description="draining during rollouts is expected; rate_limit_* is not."),
            Panel("Requests refused per second", ((_sum_rate(c.METRIC_REJECTED, "request, reason"),
                                                   "{{request}}: {{reason}}"),), unit="ops"),
            Panel("Readiness availability (30 m, draining excluded)", ((
                f'sum(rate({c.METRIC_HEALTH_CHECKS}{{{FLEET}, endpoint="ready", result="ok"}}[30m])) / '
                f'clamp_min(sum(rate({c.METRIC_HEALTH_CHECKS}{{{FLEET}, endpoint="ready", result!="draining"}}[30m])), 1e-9)',
                "available",
            ),), unit="percentunit", description="WsfleetAvailabilityLow fires below 99.9% for 5 minutes."),
            Panel("Pods draining, Redis listener up", (
                (f"sum({c.METRIC_DRAINING}{{{FLEET}}})", "draining"),
                (f"min({c.METRIC_LISTENER_UP}{{{FLEET}}})", "listener up (min over pods)"),
            )),
            Panel("Drain duration p50 / p99", (
                (f"histogram_quantile(0.5, sum by (le) (rate({c.METRIC_DRAIN_SECONDS}_bucket{{{FLEET}}}[1h])))", "p50"),
                (f"histogram_quantile(0.99, sum by (le) (rate({c.METRIC_DRAIN_SECONDS}_bucket{{{FLEET}}}[1h])))", "p99"),
            ), unit="s", description="Must stay below shutdown.drain; the grace period adds the buffer."),
            Panel("Redis errors per second", ((_sum_rate(c.METRIC_REDIS_ERRORS, "operation"), "{{operation}}"),),
                  unit="ops"),
        ),
    ),
    (
        "Operator",
        (
            Panel("Reconciles per second", (
                ("sum by (result) (rate(wsfleet_operator_reconciles_total[$__rate_interval]))", "{{result}}"),
            ), unit="ops"),
            Panel("Reconcile duration p99", ((
                "histogram_quantile(0.99, sum by (le) (rate(wsfleet_operator_reconcile_duration_seconds_bucket[5m])))",
                "p99",
            ),), unit="s"),
            Panel("API writes per second", (
                ("sum by (verb, kind) (rate(wsfleet_operator_api_writes_total[$__rate_interval]))", "{{verb}} {{kind}}"),
            ), unit="ops", description="Zero at rest: a no-op resync writes nothing."),
            Panel("Operator errors per second", (
                ("sum by (kind) (rate(wsfleet_operator_errors_total[$__rate_interval]))", "{{kind}}"),
            ), unit="ops"),
        ),
    ),
)  # fmt: skip


def expressions() -> list[str]:
    return [expr for _, panels in ROWS for p in panels for expr, _ in p.exprs]


def _variable(name: str, query: str) -> dict[str, Any]:
    return {
        "name": name,
        "type": "query",
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "query": {"query": query, "refId": name},
        "definition": query,
        "refresh": 2,
        "sort": 1,
    }


def dashboard() -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    y, pid = 0, 1
    for row, row_panels in ROWS:
        panels.append({"id": pid, "type": "row", "title": row, "collapsed": False,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}})  # fmt: skip
        pid, y = pid + 1, y + 1
        for i, p in enumerate(row_panels):
            panels.append(
                {
                    "id": pid,
                    "type": "timeseries",
                    "title": p.title,
                    "description": p.description,
                    "datasource": {"type": "prometheus", "uid": "${datasource}"},
                    "gridPos": {"h": 8, "w": 12, "x": 12 * (i % 2), "y": y + 8 * (i // 2)},
                    "fieldConfig": {"defaults": {"unit": p.unit}, "overrides": []},
                    "targets": [
                        {"refId": chr(ord("A") + j), "expr": expr, "legendFormat": legend}
                        for j, (expr, legend) in enumerate(p.exprs)
                    ],
                }
            )
            pid += 1
        y += 8 * ((len(row_panels) + 1) // 2)
    return {
        "title": "wsfleet",
        "uid": "wsfleet",
        "description": "A wsfleet WebSocketService fleet and the operator. Generated by `wsfleet crd`.",
        "tags": ["wsfleet", "websocket", "socket.io"],
        "schemaVersion": 39,
        "editable": True,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "templating": {
            "list": [
                {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"},
                _variable("namespace", f"label_values({c.METRIC_CONNECTIONS}, namespace)"),
                _variable("service", f'label_values({c.METRIC_CONNECTIONS}{{namespace="$namespace"}}, service)'),
            ]
        },
        "panels": panels,
    }


def text() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


def write(root: Path) -> list[Path]:
    path = root / FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text())
    return [path]


def stale(root: Path) -> list[Path]:
    path = root / FILE
    return [] if path.exists() and path.read_text() == text() else [path]
