"""uvicorn's HTTP and WebSocket protocols, lean per connection and able to hand messages to a socket.

Replaces (uvicorn 0.54.0, wsproto 1.3.2):
- ``uvicorn.protocols.websockets.wsproto_impl.WSProtocol``: ``__init__`` (an asyncio.Queue and
  Event per connection: ``lean.LeanQueue``, ``lean.LeanEvent``), ``connection_made`` (``made``:
  the addresses the HTTP protocol already asked the socket for), the handshake (checked with
  wsproto's private ``H11Handshake._process_connection_request`` without h11 parsing the request
  a second time, and a plain 101 written here: ``upgrade``, ``_accept``), ``data_received`` and
  ``handle_message`` (common frames parsed here, ``frames``; messages handed to an attached
  socket as they are parsed: ``attach``), ``run_asgi`` (the connection stays open when the
  application returns after attaching it) and ``send``;
- ``uvicorn.protocols.http.httptools_impl.HttpToolsProtocol.handle_websocket_upgrade``: the
  request handed over as parsed, and the HTTP protocol let go of (its parser holds six of its
  bound methods and it holds the parser: a reference cycle per WebSocket connection).

Why: memory per idle connection and CPU per message (wsproto's general parser took about 8 us
per message; ``_frames`` well under one). The payload limit is enforced here too: a message
above it closes the connection with 1009 and a reason naming the size and the limit, refused
on the frame's header before its payload arrives.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

from uvicorn.logging import TRACE_LOG_LEVEL
from uvicorn.protocols.http import httptools_impl
from uvicorn.protocols.utils import ClientDisconnected, get_client_addr, get_path_with_query_string
from uvicorn.protocols.websockets import wsproto_impl
from wsproto.connection import Connection, ConnectionType
from wsproto.events import CloseConnection, Ping, Pong
from wsproto.utilities import LocalProtocolError, RemoteProtocolError, generate_accept_token

from wsfleet_workload.fastpath.frames import FAST_OPCODES, message_size, unmask
from wsfleet_workload.fastpath.lean import LeanEvent, LeanQueue

if TYPE_CHECKING:
    from wsfleet_workload.fastpath.socket import DirectSocket


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
    _fast: ToSocket | None = None  # attached, and receiving without wsproto (_frames)
    _rest = b""  # the start of a frame whose end has not arrived (_frames)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue: LeanQueue | ToSocket = LeanQueue()  # type: ignore[assignment]
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

    def attach(self, sock: DirectSocket) -> None:
        """From now on each received message goes to ``sock.feed`` as it is parsed, and the end of
        the connection to ``sock.lost``: no receive queue, no task woken per message, no paused
        reads. What arrived before goes first, in order. The ASGI task may then end (run_asgi)."""
        pending, to_socket = self.queue, ToSocket(sock)
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

    def _frames(self, data: bytes, to_socket: ToSocket) -> bytes | None:
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
            if b0 & 0xF0 != 0x80 or not b1 & 0x80 or opcode not in FAST_OPCODES:
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
            payload = unmask(data[head:start], data[start : start + size])
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
            size = message_size(data, self.message_limit)
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
        if isinstance(queue, ToSocket):
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
        if isinstance(self.queue, ToSocket) and not self.close_sent:
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


class ToSocket:
    """An attached connection's receive "queue": messages go to the socket at once."""

    __slots__ = ("sock",)

    def __init__(self, sock: DirectSocket) -> None:
        self.sock: DirectSocket | None = sock

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
