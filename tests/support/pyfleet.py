"""N python-socketio clients (tests/support/pyclient.py) in one process: the Python twin of
tests/js/fleet-client.mjs, with its command line, its JSON lines and its stdin commands, so that
a crowd treats both alike.

    python -m tests.support.pyfleet --url http://127.0.0.1:3001 --clients 10 --rooms a,b [--transports websocket]

stdout: one JSON line per notable event ({"ev": ...}); "progress" on stdin answers with how many
clients are connected, the lowest last seq per room and, for each client away, python-socketio's
state and where its reconnect task waits; "summary" on stdin (or SIGTERM) writes what every
client received and exits 0.

The clients get a process of their own because on a busy machine their event loop, on a thread
of the test's process, shared the GIL with the publisher and the test's polling, and answered the
servers' pings and CONNECTs seconds late: the servers dropped them, and they came back late.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections import Counter
from typing import Any

from tests.support.pyclient import PyClient

SETUP_SECONDS = 120  # a set-up connect is retried this long (the JS crowd's wait_ready is as long)
PARALLEL_SETUP = 50  # set-up connects under way at once


def out(o: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(o) + "\n")
    sys.stdout.flush()


def waiting_in(task: asyncio.Task[Any] | None) -> str:
    """Where a task is suspended: its innermost frames."""
    if task is None or task.done():
        return ""
    frames: list[str] = []
    coro: Any = task.get_coro()
    while coro is not None and len(frames) < 8:
        frame = getattr(coro, "cr_frame", None)
        if frame is None:
            break
        frames.append(f"{frame.f_code.co_name}:{frame.f_lineno}")
        coro = getattr(coro, "cr_await", None)
    return " > ".join(frames)


def away(i: int, p: PyClient) -> str:
    """One client not connected, as python-socketio sees it: to tell a reconnect under way from a
    client that gave up, and where it waits."""
    task = p.sio._reconnect_task
    return (
        f"py-{'+'.join(p.transports)} {i} (engine.io {p.sio.eio.state}, reconnecting {task is not None}, "
        f"reasons {p.reasons[-3:]}, failed connects {p.sio.failed[-2:]}, waiting in {waiting_in(task) or '-'})"
    )


def state(i: int, p: PyClient) -> dict[str, Any]:
    """One client in fleet-client.mjs's summary shape."""
    unrecovered = sum(
        1 for s in p.sessions[1:] for room, r in s["rooms"].items() if room != "*" and not r.get("recovered")
    )
    return {
        "id": i,
        "session": p.session,
        "pods": [s["pod"] for s in p.sessions],
        "seqs": dict(p.seqs),
        "gaps": p.gaps,
        "unrecovered": unrecovered,
        "dups": p.dups,
        "shutdowns": len(p.shutdowns),
        "reasons": dict(Counter(p.reasons)),
        "connectErrors": len(p.sio.failed),
        "reconnectMs": p.reconnect_ms,
        "connected": p.sio.connected,
    }


async def main(url: str, count: int, rooms: list[str], transports: list[str]) -> None:
    clients = [PyClient(url, rooms, transports=transports) for _ in range(count)]
    for i, p in enumerate(clients):
        p.on_ready = lambda s, i=i: out({"ev": "ready", "id": i, "pod": s["pod"], "recovered": s["recovered"]})
        p.sio.on_failed = lambda message, i=i: out({"ev": "connect_error", "id": i, "message": message})
    gate = asyncio.Semaphore(PARALLEL_SETUP)

    async def connect(i: int, p: PyClient) -> None:
        async with gate:
            try:
                await p.connect(within=SETUP_SECONDS)
            except Exception as e:  # the crowd's wait_ready names the clients that are not ready
                out({"ev": "setup_failed", "id": i, "error": f"{type(e).__name__}: {e}"})

    setup = [asyncio.create_task(connect(i, p)) for i, p in enumerate(clients)]
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, done.set)
    loop.add_signal_handler(signal.SIGINT, done.set)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def commands() -> None:
        while line := await reader.readline():
            if line.strip() == b"summary":
                done.set()
            elif line.strip() == b"progress":
                last = {room: min((p.seqs.get(room) or [0])[-1] for p in clients) for room in rooms}
                down = [away(i, p) for i, p in enumerate(clients) if not p.sio.connected]
                out({"ev": "progress", "connected": count - len(down), "last": last, "away": down})
        done.set()  # stdin closed: the test is gone

    reading = asyncio.create_task(commands())
    await done.wait()
    out({"ev": "summary", "clients": [state(i, p) for i, p in enumerate(clients)]})
    reading.cancel()
    for t in setup:
        t.cancel()
    await asyncio.gather(*(asyncio.wait_for(p.close(), 10) for p in clients), return_exceptions=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--rooms", default="room")
    parser.add_argument("--transports", default="websocket")
    a = parser.parse_args()
    asyncio.run(main(a.url, a.clients, a.rooms.split(","), a.transports.split(",")))
