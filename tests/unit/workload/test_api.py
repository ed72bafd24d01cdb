"""The publish body's rules, from plain bytes (the endpoint itself is in the integration tier:
tests/integration/workload/test_bad_input.py)."""

from __future__ import annotations

import pytest

from wsfleet_workload.api import MAX_ROOMS_PER_PUBLISH, parse_publish
from wsfleet_workload.wire import BadRequest


def test_one_room_or_many() -> None:
    assert parse_publish(b'{"room": "a", "data": {"n": 1}}') == (["a"], '{"n":1}')
    assert parse_publish(b'{"rooms": ["a", "b"], "data": "x"}') == (["a", "b"], '"x"')


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"{not json", "the body is not JSON"),
        (b"[1, 2]", 'expected {"room" or "rooms", "data"}'),
        (b'{"room": "a"}', 'expected {"room" or "rooms", "data"}'),
        (b'{"data": 1}', "rooms=None: expected 1-100 room names"),
        (b'{"rooms": [], "data": 1}', "rooms=[]: expected 1-100 room names"),
        (b'{"rooms": "a", "data": 1}', "rooms='a': expected 1-100 room names"),
        (b'{"room": "", "data": 1}', "room=''"),
    ],
)
def test_a_bad_body_is_refused_with_what_is_wrong(body: bytes, error: str) -> None:
    with pytest.raises(BadRequest, match="^" + error.replace("(", r"\(").replace("[", r"\[").replace("{", r"\{")):
        parse_publish(body)


def test_too_many_rooms() -> None:
    rooms = ",".join(f'"r{i}"' for i in range(MAX_ROOMS_PER_PUBLISH + 1)).encode()
    with pytest.raises(BadRequest, match="expected 1-100 room names"):
        parse_publish(b'{"rooms": [' + rooms + b'], "data": 1}')
