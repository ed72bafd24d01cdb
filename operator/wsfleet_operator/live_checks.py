"""`wsfleet validate`: check a live fleet from the outside, as its clients see it (the spec rules
are validation.py's).

Each check connects real python-socketio clients to a URL (the load balancer of a real cluster,
or the local e2e harness), prints what it measured and a verdict, and returns 0 (pass) or 1.

- affinity:          long-polling clients make many requests; each session must stay on one pod
                     (a lost Engine.IO session means the load balancer broke affinity)
- idle-timeout:      WebSocket clients stay idle for --seconds; none may be dropped
- graceful-shutdown: clients in a room count sequenced messages published through the HTTP API
                     while you roll the fleet; every client must see every message once, in order
- failover:          the same count while you kill a pod or a zone
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

import aiohttp
import socketio

from wsfleet_common import contract as c
from wsfleet_operator.accounting import Expect, Ledger, Received, account


@dataclass
class Probe:
    """One client: its pods, drops, and the room's sequence numbers it received."""

    url: str
    transports: list[str]
    room: str | None = None
    pods: list[str] = field(default_factory=list)
    drops: list[str] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)
    gaps: list[Any] = field(default_factory=list)
    reconnect_ms: list[float] = field(default_factory=list)
    unrecovered: int = 0
    raw_duplicates: int = 0  # delivered again by the transport (a replay overlapping live delivery), dropped
    session: str | None = None
    pos: dict[str, Any] = field(default_factory=dict)
    _dropped: float | None = None
    _ready: asyncio.Event = field(default_factory=asyncio.Event)

    async def connect(self) -> socketio.AsyncClient:
        # one cookie jar for the probe's life (aiohttp drops cookies of IP hosts unless unsafe)
        http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        sio = socketio.AsyncClient(reconnection_delay=0.2, reconnection_delay_max=2.0, http_session=http)
        sio.on(c.EVENT_SESSION, self._on_session)
        sio.on(c.EVENT_MESSAGE, self._on_message)
        sio.on(c.EVENT_GAP, self.gaps.append)
        sio.on("disconnect", self._on_disconnect)
        self._sio = sio

        def auth() -> dict[str, Any]:
            return {"session": self.session, "rooms": self.pos} if self.session else {}

        await sio.connect(self.url, transports=self.transports, auth=auth, wait_timeout=10)
        await asyncio.wait_for(self._ready.wait(), 10)
        return sio

    async def _on_session(self, s: dict[str, Any]) -> None:
        if self._dropped is not None:
            self.reconnect_ms.append((time.monotonic() - self._dropped) * 1000)
            self._dropped = None
        self.pods.append(s["pod"])
        self.session = s["session"]
        if self.room is not None:
            r = s["rooms"].get(self.room)
            if r is None:
                ack = await self._sio.call("join", {"room": self.room}, timeout=10)
                self.pos[self.room] = {"epoch": ack["epoch"], "offset": ack["offset"]}
            elif not r.get("recovered"):
                self.unrecovered += 1
        self._ready.set()

    def _on_message(self, m: dict[str, Any]) -> None:
        p = self.pos.get(m["room"])
        if p and p["epoch"] == m["epoch"] and m["offset"] <= p["offset"]:
            self.raw_duplicates += 1
            return
        self.pos[m["room"]] = {"epoch": m["epoch"], "offset": m["offset"]}
        if isinstance(m["data"], dict) and "seq" in m["data"]:
            self.seqs.append(m["data"]["seq"])

    def _on_disconnect(self, reason: Any = None) -> None:
        self.drops.append(str(reason))
        self._dropped = time.monotonic()

    async def close(self) -> None:
        await self._sio.shutdown()
        if self._sio.eio.http is not None:
            await self._sio.eio.http.close()


@dataclass
class Verdict:
    check: str
    passed: bool
    figures: dict[str, Any]
    problems: list[str]

    def print(self, out: TextIO) -> int:
        out.write(f"wsfleet validate {self.check}: {'PASS' if self.passed else 'FAIL'}\n")
        for k, v in self.figures.items():
            out.write(f"  {k}: {v}\n")
        for p in self.problems[:20]:
            out.write(f"  problem: {p}\n")
        return 0 if self.passed else 1


async def _many(n: int, make: Callable[[int], Probe]) -> tuple[list[Probe], list[socketio.AsyncClient]]:
    probes = [make(i) for i in range(n)]
    clients = [await p.connect() for p in probes]
    return probes, clients


async def affinity(url: str, clients: int = 5, seconds: float = 10.0) -> Verdict:
    """Long-polling sessions (a request every ~ping interval at least) must keep their pod."""
    probes, _ = await _many(clients, lambda i: Probe(url, ["polling"]))
    await asyncio.sleep(seconds)
    problems = [f"client {i}: dropped ({', '.join(p.drops)}), pods {p.pods}" for i, p in enumerate(probes) if p.drops]
    figures = {"clients": clients, "seconds": seconds, "sessions kept": clients - len(problems),
               "pods": sorted({p.pods[0] for p in probes})}  # fmt: skip
    for p in probes:
        await p.close()
    return Verdict("affinity", not problems, figures, problems)


