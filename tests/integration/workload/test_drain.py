"""The drain and the crash, behind a real load balancer (HAProxy from Debian).

Two workload processes behind HAProxy (readiness checks every 200 ms, 503 handshakes retried on
the other server). JS clients (websocket and polling) and Python clients join two rooms; a
publisher sends sequenced messages through the load balancer the whole time.

- drain: the kubelet's sequence (GET /lifecycle/prestop, then SIGTERM), and a bare SIGTERM
  (an image run without the hook, or `kill`). Readiness and new
  handshakes answer 503 at once; every client of the drained process gets `server_shutdown`,
  is closed at the Engine.IO level ("transport close", never "io server disconnect"), lands on
  the other process and recovers; the process exits 0 within preStop + drain + buffer.
- crash: `kill -9`; the clients reconnect to the other process and recover through replay.

Both assert that every client saw every published sequence number of its rooms, in order.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.workload.harness import API_KEY, HAProxy, JsFleet, Workload, http, wait_for
from tests.integration.workload.pyclient import LoopThread, PyClient
from wsfleet_workload import contract as c

ROOMS = ["r1", "r2"]


class Publisher(threading.Thread):
    """Sequenced messages to each room through the load balancer, ~25/s; keeps what was accepted."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.stop_flag = url, threading.Event()
        self.sent: dict[str, list[int]] = {r: [] for r in ROOMS}
        # A request that failed in flight (the process died under it) may have been published
        # or not: at-least-once from the publisher's side. Clients may hold these, or not.
        self.uncertain: dict[str, set[int]] = {r: set() for r in ROOMS}

    def run(self) -> None:
        seq = 0
        while not self.stop_flag.is_set():
            seq += 1
            for room in ROOMS:
                status, _, _ = http(
                    "POST",
                    self.url + c.PUBLISH_PATH,
                    {"room": room, "data": {"seq": seq}},
                    {"Authorization": f"Bearer {API_KEY}"},
                    timeout=5,
                )
                if status == 200:
                    self.sent[room].append(seq)
                else:
                    self.uncertain[room].add(seq)
            time.sleep(0.04)

    def finish(self) -> Publisher:
        self.stop_flag.set()
        self.join(10)
        return self


class Crowd:
    """JS clients (websocket, and polling upgrading to websocket) and Python clients (websocket,
    and polling only), all through the load balancer, all in ROOMS."""

    def __init__(self) -> None:
        self.loop = LoopThread()
        self.fleets: list[JsFleet] = []
        self.py: list[PyClient] = []

    def start(self, tmp_path: Path, url: str) -> Crowd:
        self.fleets.append(JsFleet(tmp_path, url, 12, ROOMS, "websocket"))
        self.fleets.append(JsFleet(tmp_path, url, 6, ROOMS, "polling,websocket"))
        for transports in (["websocket"], ["websocket"], ["websocket"], ["polling"]):
            client = PyClient(url, ROOMS, transports=transports)
            self.py.append(client)
            self.loop.run(client.connect())
        for f in self.fleets:
            f.wait_ready()
        return self

    def close(self) -> None:
        for f in self.fleets:
            f.stop()
        for p in self.py:
            self.loop.run(p.close())
        self.loop.close()


@pytest.fixture
def crowd(tmp_path: Path) -> Iterator[Callable[[str], Crowd]]:
    made: list[Crowd] = []

    def make(url: str) -> Crowd:
        made.append(Crowd())
        return made[-1].start(tmp_path, url)

    yield make
    for c_ in made:
        c_.close()


def _check_everyone(pub: Publisher, crowd: Crowd, survivor: str) -> dict[str, Any]:
    fleets, py = crowd.fleets, crowd.py
    sent = pub.sent

    def certain(room: str, got: list[int]) -> list[int]:
        return [s for s in got if s not in pub.uncertain[room]]

    stats: dict[str, Any] = {"clients": 0, "reasons": {}, "shutdowns": 0, "dups": 0, "moved": 0, "on_a": []}
    for f in fleets:
        for client in f.summary():
            stats["clients"] += 1
            assert client["connected"], client
            assert client["pods"][-1] == survivor, client
            assert client["gaps"] == [], client
            assert client["unrecovered"] == 0, client
            for room in ROOMS:
                got = certain(room, client["seqs"].get(room, []))
                # every client joined before publishing began: it must hold the whole sequence, in order
                missing = sorted(set(sent[room]) - set(got))
                assert got == sent[room], f"{room}: {len(missing)} lost ({missing[:10]}...), client {client['id']}"
            for reason, n in client["reasons"].items():
                stats["reasons"][reason] = stats["reasons"].get(reason, 0) + n
            stats["shutdowns"] += client["shutdowns"]
            if client["pods"][0] == "a":
                stats["on_a"].append(("websocket", client["shutdowns"]))
            stats["dups"] += client["dups"]
            stats["moved"] += len(set(client["pods"])) > 1
    for p in py:
        stats["clients"] += 1
        assert p.sio.connected, (p.transports, p.reasons, p.sessions)
        assert p.pod == survivor
        assert p.gaps == []
        for room in ROOMS:
            assert certain(room, p.seqs[room]) == sent[room], f"python client, {room}"
        stats["dups"] += p.dups
        stats["shutdowns"] += len(p.shutdowns)
        if p.sessions[0]["pod"] == "a":
            stats["on_a"].append((p.transports[0], len(p.shutdowns)))
    return stats


