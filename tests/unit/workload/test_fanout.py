"""The fan-out listener's own rules with plain objects in place of Redis: a join is refused while
the listener is down, a join waiting for its SUBSCRIBE confirmation fails when the connection is
lost, the listener counts as dead when no heartbeat came back, and a failing connection is
retried with the error kept. Messages through a real Redis are in the integration tier
(tests/integration/workload/test_fanout.py, test_redis_outage.py).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from wsfleet_workload.fanout import Listener, Unavailable
from wsfleet_workload.metrics import Metrics


class PubSub:
    def __init__(self, fail: Exception | None = None) -> None:
        self.fail = fail
        self.subscribed: list[str] = []

    async def subscribe(self, *channels: str) -> None:
        if self.fail is not None:
            raise self.fail
        self.subscribed += channels

    async def aclose(self) -> None:
        pass


class Redis:
    def __init__(self, fail: Exception | None = None) -> None:
        self.fail = fail
        self.sessions = 0

    def pubsub(self) -> PubSub:
        self.sessions += 1
        return PubSub(self.fail)


def listener(redis: Any = None, ping_every: float = 2.0) -> Listener:
    async def resubscribed() -> None:
        pass

    return Listener(
        redis or Redis(),
        None,  # type: ignore[arg-type]  # the command connection: only the heartbeat task uses it
        "ctl",
        on_message=lambda channel, data: None,
        on_resubscribed=resubscribed,
        metrics=Metrics(),
        ping_every=ping_every,
    )


async def test_a_join_is_refused_while_the_listener_is_down() -> None:
    fan = listener()
    fan.last_error = "ConnectionError: connection refused"
    with pytest.raises(Unavailable, match=r"fan-out listener is down \(ConnectionError: connection refused\)"):
        await fan.subscribe("room-a")
    assert "room-a" in fan.channels  # subscribed again once the listener is back


async def test_a_join_waiting_for_its_confirmation_fails_when_the_connection_is_lost() -> None:
    fan = listener()
    fan.up, fan._pubsub = True, PubSub()  # type: ignore[assignment]
    waiting = asyncio.get_running_loop().create_task(fan.subscribe("room-a", timeout=10))
    await asyncio.sleep(0)
    assert fan._pubsub.subscribed == ["room-a"]  # type: ignore[union-attr]
    fan.last_error = "ConnectionError: reset by peer"
    fan._down()
    with pytest.raises(Unavailable, match="lost its connection"):
        await waiting
    assert not fan.up
    assert fan.outages == 1
    assert fan.metrics.listener_up._value.get() == 0


async def test_a_join_without_a_confirmation_times_out() -> None:
    fan = listener()
    fan.up, fan._pubsub = True, PubSub()  # type: ignore[assignment]
    with pytest.raises(Unavailable, match=r"Redis did not confirm SUBSCRIBE room-a within 0\.05s"):
        await fan.subscribe("room-a", timeout=0.05)


def test_the_listener_is_dead_after_three_periods_without_a_heartbeat() -> None:
    fan = listener(ping_every=2.0)
    fan.up = True
    fan.last_heartbeat = time.monotonic() - 5.0
    assert fan.alive
    fan.last_heartbeat = time.monotonic() - 6.5
    assert not fan.alive


async def test_a_failing_connection_is_retried_with_its_error_kept() -> None:
    redis = Redis(RedisConnectionError("connection refused"))
    fan = listener(redis)
    task = asyncio.get_running_loop().create_task(fan.run())
    deadline = time.monotonic() + 10
    while redis.sessions < 3 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert redis.sessions >= 3  # backing off from 0.1 s: three tries well within the deadline
    assert fan.last_error == "ConnectionError: connection refused"
    assert not fan.up
    assert not fan.connected_once
