"""The clients of this pod: sending to their sockets, joining and leaving rooms, sessions, upkeep.

A frame is encoded once and the same Engine.IO packet object goes to every member: on an
established WebSocket its frame (built once) is written straight to the connection's transport
(on the fast path: fastpath/socket.py), on long-polling it is put on the session's queue; no task
and no re-encoding per recipient. A member that does not keep up (``send_queue_messages`` packets
queued, or that many times 4 KB unsent on its WebSocket) is cut off (slow consumer) and recovers
from the stream when it comes back.

What reaches a room in which order is rooms.py's; the hub owns the clients and their sockets.
Its seams are plain: ``sockets`` is python-engineio's sid -> socket mapping, and the history,
presence, sessions and fan-out listener are objects with a few async methods, so a unit test
gives it plain objects (tests/unit/workload/test_hub.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Mapping
from typing import Any, Protocol

from engineio import packet as eio_packet
from redis.exceptions import RedisError

from wsfleet_workload.config import Config
from wsfleet_workload.fanout import Unavailable
from wsfleet_workload.metrics import Metrics
from wsfleet_workload.rooms import Client, DiffLimits, History, Room, Rooms, message_packet
from wsfleet_workload.sessions import Sessions
from wsfleet_workload.wire import BadRequest, Keys, Position

log = logging.getLogger("wsfleet.hub")


class Subscriptions(Protocol):
    """The fan-out listener (fanout.Listener), as the hub uses it."""

    async def subscribe(self, channel: str, timeout: float = 5.0) -> None: ...

    async def unsubscribe(self, channel: str) -> None: ...


class Roster(Protocol):
    """Presence (presence.Presence), as the hub uses it."""

    async def join(
        self, room: str, client: str, user: str | None, session: tuple[str, str, int] | None = None
    ) -> bool: ...

    async def leave(self, room: str, client: str, user: str | None) -> bool: ...

    async def disconnect(self, client: str, user: str | None) -> None: ...

    async def refresh(
        self, rooms: dict[str, list[tuple[str, str | None]]], clients: list[tuple[str, str | None]]
    ) -> int: ...

    async def sweep(self, rooms: list[str]) -> int: ...

    async def members(self, room: str, limit: int = 1000) -> list[dict[str, Any]]: ...


class Hub:
    def __init__(
        self,
        cfg: Config,
        sockets: Mapping[str, Any],
        keys: Keys,
        *,
        history: History,
        presence: Roster,
        sessions: Sessions,
        listener: Subscriptions,
        metrics: Metrics,
    ) -> None:
        self.cfg, self.sockets, self.keys = cfg, sockets, keys
        self.history, self.presence, self.sessions = history, presence, sessions
        self.listener, self.metrics = listener, metrics
        self.clients: dict[str, Client] = {}
        self.rooms = Rooms(
            history,
            self.broadcast,
            metrics,
            room_of_channel=keys.room_of_channel,
            diff=DiffLimits(cfg.presence_diff_ms, cfg.presence_diff_max_members),
            spawn=self._spawn,
        )
        self.direct_sent = 0  # packets written straight to a WebSocket (fastpath/socket.py), for the metric
        self._tasks: set[asyncio.Task[None]] = set()

    # --- sending -------------------------------------------------------------------
    def send(self, client: Client, pkt: eio_packet.Packet) -> bool:
        if client.hold is not None:
            client.hold.append(pkt)
            return True
        sock = self.sockets.get(client.eio_sid)
        if sock is None or sock.closed or sock.closing or client.cut:
            return False
        if getattr(sock, "direct", None) is not None:
            # An established WebSocket on the fast path: written now; refused when the client has
            # stopped reading and its unsent bytes passed the budget.
            if sock.write(pkt):
                self.direct_sent += 1
                return True
            if not sock.direct.transport.is_closing():
                self._spawn(self.cut(client, "slow consumer"))
            return False
        if sock.queue.qsize() >= self.cfg.send_queue_messages:
            self._spawn(self.cut(client, "slow consumer"))
            return False
        sock.queue.put_nowait(pkt)
        return True

    def release(self, client: Client) -> None:
        held, client.hold = client.hold or [], None
        for pkt in held:
            self.send(client, pkt)

    def broadcast(self, room: Room, pkt: eio_packet.Packet) -> int:
        sent, before = 0, self.direct_sent
        for member in room.members.values():
            sent += self.send(member, pkt)
        direct = self.direct_sent - before
        self.metrics.messages_out.labels("direct").inc(direct)
        self.metrics.messages_out.labels("queued").inc(sent - direct)
        return sent

    async def close(self, client: Client, reason: str, *, flush: bool) -> None:
        """Close the transport under the Engine.IO session, so the client reconnects.

        Neither a Socket.IO DISCONNECT (the JS client gives up: "io server disconnect") nor an
        Engine.IO CLOSE packet (the Python client gives up) is sent: the WebSocket is closed, the
        client reports "transport close" and reconnects, bringing its offsets. With ``flush`` the
        packets already queued (``server_shutdown``, the last messages) go out first; without it
        they are dropped (a slow consumer recovers them from the stream).
        """
        sock = self.sockets.get(client.eio_sid)
        if sock is None or sock.closed:
            return
        if not flush and getattr(sock, "direct", None) is not None:
            sock.direct.transport.abort()  # drop what it did not read; the protocol then ends the session
        if not flush:
            while not sock.queue.empty():
                sock.queue.get_nowait()
                sock.queue.task_done()
        elif not sock.upgraded:
            # long-polling: what is queued leaves with the next GET, and a closed session answers
            # no GET, so give the queue a moment (0.5 s) to go first
            for _ in range(10):
                if sock.queue.empty():
                    break
                await asyncio.sleep(0.05)
        await sock.close(wait=False, abort=True, reason=reason)
        sock.queue.put_nowait(None)  # ends a long-poll (a WebSocket was closed by sock.close)

    async def cut(self, client: Client, reason: str) -> None:
        if client.cut:
            return
        client.cut = True
        sock = self.sockets.get(client.eio_sid)
        direct = sock is not None and getattr(sock, "direct", None) is not None
        depth = sock.buffered() if sock is not None else 0
        limit = sock.max_buffer if sock is not None and direct else self.cfg.send_queue_messages
        self.metrics.slow_consumers.inc()
        log.warning(
            "cutting off a slow consumer: %d %s unsent (limit %d)",
            depth,
            "bytes" if direct else "packets",
            limit,
            extra={"client": client.session, "connection": client.sid},
        )
        await self.close(client, reason, flush=False)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- membership ----------------------------------------------------------------
    async def join(self, client: Client, name: str, pos: Position | None) -> dict[str, Any]:
        if not client.identity.may_join(name):
            raise BadRequest(f"room={name!r}: the token does not grant this room")
        room = self.rooms.open(name, self.keys.channel(name))
        async with room.lock:
            if not room.ready:
                try:
                    await self.listener.subscribe(room.channel)
                    head = await self.history.head(name)
                except (Unavailable, RedisError):
                    if not room.members:
                        self.rooms.forget(room)
                    raise
                room.epoch, room.offset = (head.epoch, head.offset) if head else ("", 0)
                room.ready = True
            result: dict[str, Any] = {"room": name, "epoch": room.epoch, "offset": room.offset}
            if pos is not None:
                result.update(await self._recover(client, room, pos))
            room.members[client.sid] = client
            client.rooms.add(name)
        if self.cfg.presence_enabled:
            # presence and the session (its rooms changed) in one round trip
            joined = self.presence.join(name, client.session, client.identity.user, self._session_record(client))
            await self._best_effort("presence join", joined)
        else:
            await self.save_session(client)
        return result

    async def _recover(self, client: Client, room: Room, pos: Position) -> dict[str, Any]:
        if pos.epoch == room.epoch and pos.offset == room.offset:
            self.metrics.replay.labels("hit").inc()
            return {"recovered": True, "missed": 0}
        missed = await self.history.since(room.name, pos, upto=room.offset)
        if missed.recovered and (missed.epoch == room.epoch or not missed.messages):
            for f in missed.messages:
                self.send(client, message_packet(room.name, f))
            self.metrics.messages_out.labels("replay").inc(len(missed.messages))
            self.metrics.replay.labels("hit").inc()
            return {"recovered": True, "missed": len(missed.messages)}
        self.metrics.replay.labels("miss").inc()
        log.info(
            "room %s: no recovery from %s:%d: %s",
            room.name,
            pos.epoch,
            pos.offset,
            missed.reason,
            extra={"client": client.session, "room": room.name},
        )
        return {"recovered": False, "reason": missed.reason}

    async def leave(self, client: Client, name: str, *, announce: bool = True) -> bool:
        room = self.rooms.get(name)
        client.rooms.discard(name)
        if room is None:
            return False
        async with room.lock:
            present = room.members.pop(client.sid, None) is not None
            if not room.members and self.rooms.forget(room):
                await self.listener.unsubscribe(room.channel)
        if announce and self.cfg.presence_enabled:
            await self._best_effort("presence leave", self.presence.leave(name, client.session, client.identity.user))
        return present

    async def remove(self, client: Client, *, on_purpose: bool) -> None:
        """A disconnect. Only a client that left on purpose leaves presence and its session at once;
        anyone else may be back on another pod within the replay window, so its entries expire."""
        self.clients.pop(client.sid, None)
        for name in list(client.rooms):
            await self.leave(client, name, announce=on_purpose)
        if on_purpose:
            await self._best_effort("session delete", self.delete_session(client))
            if self.cfg.presence_enabled:
                await self._best_effort("presence", self.presence.disconnect(client.session, client.identity.user))

    # --- sessions ------------------------------------------------------------------
    def _session_record(self, client: Client) -> tuple[str, str, int]:
        return self.sessions.record(client.session, client.rooms, client.identity.user)

    async def save_session(self, client: Client) -> None:
        await self._best_effort("session save", self.sessions.save(client.session, client.rooms, client.identity.user))

    async def load_session(self, session: str, user: str | None) -> list[str] | None:
        return await self.sessions.load(session, user)

    async def delete_session(self, client: Client) -> None:
        await self.sessions.delete(client.session)

    # --- upkeep --------------------------------------------------------------------
    async def upkeep(self) -> None:
        """Every presence_ttl/3: refresh presence and sessions of this pod, sweep expired members."""
        period = max(1.0, self.cfg.presence_ttl / 3)
        while True:
            await asyncio.sleep(period)
            await self.refresh()

    async def refresh(self) -> None:
        """One round of the upkeep; a Redis error is counted and logged, and the next round retries."""
        clients = list(self.clients.values())
        try:
            await self.sessions.refresh([cl.session for cl in clients])
            if self.cfg.presence_enabled:
                rooms: dict[str, list[tuple[str, str | None]]] = {}
                for cl in clients:
                    for r in cl.rooms:
                        rooms.setdefault(r, []).append((cl.session, cl.identity.user))
                await self.presence.refresh(rooms, [(cl.session, cl.identity.user) for cl in clients])
                await self.presence.sweep(list(self.rooms.by_name))
        except (RedisError, OSError) as e:
            self.metrics.redis_errors.labels("upkeep").inc()
            log.warning("upkeep failed: %s", e)

    async def _best_effort(self, what: str, coro: Awaitable[Any]) -> None:
        try:
            await coro
        except (RedisError, OSError) as e:
            self.metrics.redis_errors.labels(what.replace(" ", "_")).inc()
            log.warning("%s failed: %s", what, e)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
