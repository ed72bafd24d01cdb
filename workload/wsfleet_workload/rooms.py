"""Ordered delivery in the rooms of this pod: offsets, duplicates, gap filling, epochs, presence diffs.

Every room message carries ``(epoch, offset)``. A room keeps the last offset it delivered; frames
from the listener are applied in order by one pump per room, under the room's lock:

- an offset at or below the room's is a duplicate (already delivered by a gap fill): skipped;
- the next offset is delivered;
- a jump is filled from the room's stream first; if the stream no longer has it, members get a
  ``gap`` event: a hole is announced, never silent;
- a new epoch means the history was lost (Redis flushed or failed over): members get ``gap``.

Membership changes from the listener are collected per room and sent as one ``presence_diff``
every ``presence_diff_ms``.

The seams: the history is anything with ``head`` and ``since`` (replay.Replay; a test passes a
plain object), and what reaches the members goes through ``broadcast(room, packet)`` (the hub's,
which writes to the sockets), so the rules above are tested without Redis or a server.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from engineio import packet as eio_packet
from redis.exceptions import RedisError

from wsfleet_common import contract as c
from wsfleet_workload.auth import Identity
from wsfleet_workload.metrics import Metrics
from wsfleet_workload.replay import Missed
from wsfleet_workload.wire import (
    MessageFrame,
    Position,
    PresenceFrame,
    decode_frame,
    dumps,
    event_packet,
    message_payload,
)

log = logging.getLogger("wsfleet.hub")


class History(Protocol):
    """What the rooms read of a room's stream (replay.Replay)."""

    async def head(self, room: str) -> Position | None: ...

    async def since(self, room: str, pos: Position, upto: int | None = None) -> Missed: ...


@dataclass(eq=False)
class Client:
    """A connected Socket.IO client, as the rooms it is a member of see it."""

    sid: str
    eio_sid: str
    session: str
    identity: Identity
    ip: str
    rooms: set[str] = field(default_factory=set)
    hold: list[eio_packet.Packet] | None = None  # packets held while the session event is prepared
    cut: bool = False


@dataclass(frozen=True)
class DiffLimits:
    every_ms: int  # how long changes are collected before one presence_diff goes out
    max_members: int  # above this many changes, the diff carries counts, not names


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


def message_packet(room: str, f: MessageFrame) -> eio_packet.Packet:
    return eio_packet.Packet(
        eio_packet.MESSAGE, data=event_packet(c.EVENT_MESSAGE, message_payload(room, f.epoch, f.offset, f.data))
    )


class Rooms:
    """The rooms with members on this pod, by name, and the rules of delivery into them."""

    def __init__(
        self,
        history: History,
        broadcast: Callable[[Room, eio_packet.Packet], int],
        metrics: Metrics,
        *,
        room_of_channel: Callable[[str], str],
        diff: DiffLimits,
        spawn: Callable[[Any], None],
    ) -> None:
        self.history, self.broadcast, self.metrics = history, broadcast, metrics
        self.room_of_channel, self.diff_limits, self.spawn = room_of_channel, diff, spawn
        self.by_name: dict[str, Room] = {}

    def get(self, name: str) -> Room | None:
        return self.by_name.get(name)

    def open(self, name: str, channel: str) -> Room:
        room = self.by_name.get(name)
        if room is None:
            room = self.by_name[name] = Room(name, channel)
        return room

    def forget(self, room: Room) -> bool:
        """Drop the room if it is still the one registered under its name; True if it was."""
        if self.by_name.get(room.name) is room:
            del self.by_name[room.name]
            return True
        return False

    # --- frames from the listener ---------------------------------------------------
    def on_message(self, channel: str, raw: str) -> None:
        room = self.by_name.get(self.room_of_channel(channel))
        if room is None:
            return
        room.inbox.append(raw)
        if not room.pumping:
            room.pumping = True
            self.spawn(self._pump(room))

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
            delay = self.diff_limits.every_ms / 1000
            room.diff_timer = asyncio.get_running_loop().call_later(delay, self.send_presence_diff, room)

    def send_presence_diff(self, room: Room) -> None:
        diff, room.diff, room.diff_timer = room.diff, {}, None
        if not diff:
            return
        body: dict[str, Any]
        if len(diff) > self.diff_limits.max_members:  # counts: a storm's diff to every member is N² bytes
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
        self.broadcast(room, message_packet(room.name, frame))
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

    async def _fill(self, room: Room, upto: int) -> None:
        try:
            missed = await self.history.since(room.name, Position(room.epoch, room.offset), upto)
        except RedisError as e:
            self.metrics.redis_errors.labels("fill").inc()
            self._gap(room, room.epoch, upto, f"Redis error while filling {room.offset + 1}..{upto}: {e}")
        else:
            if missed.recovered:
                for f in missed.messages:
                    self.broadcast(room, message_packet(room.name, f))
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
        for room in list(self.by_name.values()):
            async with room.lock:
                try:
                    head = await self.history.head(room.name)
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
