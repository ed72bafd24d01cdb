"""Clients and a publisher for fleet tests, and the one check that matters: every client holds
every published sequence number of each of its rooms, once, in order.

A Crowd mixes the official JS socket.io-client (tests/js/fleet-client.mjs, many sockets per Node
process) with python-socketio AsyncClients (one event loop on a thread), websocket and polling.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.processes import JsFleet, http
from tests.support.pyclient import LoopThread, PyClient
from tests.support.secrets import API_KEY
from wsfleet_workload import contract as c


class Publisher(threading.Thread):
    """Sequenced messages to rooms through the load balancer at `rate` per second (all rooms
    together); keeps what was accepted, and what failed in flight as uncertain."""

    def __init__(self, url: str, rooms: list[str], rate: float = 25.0) -> None:
        super().__init__(daemon=True)
        self.url, self.rooms, self.period = url, rooms, 1.0 / rate
        self.stop_flag = threading.Event()
        self.sent: dict[str, list[int]] = {r: [] for r in rooms}
        # A request that failed in flight (the process died under it) may have been published
        # or not: at-least-once from the publisher's side. Clients may hold these, or not.
        self.uncertain: dict[str, set[int]] = {r: set() for r in rooms}

    def run(self) -> None:
        seq = 0
        next_at = time.monotonic()
        while not self.stop_flag.is_set():
            seq += 1
            for room in self.rooms:
                try:
                    status, _, _ = http("POST", self.url + c.PUBLISH_PATH, {"room": room, "data": {"seq": seq}},
                                        {"Authorization": f"Bearer {API_KEY}"}, timeout=5)  # fmt: skip
                except OSError:  # a timeout or a reset: published or not, we cannot know
                    status = 0
                if status == 200:
                    self.sent[room].append(seq)
                else:
                    self.uncertain[room].add(seq)
                next_at += self.period
                time.sleep(max(0.0, next_at - time.monotonic()))

    def finish(self) -> Publisher:
        self.stop_flag.set()
        self.join(10)
        return self

    def certain(self, room: str, got: list[int]) -> list[int]:
        return [s for s in got if s not in self.uncertain[room]]


def publish_during(url: str, rooms: list[str], event: Callable[[], object], *, rate: float = 25.0,
                   before: float = 1.0, after: float = 2.0) -> Publisher:  # fmt: skip
    """Publish before, during and after `event`; return once the last messages had time to land."""
    pub = Publisher(url, rooms, rate=rate)
    pub.start()
    time.sleep(before)
    event()
    time.sleep(after)
    pub.finish()
    time.sleep(1.5)
    return pub


@dataclass
class Seen:
    """One client, as the checks see it, whatever its library."""

    kind: str  # js-websocket, js-polling, py-websocket, py-polling
    pods: list[str]
    seqs: dict[str, list[int]]
    rooms: list[str]
    connected: bool
    gaps: list[Any]
    unrecovered: int
    dups: int
    shutdowns: int
    reasons: dict[str, int]
    connect_errors: int
    reconnect_ms: list[float]


@dataclass
class Crowd:
    url: str
    workdir: Path
    loop: LoopThread = field(default_factory=LoopThread)
    fleets: list[tuple[JsFleet, list[str], str]] = field(default_factory=list)
    py: list[PyClient] = field(default_factory=list)

    def js(self, clients: int, rooms: list[str], transports: str = "websocket") -> Crowd:
        self.fleets.append((JsFleet(self.workdir, self.url, clients, rooms, transports), rooms, transports))
        return self

    def python(self, rooms: list[str], transports: str = "websocket", count: int = 1) -> Crowd:
        for _ in range(count):
            client = PyClient(self.url, rooms, transports=transports.split(","))
            self.py.append(client)
            self.loop.run(client.connect(), timeout=60)
        return self

    def wait_ready(self, timeout: float = 120) -> Crowd:
        for fleet, _, _ in self.fleets:
            fleet.wait_ready(timeout)
        return self

    @property
    def size(self) -> int:
        return sum(f.clients for f, _, _ in self.fleets) + len(self.py)

    def seen(self) -> list[Seen]:
        out: list[Seen] = []
        for fleet, rooms, transports in self.fleets:
            for s in fleet.summary():
                out.append(Seen(
                    f"js-{transports.split(',')[0]}", s["pods"], s["seqs"], rooms, s["connected"], s["gaps"],
                    s["unrecovered"], s["dups"], s["shutdowns"], s["reasons"], s["connectErrors"], s["reconnectMs"],
                ))  # fmt: skip
        for p in self.py:
            reasons: dict[str, int] = {}
            for r in p.reasons:
                reasons[r] = reasons.get(r, 0) + 1
            unrecovered = sum(
                1 for s in p.sessions[1:] for room, r in s["rooms"].items() if room != "*" and not r.get("recovered")
            )
            out.append(Seen(
                f"py-{p.transports[0]}", [s["pod"] for s in p.sessions], dict(p.seqs), p.rooms, p.sio.connected,
                p.gaps, unrecovered, p.dups, len(p.shutdowns), reasons, len(p.connect_errors), p.reconnect_ms,
            ))  # fmt: skip
        return out

    def close(self) -> None:
        for fleet, _, _ in self.fleets:
            fleet.stop()
        for p in self.py:
            self.loop.run(p.close())
        self.loop.close()


def report(name: str, figures: dict[str, Any]) -> None:
    """Append figures to $WSFLEET_E2E_REPORT (JSON lines) when set: docs/fleet.md is made from it."""
    path = os.environ.get("WSFLEET_E2E_REPORT")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"scenario": name, **figures}) + "\n")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def verify(pub: Publisher, seen: list[Seen], *, gone: set[str] = frozenset()) -> dict[str, Any]:  # type: ignore[assignment]
    """Assert zero loss, order, no gaps, no failed reconnect; return the figures."""
    reconnects: list[float] = []
    stats: dict[str, Any] = {"clients": len(seen), "lost": 0, "duplicates": 0, "reasons": {}, "moved": 0}
    for i, s in enumerate(seen):
        assert s.connected, f"client {i} ({s.kind}) is not connected: {s.reasons}"
        assert s.pods[-1] not in gone, f"client {i} ({s.kind}) is still on {s.pods[-1]}"
        assert s.gaps == [], f"client {i} ({s.kind}) saw gaps {s.gaps}"
        assert s.unrecovered == 0, f"client {i} ({s.kind}) was not recovered"
        assert s.connect_errors == 0, f"client {i} ({s.kind}): {s.connect_errors} failed (re)connects"
        for room in s.rooms:
            got = pub.certain(room, s.seqs.get(room, []))
            missing = sorted(set(pub.sent[room]) - set(got))
            stats["lost"] += len(missing)
            # every client joined before publishing began: the whole sequence, in order
            assert got == pub.sent[room], f"{room}: {len(missing)} lost ({missing[:10]}), client {i} ({s.kind})"
        stats["duplicates"] += s.dups
        for reason, n in s.reasons.items():
            stats["reasons"][reason] = stats["reasons"].get(reason, 0) + n
        stats["moved"] += len(set(s.pods)) > 1
        reconnects += s.reconnect_ms
    disconnects = sum(stats["reasons"].values())
    stats["churn_percent"] = round(100 * disconnects / max(1, len(seen)), 1)
    stats["reconnect_ms_p50"] = round(percentile(reconnects, 50))
    stats["reconnect_ms_p99"] = round(percentile(reconnects, 99))
    stats["messages"] = sum(len(v) for v in pub.sent.values())
    return stats
