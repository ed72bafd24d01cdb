"""Delivery accounting: a run that tested nothing must fail, and every way a client can differ from
the publisher's ledger is named.

| case                                   | verdict | why                                         |
|----------------------------------------|---------|---------------------------------------------|
| every publish refused (wrong key)      | fail    | none acknowledged, HTTP 401 named           |
| nothing planned / no client            | fail    | no delivery was tested                      |
| 85% acknowledged, 15% uncertain        | fail    | below the 90% floor (and over max_uncertain)|
| 95% acknowledged, uncertain within max | pass    |                                             |
| a client misses one                    | fail    | lost, with the seq                          |
| a client holds one twice               | fail    | duplicate at the application                |
| a client holds two in swapped order    | fail    | out of publish order                        |
| a client holds a refused one           | fail    | never acknowledged nor in doubt             |
| an uncertain one held once, or not     | pass    |                                             |
| raw duplicates dropped by the client   | pass    | reported as a figure                        |
"""

from __future__ import annotations

import pytest

from wsfleet_operator.accounting import ACKNOWLEDGED, REFUSED, UNCERTAIN, Expect, Ledger, Received, account, outcome


def ledger(statuses: list[int | None], room: str = "r") -> Ledger:
    book = Ledger([room])
    for seq, status in enumerate(statuses, 1):
        book.record(room, seq, status, "TimeoutError" if status is None else "")
    return book


def client(seqs: list[int], raw: int = 0) -> Received:
    return Received("c0", ["r"], {"r": seqs}, raw)


@pytest.mark.parametrize(
    ("status", "expected"),
    [(200, ACKNOWLEDGED), (401, REFUSED), (404, REFUSED), (413, REFUSED), (502, UNCERTAIN), (503, UNCERTAIN), (None, UNCERTAIN)],
)  # fmt: skip
def test_outcome_of_each_answer(status: int | None, expected: str) -> None:
    assert outcome(status) == expected


def test_every_publish_refused_fails_and_says_why() -> None:
    book = ledger([401] * 20)
    result = account(book, [client([])])
    assert not result.passed
    assert result.figures["lost"] == 0, "nothing was lost: nothing was sent"
    assert any("none of 20 publishes was acknowledged (HTTP 401: 20)" in p for p in result.problems), result.problems


def test_nothing_planned_or_no_client_fails() -> None:
    assert "nothing was published" in account(ledger([]), [client([])]).problems[0]
    assert any("no client" in p for p in account(ledger([200] * 5), []).problems)


def test_too_few_acknowledged_fails() -> None:
    book = ledger([200] * 85 + [None] * 15)
    acked = book.acknowledged["r"]
    result = account(book, [client(acked)], Expect(max_uncertain=20))
    assert result.problems == [
        "only 85 of 100 publishes were acknowledged (85%, below 90%; no answer (TimeoutError): 15)"
    ]


def test_enough_acknowledged_with_uncertain_within_bound_passes() -> None:
    book = ledger([200] * 47 + [502] + [200] * 2)
    held = list(range(1, 51))  # the uncertain one (48) was published after all
    result = account(
        book, [client(held), Received("c1", ["r"], {"r": book.acknowledged["r"]})], Expect(max_uncertain=1)
    )
    assert result.passed, result.problems
    assert result.figures == {
        "clients": 2, "planned": 50, "published": 49, "refused": 0, "uncertain": 1, "lost": 0, "duplicates": 0,
        "raw duplicates": 0,
    }  # fmt: skip


def test_uncertain_beyond_bound_fails() -> None:
    book = ledger([200] * 48 + [None, None])
    result = account(book, [client(book.acknowledged["r"])], Expect(max_uncertain=1))
    assert result.problems == ["2 publishes got no certain answer, more than 1 (no answer (TimeoutError): 2)"]


def test_a_lost_message_is_named() -> None:
    book = ledger([200] * 10)
    result = account(book, [client([1, 2, 3, 5, 6, 7, 8, 9, 10])])
    assert result.figures["lost"] == 1
    assert result.problems == ["c0: r: 1 of 10 acknowledged lost (first [4])"]


def test_an_application_duplicate_fails_and_a_raw_one_is_reported() -> None:
    book = ledger([200] * 5)
    twice = account(book, [client([1, 2, 2, 3, 4, 5])])
    assert twice.figures["duplicates"] == 1
    assert twice.problems == ["c0: r: 1 duplicates reached the application (seq [2])"]
    raw = account(book, [client([1, 2, 3, 4, 5], raw=3)])
    assert raw.passed
    assert raw.figures["raw duplicates"] == 3


def test_an_uncertain_message_held_twice_is_a_duplicate() -> None:
    book = ledger([200, None, 200])
    assert not account(book, [client([1, 2, 2, 3])], Expect(min_acknowledged=0.5, max_uncertain=1)).passed


def test_out_of_order_fails() -> None:
    book = ledger([200] * 5)
    result = account(book, [client([1, 3, 2, 4, 5])])
    assert result.problems == ["c0: r: out of publish order (first [1, 3, 2, 4, 5] vs [1, 2, 3, 4, 5])"]


def test_a_refused_message_held_by_a_client_fails() -> None:
    book = ledger([200] * 19 + [400])
    result = account(book, [client(list(range(1, 21)))], Expect(max_refused=1))
    assert result.problems == ["c0: r: holds 1 never acknowledged nor in doubt (seq [20])"]


def test_refused_publishes_beyond_bound_fail() -> None:
    book = ledger([200] * 19 + [413])
    assert account(book, [client(book.acknowledged["r"])]).problems == [
        "1 publishes were refused, more than 0 (HTTP 413: 1)"
    ]
