"""The switch between the fast path and the stock path (fastpath/__init__.py, docs/workload.md).

``WSFLEET_FAST_PATH=off`` runs python-engineio, python-socketio and uvicorn as released: the
workload says so in its log and its metrics, and its WebSocket clients get their messages
through python-engineio's own queue and writer task, not written directly. (That the stock
path serves every client test is shown by running the whole tier with WSFLEET_FAST_PATH=off:
`make test` does.)
"""

from __future__ import annotations

from collections.abc import Callable

from tests.support.processes import Workload, wait_for
from tests.support.pyclient import LoopThread, PyClient
from wsfleet_common import contract as c


def deliver(w: Workload, count: int) -> None:
    """A python-socketio WebSocket client joins a room and gets `count` messages, in order."""
    loop = LoopThread()
    client = PyClient(w.url, ["r"], transports=["websocket"])
    try:
        loop.run(client.connect())
        for seq in range(1, count + 1):
            w.publish("r", {"seq": seq})
        wait_for(lambda: client.seqs["r"] == list(range(1, count + 1)), 15, f"{count} messages on {w.name}")
    finally:
        loop.run(client.close())
        loop.close()


def test_the_switch_runs_the_stock_path_and_says_so(workloads: Callable[..., Workload]) -> None:
    fast = workloads("fast", WSFLEET_FAST_PATH="on")
    stock = workloads("stock", WSFLEET_FAST_PATH="off")
    for w in (fast, stock):
        deliver(w, 5)
    assert fast.metric(c.METRIC_FAST_PATH) == 1
    assert stock.metric(c.METRIC_FAST_PATH) == 0
    assert fast.metric(c.METRIC_FAST_PATH_MISMATCH) == 0, "the installed libraries are the pinned ones"
    assert [e["message"] for e in stock.events(message="fast path off (WSFLEET_FAST_PATH=off): stock python-engineio, "
                                                       "python-socketio and uvicorn")], stock.log()  # fmt: skip
    assert stock.events(message="fast path on") == []
    # what carried the messages: written to the WebSocket at once, or queued for upstream's writer
    assert fast.metric(c.METRIC_MESSAGES_OUT, path="direct") >= 5
    assert stock.metric(c.METRIC_MESSAGES_OUT, path="direct") == 0
    assert stock.metric(c.METRIC_MESSAGES_OUT, path="queued") >= 5
