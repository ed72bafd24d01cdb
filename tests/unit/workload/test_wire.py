"""Wire formats: the recovery handshake, pub/sub frames, key names, and hand-built packets that
python-socketio's own decoder must read back."""

from __future__ import annotations

import json
from typing import Any

import pytest
from engineio import json as eio_json
from hypothesis import given
from hypothesis import strategies as st
from socketio import packet as sio_packet

from wsfleet_workload import presence
from wsfleet_workload.presence import member
from wsfleet_workload.wire import (
    BadRequest,
    Keys,
    MessageFrame,
    Position,
    PresenceFrame,
    SocketIOJson,
    SocketIOPacket,
    decode_frame,
    dumps,
    event_packet,
    loads,
    message_payload,
    parse_auth,
)

rooms = st.from_regex(r"[A-Za-z0-9_.:@/#=+-]{1,200}", fullmatch=True)


def test_a_full_handshake_parses() -> None:
    hs = parse_auth({"token": "t", "session": "s" * 24, "rooms": {"chat": {"epoch": "ab12", "offset": 7}}})
    assert hs.token == "t"
    assert hs.session == "s" * 24
    assert hs.positions == {"chat": Position("ab12", 7)}
    assert parse_auth(None).positions == {}


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        ("token", "auth='token': expected an object"),
        ({"token": 5}, "auth.token=5"),
        ({"session": "short"}, "auth.session='short'"),
        ({"rooms": []}, "auth.rooms=[]"),
        ({"rooms": {"a b": {"epoch": "e", "offset": 1}}}, "a room is 1-200 characters"),
        ({"rooms": {"a": {"epoch": "e", "offset": -1}}}, "offset an integer >= 0"),
        ({"rooms": {"a": {"epoch": "e", "offset": True}}}, "offset an integer >= 0"),
        ({"rooms": {"a": {"offset": 1}}}, "epoch must be a string"),
        ({"rooms": {f"r{i}": {"epoch": "e", "offset": 0} for i in range(101)}}, "101 rooms, at most 100"),
    ],
)
def test_bad_handshakes_name_the_field(auth: Any, message: str) -> None:
    with pytest.raises(BadRequest) as info:
        parse_auth(auth)
    assert message in str(info.value)


@given(room=rooms, prefix=st.sampled_from(["wsfleet", "wsfleet:apps/chat"]))
def test_channel_names_round_trip(room: str, prefix: str) -> None:
    keys = Keys(prefix)
    assert keys.room_of_channel(keys.channel(room)) == room
    assert len({keys.meta(room), keys.stream(room), keys.channel(room), keys.presence(room)}) == 4


@given(epoch=st.from_regex(r"[0-9a-f]{12}", fullmatch=True), offset=st.integers(1, 2**53),
       data=st.recursive(st.none() | st.booleans() | st.integers() | st.text(),
                         lambda x: st.lists(x) | st.dictionaries(st.text(), x), max_leaves=10))  # fmt: skip
def test_frames_and_packets_round_trip(epoch: str, offset: int, data: Any) -> None:
    text = json.dumps(data)
    frame = MessageFrame(epoch, offset, text)
    assert decode_frame(frame.encode()) == frame
    pkt = sio_packet.Packet(encoded_packet=event_packet("message", message_payload("r", epoch, offset, text)))
    assert pkt.packet_type == sio_packet.EVENT
    assert pkt.data == ["message", {"room": "r", "epoch": epoch, "offset": offset, "data": data}]


def test_presence_frames_round_trip() -> None:
    frame = PresenceFrame("join", "c" * 24, None)
    assert decode_frame(frame.encode()) == frame
    with pytest.raises(ValueError, match="unknown frame kind"):
        decode_frame("X|whatever")
    with pytest.raises(ValueError, match="action='wave', expected join or leave"):
        decode_frame('P|{"action": "wave", "client": "c", "user": null}')


@pytest.mark.parametrize("user", [None, "ada", 'quo"te'])
def test_the_join_frame_the_presence_scripts_build_decodes_as_a_join(user: str | None) -> None:
    """presence.py's Lua scripts announce a join as 'P|{"action":"join",' followed by the member's
    JSON minus its opening brace; that must stay a frame decode_frame reads as the join."""
    built = 'P|{"action":"join",' + member("s-1", user)[1:]
    assert presence._LUA_JOIN_FRAME == """'P|{"action":"join",' .. string.sub(%s, 2)"""
    assert decode_frame(built) == PresenceFrame("join", "s-1", user)


