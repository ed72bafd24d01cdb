"""Presence in Redis: who is in each room, and in the whole fleet.

Each membership is a sorted-set member whose score is its expiry time (ms). The pod holding a
connection refreshes its members every ttl/3; a crashed pod refreshes nothing, so its members
drop out of every query after ``ttl`` and the next sweep announces their ``leave``.

The member is ``{"client": <session>, "user": <sub>}`` and carries no pod name, so a client that
reconnects to another pod (a drain, a crash) keeps its entry: the room sees no leave/join churn.
A client that disconnects on purpose leaves at once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from redis.asyncio import Redis

from wsfleet_workload.wire import Keys, PresenceFrame, loads

# The join announcement of a member, built in Lua from the member itself (``member()``'s JSON,
# ``{"client":...,"user":...}``): decode_frame reads it as PresenceFrame("join", client, user).
_LUA_JOIN_FRAME = """'P|{"action":"join",' .. string.sub(%s, 2)"""

# A join in one round trip: add or refresh the member, keep the set alive, announce a new member,
# and (optionally) write the client's session, which changed with the join.
# KEYS: presence set of the room, [session]; ARGV: member, expiry ms, set ttl ms, channel,
# [session body, session ttl s]. Returns 1 if the member is new.
_JOIN = f"""
local added = redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if added == 1 then redis.call('PUBLISH', ARGV[4], {_LUA_JOIN_FRAME % "ARGV[1]"}) end
if KEYS[2] then redis.call('SET', KEYS[2], ARGV[5], 'EX', ARGV[6]) end
return added
"""

# A refresh of many members of one set in one round trip: each gets the new expiry; one that had
# been swept meanwhile (a Redis outage) is announced again on the channel, if one is given; the
# set's key TTL is renewed (ZADD keeps a key's TTL, so a room nobody joined for 2 x ttl would
# otherwise vanish and every member be announced anew).
# KEYS: the set; ARGV: expiry ms, set ttl ms, channel or "", members...
_REFRESH = f"""
local added = 0
for i = 4, #ARGV do
  if redis.call('ZADD', KEYS[1], ARGV[1], ARGV[i]) == 1 then
    added = added + 1
    if ARGV[3] ~= '' then redis.call('PUBLISH', ARGV[3], {_LUA_JOIN_FRAME % "ARGV[i]"}) end
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return added
"""
# Members per refresh call: Redis runs a script to its end, so each stays short (< 1 ms), and the
# workload's event loop serves its clients between calls.
REFRESH_CHUNK = 500


def member(client: str, user: str | None) -> str:
    """The member's JSON, the same bytes on every pod and version, since ZREM finds it by them:
    compact, keys sorted, characters outside ASCII and DEL escaped (the standard library's form;
    orjson writes the same bytes for the rest, and is used for it)."""
    if _orjson_same(client) and (user is None or _orjson_same(user)):
        return orjson.dumps({"client": client, "user": user}).decode()
    return _member({"client": client, "user": user})


def _orjson_same(text: str) -> bool:
    return text.isascii() and "\x7f" not in text


_member = json.JSONEncoder(separators=(",", ":"), sort_keys=True).encode  # made once, not per call


class Presence:
    def __init__(self, redis: Redis, keys: Keys, ttl: int, *, pipelined: bool) -> None:
        self.redis, self.keys, self.ttl = redis, keys, ttl
        self._execute: Callable[..., Awaitable[Any]] = redis.execute_command
        if pipelined:  # the fast path: a storm's joins, many per turn of the event loop, in one round trip
            from wsfleet_workload.fastpath.redis import Pipeliner  # noqa: PLC0415  # after the version check

            self._execute = Pipeliner(redis).execute
        self._refresh = redis.register_script(_REFRESH)

    def _expiry(self) -> int:
        return int((time.time() + self.ttl) * 1000)

    async def join(self, room: str, client: str, user: str | None, session: tuple[str, str, int] | None = None) -> bool:
        """Add or refresh; True if the member is new (its join is announced). ``session`` is a
        (key, body, ttl seconds) to write in the same round trip."""
        keys = [self.keys.presence(room)]
        args: list[str | int] = [
            member(client, user),
            self._expiry(),
            self.ttl * 1000 * 2,
            self.keys.channel(room),
        ]
        if session is not None:
            keys.append(session[0])
            args += [session[1], session[2]]
        # EVAL, not EVALSHA: a pipeline cannot reload a script Redis lost (a restart); Redis
        # caches the compiled script by its SHA either way.
        return bool(await self._execute("EVAL", _JOIN, len(keys), *keys, *args))

    async def leave(self, room: str, client: str, user: str | None) -> bool:
        removed = await self.redis.zrem(self.keys.presence(room), member(client, user))
        if removed:
            await self.redis.publish(self.keys.channel(room), PresenceFrame("leave", client, user).encode())
        return bool(removed)

    async def disconnect(self, client: str, user: str | None) -> None:
        await self.redis.zrem(self.keys.presence_global(), member(client, user))

    async def refresh(
        self, rooms: dict[str, list[tuple[str, str | None]]], clients: list[tuple[str, str | None]]
    ) -> int:
        """Refresh this pod's entries, rooms' and the fleet's, in chunks of REFRESH_CHUNK per round
        trip; a room's member that had been swept meanwhile (a Redis outage) is announced again.
        Returns how many entries were added back."""
        expiry, key_ttl = self._expiry(), self.ttl * 1000 * 2
        sets = [(self.keys.presence(r), self.keys.channel(r), m) for r, m in rooms.items()]
        sets.append((self.keys.presence_global(), "", clients))
        added = 0
        for key, channel, members in sets:
            names = [member(client, user) for client, user in members]
            for i in range(0, len(names), REFRESH_CHUNK):
                chunk = names[i : i + REFRESH_CHUNK]
                added += int(await self._refresh(keys=[key], args=[expiry, key_ttl, channel, *chunk]))
        return added

    async def sweep(self, rooms: list[str]) -> int:
        """Remove expired members of these rooms (and the fleet); announce each leave once."""
        now = int(time.time() * 1000)
        announced = 0
        for room in rooms:
            key = self.keys.presence(room)
            expired: list[str] = await self.redis.zrangebyscore(key, "-inf", now)  # type: ignore[assignment]
            for m in expired:
                if await self.redis.zrem(key, m):  # only one pod wins the removal
                    body = loads(m)
                    frame = PresenceFrame("leave", body["client"], body.get("user"))
                    await self.redis.publish(self.keys.channel(room), frame.encode())
                    announced += 1
        await self.redis.zremrangebyscore(self.keys.presence_global(), "-inf", now)
        return announced

    async def members(self, room: str, limit: int = 1000) -> list[dict[str, Any]]:
        now = int(time.time() * 1000)
        raw: list[str] = await self.redis.zrangebyscore(  # type: ignore[assignment]
            self.keys.presence(room), now, "+inf", start=0, num=limit
        )
        return [loads(m) for m in raw]

    async def count(self, room: str | None = None) -> int:
        key = self.keys.presence(room) if room else self.keys.presence_global()
        return int(await self.redis.zcount(key, int(time.time() * 1000), "+inf"))
