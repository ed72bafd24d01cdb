"""The fast path's parts hold to what they replace. The lean per-connection queue and event
(fastpath/lean.py) keep asyncio.Queue's and asyncio.Event's
behaviour where python-engineio and uvicorn rely on it, and hold no buffer while idle."""

from __future__ import annotations

import asyncio
import gc
import socket
import sys
import time
from typing import Any

import engineio
import pytest
import uvloop
from engineio import packet as eio_packet
from engineio.async_drivers import asgi
from wsproto.frame_protocol import FrameProtocol, XorMaskerSimple

from wsfleet_workload.fastpath import asgi as fast_asgi
from wsfleet_workload.fastpath import frames
from wsfleet_workload.fastpath.lean import LeanEvent, LeanQueue
from wsfleet_workload.fastpath.socket import DirectSocket


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def test_queue_is_fifo_and_counts() -> None:
    async def scenario() -> None:
        q = LeanQueue()
        assert q.empty()
        assert q.qsize() == 0
        for i in range(5):
            q.put_nowait(i)
        await q.put(5)
        assert q.qsize() == 6
        assert not q.empty()
        assert [await q.get() for _ in range(3)] == [0, 1, 2]
        assert [q.get_nowait() for _ in range(3)] == [3, 4, 5]
        with pytest.raises(asyncio.QueueEmpty):
            q.get_nowait()

    run(scenario())


def test_a_waiting_getter_wakes_on_put_in_order() -> None:
    async def scenario() -> None:
        q = LeanQueue()
        got: list[int] = []

        async def consumer() -> None:
            for _ in range(3):
                got.append(await q.get())

        task = asyncio.create_task(consumer())
        await asyncio.sleep(0)
        assert got == []
        q.put_nowait(1)
        q.put_nowait(2)
        await asyncio.sleep(0)
        q.put_nowait(3)
        await asyncio.wait_for(task, 1)
        assert got == [1, 2, 3]

    run(scenario())


def test_a_cancelled_getter_loses_nothing() -> None:
    """A long-polling GET is a get() under wait_for: its timeout cancels it. A put right before the
    cancel must stay in the queue for the next poll, and a second getter still wakes."""

    async def scenario() -> None:
        q = LeanQueue()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(q.get(), 0.01)
        first = asyncio.create_task(q.get())
        second = asyncio.create_task(q.get())
        await asyncio.sleep(0)
        q.put_nowait("a")
        first.cancel()  # woken, but cancelled before it ran
        assert await asyncio.wait_for(second, 1) == "a"
        with pytest.raises(asyncio.CancelledError):
            await first
        assert q.empty()
        q.put_nowait("b")
        assert await asyncio.wait_for(q.get(), 1) == "b"

    run(scenario())


def test_join_waits_for_task_done() -> None:
    async def scenario() -> None:
        q = LeanQueue()
        await asyncio.wait_for(q.join(), 1)  # nothing unfinished
        q.put_nowait(1)
        q.put_nowait(2)
        joined = asyncio.create_task(q.join())
        q.get_nowait()
        q.task_done()
        await asyncio.sleep(0)
        assert not joined.done()
        q.get_nowait()
        q.task_done()
        await asyncio.wait_for(joined, 1)
        with pytest.raises(ValueError, match="too many times"):
            q.task_done()

    run(scenario())


def test_an_idle_queue_and_event_hold_no_buffer() -> None:
    """The point of them: an empty asyncio.Queue holds four deques (about 3 KB), these none."""
    q = LeanQueue()
    q.put_nowait(1)
    q.get_nowait()
    assert q._items is None
    assert q._getters is None
    stock = asyncio.Queue()  # type: ignore[var-annotated]
    stock_size = sum(sys.getsizeof(d) for d in (stock._queue, stock._getters, stock._putters))  # type: ignore[attr-defined]
    assert sys.getsizeof(q) < stock_size / 5
    e = LeanEvent()
    assert len(e._waiters) == 0
    assert e._waiters.maxlen == 0


