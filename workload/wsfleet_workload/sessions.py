"""Recoverable sessions in Redis: which rooms a client was in, so it rejoins them on any pod.

A session is ``{"rooms": [...], "user": <sub>}`` under the client's recoverable session id,
kept ``replay.ttl`` after its last refresh: a client that comes back within the replay window
(a drain, a crash, a network change) rejoins its rooms and recovers what it missed.
"""

from __future__ import annotations

from collections.abc import Iterable

from redis.asyncio import Redis

from wsfleet_workload.wire import Keys, dumps, loads

# Session refreshes per Redis round trip: a pipeline of thousands held the event loop for tens
# of milliseconds (a broadcast p99 spike every presence_ttl/3 at 5000 clients).
REFRESH_CHUNK = 500


class Sessions:
    def __init__(self, redis: Redis, keys: Keys, ttl: int) -> None:
        self.redis, self.keys, self.ttl = redis, keys, ttl

    def record(self, session: str, rooms: Iterable[str], user: str | None) -> tuple[str, str, int]:
        """The session's key, body and TTL: what a client resuming it on any pod rejoins."""
        return self.keys.session(session), dumps({"rooms": sorted(rooms), "user": user}), self.ttl

    async def save(self, session: str, rooms: Iterable[str], user: str | None) -> None:
        key, body, ttl = self.record(session, rooms, user)
        await self.redis.set(key, body, ex=ttl)

    async def load(self, session: str, user: str | None) -> list[str] | None:
        """The session's rooms; None if there is none, or it belongs to another user."""
        raw = await self.redis.get(self.keys.session(session))
        if raw is None:
            return None
        body = loads(raw)
        if body.get("user") != user:
            return None  # a session belongs to one user
        return [str(r) for r in body.get("rooms", [])]

    async def delete(self, session: str) -> None:
        await self.redis.delete(self.keys.session(session))

    async def refresh(self, sessions: list[str]) -> None:
        """Keep these sessions for another ``ttl``, in chunks, so thousands of clients never hold
        the event loop for one long pipeline."""
        for i in range(0, len(sessions), REFRESH_CHUNK):
            async with self.redis.pipeline(transaction=False) as p:
                for session in sessions[i : i + REFRESH_CHUNK]:
                    p.expire(self.keys.session(session), self.ttl)
                await p.execute()
