"""The drain with a plain object for the hub: what each client is told, in which order the clients
are closed, the phases, and the client that never leaves. No server, no Redis; a 1 s window.

| case                                   | expected                                                      |
|----------------------------------------|---------------------------------------------------------------|
| preStop                                | unready (draining) but still accepting handshakes             |
| SIGTERM                                | refusing handshakes; phases unready, announced, closed, done  |
| every client                           | one `server_shutdown` with its slot, within 80% of the window |
| the closes                             | in the order of the announced slots, each flushed             |
| a client that does not leave           | closed without flush at the window's end; counted as forced   |
"""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

from engineio import packet as eio_packet

from wsfleet_workload.auth import ANONYMOUS
from wsfleet_workload.drain import SPREAD, Drain
from wsfleet_workload.metrics import Metrics
from wsfleet_workload.rooms import Client

WINDOW = 1  # seconds


class PlainHub:
    def __init__(self, n: int, *, stuck: frozenset[str] = frozenset()) -> None:
        self.clients = {f"c{i}": Client(f"c{i}", f"e{i}", f"s{i}", ANONYMOUS, "") for i in range(n)}
        self.stuck = stuck
        self.told: dict[str, list[Any]] = {}
        self.closed: list[tuple[str, bool]] = []

    def send(self, client: Client, pkt: eio_packet.Packet) -> bool:
        name, arg = json.loads(pkt.data[1:])
        self.told.setdefault(client.sid, []).append((name, arg))
        return True

    async def close(self, client: Client, reason: str, *, flush: bool) -> None:
        assert reason == "server shutdown"
        self.closed.append((client.sid, flush))
        if client.sid not in self.stuck:
            del self.clients[client.sid]  # the client is gone, as after its disconnect


def drain_of(hub: PlainHub) -> Drain:
    return Drain(hub, Metrics(), prestop_seconds=0, drain_seconds=WINDOW, pod="pod-a", rng=random.Random(7))


async def test_prestop_turns_unready_but_still_accepts_handshakes() -> None:
    drain = drain_of(PlainHub(1))
    assert not drain.draining
    await drain.prestop()
    assert drain.draining
    assert not drain.refusing
    assert [phase for phase, _, _ in drain.timeline] == ["unready"]
    assert drain.timeline[0][2] == {"trigger": "preStop", "connections": 1}


async def test_every_client_is_told_its_slot_and_closed_in_slot_order() -> None:
    hub = PlainHub(40)
    drain = drain_of(hub)
    done = asyncio.Event()
    drain.on_done = done.set
    drain.start("SIGTERM")
    await asyncio.wait_for(done.wait(), 10)
    assert drain.refusing
    assert [phase for phase, _, _ in drain.timeline] == ["unready", "announced", "closed", "done"]
    slots: dict[str, int] = {}
    for sid, told in hub.told.items():
        ((name, arg),) = told
        assert name == "server_shutdown"
        assert arg["pod"] == "pod-a"
        assert 0 <= arg["reconnectAfterMs"] <= WINDOW * SPREAD * 1000
        slots[sid] = arg["reconnectAfterMs"]
    assert len(slots) == 40
    assert len(set(slots.values())) > 30  # spread, not a wave
    order = [sid for sid, _ in hub.closed]
    assert sorted(order) == sorted(slots)
    assert [slots[sid] for sid in order] == sorted(slots.values())
    assert all(flush for _, flush in hub.closed)
    assert drain.timeline[-1][2]["forced"] == 0
    assert hub.clients == {}


async def test_a_client_that_does_not_leave_is_forced_at_the_end() -> None:
    hub = PlainHub(3, stuck=frozenset({"c1"}))
    drain = drain_of(hub)
    await asyncio.wait_for(drain.run("SIGTERM"), 10)
    assert ("c1", True) in hub.closed
    assert hub.closed[-1] == ("c1", False)
    assert drain.timeline[-1][0] == "done"
    assert drain.timeline[-1][2]["forced"] == 1
