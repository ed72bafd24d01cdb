"""Ordered delivery in a room, with plain objects: a history held in a list, and the packets the
room broadcasts recorded. No Redis, no server.

| frames from the listener                 | the members get                                      |
|------------------------------------------|------------------------------------------------------|
| 1, 2, 3                                  | 1, 2, 3                                              |
| 1, 3 (2 in the history)                  | 1, 2, 3: the jump is filled from the history         |
| 1, 3 (2 trimmed from the history)        | 1, a `gap` naming the reason, 3                      |
| 1, 2, 2, 1                               | 1, 2: duplicates skipped                             |
| 1 in epoch A, then 1 in epoch B          | 1, a `gap` (epoch changed), 1 of B                   |
| an undecodable frame between 1 and 2     | 1, 2 (the frame is dropped and logged)               |
| a Redis error while filling              | a `gap` naming the error                             |
| join then leave of one member, in one    | no presence_diff at all                              |
| interval                                 |                                                      |
| more changes than presence_diff_max      | counts, `truncated: true`                            |
| the listener back, the history gone      | a `gap` (history lost while the listener was down)   |
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from engineio import packet as eio_packet
from redis.exceptions import ConnectionError as RedisConnectionError

from wsfleet_workload.metrics import Metrics
from wsfleet_workload.replay import Missed
from wsfleet_workload.rooms import DiffLimits, Room, Rooms
from wsfleet_workload.wire import MessageFrame, Position, PresenceFrame

EPOCH = "e1"


class History:
    """A room's stream as a list of frames; ``trimmed`` offsets are gone from it."""

    def __init__(self, epoch: str = EPOCH) -> None:
        self.epoch = epoch
        self.frames: list[MessageFrame] = []
        self.trimmed: set[int] = set()
        self.fail: Exception | None = None

    def add(self, offset: int, data: str) -> MessageFrame:
        frame = MessageFrame(self.epoch, offset, data)
        self.frames.append(frame)
        return frame

    async def head(self, room: str) -> Position | None:
        if self.fail is not None:
            raise self.fail
        return Position(self.epoch, self.frames[-1].offset) if self.frames else None

    async def since(self, room: str, pos: Position, upto: int | None = None) -> Missed:
        if self.fail is not None:
            raise self.fail
        last = upto if upto is not None else self.frames[-1].offset
        wanted = [f for f in self.frames if pos.offset < f.offset <= last]
        if any(f.offset in self.trimmed for f in wanted):
            return Missed(False, self.epoch, last, [], f"offset {pos.offset + 1} trimmed")
        return Missed(True, self.epoch, last, wanted)


def decoded(pkt: eio_packet.Packet) -> tuple[str, Any]:
    """A Socket.IO EVENT packet's name and argument: `2["name",arg]`."""
    assert isinstance(pkt.data, str)
    assert pkt.data.startswith("2"), pkt.data
    name, arg = json.loads(pkt.data[1:])
    return name, arg


class Fixture:
    def __init__(self, *, every_ms: int = 20, max_members: int = 100) -> None:
        self.history = History()
        self.sent: list[tuple[str, Any]] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.metrics = Metrics()
        self.rooms = Rooms(
            self.history,
            self.broadcast,
            self.metrics,
            room_of_channel=lambda channel: channel.removeprefix("ch:"),
            diff=DiffLimits(every_ms, max_members),
            spawn=lambda coro: self.tasks.append(asyncio.get_running_loop().create_task(coro)),
        )
        self.room = self.rooms.open("r", "ch:r")

    def broadcast(self, room: Room, pkt: eio_packet.Packet) -> int:
        assert room is self.room
        self.sent.append(decoded(pkt))
        return 1

    def publish(self, frame: MessageFrame) -> None:
        """As replay's Lua script does: the frame on the channel."""
        self.rooms.on_message("ch:r", f"M|{frame.epoch}|{frame.offset}|{frame.data}")

    async def settle(self) -> None:
        while self.tasks:
            await self.tasks.pop(0)

    def messages(self) -> list[tuple[str, int, Any]]:
        return [(a["epoch"], a["offset"], a["data"]) for name, a in self.sent if name == "message"]

    def gaps(self) -> list[dict[str, Any]]:
        return [a for name, a in self.sent if name == "gap"]


@pytest.fixture
def fx() -> Fixture:
    return Fixture()


async def test_frames_in_order_are_delivered_in_order(fx: Fixture) -> None:
    for i in (1, 2, 3):
        fx.publish(fx.history.add(i, f'"m{i}"'))
    await fx.settle()
    assert fx.messages() == [(EPOCH, 1, "m1"), (EPOCH, 2, "m2"), (EPOCH, 3, "m3")]
    assert fx.room.offset == 3


async def test_a_jump_is_filled_from_the_history(fx: Fixture) -> None:
    one, _two, three = (fx.history.add(i, f'"m{i}"') for i in (1, 2, 3))
    fx.publish(one)
    fx.publish(three)
    await fx.settle()
    assert [m[1] for m in fx.messages()] == [1, 2, 3]
    assert fx.gaps() == []


