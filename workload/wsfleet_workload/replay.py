"""Room history in Redis Streams: offsets, epochs, bounded retention and range reads.

Every published message goes through one Lua script, so that the offset, the stream entry and
the pub/sub frame are written atomically and in the same order on every pod:

1. the meta hash holds the room's ``epoch``, last ``offset`` and the ``replid`` of the Redis
   primary that wrote it; a missing hash means the history is gone (expired, flushed), so a new
   epoch starts and the old stream is deleted: a client holding offsets of the old epoch is told
   ``recovered: false``. A hash written under another replication id is not trusted either: a
   replica promoted by Sentinel (or a restarted primary) may lack the last writes, and offsets
   reused after such a loss would look like messages a client already has (a silent gap);
2. the entry is added with id ``<offset>-0`` and ``MAXLEN = replay.maxMessages``;
3. entries older than ``replay.ttl`` are trimmed from the head, and the stream key expires
   ``replay.ttl`` after the last message, so a quiet room costs nothing;
4. the frame is published on the room's channel.

The meta hash lives longer than the stream (META_TTL): a room that was quiet for longer than
the replay TTL keeps its epoch and offset, so a client that missed nothing still recovers.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from wsfleet_workload.wire import Keys, MessageFrame, Position, offset_of, stream_id

# A day: offsets stay meaningful across quiet periods far longer than any replay window.
META_TTL_SECONDS = 86400

# The primary's replication id: new on every promotion and every restart.
_REPLID = "string.match(redis.call('INFO', 'replication'), 'master_replid:(%w+)')"

_HEAD = """
local m = redis.call('HMGET', KEYS[1], 'epoch', 'offset', 'replid')
if not m[1] then return false end
if m[3] ~= $REPLID then return false end
return {m[1], m[2]}
""".replace("$REPLID", _REPLID)

_PUBLISH = """
local meta, stream, channel = KEYS[1], KEYS[2], KEYS[3]
local new_epoch, data, maxlen = ARGV[1], ARGV[2], tonumber(ARGV[3])
local ttl_ms, meta_ttl_ms = tonumber(ARGV[4]), tonumber(ARGV[5])
local replid = $REPLID
local m = redis.call('HMGET', meta, 'epoch', 'replid')
local epoch = m[1]
if not epoch or m[2] ~= replid then
  epoch = new_epoch
  redis.call('DEL', stream)
  redis.call('HSET', meta, 'epoch', epoch, 'offset', 0, 'replid', replid)
