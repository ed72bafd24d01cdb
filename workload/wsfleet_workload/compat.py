"""Three changes to python-engineio's server socket, applied at start-up.

1. Interoperability. A long-polling GET answers with every packet queued since the last one. The Python client
(python-engineio) refuses a payload of more than 16 packets (``Payload.max_decode_packets``, a
guard against decode bombs) and drops the connection as "transport error"; a busy room or a
recovery replay queues more than that. The JS client has no such limit. So a poll here returns
at most 16 packets and leaves the rest for the next poll, which the client sends at once.

2. Speed. python-engineio hands every packet for a WebSocket to a writer task per connection
through an asyncio queue: a broadcast to N members wakes N tasks, and each encodes the packet
and frames it again. Once a socket's WebSocket is established, packets are instead written to the
connection's transport as they are sent, in call order: framed once per packet (server frames
are unmasked and no extension is negotiated, so the bytes are the same for every member) and
written with no task in between. Ordering holds because the switch drains what is queued first,
in the writer's own step, and everything after it is written at once by whoever sends it. Only
the end-of-stream marker (None) still goes through the queue, to stop the writer. A transport
that cannot take more (closing, or its buffer past ``max_buffer``) makes ``write`` refuse, and
the hub treats the client as a slow consumer.

3. Bad input. A long-polling POST carrying a packet no client sends (a NOOP, an unknown type)
closes the session and gets 400 at once, instead of hanging until the client polls again.

python-engineio creates its sockets from ``engineio.async_socket.AsyncSocket`` with no hook, so
the class is swapped in that module. The JS and Python client tests (both transports, upgrades,
replays, drains) fail if either change stops working.
"""

from __future__ import annotations

import asyncio
from typing import Any

from engineio import async_socket, exceptions, payload
from engineio import packet as eio_packet
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


class _DirectQueue(asyncio.Queue[Any]):
    """The socket's send queue; once the socket goes direct, packets skip it and are written."""

    def __init__(self, sock: AsyncSocket) -> None:
        super().__init__()
        self.sock = sock

    def put_nowait(self, item: Any) -> None:
        if item is not None and self.sock.direct is not None:
            if not self.sock.write(item):
                # Closing (the reader ends the session), or a client that stopped reading: cut it
                # rather than drop one packet silently; it reconnects and recovers from the stream.
                self.sock.direct.transport.abort()
            return
        super().put_nowait(item)


class AsyncSocket(async_socket.AsyncSocket):  # type: ignore[misc]
    # Bytes a transport may hold unsent before writes are refused (the client is not reading).
    max_buffer = 4 * 1024 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = _DirectQueue(self)
        self.direct: Any = None  # uvicorn's WebSocket protocol object once writes go direct
        self._ws: Any = None

    async def _websocket_handler(self, ws: Any) -> Any:
        # engineio's ASGI WebSocket wrapper keeps uvicorn's bound `send`; its object holds the transport.
        self._ws = getattr(ws.asgi_send, "__self__", None)
        return await super()._websocket_handler(ws)

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

    def _go_direct(self) -> None:
        """In the writer's step: from now on packets are written at send time. What is already
        queued goes first, in order: poll()'s direct loop drains it before the writer yields
        (Queue.get on a non-empty queue does not suspend, so no send can come in between)."""
        proto = self._ws
        if proto is None or not hasattr(proto, "transport") or not getattr(proto, "handshake_complete", False):
            return  # not uvicorn's wsproto protocol: keep engineio's writer
        self.direct = proto

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
        """python-engineio's poll, with at most MAX_PACKETS_PER_POLL packets per answer; on an
        established WebSocket it switches the socket to direct writes and then only waits for
        the end of the stream."""
        if self.upgraded and self.direct is None and self._ws is not None:
            self._go_direct()
        if self.direct is not None:
            # Everything but the end marker is written at send time; no timeout here: pings are
            # written directly too, and the reader ends the session (and this wait) on silence.
            while True:
                try:
                    pkt = await asyncio.Queue.get(self.queue)
                except asyncio.CancelledError:
                    raise exceptions.QueueEmpty() from None  # as python-engineio's poll does
                self.queue.task_done()
                if pkt is None:
                    return []
                self.write(pkt)
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


def install() -> None:
    async_socket.AsyncSocket = AsyncSocket
