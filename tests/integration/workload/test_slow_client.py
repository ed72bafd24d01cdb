"""A client that is only slow: its PONGs late past the heartbeat (pingInterval + pingTimeout), as
on a starved machine or a phone in a tunnel. The server gives up on it (ping timeout) and closes
its transport; the client must see a lost connection and come back with its offsets, not a
"server disconnect" (an Engine.IO CLOSE or a Socket.IO DISCONNECT), on which python-socketio's
client stops for good. Under a loaded machine two python-socketio clients of the rolling-restart
scenario were seen stopped so (reasons: transport error, then server disconnect); this test holds
the ping-timeout path, which is not where that came from.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from engineio import packet as eio_packet

from tests.support.processes import Workload, wait_for
from tests.support.pyclient import LoopThread, PyClient
from wsfleet_common import contract as c


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_a_client_that_was_only_slow_reconnects_and_resumes(workloads: Callable[..., Workload], transport: str) -> None:
    a = workloads("a")  # heartbeat 2 s + 2 s
    loop = LoopThread()
    client = PyClient(a.url, ["r"], transports=[transport])
    try:
        loop.run(client.connect())
        a.publish("r", {"seq": 1})
        wait_for(lambda: client.seqs["r"] == [1], 10, "the first message")
        # The fault: its PONGs do not go out for a while, as from a starved client that reads but
        # answers late (a stand-in, named as such: no real part is late on cue). It keeps reading.
        eio = client.sio.eio
        send = eio._send_packet
        muted = threading.Event()
        muted.set()

        async def late(pkt: Any) -> None:
            if not (muted.is_set() and pkt.packet_type == eio_packet.PONG):
                await send(pkt)

        eio._send_packet = late
        wait_for(lambda: a.events(message="disconnected: ping timeout"), 20, "the server's ping timeout")
        muted.clear()
        a.publish("r", {"seq": 2})  # while the client is away
        wait_for(lambda: len(client.sessions) >= 2 and client.sio.connected, 30, "the client back")
        wait_for(lambda: client.seqs["r"] == [1, 2], 10, "the message it missed, replayed")
        assert "server disconnect" not in client.reasons, client.reasons
        assert client.sessions[-1]["rooms"]["r"]["recovered"] is True, client.sessions[-1]
        assert a.metric(c.METRIC_DISCONNECTS, reason="ping_timeout") >= 1
    finally:
        loop.run(client.close())
        loop.close()
