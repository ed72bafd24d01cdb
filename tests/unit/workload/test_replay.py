"""What a client missed, decided from plain values: the room's head, the client's position, and
the entries a range read returned. The Redis side (the Lua script, XRANGE) is in the integration
tier (tests/integration/workload/test_recovery.py).

| head      | client at  | upto | stream holds         | answer                                        |
|-----------|------------|------|----------------------|-----------------------------------------------|
| none      | ("", 0)    |      |                      | recovered, nothing missed                     |
| none      | (e1, 4)    |      |                      | not recovered: history lost                   |
| (e2, 9)   | (e1, 4)    |      |                      | not recovered: epoch changed                  |
| (e1, 9)   | (e1, 12)   |      |                      | not recovered: ahead of the head              |
| (e1, 9)   | (e1, 9)    |      |                      | recovered, nothing missed                     |
| (e1, 9)   | (e1, 4)    | 6    |                      | read 5..6                                     |
| (e1, 9)   | ("", 0)    |      |                      | read 1..9 of e1 (joined before any history)   |
| (e1, 900) | (e1, 0)    |      | (max 100 kept)       | not recovered: more missed than kept          |
| read 5..7 |            |      | 5, 6, 7              | recovered, 3 messages                         |
| read 5..7 |            |      | 6, 7                 | not recovered: 5..7 needed, 6..7 kept         |
| read 5..7 |            |      | nothing              | not recovered: none kept                      |
| read 5..7 |            |      | 5..7, 5 past the TTL | not recovered: older than the TTL             |
"""

from __future__ import annotations

import pytest

from wsfleet_workload.replay import Missed, Read, judge, plan
from wsfleet_workload.wire import MessageFrame, Position

MAX = 100
TTL = 300
NOW = 1_000_000_000


@pytest.mark.parametrize(
    ("head", "pos", "upto", "expected"),
    [
        (None, Position("", 0), None, Missed(True, "", 0, [], "")),
        (None, Position("e1", 4), None, Missed(False, "", 0, [], "history lost")),
        (Position("e2", 9), Position("e1", 4), None, Missed(False, "e2", 9, [], "epoch changed (e1 -> e2)")),
        (Position("e1", 9), Position("e1", 12), None, Missed(False, "e1", 9, [], "offset 12 is ahead of the head 9")),
        (Position("e1", 9), Position("e1", 9), None, Missed(True, "e1", 9, [])),
        (Position("e1", 9), Position("e1", 4), 6, Read("e1", 4, 6)),
        (Position("e1", 9), Position("", 0), None, Read("e1", 0, 9)),
        (
            Position("e1", 900),
            Position("e1", 0),
            None,
            Missed(False, "e1", 900, [], "900 missed, more than the 100 kept"),
        ),
    ],
)
def test_the_head_decides_or_names_the_range(
    head: Position | None, pos: Position, upto: int | None, expected: Missed | Read
) -> None:
    assert plan(head, pos, upto, MAX) == expected


def frames(*offsets: int) -> list[MessageFrame]:
    return [MessageFrame("e1", o, f'"m{o}"') for o in offsets]


READ = Read("e1", 4, 7)


def test_a_complete_range_is_recovered() -> None:
    got = judge(READ, frames(5, 6, 7), NOW - 1000, now_ms=NOW, ttl=TTL)
    assert got == Missed(True, "e1", 7, frames(5, 6, 7))


@pytest.mark.parametrize(
    ("kept", "reason"), [((6, 7), "offsets 5..7 needed, 6..7 kept"), ((), "offsets 5..7 needed, none kept")]
)
def test_a_range_with_a_hole_is_not_recovered(kept: tuple[int, ...], reason: str) -> None:
    assert judge(READ, frames(*kept), NOW, now_ms=NOW, ttl=TTL) == Missed(False, "e1", 7, [], reason)


def test_an_entry_past_the_ttl_counts_as_gone() -> None:
    oldest = NOW - TTL * 1000 - 1
    assert judge(READ, frames(5, 6, 7), oldest, now_ms=NOW, ttl=TTL) == Missed(
        False, "e1", 7, [], "offset 5 is older than 300s"
    )
