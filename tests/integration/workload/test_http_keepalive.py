"""An idle HTTP connection stays open as long as the workload was told, then closes.

A load balancer pools its connections to a pod and reuses an idle one for the next request. When
the pod closes an idle connection first, the LB's next request can cross the pod's FIN on the wire,
and the LB answers that request with 502: a publish POST is neither retried nor known to have
landed. Behind Traefik, 4 of 300 POSTs sent just as the pod's keep-alive ran out got 502. So the
operator derives the workload's keep-alive from the LB's own pooled-connection idle time plus a
margin (timeouts.Timeouts.keep_alive) and the workload must hold to it: longer than uvicorn's own
5 s default, and not forever.
"""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Callable

from tests.support.processes import Workload
from wsfleet_common import contract as c

KEEP_ALIVE = 12  # seconds: well past uvicorn's 5 s default, short enough to see the close
IDLE = 7  # past that default, and 5 s short of KEEP_ALIVE for a slow machine


def _get(sock: socket.socket, w: Workload) -> bytes:
    sock.sendall(f"GET {c.LIVE_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{w.port}\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the connection closed before an answer: {data!r}"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = next(
        int(v) for k, v in (h.split(b":", 1) for h in head.split(b"\r\n")[1:]) if k.lower() == b"content-length"
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head.split(b"\r\n", 1)[0]


def test_an_idle_connection_is_held_for_the_keep_alive_then_closed(workloads: Callable[..., Workload]) -> None:
    w = workloads("a", **{c.ENV_HTTP_KEEPALIVE: str(KEEP_ALIVE)})
    with socket.create_connection(("127.0.0.1", w.port), timeout=30) as sock:
        assert _get(sock, w) == b"HTTP/1.1 200 OK"
        time.sleep(IDLE)  # the idle time is what is under test
        readable, _, _ = select.select([sock], [], [], 0)
        assert not readable, f"the workload closed an idle connection within {IDLE}s (keep-alive {KEEP_ALIVE}s)"
        assert _get(sock, w) == b"HTTP/1.1 200 OK", "the idle connection no longer serves"
        answered = time.monotonic()
        sock.settimeout(KEEP_ALIVE + 60)
        assert sock.recv(1) == b"", "the workload sent bytes on an idle connection"
        held = time.monotonic() - answered
    # the close comes from the keep-alive timer, not at once; a busy machine only delays it
    assert held >= KEEP_ALIVE - 1, f"closed after {held:.1f}s idle, keep-alive {KEEP_ALIVE}s"
