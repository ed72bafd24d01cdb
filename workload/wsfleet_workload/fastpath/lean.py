"""A queue and an event that hold no buffer while idle, in place of asyncio's per connection.

Replaces (Python 3.11's asyncio): ``asyncio.Queue`` where python-engineio and uvicorn keep one
per connection, and ``asyncio.Event`` where uvicorn keeps ``writable`` per connection.
Why: memory. An asyncio.Queue allocates four deques up front; with two queues per WebSocket
that was a sixth of an idle connection's memory. ``LeanEvent`` subclasses asyncio.Event and
sets its private ``_value`` and ``_waiters`` (the canary test in tests/unit/workload/
test_fastpath_upstream.py notices a change to asyncio.Event).
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any, Literal


class LeanQueue:
    """The part of asyncio.Queue that python-engineio and uvicorn use per connection, holding no
    buffer while empty. An asyncio.Queue allocates four deques up front (its items, getters,
    putters and the join event's waiters, about 3 KB); with two queues per WebSocket connection
    that was a sixth of its memory, for queues that are empty nearly all the time. Unbounded, so
    ``put`` never waits. Every waiting getter is woken by a put and re-checks, so a getter
    cancelled (a poll's timeout) loses nothing."""

    __slots__ = ("_getters", "_items", "_joined", "_unfinished")

    def __init__(self) -> None:
        self._items: collections.deque[Any] | None = None
        self._getters: list[asyncio.Future[None]] | None = None
        self._unfinished = 0
        self._joined: asyncio.Future[None] | None = None

    def qsize(self) -> int:
        return len(self._items) if self._items else 0

    def empty(self) -> bool:
        return not self._items

    def put_nowait(self, item: Any) -> None:
        if self._items is None:
            self._items = collections.deque()
        self._items.append(item)
        self._unfinished += 1
        getters, self._getters = self._getters, None
        for getter in getters or ():
            if not getter.done():
                getter.set_result(None)

    async def put(self, item: Any) -> None:
        self.put_nowait(item)

    def get_nowait(self) -> Any:
        items = self._items
        if not items:
            raise asyncio.QueueEmpty
        item = items.popleft()
        if not items:
            self._items = None
        return item

    async def get(self) -> Any:
        while not self._items:
            getter = asyncio.get_running_loop().create_future()
            if self._getters is None:
                self._getters = []
            self._getters.append(getter)
            try:
                await getter
            finally:
                if self._getters is not None and getter in self._getters:
                    self._getters.remove(getter)
        return self.get_nowait()

    def task_done(self) -> None:
        if self._unfinished <= 0:
            raise ValueError("task_done() called too many times")
        self._unfinished -= 1
        if self._unfinished == 0 and self._joined is not None:
            if not self._joined.done():
                self._joined.set_result(None)
            self._joined = None

    async def join(self) -> None:
        if self._unfinished:
            if self._joined is None:
                self._joined = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._joined)


class LeanEvent(asyncio.Event):
    """asyncio.Event without its waiters' deque until something waits (uvicorn's per-connection
    ``writable``, which is waited on only while the client's socket is full)."""

    def __init__(self) -> None:  # asyncio.Event's state, minus the up-front deque
        self._value = False
        self._waiters: collections.deque[asyncio.Future[bool]] = _NO_WAITERS

    async def wait(self) -> Literal[True]:
        if self._value:
            return True
        if self._waiters is _NO_WAITERS:
            self._waiters = collections.deque()
        return await super().wait()


_NO_WAITERS: collections.deque[Any] = collections.deque(maxlen=0)  # shared, never appended to