# --- JSON: orjson where it gives what the standard library gives ---------------------------------
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(-(10**40), 10**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda x: st.lists(x, max_size=4) | st.dictionaries(st.text(), x, max_size=4),
    max_leaves=12,
)


@given(value=json_values, ascii_only=st.booleans())
def test_json_is_read_as_python_engineio_reads_it(value: Any, ascii_only: bool) -> None:
    """Same values and the same types: an integer stays an integer however long (orjson alone
    reads one beyond 64 bits as a float), 1.0 stays a float."""
    text = json.dumps(value, ensure_ascii=ascii_only)
    assert repr(loads(text)) == repr(eio_json.loads(text))
    assert repr(loads(text.encode())) == repr(eio_json.loads(text))


@pytest.mark.parametrize(
    "text",
    ["12345678901234567890123", "-9223372036854775809", "18446744073709551616", "[1.5, 1e400, NaN, -Infinity]",
     '"\\ud800 alone"', '{"a": 1, "a": 2}', "1" * 100],
)  # fmt: skip
def test_json_orjson_refuses_or_bends_is_read_by_the_standard_library(text: str) -> None:
    assert repr(loads(text)) == repr(eio_json.loads(text))


@pytest.mark.parametrize("text", ["{bad", "[1,]", "", "1" * 101, '{"a": 1} x'])
def test_json_errors_are_python_engineio_errors(text: str) -> None:
    def error(read: Any) -> str:
        try:
            read(text)
        except ValueError as e:
            return f"{type(e).__module__}.{type(e).__name__}: {e}"
        raise AssertionError(f"{text!r} was read")

    assert error(loads) == error(eio_json.loads)


@given(value=json_values)
def test_json_written_reads_back_as_the_value(value: Any) -> None:
    assert repr(json.loads(dumps(value))) == repr(value)


def test_json_written_for_what_orjson_refuses_or_writes_differently() -> None:
    deep: Any = 0
    for _ in range(300):
        deep = [deep]
    assert json.loads(dumps(deep)) == deep  # beyond orjson's 254 levels
    assert dumps({"n": 2**70, 1: True}) == '{"n":1180591620717411303424,"1":true}'
    assert dumps([float("nan"), float("inf")]) == "[null,null]"  # JSON.parse refuses NaN
    assert dumps("é\u2028") == '"é\u2028"'
    with pytest.raises(TypeError, match="Object of type set is not JSON serializable"):
        dumps({1, 2})


def test_socketio_packets_are_compact_and_error_bodies_as_before() -> None:
    assert SocketIOJson.dumps({"a": [1, "é"]}, separators=(",", ":")) == '{"a":[1,"é"]}'
    assert SocketIOJson.dumps({"a": [1, "é"]}) == json.dumps({"a": [1, "é"]})
    assert SocketIOJson.loads('["join",{"room":"r"}]') == ["join", {"room": "r"}]


@given(client=st.text(max_size=30), user=st.none() | st.text(max_size=30))
def test_a_presence_member_is_the_same_bytes_as_before(client: str, user: str | None) -> None:
    """Pods of two versions during a rollout remove each other's members by their exact bytes."""
    assert member(client, user) == json.dumps({"client": client, "user": user}, separators=(",", ":"), sort_keys=True)


packet_data = st.recursive(
    st.none()
    | st.integers()
    | st.text(max_size=5)
    | st.binary(max_size=5)
    | st.builds(bytearray, st.binary(max_size=3)),
    lambda x: st.lists(x, max_size=4) | st.dictionaries(st.text(max_size=3), x, max_size=4) | st.tuples(x),
    max_leaves=10,
)


@given(data=packet_data)
def test_a_packet_is_binary_exactly_when_python_socketio_says_so(data: Any) -> None:
    assert SocketIOPacket.data_is_binary(data) is sio_packet.Packet.data_is_binary(data)
    if SocketIOPacket.data_is_binary(data):
        assert SocketIOPacket(sio_packet.EVENT, ["e", data]).packet_type == sio_packet.BINARY_EVENT
