"""The harness's Python client (tests/support/pyclient.py) against python-socketio's own server,
nothing of the workload, which answers the namespace CONNECT late, as a busy server does.

- After the server restarts, the harness's client reconnects, and python-socketio's client, as
  it comes, does not: its reconnect attempts give the namespace 1 s. The day that changes
  upstream, the second assertion fails, and the override in pyclient.py can go.
- A set-up connect that fails is tried again, and the failure is counted."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import socketio

from tests.support.processes import _tcp_ok, free_port, wait_for
from tests.support.pyclient import LoopThread, PyClient

# The namespace CONNECT is answered after `delay` seconds; then the session event the harness's
# client waits for (from a task started in the handler: it runs once the CONNECT has been queued).
SERVER = """
import asyncio, sys, socketio, uvicorn
sio = socketio.AsyncServer(async_mode="asgi")
delay = float(sys.argv[2])

async def session(sid):
    await sio.emit("session", {"session": "s", "pod": "p", "recovered": False, "rooms": {"r": {}}}, to=sid)

@sio.event
async def connect(sid, environ, auth):
    print("connect", (auth or {}).get("token", "stock"), flush=True)
    await asyncio.sleep(delay)
    sio.start_background_task(session, sid)

uvicorn.run(socketio.ASGIApp(sio), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""

SLOW = 1.5  # seconds to answer the namespace: above python-socketio's reconnect wait, 1 s


class Server:
    """The server above on one port, started (or restarted) with a given delay."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, delay: float) -> None:
        self.stop()
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", SERVER, str(self.port), str(delay)], stdout=log, stderr=log
            )
        wait_for(lambda: _tcp_ok(self.port), 30, f"the python-socketio server on :{self.port}")

    def connects(self, who: str) -> int:
        return self.log.read_text().count(f"connect {who}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = Server(tmp_path)
    yield s
    s.stop()


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    lt = LoopThread()
    yield lt
    lt.close()


def test_a_reconnect_waits_for_a_slow_namespace_as_long_as_the_first_connect(server: Server, loop: LoopThread) -> None:
    url = server.url
    server.start(0)
    ours = PyClient(url, ["r"], token="harness")
    stock = socketio.AsyncClient(reconnection_delay=0.2, reconnection_delay_max=1.0)
    loop.run(ours.connect(), timeout=60)
    loop.run(stock.connect(url, transports=["websocket"]), timeout=60)
    assert ours.sio.connected
    assert stock.connected

    server.start(SLOW)  # both lose their connection; the new server answers the namespace in 1.5 s
    wait_for(lambda: ours.sio.connected and ours.ready.is_set(), 60, "the harness's client back")
    assert len(ours.sessions) == 2, ours.sessions
    assert len(ours.reasons) == 1, ours.reasons
    # attempts failed while nothing listened; the first that reached the new server got through
    assert server.connects("harness") == 2, ours.sio.failed
    # python-socketio's client reached the server three times, gave up on each after 1 s, and
    # is still away
    wait_for(lambda: server.connects("stock") >= 4, 60, "three reconnect attempts of python-socketio's client")
    assert not stock.connected, "python-socketio's reconnect now waits for the namespace: drop the override"
    loop.run(ours.close(), timeout=30)
    loop.run(stock.shutdown(), timeout=30)


def test_a_set_up_connect_that_fails_is_tried_again_and_counted(server: Server, loop: LoopThread) -> None:
    client = PyClient(server.url, ["r"])
    with pytest.raises(socketio.exceptions.ConnectionError):
        loop.run(client.connect(), timeout=30)  # nothing listens yet, and one attempt only
    assert len(client.sio.failed) == 1, client.sio.failed
    pending = loop.submit(client.connect(within=60))
    wait_for(lambda: len(client.sio.failed) >= 2, 30, "a second failed attempt")
    server.start(0)
    pending.result(60)
    assert client.sio.connected
    assert len(client.sessions) == 1
    loop.run(client.close(), timeout=30)
