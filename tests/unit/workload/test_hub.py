"""The hub with plain objects: sockets that record what they are given, a history, presence,
sessions and a listener that remember their calls. No Redis, no server.

| case                                        | expected                                            |
|---------------------------------------------|-----------------------------------------------------|
| packets sent while a client is held         | kept, then released in order behind what came first |
| a socket gone or closed                     | send returns False                                  |
| a long-polling queue at send_queue_messages | slow consumer: cut, its queue dropped, closed, counted; later sends refused |
| a fast-path socket that refuses a write     | slow consumer: its transport aborted                |
| a broadcast                                 | counted as direct or queued                         |
| a join the token does not grant             | BadRequest naming the room; nothing subscribed      |
| a join while the listener is down           | the error; the room is not kept                     |
| a join with the room's position             | recovered, nothing replayed                         |
| a join from behind                          | the missed messages to that client only, counted    |
| a join from another epoch                   | recovered: false with the reason                    |
| the last member leaves                      | the channel is unsubscribed                         |
| a disconnect, not on purpose                | presence and session kept (it may be back elsewhere)|
| a disconnect on purpose                     | session deleted, presence left                      |
| the upkeep with Redis down                  | counted and logged; no exception                    |
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from engineio import packet as eio_packet
from redis.exceptions import ConnectionError as RedisConnectionError

from wsfleet_workload.auth import ANONYMOUS, Identity
from wsfleet_workload.config import Config
from wsfleet_workload.fanout import Unavailable
from wsfleet_workload.hub import Hub
from wsfleet_workload.metrics import Metrics
from wsfleet_workload.replay import Missed
from wsfleet_workload.rooms import Client, packet
from wsfleet_workload.wire import BadRequest, Keys, MessageFrame, Position


class Sock:
    """python-engineio's socket as the hub uses it: a queue, a state, close()."""

    def __init__(self, *, upgraded: bool = True) -> None:
        self.queue: asyncio.Queue[eio_packet.Packet | None] = asyncio.Queue()
        self.closed = self.closing = False
        self.upgraded = upgraded
        self.closed_for: list[str] = []

    def buffered(self) -> int:
        return self.queue.qsize()

    def texts(self) -> list[str]:
        return [p.data for p in self.queue._queue if p is not None]  # type: ignore[attr-defined]

    async def close(self, *, wait: bool, abort: bool, reason: str) -> None:
        self.closed = True
        self.closed_for.append(reason)


class Transport:
    def __init__(self) -> None:
        self.aborted = False

    def is_closing(self) -> bool:
        return self.aborted

    def abort(self) -> None:
        self.aborted = True


class DirectSock(Sock):
    """The fast path's socket: written to at once, refusing past its budget."""

    max_buffer = 4096

    def __init__(self, *, accept: bool = True) -> None:
        super().__init__()
        self.direct = type("Direct", (), {"transport": Transport()})()
        self.accept = accept
        self.written: list[eio_packet.Packet] = []

    def write(self, pkt: eio_packet.Packet) -> bool:
        if self.accept:
            self.written.append(pkt)
        return self.accept


