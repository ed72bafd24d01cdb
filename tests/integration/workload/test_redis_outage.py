"""A Redis restart (no persistence: everything is lost, like a failover to an empty replica).

During the outage readiness and /health/database answer 503 and say why, liveness stays 200,
publishing answers 503 (API) or a retryable error (client). Afterwards the listener comes back
by itself, readiness returns, fan-out resumes without a restart, and because the history is
gone the room's members are told so (`gap`: history lost) before the first new message.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from redis.asyncio import Redis as RedisClient

from tests.support.processes import Redis, Workload, http, wait_for
from tests.support.pyclient import PyClient
from tests.support.secrets import API_KEY
from wsfleet_common import contract as c


def test_redis_restart_is_reported_and_recovered(workloads: Callable[..., Workload], redis: Redis) -> None:
    a, b = workloads("a"), workloads("b")

    async def scenario() -> dict[str, float]:
        on_a, on_b = PyClient(a.url, ["r"]), PyClient(b.url, ["r"])
        await on_a.connect()
        await on_b.connect()
        for seq in (1, 2):
            b.publish("r", {"seq": seq})
        await asyncio.to_thread(wait_for, lambda: on_a.seqs["r"] == [1, 2], 10, "fan-out before the outage")

        redis.stop()
        await asyncio.to_thread(wait_for, lambda: a.get(c.READY_PATH)[0] == 503, 10, "readiness 503")
        status, body = a.get(c.READY_PATH)
        assert body["status"] == "unavailable", body
        assert "listener" in body["reason"]
        status, body = a.get(c.DATABASE_PATH)
        assert status == 503
        assert body["redis"]["ok"] is False
        assert body["redis"]["error"], body
        assert a.get(c.LIVE_PATH)[0] == 200, "liveness never depends on Redis"
        status, _, body = http(
            "POST", a.url + c.PUBLISH_PATH, {"room": "r", "data": {"seq": 3}}, {"Authorization": f"Bearer {API_KEY}"}
        )
        assert status == 503, body
        assert "Redis unavailable" in body["error"]
        ack = await on_b.call("publish", {"room": "r", "data": {"seq": 3}})
        assert ack["ok"] is False
        assert ack["retry"] is True
        assert a.metric(c.METRIC_LISTENER_UP) == 0

        redis.start()
        # back by itself, without a restart (the same processes, their outage counted)
        await asyncio.to_thread(wait_for, lambda: a.get(c.READY_PATH)[0] == 200, 30, "readiness back")
        await asyncio.to_thread(wait_for, lambda: b.get(c.READY_PATH)[0] == 200, 30, "readiness back on b")
        assert a.get(c.READY_PATH)[1]["listener"]["outages"] >= 1
        assert a.get(c.DATABASE_PATH)[0] == 200

        b.publish("r", {"seq": 4})  # a new epoch: Redis lost the room's history
        for _ in range(50):
            if on_a.seqs["r"][-1:] == [4]:
                break
            await asyncio.sleep(0.1)
        assert on_a.seqs["r"] == [1, 2, 4], "fan-out resumed without a restart"
        assert on_a.gaps, "members are told the history was lost"
        assert "history lost" in on_a.gaps[0]["reason"]
        assert on_a.gaps[0]["room"] == "r"
        assert a.metric(c.METRIC_REDIS_ERRORS) >= 1
        await on_a.close()
        await on_b.close()

    asyncio.run(scenario())
    for w in (a, b):  # they rode out the outage: never exited, never restarted
        assert w.proc is not None
        assert w.proc.poll() is None, f"{w.name} exited with {w.proc.returncode}"


def test_a_subscription_gone_silent_is_noticed_by_its_heartbeat_and_replaced(
    workloads: Callable[..., Workload], redis: Redis
) -> None:
    """Redis stops answering with every connection left open (CLIENT PAUSE): no error reaches the
    listener, only the absence of its own heartbeat. Within three periods (6 s) it counts the
    subscription as dead and starts over, while Redis is still silent (a 20 s pause leaves a busy
    machine room to be late), and when Redis answers again it is back and fan-out
    resumes without a restart."""
    a, b = workloads("a"), workloads("b")

    async def scenario() -> None:
        on_a = PyClient(a.url, ["r"])
        await on_a.connect()
        b.publish("r", {"seq": 1})
        await asyncio.to_thread(wait_for, lambda: on_a.seqs["r"] == [1], 5, "the first message")
        pause_ms = 20_000
        async with RedisClient.from_url(redis.url) as admin:
            await admin.execute_command("CLIENT", "PAUSE", pause_ms, "ALL")
        paused = time.monotonic()
        seen: dict[str, object] = {}

        def started_over() -> bool:
            seen.update(a.get(c.READY_PATH)[1]["listener"])
            return int(seen["outages"]) >= 1  # type: ignore[call-overload]

        await asyncio.to_thread(wait_for, started_over, 20, "the listener starting over")
        noticed = time.monotonic() - paused
        assert "no heartbeat back through the subscription" in str(seen["error"]), seen
        assert noticed < pause_ms / 1000, "noticed while Redis was still silent"
        await asyncio.to_thread(wait_for, lambda: a.get(c.READY_PATH)[0] == 200, 40, "readiness back")
        await asyncio.to_thread(wait_for, lambda: b.get(c.READY_PATH)[0] == 200, 40, "readiness back on b")
        b.publish("r", {"seq": 2})
        await asyncio.to_thread(wait_for, lambda: on_a.seqs["r"][-1:] == [2], 5, "fan-out after the silence")
        assert on_a.seqs["r"] == [1, 2]
        await on_a.close()

    asyncio.run(scenario())
