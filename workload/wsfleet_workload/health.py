"""Health endpoints. Each answer is JSON that says why.

/health/live      the event loop answered (this handler ran) and how late its ticks are; never Redis
/health/startup   start-up steps; passes once the server serves (Redis may still be coming: a Redis
                  outage must make pods unready, not crash-loop them at start)
/health/ready     503 while draining, or while the fan-out listener is not subscribed and answering
/health/database  Redis PING (with its latency) and the listener's liveness
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from wsfleet_workload.drain import Drain
from wsfleet_workload.fanout import Listener
from wsfleet_workload.hub import Hub

Answer = tuple[int, dict[str, Any]]


class Health:
    def __init__(self, pod: str, redis: Redis, listener: Listener, drain: Drain, hub: Hub) -> None:
        self.pod, self.redis, self.listener, self.drain, self.hub = pod, redis, listener, drain, hub
        self.steps: dict[str, bool] = {"config": True, "serving": False, "listener": False}
        self.started = time.monotonic()
        self.lag = 0.0

    async def tick(self, period: float = 0.5) -> None:
        """Measure event-loop lag: how late a sleep(period) wakes up."""
        while True:
            before = time.monotonic()
            await asyncio.sleep(period)
            self.lag = max(0.0, time.monotonic() - before - period)
            self.steps["listener"] = self.steps["listener"] or self.listener.connected_once

    def _listener(self) -> dict[str, Any]:
        li = self.listener
        return {
            "alive": li.alive,
            "subscribed": li.up,
            "rooms": len(li.channels),
            "lastHeartbeatSecondsAgo": round(time.monotonic() - li.last_heartbeat, 3) if li.last_heartbeat else None,
            "outages": li.outages,
            "error": li.last_error or None,
        }

    def live(self) -> Answer:
        return 200, {"status": "ok", "pod": self.pod, "eventLoopLagSeconds": round(self.lag, 4)}

    def startup(self) -> Answer:
        ok = self.steps["config"] and self.steps["serving"]
        return (200 if ok else 503), {
            "status": "started" if ok else "starting",
            "steps": self.steps,
            "uptimeSeconds": round(time.monotonic() - self.started, 3),
        }

    def ready(self) -> Answer:
        body: dict[str, Any] = {"pod": self.pod, "connections": len(self.hub.clients), "listener": self._listener()}
        if self.drain.draining:
            return 503, {"status": "draining", "phase": self.drain.phase, **body}
        if not self.listener.alive:
            return 503, {"status": "unavailable", "reason": "the Redis fan-out listener is not alive", **body}
        return 200, {"status": "ready", **body}

    async def database(self) -> Answer:
        started = time.monotonic()
        try:
            await asyncio.wait_for(self.redis.ping(), 1.0)
            ping: dict[str, Any] = {"ok": True, "latencyMs": round((time.monotonic() - started) * 1000, 2)}
        except (RedisError, OSError, TimeoutError) as e:
            ping = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        ok = ping["ok"] and self.listener.alive
        return (200 if ok else 503), {
            "status": "ok" if ok else "unavailable",
            "redis": ping,
            "listener": self._listener(),
        }
