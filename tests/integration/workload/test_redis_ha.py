"""A Sentinel failover under a running fleet: a real primary, a replica and a Sentinel
(redis-server from Debian, password-protected), two workload processes on a
redis+sentinel:// URL, clients on both.

The primary is killed (SIGKILL). Expected, in order:
  - readiness turns 503 and names the listener; liveness stays 200;
  - Sentinel promotes the replica; the workloads follow it without a restart;
  - readiness comes back and fan-out resumes: a publisher running throughout gets through again;
  - the room's history is not trusted across the promotion (its replication id changed), so
    live members are told `gap` before the first new message, and a client that reconnects
    with offsets from before the failover gets `recovered: false`, never a silent gap.
The interruption (kill -> first message delivered again) is measured and reported.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import Redis, Sentinel, Workload, http, tls_files, wait_for
from tests.support.pyclient import PyClient
from tests.support.secrets import API_KEY, REDIS_PASSWORD
from wsfleet_common import contract as c


@pytest.fixture
def sentinel_set(tmp_path: Path) -> Iterator[tuple[Redis, Redis, Sentinel]]:
    primary = Redis(tmp_path, "--masterauth", REDIS_PASSWORD)
    primary.start()
    replica = Redis(tmp_path, "--replicaof", "127.0.0.1", str(primary.port), "--masterauth", REDIS_PASSWORD)
    replica.start()
    wait_for(lambda: "master_link_status:up" in replica.cli("INFO", "replication"), 15, "the replica in sync")
    sentinel = Sentinel(tmp_path, primary).start()
    wait_for(lambda: sentinel.primary_port() == primary.port, 10, "Sentinel watching the primary")
    yield primary, replica, sentinel
    for proc in (sentinel, replica, primary):
        proc.stop()


def test_sentinel_failover_is_followed_and_announced(
    tmp_path: Path, sentinel_set: tuple[Redis, Redis, Sentinel]
) -> None:
    primary, replica, sentinel = sentinel_set
    a = Workload("a", sentinel.url, tmp_path).start()
    b = Workload("b", sentinel.url, tmp_path).start()
    try:

        async def scenario() -> dict[str, float]:
            on_a, on_b = PyClient(a.url, ["r"]), PyClient(b.url, ["r"])
            away = PyClient(b.url, ["r"])
            for cl in (on_a, on_b, away):
                await cl.connect()
            for seq in (1, 2, 3):
                b.publish("r", {"seq": seq})
            await asyncio.sleep(0.5)
            assert on_a.seqs["r"] == on_b.seqs["r"] == away.seqs["r"] == [1, 2, 3]
            held = dict(away.pos)  # the position a client takes away with it
            await away.close()

            assert primary.proc is not None
            primary.proc.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            await asyncio.to_thread(wait_for, lambda: a.get(c.READY_PATH)[0] == 503, 10, "readiness 503 on a")
            body = a.get(c.READY_PATH)[1]
            assert "listener" in body["reason"], body
            assert a.get(c.LIVE_PATH)[0] == 200, "liveness never depends on Redis"

            # A publisher keeps trying through the outage, as a backend would.
            delivered: dict[str, float] = {}
            seq = 100

            def publish_until_delivered() -> bool:
                nonlocal seq
                seq += 1
                status, _, _ = http(
                    "POST",
                    a.url + c.PUBLISH_PATH,
                    {"room": "r", "data": {"seq": seq}},
                    {"Authorization": f"Bearer {API_KEY}"},
                )
                if status == 200 and any(x >= 101 for x in on_b.seqs["r"]):
                    delivered.setdefault("first", time.monotonic())
                return "first" in delivered

            await asyncio.to_thread(wait_for, publish_until_delivered, 45, "fan-out after the failover", 0.1)
            ready = await asyncio.to_thread(_when, lambda: a.get(c.READY_PATH)[0] == 200, 15)
            assert sentinel.primary_port() == replica.port, "Sentinel promoted the replica"

            await asyncio.sleep(0.5)
            for cl in (on_a, on_b):
                assert cl.gaps, f"members told about the lost history: {cl.seqs}"
                assert cl.gaps[0]["reason"], cl.gaps
                assert cl.seqs["r"][:3] == [1, 2, 3]
            # A client holding offsets from before the failover: told, not silently resumed.
            back = PyClient(a.url, ["r"])
            back.session, back.pos = away.session, held
            await back.connect()
            (session,) = back.sessions
            assert session["rooms"]["r"]["recovered"] is False, session
            await asyncio.gather(on_a.close(), on_b.close(), back.close())
            return {"fanout_s": delivered["first"] - killed, "ready_s": ready - killed}

        figures = asyncio.run(scenario())
        print(
            f"\nSentinel failover: fan-out back after {figures['fanout_s']:.2f} s, ready after {figures['ready_s']:.2f} s"
        )
        # Sentinel alone needs down-after (1 s) plus an election before promoting.
        assert figures["fanout_s"] > 1.0
        assert a.metric(c.METRIC_LISTENER_UP) == 1
        assert b.metric(c.METRIC_LISTENER_UP) == 1
    finally:
        a.stop()
        b.stop()


def _when(check: object, timeout: float) -> float:
    wait_for(check, timeout, "condition")  # type: ignore[arg-type]
    return time.monotonic()


def test_tls_redis_with_a_password(tmp_path: Path) -> None:
    """rediss:// with the CA from the URL: fan-out works; without the CA the workload says why."""
    tls = tls_files(tmp_path)
    redis = Redis(tmp_path)
    redis.extra = ("--port", "0", "--tls-port", str(redis.port), "--tls-cert-file", str(tls["cert"]),
                   "--tls-key-file", str(tls["key"]), "--tls-ca-cert-file", str(tls["ca"]),
                   "--tls-auth-clients", "no")  # fmt: skip
    redis.start()
    url = f"rediss://:{REDIS_PASSWORD}@127.0.0.1:{redis.port}/0"
    a = Workload("a", f"{url}?ssl_ca_certs={tls['ca']}", tmp_path).start()
    b = Workload("b", f"{url}?ssl_ca_certs={tls['ca']}", tmp_path).start()
    untrusting = Workload("c", url, tmp_path).start(wait_ready=False)
    try:

        async def scenario() -> list[int]:
            client = PyClient(a.url, ["r"])
            await client.connect()
            for seq in (1, 2, 3):
                b.publish("r", {"seq": seq})
            await asyncio.sleep(0.5)
            await client.close()
            return list(client.seqs["r"])

        assert asyncio.run(scenario()) == [1, 2, 3]
        assert a.get(c.DATABASE_PATH)[0] == 200
        wait_for(lambda: untrusting.get(c.DATABASE_PATH)[0] == 503, 10, "the workload without the CA to say so")
        body = untrusting.get(c.DATABASE_PATH)[1]
        assert "CERTIFICATE_VERIFY_FAILED" in body["redis"]["error"], body
        assert REDIS_PASSWORD not in str(body)
    finally:
        for w in (a, b, untrusting):
            w.stop()
        redis.stop()
