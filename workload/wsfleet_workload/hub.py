"""Rooms on this pod: membership, ordered delivery, gap filling and recovery on join.

Every room message carries ``(epoch, offset)``. A room keeps the last offset it delivered; frames
from the listener are applied in order by one pump per room, under the room's lock:

- an offset at or below the room's is a duplicate (already delivered by a gap fill): skipped;
- the next offset is delivered;
- a jump is filled from the room's stream first; if the stream no longer has it, members get a
  ``gap`` event: a hole is announced, never silent;
- a new epoch means the history was lost (Redis flushed or failed over): members get ``gap``.

A frame is encoded once and the same Engine.IO packet object goes to every member: on an
established WebSocket its frame (built once) is written straight to the connection's transport
(on the fast path: fastpath/socket.py), on long-polling it is put on the session's queue; no task and no re-encoding per
recipient. A member that does not keep up (``send_queue_messages`` packets queued, or that many
times 4 KB unsent on its WebSocket) is cut off (slow consumer) and recovers from the stream when
it comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import socketio
from engineio import packet as eio_packet
from redis.exceptions import RedisError

from wsfleet_common import contract as c
from wsfleet_workload.auth import Identity
from wsfleet_workload.config import Config
from wsfleet_workload.fanout import Listener, Unavailable
from wsfleet_workload.metrics import Metrics
from wsfleet_workload.presence import Presence
from wsfleet_workload.replay import Replay
from wsfleet_workload.wire import (
    BadRequest,
    Keys,
    MessageFrame,
    Position,
    PresenceFrame,
    decode_frame,
    dumps,
    event_packet,
    loads,
    message_payload,
)

log = logging.getLogger("wsfleet.hub")

# Session refreshes per Redis round trip in the upkeep: a pipeline of thousands held the event
# loop for tens of milliseconds (a broadcast p99 spike every presence_ttl/3 at 5000 clients).
UPKEEP_CHUNK = 500


@dataclass(eq=False)
class Client:
    sid: str
    eio_sid: str
    session: str
    identity: Identity
    ip: str
    rooms: set[str] = field(default_factory=set)
    hold: list[eio_packet.Packet] | None = None  # packets held while the session event is prepared
    cut: bool = False


class Room:
    __slots__ = (
        "channel", "diff", "diff_timer", "epoch", "inbox", "lock", "members", "name", "offset", "pumping", "ready",
    )  # fmt: skip

    def __init__(self, name: str, channel: str) -> None:
        self.name, self.channel = name, channel
        self.members: dict[str, Client] = {}
        self.epoch, self.offset = "", 0
        self.lock = asyncio.Lock()
        self.inbox: deque[str] = deque()
        self.pumping = False
        self.ready = False
        # presence changes not yet sent: (client, user) -> join|leave, and the timer that sends them
        self.diff: dict[tuple[str, str | None], str] = {}
        self.diff_timer: asyncio.TimerHandle | None = None


def packet(event: str, arg: Any) -> eio_packet.Packet:
    return eio_packet.Packet(eio_packet.MESSAGE, data=event_packet(event, dumps(arg)))


class Hub:
    def __init__(
        self,
        cfg: Config,
        sio: socketio.AsyncServer,
        keys: Keys,
        *,
        replay: Replay,
        presence: Presence,
        listener: Listener,
        metrics: Metrics,
    ) -> None:
        self.cfg, self.sio, self.keys = cfg, sio, keys
        self.replay, self.presence, self.listener, self.metrics = replay, presence, listener, metrics
        self.clients: dict[str, Client] = {}
        self.rooms: dict[str, Room] = {}
        self.direct_sent = 0  # packets written straight to a WebSocket (fastpath/socket.py), for the metric
        self._tasks: set[asyncio.Task[None]] = set()

    # --- sending -------------------------------------------------------------------
    def send(self, client: Client, pkt: eio_packet.Packet) -> bool:
        if client.hold is not None:
            client.hold.append(pkt)
            return True
        sock = self.sio.eio.sockets.get(client.eio_sid)
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
        sock = self.sio.eio.sockets.get(client.eio_sid)
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
        sock = self.sio.eio.sockets.get(client.eio_sid)
        direct = sock is not None and getattr(sock, "direct", None) is not None
        depth = sock.buffered() if sock is not None else 0
        self.metrics.slow_consumers.inc()
        log.warning(
            "cutting off a slow consumer: %d %s unsent (limit %d)",
            depth,
            "bytes" if direct else "packets",
            sock.max_buffer if direct else self.cfg.send_queue_messages,
            extra={"client": client.session, "connection": client.sid},
        )
        await self.close(client, reason, flush=False)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- frames from the listener ---------------------------------------------------
    def on_message(self, channel: str, raw: str) -> None:
        room = self.rooms.get(self.keys.room_of_channel(channel))
        if room is None:
            return
        room.inbox.append(raw)
        if not room.pumping:
            room.pumping = True
            self._spawn(self._pump(room))

    async def _pump(self, room: Room) -> None:
        async with room.lock:
            try:
                while room.inbox:
                    raw = room.inbox.popleft()
                    try:
                        frame = decode_frame(raw)
                    except (ValueError, KeyError) as e:
                        log.error("dropping an undecodable frame on %s: %s", room.channel, e, extra={"room": room.name})
                        continue
                    if isinstance(frame, PresenceFrame):
                        self._presence_changed(room, frame)
                    else:
                        await self._apply(room, frame)
            finally:
                room.pumping = False

    def _presence_changed(self, room: Room, frame: PresenceFrame) -> None:
        """Collect a membership change for the room's next presence_diff. A join and a leave of the
        same member within one interval cancel out: the members never saw it come and go."""
        key = (frame.client, frame.user)
        if room.diff.get(key, frame.action) != frame.action:
            del room.diff[key]
        else:
            room.diff[key] = frame.action
        if room.diff_timer is None:
            delay = self.cfg.presence_diff_ms / 1000
            room.diff_timer = asyncio.get_running_loop().call_later(delay, self._send_presence_diff, room)

    def _send_presence_diff(self, room: Room) -> None:
        diff, room.diff, room.diff_timer = room.diff, {}, None
        if not diff:
            return
        body: dict[str, Any]
        if len(diff) > self.cfg.presence_diff_max_members:  # counts: a storm's diff to every member is N² bytes
            joined = sum(action == "join" for action in diff.values())
            body = {"room": room.name, "joins": [], "leaves": [], "joined": joined, "left": len(diff) - joined,
                    "truncated": True}  # fmt: skip
        else:
            changes: dict[str, list[dict[str, str | None]]] = {"join": [], "leave": []}
            for (client, user), action in diff.items():
                changes[action].append({"client": client, "user": user})
            body = {"room": room.name, "joins": changes["join"], "leaves": changes["leave"]}
        self.broadcast(room, packet(c.EVENT_PRESENCE_DIFF, body))

    async def _apply(self, room: Room, frame: MessageFrame) -> None:
        await self._catch_up(room, frame.epoch, frame.offset - 1)
        if frame.offset <= room.offset:
            return  # a duplicate: a gap fill delivered it already
        self.broadcast(room, self._message_packet(room.name, frame))
        room.offset = frame.offset

    async def _catch_up(self, room: Room, epoch: str, upto: int) -> None:
        """Bring the room to (epoch, upto): a new epoch is announced as lost history, and the
        offsets between the room's and ``upto`` are filled from the stream (or announced)."""
        if epoch != room.epoch:
            if room.epoch:
                self._gap(room, epoch, 0, f"epoch changed ({room.epoch} -> {epoch}): history lost")
            room.epoch, room.offset = epoch, 0
        if upto > room.offset:
            await self._fill(room, upto)

    def _message_packet(self, room: str, f: MessageFrame) -> eio_packet.Packet:
        return eio_packet.Packet(
            eio_packet.MESSAGE, data=event_packet(c.EVENT_MESSAGE, message_payload(room, f.epoch, f.offset, f.data))
        )

    async def _fill(self, room: Room, upto: int) -> None:
        try:
            missed = await self.replay.since(room.name, Position(room.epoch, room.offset), upto)
        except RedisError as e:
            self.metrics.redis_errors.labels("fill").inc()
            self._gap(room, room.epoch, upto, f"Redis error while filling {room.offset + 1}..{upto}: {e}")
        else:
            if missed.recovered:
                for f in missed.messages:
                    self.broadcast(room, self._message_packet(room.name, f))
            else:
                self._gap(room, missed.epoch or room.epoch, upto, missed.reason)
        room.offset = upto

    def _gap(self, room: Room, epoch: str, offset: int, reason: str) -> None:
        log.warning("room %s: announcing a gap: %s", room.name, reason, extra={"room": room.name})
        self.broadcast(
            room, packet(c.EVENT_GAP, {"room": room.name, "epoch": epoch, "offset": offset, "reason": reason})
        )

    async def catch_up_all(self) -> None:
        """After the listener reconnected: bring every room up to its stream's head."""
        for room in list(self.rooms.values()):
            async with room.lock:
                try:
                    head = await self.replay.head(room.name)
                except RedisError as e:
                    self.metrics.redis_errors.labels("catch_up").inc()
                    log.warning("room %s: catch-up failed: %s", room.name, e)
                    continue
                if head is None:
                    if room.epoch and room.offset:
                        self._gap(room, "", 0, "history lost while the listener was down")
                    room.epoch, room.offset = "", 0
                    continue
                await self._catch_up(room, head.epoch, head.offset)

    # --- membership ----------------------------------------------------------------
    async def join(self, client: Client, name: str, pos: Position | None) -> dict[str, Any]:
        if not client.identity.may_join(name):
            raise BadRequest(f"room={name!r}: the token does not grant this room")
        room = self.rooms.get(name)
        if room is None:
            room = self.rooms[name] = Room(name, self.keys.channel(name))
        async with room.lock:
            if not room.ready:
                try:
                    await self.listener.subscribe(room.channel)
                    head = await self.replay.head(name)
                except (Unavailable, RedisError):
                    if not room.members and self.rooms.get(name) is room:
                        del self.rooms[name]
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
        missed = await self.replay.since(room.name, pos, upto=room.offset)
        if missed.recovered and (missed.epoch == room.epoch or not missed.messages):
            for f in missed.messages:
                self.send(client, self._message_packet(room.name, f))
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
            if not room.members and self.rooms.get(name) is room:
                del self.rooms[name]
                await self.listener.unsubscribe(room.channel)
        if announce and self.cfg.presence_enabled:
            await self._best_effort("presence leave", self.presence.leave(name, client.session, client.identity.user))
        return present

    async def remove(self, client: Client, reason: str) -> None:
        """A disconnect. Only a client that left on purpose leaves presence and its session at once;
        anyone else may be back on another pod within the replay window, so its entries expire."""
        self.clients.pop(client.sid, None)
        on_purpose = reason == self.sio.reason.CLIENT_DISCONNECT
        for name in list(client.rooms):
            await self.leave(client, name, announce=on_purpose)
        if on_purpose:
            await self._best_effort("session delete", self.delete_session(client))
            if self.cfg.presence_enabled:
                await self._best_effort("presence", self.presence.disconnect(client.session, client.identity.user))

    # --- sessions ------------------------------------------------------------------
    def _session_record(self, client: Client) -> tuple[str, str, int]:
        """The session's key, body and TTL: what a client resuming it on any pod rejoins."""
        body = dumps({"rooms": sorted(client.rooms), "user": client.identity.user})
        return self.keys.session(client.session), body, self.cfg.replay_ttl

    async def save_session(self, client: Client) -> None:
        key, body, ttl = self._session_record(client)
        await self._best_effort("session save", self.replay.redis.set(key, body, ex=ttl))

    async def load_session(self, session: str, user: str | None) -> list[str] | None:
        raw = await self.replay.redis.get(self.keys.session(session))
        if raw is None:
            return None
        body = loads(raw)
        if body.get("user") != user:
            return None  # a session belongs to one user
        return [str(r) for r in body.get("rooms", [])]

    async def delete_session(self, client: Client) -> None:
        await self.replay.redis.delete(self.keys.session(client.session))

    # --- upkeep --------------------------------------------------------------------
    async def upkeep(self) -> None:
        """Every presence_ttl/3: refresh presence and sessions of this pod, sweep expired members."""
        period = max(1.0, self.cfg.presence_ttl / 3)
        while True:
            await asyncio.sleep(period)
            clients = list(self.clients.values())
            try:
                # in chunks, so thousands of clients never hold the event loop for one long pipeline
                for i in range(0, len(clients), UPKEEP_CHUNK):
                    async with self.replay.redis.pipeline(transaction=False) as p:
                        for cl in clients[i : i + UPKEEP_CHUNK]:
                            p.expire(self.keys.session(cl.session), self.cfg.replay_ttl)
                        await p.execute()
                if self.cfg.presence_enabled:
                    rooms: dict[str, list[tuple[str, str | None]]] = {}
                    for cl in clients:
                        for r in cl.rooms:
                            rooms.setdefault(r, []).append((cl.session, cl.identity.user))
                    await self.presence.refresh(rooms, [(cl.session, cl.identity.user) for cl in clients])
                    await self.presence.sweep(list(self.rooms))
            except (RedisError, OSError) as e:
                self.metrics.redis_errors.labels("upkeep").inc()
                log.warning("upkeep failed: %s", e)

    async def _best_effort(self, what: str, coro: Any) -> None:
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
