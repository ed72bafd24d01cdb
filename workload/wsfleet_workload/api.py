"""The HTTP endpoints beside Socket.IO: health, the preStop hook, the publish and presence API,
the demo page.

    /health/{live,startup,ready,database}
    /lifecycle/prestop     the preStop hook (GET)
    /api/v1/publish        POST {room | rooms, data}; Authorization: Bearer <publish API key>
    /api/v1/presence       GET ?room=; the same key
    /demo/                 a demo page (the JS client pattern of docs/workload.md, live)

``parse_publish`` is the publish body's rules as a pure function, tested with plain bytes.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from redis.exceptions import RedisError

from wsfleet_common import contract as c
from wsfleet_workload.config import Config
from wsfleet_workload.drain import Drain
from wsfleet_workload.engine import client_ip
from wsfleet_workload.health import Answer, Health
from wsfleet_workload.metrics import Metrics, refused
from wsfleet_workload.presence import Presence
from wsfleet_workload.replay import Replay
from wsfleet_workload.wire import BadRequest, check_room, dumps

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_ROOMS_PER_PUBLISH = 100


def parse_publish(body: bytes) -> tuple[list[str], str]:
    """The rooms and the data's JSON of a publish body, ``{"room": r, "data": d}`` or
    ``{"rooms": [r, ...], "data": d}``; a BadRequest names what is wrong."""
    try:
        doc = json.loads(body)
    except ValueError as e:
        raise BadRequest(f"the body is not JSON: {e}") from None
    if not isinstance(doc, dict) or "data" not in doc:
        raise BadRequest('expected {"room" or "rooms", "data"}')
    rooms = doc.get("rooms", [doc.get("room")] if "room" in doc else None)
    if not isinstance(rooms, list) or not rooms or len(rooms) > MAX_ROOMS_PER_PUBLISH:
        raise BadRequest(f"rooms={rooms!r}: expected 1-{MAX_ROOMS_PER_PUBLISH} room names")
    return [check_room(r) for r in rooms], dumps(doc["data"])


class Api:
    def __init__(
        self, cfg: Config, *, health: Health, drain: Drain, replay: Replay, presence: Presence, metrics: Metrics
    ) -> None:
        self.cfg, self.health, self.drain = cfg, health, drain
        self.replay, self.presence, self.metrics = replay, presence, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        method = scope["method"]
        health: dict[str, Callable[[], Answer] | None] = {
            c.LIVE_PATH: self.health.live,
            c.STARTUP_PATH: self.health.startup,
            c.READY_PATH: self.health.ready,
            c.DATABASE_PATH: None,
        }
        if path in health and method in ("GET", "HEAD"):
            fn = health[path]
            status, body = fn() if fn is not None else await self.health.database()
            result = "ok" if status == 200 else ("draining" if body.get("status") == "draining" else "unavailable")
            self.metrics.health_checks.labels(path.rsplit("/", 1)[-1], result).inc()
            await json_response(send, status, body)
        elif path == c.PRESTOP_PATH and method in ("GET", "POST"):
            waited = await self.drain.prestop()
            await json_response(
                send, 200, {"status": "unready", "waitedSeconds": round(waited, 3), "phase": self.drain.phase}
            )
        elif path == c.PUBLISH_PATH:
            await self._publish(scope, receive, send, method)
        elif path == "/api/v1/presence" and method == "GET":
            await self._presence(scope, send)
        elif path.startswith(DEMO_PATH) and method in ("GET", "HEAD"):
            await _static(send, path.removeprefix(DEMO_PATH) or "demo.html")
        else:
            await json_response(send, 404, {"error": f"no route for {method} {path}"})

    def _authorized(self, scope: Scope) -> tuple[int, str] | None:
        key = self.cfg.publish_api_key
        if key is None:
            return 404, "the publish API is disabled: set spec.publish.apiKeySecret"
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"authorization", b"").decode("latin-1")
        token = given.removeprefix("Bearer ").strip() or headers.get(b"x-api-key", b"").decode("latin-1")
        if not token or not hmac.compare_digest(token.encode(), key.encode()):
            message = "missing or wrong API key (Authorization: Bearer <key>)"
            refused(self.metrics, "api", "bad_api_key", message, ip=client_ip(scope))
            return 401, message
        return None

    async def _publish(self, scope: Scope, receive: Receive, send: Send, method: str) -> None:
        if method != "POST":
            await json_response(send, 405, {"error": f"{method} {c.PUBLISH_PATH}: use POST"})
            return
        denied = self._authorized(scope)
        if denied is not None:
            await json_response(send, denied[0], {"error": denied[1]})
            return
        body = await read_body(receive, self.cfg.max_payload_bytes)
        if body is None:
            message = f"body larger than {self.cfg.max_payload_bytes} bytes"
            refused(self.metrics, "api", "payload_too_large", message, ip=client_ip(scope))
            await json_response(send, 413, {"error": message})
            return
        try:
            rooms, data = parse_publish(body)
        except BadRequest as e:
            refused(self.metrics, "api", "bad_request", str(e), ip=client_ip(scope))
            await json_response(send, 400, {"error": str(e)})
            return
        results = []
        try:
            for room in rooms:
                epoch, offset = await self.replay.publish(room, data)
                results.append({"room": room, "epoch": epoch, "offset": offset})
                self.metrics.messages_in.labels("api").inc()
        except (RedisError, OSError) as e:
            self.metrics.redis_errors.labels("publish").inc()
            await json_response(
                send, 503, {"error": f"Redis unavailable: {type(e).__name__}", "published": results}, retry_after=1
            )
            return
        await json_response(send, 200, {"results": results})

    async def _presence(self, scope: Scope, send: Send) -> None:
        denied = self._authorized(scope)
        if denied is not None:
            await json_response(send, denied[0], {"error": denied[1]})
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        try:
            if "room" in query:
                room = check_room(query["room"][0])
                members = await self.presence.members(room)
                await json_response(send, 200, {"room": room, "count": len(members), "members": members})
            else:
                await json_response(send, 200, {"count": await self.presence.count()})
        except BadRequest as e:
            await json_response(send, 400, {"error": str(e)})
        except (RedisError, OSError) as e:
            await json_response(send, 503, {"error": f"Redis unavailable: {type(e).__name__}"}, retry_after=1)


DEMO_PATH = "/demo/"
STATIC = Path(__file__).parent / "static"
STATIC_FILES = {"demo.html": "text/html; charset=utf-8", "socket.io.min.js": "text/javascript; charset=utf-8"}


async def _static(send: Send, name: str) -> None:
    """The demo page and the official JS client it uses; nothing else is served from disk."""
    if name not in STATIC_FILES:
        await json_response(send, 404, {"error": f"no file {name!r} under {DEMO_PATH}"})
        return
    body = (STATIC / name).read_bytes()
    headers = [(b"content-type", STATIC_FILES[name].encode()), (b"content-length", str(len(body)).encode()),
               (b"cache-control", b"no-cache")]  # fmt: skip
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def read_body(receive: Receive, limit: int) -> bytes | None:
    chunks, size = [], 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def replay_body(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def json_response(send: Send, status: int, body: dict[str, Any], retry_after: int | None = None) -> None:
    payload = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


async def refuse(scope: Scope, send: Send, status: int, body: dict[str, Any], retry_after: int) -> None:
    if scope["type"] == "http":
        await json_response(send, status, body, retry_after)
        return
    payload = json.dumps(body).encode()
    if "websocket.http.response" in scope.get("extensions", {}):
        headers = [(b"content-type", b"application/json"), (b"retry-after", str(retry_after).encode())]
        await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": payload})
    else:  # the server cannot answer a WebSocket upgrade with a status: refuse it (HTTP 403)
        await send({"type": "websocket.close", "code": 1013, "reason": body["error"][:120]})
