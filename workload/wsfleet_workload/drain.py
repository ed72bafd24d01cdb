"""The drain: how a pod leaves without dropping a message.

    preStop GET /lifecycle/prestop     -> unready at once (readiness 503), answer after
                                          WSFLEET_PRESTOP_SECONDS; new handshakes are still
                                          served: the load balancer is still catching up
    SIGTERM (with or without preStop)  -> unready (if not yet), new handshakes 503, then:
      announce   every client gets `server_shutdown` {reconnectAfterMs}, its own slot in the window
      close      at its slot each client's transport is closed under its Engine.IO session, in small
                 batches: the client reports "transport close" and reconnects (a Socket.IO
                 DISCONNECT makes the JS client give up, an Engine.IO CLOSE the Python client)
      done       the last client gone (or the window over): uvicorn's own shutdown runs, exit 0

Slots are spread uniformly at random over the first 80% of WSFLEET_DRAIN_SECONDS, so reconnects
arrive at the rest of the fleet as a trickle, not a wave; the remaining 20% is for the last
clients to go. All of this runs before uvicorn's shutdown, which would close every WebSocket with
code 1012 at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import Any, Protocol

from engineio import packet as eio_packet

from wsfleet_common import contract as c
from wsfleet_common.logs import EVENT_DRAIN
from wsfleet_workload.metrics import Metrics
from wsfleet_workload.rooms import Client, packet

log = logging.getLogger("wsfleet.drain")

SPREAD = 0.8  # share of the drain window over which closes are spread
TICK = 0.05  # seconds between close batches


class Clients(Protocol):
    """The clients the drain moves, and how it reaches them (hub.Hub; a test passes a plain object)."""

    clients: dict[str, Client]

    def send(self, client: Client, pkt: eio_packet.Packet) -> bool: ...

    async def close(self, client: Client, reason: str, *, flush: bool) -> None: ...


class Drain:
    def __init__(
        self,
        hub: Clients,
        metrics: Metrics,
        *,
        prestop_seconds: int,
        drain_seconds: int,
        pod: str,
        rng: random.Random | None = None,
    ) -> None:
        self.hub, self.metrics = hub, metrics
        self.prestop_seconds, self.drain_seconds, self.pod = prestop_seconds, drain_seconds, pod
        self.rng = rng or random.Random()
        self.phase = "serving"
        self.timeline: list[tuple[str, float, dict[str, Any]]] = []
        self._t0 = 0.0
        self._task: asyncio.Task[None] | None = None
        self.on_done: Callable[[], None] = lambda: None

    @property
    def draining(self) -> bool:
        """Unready: from the preStop call (or SIGTERM) on."""
        return self.phase != "serving"

    @property
    def refusing(self) -> bool:
        """New handshakes refused: once the drain runs (SIGTERM), not during preStop. preStop is
        the window in which the load balancer learns that the pod is unready (the kubelet's
        readiness probe fails failureThreshold times, the EndpointSlice changes, the load
        balancer follows), and until it has, it still sends new clients here. Measured on real
        nodes behind Traefik, which does not retry a refused request: clients sent here within
        a second of the preStop call failed their handshake. Served instead, they are moved
        with the rest when the drain starts, losing nothing."""
        return self.phase not in ("serving", "unready")

    def _enter(self, phase: str, **facts: Any) -> None:
        now = time.monotonic()
        if not self.timeline:
            self._t0 = now
        self.phase = phase
        self.timeline.append((phase, round(now - self._t0, 3), facts))
        log.info(
            "drain phase %s at +%.3fs %s",
            phase,
            now - self._t0,
            facts,
            extra={"event": EVENT_DRAIN, "phase": phase, **facts},
        )

    def mark_unready(self, trigger: str) -> None:
        if self.phase == "serving":
            self.metrics.draining.set(1)
            self._enter("unready", trigger=trigger, connections=len(self.hub.clients))

    async def prestop(self) -> float:
        """The preStop hook: unready now, answer after the preStop window."""
        self.mark_unready("preStop")
        started = time.monotonic()
        await asyncio.sleep(self.prestop_seconds)
        return time.monotonic() - started

    def start(self, trigger: str) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run(trigger))

    async def run(self, trigger: str) -> None:
        self.mark_unready(trigger)
        began = time.monotonic()
        clients = list(self.hub.clients.values())
        window = self.drain_seconds * SPREAD
        slots = sorted(self.rng.uniform(0, window) for _ in clients)
        self.rng.shuffle(clients)
        plan = list(zip(slots, clients, strict=True))
        for slot, client in plan:
            self.hub.send(client, packet(c.EVENT_SHUTDOWN, {"reconnectAfterMs": int(slot * 1000), "pod": self.pod}))
        self._enter("announced", clients=len(plan), window_seconds=round(window, 3))
        closed = batches = 0
        closing: list[asyncio.Task[None]] = []
        loop = asyncio.get_running_loop()
        i = 0
        while i < len(plan):
            due = time.monotonic() - began
            batch = []
            while i < len(plan) and plan[i][0] <= due:
                batch.append(plan[i][1])
                i += 1
            for client in batch:
                if client.sid in self.hub.clients:
                    # not awaited one by one: a polling session the LB has already moved away
                    # never polls again, and its close waits for a flush that never comes
                    closing.append(loop.create_task(self.hub.close(client, "server shutdown", flush=True)))
                    closed += 1
            batches += bool(batch)
            if i < len(plan):
                await asyncio.sleep(max(0.0, min(TICK, plan[i][0] - (time.monotonic() - began))))
        if closing:
            await asyncio.wait(closing, timeout=max(0.1, began + self.drain_seconds - time.monotonic()))
        self._enter("closed", closed=closed, batches=batches)
        deadline = began + self.drain_seconds
        while self.hub.clients and time.monotonic() < deadline:
            await asyncio.sleep(TICK)
        left = len(self.hub.clients)
        for client in list(self.hub.clients.values()):
            await self.hub.close(client, "server shutdown", flush=False)
        elapsed = time.monotonic() - began
        self.metrics.drain_seconds.observe(elapsed)
        self._enter("done", seconds=round(elapsed, 3), forced=left)
        self.on_done()
