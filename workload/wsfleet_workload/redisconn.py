"""Redis clients from the configured URL: a plain primary (redis://, rediss:// with TLS, a
password in the URL) or a Sentinel-managed one (redis+sentinel://, rediss+sentinel://).

With Sentinel every new connection asks the Sentinels for the current primary, and connections
to a demoted one are dropped, so the command pool and the fan-out listener follow a promotion by
reconnecting; they already retry through a Redis outage. Cluster is not supported: fan-out needs
one pub/sub namespace and the replay script touches a room's keys only, which Cluster could host,
but presence reads span rooms.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool

from wsfleet_workload.config import Config


class _BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """Sentinel's primary discovery with a blocking pool: a reconnect wave queues for a connection
    instead of failing when the pool is exhausted (redis-py has no asyncio one of its own)."""


def connect(cfg: Config, *, pool: int | None, socket_timeout: float | None) -> Redis:
    """A client; with `pool`, commands queue (up to 5 s) for one of that many connections."""
    common: dict[str, Any] = {"decode_responses": True, "socket_timeout": socket_timeout, "socket_connect_timeout": 2}
    s = cfg.sentinel
    if s is None:
        if pool is None:
            return Redis.from_url(cfg.redis_url, **common)
        return Redis(connection_pool=BlockingConnectionPool.from_url(cfg.redis_url, max_connections=pool, timeout=5,
                                                                     **common))  # fmt: skip
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        list(s.hosts),
        sentinel_kwargs={
            "password": s.sentinel_password,
            "ssl": s.tls,
            "socket_timeout": 2,
            "socket_connect_timeout": 2,
        },
    )
    kwargs: dict[str, Any] = {**common, "db": s.db, "username": s.username, "password": s.password, "ssl": s.tls}
    if pool is not None:
        kwargs.update(connection_pool_class=_BlockingSentinelPool, max_connections=pool, timeout=5)
    client: Redis = sentinel.master_for(s.service, redis_class=Redis, **kwargs)
    return client
