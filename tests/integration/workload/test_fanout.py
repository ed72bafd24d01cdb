"""Fan-out across pods through Redis, with both official clients.

Two workload processes share one Redis. Python clients (python-socketio AsyncClient) and JS
clients (socket.io-client through Node) sit on different processes; messages published on
either process (HTTP API and client `publish`) reach every member, once and in order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import STOCK
from tests.support.processes import JsFleet, Redis, Workload, http, wait_for
from tests.support.pyclient import PyClient
from tests.support.secrets import API_KEY
from wsfleet_common import contract as c


def test_python_and_js_clients_get_every_message_from_both_pods(
    workloads: Callable[..., Workload], tmp_path: Path
) -> None:
    a, b = workloads("a"), workloads("b")
    js_a = JsFleet(tmp_path, a.url, clients=3, rooms=["news", "chat"])
    js_b = JsFleet(tmp_path, b.url, clients=3, rooms=["news"])
    try:
        js_a.wait_ready()
        js_b.wait_ready()

        async def scenario() -> tuple[PyClient, PyClient]:
            pa, pb = PyClient(a.url, ["news", "chat"]), PyClient(b.url, ["news"], transports=["polling"])
            await pa.connect()
            await pb.connect()
            for seq in range(1, 21):
                if seq % 2:
                    a.publish("news", {"seq": seq})
                else:
                    ack = await pb.call("publish", {"room": "news", "data": {"seq": seq}})
                    assert ack["ok"], ack
                    assert ack["offset"] == seq, ack
            b.publish("chat", {"seq": 1})
            await asyncio.sleep(1.0)
            await pa.close()
            await pb.close()
            return pa, pb

        pa, pb = asyncio.run(scenario())
        every = list(range(1, 21))
        assert pa.seqs["news"] == every
        assert pb.seqs["news"] == every, "the polling client on the other pod"
        assert pa.seqs["chat"] == [1]
        assert pa.dups == pb.dups == 0
        offsets = [m["offset"] for m in pa.messages if m["room"] == "news"]
        assert offsets == every, "offsets are the room's sequence"
        for fleet, rooms in ((js_a, {"news": every, "chat": [1]}), (js_b, {"news": every})):
            for client in fleet.summary():
                assert client["seqs"] == rooms, client
                assert client["dups"] == 0, client
                assert client["gaps"] == [], client
    finally:
        js_a.stop()
        js_b.stop()
    assert a.metric(c.METRIC_MESSAGES_OUT) >= 20 * 4
    # pa (websocket only) and the JS clients once upgraded are written to directly on the fast
    # path, queued for python-engineio's writer task on the stock one; the polling client on b is
    # queued either way.
    assert a.metric(c.METRIC_MESSAGES_OUT, path="queued" if STOCK else "direct") >= 20
    assert b.metric(c.METRIC_MESSAGES_OUT, path="queued") >= 20
    assert a.metric(c.METRIC_MESSAGES_IN, source="api") == 10
    assert b.metric(c.METRIC_MESSAGES_IN, source="client") == 10


async def _until(check: Callable[[], bool], what: str, timeout: float = 5) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.05)


def test_presence_across_pods_with_join_and_leave_events(workloads: Callable[..., Workload]) -> None:
    a, b = workloads("a"), workloads("b")

    async def scenario() -> None:
        watcher, joiner = PyClient(a.url, ["lobby"]), PyClient(b.url, ["lobby"])
        await watcher.connect()
        await joiner.connect()
        ack = await watcher.call("presence", {"room": "lobby"})
        assert ack["ok"]
        assert {m["client"] for m in ack["members"]} == {watcher.session, joiner.session}
        joined = {"room": "lobby", "action": "join", "client": joiner.session, "user": None}
        await _until(lambda: joined in watcher.presence, f"{joined} in {watcher.presence_diffs}")
        status, _ = a.get("/api/v1/presence?room=lobby")
        assert status == 401, "the HTTP presence API needs the API key"
        assert (await joiner.call("leave", {"room": "lobby"}))["ok"]
        left = {"room": "lobby", "action": "leave", "client": joiner.session, "user": None}
        await _until(lambda: left in watcher.presence, f"{left} in {watcher.presence_diffs}")
        ack = await watcher.call("presence", {"room": "lobby"})
        assert [m["client"] for m in ack["members"]] == [watcher.session]
        await joiner.close()
        await watcher.close()

    asyncio.run(scenario())


async def _watching(url: str, room: str) -> PyClient:
    """A member of the room whose own join has gone out (diff intervals of 1 s): it records only
    what comes after."""
    watcher = PyClient(url, [room])
    await watcher.connect()
    await asyncio.sleep(1.2)
    watcher.presence_diffs.clear()
    return watcher


def test_a_join_storm_reaches_members_as_a_few_presence_diffs(
    workloads: Callable[..., Workload], tmp_path: Path
) -> None:
    """40 clients joining within a second reach a member as one diff per interval, not 40 events;
    a member that joins and leaves within one interval is never announced."""
    a = workloads("a", **{c.ENV_PRESENCE_DIFF_MS: "1000"})
    b = workloads("b", **{c.ENV_PRESENCE_DIFF_MS: "1000"})

    async def scenario() -> None:
        watcher = await _watching(a.url, "lobby")
        storm = JsFleet(tmp_path, b.url, clients=40, rooms=["lobby"])
        try:
            await asyncio.to_thread(storm.wait_ready)
            blink = PyClient(b.url, ["lobby"])
            await blink.connect()
            assert (await blink.call("leave", {"room": "lobby"}))["ok"]
            await _until(lambda: len(watcher.presence) >= 40, f"40 joins in {watcher.presence_diffs}")
            await asyncio.sleep(1.5)  # any diff still due
            joins = [p["client"] for p in watcher.presence if p["action"] == "join"]
            assert len(joins) == len(set(joins)) == 40, watcher.presence_diffs
            assert blink.session not in joins, "a join and a leave within one interval cancel out"
            assert not [p for p in watcher.presence if p["action"] == "leave"], watcher.presence_diffs
            assert all(set(d) == {"room", "joins", "leaves"} for d in watcher.presence_diffs)
            # the storm lasted about a second: a diff per 1 s interval, where one event per join made 40
            assert len(watcher.presence_diffs) <= 4, [len(d["joins"]) for d in watcher.presence_diffs]
            await blink.close()
        finally:
            storm.stop()
        await watcher.close()

    asyncio.run(scenario())


def test_a_diff_with_more_changes_than_its_limit_carries_their_counts(
    workloads: Callable[..., Workload], tmp_path: Path
) -> None:
    """Above presence.diffMaxMembers changes in one interval, members get the counts, not the
    list (a storm's list to every member is N² bytes); the next small diff lists again."""
    env = {c.ENV_PRESENCE_DIFF_MS: "1000", c.ENV_PRESENCE_DIFF_MAX_MEMBERS: "5"}
    a, b = workloads("a", **env), workloads("b", **env)

    async def scenario() -> None:
        watcher = await _watching(a.url, "lobby")
        storm = JsFleet(tmp_path, b.url, clients=12, rooms=["lobby"])
        try:
            await asyncio.to_thread(storm.wait_ready)
            await _until(lambda: sum(d.get("joined", 0) for d in watcher.presence_diffs) >= 12, "12 counted joins")
            await asyncio.sleep(1.5)  # any diff still due
            counted = [d for d in watcher.presence_diffs if d.get("truncated")]
            assert counted, watcher.presence_diffs
            for d in counted:
                assert d["joins"] == d["leaves"] == [], d
                assert d["left"] == 0, d
                assert d["joined"] > 5, d
            listed = sum(len(d["joins"]) for d in watcher.presence_diffs)
            assert sum(d["joined"] for d in counted) + listed == 12, watcher.presence_diffs
            watcher.presence_diffs.clear()
            late = PyClient(b.url, ["lobby"])
            await late.connect()
            await _until(lambda: late.session in {p["client"] for p in watcher.presence}, "the late join listed")
            assert not [d for d in watcher.presence_diffs if d.get("truncated")], watcher.presence_diffs
            await late.close()
        finally:
            storm.stop()
        await watcher.close()

    asyncio.run(scenario())


def test_a_crashed_pods_members_expire_and_leave_is_announced(workloads: Callable[..., Workload]) -> None:
    a, b = workloads("a"), workloads("b")  # presence TTL 3 s in these tests

    async def scenario() -> None:
        watcher, victim = PyClient(a.url, ["lobby"]), PyClient(b.url, ["lobby"])
        await watcher.connect()
        victim.sio.reconnection = False
        await victim.connect()
        b.signal(9)
        b.wait(5)
        ack = await watcher.call("presence", {"room": "lobby"})
        assert victim.session in {m["client"] for m in ack["members"]}, "still listed right after the crash"
        deadline = asyncio.get_running_loop().time() + 10
        while asyncio.get_running_loop().time() < deadline:
            if {"room": "lobby", "action": "leave", "client": victim.session, "user": None} in watcher.presence:
                break
            await asyncio.sleep(0.2)
        else:
            raise AssertionError(f"no leave for the crashed pod's member: {watcher.presence}")
        ack = await watcher.call("presence", {"room": "lobby"})
        assert [m["client"] for m in ack["members"]] == [watcher.session]
        await watcher.close()
        await victim.close()

    asyncio.run(scenario())


def test_health_and_metrics_endpoints_explain_themselves(workloads: Callable[..., Workload]) -> None:
    a = workloads("a")
    for path in (c.LIVE_PATH, c.STARTUP_PATH, c.READY_PATH, c.DATABASE_PATH):
        status, body = a.get(path)
        assert status == 200, (path, body)
        assert isinstance(body, dict), (path, body)
        assert "status" in body, (path, body)
    assert a.get(c.DATABASE_PATH)[1]["redis"]["ok"] is True
    assert a.get(c.READY_PATH)[1]["listener"]["alive"] is True
    wait_for(lambda: a.metric(c.METRIC_HEALTH_CHECKS, endpoint="ready", result="ok") >= 1, 5, "metric")
    families = {f.name for f in text_string_to_metric_families(a.metrics())}
    for name in (
        c.METRIC_CONNECTIONS,
        c.METRIC_CONNECTS,
        c.METRIC_DISCONNECTS,
        c.METRIC_HEARTBEAT_TIMEOUTS,
        c.METRIC_HEALTH_CHECKS,
        c.METRIC_MESSAGES_IN,
        c.METRIC_MESSAGES_OUT,
        c.METRIC_REPLAY,
        c.METRIC_DRAIN_SECONDS,
        c.METRIC_REDIS_ERRORS,
        c.METRIC_HANDSHAKE_REJECTIONS,
        c.METRIC_SLOW_CONSUMERS,
        c.METRIC_DRAINING,
        c.METRIC_LISTENER_UP,
        c.METRIC_REJECTED,
        c.METRIC_GC_BURSTS,
        "python_gc_collections",
    ):
        assert name.removesuffix("_total") in families, name
    status, _ = a.get(c.METRICS_PATH)
    assert status == 404, "metrics are served on the metrics port only"


async def _two_members(w: Workload, room: str) -> tuple[PyClient, PyClient]:
    """A watcher and another member of the room, both joins seen; the watcher's record cleared."""
    watcher, other = PyClient(w.url, [room]), PyClient(w.url, [room])
    await watcher.connect()
    await other.connect()
    await _until(lambda: len(watcher.presence) >= 2, f"both joins in {watcher.presence_diffs}")
    watcher.presence_diffs.clear()
    watcher.presence.clear()
    return watcher, other


def test_a_quiet_rooms_presence_outlives_its_key_ttl_without_spurious_joins(
    workloads: Callable[..., Workload],
) -> None:
    """Members of a room nobody joins for a while stay present and are not announced again: the
    refresh keeps the room's presence set alive (its key TTL is 2 x presence TTL, here 6 s)."""
    a = workloads("a")  # presence TTL 3 s: refreshed every 1 s, the set's key lives 6 s

    async def scenario() -> None:
        watcher, other = await _two_members(a, "quiet")
        await asyncio.sleep(9)  # past the key's TTL, with refreshes and sweeps in between
        ack = await watcher.call("presence", {"room": "quiet"})
        assert {m["client"] for m in ack["members"]} == {watcher.session, other.session}, ack
        assert watcher.presence_diffs == [], "no member was announced again"
        await other.close()
        await watcher.close()

    asyncio.run(scenario())


def test_presence_lost_in_redis_is_written_back_and_announced_again(
    workloads: Callable[..., Workload], redis: Redis
) -> None:
    """A failover to an empty replica loses every presence entry: the pods holding the
    connections write them back at their next refresh (every presence TTL / 3, here 1 s), and the
    room is told its members joined again."""
    a = workloads("a")

    async def scenario() -> None:
        watcher, other = await _two_members(a, "lost")
        redis.cli("FLUSHALL")
        both = {watcher.session, other.session}
        await _until(lambda: {p["client"] for p in watcher.presence} == both, f"rejoins in {watcher.presence_diffs}")
        ack = await watcher.call("presence", {"room": "lost"})
        assert {m["client"] for m in ack["members"]} == both, ack
        await other.close()
        await watcher.close()

    asyncio.run(scenario())


def test_the_fleet_presence_count_includes_every_pods_connections(workloads: Callable[..., Workload]) -> None:
    """GET /api/v1/presence without a room counts the fleet's connections, in a room or not, on
    any pod, once each pod's refresh (every presence TTL / 3, here 1 s) has written them."""
    a, b = workloads("a"), workloads("b")
    headers = {"Authorization": f"Bearer {API_KEY}"}

    def count() -> int:
        status, _, body = http("GET", a.url + "/api/v1/presence", headers=headers)
        assert status == 200, body
        return int(body["count"])

    async def scenario() -> None:
        clients = [PyClient(a.url, ["lobby"]), PyClient(a.url, []), PyClient(b.url, ["other"])]
        for client in clients:
            await client.connect()
        await _until(lambda: count() == 3, "a fleet count of 3")
        for client in clients:
            await client.close()

    assert count() == 0
    asyncio.run(scenario())