async def test_a_jump_the_history_no_longer_has_is_announced_as_a_gap(fx: Fixture) -> None:
    one, _two, three = (fx.history.add(i, f'"m{i}"') for i in (1, 2, 3))
    fx.history.trimmed.add(2)
    fx.publish(one)
    fx.publish(three)
    await fx.settle()
    assert [m[1] for m in fx.messages()] == [1, 3]
    (gap,) = fx.gaps()
    assert gap == {"room": "r", "epoch": EPOCH, "offset": 2, "reason": "offset 2 trimmed"}
    # the gap comes before message 3, where the hole is
    assert [name for name, _ in fx.sent] == ["message", "gap", "message"]


async def test_duplicates_are_skipped(fx: Fixture) -> None:
    one, two = fx.history.add(1, '"a"'), fx.history.add(2, '"b"')
    for f in (one, two, two, one):
        fx.publish(f)
    await fx.settle()
    assert [m[1] for m in fx.messages()] == [1, 2]


async def test_a_new_epoch_is_announced_as_lost_history(fx: Fixture) -> None:
    fx.publish(fx.history.add(1, '"old"'))
    await fx.settle()
    fx.history.epoch, fx.history.frames = "e2", []
    fx.publish(fx.history.add(1, '"new"'))
    await fx.settle()
    assert fx.messages() == [(EPOCH, 1, "old"), ("e2", 1, "new")]
    (gap,) = fx.gaps()
    assert gap["epoch"] == "e2"
    assert gap["offset"] == 0
    assert gap["reason"] == f"epoch changed ({EPOCH} -> e2): history lost"


async def test_an_undecodable_frame_is_dropped_and_the_rest_delivered(
    fx: Fixture, caplog: pytest.LogCaptureFixture
) -> None:
    fx.publish(fx.history.add(1, '"a"'))
    fx.rooms.on_message("ch:r", "X|nonsense")
    fx.publish(fx.history.add(2, '"b"'))
    await fx.settle()
    assert [m[1] for m in fx.messages()] == [1, 2]
    assert "dropping an undecodable frame on ch:r" in caplog.text


async def test_a_redis_error_while_filling_is_announced(fx: Fixture) -> None:
    fx.publish(fx.history.add(1, '"a"'))
    await fx.settle()
    fx.history.add(2, '"b"')
    three = fx.history.add(3, '"c"')
    fx.history.fail = RedisConnectionError("connection refused")
    fx.publish(three)
    await fx.settle()
    assert [m[1] for m in fx.messages()] == [1, 3]
    (gap,) = fx.gaps()
    assert gap["reason"] == "Redis error while filling 2..2: connection refused"
    assert fx.metrics.redis_errors.labels("fill")._value.get() == 1


async def test_frames_for_a_room_without_members_here_are_ignored(fx: Fixture) -> None:
    fx.rooms.on_message("ch:other", f"M|{EPOCH}|1|1")
    await fx.settle()
    assert fx.sent == []
    assert fx.tasks == []


async def test_a_join_and_leave_within_one_interval_cancel_out(fx: Fixture) -> None:
    fx.rooms.on_message("ch:r", PresenceFrame("join", "c1", "alice").encode())
    fx.rooms.on_message("ch:r", PresenceFrame("leave", "c1", "alice").encode())
    fx.rooms.on_message("ch:r", PresenceFrame("join", "c2", None).encode())
    await fx.settle()
    await asyncio.sleep(0.1)  # two intervals of 20 ms: the timer fired
    assert fx.sent == [("presence_diff", {"room": "r", "joins": [{"client": "c2", "user": None}], "leaves": []})]


async def test_a_storm_of_changes_is_sent_as_counts() -> None:
    fx = Fixture(max_members=3)
    for i in range(5):
        fx.rooms.on_message("ch:r", PresenceFrame("join", f"c{i}", None).encode())
    fx.rooms.on_message("ch:r", PresenceFrame("leave", "gone", None).encode())
    await fx.settle()
    assert fx.room.diff_timer is not None
    fx.room.diff_timer.cancel()
    fx.rooms.send_presence_diff(fx.room)
    assert fx.sent == [
        ("presence_diff", {"room": "r", "joins": [], "leaves": [], "joined": 5, "left": 1, "truncated": True})
    ]


async def test_catching_up_after_the_listener_was_down(fx: Fixture) -> None:
    fx.publish(fx.history.add(1, '"a"'))
    await fx.settle()
    fx.history.add(2, '"b"')
    fx.history.add(3, '"c"')
    await fx.rooms.catch_up_all()
    assert [m[1] for m in fx.messages()] == [1, 2, 3]
    fx.history.frames = []  # Redis lost everything meanwhile
    await fx.rooms.catch_up_all()
    (gap,) = fx.gaps()
    assert gap["reason"] == "history lost while the listener was down"
    assert (fx.room.epoch, fx.room.offset) == ("", 0)


async def test_forget_drops_only_the_registered_room(fx: Fixture) -> None:
    stale = Room("r", "ch:r")
    assert not fx.rooms.forget(stale)
    assert fx.rooms.get("r") is fx.room
    assert fx.rooms.forget(fx.room)
    assert fx.rooms.get("r") is None
