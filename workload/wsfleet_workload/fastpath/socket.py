"""python-engineio's server socket, writing to an established WebSocket directly.

Replaces (python-engineio 4.15.1, ``engineio.async_socket.AsyncSocket``): ``_websocket_handler``
and ``_upgrade`` (the reader and writer tasks), ``schedule_ping`` (the heartbeat task), ``close``,
and the send queue (``asyncio.Queue``) once the WebSocket is established.

Why: python-engineio runs three tasks per WebSocket connection (a reader that starts a task and
a timeout per received frame, a writer fed by an asyncio queue, and a heartbeat task sleeping
between pings) and hands every packet to the writer: a broadcast to N members wakes N tasks,
each encoding and framing the packet again. Here, once a socket's WebSocket is established
(directly, or by upgrade from long-polling), packets are written to the connection's transport
as they are sent, in call order: framed once per packet (``frames.frame``) and written with no
task in between. What was queued before the switch goes first, in the same step. Receiving
needs no task either: uvicorn's WebSocket protocol hands each message to the socket as it
parses it (``protocol.WSProtocol.attach``, ``DirectSocket.feed``), so the connection's ASGI
task, with its chain of a dozen coroutine frames through uvicorn, python-engineio and
python-socketio (about a third of an idle connection's memory), ends once the socket is
established; messages are still handled one after another in arrival order, as
python-engineio's reader does. The heartbeat is a timer: a PING every ``ping_interval``, and
the session closes when its PONG is not back within ``ping_timeout`` (the Engine.IO rule;
python-engineio's silence timeout on the reader is gone with the reader's timeout, the PONG
deadline covers it). A transport that cannot take more (closing, or its buffer past
``max_buffer``) makes ``write`` refuse, and the hub treats the client as a slow consumer.
Long-polling sockets keep the queue; the heartbeat timer serves them too. A WebSocket served
by another protocol than ``protocol.WSProtocol`` gets python-engineio's own handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from typing import Any

from engineio import packet as eio_packet

from wsfleet_workload.engine import Socket
from wsfleet_workload.fastpath.frames import frame
from wsfleet_workload.fastpath.lean import LeanQueue
from wsfleet_workload.fastpath.protocol import WSProtocol


class DirectQueue(LeanQueue):
    """The socket's send queue; once the socket goes direct, packets skip it and are written."""

    __slots__ = ("sock",)

    def __init__(self, sock: DirectSocket) -> None:
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


class DirectSocket(Socket):
    # Bytes a transport may hold unsent before writes are refused (the client is not reading).
    max_buffer = 4 * 1024 * 1024
    # python-engineio's (untyped) session state, as used here
    last_ping: float | None
    connected: bool
    upgrading: bool

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = DirectQueue(self)
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


_background: set[asyncio.Task[Any]] = set()


def _spawn(coro: Any) -> None:
    task = asyncio.get_running_loop().create_task(coro)
    _background.add(task)
    task.add_done_callback(_background.discard)
