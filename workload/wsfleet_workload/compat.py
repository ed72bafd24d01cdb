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
step. Receiving needs no task either: the WebSocket protocol hands each message to the socket as
it parses it (``WSProtocol.attach``, ``AsyncSocket.feed``), so the connection's ASGI task, with its
chain of a dozen coroutine frames through uvicorn, python-engineio and python-socketio (about a
third of an idle connection's memory), ends once the socket is established; messages are still
handled one after another in arrival order, as python-engineio's reader does. The heartbeat is a
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
import contextlib
import logging
import struct
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal, NamedTuple

from engineio import async_socket, exceptions, payload
from engineio import packet as eio_packet
from uvicorn.logging import TRACE_LOG_LEVEL
from uvicorn.protocols.http import httptools_impl
from uvicorn.protocols.utils import ClientDisconnected, get_client_addr, get_path_with_query_string
from uvicorn.protocols.websockets import wsproto_impl
from wsproto.connection import Connection, ConnectionType
from wsproto.events import CloseConnection, Ping, Pong
from wsproto.utilities import LocalProtocolError, RemoteProtocolError, generate_accept_token

MAX_PACKETS_PER_POLL = payload.Payload.max_decode_packets


def frame(pkt: eio_packet.Packet) -> bytes:
    """The WebSocket frame of an Engine.IO packet, computed once per packet object: a server
    frame (unmasked, no extension negotiated, so the same bytes for every connection), final,
    text or binary as the packet encodes. RFC 6455 section 5.2's header is a few bytes;
    wsproto's general-purpose framer took about 8 us per frame to build it (a unit test holds
    this to wsproto's output)."""
    cached: bytes | None = getattr(pkt, "_wsfleet_frame", None)
    if cached is None:
        data = pkt.encode()
        body, first = (data.encode(), 0x81) if isinstance(data, str) else (bytes(data), 0x82)  # FIN + opcode
        size = len(body)
        if size < 126:
            head = bytes((first, size))
        elif size < 65536:
            head = struct.pack("!BBH", first, 126, size)
        else:
            head = struct.pack("!BBQ", first, 127, size)
        cached = head + body
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


class WSProtocol(wsproto_impl.WSProtocol):
    """uvicorn's wsproto WebSocket protocol with the lean queue and event, an accept written
    without h11 (after which no handshake object is left), with the payload limit, and able to
    hand its messages to an Engine.IO socket as they are parsed (``attach``), after which the
    connection needs no task at all and reads common frames itself (``_frames``); given to
    uvicorn as its ``ws`` class by ``ws_protocol``, main.py."""

    # Set per server by ws_protocol(): a message above message_limit bytes closes the connection
    # with 1009 and a reason naming the size and the limit; on_too_big(scope, reason) reports it.
    message_limit: int | None = None
    on_too_big: Callable[[Any, str], None] | None = None
    # Per connection, set on the instance only when they change (memory: most stay as they are)
    _fresh = False  # a connection framed by wsproto that has been fed nothing yet
    _fast: _ToSocket | None = None  # attached, and receiving without wsproto (_frames)
    _rest = b""  # the start of a frame whose end has not arrived (_frames)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue: LeanQueue | _ToSocket = LeanQueue()  # type: ignore[assignment]
        writable = self.writable.is_set()
        self.writable = LeanEvent()
        if writable:
            self.writable.set()
        self._request: Upgrade | None = None  # an upgrade checked without h11, until answered

    def made(self, transport: Any, server: Any, client: Any, scheme: str) -> None:
        """uvicorn's connection_made, given the addresses the HTTP protocol already asked the
        socket for (two system calls per connection fewer)."""
        self.connections.add(self)
        self.transport = transport
        self.server, self.client, self.scheme = server, client, "wss" if scheme == "https" else "ws"
        if self.logger.level <= TRACE_LOG_LEVEL:
            self.logger.log(
                TRACE_LOG_LEVEL, "%sWebSocket connection made", "{}:{} - ".format(*client) if client else ""
            )

    # --- the handshake ---------------------------------------------------------------------
    def upgrade(self, request: Upgrade) -> None:
        """The upgrade request as httptools parsed it (HttpToolsProtocol). wsproto's handshake
        checks it without h11 parsing it a second time, and a plain accept is written here
        (``_accept``). A request wsproto refuses, an accept with headers of the app's own, and
        every refusal by the app go through wsproto and h11 whole (``_replay``)."""
        event = None
        if not self.config.ws_per_message_deflate:
            with contextlib.suppress(RemoteProtocolError):  # answered below, by wsproto
                event = self.conn.handshake._process_connection_request(request)  # type: ignore[arg-type]
        if event is None:
            self.data_received(request.encode())
            return
        self._request = request
        self.handle_connect(event)

    def _replay(self) -> None:
        """Hand the request to wsproto and h11 as bytes, for an answer other than a plain accept."""
        request, self._request = self._request, None
        if request is not None:
            self.conn.receive_data(request.encode())
            for _ in self.conn.events():  # the Request, known already
                pass

    def _accept(self, request: Upgrade, subprotocol: str | None) -> None:
        """wsproto's 101 for the request, without extensions (deflate is off): h11 would only
        serialize it. The connection is then framed by wsproto, with no handshake object left."""
        if self.logger.isEnabledFor(logging.DEBUG):  # the line main.py drops above DEBUG
            self.logger.info('%s - "WebSocket %s" [accepted]', get_client_addr(self.scope),
                             get_path_with_query_string(self.scope))  # fmt: skip
        key = next(value for name, value in request.headers if name == b"sec-websocket-key")
        out = [_SWITCHING, generate_accept_token(key), b"\r\n"]
        if subprotocol is not None:
            if subprotocol not in self.scope["subprotocols"]:
                raise LocalProtocolError(f"unexpected subprotocol {subprotocol}")
            out += [b"Sec-WebSocket-Protocol: ", subprotocol.encode("ascii"), b"\r\n"]
        for name, value in self.default_headers:
            out += [name, b": ", value, b"\r\n"]
        out.append(b"\r\n")
        if not self.transport.is_closing():
            self.handshake_complete = True
            self.conn = Connection(ConnectionType.SERVER, [])  # type: ignore[assignment]
            self._fresh = True
            # uvloop writes what a loop turn wrote to a stream together: this 101 and the
            # Engine.IO OPEN packet that follows in the same step leave in one segment.
            self.transport.write(b"".join(out))
            self.start_keepalive()

    def send_500_response(self) -> None:
        self._replay()
        super().send_500_response()

    def attach(self, sock: AsyncSocket) -> None:
        """From now on each received message goes to ``sock.feed`` as it is parsed, and the end of
        the connection to ``sock.lost``: no receive queue, no task woken per message, no paused
        reads. What arrived before goes first, in order. The ASGI task may then end (run_asgi)."""
        pending, to_socket = self.queue, _ToSocket(sock)
        self.queue = to_socket
        if self._fresh:  # wsproto holds no part of the stream: frames are read here from now on
            self._fast = to_socket
        while isinstance(pending, LeanQueue) and not pending.empty() and to_socket.sock is not None:
            to_socket.put_nowait(pending.get_nowait())
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()

    # --- receiving -------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self._fast is None:
            if self._fresh:
                self._fresh = False
            super().data_received(data)
            return
        if self._rest:
            data, self._rest = self._rest + data, b""
        rest = self._frames(data, self._fast)
        if rest is not None:  # a frame for wsproto: it reads the stream from there on
            self._fast = None
            super().data_received(rest)

    def _frames(self, data: bytes, to_socket: _ToSocket) -> bytes | None:
        """Client frames as clients send them: final, masked, text, binary, PING or PONG, the
        length in its shortest form. Each message goes to the socket as it is read (a frame cut
        by TCP waits for its end in ``_rest``). At the first frame of any other kind (a
        fragment, a CLOSE, reserved bits, an unmasked frame, text that is not UTF-8, ...) the
        rest of the stream is returned for wsproto, which handles it as it always did (so is a
        message of more than 64 KiB still arriving: wsproto buffers it without copying). wsproto's
        general parser took about 8 us per message; this takes well under one."""
        end, i = len(data), 0
        while i < end:
            if self.close_sent:  # the closing handshake is wsproto's
                return data[i:]
            if end - i < 2:
                break
            b0, b1 = data[i], data[i + 1]
            opcode, size, head = b0 & 0x0F, b1 & 0x7F, i + 2
            if b0 & 0xF0 != 0x80 or not b1 & 0x80 or opcode not in _FAST_OPCODES:
                return data[i:]
            if size == 126:
                if end - head < 2:
                    break
                size, head = int.from_bytes(data[head : head + 2], "big"), head + 2
                if size < 126:
                    return data[i:]  # not the shortest form
            elif size == 127:
                if end - head < 8:
                    break
                size, head = int.from_bytes(data[head : head + 8], "big"), head + 8
                if size < 65536 or size >= 1 << 63:
                    return data[i:]
            if opcode & 0x08 and size > 125:
                return data[i:]  # a control frame that long is an error wsproto names
            if not opcode & 0x08 and self._over_limit(size):  # refused on its header, before its payload
                return None
            start = head + 4
            if end - start < size:
                if size > 65536:
                    return data[i:]  # a large message arriving piece by piece: wsproto's buffer
                break
            payload = _unmask(data[head:start], data[start : start + size])
            if opcode == 1:
                try:
                    text = payload.decode()
                except UnicodeDecodeError:
                    return data[i:]  # wsproto's error: uvicorn ends the connection
                to_socket.feed(text)
            elif opcode == 2:
                to_socket.feed(payload)
            elif opcode == 9:
                self.handle_ping(Ping(payload=payload))
            else:
                self.handle_pong(Pong(payload=payload))
            i = start + size
        if i < end:
            self._rest = data[i:]
        return None

    def handle_message(self, event: Any) -> None:
        if event.message_finished and self.buffer.value is None:  # a message in one frame
            data = event.data
            size = _size(data, self.message_limit)
        else:
            try:
                self.buffer.extend(event)
            except wsproto_impl.FrameTooLargeError:  # uvicorn's hard stop (ws_max_size), still arriving
                self._too_big(f"more than {self.buffer.length}")
                return
            if not event.message_finished:
                return
            size = self.buffer.length
            message = self.buffer.to_message()
            self.buffer.clear()
            data = message.get("text", message.get("bytes"))
        if self._over_limit(size):
            return
        queue = self.queue
        if isinstance(queue, _ToSocket):
            queue.feed(data)
            return
        queue.put_nowait({"type": "websocket.receive", "text": data} if isinstance(data, str) else
                         {"type": "websocket.receive", "bytes": data})  # fmt: skip
        if not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    def _over_limit(self, size: int) -> bool:
        """A message of ``size`` bytes above the payload limit: the connection closes with 1009."""
        if self.message_limit is None or size <= self.message_limit:
            return False
        self._too_big(size)
        return True

    def _too_big(self, size: int | str) -> None:
        reason = f"message too big: {size} bytes, limit {self.message_limit}"
        if self.on_too_big is not None:
            self.on_too_big(self.scope, f"{reason}: closing with 1009")
        self.buffer.clear()
        self.close_sent = True
        self.queue.put_nowait({"type": "websocket.disconnect", "code": 1009, "reason": reason})
        if not self.transport.is_closing():
            self.transport.write(self.conn.send(CloseConnection(code=1009, reason=reason)))
            self.transport.close()

    async def run_asgi(self) -> None:
        """uvicorn's, except that the connection stays open when the application returns after
        attaching it to a socket."""
        try:
            result = await self.app(self.scope, self.receive, self.send)  # type: ignore[func-returns-value]
        except ClientDisconnected:
            pass
        except BaseException:
            self.logger.exception("Exception in ASGI application\n")
            self.send_500_response()
        else:
            if not self.handshake_complete:
                self.logger.error("ASGI callable returned without completing handshake.")
                self.send_500_response()
            elif result is not None:
                self.logger.error("ASGI callable should return None, but returned '%s'.", result)
        if isinstance(self.queue, _ToSocket) and not self.close_sent:
            return  # attached: the socket's feed and lost carry the connection from here
        if self.close_timer is None:
            self.transport.close()

    async def send(self, message: Any) -> None:
        request = self._request
        if request is not None and not self.handshake_complete:
            if message["type"] == "websocket.accept" and not message.get("headers"):
                await self.writable.wait()
                if self.disconnected:
                    raise ClientDisconnected()
                self._request = None
                self._accept(request, message.get("subprotocol"))
                return
            self._replay()
        await super().send(message)


_FAST_OPCODES = frozenset((0x1, 0x2, 0x9, 0xA))  # text, binary, ping, pong


def _unmask(mask: bytes, payload: bytes) -> bytes:
    """RFC 6455 section 5.3: the payload XORed with the 4-byte mask, repeated, done on the whole
    payload as one integer (a third of the time of wsproto's XorMaskerSimple, which translates
    every fourth byte through a table; a unit test holds the two to the same output)."""
    size = len(payload)
    if not size:
        return b""
    key = int.from_bytes((mask * (size // 4 + 1))[:size], "little")
    return (int.from_bytes(payload, "little") ^ key).to_bytes(size, "little")


def _size(data: str | bytes, limit: int | None) -> int:
    """A message's size in bytes; text is encoded only when its length in characters cannot
    tell on which side of the limit it falls (UTF-8 takes 1-4 bytes per character)."""
    if isinstance(data, bytes) or limit is None or len(data) > limit or 4 * len(data) <= limit:
        return len(data)
    return len(data.encode())


class _ToSocket:
    """An attached connection's receive "queue": messages go to the socket at once."""

    __slots__ = ("sock",)

    def __init__(self, sock: AsyncSocket) -> None:
        self.sock: AsyncSocket | None = sock

    def empty(self) -> bool:
        return True

    def feed(self, data: str | bytes) -> None:
        if self.sock is not None:
            self.sock.feed(data)

    def put_nowait(self, message: dict[str, Any]) -> None:
        if message["type"] == "websocket.receive":
            text = message.get("text")
            self.feed(text if text is not None else message["bytes"])
        elif self.sock is not None:  # websocket.disconnect: once; the socket (it holds the protocol) let go of
            sock, self.sock = self.sock, None
            sock.lost()


def ws_protocol(message_limit: int, on_too_big: Callable[[Any, str], None]) -> type[WSProtocol]:
    """The WebSocket protocol class for one server: its payload limit and how it reports a breach."""
    return type("WSProtocol", (WSProtocol,), {"message_limit": message_limit, "on_too_big": staticmethod(on_too_big)})


class HttpToolsProtocol(httptools_impl.HttpToolsProtocol):
    """uvicorn's httptools HTTP protocol, let go of once it has handed the connection to the
    WebSocket protocol. Its parser holds six of its bound methods and it holds the parser: a
    reference cycle per WebSocket connection that only the garbage collector freed."""

    def handle_websocket_upgrade(self) -> None:
        protocol_class = self.ws_protocol_class
        if not (isinstance(protocol_class, type) and issubclass(protocol_class, WSProtocol)):
            super().handle_websocket_upgrade()
        else:  # uvicorn's, with the request handed over as parsed instead of as bytes to parse again
            if self.logger.level <= TRACE_LOG_LEVEL:
                prefix = "{}:{} - ".format(*self.client) if self.client else ""
                self.logger.log(TRACE_LOG_LEVEL, "%sUpgrading to WebSocket", prefix)
            self.connections.discard(self)
            protocol = protocol_class(config=self.config, server_state=self.server_state, app_state=self.app_state)
            protocol.made(self.transport, self.server, self.client, self.scheme or "http")
            protocol.upgrade(Upgrade(self.scope["method"].encode(), self.url, self.scope["headers"]))
            self.transport.set_protocol(protocol)
        self.parser = None  # type: ignore[assignment]  # the transport is the WebSocket protocol's now


class Upgrade(NamedTuple):
    """A WebSocket upgrade request as httptools parsed it; what wsproto's handshake reads of h11's."""

    method: bytes
    target: bytes
    headers: Iterable[tuple[bytes, bytes]]  # a list

    def encode(self) -> bytes:
        """The request as uvicorn hands it to wsproto."""
        out = [self.method, b" ", self.target, b" HTTP/1.1\r\n"]
        for name, value in self.headers:
            out += [name, b": ", value, b"\r\n"]
        out.append(b"\r\n")
        return b"".join(out)


_SWITCHING = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "


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
                # Closing (the protocol's lost() ends the session), or a client that stopped reading: cut it
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
        self._inbox: list[eio_packet.Packet | None] | None = None  # received, being handled (attached)
        self._corked: bytearray | None = None  # frames held for one write (corked)

    def buffered(self) -> int:
        """Bytes written but not yet sent to the client (direct), else packets queued."""
        if self.direct is not None:
            return int(self.direct.transport.get_write_buffer_size()) + len(self._corked or b"")
        return self.queue.qsize()

    def write(self, pkt: eio_packet.Packet) -> bool:
        proto = self.direct
        if proto is None or proto.close_sent or proto.transport.is_closing():
            return False
        corked = self._corked
        if corked is None:
            if proto.transport.get_write_buffer_size() > self.max_buffer:
                return False
            proto.transport.write(frame(pkt))
        else:  # held frames count against the budget as much as unsent ones
            if proto.transport.get_write_buffer_size() + len(corked) > self.max_buffer:
                return False
            corked += frame(pkt)
        return True

    @contextlib.contextmanager
    def corked(self) -> Iterator[None]:
        """Frames written meanwhile leave together, in one write, at the end (or at the close).
        uvloop already joins what one loop turn writes to a stream; this holds frames across the
        awaits in between, as when a client comes back: Socket.IO's CONNECT answer, then (after
        Redis has given its session and what it missed) the session event and the replayed
        messages. One system call and one TCP segment, not one per await."""
        if self.direct is None or self._corked is not None:
            yield  # long-polling (a GET takes what is queued), or corked already
            return
        self._corked = bytearray()
        try:
            yield
        finally:
            self._uncork()

    def _uncork(self) -> None:
        held, self._corked = self._corked, None
        proto = self.direct
        if held and proto is not None and not proto.close_sent and not proto.transport.is_closing():
            proto.transport.write(held)

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
        """pingTimeout has run out since the PING: the client is gone unless its PONG is waiting
        to be read. uvloop (libuv) runs the timers that are due before it reads sockets, so a
        process that was held up past pingTimeout (its cgroup's CPU quota spent on a busy node,
        a long pause) would close every client whose PONG came meanwhile. The decision waits two
        turns of the loop: the second runs after a read of every socket that has data."""
        self._timer = None
        if self.last_ping is None or self.closing or self.closed:
            return
        loop = asyncio.get_running_loop()
        loop.call_soon(loop.call_soon, self._gone)

    def _gone(self) -> None:
        if self.last_ping is None or self.closing or self.closed or self._timer is not None:
            return  # the PONG was read (and the next PING armed), or the socket closed meanwhile
        self.server.logger.info("%s: Client is gone, closing socket", self.sid)
        # The transport is closed without an Engine.IO CLOSE packet. python-engineio sends one
        # unless its own overdue check stops it (time.time() against this timer's monotonic
        # clock: a timer on time can still send it), and python-socketio's client takes a CLOSE
        # for "server disconnect" and never reconnects: a client that was only slow was lost
        # for good (seen in the 1000-client rolling restart). Without it, every client sees its
        # transport end and reconnects with its offsets; Node's engine.io closes a timed-out
        # WebSocket the same way.
        _spawn(self.close(wait=False, abort=True, reason=self.server.reason.PING_TIMEOUT))

    async def close(self, wait: bool = True, abort: bool = False, reason: Any = None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        await super().close(wait=wait, abort=abort, reason=reason)
        self._end_websocket()

    # --- WebSocket -----------------------------------------------------------------------
    async def _websocket_handler(self, ws: Any) -> Any:
        proto = getattr(ws.asgi_send, "__self__", None)
        if not isinstance(proto, WSProtocol):
            return await super()._websocket_handler(ws)  # not our protocol: python-engineio's own
        if self.connected:
            if not await self._upgrade(ws):
                return None
        else:
            self.connected = True
            self.upgraded = True
        self._go_direct(proto, ws)
        proto.attach(self)  # the connection's task ends here; the protocol calls feed and lost
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

    def feed(self, data: str | bytes) -> None:
        """A message from the client, as the attached protocol parses it: python-engineio's
        reader loop, inverted. A PONG is taken at once; messages and the client's CLOSE are
        handled one after another in arrival order, as python-engineio's reader does (python-socketio
        runs a CONNECT to its end before the next packet, and an event in a task of its own)."""
        try:
            pkt = eio_packet.Packet(encoded_packet=data)
        except Exception:
            self.server.logger.exception("Unknown receive error")
            return
        kind = pkt.packet_type
        if kind == eio_packet.PONG:
            self.schedule_ping()
        elif kind in (eio_packet.MESSAGE, eio_packet.CLOSE):
            self._take(pkt)
        elif kind == eio_packet.UPGRADE:
            self.queue.put_nowait(eio_packet.Packet(eio_packet.NOOP))
        # anything else (a PING, a NOOP, an unknown type) is ignored, as python-engineio does

    def lost(self) -> None:
        """The attached connection ended (closed by either side, or lost): after what came before."""
        self._take(None)

    def _take(self, pkt: eio_packet.Packet | None) -> None:
        if self._inbox is None:  # no handler running: a task for this packet and any that follow
            self._inbox = [pkt]
            _spawn(self._handle_inbox())
        else:
            self._inbox.append(pkt)

    async def _handle_inbox(self) -> None:
        inbox = self._inbox or []
        try:
            for pkt in inbox:  # grows while a handler awaits
                if pkt is None or pkt.packet_type == eio_packet.CLOSE:
                    closed = self.server.reason.CLIENT_DISCONNECT
                    await self._finish(self.server.reason.TRANSPORT_CLOSE if pkt is None else closed)
                    break
                if self.closed:
                    continue
                try:
                    await self.server._trigger_event("message", self.sid, pkt.data)
                except Exception:  # as python-engineio's reader: logged, and the next packet goes on
                    self.server.logger.exception("Unknown receive error")
        finally:
            self._inbox = None

    async def _finish(self, reason: Any) -> None:
        self._end_websocket()
        await self.close(wait=False, abort=True, reason=reason)
        # python-engineio forgets a socket whose handler returns closed (or, later, in its service task);
        # an attached socket's handler returned while it was open
        if self.server.sockets.get(self.sid) is self:
            del self.server.sockets[self.sid]

    def _end_websocket(self) -> None:
        """Send the WebSocket close frame once; the protocol then reports the end (lost), which ends the session."""
        if self._corked is not None:
            self._uncork()  # what was written before the close goes first
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
