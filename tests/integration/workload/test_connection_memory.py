"""What a WebSocket connection costs the workload process: no task and no reference cycle.

The workload runs in this test's process (its uvicorn server, as main.py configures it, with a
real redis-server), so the collector's view of it can be read. With the garbage collector off,
an object in a reference cycle stays alive until a collection; python-engineio (a class defined
per request for the body reader) and uvicorn (the HTTP protocol that hands over to WebSocket,
held in a cycle with its parser) each left one such cycle per connection, which is what made
full collections expensive with thousands of connections (collector.py, fastpath/).

An open connection also holds no task: once the Engine.IO socket is established, the WebSocket
protocol hands it each message as it is parsed (fastpath/protocol.py, WSProtocol.attach), and the ASGI task with
its chain of a dozen coroutine frames ends. When the clients leave, their sockets are forgotten.
"""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import Iterator

import aiohttp
import pytest
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from tests.support.processes import Redis, free_port
from wsfleet_common import contract as c
from wsfleet_workload.app import Workload
from wsfleet_workload.config import Config
from wsfleet_workload.main import uvicorn_config

# what an idle connection holds on the fast path (fastpath/): the stock path keeps upstream's tasks
pytestmark = pytest.mark.fast_path

CLIENTS = 25


@pytest.fixture
def gc_state() -> Iterator[None]:
    """The workload freezes and tunes the collector of the process it runs in: restore it."""
    thresholds = gc.get_threshold()
    yield
    gc.enable()
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_what_is_counted_is_what_upstream_makes(gc_state: None) -> None:
    """The counts below are by class, and one is by name: after an upgrade that renamed or moved
    either, they would read 0 whatever happens. So first: the pinned python-engineio's
    translate_request does leave one AwaitablePayload class per request in a cycle (the count
    sees it), and the workload's HTTP protocol is uvicorn's HttpToolsProtocol."""
    from engineio.async_drivers.asgi import translate_request  # noqa: PLC0415

    from wsfleet_workload.fastpath import protocol  # noqa: PLC0415

    assert issubclass(protocol.HttpToolsProtocol, HttpToolsProtocol)

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: object) -> None:
        raise AssertionError(message)

    scope = {"type": "http", "path": "/socket.io/", "query_string": b"EIO=4&transport=polling", "headers": []}
    gc.collect()
    gc.disable()
    try:
        before = leftovers()["per-request reader classes"]
        asyncio.run(translate_request(scope, receive, send))
        assert leftovers()["per-request reader classes"] == before + 1
    finally:
        gc.enable()
    gc.collect()
    assert leftovers()["per-request reader classes"] == before


def leftovers() -> dict[str, int]:
    """Objects of the two kinds that used to be left in cycles, alive right now."""
    http = sum(1 for o in gc.get_objects() if isinstance(o, HttpToolsProtocol))
    readers = sum(1 for o in gc.get_objects() if isinstance(o, type) and o.__name__ == "AwaitablePayload")
    return {"http protocols": http, "per-request reader classes": readers}


async def join(session: aiohttp.ClientSession, port: int, room: str) -> aiohttp.ClientWebSocketResponse:
    ws = await session.ws_connect(f"ws://127.0.0.1:{port}{c.SOCKETIO_PATH}?EIO=4&transport=websocket")
    assert (await ws.receive_str()).startswith("0{")
    await ws.send_str("40")
    while not (await ws.receive_str()).startswith("40"):
        pass
    await ws.send_str("421" + json.dumps(["join", {"room": room}]))
    while True:
        frame = await ws.receive_str()
        if frame.startswith("431"):
            assert json.loads(frame[3:])[0]["ok"] is True, frame
            return ws


def test_websocket_connections_hold_no_task_and_leave_no_cycle(redis: Redis, gc_state: None) -> None:
    port = free_port()
    cfg = Config.from_environ(
        {
            c.ENV_PORT: str(port),
            c.ENV_METRICS_PORT: str(free_port()),
            c.ENV_HOST: "127.0.0.1",
            c.ENV_REDIS_URL: redis.url,
            c.ENV_POD_NAME: "in-process",
            c.ENV_KEY_PREFIX: "wsfleet:test",
            c.ENV_HANDSHAKES_PER_SECOND_PER_IP: str(CLIENTS),
        }
    )

    async def scenario() -> tuple[dict[str, int], int, int]:
        workload = Workload(cfg)
        server = uvicorn.Server(uvicorn_config(cfg, workload))
        serving = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.05)
        gc.collect()
        gc.disable()  # from here, anything in a cycle stays visible
        try:
            async with aiohttp.ClientSession() as session:
                # The first connections start the server's own tasks (python-engineio's service task)
                sockets = [await join(session, port, "lobby") for _ in range(5)]
                await asyncio.sleep(0.2)  # the last join's handler task ends
                tasks = len(asyncio.all_tasks())
                sockets += [await join(session, port, "lobby") for _ in range(CLIENTS - 5)]
                assert len(workload.hub.clients) == CLIENTS
                await asyncio.sleep(0.2)
                found = leftovers()
                more_tasks = len(asyncio.all_tasks()) - tasks
                for ws in sockets:
                    await ws.close()
                for _ in range(100):
                    if not workload.sio.eio.sockets:
                        break
                    await asyncio.sleep(0.05)
            return found, more_tasks, len(workload.sio.eio.sockets)
        finally:
            gc.enable()
            server.should_exit = True
            await asyncio.wait_for(serving, 30)

    found, more_tasks, sockets_left = asyncio.run(scenario())
    assert found == {"http protocols": 0, "per-request reader classes": 0}, (
        f"{CLIENTS} connections left objects in reference cycles: {found}"
    )
    assert more_tasks == 0, f"{CLIENTS - 5} more open connections hold {more_tasks} more tasks"
    assert sockets_left == 0, f"{sockets_left} Engine.IO sockets left after every client closed"
