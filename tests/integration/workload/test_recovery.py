"""Replay and recovery: a client that comes back, on any pod, gets what it missed or is told.

| case                                     | expected                                         |
|------------------------------------------|--------------------------------------------------|
| back on another pod, gap within limits   | recovered: true, missed messages in order, first |
| more missed than replay.maxMessages      | recovered: false, reason names both numbers      |
| older than replay.ttl                    | recovered: false                                 |
| the stream's epoch changed (Redis lost)  | recovered: false, reason names both epochs       |
| nothing missed                           | recovered: true, 0 replayed                      |
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.processes import Redis, Workload, wait_for
from tests.support.pyclient import PyClient
from wsfleet_common import contract as c


async def _away_and_back(a: Workload, b: Workload, publish: Callable[[], Any], room: str = "r") -> PyClient:
    """Connect to `a`, receive seq 1, drop the connection, run `publish`, come back on `b` with
    the same session and offsets (what the client library does on every reconnect)."""
    first = PyClient(a.url, [room])
    await first.connect()
    a.publish(room, {"seq": 1})
    await asyncio.sleep(0.3)
    first.sio.reconnection = False
    await first.sio.eio.disconnect(abort=True)  # the connection drops without a goodbye
    await first.close()
    await asyncio.sleep(0.3)
    publish()
    back = PyClient(b.url, [room])
    back.session, back.pos, back.seqs = first.session, dict(first.pos), first.seqs
    await back.connect()
    await asyncio.sleep(0.3)
    await back.close()
    return back


def test_recovers_missed_messages_on_another_pod(workloads: Callable[..., Workload]) -> None:
    a, b = workloads("a"), workloads("b")

    def publish() -> None:
        for seq in range(2, 12):
            b.publish("r", {"seq": seq})

    client = asyncio.run(_away_and_back(a, b, publish))
    session = client.sessions[-1]
    assert session["pod"] == "b"
    assert session["recovered"] is True, session
    assert session["rooms"]["r"]["recovered"] is True
    assert session["rooms"]["r"]["missed"] == 10
    assert client.seqs["r"] == list(range(1, 12)), "every message, once, in order"
    assert client.dups == 0
    assert b.metric(c.METRIC_REPLAY, result="hit") == 1


def test_nothing_missed_is_a_recovery_too(workloads: Callable[..., Workload]) -> None:
    a, b = workloads("a"), workloads("b")
    client = asyncio.run(_away_and_back(a, b, lambda: None))
    assert client.sessions[-1]["rooms"]["r"] == {
        "room": "r",
        "epoch": client.pos["r"]["epoch"],
        "offset": 1,
        "recovered": True,
        "missed": 0,
    }


def test_too_many_missed_is_not_recovered(workloads: Callable[..., Workload]) -> None:
    a = workloads("a", WSFLEET_REPLAY_MAX_MESSAGES="5")
    b = workloads("b", WSFLEET_REPLAY_MAX_MESSAGES="5")

    def publish() -> None:
        for seq in range(2, 10):
            a.publish("r", {"seq": seq})

    client = asyncio.run(_away_and_back(a, b, publish))
    room = client.sessions[-1]["rooms"]["r"]
    assert room["recovered"] is False
    assert "8 missed, more than the 5 kept" in room["reason"]
    assert client.sessions[-1]["recovered"] is False
    assert b.metric(c.METRIC_REPLAY, result="miss") == 1


def test_stream_is_bounded_by_count_and_expires(workloads: Callable[..., Workload], redis: Redis) -> None:
    a = workloads("a", WSFLEET_REPLAY_MAX_MESSAGES="5", WSFLEET_REPLAY_TTL_SECONDS="2")
    for seq in range(1, 9):
        a.publish("r", {"seq": seq})
    stream = "wsfleet:test:r:{r}:stream"
    assert redis.cli("XLEN", stream) == "5"
    assert redis.cli("XRANGE", stream, "-", "+", "COUNT", "1").splitlines()[0] == "4-0", "the oldest kept is 4"
    ttl = int(redis.cli("PTTL", stream))
    assert 0 < ttl <= 2000
    time.sleep(2.2)
    assert redis.cli("EXISTS", stream) == "0", "a quiet room's stream expires after replay.ttl"
    assert redis.cli("HGET", "wsfleet:test:r:{r}:meta", "offset") == "8", "the head outlives the stream"


def test_too_old_is_not_recovered(workloads: Callable[..., Workload]) -> None:
    a = workloads("a", WSFLEET_REPLAY_TTL_SECONDS="1")
    b = workloads("b", WSFLEET_REPLAY_TTL_SECONDS="1")

    def publish() -> None:
        b.publish("r", {"seq": 2})
        time.sleep(1.5)

    client = asyncio.run(_away_and_back(a, b, publish))
    room = client.sessions[-1]["rooms"]["r"]
    assert room["recovered"] is False, room


def test_epoch_change_is_not_recovered(workloads: Callable[..., Workload], redis: Redis) -> None:
    a, b = workloads("a"), workloads("b")

    def lose_history() -> None:
        redis.cli("FLUSHALL")  # what a failover to an empty replica looks like
        b.publish("r", {"seq": 2})

    client = asyncio.run(_away_and_back(a, b, lose_history))
    room = client.sessions[-1]["rooms"]["r"]
    assert room["recovered"] is False
    assert "history lost" in room["reason"] or "epoch changed" in room["reason"], room


def test_a_client_that_joined_an_empty_room_recovers_its_first_messages(workloads: Callable[..., Workload]) -> None:
    a, b = workloads("a"), workloads("b")

    async def scenario() -> PyClient:
        first = PyClient(a.url, ["fresh"])
        await first.connect()
        assert first.pos["fresh"] == {"epoch": "", "offset": 0}, "no history yet"
        first.sio.reconnection = False
        await first.sio.eio.disconnect(abort=True)
        await first.close()
        for seq in (1, 2, 3):
            b.publish("fresh", {"seq": seq})  # the room's first epoch begins while the client is away
        back = PyClient(b.url, ["fresh"])
        back.session, back.pos = first.session, dict(first.pos)
        await back.connect()
        await asyncio.sleep(0.3)
        await back.close()
        return back

    back = asyncio.run(scenario())
    assert back.sessions[-1]["rooms"]["fresh"]["recovered"] is True
    assert back.seqs["fresh"] == [1, 2, 3]


# The budget is the fast path's: frames held for one write count as unsent bytes. On the stock
# path python-engineio's writer task takes each queued packet as it comes, and a client that
# reads is not cut.
@pytest.mark.fast_path
def test_what_a_returning_client_missed_counts_against_its_send_budget(workloads: Callable[..., Workload]) -> None:
    """The replay leaves in one write with the CONNECT answer and the session event, held until
    Redis has given it; held or not, it is refused past the budget (sendQueueMessages x 4 KB,
    8 KB here) like anything else unsent, and the client is cut as a slow consumer. It got the
    messages before the cut, so its next resume asks for fewer."""
    a, b = workloads("a"), workloads("b", WSFLEET_SEND_QUEUE_MESSAGES="2")
    blob = "x" * 4000

    def publish() -> None:
        for seq in range(2, 6):  # 16 KB to replay
            b.publish("r", {"seq": seq, "blob": blob})

    client = asyncio.run(_away_and_back(a, b, publish))
    wait_for(lambda: b.metric(c.METRIC_SLOW_CONSUMERS) == 1, 10, "the replay past the budget cut off")
    assert client.sessions[0]["rooms"]["r"]["missed"] == 4
    assert client.seqs["r"][:3] == [1, 2, 3], "what fitted the budget arrived, in order"
    assert client.dups == 0
