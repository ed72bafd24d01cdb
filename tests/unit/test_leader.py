"""Leader election (wsfleet_operator.leader) over a Lease kept in memory.

Matrix:
- acquiring: no Lease (create); another's valid Lease (wait); another's Lease unchanged for its
  duration (take over, transitions + 1); a released Lease (take at once); a race (one wins);
- renewing: the record changing keeps a standby out however long it watches;
- the fence: closed once the renew deadline has passed on the monotonic clock, even before the
  renew loop notices (a frozen process);
- hold(): returns when renewing fails past the deadline, and at once when another holds it;
- release(): holder emptied, so a standby takes it without waiting;
- Timing: client-go's three checks.

The real API server, two processes, SIGKILL and SIGSTOP: tests/integration/test_leader.py.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import replace

import pytest

from wsfleet_operator.leader import Conflict, Elector, Record, Timing


class Store:
    """One Lease with a resourceVersion, as the API server keeps it; `down` fails every call."""

    def __init__(self) -> None:
        self.record: Record | None = None
        self.version = 0
        self.down = False
        self.writes: list[Record] = []

    def _check(self) -> None:
        if self.down:
            raise ConnectionError("API server unreachable")

    def get(self, timeout: float) -> Record | None:
        self._check()
        return self.record

    def create(self, record: Record, timeout: float) -> Record:
        self._check()
        if self.record is not None:
            raise Conflict("exists")
        return self._put(record)

    def update(self, record: Record, timeout: float) -> Record:
        self._check()
        if self.record is None or record.version != self.record.version:
            raise Conflict("stale resourceVersion")
        return self._put(record)

    def _put(self, record: Record) -> Record:
        self.version += 1
        self.record = replace(record, version=str(self.version))
        self.writes.append(self.record)
        return self.record


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


T = Timing(lease_duration=15, renew_deadline=10, retry_period=2)


def elector(store: Store, name: str, clock: Clock, timing: Timing = T) -> Elector:
    return Elector(store, name, timing, clock=clock)


async def test_first_candidate_creates_the_lease_and_leads() -> None:
    store, clock = Store(), Clock()
    a = elector(store, "a", clock)
    assert await a.acquire(asyncio.Event())
    assert a.leading
    assert a.valid()
    assert store.record is not None
    assert (store.record.holder, store.record.duration, store.record.transitions) == ("a", 15, 0)


async def test_a_standby_waits_while_the_leader_renews() -> None:
    store, clock = Store(), Clock()
    a, b = elector(store, "a", clock), elector(store, "b", clock)
    assert await a.attempt(10) == "held"
    for _ in range(10):  # b watches for 10 x 14 s, far past one lease duration
        assert await b.attempt(10) == "taken"
        clock.now += 14
        assert await a.attempt(10) == "held"  # each renew is a new record: b's wait starts over
    assert not b.leading
    assert b.holder == "a"
    assert store.record is not None
    assert store.record.holder == "a"


async def test_a_standby_takes_over_a_lease_left_unrenewed_for_its_duration() -> None:
    store, clock = Store(), Clock()
    a, b = elector(store, "a", clock), elector(store, "b", clock)
    assert await a.attempt(10) == "held"
    assert await b.attempt(10) == "taken"
    clock.now += 14.9
    assert await b.attempt(10) == "taken", "taken over before the lease duration passed"
    clock.now += 0.2
    assert await b.attempt(10) == "held"
    assert store.record is not None
    assert (store.record.holder, store.record.transitions) == ("b", 1)
    assert store.record.acquired == store.record.renewed


async def test_the_fence_closes_at_the_renew_deadline_before_the_loop_notices() -> None:
    """A process frozen past its deadline: `leading` is still set, no renew has failed yet, and
    still no write may pass."""
    store, clock = Store(), Clock()
    a = elector(store, "a", clock)
    assert await a.acquire(asyncio.Event())
    clock.now += 9.9
    assert a.valid()
    clock.now += 0.2
    assert a.leading
    assert not a.valid()


async def test_the_deadline_counts_from_when_the_renew_was_sent() -> None:
    """A renew that took 3 s to answer leaves 7 s of the deadline, not 10."""
    clock = Clock()

    class Slow(Store):
        def get(self, timeout: float) -> Record | None:
            clock.now += 3
            return super().get(timeout)

    a = elector(Slow(), "a", clock)
    assert await a.acquire(asyncio.Event())
    clock.now += 6.9
    assert a.valid()
    clock.now += 0.2
    assert not a.valid()


async def test_a_released_lease_is_taken_at_once() -> None:
    store, clock = Store(), Clock()
    a, b = elector(store, "a", clock), elector(store, "b", clock)
    assert await a.acquire(asyncio.Event())
    assert await b.attempt(10) == "taken"
    await a.release()
    assert not a.leading
    assert not a.valid()
    assert store.record is not None
    assert (store.record.holder, store.record.duration) == ("", 1)
    assert await b.attempt(10) == "held", "a released lease needs no waiting"
    assert store.record.holder == "b"
    assert store.record.transitions == 1


async def test_of_two_candidates_racing_for_an_expired_lease_one_wins() -> None:
    store, clock = Store(), Clock()

    class Late(Store):
        """c's view: its read happened before b's write landed."""

        read: Record | None = None

        def get(self, timeout: float) -> Record | None:
            return self.read or store.get(timeout)

        def update(self, record: Record, timeout: float) -> Record:
            return store.update(record, timeout)

    late = Late()
    a, b, c = elector(store, "a", clock), elector(store, "b", clock), elector(late, "c", clock)
    assert await a.attempt(10) == "held"
    assert await b.attempt(10) == "taken"
    assert await c.attempt(10) == "taken"
    clock.now += 16
    late.read = store.record  # both read the expired record; b writes first
    assert await b.attempt(10) == "held"
    assert await c.attempt(10) == "failed", "a write at a stale resourceVersion must lose"
    assert store.record is not None
    assert store.record.holder == "b"
    assert not c.leading


async def test_hold_returns_when_renewing_fails_past_the_deadline() -> None:
    store, changes = Store(), []
    timing = Timing(lease_duration=0.9, renew_deadline=0.6, retry_period=0.1)
    a = Elector(store, "a", timing, on_change=changes.append)
    assert await a.acquire(asyncio.Event())
    holding = asyncio.create_task(a.hold())
    await asyncio.sleep(0.35)
    renewed = len(store.writes)
    assert not holding.done()
    assert renewed >= 2, "the leader renews every retry period"
    store.down = True
    await asyncio.wait_for(holding, 10)
    assert not a.leading
    assert not a.valid()
    assert changes == [True, False]


async def test_hold_returns_at_once_when_another_holds_the_lease() -> None:
    store = Store()
    timing = Timing(lease_duration=30, renew_deadline=20, retry_period=0.05)
    a = Elector(store, "a", timing)
    assert await a.acquire(asyncio.Event())
    assert store.record is not None
    store._put(replace(store.record, holder="intruder", renewed=dt.datetime.now(dt.UTC)))
    await asyncio.wait_for(a.hold(), 5)  # far within the 20 s deadline
    assert not a.leading
    assert a.holder == "intruder"


async def test_a_standby_stops_when_told() -> None:
    store, clock = Store(), Clock()
    a, b = elector(store, "a", clock), Elector(store, "b", Timing(3, 2, 0.05), clock=clock)
    assert await a.acquire(asyncio.Event())
    stop = asyncio.Event()
    waiting = asyncio.create_task(b.acquire(stop))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    stop.set()
    assert await asyncio.wait_for(waiting, 5) is False
    assert not b.leading


async def test_an_api_error_is_a_failed_attempt() -> None:
    store, clock = Store(), Clock()
    store.down = True
    a = elector(store, "a", clock)
    assert await a.attempt(10) == "failed"
    assert not a.leading
    assert store.record is None


@pytest.mark.parametrize(
    ("timing", "flag"),
    [
        (Timing(10, 10, 2), "--leader-elect-lease-duration 10s must be longer than --leader-elect-renew-deadline 10s"),
        (Timing(15, 2, 2), "--leader-elect-renew-deadline 2s must be longer than 1.2 x --leader-elect-retry-period 2s"),
    ],
)
def test_timing_is_checked_as_client_go_does(timing: Timing, flag: str) -> None:
    assert any(p.startswith(flag) for p in timing.problems()), timing.problems()
    assert Timing().problems() == []
