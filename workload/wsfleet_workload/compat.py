"""Changes to python-engineio's server socket, applied at start-up.

1. Interoperability. A long-polling GET answers with every packet queued since the last one. The Python client
(python-engineio) refuses a payload of more than 16 packets (``Payload.max_decode_packets``, a
guard against decode bombs) and drops the connection as "transport error"; a busy room or a
recovery replay queues more than that. The JS client has no such limit. So a poll here returns
at most 16 packets and leaves the rest for the next poll, which the client sends at once.

2. Speed and memory on WebSockets. python-engineio runs three tasks per WebSocket connection (a
reader that starts a task and a timeout per received frame, a writer fed by an asyncio queue,
and a heartbeat task sleeping between pings) and hands every packet to the writer: a broadcast
to N members wakes N tasks, each encoding and framing the packet again. Here, once a socket's
WebSocket is established (directly, or by upgrade from long-polling), packets are written to the
connection's transport as they are sent, in call order: framed once per packet (server frames
are unmasked and no extension is negotiated, so the bytes are the same for every member) and
written with no task in between. What was queued before the switch goes first, in the same
step. The connection's own task reads frames with no per-frame task, and the heartbeat is a
timer: a PING every ``ping_interval``, and the session closes when its PONG is not back within
``ping_timeout`` (the Engine.IO rule; python-engineio's silence timeout on the reader is gone
with the reader's timeout, the PONG deadline covers it). A transport that cannot take more
(closing, or its buffer past ``max_buffer``) makes ``write`` refuse, and the hub treats the
client as a slow consumer. Long-polling sockets keep python-engineio's queue; the heartbeat
timer serves them too.

3. Bad input. A long-polling POST carrying a packet no client sends (a NOOP, an unknown type)
closes the session and gets 400 at once, instead of hanging until the client polls again.

python-engineio creates its sockets from ``engineio.async_socket.AsyncSocket`` with no hook, so
the class is swapped in that module. The JS and Python client tests (both transports, upgrades,
replays, drains, heartbeat timeouts) fail if any change stops working.
"""

from __future__ import annotations

import asyncio
import collections
import sys
import time
from collections.abc import Iterator
from typing import Any, Literal

from engineio import async_socket, exceptions, payload
from engineio import packet as eio_packet
from uvicorn.protocols.http import httptools_impl
from uvicorn.protocols.websockets import wsproto_impl
from wsproto.frame_protocol import FrameProtocol

MAX_PACKETS_PER_POLL = payload.Payload.max_decode_packets
# No extensions: the frame of a packet is the same bytes for every connection.
_FRAMER = FrameProtocol(client=False, extensions=[])


def frame(pkt: eio_packet.Packet) -> bytes:
    """The WebSocket frame of an Engine.IO packet, computed once per packet object."""
    cached: bytes | None = getattr(pkt, "_wsfleet_frame", None)
    if cached is None:
        cached = bytes(_FRAMER.send_data(pkt.encode(), fin=True))
        pkt._wsfleet_frame = cached
    return cached


class LeanQueue:
    """The part of asyncio.Queue that python-engineio and uvicorn use per connection, holding no
    buffer while empty. An asyncio.Queue allocates four deques up front (its items, getters,
    putters and the join event's waiters, about 3 KB); with two queues per WebSocket connection
    that was a sixth of its memory, for queues that are empty nearly all the time. Unbounded, so
    ``put`` never waits. Every waiting getter is woken by a put and re-checks, so a getter
    cancelled (a poll's timeout) loses nothing."""

    __slots__ = ("_getters", "_items", "_joined", "_unfinished")

    def __init__(self) -> None:
        self._items: collections.deque[Any] | None = None
        self._getters: list[asyncio.Future[None]] | None = None
        self._unfinished = 0
        self._joined: asyncio.Future[None] | None = None

    def qsize(self) -> int:
        return len(self._items) if self._items else 0

    def empty(self) -> bool:
        return not self._items

    def put_nowait(self, item: Any) -> None:
        if self._items is None:
            self._items = collections.deque()
        self._items.append(item)
        self._unfinished += 1
        getters, self._getters = self._getters, None
        for getter in getters or ():
            if not getter.done():
                getter.set_result(None)

    async def put(self, item: Any) -> None:
        self.put_nowait(item)

    def get_nowait(self) -> Any:
        items = self._items
        if not items:
            raise asyncio.QueueEmpty
        item = items.popleft()
        if not items:
            self._items = None
        return item

    async def get(self) -> Any:
        while not self._items:
            getter = asyncio.get_running_loop().create_future()
            if self._getters is None:
                self._getters = []
            self._getters.append(getter)
            try:
                await getter
            finally:
                if self._getters is not None and getter in self._getters:
                    self._getters.remove(getter)
        return self.get_nowait()

    def task_done(self) -> None:
        if self._unfinished <= 0:
            raise ValueError("task_done() called too many times")
        self._unfinished -= 1
        if self._unfinished == 0 and self._joined is not None:
            if not self._joined.done():
                self._joined.set_result(None)
            self._joined = None

    async def join(self) -> None:
        if self._unfinished:
            if self._joined is None:
                self._joined = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._joined)


