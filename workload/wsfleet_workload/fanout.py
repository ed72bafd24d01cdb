"""The Redis pub/sub listener: one connection per pod, one channel per room with local members.

A pod subscribes only to the rooms its clients are in, so it decodes only what it delivers
(python-socketio's Redis manager sends every emit of the fleet to every pod on one channel).

The listener is the thing that fails silently in practice (python-socketio #826, #1581), so it
is watched end to end: every ``ping_every`` seconds the pod PUBLISHes a heartbeat on its own
control channel through its command connection, and the listener counts as dead when none came
back through the subscription within three periods. (That proves more than a PING on the
subscribed connection would: the publish path, the server's fan-out and our read loop.) On any failure it starts
over with a fresh connection, subscribes every room again and asks the hub to catch each room up
from its stream: messages published during the outage are delivered late, never lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from wsfleet_workload.metrics import Metrics

log = logging.getLogger("wsfleet.fanout")


class Unavailable(RuntimeError):
    """The fan-out listener is not subscribed; the request can be retried later."""


class Listener:
    def __init__(
        self,
        redis: Redis,
        command: Redis,
        control_channel: str,
        *,
        on_message: Callable[[str, str], None],
        on_resubscribed: Callable[[], Awaitable[None]],
        metrics: Metrics,
        ping_every: float = 2.0,
    ) -> None:
        self.redis, self.command = redis, command
        self.control = control_channel
        self.on_message, self.on_resubscribed = on_message, on_resubscribed
        self.metrics = metrics
        self.ping_every = ping_every
        self.channels: set[str] = set()
        self._waiting: dict[str, asyncio.Future[None]] = {}
        self._pubsub: PubSub | None = None
        self.up = False
        self.last_heartbeat = 0.0
        self.connected_once = False
        self.outages = 0
        self.last_error = ""

    @property
    def alive(self) -> bool:
        return self.up and time.monotonic() - self.last_heartbeat < 3 * self.ping_every

    async def subscribe(self, channel: str, timeout: float = 5.0) -> None:
        """Subscribe and wait for Redis to confirm, so nothing published afterwards is missed."""
        self.channels.add(channel)
        ps = self._pubsub
        if not self.up or ps is None:
            raise Unavailable(f"fan-out listener is down ({self.last_error or 'connecting'})")
        fut = self._waiting.get(channel)
        if fut is None:
            fut = self._waiting[channel] = asyncio.get_running_loop().create_future()
            await ps.subscribe(channel)
        try:
            await asyncio.wait_for(asyncio.shield(fut), timeout)
        except TimeoutError:
            raise Unavailable(f"Redis did not confirm SUBSCRIBE {channel} within {timeout:g}s") from None

    async def unsubscribe(self, channel: str) -> None:
        self.channels.discard(channel)
        ps = self._pubsub
        if self.up and ps is not None:
            with contextlib.suppress(RedisError, OSError):
                await ps.unsubscribe(channel)

    async def run(self) -> None:
        backoff = 0.1
        while True:
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, TimeoutError) as e:
                self.last_error = f"{type(e).__name__}: {e}"
            self._down()
            log.warning("fan-out listener down, reconnecting in %.1fs", backoff, extra={"error": self.last_error})
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)
            if self.up:
                backoff = 0.1

    def _down(self) -> None:
        if self.up:
            self.outages += 1
        self.up = False
        self.metrics.listener_up.set(0)
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(Unavailable(f"fan-out listener lost its connection ({self.last_error})"))
                fut.exception()  # retrieved: nobody may be waiting any more
        self._waiting.clear()
        ps, self._pubsub = self._pubsub, None
        if ps is not None:
            asyncio.get_running_loop().create_task(_close(ps))

    async def _session(self) -> None:
        ps = self.redis.pubsub()
        self._pubsub = ps
        wanted = {self.control, *self.channels}
        await ps.subscribe(*wanted)
        pending = set(wanted)
        deadline = time.monotonic() + 5
        while pending:
            msg = await ps.get_message(timeout=max(0.01, deadline - time.monotonic()))
            if msg is None and time.monotonic() > deadline:
                raise TimeoutError(f"{len(pending)} SUBSCRIBE confirmations missing after 5s")
            if msg and msg["type"] == "subscribe":
                pending.discard(msg["channel"])
            elif msg and msg["type"] == "message" and msg["channel"] != self.control:
                self.on_message(msg["channel"], msg["data"])
        self.up = True
        self.last_heartbeat = time.monotonic()
        self.metrics.listener_up.set(1)
        self.last_error = ""
        if self.connected_once:
            log.info("fan-out listener back; catching %d rooms up from their streams", len(self.channels))
            await self.on_resubscribed()
        else:
            log.info("fan-out listener subscribed")
        self.connected_once = True
        beat = asyncio.get_running_loop().create_task(self._beat())
        try:
            await self._read(ps)
        finally:
            beat.cancel()

    async def _beat(self) -> None:
        """PUBLISH a heartbeat on the control channel every ``ping_every``, through the command connection."""
        while True:
            try:
                await self.command.publish(self.control, "heartbeat")
            except (RedisError, OSError) as e:
                self.metrics.redis_errors.labels("heartbeat").inc()
                self.last_error = f"{type(e).__name__}: {e}"
            await asyncio.sleep(self.ping_every)

    async def _read(self, ps: PubSub) -> None:
        """Each reply as redis-py's connection reads it: a message is handed on at once (PubSub's
        get_message, with a timeout context, a retry wrapper and a dict per message, cost 11 us of
        CPU per message, this about 3), anything else goes through PubSub's own handling. The read
        waits with no timeout of its own; one deadline, moved on by each heartbeat that comes back,
        ends the session when none came for three periods."""
        conn = ps.connection
        if conn is None:
            raise RedisConnectionError("the subscription has no connection")
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout_at(loop.time() + 3 * self.ping_every) as deadline:
                while True:
                    reply = await conn.read_response(timeout=math.inf, push_request=True)
                    # ["message", channel, data]: a list (RESP2) or a hiredis PushNotification, its subclass (RESP3)
                    if isinstance(reply, list) and len(reply) == 3 and reply[0] == "message":
                        if reply[1] == self.control:
                            self.last_heartbeat = time.monotonic()
                            deadline.reschedule(loop.time() + 3 * self.ping_every)
                        else:
                            self.on_message(reply[1], reply[2])
                        continue
                    msg = await ps.handle_message(reply)
                    if msg is not None and msg["type"] == "subscribe":
                        fut = self._waiting.pop(msg["channel"], None)
                        if fut is not None and not fut.done():
                            fut.set_result(None)
        except TimeoutError:  # the deadline (redis-py closed the connection as its read was cancelled)
            silent = time.monotonic() - self.last_heartbeat
            raise TimeoutError(f"no heartbeat back through the subscription for {silent:.1f}s") from None


async def _close(ps: PubSub) -> None:
    with contextlib.suppress(Exception):
        await ps.aclose()  # type: ignore[no-untyped-call]