end
local offset = redis.call('HINCRBY', meta, 'offset', 1)
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('XADD', stream, 'MAXLEN', maxlen, offset .. '-0', 't', now_ms, 'd', data)
-- age trim: drop head entries older than the replay TTL (each entry is dropped once)
local cutoff = now_ms - ttl_ms
while true do
  local head = redis.call('XRANGE', stream, '-', '+', 'COUNT', 64)
  local drop = nil
  for _, e in ipairs(head) do
    if tonumber(e[2][2]) < cutoff then drop = e[1] else break end
  end
  if drop == nil then break end
  local dropped = tonumber(string.match(drop, '^(%d+)'))
  redis.call('XTRIM', stream, 'MINID', (dropped + 1) .. '-0')
  if drop ~= head[#head][1] then break end
end
redis.call('PEXPIRE', stream, ttl_ms)
redis.call('PEXPIRE', meta, meta_ttl_ms)
redis.call('PUBLISH', channel, 'M|' .. epoch .. '|' .. offset .. '|' .. data)
return {epoch, offset}
""".replace("$REPLID", _REPLID)


@dataclass(frozen=True)
class Missed:
    """The outcome of a range read: the entries, or why they cannot all be had."""

    recovered: bool
    epoch: str
    offset: int  # the room's head when read
    messages: list[MessageFrame]
    reason: str = ""


def new_epoch() -> str:
    return secrets.token_hex(6)


class Replay:
    def __init__(self, redis: Redis, keys: Keys, *, ttl: int, max_messages: int) -> None:
        self.redis, self.keys = redis, keys
        self.ttl, self.max_messages = ttl, max_messages
        self._publish = redis.register_script(_PUBLISH)
        self._head = redis.register_script(_HEAD)

    async def publish(self, room: str, data_json: str) -> tuple[str, int]:
        k = self.keys
        epoch, offset = await self._publish(
            keys=[k.meta(room), k.stream(room), k.channel(room)],
            args=[new_epoch(), data_json, self.max_messages, self.ttl * 1000, META_TTL_SECONDS * 1000],
        )
        return _text(epoch), int(offset)

    async def head(self, room: str) -> Position | None:
        """The room's epoch and last offset; None if the room has no history it can trust
        (none at all, or written before a failover or restart of the Redis primary)."""
        raw = await self._head(keys=[self.keys.meta(room)])
        if not raw:
            return None
        return Position(_text(raw[0]), int(raw[1] or 0))

    async def since(self, room: str, pos: Position, upto: int | None = None) -> Missed:
        """Messages after ``pos`` (up to offset ``upto`` if given), all or nothing.

        ``recovered`` is False when the epoch changed or when the first needed entry has been
        trimmed (by count or age): the caller must say so, never leave a silent gap.
        """
        step = plan(await self.head(room), pos, upto, self.max_messages)
        if isinstance(step, Missed):
            return step
        entries: list[tuple[str, dict[str, str]]] = await self.redis.xrange(  # type: ignore[assignment]
            self.keys.stream(room), stream_id(step.after + 1), stream_id(step.last)
        )
        frames = [MessageFrame(step.epoch, offset_of(eid), _text(fields["d"])) for eid, fields in entries]
        oldest = int(entries[0][1]["t"]) if entries else None
        return judge(step, frames, oldest, now_ms=int(time.time() * 1000), ttl=self.ttl)


@dataclass(frozen=True)
class Read:
    """The range of the stream to read: offsets after ``after`` up to ``last``, in ``epoch``."""

    epoch: str
    after: int
    last: int


def plan(head: Position | None, pos: Position, upto: int | None, max_messages: int) -> Missed | Read:
    """What a client at ``pos`` missed, as far as the room's head alone tells: the answer, or the
    range to read."""
    if head is not None and pos.epoch == "" and pos.offset == 0:
        # The client joined before the room had any history and has seen nothing since: the
        # current epoch began after it joined, so everything in it is what it missed.
        pos = Position(head.epoch, 0)
    if head is None:
        # No history at all: nothing was published since the meta expired (a day), or Redis
        # lost it. Only an offset of 0 can be sure it missed nothing.
        ok = pos.offset == 0
        return Missed(ok, pos.epoch if ok else "", 0, [], "" if ok else "history lost")
    if head.epoch != pos.epoch:
        return Missed(False, head.epoch, head.offset, [], f"epoch changed ({pos.epoch} -> {head.epoch})")
    last = head.offset if upto is None else min(upto, head.offset)
    if pos.offset > head.offset:
        return Missed(False, head.epoch, head.offset, [], f"offset {pos.offset} is ahead of the head {head.offset}")
    if pos.offset >= last:
        return Missed(True, head.epoch, last, [])
    if last - pos.offset > max_messages:
        return Missed(False, head.epoch, last, [], f"{last - pos.offset} missed, more than the {max_messages} kept")
    return Read(head.epoch, pos.offset, last)


def judge(read: Read, frames: list[MessageFrame], oldest_ms: int | None, *, now_ms: int, ttl: int) -> Missed:
    """The range as read: every offset of it, none older than the replay TTL, or not recovered."""
    expected = list(range(read.after + 1, read.last + 1))
    if [f.offset for f in frames] != expected:
        have = f"{frames[0].offset}..{frames[-1].offset}" if frames else "none"
        return Missed(False, read.epoch, read.last, [], f"offsets {read.after + 1}..{read.last} needed, {have} kept")
    if oldest_ms is not None and oldest_ms < now_ms - ttl * 1000:
        # Older than the replay TTL; the next publish trims it. Count it as gone so that the
        # promise is the same whether or not a publish happened since.
        return Missed(False, read.epoch, read.last, [], f"offset {read.after + 1} is older than {ttl}s")
    return Missed(True, read.epoch, read.last, frames)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
