"""Auto-pipelining (fastpath/redis.py, Pipeliner) against a real redis-server: commands issued in one
turn of the event loop are written together on the pipeliner's one connection, each caller gets
its own reply or its own error, and a lost connection (or a reply that does not come) fails the
commands awaiting replies on it and none after it."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import DataError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tests.support.processes import Redis as RedisServer
from wsfleet_workload.fastpath.redis import Pipeliner

# the fast path's pipeliner itself (the stock path sends each command with redis-py)
pytestmark = pytest.mark.fast_path


async def _connections_received(client: Redis) -> int:
    return int((await client.info("stats"))["total_connections_received"])


def test_many_callers_share_one_connection_and_keep_their_replies_in_order(redis: RedisServer) -> None:
    async def scenario() -> tuple[list[object], list[object], int]:
        client = Redis.from_url(redis.url, decode_responses=True)
        try:
            before = await _connections_received(client)
            pipeliner = Pipeliner(client)
            replies = await asyncio.gather(
                *(pipeliner.execute("EVAL", "return redis.call('INCR', KEYS[1])", 1, "n") for _ in range(50)),
                pipeliner.execute("GET", "n"),
            )

            async def caller(i: int) -> object:  # callers in turns of their own, overlapping
                await asyncio.sleep(0.001 * (i % 5))
                return await pipeliner.execute("ECHO", f"caller {i}")

            echoes = await asyncio.gather(*(caller(i) for i in range(200)))
            return list(replies), list(echoes), await _connections_received(client) - before
        finally:
            await client.aclose()

    replies, echoes, connections = asyncio.run(scenario())
    # In call order: the increments 1..50, then the GET that came after them in the same write
    assert replies == [*range(1, 51), "50"]
    assert echoes == [f"caller {i}" for i in range(200)]
    # 251 commands, most of them at once, on one connection: the pipeliner keeps the pooled one
    # the first INFO used, and the second INFO needs one more (each command sent alone would
    # have taken a pooled connection of its own: 50 at least)
    assert connections == 1


def test_a_commands_error_is_its_callers_alone(redis: RedisServer) -> None:
    async def scenario() -> list[object]:
        client = Redis.from_url(redis.url, decode_responses=True)
        try:
            pipeliner = Pipeliner(client)
            return await asyncio.gather(
                pipeliner.execute("SET", "k", "v"),
                pipeliner.execute("EVAL", "return redis.error_reply('refused by the script')", 0),
                pipeliner.execute("SET", "k2", None),  # not even sent: redis-py refuses None too
                pipeliner.execute("GET", "k"),
                return_exceptions=True,
            )
        finally:
            await client.aclose()

    ok, error, refused, value = asyncio.run(scenario())
    assert ok == "OK"  # the reply as Redis gives it: no redis-py conversion per command
    assert isinstance(error, ResponseError)
    assert "refused by the script" in str(error)
    assert isinstance(refused, DataError)
    assert "SET" in str(refused)
    assert value == "v"


def test_a_lost_server_fails_the_commands_on_it_and_the_next_turn_starts_afresh(redis: RedisServer) -> None:
    async def scenario() -> tuple[list[object], object]:
        client = Redis.from_url(redis.url, decode_responses=True, socket_timeout=2, socket_connect_timeout=1)
        try:
            pipeliner = Pipeliner(client)
            assert await pipeliner.execute("PING") == "PONG"
            redis.stop()
            failed = await asyncio.gather(*(pipeliner.execute("INCR", "n") for _ in range(3)), return_exceptions=True)
            redis.start()
            return failed, await pipeliner.execute("INCR", "n")
        finally:
            await client.aclose()

    failed, after = asyncio.run(scenario())
    assert len(failed) == 3
    assert all(isinstance(e, (RedisConnectionError, OSError)) for e in failed), failed
    assert after == 1, "a new server, and the pipeliner still serves"


def test_a_connection_closed_while_idle_is_replaced_before_the_next_command(redis: RedisServer) -> None:
    async def scenario() -> tuple[object, object]:
        client = Redis.from_url(redis.url, decode_responses=True)
        try:
            pipeliner = Pipeliner(client)
            first = await pipeliner.execute("CLIENT", "ID")
            await client.execute_command("CLIENT", "KILL", "ID", first)
            await asyncio.sleep(0.2)  # the close reaches the idle connection
            return first, await pipeliner.execute("CLIENT", "ID")
        finally:
            await client.aclose()

    first, second = asyncio.run(scenario())
    assert isinstance(second, int), "the next command got its reply"
    assert second != first, "on a new connection"


def test_a_connection_closed_while_replies_are_awaited_fails_them_and_the_next_command_goes(
    redis: RedisServer,
) -> None:
    async def scenario() -> tuple[object, object, object]:
        client = Redis.from_url(redis.url, decode_responses=True, socket_timeout=5)
        try:
            pipeliner = Pipeliner(client)
            first = await pipeliner.execute("CLIENT", "ID")
            blocked = pipeliner.execute("BLPOP", "nothing", 5)
            await asyncio.sleep(0.1)
            await client.execute_command("CLIENT", "KILL", "ID", first)
            # at once, before or after the reader has seen the close: never on the dead connection
            second = await asyncio.wait_for(pipeliner.execute("CLIENT", "ID"), 3)
            error = await asyncio.gather(blocked, return_exceptions=True)
            return first, second, error[0]
        finally:
            await client.aclose()

    first, second, error = asyncio.run(scenario())
    assert isinstance(error, (RedisConnectionError, OSError)), error
    assert isinstance(second, int)
    assert second != first


def test_a_reply_that_does_not_come_fails_its_callers_after_the_socket_timeout(redis: RedisServer) -> None:
    async def scenario() -> tuple[object, float, object]:
        client = Redis.from_url(redis.url, decode_responses=True, socket_timeout=0.5)
        try:
            pipeliner = Pipeliner(client)
            start = time.monotonic()
            blocked, queued_after = await asyncio.gather(
                pipeliner.execute("BLPOP", "nothing", 5),  # Redis answers in 5 s
                pipeliner.execute("PING"),
                return_exceptions=True,
            )
            waited = time.monotonic() - start
            assert isinstance(queued_after, RedisTimeoutError), queued_after
            return blocked, waited, await pipeliner.execute("PING")
        finally:
            await client.aclose()

    blocked, waited, after = asyncio.run(scenario())
    assert isinstance(blocked, RedisTimeoutError), blocked
    assert "0.5s" in str(blocked)
    assert 0.4 < waited < 3, waited
    assert after == "PONG", "the next command went on a fresh connection"


def test_a_caller_cancelled_before_its_command_is_written_sends_nothing(redis: RedisServer) -> None:
    async def scenario() -> list[object]:
        client = Redis.from_url(redis.url, decode_responses=True)
        try:
            pipeliner = Pipeliner(client)
            first = pipeliner.execute("INCR", "n")
            gone = pipeliner.execute("INCR", "n")
            last = pipeliner.execute("INCR", "n")
            gone.cancel()
            return [await first, await last, await client.get("n")]
        finally:
            await client.aclose()

    assert asyncio.run(scenario()) == [1, 2, "2"]


def test_stopping_cancels_the_callers_awaiting_replies_and_the_next_command_still_goes(redis: RedisServer) -> None:
    """The workload stopping cancels its tasks: callers whose replies were on their way are
    cancelled with the reader, none waits for ever, and the next command is served."""

    async def scenario() -> tuple[bool, object]:
        client = Redis.from_url(redis.url, decode_responses=True)
        try:
            pipeliner = Pipeliner(client)
            waiting = pipeliner.execute("BLPOP", "nothing", 5)
            await asyncio.sleep(0.1)
            reader = pipeliner._reader
            assert reader is not None
            reader.cancel()
            await asyncio.sleep(0.05)
            return waiting.cancelled(), await asyncio.wait_for(pipeliner.execute("PING"), 5)
        finally:
            await client.aclose()

    cancelled, after = asyncio.run(scenario())
    assert cancelled
    assert after == "PONG"
