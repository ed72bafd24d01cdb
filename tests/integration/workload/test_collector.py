"""The garbage collector's schedule in a real workload process (collector.py): a burst of official
JS clients connecting at once is seen as one (logged, counted), and the clients and one after
them are served as always. What the pause and the freeze do to the collector itself is held by
tests/unit/workload/test_collector.py, against the real collector in-process."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path

from tests.support.processes import JsFleet, Workload, wait_for
from tests.support.pyclient import PyClient
from wsfleet_common import contract as c

CLIENTS = 300


def test_a_connect_burst_is_seen_and_served(workloads: Callable[..., Workload], tmp_path: Path) -> None:
    # every client comes from one address: the per-address handshake limit would spread them out
    a = workloads("a", **{c.ENV_HANDSHAKES_PER_SECOND: "5000", c.ENV_HANDSHAKES_PER_SECOND_PER_IP: "5000"})
    fleet = JsFleet(tmp_path, a.url, clients=CLIENTS, rooms=["lobby"])
    try:
        fleet.wait_ready()

        def over() -> bool:  # every burst counted (at its start) has been logged (at its end)
            ended = a.events(logger="wsfleet.collector")
            return bool(ended) and a.metric(c.METRIC_GC_BURSTS) == len(ended)

        wait_for(over, 30, "the burst seen and over")
        # One burst, or more if the arrivals paused for a tick (a busy machine); where each starts
        # depends on how many handshakes came before the first tick that saw 20 more: not asserted.
        bursts = a.events(logger="wsfleet.collector")
        spans = []
        for b in bursts:
            m = re.fullmatch(
                r"garbage collector paused for a burst of connections \((\d+) -> (\d+) in [\d.]+ s\); "
                r"what they hold is frozen",
                b["message"],
            )
            assert m, b
            spans.append((int(m.group(1)), int(m.group(2))))
        assert all(0 <= start < end <= CLIENTS for start, end in spans), spans
        assert spans[0][0] < CLIENTS - 20, f"the first burst was seen while the clients arrived: {spans}"

        async def after() -> None:
            late = PyClient(a.url, ["lobby"])
            await late.connect()
            a.publish("lobby", {"seq": 1})
            await asyncio.to_thread(wait_for, lambda: late.seqs["lobby"] == [1], 5, "a message after the burst")
            await late.close()

        asyncio.run(after())
        summary = fleet.summary()
        assert len(summary) == CLIENTS
        assert all(s["connected"] and not s["joinErrors"] and "lobby" in s["pos"] for s in summary)
        late = [s["id"] for s in summary if s["seqs"].get("lobby") != [1]]
        assert not late, f"clients without the message published after the burst: {late[:10]}"
    finally:
        fleet.stop()
