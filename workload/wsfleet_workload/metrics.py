"""Prometheus metrics, named by the shared contract so the operator's alert rules match them.

Each server instance owns its registry (tests run several in one process); ``/metrics`` on the
metrics port serves it, never on the public port.
"""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, GCCollector, Histogram

from wsfleet_common import contract as c
from wsfleet_common.logs import EVENT_REFUSED

log = logging.getLogger("wsfleet.refused")


def _name(metric: str) -> str:
    # prometheus-client appends _total to counters itself
    return metric.removesuffix("_total")


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.connections = Gauge(c.METRIC_CONNECTIONS, "Connected Socket.IO clients on this pod.", registry=r)
        self.connects = Counter(_name(c.METRIC_CONNECTS), "Accepted Socket.IO connections.", registry=r)
        self.disconnects = Counter(_name(c.METRIC_DISCONNECTS), "Disconnects by reason.", ["reason"], registry=r)
        self.heartbeat_timeouts = Counter(
            _name(c.METRIC_HEARTBEAT_TIMEOUTS), "Clients dropped because no pong came in time.", registry=r
        )
        self.health_checks = Counter(
            _name(c.METRIC_HEALTH_CHECKS), "Health endpoint answers.", ["endpoint", "result"], registry=r
        )
        self.messages_in = Counter(
            _name(c.METRIC_MESSAGES_IN), "Messages published (by clients and the HTTP API).", ["source"], registry=r
        )
        self.messages_out = Counter(
            _name(c.METRIC_MESSAGES_OUT),
            "Messages delivered to clients, by path: live and written to the WebSocket at once (direct), "
            "live and queued (long-polling, a WebSocket being set up), or replayed on recovery (replay).",
            ["path"],
            registry=r,
        )
        self.replay = Counter(
            _name(c.METRIC_REPLAY),
            "Room recoveries on reconnect: hit (all missed messages replayed) or miss.",
            ["result"],
            registry=r,
        )
        self.drain_seconds = Histogram(
            c.METRIC_DRAIN_SECONDS,
            "Time from drain start to the last client closed.",
            buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300),
            registry=r,
        )
        self.redis_errors = Counter(
            _name(c.METRIC_REDIS_ERRORS), "Redis commands or listener reads that failed.", ["operation"], registry=r
        )
        self.handshake_rejections = Counter(
            _name(c.METRIC_HANDSHAKE_REJECTIONS), "Handshakes refused.", ["reason"], registry=r
        )
        self.rejected = Counter(
            _name(c.METRIC_REJECTED),
            "Client and API requests refused, by request and reason.",
            ["request", "reason"],
            registry=r,
        )
        self.slow_consumers = Counter(
            _name(c.METRIC_SLOW_CONSUMERS), "Clients cut off because their send queue was full.", registry=r
        )
        self.draining = Gauge(c.METRIC_DRAINING, "1 while this pod drains.", registry=r)
        self.listener_up = Gauge(c.METRIC_LISTENER_UP, "1 while the Redis fan-out listener is subscribed.", registry=r)
        # The garbage collector: python_gc_collections_total{generation} and what they found, and
        # the bursts of connections it paused for (collector.py)
        GCCollector(registry=r)
        self.gc_bursts = Counter(
            _name(c.METRIC_GC_BURSTS), "Bursts of connections the garbage collector paused for.", registry=r
        )
        self.fast_path = Gauge(c.METRIC_FAST_PATH, "1 while the fast path runs, 0 on the stock path.", registry=r)
        self.fast_path_mismatch = Gauge(
            c.METRIC_FAST_PATH_MISMATCH,
            "1 per library whose installed version differs from the one the fast path was written for.",
            ["library", "installed", "expected"],
            registry=r,
        )


def refused(
    metrics: Metrics, what: str, reason: str, message: str, level: int = logging.WARNING, **fields: Any
) -> None:
    """Count a refusal and log it as a searchable event: event=refused, what, reason, and the
    correlation fields (ip, connection, client, room). Handshakes have their own counter."""
    if what == "handshake":
        metrics.handshake_rejections.labels(reason).inc()
    else:
        metrics.rejected.labels(what, reason).inc()
    log.log(level, "refused %s (%s): %s", what, reason, message, extra={"event": EVENT_REFUSED, "what": what,
                                                                       "reason": reason, **fields})  # fmt: skip
