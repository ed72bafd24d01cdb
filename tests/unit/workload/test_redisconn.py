"""The workload's Redis clients parse with hiredis (in C): redis-py falls back to its pure-Python
parser without a word when hiredis is missing, and the fleet's pub/sub traffic (a message per
publish and per presence change, on every pod) then costs several times the CPU."""

from __future__ import annotations

import asyncio

import pytest
from redis._parsers import _AsyncHiredisParser

from wsfleet_common import contract as c
from wsfleet_workload.config import Config
from wsfleet_workload.redisconn import connect


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:6379/0", "redis+sentinel://127.0.0.1:26379/mymaster/0"], ids=["plain", "sentinel"]
)
@pytest.mark.parametrize("pool", [None, 4], ids=["own pool", "blocking pool"])
def test_clients_parse_replies_with_hiredis(url: str, pool: int | None) -> None:
    cfg = Config.from_environ({c.ENV_REDIS_URL: url, c.ENV_POD_NAME: "p"})

    async def parser() -> object:
        client = connect(cfg, pool=pool, socket_timeout=1)
        connection = client.connection_pool.make_connection()  # not connected: no server needed
        await client.aclose()
        return connection._parser

    assert isinstance(asyncio.run(parser()), _AsyncHiredisParser)
