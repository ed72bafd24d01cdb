"""Wire formats: Redis keys, the pub/sub frame, stream entries and the recovery handshake.

Pure functions and small classes only; no I/O. Every byte layout is written next to its code.

Redis layout for room R under prefix P (the ``{R}`` hash tag keeps a room's keys and channel in
one Redis Cluster slot)::

    P:r:{R}:meta     hash   epoch=<hex>  offset=<int>     the room's stream identity and head
    P:r:{R}:stream   stream id "<offset>-0", fields t=<ms since epoch> d=<json>
    P:r:{R}          channel  frames (below), one per published message or presence change
    P:p:{R}          zset   member=<presence json>  score=<expiry, ms since epoch>
    P:presence       zset   every connection of the fleet, same shape
    P:s:<session>    string <session json>  (rooms a client is in, for recovery elsewhere)
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import orjson
from engineio import json as eio_json
from socketio import packet as sio_packet

# Room names: visible ASCII without braces (hash tags) or '|' (frame separator).
ROOM_RE = re.compile(r"^[A-Za-z0-9_.:@/#=+-]{1,200}$")
SESSION_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


class BadRequest(ValueError):
    """A client request we refuse; the message names the field and the value."""


def check_room(room: object, field: str = "room") -> str:
    if not isinstance(room, str) or not ROOM_RE.match(room):
        raise BadRequest(
            f"{field}={_short(room)}: a room is 1-200 characters of letters, digits and _.:@/#=+- (no braces)"
        )
    return room


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


@dataclass(frozen=True)
class Keys:
    prefix: str

    def meta(self, room: str) -> str:
        return f"{self.prefix}:r:{{{room}}}:meta"

    def stream(self, room: str) -> str:
        return f"{self.prefix}:r:{{{room}}}:stream"

    def channel(self, room: str) -> str:
        return f"{self.prefix}:r:{{{room}}}"

    def room_of_channel(self, channel: str) -> str:
        # inverse of channel(): strip "<prefix>:r:{" and "}"
        return channel[len(self.prefix) + 4 : -1]

    def presence(self, room: str) -> str:
        return f"{self.prefix}:p:{{{room}}}"

    def presence_global(self) -> str:
        return f"{self.prefix}:presence"

    def session(self, session: str) -> str:
        return f"{self.prefix}:s:{session}"


# --- pub/sub frames ----------------------------------------------------------
# A message:         "M|<epoch>|<offset>|<json data>"
# A presence change: "P|<json {action, client, user}>"
@dataclass(frozen=True)
class MessageFrame:
    epoch: str
    offset: int
    data: str  # JSON text, passed through undecoded

    def encode(self) -> str:
        return f"M|{self.epoch}|{self.offset}|{self.data}"


@dataclass(frozen=True)
class PresenceFrame:
    action: str  # join | leave
    client: str
    user: str | None

    def encode(self) -> str:
        return "P|" + dumps({"action": self.action, "client": self.client, "user": self.user})


def decode_frame(raw: str) -> MessageFrame | PresenceFrame:
    kind, _, rest = raw.partition("|")
    if kind == "M":
        epoch, _, rest = rest.partition("|")
        offset, _, data = rest.partition("|")
        return MessageFrame(epoch, int(offset), data)
    if kind == "P":
        body = loads(rest)
        if body.get("action") not in ("join", "leave"):
            raise ValueError(f"presence frame: action={body.get('action')!r}, expected join or leave")
        return PresenceFrame(str(body["action"]), str(body["client"]), body.get("user"))
    raise ValueError(f"unknown frame kind {kind!r}")


def stream_id(offset: int) -> str:
    return f"{offset}-0"


def offset_of(stream_id: str | bytes) -> int:
    text = stream_id.decode() if isinstance(stream_id, bytes) else stream_id
    return int(text.partition("-")[0])


# --- the recovery handshake ---------------------------------------------------
@dataclass(frozen=True)
class Position:
    epoch: str
    offset: int


@dataclass(frozen=True)
class Handshake:
    token: str | None
    session: str | None
    positions: dict[str, Position]


def parse_auth(auth: object) -> Handshake:
    """auth = {"token"?: str, "session"?: str, "rooms"?: {room: {"epoch": str, "offset": int}}}"""
    if auth is None:
        return Handshake(None, None, {})
    if not isinstance(auth, dict):
        raise BadRequest(f"auth={_short(auth)}: expected an object")
    token = auth.get("token")
    if token is not None and not isinstance(token, str):
        raise BadRequest(f"auth.token={_short(token)}: expected a string")
    session = auth.get("session")
    if session is not None and (not isinstance(session, str) or not SESSION_RE.match(session)):
        raise BadRequest(f"auth.session={_short(session)}: expected 16-64 characters of [A-Za-z0-9_-]")
    rooms = auth.get("rooms")
    rooms = {} if rooms is None else rooms
    if not isinstance(rooms, dict):
        raise BadRequest(f"auth.rooms={_short(rooms)}: expected an object of room -> {{epoch, offset}}")
    if len(rooms) > 100:
        raise BadRequest(f"auth.rooms: {len(rooms)} rooms, at most 100")
    positions: dict[str, Position] = {}
    for room, pos in rooms.items():
        check_room(room, f"auth.rooms key {room!r}")
        if not isinstance(pos, dict):
            raise BadRequest(f"auth.rooms[{room!r}]={_short(pos)}: expected {{epoch, offset}}")
        epoch, offset = pos.get("epoch"), pos.get("offset")
        if not isinstance(epoch, str) or not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            raise BadRequest(f"auth.rooms[{room!r}]={_short(pos)}: epoch must be a string, offset an integer >= 0")
        positions[room] = Position(epoch, offset)
    return Handshake(token, session, positions)


def room_arg(data: object) -> str:
    """Client events carry {"room": ...}; a bare string is accepted too."""
    if isinstance(data, dict):
        return check_room(data.get("room"))
    return check_room(data)


def message_payload(room: str, epoch: str, offset: int, data_json: str) -> str:
    """The JSON of a `message` event's argument, built without decoding the data again."""
    return f'{{"room":{dumps(room)},"epoch":"{epoch}","offset":{offset},"data":{data_json}}}'


