"""Auto-pipelining for redis-py's asyncio client: many callers' commands in one round trip.

Replaces (redis 8.1.0): ``redis.asyncio.Redis.execute_command`` for the presence join script
(a reconnect storm's hottest command), writing on a connection of the client's pool through
its private ``_reader`` and ``_writer`` streams and reading with ``read_response``.
Why: CPU per command, below (``Pipeliner``). The stock path sends the same command with
``execute_command``.
"""

from __future__ import annotations

import asyncio
import collections
import math
from typing import Any

import hiredis
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import DataError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError


class Pipeliner:
    """Commands issued in the same turn of the event loop are written to Redis together, on one
    connection of the client's pool kept for this purpose, and one reader takes their replies
    in order: each caller gets its own reply or its own error, as if it had sent its command
    alone (not a transaction). A turn's commands are written while earlier ones are still being
    answered, so a steady stream of commands (a reconnect storm's joins come one or two per turn)
    waits for nothing and costs one write per turn.

    redis-py spends about 150 us of CPU per command on its own (taking a pooled connection with
    its lock and its accounting, a timeout task per send on Python 3.11, a timeout context per
    read, giving the connection back); a redis-py pipeline per turn still cost 65 us per join
    script in a reconnect storm (two per turn). Here it is about 20 us: hiredis packs the
    command, a future waits for it, hiredis parses the reply, and one deadline serves the reader.

    A lost connection (or no reply within the client's socket timeout) fails every command
    written and not yet answered: whether Redis ran them is unknown, and they are not sent again.
    The next command reconnects (through Sentinel, to the current primary)."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._conn: AbstractConnection | None = None  # taken from the pool at the first command, kept
        self._queued: list[tuple[tuple[Any, ...], asyncio.Future[Any]]] = []  # this turn's, to write
        self._waiting: collections.deque[asyncio.Future[Any]] = collections.deque()  # written, in order
        self._connecting: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[None] | None = None

    def execute(self, *args: Any) -> asyncio.Future[Any]:
        """Queue a command; the future gets its reply as Redis gives it, decoded as the client
        decodes, without redis-py's conversion per command (PING gives "PONG", SET "OK")."""
        loop = asyncio.get_running_loop()
        reply = loop.create_future()
        if not self._queued:  # the first of this turn: written at the next (or once connected)
            loop.call_soon(self._write)
        self._queued.append((args, reply))
        return reply

    def _write(self) -> None:
        if not self._queued or self._connecting is not None:
            return  # written already, or the connection being made writes them
        conn = self._conn
        if conn is None or not _usable(conn):
            self._connecting = asyncio.get_running_loop().create_task(self._connect())
            return
        batch, self._queued = self._queued, []
        out: list[bytes] = []
        for args, reply in batch:
            if reply.done():  # its caller gave up before it was written
                continue
            try:
                out.append(hiredis.pack_command(args))
            except TypeError as e:  # an argument Redis cannot take (None, a bool, ...): as redis-py says it
                reply.set_exception(DataError(f"{args[0]}: {e}"))
                continue
            self._waiting.append(reply)
        conn._writer.writelines(out)  # type: ignore[union-attr]  # redis-py's StreamWriter; _usable checked it
        if self._reader is None and self._waiting:
            self._reader = asyncio.get_running_loop().create_task(self._read(conn))

    async def _connect(self) -> None:
        try:
            old = self._reader
            if old is not None:  # replies still awaited on the closed connection: its reader fails them
                await asyncio.wait([old], timeout=1)  # first (it sees the close at once), then the
                if not old.done():  # connection is made again; never both at the same time
                    _fail(list(self._waiting), RedisConnectionError("Redis closed the connection"))
                    self._waiting.clear()
                    old.cancel()
                    await asyncio.wait([old])
            if self._conn is None:
                self._conn = await self.redis.connection_pool.get_connection()  # type: ignore[no-untyped-call]
            else:
                await self._conn.disconnect()  # closed by the server: a fresh one
                await self._conn.connect()  # type: ignore[no-untyped-call]
            if not _usable(self._conn):
                raise RedisConnectionError("Redis closed the connection as soon as it was made")
        except BaseException as e:
            self._connecting = None
            batch, self._queued = self._queued, []
            _fail([reply for _, reply in batch], e)
            if not isinstance(e, Exception):
                raise
            return
        self._connecting = None
        self._write()

    async def _read(self, conn: AbstractConnection) -> None:
        waiting = self._waiting
        # One deadline for the reader, moved on at each reply: redis-py's own (a timeout context
        # per read) cost about a third of a command's CPU here.
        limit, loop = conn.socket_timeout, asyncio.get_running_loop()
        try:
            try:
                async with asyncio.timeout(None) as deadline:
                    while waiting:
                        if limit:
                            deadline.reschedule(loop.time() + limit)
                        try:
                            result = await conn.read_response(timeout=math.inf)  # math.inf: no timeout of its own
                        except ResponseError as e:  # the command's own error; the connection goes on
                            result = e
                        reply = waiting.popleft()
                        if reply.done():  # its caller gave up (cancelled)
                            continue
                        if isinstance(result, Exception):
                            reply.set_exception(result)
                        else:
                            reply.set_result(result)
            except TimeoutError:  # redis-py closed the connection when the read was cancelled
                raise RedisTimeoutError(f"no reply from Redis within {limit}s") from None
        except BaseException as e:  # the connection failed (redis-py closed it), or the workload is stopping
            lost = list(waiting)
            waiting.clear()
            _fail(lost, e)
            if not isinstance(e, Exception):
                raise
        finally:
            self._reader = None


def _usable(conn: AbstractConnection) -> bool:
    """Connected, and not closed by the server meanwhile (an idle connection's end is seen only here)."""
    reader, writer = conn._reader, conn._writer
    return reader is not None and writer is not None and not reader.at_eof() and not writer.transport.is_closing()


def _fail(replies: list[asyncio.Future[Any]], error: BaseException) -> None:
    for reply in replies:
        if reply.done():
            continue
        if isinstance(error, Exception):
            reply.set_exception(error)
        else:  # cancelled (the workload stopping): so are its callers
            reply.cancel()