def test_event_waits_sets_and_clears() -> None:
    async def scenario() -> None:
        e = LeanEvent()
        assert not e.is_set()
        waiter = asyncio.create_task(e.wait())
        await asyncio.sleep(0)
        assert not waiter.done()
        e.set()
        assert await asyncio.wait_for(waiter, 1) is True
        assert await e.wait() is True  # set: returns at once
        e.clear()
        again = asyncio.create_task(e.wait())
        await asyncio.sleep(0.01)
        assert not again.done()
        e.set()
        await asyncio.wait_for(again, 1)

    run(scenario())


SCOPES = [
    {  # a WebSocket handshake
        "type": "websocket",
        "path": "/socket.io/",
        "query_string": b"EIO=4&transport=websocket",
        "headers": [(b"host", b"example.test"), (b"origin", b"https://app.test"), (b"x-forwarded-proto", b"https")],
    },
    {  # a long-polling POST: content headers, a repeated header, one that is not UTF-8
        "type": "http",
        "method": "POST",
        "path": "/socket.io/",
        "query_string": b"EIO=4&transport=polling&sid=abc",
        "headers": [
            (b"content-type", b"text/plain;charset=UTF-8"),
            (b"content-length", b"11"),
            (b"accept", b"a"),
            (b"accept", b"b"),
            (b"x-bad", b"\xff\xfe"),
        ],
    },
    {"type": "http", "method": "GET", "path": "/socket.io/", "headers": []},  # no query string
]


@pytest.mark.parametrize("scope", SCOPES, ids=["websocket", "polling-post", "bare-get"])
def test_translate_request_gives_python_engineios_environ(scope: dict[str, Any]) -> None:
    """fast_asgi.translate_request replaces python-engineio's only to define the body reader once:
    the environ and the body read from it are the same."""
    events = (
        [{"type": "websocket.connect"}]
        if scope["type"] == "websocket"
        else [
            {"type": "http.request", "body": b"40", "more_body": True},
            {"type": "http.request", "body": b'42["a"]', "more_body": True},
            {"type": "http.request", "body": b"x", "more_body": False},
        ]
    )

    async def translate(fn: Any) -> tuple[dict[str, Any], list[bytes]]:
        feed = iter(events)

        async def receive() -> dict[str, Any]:
            return next(feed)

        async def send(message: dict[str, Any]) -> None:
            raise AssertionError("nothing is sent")

        environ = await fn(scope, receive, send)
        body = environ.pop("wsgi.input")
        reads = [await body.read()] if scope["type"] == "http" else []
        for key in ("asgi.receive", "asgi.send"):
            assert callable(environ.pop(key))
        return environ, reads

    async def both() -> None:
        ours, theirs = await translate(fast_asgi.translate_request), await translate(asgi.translate_request)
        assert ours == theirs
        if scope["type"] == "http":
            assert ours[1] == [b'4042["a"]x']

    run(both())


def test_translate_request_leaves_no_reference_cycle() -> None:
    async def scenario() -> None:
        async def receive() -> dict[str, Any]:
            return {"type": "websocket.connect"}

        gc.collect()
        gc.disable()
        try:
            for _ in range(10):
                await fast_asgi.translate_request(SCOPES[0], receive, receive)
            assert gc.collect() == 0
        finally:
            gc.enable()

    run(scenario())


def test_translate_request_names_the_client_where_python_engineio_says_127_0_0_1() -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def scenario() -> None:
        scope = {**SCOPES[0], "client": ("203.0.113.7", 50000)}
        ours, theirs = (
            await fast_asgi.translate_request(scope, receive, receive),
            await asgi.translate_request(scope, receive, receive),
        )
        assert (ours["REMOTE_ADDR"], theirs["REMOTE_ADDR"]) == ("203.0.113.7", "127.0.0.1")

    run(scenario())


