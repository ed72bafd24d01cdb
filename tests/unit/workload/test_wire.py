"""Wire formats: the recovery handshake, pub/sub frames, key names, and hand-built packets that
python-socketio's own decoder must read back."""

from __future__ import annotations

import json
from typing import Any

import pytest
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
    decode_frame,
    event_packet,
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
