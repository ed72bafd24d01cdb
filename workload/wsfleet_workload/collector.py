"""The garbage collector's schedule, for a process that holds thousands of long-lived connections.

A WebSocket connection holds some forty container objects for its whole life and creates no
reference cycle (test_connection_memory.py holds that), so reference counting frees what it
leaves; the cyclic collector has nothing to find in it. CPython's collector still looks at every
new container twice before it reaches the old generation: when the young generation is collected
(every 700 allocations) and again with the middle one (every tenth time). In a connect storm the
new containers are almost all connection state that stays, and those two looks were 35 us of the
workload's ~330 us of CPU per connection at 10,000 clients (callbacks on gc.callbacks timed them).

So, in a burst of new connections (the pod's Engine.IO sessions grew by ``burst`` or more within
one ``tick``; counted at the handshake, before Socket.IO's CONNECT, so a storm is seen while its
handshakes are still arriving) the collector pauses; when the burst is over, everything it allocated is frozen
(gc.freeze moves objects out of every collection without looking at them), and the collector
runs as before. A reference cycle among frozen objects would outlive its last reference; so once
a burst froze anything, a full collection of everything (gc.unfreeze, gc.collect, gc.freeze) runs
``full_interval`` after the previous full one, in the first quiet tick. At 10,000 connections it
walks some 435,000 objects in about 220 ms (it found 10 unreachable after a 10,000-client storm):
one pause, outside the storm, at most every ten minutes, where the storm's scanning cost 350 ms of
CPU within it.

What start-up allocated is frozen at once (``start``).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable

log = logging.getLogger("wsfleet.collector")

# Young collections as Python's default; a full collection after 1000 of the middle generation's
# instead of 10 (and only once the long-lived heap grew by a quarter, as always).
GC_THRESHOLDS = (700, 10, 1000)
BURST = 20  # new Engine.IO sessions within one tick (200 per second)
TICK = 0.1  # seconds
FULL_INTERVAL = 600.0  # seconds between full collections after bursts


class Collector:
    def __init__(
        self,
        population: Callable[[], int],
        *,
        burst: int = BURST,
        tick: float = TICK,
        full_interval: float = FULL_INTERVAL,
        on_burst: Callable[[], None] | None = None,
    ) -> None:
        self.population, self.burst, self.tick, self.full_interval = population, burst, tick, full_interval
        self.on_burst = on_burst
        self.bursts = 0  # bursts seen
        self.full_collections = 0
        self.in_burst = False
        self._last = 0
        self._burst_from = (0.0, 0)  # when the burst was seen, and the population then
        self._frozen_since_full = False
        self._last_full = time.monotonic()
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        self._last = self.population()
        self._last_full = time.monotonic()
        self._timer = asyncio.get_running_loop().call_later(self.tick, self._tick)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.in_burst:
            self._end_burst()

    def _tick(self) -> None:
        count = self.population()
        grown, self._last = count - self._last, count
        if grown >= self.burst:
            if not self.in_burst:
                self.in_burst = True
                self.bursts += 1
                self._burst_from = (time.monotonic(), count - grown)
                gc.disable()
                if self.on_burst is not None:
                    self.on_burst()
        elif self.in_burst:
            self._end_burst()
        elif self._frozen_since_full and time.monotonic() - self._last_full >= self.full_interval:
            self.full_collection()
        self._timer = asyncio.get_running_loop().call_later(self.tick, self._tick)

    def _end_burst(self) -> None:
        # No count of what is frozen for the log line: gc.get_freeze_count walks the frozen objects
        # one by one, 40 ms at 10,000 connections.
        gc.freeze()  # what the burst allocated and still holds: never scanned
        gc.enable()
        self.in_burst = False
        self._frozen_since_full = True
        since, population = self._burst_from
        log.info(
            "garbage collector paused for a burst of connections (%d -> %d in %.1f s); what they hold is frozen",
            population,
            self.population(),
            time.monotonic() - since,
        )

    def full_collection(self) -> int:
        """Everything, frozen objects included, looked at once; what is alive is frozen again.
        Returns the number of unreachable objects found."""
        started = time.perf_counter()
        gc.unfreeze()
        found = gc.collect()
        gc.freeze()
        self.full_collections += 1
        self._frozen_since_full = False
        self._last_full = time.monotonic()
        log.info(
            "full garbage collection after a burst: %d unreachable objects, %.0f ms",
            found,
            (time.perf_counter() - started) * 1000,
        )
        return found