class LeanEvent(asyncio.Event):
    """asyncio.Event without its waiters' deque until something waits (uvicorn's per-connection
    ``writable``, which is waited on only while the client's socket is full)."""

    def __init__(self) -> None:  # asyncio.Event's state, minus the up-front deque
        self._value = False
        self._waiters: collections.deque[asyncio.Future[bool]] = _NO_WAITERS

    async def wait(self) -> Literal[True]:
        if self._value:
            return True
        if self._waiters is _NO_WAITERS:
            self._waiters = collections.deque()
        return await super().wait()


_NO_WAITERS: collections.deque[Any] = collections.deque(maxlen=0)  # shared, never appended to


class _Handshaken:
    """Stands in for wsproto's HTTP/1.1 handshake once the connection is open: wsproto keeps the
    handshake (with h11's state of the upgrade request, about 2 KB) for the connection's life,
    though after the 101 it only asks it for events, of which there are no more."""

    __slots__ = ()

    def events(self) -> Iterator[Any]:
        return iter(())


_HANDSHAKEN = _Handshaken()


class WSProtocol(wsproto_impl.WSProtocol):
    """uvicorn's wsproto WebSocket protocol with the lean queue and event, and without the
    finished handshake (given to uvicorn as its ``ws`` class, main.py)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = LeanQueue()  # type: ignore[assignment]
        writable = self.writable.is_set()
        self.writable = LeanEvent()
        if writable:
            self.writable.set()

    async def send(self, message: Any) -> None:
        await super().send(message)
        conn = self.conn
        if message["type"] == "websocket.accept" and conn.connection is not None and not conn.handshake._events:
            conn.handshake = _HANDSHAKEN  # type: ignore[assignment]


class HttpToolsProtocol(httptools_impl.HttpToolsProtocol):
    """uvicorn's httptools HTTP protocol, let go of once it has handed the connection to the
    WebSocket protocol. Its parser holds six of its bound methods and it holds the parser: a
    reference cycle per WebSocket connection that only the garbage collector freed."""

    def handle_websocket_upgrade(self) -> None:
        super().handle_websocket_upgrade()
        self.parser = None  # type: ignore[assignment]  # the transport is the WebSocket protocol's now


class _DirectQueue(LeanQueue):
    """The socket's send queue; once the socket goes direct, packets skip it and are written."""

    __slots__ = ("sock",)

    def __init__(self, sock: AsyncSocket) -> None:
        super().__init__()
        self.sock = sock

    def put_nowait(self, item: Any) -> None:
        if self.sock.direct is not None:
            if item is None:  # the end of the stream: close the WebSocket
                self.sock._end_websocket()
            elif not self.sock.write(item):
                # Closing (the reader ends the session), or a client that stopped reading: cut it
                # rather than drop one packet silently; it reconnects and recovers from the stream.
                self.sock.direct.transport.abort()
            return
        super().put_nowait(item)


