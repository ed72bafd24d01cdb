"""Socket.IO handlers: the handshake, room events, and recovery on reconnect.

Client protocol (namespace "/", every client event is acknowledged with {"ok": bool, ...}):

    handshake auth  {"token"?, "session"?, "rooms"?: {room: {"epoch", "offset"}}}
    join            {"room", "epoch"?, "offset"?}  -> {"ok", "room", "epoch", "offset", "recovered"?}
    leave           {"room"}                       -> {"ok"}
    publish         {"room", "data"}               -> {"ok", "epoch", "offset"}
    presence        {"room"}                       -> {"ok", "members": [{"client", "user"}]}

Right after CONNECT the server sends ``session`` {session, pod, recovered, rooms}; missed messages
of recovered rooms follow it, in order, before any live message.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from typing import Any

import socketio
from redis.exceptions import RedisError

from wsfleet_common import contract as c
from wsfleet_workload import engine
from wsfleet_workload.auth import Authenticator, AuthError, Identity
from wsfleet_workload.config import Config
from wsfleet_workload.fanout import Unavailable
from wsfleet_workload.hub import Hub
from wsfleet_workload.metrics import Metrics, refused
from wsfleet_workload.replay import Replay
from wsfleet_workload.rooms import Client, packet
from wsfleet_workload.wire import (
    BadRequest,
    Handshake,
    Position,
    SocketIOJson,
    SocketIOPacket,
    dumps,
    parse_auth,
    room_arg,
)

log = logging.getLogger("wsfleet.server")

REASON_LABELS = {
    "client disconnect": "client",
    "server disconnect": "server",
    "server shutdown": "drain",
    "slow consumer": "slow_consumer",
    "ping timeout": "ping_timeout",
    "transport close": "transport_close",
    "transport error": "transport_error",
}


class AsyncServer(socketio.AsyncServer):  # type: ignore[misc]
    """python-socketio's server, plus a hook that runs after CONNECT has been queued.

    The ``connect`` handler runs *before* the CONNECT packet is sent; the recovery replay must
    come after it. python-socketio has no public hook for that moment, so this wraps the
    (private, version-pinned) ``_handle_connect``; the client tests catch a change.
    """

    on_connected: Any = None
    on_malformed: Any = None

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        # python-socketio logs a traceback for a packet it cannot decode and tells the client
        # nothing; here the client gets a `bad_request` event naming the problem, and a metric
        # counts it. The connection stays: one bad packet is not worth a reconnect storm.
        try:
            await super()._handle_eio_message(eio_sid, data)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as e:
            if self.on_malformed:
                await self.on_malformed(eio_sid, data, e)

    async def _handle_eio_connect(self, eio_sid: str, environ: dict[str, Any]) -> Any:
        # python-socketio keeps the handshake's environ for the life of the connection; its body
        # reader (holding the handshake's first ASGI event) is of no use after the handshake: a
        # handshake is a GET with no body, and a POST reads its own environ.
        environ.pop("wsgi.input", None)
        return await super()._handle_eio_connect(eio_sid, environ)

    async def _handle_connect(self, eio_sid: str, namespace: str | None, data: Any) -> None:
        sock = self.eio.sockets.get(eio_sid)
        # The CONNECT answer and the session event (with what is replayed) leave in one write
        # (on the fast path; a stock socket's writer task sends what is queued as it comes).
        corked = getattr(sock, "corked", None)
        with corked() if corked is not None else contextlib.nullcontext():
            await super()._handle_connect(eio_sid, namespace, data)
            sid = self.manager.sid_from_eio_sid(eio_sid, namespace or "/")
            if sid is not None and self.manager.is_connected(sid, namespace or "/") and self.on_connected:
                await self.on_connected(sid, eio_sid)


def make_sio(cfg: Config, *, fast: bool) -> AsyncServer:
    """The Socket.IO server, on the fast path (``fastpath``) or on the stock one."""
    if fast:
        # imported once the versions are checked (fastpath/__init__.py)
        from wsfleet_workload.fastpath import asgi  # noqa: PLC0415
        from wsfleet_workload.fastpath.socket import DirectSocket  # noqa: PLC0415

        # The unsent-bytes budget of a WebSocket written directly: about sendQueueMessages 4 KB packets.
        DirectSocket.max_buffer = cfg.send_queue_messages * 4096
        engine.install(DirectSocket)
    else:
        engine.install(engine.Socket)
    sio = AsyncServer(
        async_mode="asgi",
        ping_interval=cfg.ping_interval,
        ping_timeout=cfg.ping_timeout,
        max_http_buffer_size=cfg.max_payload_bytes,
        cors_allowed_origins=list(cfg.cors_allow_origins) or None,  # None: same origin only
        transports=list(cfg.transports),
        # Their per-packet INFO lines are noise; their warnings and handler exceptions are not.
        logger=_quiet("wsfleet.socketio"),
        engineio_logger=_quiet("wsfleet.engineio"),
        json=SocketIOJson,  # orjson for packets (wire.py); it sets python-engineio's too
        serializer=SocketIOPacket,
    )
    if fast:
        asgi.adopt(sio.eio)
    return sio


def _quiet(name: str) -> logging.Logger:
    logger = logging.getLogger(name)
    logger.setLevel(logging.WARNING)
    return logger


class Gateway:
    def __init__(self, cfg: Config, sio: AsyncServer, hub: Hub, replay: Replay, metrics: Metrics) -> None:
        self.cfg, self.sio, self.hub, self.replay, self.metrics = cfg, sio, hub, replay, metrics
        self.auth = Authenticator(cfg.jwt)
        self._pending: dict[str, tuple[Handshake, Identity, str]] = {}
        sio.on_connected = self.connected
        sio.on_malformed = self.malformed
        for name in ("connect", "disconnect", "join", "leave", "publish", "presence"):
            sio.on(name, getattr(self, "on_" + name))

    def _refuse(self, reason: str, message: str, ip: str) -> None:
        refused(self.metrics, "handshake", reason, message, ip=ip)
        raise socketio.exceptions.ConnectionRefusedError(message, {"reason": reason})

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any) -> bool:
        ip = engine.client_ip(environ["asgi.scope"])
        try:
            hs = parse_auth(auth)
        except BadRequest as e:
            self._refuse("bad_request", str(e), ip)
        try:
            identity = self.auth.identify(hs.token)
        except AuthError as e:
            self._refuse("bad_token", str(e), ip)
        self._pending[sid] = (hs, identity, ip)
        return True

    async def connected(self, sid: str, eio_sid: str) -> None:
        hs, identity, ip = self._pending.pop(sid)
        rooms: dict[str, Position | None] = {}
        session = None
        if hs.session is not None:
            try:
                restored = await self.hub.load_session(hs.session, identity.user)
            except RedisError:
                self.metrics.redis_errors.labels("session_load").inc()
                restored = None
            if restored is not None:
                session = hs.session
                rooms.update(dict.fromkeys(restored))
        rooms.update(hs.positions)
        client = Client(sid, eio_sid, session or secrets.token_urlsafe(18), identity, ip, hold=[])
        self.hub.clients[sid] = client
        self.metrics.connects.inc()
        self.metrics.connections.set(len(self.hub.clients))
        results: dict[str, Any] = {}
        try:
            for room, pos in rooms.items():
                try:
                    results[room] = await self.hub.join(client, room, pos)
                    if pos is None:
                        results[room].update(recovered=False, reason="no offset given for this room")
                except (BadRequest, Unavailable, RedisError) as e:
                    results[room] = {"recovered": False, "reason": str(e)}
        finally:
            if sid not in self.hub.clients:  # gone while we joined: undo, or its rooms keep a ghost
                for room in list(client.rooms):
                    await self.hub.leave(client, room, announce=False)
        asked = bool(rooms) or hs.session is not None
        recovered = asked and session is not None and all(r.get("recovered") for r in results.values())
        if hs.session is not None and session is None:
            results.setdefault("*", {"recovered": False, "reason": "session unknown or expired"})
        body = {"session": client.session, "pod": self.cfg.pod_name, "recovered": recovered, "rooms": results}
        # The session event goes first, then everything held meanwhile (replayed, then live).
        assert client.hold is not None  # held since the client was created above
        client.hold.insert(0, packet(c.EVENT_SESSION, body))
        self.hub.release(client)

    async def malformed(self, eio_sid: str, data: Any, error: Exception) -> None:
        head = data[:80] if isinstance(data, str) else f"<{len(data)} bytes>"
        message = f"malformed Socket.IO packet {head!r}: {type(error).__name__}: {error}"
        refused(self.metrics, "packet", "malformed", message, connection=eio_sid)
        sock = self.sio.eio.sockets.get(eio_sid)
        if sock is not None and not sock.closed:
            body = {"error": f"malformed Socket.IO packet ({type(error).__name__}: {error})", "packet": head}
            sock.queue.put_nowait(packet(c.EVENT_BAD_REQUEST, body))

    async def on_disconnect(self, sid: str, reason: str) -> None:
        self._pending.pop(sid, None)
        client = self.hub.clients.get(sid)
        label = REASON_LABELS.get(reason, "other")
        self.metrics.disconnects.labels(label).inc()
        if reason == self.sio.reason.PING_TIMEOUT:
            self.metrics.heartbeat_timeouts.inc()
        if client is not None:
            log.info("disconnected: %s", reason, extra={"client": client.session, "connection": sid, "reason": label})
            await self.hub.remove(client, on_purpose=reason == self.sio.reason.CLIENT_DISCONNECT)
        self.metrics.connections.set(len(self.hub.clients))

    def _who(self, sid: str) -> dict[str, str]:
        client = self.hub.clients.get(sid)
        return {"client": client.session} if client is not None else {}

    def _client(self, sid: str) -> Client:
        client = self.hub.clients.get(sid)
        if client is None:
            raise BadRequest("not connected")
        return client

    async def _answer(self, what: str, sid: str, coro: Any) -> dict[str, Any]:
        try:
            result: dict[str, Any] = await coro
            return {"ok": True, **result}
        except BadRequest as e:
            refused(self.metrics, what, "bad_request", str(e), logging.INFO, connection=sid, **self._who(sid))
            return {"ok": False, "error": f"{what}: {e}"}
        except Unavailable as e:
            refused(self.metrics, what, "unavailable", str(e), logging.INFO, connection=sid, **self._who(sid))
            return {"ok": False, "error": f"{what}: {e}", "retry": True}
        except RedisError as e:
            self.metrics.redis_errors.labels(what).inc()
            return {"ok": False, "error": f"{what}: Redis unavailable ({type(e).__name__})", "retry": True}

    async def on_join(self, sid: str, data: Any = None) -> dict[str, Any]:
        async def run() -> dict[str, Any]:
            client = self._client(sid)
            room = room_arg(data)
            pos = None
            if isinstance(data, dict) and "epoch" in data:
                epoch, offset = data.get("epoch"), data.get("offset")
                if not isinstance(epoch, str) or not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
                    raise BadRequest(
                        f"epoch={epoch!r}, offset={offset!r}: epoch must be a string, offset an integer >= 0"
                    )
                pos = Position(epoch, offset)
            return await self.hub.join(client, room, pos)

        return await self._answer("join", sid, run())

    async def on_leave(self, sid: str, data: Any = None) -> dict[str, Any]:
        async def run() -> dict[str, Any]:
            room = room_arg(data)
            await self.hub.leave(self._client(sid), room)
            await self.hub.save_session(self._client(sid))
            return {"room": room}

        return await self._answer("leave", sid, run())

    async def on_publish(self, sid: str, data: Any = None) -> dict[str, Any]:
        async def run() -> dict[str, Any]:
            client = self._client(sid)
            room = room_arg(data)
            if not isinstance(data, dict) or "data" not in data:
                raise BadRequest("publish needs {room, data}")
            if not (client.identity.may_join(room) and client.identity.may_publish(room)):
                raise BadRequest(f"room={room!r}: the token does not grant publishing here")
            epoch, offset = await self.replay.publish(room, dumps(data["data"]))
            self.metrics.messages_in.labels("client").inc()
            return {"room": room, "epoch": epoch, "offset": offset}

        return await self._answer("publish", sid, run())

    async def on_presence(self, sid: str, data: Any = None) -> dict[str, Any]:
        async def run() -> dict[str, Any]:
            client = self._client(sid)
            room = room_arg(data)
            if not client.identity.may_join(room):
                raise BadRequest(f"room={room!r}: the token does not grant this room")
            if not self.cfg.presence_enabled:
                raise BadRequest("presence is disabled (spec.presence.enabled: false)")
            return {"room": room, "members": await self.hub.presence.members(room)}

        return await self._answer("presence", sid, run())