def _publish_around(lb: HAProxy, action: Callable[[], None]) -> Publisher:
    pub = Publisher(lb.url)
    pub.start()
    time.sleep(1.0)
    action()
    time.sleep(2.0)
    pub.finish()
    time.sleep(1.0)  # the last messages reach everyone
    return pub


@pytest.mark.parametrize("prestop", [True, False], ids=["prestop-then-sigterm", "bare-sigterm"])
def test_drain_moves_every_client_without_loss(
    workloads: Callable[..., Workload], haproxy: Callable[..., HAProxy], crowd: Callable[[str], Crowd], prestop: bool
) -> None:
    a, b = workloads("a"), workloads("b")
    lb = haproxy([a, b])
    clients = crowd(lb.url)
    on_a = int(a.metric(c.METRIC_CONNECTIONS))
    assert on_a >= 5, "round robin put clients on both processes"
    observed: dict[str, Any] = {}

    def drain() -> None:
        # the kubelet's order: the preStop hook, and SIGTERM once it has answered
        started = time.monotonic()
        hook = threading.Thread(target=lambda: observed.update(prestop=http("GET", a.url + c.PRESTOP_PATH)))
        if prestop:
            hook.start()
        else:
            a.signal(signal.SIGTERM)
        wait_for(lambda: a.get(c.READY_PATH)[0] == 503, 2, "readiness 503 at once")
        observed["ready"] = a.get(c.READY_PATH)
        observed["handshake"] = http("GET", a.url + c.SOCKETIO_PATH + "?EIO=4&transport=polling")
        if prestop:
            hook.join(10)
            observed["prestop_seconds"] = time.monotonic() - started
            a.signal(signal.SIGTERM)
        observed["exit"] = a.wait(10)
        observed["exit_seconds"] = time.monotonic() - started

    pub = _publish_around(lb, drain)
    stats = _check_everyone(pub, clients, survivor="b")

    assert observed["ready"][1]["status"] == "draining"
    status, headers, body = observed["handshake"]
    assert status == 503, "a new handshake on a draining pod is refused so the LB retries elsewhere"
    assert headers.get("retry-after") == "1" or headers.get("Retry-After") == "1"
    assert body["reason"] == "draining"
    if prestop:
        assert observed["prestop"][0] == 200
        assert observed["prestop_seconds"] >= 1.0, "preStop answers after WSFLEET_PRESTOP_SECONDS"
    assert observed["exit"] == 0, "exit 0"
    assert observed["exit_seconds"] < 1 + 3 + 2, "within preStop + drain + buffer"
    # Every WebSocket client of `a` was told. A long-polling session may already have moved
    # during preStop: once `a` is unready the LB sends its next request elsewhere.
    untold = [x for x in stats["on_a"] if x[0] == "websocket" and not x[1]]
    assert not untold, f"clients of the drained process without server_shutdown: {untold}"
    assert len(stats["on_a"]) >= on_a - 1
    assert stats["reasons"].get("io server disconnect", 0) == 0, "never a Socket.IO-level disconnect"
    assert stats["reasons"].get("transport close", 0) >= 1
    assert sum(len(v) for v in pub.sent.values()) > 100
    assert not any(pub.uncertain.values()), "a drain fails no request"
    log = a.log()
    for phase in ("unready", "announced", "closed", "done"):
        assert f"drain phase {phase}" in log, phase


def test_crash_clients_recover_through_replay(
    workloads: Callable[..., Workload], haproxy: Callable[..., HAProxy], crowd: Callable[[str], Crowd]
) -> None:
    a, b = workloads("a"), workloads("b")
    lb = haproxy([a, b])
    clients = crowd(lb.url)
    assert a.metric(c.METRIC_CONNECTIONS) >= 5

    def crash() -> None:
        a.signal(signal.SIGKILL)
        a.wait(5)

    pub = _publish_around(lb, crash)
    stats = _check_everyone(pub, clients, survivor="b")
    assert stats["moved"] >= 3
    assert b.metric(c.METRIC_REPLAY, result="hit") >= stats["moved"]
    assert b.metric(c.METRIC_REPLAY, result="miss") == 0