class AsyncSocket(async_socket.AsyncSocket):  # type: ignore[misc]
    # Bytes a transport may hold unsent before writes are refused (the client is not reading).
    max_buffer = 4 * 1024 * 1024
    # python-engineio's (untyped) session state, as used here
    last_ping: float | None
    connected: bool
    upgrading: bool
    upgraded: bool

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = _DirectQueue(self)
        self.direct: Any = None  # uvicorn's WebSocket protocol object once writes go direct
        self._ws: Any = None  # python-engineio's ASGI WebSocket wrapper, while direct
        self._timer: asyncio.TimerHandle | None = None  # the next PING, or the PONG deadline

    def buffered(self) -> int:
        """Bytes written but not yet sent to the client (direct), else packets queued."""
        if self.direct is not None:
            return int(self.direct.transport.get_write_buffer_size())
        return self.queue.qsize()

    def write(self, pkt: eio_packet.Packet) -> bool:
        proto = self.direct
        if proto is None or proto.close_sent or proto.transport.is_closing():
            return False
        if proto.transport.get_write_buffer_size() > self.max_buffer:
            return False
        proto.transport.write(frame(pkt))
        return True

    # --- heartbeat: one timer per socket instead of a task ---------------------------------
    def schedule_ping(self) -> None:
        """After the handshake and after each PONG (python-engineio calls it at both)."""
        if self.last_ping:
            self.last_ping = None
            self._arm(self.server.ping_interval, self._ping)

    def _arm(self, delay: float, callback: Any) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(delay, callback)

    def _ping(self) -> None:
        self._timer = None
        if self.closing or self.closed:
            return
        self.last_ping = time.time()
        self.queue.put_nowait(eio_packet.Packet(eio_packet.PING))
        self._arm(self.server.ping_timeout, self._pong_overdue)

    def _pong_overdue(self) -> None:
        self._timer = None
        if self.last_ping is None or self.closing or self.closed:
            return
        self.server.logger.info("%s: Client is gone, closing socket", self.sid)
        _spawn(self.close(wait=False, abort=False, reason=self.server.reason.PING_TIMEOUT))

    async def close(self, wait: bool = True, abort: bool = False, reason: Any = None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        await super().close(wait=wait, abort=abort, reason=reason)
        self._end_websocket()

    # --- WebSocket -----------------------------------------------------------------------
    async def _websocket_handler(self, ws: Any) -> Any:
        proto = getattr(ws.asgi_send, "__self__", None)
        if not isinstance(proto, wsproto_impl.WSProtocol):
            return await super()._websocket_handler(ws)  # not uvicorn's wsproto: engineio's own
        if self.connected:
            if not await self._upgrade(ws):
                return None
        else:
            self.connected = True
            self.upgraded = True
        self._go_direct(proto, ws)
        await self._read(ws)
        return None

    async def _upgrade(self, ws: Any) -> bool:
        """python-engineio's upgrade from long-polling: PING "probe" -> PONG "probe", then UPGRADE."""
        self.upgrading = True  # hold packet sends during the upgrade
        try:
            probe = eio_packet.Packet(encoded_packet=await ws.wait())
        except OSError:
            self.upgrading = False
            return False
        if probe.packet_type != eio_packet.PING or probe.data != "probe":
            self.server.logger.info("%s: Failed websocket upgrade, no PING packet", self.sid)
            self.upgrading = False
            return False
        await ws.send(eio_packet.Packet(eio_packet.PONG, data="probe").encode())
        await self.queue.put(eio_packet.Packet(eio_packet.NOOP))  # ends the pending poll
        try:
            upgrade = eio_packet.Packet(encoded_packet=await ws.wait())
        except OSError:
            self.upgrading = False
            return False
        if upgrade.packet_type != eio_packet.UPGRADE:
            self.upgraded = False
            self.server.logger.info("%s: Failed websocket upgrade, expected UPGRADE packet", self.sid)
            self.upgrading = False
            return False
        self.upgraded = True
        self.upgrading = False
        return True

    def _go_direct(self, proto: Any, ws: Any) -> None:
        """From now on packets are written at send time; what is queued goes first, in order, in
        this same step (no await in between, so no send can come before it)."""
        self.direct, self._ws = proto, ws
        while not self.queue.empty():
            pkt = self.queue.get_nowait()
            self.queue.task_done()
            if pkt is None:
                self._end_websocket()
                return
            self.write(pkt)

    async def _read(self, ws: Any) -> None:
        limit = self.server.max_http_buffer_size
        while True:
            try:
                data = await ws.wait()
            except (OSError, asyncio.CancelledError):
                break  # closed (or the server is stopping): as python-engineio's reader
            if data is None or len(data) > limit:
                break
            try:
                await self.receive(eio_packet.Packet(encoded_packet=data))
            except exceptions.UnknownPacketError:
                pass
            except exceptions.SocketIsClosedError:
                break
            except Exception:
                self.server.logger.exception("Unknown receive error")
        self._end_websocket()
        await self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_CLOSE)

    def _end_websocket(self) -> None:
        """Send the WebSocket close frame once; the connection's reader then ends the session."""
        ws, self._ws = self._ws, None
        if ws is not None and self.direct is not None and not self.direct.close_sent:
            _spawn(ws.close())

    # --- long-polling ----------------------------------------------------------------------
    async def handle_post_request(self, environ: Any) -> None:
        """python-engineio's, except that a packet no client sends (a NOOP, an unknown type)
        closes the session at once. python-engineio's own answer, a disconnect that waits for a
        GET to drain the queue, hangs the POST (and keeps the session) for as long as the client
        does not poll again, which a hostile client never does."""
        try:
            await super().handle_post_request(environ)
        except exceptions.UnknownPacketError:
            await self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_ERROR)
            raise  # python-engineio answers 400 and forgets the closed session

    async def poll(self) -> list[Any]:
        """python-engineio's poll, with at most MAX_PACKETS_PER_POLL packets per answer."""
        try:
            packets = [await asyncio.wait_for(self.queue.get(), self.server.ping_interval + self.server.ping_timeout)]
            self.queue.task_done()
        except (TimeoutError, asyncio.CancelledError):
            raise exceptions.QueueEmpty() from None
        if packets == [None]:
            return []
        while len(packets) < MAX_PACKETS_PER_POLL or self.upgraded:
            try:
                pkt = self.queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            self.queue.task_done()
            if pkt is None:
                self.queue.put_nowait(None)
                break
            packets.append(pkt)
        return packets


