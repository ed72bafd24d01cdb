"""Clients and a publisher for fleet tests, and the one check that matters: every client holds
every published sequence number of each of its rooms, once, in order.

A Crowd mixes the official JS socket.io-client (tests/js/fleet-client.mjs, many sockets per Node
process) with python-socketio AsyncClients (tests/support/pyfleet.py, many per Python process),
websocket and polling.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.processes import ClientFleet, JsFleet, PyFleet, http, wait_for
from tests.support.secrets import API_KEY
from wsfleet_common import contract as c
from wsfleet_operator.accounting import STRICT, Account, Expect, Ledger, Received, account


class Publisher(threading.Thread):
    """Sequenced messages to rooms through the load balancer at `rate` per second (all rooms
    together: a round sends the next seq to every room). Every attempt goes into a Ledger as
    acknowledged (200), refused (4xx) or uncertain (5xx, or no answer: published or not, we
    cannot know, so clients may hold it or not)."""

    def __init__(self, url: str, rooms: list[str], rate: float = 25.0) -> None:
        super().__init__(daemon=True)
        self.url, self.rooms, self.period = url, rooms, 1.0 / rate
        self.stop_flag = threading.Event()
        self.ledger = Ledger(rooms)
        self.rounds = 0
        self._progress = threading.Condition()
        self._rate_changed = threading.Event()

    def set_rate(self, rate: float) -> None:
        """From the next message on, `rate` rounds per second (a load that rises and falls)."""
        self.period = 1.0 / rate
        self._rate_changed.set()

    @property
    def sent(self) -> dict[str, list[int]]:
        return self.ledger.acknowledged

    def run(self) -> None:
        seq = 0
        next_at = time.monotonic()
        while not self.stop_flag.is_set():
            seq += 1
            for room in self.rooms:
                status: int | None
                why = ""
                try:
                    status, _, _ = http("POST", self.url + c.PUBLISH_PATH, {"room": room, "data": {"seq": seq}},
                                        {"Authorization": f"Bearer {API_KEY}"}, timeout=5)  # fmt: skip
                except OSError as e:  # a timeout or a reset: published or not, we cannot know
                    status, why = None, type(e).__name__
                self.ledger.record(room, seq, status, why)
                if self._rate_changed.is_set():  # the new pace counts from now, with no catching up
                    self._rate_changed.clear()
                    next_at = time.monotonic()
                next_at += self.period
                time.sleep(max(0.0, next_at - time.monotonic()))
            with self._progress:
                self.rounds = seq
                self._progress.notify_all()

    def wait_rounds(self, n: int, timeout: float = 120) -> None:
        """Until `n` more rounds have been published (answered or not): a count, not a time, so a
        slow machine publishes as many messages around an event as a fast one."""
        with self._progress:
            target = self.rounds + n
            if not self._progress.wait_for(lambda: self.rounds >= target or not self.is_alive(), timeout):
                raise AssertionError(f"the publisher made {self.rounds} of {target} rounds in {timeout:g}s")

    def finish(self) -> Publisher:
        self.stop_flag.set()
        self.join(10)
        return self

    def account(self, received: list[Received], expect: Expect = STRICT) -> Account:
        return account(self.ledger, received, expect)


def publish_during(
    url: str,
    rooms: list[str],
    event: Callable[[], object],
    *,
    rate: float = 25.0,
    before: int = 10,
    after: int = 20,
    settled: Callable[[], list[str]] | None = None,
    delivered: Callable[[Ledger], bool] | None = None,
    publisher: Publisher | None = None,
) -> Publisher:
    """Publish `before` rounds (with `publisher`, not started yet, when the event changes its
    pace), run `event`, publish until `settled` names no client away and `after` more rounds; stop
    (also when the event fails), and wait until `delivered` (every client holds every acknowledged
    message) or 30 s: a message still missing then is lost, and the caller's accounting says so."""
    pub = publisher or Publisher(url, rooms, rate=rate)
    pub.start()
    try:
        pub.wait_rounds(before)
        event()
        if settled is not None:
            away: list[list[str]] = [[]]

            def back() -> bool:
                away[0] = settled()
                return not away[0] or not pub.is_alive()

            try:
                wait_for(back, 120, "every client reconnected after the event", interval=0.25)
            except AssertionError as e:
                raise AssertionError(f"{e}: still away {away[0]}") from None
        pub.wait_rounds(after)
    finally:  # a failed event stops the publisher too: it would publish into the next scenario
        pub.finish()
    if settled is not None:  # a client dropped since (a late PONG on a busy machine) is let back
        with contextlib.suppress(AssertionError):
            wait_for(lambda: not settled(), 60, "every client connected at the end", interval=0.25)
    if delivered is not None:
        with contextlib.suppress(AssertionError):
            wait_for(lambda: delivered(pub.ledger), 30, "every acknowledged message delivered", interval=0.2)
    return pub


