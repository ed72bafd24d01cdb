"""The workload assembled: one ASGI app in front of python-socketio, plus background tasks.

Routes on the public port (the metrics have their own port):

    /socket.io/            Socket.IO, behind the handshake gate (503 + Retry-After while draining
                           or above a handshake rate; frames above the payload limit close 1009)
    everything else        api.py: health, the preStop hook, the publish and presence API, the demo
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import Any
from urllib.parse import parse_qs

import socketio
from prometheus_client import start_http_server

from wsfleet_common import contract as c
from wsfleet_workload import fastpath, redisconn
from wsfleet_workload.api import Api, Message, Receive, Scope, Send, json_response, read_body, refuse, replay_body
from wsfleet_workload.auth import HandshakeLimiter
from wsfleet_workload.collector import Collector
from wsfleet_workload.config import Config
from wsfleet_workload.drain import Drain
from wsfleet_workload.engine import client_ip
from wsfleet_workload.fanout import Listener
from wsfleet_workload.health import Health
from wsfleet_workload.hub import Hub
from wsfleet_workload.metrics import Metrics, refused
from wsfleet_workload.presence import Presence
from wsfleet_workload.replay import Replay
from wsfleet_workload.server import Gateway, make_sio
from wsfleet_workload.sessions import Sessions
from wsfleet_workload.wire import Keys

log = logging.getLogger("wsfleet.app")


class Workload:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.exiting_now = False  # a second signal: no drain, no lifespan shutdown (main.Server)
        self.metrics = Metrics()
        # A reconnect wave runs hundreds of commands at once: they queue for one of 64 connections
        # (up to 5 s) instead of failing as the default pool does when it runs out.
        self.redis = redisconn.connect(cfg, pool=64, socket_timeout=5)
        self.keys = Keys(cfg.key_prefix)
        self.replay = Replay(self.redis, self.keys, ttl=cfg.replay_ttl, max_messages=cfg.replay_max_messages)
        self.fast_path = fastpath.choose(cfg.fast_path)
        self._report_fast_path()
        self.presence = Presence(self.redis, self.keys, cfg.presence_ttl, pipelined=self.fast_path.on)
        self.sio = make_sio(cfg, fast=self.fast_path.on)
        self.listener = Listener(
            # its own client: a blocked pub/sub read must never wait behind commands, nor they behind it
            redisconn.connect(cfg, pool=None, socket_timeout=None),
            self.redis,
            f"{cfg.key_prefix}:heartbeat:{secrets.token_hex(8)}",  # this process's own
            on_message=self._on_message,
            on_resubscribed=self._catch_up,
            metrics=self.metrics,
        )
        self.hub = Hub(
            cfg,
            self.sio.eio.sockets,
            self.keys,
            history=self.replay,
            presence=self.presence,
            sessions=Sessions(self.redis, self.keys, cfg.replay_ttl),
            listener=self.listener,
            metrics=self.metrics,
        )
        self.gateway = Gateway(cfg, self.sio, self.hub, self.replay, self.metrics)
        self.drain = Drain(
            self.hub,
            self.metrics,
            prestop_seconds=cfg.prestop_seconds,
            drain_seconds=cfg.drain_seconds,
            pod=cfg.pod_name,
        )
        self.health = Health(cfg.pod_name, self.redis, self.listener, self.drain, self.hub)
        self.api = Api(
            cfg, health=self.health, drain=self.drain, replay=self.replay, presence=self.presence, metrics=self.metrics
        )
        self.limiter = HandshakeLimiter(cfg.handshakes_per_second, cfg.handshakes_per_second_per_ip)
        self.sio_app = socketio.ASGIApp(self.sio, socketio_path=c.SOCKETIO_PATH.strip("/"))
        # Engine.IO sessions, counted at the handshake: a storm is seen before its CONNECTs are through
        self.collector = Collector(lambda: len(self.sio.eio.sockets), on_burst=self.metrics.gc_bursts.inc)
        self._tasks: list[asyncio.Task[None]] = []
        self._metrics_server: Any = None

    def _report_fast_path(self) -> None:
        choice = self.fast_path
        self.metrics.fast_path.set(int(choice.on))
        for m in choice.mismatches:
            self.metrics.fast_path_mismatch.labels(m.library, m.installed, m.expected).set(1)
        (log.warning if choice.mismatches else log.info)(choice.describe())

    # The listener is made before the hub (which subscribes through it): these hand its frames on.
    def _on_message(self, channel: str, data: str) -> None:
        self.hub.rooms.on_message(channel, data)

    async def _catch_up(self) -> None:
        await self.hub.rooms.catch_up_all()

    # --- life cycle -----------------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self.listener.run(), name="listener"),
            loop.create_task(self.hub.upkeep(), name="upkeep"),
            loop.create_task(self.health.tick(), name="loop-lag"),
        ]
        if self.cfg.metrics_port:
            self._metrics_server, _ = start_http_server(self.cfg.metrics_port, self.cfg.host, self.metrics.registry)
        self.collector.start()
        self.health.steps["serving"] = True
        log.info(
            "workload %s serving on :%d (metrics :%d), transports %s, heartbeat %ds+%ds, drain %ds",
            self.cfg.pod_name,
            self.cfg.port,
            self.cfg.metrics_port,
            ",".join(self.cfg.transports),
            self.cfg.ping_interval,
            self.cfg.ping_timeout,
            self.cfg.drain_seconds,
        )

    async def stop(self) -> None:
        self.collector.stop()
        await self.hub.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server.server_close()
        # A client built on an explicit pool leaves the pool's connections open on aclose()
        await self.redis.aclose(close_connection_pool=True)
        await self.listener.redis.aclose(close_connection_pool=True)

    # --- ASGI -------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        path: str = scope.get("path", "")
        if path.startswith(c.SOCKETIO_PATH):
            await self._socketio(scope, receive, send)
        elif kind == "http":
            await self.api(scope, receive, send, path)
        else:
            await send({"type": "websocket.close", "code": 1008, "reason": f"no WebSocket endpoint at {path}"})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            try:
                message = await receive()
            except asyncio.CancelledError:
                # A second signal forces the exit: uvicorn skips the lifespan shutdown, and the
                # event loop's end cancels this wait. That is the exit asked for, not an error
                # (uvicorn would log "Exception in 'lifespan' protocol" with a traceback).
                if self.exiting_now:
                    return
                raise
            if message["type"] == "lifespan.startup":
                await self.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _socketio(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw_query: bytes = scope.get("query_string", b"")
        # parse_qs only where "sid" can be in it (possibly %-encoded): not in a handshake's
        query = parse_qs(raw_query.decode("latin-1")) if b"sid" in raw_query or b"%" in raw_query else {}
        if "sid" not in query:  # a new Engine.IO session: the handshake
            refusal = self._gate(scope)
            if refusal is not None:
                reason, retry_after, message = refusal
                refused(self.metrics, "handshake", reason, message, ip=client_ip(scope))
                await refuse(scope, send, 503, {"error": message, "reason": reason}, retry_after)
                return
        limit = self.cfg.max_payload_bytes
        # WebSocket messages above the limit are closed with 1009: by the protocol, on the frame's
        # header (fastpath/protocol.py), or here on the stock path, once uvicorn has the message.
        if scope["type"] == "websocket" and not self.fast_path.on:
            receive = self._bounded(scope, receive, send)
        if scope["type"] == "http" and scope.get("method") == "POST":
            sid = query.get("sid", [""])[0]
            sock = self.sio.eio.sockets.get(sid)
            if sock is not None and sock.closed:
                # A session closed since the client's last request (its heartbeat ran out):
                # python-engineio answers a POST to it with a 500 and a traceback until its
                # service task forgets the session. The client is told, and reconnects.
                await json_response(send, 400, {"error": f"session {sid} is closed; start a new one"})
                return
            # python-engineio reads a whole POST body into memory and trusts Content-Length;
            # a chunked body has none. Read it here, bounded, and hand it on.
            length = dict(scope.get("headers") or []).get(b"content-length")
            body = None if length is not None and int(length) > limit else await read_body(receive, limit)
            if body is None:
                size = f"{int(length)} bytes" if length is not None else f"more than {limit} bytes (chunked)"
                message = f"payload too large: {size}, limit {limit}"
                refused(self.metrics, "post", "payload_too_large", message, ip=client_ip(scope))
                await json_response(send, 413, {"error": message})
                return
            receive = replay_body(body)
            if length is None:
                scope = {**scope, "headers": [*scope.get("headers", []), (b"content-length", str(len(body)).encode())]}
        await self.sio_app(scope, receive, send)

    def _gate(self, scope: Scope) -> tuple[str, int, str] | None:
        if self.drain.refusing:
            return "draining", 1, f"pod {self.cfg.pod_name} is draining; connect to another pod"
        verdict = self.limiter.check(client_ip(scope))
        if verdict is not None:
            reason, retry_after = verdict
            which = "this client IP" if reason == "rate_limit_ip" else "this pod"
            rate = (
                self.cfg.handshakes_per_second_per_ip if reason == "rate_limit_ip" else self.cfg.handshakes_per_second
            )
            return reason, retry_after, f"too many handshakes from {which} (limit {rate}/s); retry in {retry_after}s"
        return None

    def _bounded(self, scope: Scope, receive: Receive, send: Send) -> Receive:
        """The stock path's payload limit on a WebSocket's messages: above it, the connection is
        closed with 1009 and a reason naming the size and the limit, and counted, as the fast
        path's protocol does (uvicorn's own limit, ws_max_size, is only the hard stop)."""
        limit = self.cfg.max_payload_bytes

        async def bounded() -> Message:
            message = await receive()
            if message["type"] == "websocket.receive":
                text = message.get("text")
                size = len(text.encode()) if text is not None else len(message.get("bytes") or b"")
                if size > limit:
                    reason = f"message too big: {size} bytes, limit {limit}"
                    self.frame_too_big(scope, f"{reason}: closing with 1009")
                    await send({"type": "websocket.close", "code": 1009, "reason": reason})
                    return {"type": "websocket.disconnect", "code": 1009, "reason": reason}
            return message

        return bounded

    def frame_too_big(self, scope: Scope, message: str) -> None:
        """A WebSocket message above the payload limit (the protocol closes it with 1009)."""
        refused(self.metrics, "frame", "payload_too_large", message, ip=client_ip(scope))