# --- JSON ---------------------------------------------------------------------
# orjson encodes and decodes the workload's JSON, python-socketio's and python-engineio's packets
# included (SocketIOJson): 10-15x faster than the standard library on a packet. Whatever orjson
# refuses goes to the standard library, so nothing that was accepted before is refused now.
# What changes on the wire: non-ASCII characters are written as UTF-8 rather than as \u escapes,
# and NaN and Infinity as null (the standard library wrote NaN, which JSON.parse refuses).


def dumps(value: Any) -> str:
    """Compact JSON. The standard library takes what orjson refuses: integers beyond 64 bits,
    nesting deeper than 254 levels, types neither encodes (whose TypeError is then json's)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return _compact(value)


# json.dumps with any argument builds an encoder per call; one made once is 40% faster per call.
_compact = json.JSONEncoder(separators=(",", ":")).encode

# orjson reads an integer beyond 64 bits as a float; text with a run of 19 digits is read by the
# standard library instead, which keeps it exact (within python-engineio's 100-digit bound).
_LONG_NUMBER = re.compile(r"\d{19}")
_LONG_NUMBER_BYTES = re.compile(rb"\d{19}")


def loads(text: str | bytes) -> Any:
    """JSON as python-engineio reads it (numbers and integers of up to 100 digits exact; NaN and
    Infinity accepted; its errors on anything else), through orjson where that is the same."""
    pattern = _LONG_NUMBER if isinstance(text, str) else _LONG_NUMBER_BYTES
    if pattern.search(text) is None:  # type: ignore[arg-type]
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass  # NaN, a lone surrogate, ... or an error: the standard library's answer
    return eio_json.loads(text)


class SocketIOJson:
    """The JSON "module" python-socketio and python-engineio encode and decode packets with (their
    ``json`` option, make_sio): their compact dumps is ``dumps`` above, any other dumps (python-engineio's
    error bodies, with the default separators) the standard library's."""

    @staticmethod
    def dumps(value: Any, **options: Any) -> str:
        if options == _COMPACT:
            return dumps(value)
        return json.dumps(value, **options)

    loads = staticmethod(loads)


_COMPACT = {"separators": (",", ":")}


class SocketIOPacket(sio_packet.Packet):  # type: ignore[misc]
    """python-socketio's packet (its ``serializer`` option, make_sio), with the test for binary
    data written as loops: python-socketio's builds a list and a functools.reduce at each level
    of the data, for every packet it makes or reads (2% of a connect storm's CPU)."""

    @classmethod
    def data_is_binary(cls, data: Any) -> bool:
        if isinstance(data, (bytes, bytearray)):
            return True
        if isinstance(data, list):
            items: Any = data
        elif isinstance(data, dict):
            items = data.values()
        else:
            return False
        for item in items:  # noqa: SIM110  (any() over a generator: half the gain)
            if cls.data_is_binary(item):
                return True
        return False


def event_packet(event: str, arg_json: str) -> str:
    """A Socket.IO EVENT packet for namespace "/" without ack id: ``2["<event>",<arg>]``.

    Built by hand so that a room message is encoded once per pod, not once per recipient; the
    JS and Python client tests decode it.
    """
    return f"2[{dumps(event)},{arg_json}]"