async def idle_timeout(url: str, clients: int = 3, seconds: float = 180.0) -> Verdict:
    """Idle WebSocket clients (only Engine.IO heartbeats) must survive `seconds`."""
    probes, _ = await _many(clients, lambda i: Probe(url, ["websocket"]))
    await asyncio.sleep(seconds)
    problems = [f"client {i}: dropped {len(p.drops)}x ({', '.join(p.drops)})" for i, p in enumerate(probes) if p.drops]
    figures = {"clients": clients, "idle seconds": seconds, "drops": sum(len(p.drops) for p in probes)}
    for p in probes:
        await p.close()
    return Verdict("idle-timeout", not problems, figures, problems)


def _publish(url: str, key: str, room: str, seq: int) -> tuple[int | None, str]:
    """POST one sequenced message; its HTTP status (None: no answer) and, without one, why."""
    body = json.dumps({"room": room, "data": {"seq": seq}}).encode()
    req = urllib.request.Request(url.rstrip("/") + c.PUBLISH_PATH, body, method="POST",
                                 headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})  # fmt: skip
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return int(r.status), ""
    except urllib.error.HTTPError as e:  # an answer: 401 for a wrong key, 5xx from a gateway
        return int(e.code), ""
    except OSError as e:
        return None, type(e).__name__


ACTIONS = {"graceful-shutdown": "roll the fleet", "failover": "kill a pod or a zone"}


def expectation(check: str, planned: int, min_acknowledged: float, max_uncertain: int | None) -> Expect:
    """What each check excuses. A rollout done right fails no publish (max 0 without an answer);
    killing a pod fails the requests in flight on it, so failover allows 5% of the planned ones.
    A refused publish (4xx) is always a failure: the key or the URL is wrong."""
    if max_uncertain is None:
        max_uncertain = 0 if check == "graceful-shutdown" else max(1, planned // 20)
    return Expect(min_acknowledged=min_acknowledged, max_uncertain=max_uncertain, max_refused=0)


async def delivery(
    check: str,
    url: str,
    api_key: str,
    *,
    clients: int = 20,
    seconds: float = 60.0,
    rate: float = 5.0,
    room: str = "wsfleet-validate",
    min_acknowledged: float = 0.9,
    max_uncertain: int | None = None,
    progress: Callable[[str], object] = lambda line: None,
) -> Verdict:
    """Count sequenced messages at every client while the fleet is rolled (or a pod is killed).
    Fails unless enough publishes were acknowledged (`accounting` says why silence never passes)."""
    probes, _ = await _many(clients, lambda i: Probe(url, ["websocket"], room=room))
    planned = max(1, round(seconds * rate))
    progress(f"{clients} clients connected; publishing {planned} messages over {seconds:g}s: {ACTIONS[check]} now")
    ledger = Ledger([room])
    started = time.monotonic()
    for seq in range(1, planned + 1):
        status, why = await asyncio.to_thread(_publish, url, api_key, room, seq)
        ledger.record(room, seq, status, why)
        if seq == 1 and status in (401, 403):  # every later one would be refused too: stop now
            progress(f"the first publish was refused (HTTP {status}): check --api-key")
            break
        await asyncio.sleep(max(0.0, started + seq / rate - time.monotonic()))
    last = ledger.acknowledged[room][-1] if ledger.acknowledged[room] else None
    deadline = time.monotonic() + 10  # the last messages land; one still missing then is lost
    while last is not None and time.monotonic() < deadline and any(last not in p.seqs for p in probes):
        await asyncio.sleep(0.1)
    received = [Received(f"client {i} (pods {p.pods})", [room], {room: p.seqs}, p.raw_duplicates)
                for i, p in enumerate(probes)]  # fmt: skip
    result = account(ledger, received, expectation(check, planned, min_acknowledged, max_uncertain))
    problems = list(result.problems)
    for i, p in enumerate(probes):
        if p.gaps or p.unrecovered:
            problems.append(f"client {i}: {len(p.gaps)} gaps, {p.unrecovered} rooms not recovered")
    reconnects = sorted(ms for p in probes for ms in p.reconnect_ms)
    figures = {
        **result.figures, "reconnects": len(reconnects), "moved": sum(len(set(p.pods)) > 1 for p in probes),
        "reconnect ms p50": round(reconnects[len(reconnects) // 2]) if reconnects else None,
        "reconnect ms p99": round(reconnects[min(len(reconnects) - 1, int(len(reconnects) * 0.99))]) if reconnects else None,
    }  # fmt: skip
    for p in probes:
        await p.close()
    return Verdict(check, not problems, figures, problems)
