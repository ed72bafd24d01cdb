"""A python-socketio AsyncClient that tracks (epoch, offset) per room and hands them back in the
handshake `auth` on every reconnect: the Python twin of tests/js/fleet-client.mjs."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import aiohttp
import socketio

from wsfleet_common import contract as c


async def _read_answers(session: aiohttp.ClientSession, ctx: Any, params: aiohttp.TraceRequestEndParams) -> None:
    # python-engineio's polling transport leaves some answers unread: every POST's, and a GET's
    # whose status ends the read loop (the session closed under a pending poll). Such a response
    # keeps its connection until collected, and aiohttp then warns "Unclosed connection" (an error
    # under filterwarnings=error). Reading it here releases the connection; the body is cached
    # for anyone who reads it later. Never a WebSocket upgrade's 101: that stream is the socket.
    if params.response.status != 101:
        await params.response.read()


class _AsyncClient(socketio.AsyncClient):  # type: ignore[misc]
    """python-socketio's client, with two changes a user would make:

    - every connect attempt waits 20 s for the server to answer the namespace (the official JS
      client waits 20 s for the connection, its ``timeout``, and then for the namespace without
      a limit). python-socketio's reconnect task calls ``connect()``
      without ``wait_timeout``, so each reconnect attempt gave the server 1 s (upstream keeps
      that on purpose: python-socketio pull 1056). While a rollout moves hundreds of clients at
      once, a busy server or client host answers later than that: every attempt was dropped
      after the server had accepted it, and retried, and a client could go on like that for
      minutes (tests/integration/workload/test_pyclient.py shows it).
    - every attempt that raises is recorded (``failed``, and ``on_failed``): the
      ``connect_error`` event fires for a refused or failed transport, but not for a namespace
      that did not answer in time."""

    wait_timeout = 20.0

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.failed: list[str] = []
        self.on_failed: Callable[[str], None] | None = None

    async def connect(self, *args: Any, wait_timeout: float | None = None, **kwargs: Any) -> None:
        try:
            await super().connect(*args, wait_timeout=wait_timeout or self.wait_timeout, **kwargs)
        except (socketio.exceptions.ConnectionError, ValueError) as e:
            self.failed.append(f"{type(e).__name__}: {e}")
            if self.on_failed is not None:
                self.on_failed(self.failed[-1])
            raise


class PyClient:
    def __init__(
        self, url: str, rooms: list[str], transports: list[str] | None = None, token: str | None = None
    ) -> None:
        self.url, self.rooms, self.transports, self.token = url, rooms, transports or ["websocket"], token
        self.sio = _AsyncClient(reconnection_delay=0.2, reconnection_delay_max=1.0)
        self.session: str | None = None
        self.pos: dict[str, dict[str, Any]] = {}
        self.seqs: dict[str, list[Any]] = defaultdict(list)
        self.messages: list[dict[str, Any]] = []
        self.sessions: list[dict[str, Any]] = []
        self.presence_diffs: list[dict[str, Any]] = []
        self.gaps: list[dict[str, Any]] = []
        self.shutdowns: list[dict[str, Any]] = []
        self.reasons: list[str] = []
        self.dups = 0
        self.reconnect_ms: list[float] = []
        self._dropped_at: float | None = None
        self.ready = asyncio.Event()
        self.on_ready: Callable[[dict[str, Any]], None] | None = None  # given each session once in its rooms
        s = self.sio
        s.on(c.EVENT_SESSION, self._on_session)
        s.on(c.EVENT_MESSAGE, self._on_message)
        s.on(c.EVENT_PRESENCE_DIFF, self.presence_diffs.append)
        s.on(c.EVENT_GAP, self.gaps.append)
        s.on(c.EVENT_SHUTDOWN, self.shutdowns.append)
        s.on("disconnect", self._on_disconnect)

    @property
    def presence(self) -> list[dict[str, Any]]:
        """Every membership change received, one {room, action, client, user} per member."""
        return [
            {"room": d["room"], "action": action, **m}
            for d in self.presence_diffs
            for action, members in (("join", d["joins"]), ("leave", d["leaves"]))
            for m in members
        ]

    def auth(self) -> dict[str, Any]:
        out: dict[str, Any] = {"token": self.token} if self.token else {}
        if self.session:
            out.update(session=self.session, rooms=self.pos)
        return out

    async def connect(self, url: str | None = None, within: float = 0) -> None:
        """Connected, in every room. With ``within``, a failed attempt is tried again until that
        many seconds have passed (a storm of set-up handshakes on a busy machine fails some, as
        the JS crowd's do); each failure is in ``sio.failed``."""
        deadline = time.monotonic() + within
        while True:
            try:
                await self._connect(url)
                return
            except socketio.exceptions.ConnectionError:  # not connected: connect() cleaned up
                if time.monotonic() >= deadline:
                    raise
                await asyncio.sleep(self.sio.reconnection_delay)

    async def _connect(self, url: str | None) -> None:
        self.ready.clear()
        if self.sio.eio.http is None:
            # One session for the client's life, like a browser's cookie jar. aiohttp refuses
            # cookies from IP-address hosts unless told otherwise, and the load balancer's
            # affinity cookie must stick for a polling session.
            trace = aiohttp.TraceConfig()
            trace.on_request_end.append(_read_answers)
            self.sio.eio.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), trace_configs=[trace])
            self.sio.eio.external_http = True
        await self.sio.connect(url or self.url, transports=self.transports, auth=self.auth)
        await asyncio.wait_for(self.ready.wait(), 10)

    def _on_disconnect(self, reason: Any = None) -> None:
        self.reasons.append(str(reason))
        self._dropped_at = time.monotonic()

    async def _on_session(self, s: dict[str, Any]) -> None:
        if self._dropped_at is not None:
            self.reconnect_ms.append((time.monotonic() - self._dropped_at) * 1000)
            self._dropped_at = None
        self.sessions.append(s)
        self.session = s["session"]
        for room, r in s["rooms"].items():
            if "epoch" in r and not (room in self.pos and r.get("recovered")):
                self.pos[room] = {"epoch": r["epoch"], "offset": r["offset"]}
        for room in self.rooms:
            if room not in s["rooms"]:
                ack = await self.sio.call("join", {"room": room}, timeout=10)
                assert ack["ok"], ack
                self.pos[room] = {"epoch": ack["epoch"], "offset": ack["offset"]}
        self.ready.set()
        if self.on_ready is not None:
            self.on_ready(s)

    def _on_message(self, m: dict[str, Any]) -> None:
        self.messages.append(m)
        p = self.pos.get(m["room"], {"epoch": m["epoch"], "offset": 0})
        if p["epoch"] == m["epoch"] and m["offset"] <= p["offset"]:
            self.dups += 1
            return
        self.pos[m["room"]] = {"epoch": m["epoch"], "offset": m["offset"]}
        data = m["data"]
        if isinstance(data, dict) and "seq" in data:
            self.seqs[m["room"]].append(data["seq"])

    async def call(self, event: str, data: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self.sio.call(event, data, timeout=10)
        return result

    @property
    def pod(self) -> str:
        return str(self.sessions[-1]["pod"]) if self.sessions else ""

    async def close(self) -> None:
        await self.sio.shutdown()  # disconnects and stops a reconnect loop that may be running
        ws = self.sio.eio.ws  # a WebSocket whose server died under it is not closed by engineio
        if ws is not None:
            await ws.close()
            # aiohttp marks a WebSocket closed on a lost connection (ClientError in receive())
            # without releasing its response, whose Connection then warns "Unclosed connection"
            # when collected; close() is a no-op by then, so release it here.
            ws._response.close()
        if self.sio.eio.http is not None and not self.sio.eio.http.closed:
            await self.sio.eio.http.close()


class LoopThread:
    """An event loop on a thread, so Python clients live alongside blocking test code."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = 30) -> Any:
        return self.submit(coro).result(timeout)

    def submit(self, coro: Any) -> concurrent.futures.Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def close(self) -> None:
        async def cancel_rest() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.run(cancel_rest())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