class Recorder:
    """Presence, listener and history in one: every call recorded, answers settable."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.head_at: Position | None = Position("e1", 3)
        self.missed: Missed = Missed(True, "e1", 3, [])
        self.down: Exception | None = None

    # listener
    async def subscribe(self, channel: str, timeout: float = 5.0) -> None:
        if self.down is not None:
            raise self.down
        self.calls.append(("subscribe", channel))

    async def unsubscribe(self, channel: str) -> None:
        self.calls.append(("unsubscribe", channel))

    # history
    async def head(self, room: str) -> Position | None:
        return self.head_at

    async def since(self, room: str, pos: Position, upto: int | None = None) -> Missed:
        self.calls.append(("since", room, pos, upto))
        return self.missed

    # presence
    async def join(self, room: str, client: str, user: str | None, session: Any = None) -> bool:
        self.calls.append(("presence.join", room, client, user, session))
        return True

    async def leave(self, room: str, client: str, user: str | None) -> bool:
        self.calls.append(("presence.leave", room, client))
        return True

    async def disconnect(self, client: str, user: str | None) -> None:
        self.calls.append(("presence.disconnect", client))

    async def refresh(self, rooms: Any, clients: Any) -> int:
        if self.down is not None:
            raise self.down
        self.calls.append(("presence.refresh", rooms, clients))
        return 0

    async def sweep(self, rooms: list[str]) -> int:
        return 0

    async def members(self, room: str, limit: int = 1000) -> list[dict[str, Any]]:
        return []

    def named(self, name: str) -> list[tuple[Any, ...]]:
        return [c for c in self.calls if c[0] == name]


class SessionRecorder:
    """sessions.Sessions, its calls recorded in the same list."""

    def __init__(self, calls: list[tuple[Any, ...]]) -> None:
        self.calls = calls

    def record(self, session: str, rooms: Any, user: str | None) -> tuple[str, str, int]:
        return f"s:{session}", json.dumps(sorted(rooms)), 300

    async def save(self, session: str, rooms: Any, user: str | None) -> None:
        self.calls.append(("session.save", session, sorted(rooms)))

    async def load(self, session: str, user: str | None) -> list[str] | None:
        return None

    async def delete(self, session: str) -> None:
        self.calls.append(("session.delete", session))

    async def refresh(self, sessions: list[str]) -> None:
        self.calls.append(("session.refresh", sessions))


def hub_of(env: dict[str, str] | None = None) -> tuple[Hub, dict[str, Sock], Recorder]:
    sockets: dict[str, Sock] = {}
    deps = Recorder()
    hub = Hub(
        Config.from_environ(env or {}),
        sockets,
        Keys("t"),
        history=deps,
        presence=deps,
        sessions=SessionRecorder(deps.calls),  # type: ignore[arg-type]
        listener=deps,
        metrics=Metrics(),
    )
    return hub, sockets, deps


def client(sid: str, identity: Identity = ANONYMOUS) -> Client:
    return Client(sid, f"eio-{sid}", f"session-{sid}", identity, "10.0.0.1")


def pkt(text: str) -> eio_packet.Packet:
    return packet("message", text)


def value(metric: Any) -> float:
    return float(metric._value.get())


async def settle(hub: Hub) -> None:
    while hub._tasks:
        await asyncio.gather(*hub._tasks)


async def test_held_packets_are_released_in_order() -> None:
    hub, sockets, _ = hub_of()
    sockets["eio-a"] = sock = Sock()
    a = client("a")
    a.hold = [pkt("session")]
    assert hub.send(a, pkt("one"))
    assert sock.texts() == []
    hub.release(a)
    assert hub.send(a, pkt("two"))
    assert [json.loads(t[1:])[1] for t in sock.texts()] == ["session", "one", "two"]


async def test_nothing_is_sent_to_a_socket_that_is_gone_or_closed() -> None:
    hub, sockets, _ = hub_of()
    a = client("a")
    assert not hub.send(a, pkt("x"))
    sockets["eio-a"] = sock = Sock()
    sock.closed = True
    assert not hub.send(a, pkt("x"))


async def test_a_full_queue_cuts_the_slow_consumer() -> None:
    hub, sockets, _ = hub_of({"WSFLEET_SEND_QUEUE_MESSAGES": "3"})
    sockets["eio-a"] = sock = Sock()
    a = client("a")
    assert [hub.send(a, pkt(str(i))) for i in range(4)] == [True, True, True, False]
    await settle(hub)
    assert a.cut
    assert sock.closed_for == ["slow consumer"]
    assert sock.texts() == []  # dropped: it recovers them from the stream when it is back
    assert value(hub.metrics.slow_consumers) == 1
    assert not hub.send(a, pkt("later"))


async def test_a_refused_direct_write_cuts_the_slow_consumer() -> None:
    hub, sockets, _ = hub_of()
    sockets["eio-a"] = sock = DirectSock(accept=False)
    a = client("a")
    assert not hub.send(a, pkt("x"))
    await settle(hub)
    assert a.cut
    assert sock.direct.transport.aborted
    assert sock.closed_for == ["slow consumer"]


async def test_a_broadcast_counts_direct_and_queued_sends() -> None:
    hub, sockets, _ = hub_of()
    sockets["eio-a"], sockets["eio-b"] = DirectSock(), Sock(upgraded=False)
    room = hub.rooms.open("r", Keys("t").channel("r"))
    room.members = {"a": client("a"), "b": client("b")}
    assert hub.broadcast(room, pkt("x")) == 2
    assert value(hub.metrics.messages_out.labels("direct")) == 1
    assert value(hub.metrics.messages_out.labels("queued")) == 1


async def test_a_join_the_token_does_not_grant_is_refused() -> None:
    hub, _, deps = hub_of()
    a = client("a", Identity("alice", ("lobby",), None))
    with pytest.raises(BadRequest, match="room='vip': the token does not grant this room"):
        await hub.join(a, "vip", None)
    assert deps.calls == []
    assert hub.rooms.get("vip") is None


async def test_a_join_while_the_listener_is_down_keeps_no_room() -> None:
    hub, _, deps = hub_of()
    deps.down = Unavailable("fan-out listener is down (connecting)")
    with pytest.raises(Unavailable):
        await hub.join(client("a"), "r", None)
    assert hub.rooms.get("r") is None


async def test_a_join_at_the_rooms_position_recovers_nothing_to_replay() -> None:
    hub, _, deps = hub_of()
    a = client("a")
    result = await hub.join(a, "r", Position("e1", 3))
    assert result == {"room": "r", "epoch": "e1", "offset": 3, "recovered": True, "missed": 0}
    assert deps.named("since") == []
    assert a.rooms == {"r"}
    assert hub.rooms.get("r") is not None
    (join,) = deps.named("presence.join")
    assert join[1:4] == ("r", "session-a", None)
    assert join[4] == ("s:session-a", '["r"]', 300)


async def test_a_join_from_behind_replays_the_missed_messages_to_that_client() -> None:
    hub, sockets, deps = hub_of()
    sockets["eio-a"], sockets["eio-b"] = sa, sb = Sock(), Sock()
    b = client("b")
    await hub.join(b, "r", None)
    deps.missed = Missed(True, "e1", 3, [MessageFrame("e1", 2, '"two"'), MessageFrame("e1", 3, '"three"')])
    a = client("a")
    result = await hub.join(a, "r", Position("e1", 1))
    assert result["recovered"] is True
    assert result["missed"] == 2
    assert [json.loads(t[1:])[1]["offset"] for t in sa.texts()] == [2, 3]
    assert sb.texts() == []
    assert value(hub.metrics.messages_out.labels("replay")) == 2
    assert deps.named("since") == [("since", "r", Position("e1", 1), 3)]


async def test_a_join_from_another_epoch_is_not_recovered() -> None:
    hub, _, deps = hub_of()
    deps.missed = Missed(False, "e1", 3, [], "epoch changed (e0 -> e1)")
    result = await hub.join(client("a"), "r", Position("e0", 7))
    assert result["recovered"] is False
    assert result["reason"] == "epoch changed (e0 -> e1)"
    assert value(hub.metrics.replay.labels("miss")) == 1


async def test_the_last_member_leaving_unsubscribes() -> None:
    hub, _, deps = hub_of()
    a, b = client("a"), client("b")
    await hub.join(a, "r", None)
    await hub.join(b, "r", None)
    assert await hub.leave(a, "r")
    assert deps.named("unsubscribe") == []
    assert await hub.leave(b, "r")
    assert deps.named("unsubscribe") == [("unsubscribe", Keys("t").channel("r"))]
    assert hub.rooms.get("r") is None


async def test_a_disconnect_keeps_presence_and_session_unless_on_purpose() -> None:
    hub, _, deps = hub_of()
    a, b = client("a"), client("b")
    for cl in (a, b):
        hub.clients[cl.sid] = cl
        await hub.join(cl, "r", None)
    await hub.remove(a, on_purpose=False)
    assert deps.named("presence.leave") == []
    assert deps.named("session.delete") == []
    await hub.remove(b, on_purpose=True)
    assert deps.named("presence.leave") == [("presence.leave", "r", "session-b")]
    assert deps.named("session.delete") == [("session.delete", "session-b")]
    assert deps.named("presence.disconnect") == [("presence.disconnect", "session-b")]
    assert hub.clients == {}


async def test_the_upkeep_survives_a_redis_outage(caplog: pytest.LogCaptureFixture) -> None:
    hub, _, deps = hub_of()
    a = client("a")
    hub.clients["a"] = a
    await hub.join(a, "r", None)
    await hub.refresh()
    assert deps.named("session.refresh") == [("session.refresh", ["session-a"])]
    (refresh,) = deps.named("presence.refresh")
    assert refresh[1] == {"r": [("session-a", None)]}
    assert refresh[2] == [("session-a", None)]
    deps.down = RedisConnectionError("connection refused")
    await hub.refresh()
    assert value(hub.metrics.redis_errors.labels("upkeep")) == 1
    assert "upkeep failed: connection refused" in caplog.text


async def test_closing_a_polling_client_lets_its_queue_go_first() -> None:
    hub, sockets, _ = hub_of()
    sockets["eio-a"] = sock = Sock(upgraded=False)
    a = client("a")
    hub.send(a, pkt("last"))

    async def poll() -> None:
        await asyncio.sleep(0.1)
        sock.queue.get_nowait()

    poller = asyncio.get_running_loop().create_task(poll())
    await hub.close(a, "server shutdown", flush=True)
    await poller
    assert sock.closed_for == ["server shutdown"]
    assert sock.queue.get_nowait() is None  # ends the client's next long-poll at once