@pytest.mark.parametrize(
    ("data", "limit", "size"),
    [
        ("a" * 10, 100, 10),  # short: characters count, no encoding needed
        ("a" * 101, 100, 101),  # more characters than the limit: over it whatever the encoding
        ("é" * 40, 100, 80),  # 40 characters could be 40-160 bytes: encoded
        ("€" * 30, 100, 90),
        ("€" * 40, 100, 120),
        (b"\x00" * 150, 100, 150),
        ("é" * 40, None, 40),  # no limit: nothing to compare with
    ],
)
def test_a_message_size_is_its_utf8_bytes_where_the_limit_depends_on_it(data: str | bytes, limit: int | None,
                                                                         size: int) -> None:  # fmt: skip
    assert frames.message_size(data, limit) == size
    if limit is not None:
        assert (frames.message_size(data, limit) > limit) == (
            len(data.encode() if isinstance(data, str) else data) > limit
        )


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 1000, 65535, 65536, 70_000])
@pytest.mark.parametrize("kind", ["text", "unicode", "binary"])
def test_a_packets_frame_is_wsprotos_server_frame(size: int, kind: str) -> None:
    data: str | bytes = {"text": "x" * size, "unicode": "é" * (size // 2), "binary": b"\x01" * size}[kind]
    pkt = eio_packet.Packet(eio_packet.MESSAGE, data=data)
    expected = bytes(FrameProtocol(client=False, extensions=[]).send_data(pkt.encode(), fin=True))
    assert frames.frame(pkt) == expected
    assert frames.frame(pkt) is frames.frame(pkt), "computed once per packet"


@pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 125, 126, 65536, 70_001])
def test_unmasking_is_wsprotos(size: int) -> None:
    mask, payload = b"\x9a\x01\xff\x37", bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    assert frames.unmask(mask, payload) == XorMaskerSimple(mask).process(payload)


@pytest.mark.parametrize("answered", [True, False], ids=["pong-waiting-to-be-read", "no-pong"])
def test_a_pong_that_came_while_the_loop_was_held_up_keeps_the_socket(answered: bool) -> None:
    """The workload runs on uvloop. When a callback that reads a socket is held up (the process's
    cgroup CPU quota spent on a busy node, a long pause), the next turn of the loop runs the
    timers that came due before it reads sockets again: the PONG deadline fires while the PONG
    that came meanwhile waits unread. The socket must read it before it decides; a socket with no
    PONG is still closed."""

    async def scenario() -> tuple[bool, int]:
        loop = asyncio.get_running_loop()
        server = engineio.AsyncServer(async_mode="asgi", ping_interval=0.05, ping_timeout=0.05)
        sock = DirectSocket(server, "sid")
        sock.connected = True
        client, client_peer = socket.socketpair()  # the client's connection: its PONG
        other, other_peer = socket.socketpair()  # another connection, whose handling is held up
        for s in (client, other):
            s.setblocking(False)
        loop.add_reader(client, lambda: client.recv(16) and sock.feed("3"))

        def held_up() -> None:  # the PONG arrives, and its deadline passes, while this runs
            other.recv(16)
            if answered:
                client_peer.send(b"3")
            time.sleep(0.3)

        loop.add_reader(other, held_up)
        sock._ping()  # PING sent: the PONG deadline in 0.05 s
        other_peer.send(b"x")
        deadline = time.monotonic() + 30
        # until it is closed, or the PONG re-armed the heartbeat and the next PING went out
        while not sock.closed and sock.queue.qsize() < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for s in (client, other):
            loop.remove_reader(s)
        for s in (client, client_peer, other, other_peer):
            s.close()
        return sock.closed, sock.queue.qsize()

    closed, pings = uvloop.run(scenario())
    if answered:
        assert not closed, "closed for ping timeout while its PONG was waiting to be read"
        assert pings == 2, "the PONG re-armed the heartbeat"
    else:
        assert closed
