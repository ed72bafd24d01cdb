"""The collector's schedule (collector.py) against Python's real garbage collector, in this process:
a burst pauses it and freezes what the burst left, an ordinary collection then skips those
objects, and the full collection after a burst frees a cycle among them."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Callable, Iterator

import pytest

from wsfleet_workload.collector import Collector

TICK = 0.02


class Node:
    """A container the collector tracks; ``peer`` makes a cycle."""

    peer: Node | None = None


@pytest.fixture(autouse=True)
def gc_state() -> Iterator[None]:
    thresholds, enabled = gc.get_threshold(), gc.isenabled()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)
    if enabled:
        gc.enable()
    else:
        gc.disable()


def cycles(n: int) -> list[weakref.ref[Node]]:
    """n two-object cycles, unreachable once this returns: only the cyclic collector frees them."""
    refs = []
    for _ in range(n):
        a, b = Node(), Node()
        a.peer, b.peer = b, a
        refs.append(weakref.ref(a))
    return refs


def scanned(objects: list[Node]) -> list[Node]:
    """Those of these objects an ordinary collection looks at (gc.get_objects leaves frozen ones out)."""
    ids = {id(o) for o in objects}
    return [o for o in gc.get_objects() if id(o) in ids]


class Arrivals:
    """A pod's session count as the collector reads it: up by 50 at each reading (each tick) while
    ``arriving``, a burst that lasts until it is turned off."""

    def __init__(self) -> None:
        self.count, self.arriving = 0, False

    def __call__(self) -> int:
        if self.arriving:
            self.count += 50
        return self.count


async def until(condition: Callable[[], bool], what: str, timeout: float = 3.0) -> None:
    for _ in range(int(timeout / TICK)):
        if condition():
            return
        await asyncio.sleep(TICK)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_burst_pauses_the_collector_and_freezes_what_it_left() -> None:
    async def scenario() -> None:
        sessions = Arrivals()
        collector = Collector(sessions, burst=20, tick=TICK, full_interval=0.5)
        collector.start()
        assert gc.isenabled()
        frozen_before = gc.get_freeze_count()

        sessions.arriving = True
        await until(lambda: collector.in_burst, "the burst seen")
        assert not gc.isenabled(), "no collection during the burst"
        assert collector.bursts == 1
        kept = [Node() for _ in range(1000)]  # state of the burst's connections
        dropped = cycles(100)  # a cycle the burst made and let go of

        sessions.arriving = False
        await until(lambda: not collector.in_burst, "the burst over")
        assert gc.isenabled()
        assert gc.get_freeze_count() >= frozen_before + len(kept) + 2 * len(dropped)
        assert not scanned(kept), "frozen at the burst's end"
        gc.collect()  # Python's own full collection does not look at frozen objects
        assert all(ref() is not None for ref in dropped), "frozen, so not scanned"

        await until(lambda: collector.full_collections == 1, "the full collection after the burst")
        assert all(ref() is None for ref in dropped), "the full collection frees cycles among frozen objects"
        assert not scanned(kept), "what is alive is frozen again"
        await asyncio.sleep(0.7)
        assert collector.full_collections == 1, "no further full collection without another burst"
        collector.stop()
        assert kept

    asyncio.run(scenario())


def test_steady_growth_below_the_burst_rate_leaves_the_collector_as_python_runs_it() -> None:
    async def scenario() -> None:
        population = [0]
        collector = Collector(lambda: population[0], burst=20, tick=TICK, full_interval=0.2)
        collector.start()
        for _ in range(20):
            population[0] += 5  # 250 per second, under 20 per tick
            await asyncio.sleep(TICK)
            assert gc.isenabled()
        dropped = cycles(10)
        assert scanned(made := [Node()]) == made
        gc.collect()
        assert all(ref() is None for ref in dropped), "not frozen: collected as always"
        assert collector.bursts == 0
        assert collector.full_collections == 0, "nothing frozen since start-up: no full collection"
        collector.stop()

    asyncio.run(scenario())


def test_stopping_during_a_burst_turns_the_collector_back_on() -> None:
    async def scenario() -> None:
        sessions = Arrivals()
        collector = Collector(sessions, burst=20, tick=TICK)
        collector.start()
        sessions.arriving = True
        await until(lambda: collector.in_burst, "the burst seen")
        collector.stop()
        assert gc.isenabled()
        assert not collector.in_burst

    asyncio.run(scenario())