class _Body:
    """python-engineio's request body reader (``wsgi.input``), defined once. python-engineio
    defines its class inside ``translate_request``, so every request created a new class: a
    reference cycle only the garbage collector frees, about 2.5 KB per WebSocket handshake and
    per polling request, and collections that grew with the number of connections."""

    __slots__ = ("event", "payload", "receive")

    def __init__(self, event: dict[str, Any], receive: Any) -> None:
        self.event, self.receive = event, receive
        self.payload: bytes | None = None

    async def read(self, length: int | None = None) -> bytes:
        if self.payload is None and self.event["type"] == "http.request":
            self.payload = self.event.get("body") or b""
            while self.event.get("more_body"):
                self.event = await self.receive()
                if self.event["type"] == "http.request" and (length is None or len(self.payload) < length):
                    self.payload += self.event.get("body") or b""
        payload = self.payload or b""
        if length is None:
            self.payload = b""
            return payload
        self.payload = payload[length:]
        return payload[:length]


def client_ip(scope: Any) -> str:
    """The client's address: the ASGI peer, or, from a trusted proxy, the X-Forwarded-For client
    (uvicorn's proxy-headers middleware rewrites the scope)."""
    return str((scope.get("client") or ("",))[0])


async def translate_request(scope: dict[str, Any], receive: Any, send: Any) -> dict[str, Any]:
    """python-engineio's ASGI ``translate_request`` with ``_Body`` as its reader, and the client's
    address as REMOTE_ADDR (python-engineio says 127.0.0.1 for every client)."""
    event = await receive()
    if event["type"] not in ("http.request", "websocket.connect"):
        return {}
    raw_uri = scope["path"]
    query_string = ""
    if scope.get("query_string"):
        try:
            query_string = scope["query_string"].decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            raw_uri += "?" + query_string
    environ: dict[str, Any] = {
        "wsgi.input": _Body(event, receive),
        "wsgi.errors": sys.stderr,
        "wsgi.version": (1, 0),
        "wsgi.async": True,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "SERVER_SOFTWARE": "asgi",
        "REQUEST_METHOD": scope.get("method", "GET"),
        "PATH_INFO": scope["path"],
        "QUERY_STRING": query_string,
        "RAW_URI": raw_uri,
        "SCRIPT_NAME": "",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": client_ip(scope) or "127.0.0.1",
        "REMOTE_PORT": "0",
        "SERVER_NAME": "asgi",
        "SERVER_PORT": "0",
        "asgi.receive": receive,
        "asgi.send": send,
        "asgi.scope": scope,
    }
    for raw_name, raw_value in scope["headers"]:
        try:
            name = raw_name.upper().decode("utf-8")
            value = raw_value.decode("utf-8")
        except UnicodeDecodeError:
            continue  # as python-engineio: a header that cannot be decoded is skipped
        if name == "CONTENT-TYPE":
            environ["CONTENT_TYPE"] = value
            continue
        if name == "CONTENT-LENGTH":
            environ["CONTENT_LENGTH"] = value
            continue
        key = "HTTP_" + name.replace("-", "_")
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    environ["wsgi.url_scheme"] = environ.get("HTTP_X_FORWARDED_PROTO", "http")
    return environ


_background: set[asyncio.Task[Any]] = set()


def _spawn(coro: Any) -> None:
    task = asyncio.get_running_loop().create_task(coro)
    _background.add(task)
    task.add_done_callback(_background.discard)


def install() -> None:
    async_socket.AsyncSocket = AsyncSocket


def adopt(eio: Any) -> None:
    """Per server: python-engineio's request translation, with the reader class defined once."""
    eio._async = {**eio._async, "translate_request": translate_request}