@dataclass
class Seen:
    """One client, as the checks see it, whatever its library."""

    kind: str  # library and transports: js-websocket, js-polling+websocket, js-polling, py-websocket, ...
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
    """Client fleets, each a process of its own: JS (fleet-client.mjs) and Python (pyfleet.py)."""

    url: str
    workdir: Path
    fleets: list[tuple[ClientFleet, list[str], str]] = field(default_factory=list)  # fleet, rooms, kind
    # (fleet index, client id) -> connect errors before the crowd was ready
    setup_errors: Counter[tuple[int, int]] = field(default_factory=Counter)

    def js(self, clients: int, rooms: list[str], transports: str = "websocket") -> Crowd:
        fleet = JsFleet(self.workdir, self.url, clients, rooms, transports)
        self.fleets.append((fleet, rooms, f"js-{transports.replace(',', '+')}"))
        return self

    def python(self, rooms: list[str], transports: str = "websocket", count: int = 1) -> Crowd:
        fleet = PyFleet(self.workdir, self.url, count, rooms, transports)
        self.fleets.append((fleet, rooms, f"py-{transports.replace(',', '+')}"))
        return self

    def mix(self, clients: int, rooms: list[str]) -> Crowd:
        """`clients` in all over four `rooms`, each client in two: 80% JS (three websocket groups,
        one polling-first), 20% Python (websocket and polling)."""
        assert len(rooms) == 4, rooms
        js, py = clients * 8 // 10, clients - clients * 8 // 10
        for i in range(3):
            self.js(js * 9 // 40, [rooms[i], rooms[i + 1]], "websocket")
        self.js(js - 3 * (js * 9 // 40), [rooms[3], rooms[0]], "polling,websocket")
        self.python([rooms[0], rooms[2]], "websocket", count=py * 3 // 4)
        return self.python([rooms[1], rooms[3]], "polling", count=py - py * 3 // 4)

    def wait_ready(self, timeout: float = 120) -> Crowd:
        """Every client in every room. The failed connects of getting there (a storm of a thousand
        handshakes on a busy machine fails some, and they retry) are the set-up's, not the
        scenario's: counted from here on."""
        for fleet, _, _ in self.fleets:
            fleet.wait_ready(timeout)
        self.setup_errors = Counter(
            (i, e["id"])
            for i, (fleet, _, _) in enumerate(self.fleets)
            for e in fleet.events()
            if e["ev"] == "connect_error"
        )
        return self

    @property
    def size(self) -> int:
        return sum(f.clients for f, _, _ in self.fleets)

    def unsettled(self) -> list[str]:
        """The clients not connected now, by kind (a Python fleet also says where each waits)."""
        out: list[str] = []
        for fleet, _, kind in self.fleets:
            progress = fleet.progress()
            if progress["connected"] < fleet.clients:
                out.append(f"{fleet.clients - progress['connected']} of {fleet.clients} {kind}")
                out += progress.get("away", [])[:20]
        return out

    def delivered(self, ledger: Ledger) -> bool:
        """Every client holds the last acknowledged message of each of its rooms."""
        last = {room: seqs[-1] for room, seqs in ledger.acknowledged.items() if seqs}
        for fleet, rooms, _ in self.fleets:
            held = fleet.progress()["last"]
            if any(held.get(r, 0) < last[r] for r in rooms if r in last):
                return False
        return True

    def seen(self) -> list[Seen]:
        out: list[Seen] = []
        for i, (fleet, rooms, kind) in enumerate(self.fleets):
            for s in fleet.summary():
                errors = s["connectErrors"] - self.setup_errors.get((i, s["id"]), 0)
                out.append(Seen(
                    kind, s["pods"], s["seqs"], rooms, s["connected"], s["gaps"],
                    s["unrecovered"], s["dups"], s["shutdowns"], s["reasons"], errors, s["reconnectMs"],
                ))  # fmt: skip
        return out

    def close(self) -> None:
        for fleet, _, _ in self.fleets:
            fleet.stop()


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


def verify(
    pub: Publisher,
    seen: list[Seen],
    *,
    gone: set[str] = frozenset(),  # type: ignore[assignment]
    expect: Expect = STRICT,
    failed_reconnects: bool = False,
) -> dict[str, Any]:
    """Assert that the run tested something (enough publishes acknowledged, failed ones within what
    the scenario excuses), then zero loss, order and no duplicates at every client's application,
    no gap, and no failed reconnect unless the scenario says they happen (`failed_reconnects`:
    a load balancer that has not yet heard that a node died still sends handshakes to it); return
    the figures, failed reconnects among them."""
    reconnects: list[float] = []
    stats: dict[str, Any] = {"reasons": {}, "moved": 0, "failed_reconnects": 0}
    for i, s in enumerate(seen):
        assert s.connected, f"client {i} ({s.kind}) is not connected: {s.reasons}"
        assert s.pods[-1] not in gone, f"client {i} ({s.kind}) is still on {s.pods[-1]}"
        assert s.gaps == [], f"client {i} ({s.kind}) saw gaps {s.gaps}"
        assert s.unrecovered == 0, f"client {i} ({s.kind}) was not recovered"
        assert failed_reconnects or s.connect_errors == 0, (
            f"client {i} ({s.kind}): {s.connect_errors} failed (re)connects"
        )
        stats["failed_reconnects"] += s.connect_errors
        for reason, n in s.reasons.items():
            stats["reasons"][reason] = stats["reasons"].get(reason, 0) + n
        stats["moved"] += len(set(s.pods)) > 1
        reconnects += s.reconnect_ms
    # every client joined before publishing began: each holds the whole sequence of its rooms
    result = pub.account(
        [Received(f"client {i} ({s.kind})", s.rooms, s.seqs, s.dups) for i, s in enumerate(seen)], expect
    )
    assert result.passed, "\n".join(result.problems[:20])
    stats.update(result.figures)
    disconnects = sum(stats["reasons"].values())
    stats["churn_percent"] = round(100 * disconnects / max(1, len(seen)), 1)
    stats["reconnect_ms_p50"] = round(percentile(reconnects, 50))
    stats["reconnect_ms_p99"] = round(percentile(reconnects, 99))
    stats["messages"] = result.figures["published"]
    return stats
