"""Auto-pipelining (autopipeline.Pipeliner) against a real redis-server: commands issued in one
turn of the event loop share a round trip, each caller gets its own reply or its own error, and
a lost connection fails every caller of its pipeline and none after it."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from tests.support.processes import Redis as RedisServer
from wsfleet_workload.autopipeline import Pipeliner


def test_one_turns_commands_share_one_round_trip_and_keep_their_replies(redis: RedisServer) -> None:
    async def scenario() -> tuple[list[object], int]:
        client = Redis.from_url(redis.url, decode_responses=True)
        try:
            before = int((await client.info("stats"))["total_connections_received"])
            pipeliner = Pipeliner(client)
            replies = await asyncio.gather(
                *(pipeliner.execute("EVAL", "return redis.call('INCR', KEYS[1])", 1, "n") for _ in range(50)),
                pipeliner.execute("GET", "n"),
            )
            after = int((await client.info("stats"))["total_connections_received"])
            return list(replies), after - before
        finally:
            await client.aclose()

    replies, connections = asyncio.run(scenario())
    # In call order: the increments 1..50, then the GET that came after them in the same pipeline
    assert replies == [*range(1, 51), "50"]
    # 51 commands at once on the client's one pooled connection: one pipeline (sent one by one,
    # they would each have taken a connection of their own, 50 more)
    assert connections == 0


def test_a_commands_error_is_its_callers_alone(redis: RedisServer) -> None:
    async def scenario() -> list[object]:
        client = Redis.from_url(redis.url, decode_responses=True)
        try:
            pipeliner = Pipeliner(client)
            return await asyncio.gather(
                pipeliner.execute("SET", "k", "v"),
                pipeliner.execute("EVAL", "return redis.error_reply('refused by the script')", 0),
                pipeliner.execute("GET", "k"),
                return_exceptions=True,
            )
        finally:
            await client.aclose()

    ok, error, value = asyncio.run(scenario())
    assert ok is True
    assert isinstance(error, ResponseError)
    assert "refused by the script" in str(error)
    assert value == "v"


def test_a_lost_server_fails_its_pipelines_callers_and_the_next_turn_starts_afresh(redis: RedisServer) -> None:
    async def scenario() -> tuple[list[object], object]:
        client = Redis.from_url(redis.url, decode_responses=True, socket_timeout=2, socket_connect_timeout=1)
        try:
            pipeliner = Pipeliner(client)
            assert await pipeliner.execute("PING") is True
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


def test_a_cancelled_caller_leaves_the_others_their_replies(redis: RedisServer) -> None:
    async def scenario() -> list[object]:
        client = Redis.from_url(redis.url, decode_responses=True)
        try:
            pipeliner = Pipeliner(client)
            first = pipeliner.execute("INCR", "n")
            gone = pipeliner.execute("INCR", "n")
            last = pipeliner.execute("INCR", "n")
            gone.cancel()
            with pytest.raises(asyncio.CancelledError):
                await gone
            return [await first, await last, await client.get("n")]
        finally:
            await client.aclose()

    # the cancelled caller's command was sent all the same (it was queued): n is 3
    assert asyncio.run(scenario()) == [1, 3, "3"]


def test_a_cancelled_pipeline_cancels_its_callers(redis: RedisServer) -> None:
    """The workload stopping cancels its tasks: a pipeline cancelled before it is sent leaves no
    caller waiting for ever, and the next command starts a batch of its own."""

    async def scenario() -> tuple[list[bool], object]:
        client = Redis.from_url(redis.url, decode_responses=True)
        try:
            pipeliner = Pipeliner(client)
            replies = [pipeliner.execute("INCR", "n") for _ in range(3)]
            for task in list(pipeliner._tasks):
                task.cancel()
            await asyncio.sleep(0.05)
            after = await asyncio.wait_for(pipeliner.execute("INCR", "n"), 5)
            return [reply.cancelled() for reply in replies], after
        finally:
            await client.aclose()

    cancelled, after = asyncio.run(scenario())
    assert cancelled == [True, True, True]
    assert after == 1, "none of the cancelled batch was sent; the next command was"
