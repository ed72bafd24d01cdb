"""Delivery accounting: what a publisher sent, what each client's application saw, and a verdict
that cannot pass on silence.

"0 lost" means something only next to "N published and acknowledged". A run in which every
publish failed (a wrong API key, a dead load balancer) holds nothing, so it loses nothing: the
verdict must fail it. Every publish attempt therefore ends in one of three outcomes:

| outcome      | when                                         | what a client may hold                  |
|--------------|----------------------------------------------|-----------------------------------------|
| acknowledged | HTTP 200                                     | must hold it, once, in publish order    |
| refused      | any 4xx: the server said no before acting    | must not hold it                        |
| uncertain    | any 5xx, or no answer (reset, timeout)       | may hold it or not (at most once)       |

A 5xx is uncertain, not refused: a gateway's 502/504 comes when the backend died under the
request, and the workload's 503 when Redis failed mid-script; in both the message may be out.

The verdict fails when nothing was planned, when fewer than `min_acknowledged` of the planned
publishes were acknowledged, when more than `max_uncertain` are uncertain, and for every client
that lost, reordered, duplicated or invented a message. Duplicates are counted twice: the
application-visible stream (after the client's own dedup by offset) must have none; the raw ones
the transport delivered (a replay overlapping live delivery) are reported, not failed.

Pure: the publisher and the clients are the caller's.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

ACKNOWLEDGED, REFUSED, UNCERTAIN = "acknowledged", "refused", "uncertain"


def outcome(status: int | None) -> str:
    """An HTTP status (None: no answer) as a publish outcome."""
    if status == 200:
        return ACKNOWLEDGED
    if status is not None and 400 <= status < 500:
        return REFUSED
    return UNCERTAIN


@dataclass
class Ledger:
    """Every publish attempt of one run, by room, in the order they were made."""

    rooms: list[str]
    acknowledged: dict[str, list[int]] = field(default_factory=dict)
    refused: dict[str, set[int]] = field(default_factory=dict)
    uncertain: dict[str, set[int]] = field(default_factory=dict)
    # why publishes failed: "HTTP 401", "no answer (TimeoutError)", ... with their counts
    failures: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        for room in self.rooms:
            self.acknowledged.setdefault(room, [])
            self.refused.setdefault(room, set())
            self.uncertain.setdefault(room, set())

    def record(self, room: str, seq: int, status: int | None, why: str = "") -> str:
        """One attempt's answer (None: none came; `why` says what happened instead)."""
        result = outcome(status)
        if result == ACKNOWLEDGED:
            self.acknowledged[room].append(seq)
        else:
            (self.refused if result == REFUSED else self.uncertain)[room].add(seq)
            self.failures[f"HTTP {status}" if status is not None else f"no answer ({why or 'unknown'})"] += 1
        return result

    def count(self, what: str) -> int:
        table: dict[str, Any] = {ACKNOWLEDGED: self.acknowledged, REFUSED: self.refused, UNCERTAIN: self.uncertain}
        return sum(len(v) for v in table[what].values())

    @property
    def planned(self) -> int:
        return self.count(ACKNOWLEDGED) + self.count(REFUSED) + self.count(UNCERTAIN)


@dataclass(frozen=True)
class Expect:
    """What a scenario may excuse. A rolling restart has no reason for a failed publish
    (max_uncertain=0); a crash kills requests in flight, so a bound says how many."""

    min_acknowledged: float = 0.9  # share of the planned publishes
    max_uncertain: int = 0
    max_refused: int = 0


STRICT = Expect()  # the default: 90% acknowledged, no publish failed


@dataclass(frozen=True)
class Received:
    """One client's application-visible stream per room: the `seq` of each message kept after its
    own dedup by (epoch, offset), in arrival order; and the raw duplicates it dropped."""

    label: str
    rooms: list[str]
    seqs: dict[str, list[int]]
    raw_duplicates: int = 0


@dataclass
class Account:
    figures: dict[str, Any]
    problems: list[str]

    @property
    def passed(self) -> bool:
        return not self.problems


def _client_problems(ledger: Ledger, r: Received) -> tuple[int, int, list[str]]:
    lost = duplicates = 0
    problems: list[str] = []
    for room in r.rooms:
        got = r.seqs.get(room, [])
        sent = ledger.acknowledged.get(room, [])
        missing = sorted(set(sent) - set(got))
        lost += len(missing)
        if missing:
            problems.append(f"{r.label}: {room}: {len(missing)} of {len(sent)} acknowledged lost (first {missing[:5]})")
        dups = len(got) - len(set(got))
        duplicates += dups
        if dups:
            twice = sorted(s for s, n in Counter(got).items() if n > 1)
            problems.append(f"{r.label}: {room}: {dups} duplicates reached the application (seq {twice[:5]})")
        invented = sorted(set(got) - set(sent) - ledger.uncertain.get(room, set()))
        if invented:
            problems.append(
                f"{r.label}: {room}: holds {len(invented)} never acknowledged nor in doubt (seq {invented[:5]})"
            )
        acked = set(sent)
        held = [s for s in dict.fromkeys(got) if s in acked]
        if not missing and held != sent:
            problems.append(f"{r.label}: {room}: out of publish order (first {held[:5]} vs {sent[:5]})")
    return lost, duplicates, problems


def account(ledger: Ledger, clients: list[Received], expect: Expect = STRICT) -> Account:
    """The run's figures, and every reason it fails (none: it passed)."""
    planned, acked = ledger.planned, ledger.count(ACKNOWLEDGED)
    refused, uncertain = ledger.count(REFUSED), ledger.count(UNCERTAIN)
    why = ", ".join(f"{k}: {n}" for k, n in ledger.failures.most_common(3))
    problems: list[str] = []
    if planned == 0:
        problems.append("nothing was published: no delivery was tested")
    elif acked == 0:
        problems.append(f"none of {planned} publishes was acknowledged ({why}): no delivery was tested")
    elif acked < expect.min_acknowledged * planned:
        problems.append(
            f"only {acked} of {planned} publishes were acknowledged ({100 * acked / planned:.0f}%, "
            f"below {100 * expect.min_acknowledged:.0f}%; {why})"
        )
    if uncertain > expect.max_uncertain:
        problems.append(f"{uncertain} publishes got no certain answer, more than {expect.max_uncertain} ({why})")
    if refused > expect.max_refused:
        problems.append(f"{refused} publishes were refused, more than {expect.max_refused} ({why})")
    if not clients:
        problems.append("no client took part: no delivery was tested")
    lost = duplicates = 0
    for r in clients:
        n_lost, n_dups, mine = _client_problems(ledger, r)
        lost, duplicates = lost + n_lost, duplicates + n_dups
        problems += mine
    figures = {
        "clients": len(clients),
        "planned": planned,
        "published": acked,
        "refused": refused,
        "uncertain": uncertain,
        "lost": lost,
        "duplicates": duplicates,
        "raw duplicates": sum(r.raw_duplicates for r in clients),
    }
    return Account(figures, problems)
