"""The client's address through the load balancer `wsfleet` configures (lbconf.py): HAProxy sends
it in X-Forwarded-For, the workload believes it from its trusted proxy, and the per-address
handshake limit (limits.handshakesPerSecondPerIp, 20 by default) applies to each client, not to
the load balancer. Without `option forwardfor` every client had HAProxy's address: after a crash,
100 clients reconnecting through it shared one bucket of 20.

Many clients on one machine: each has its own loopback address (127.0.1.x; all of 127/8 is
local on Linux), so HAProxy sees as many sources as a real load balancer would.
"""

from __future__ import annotations

import http.client
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.support.processes import HAProxy, Workload, free_port
from tests.unit.strategies import resource
from wsfleet_common import contract as c
from wsfleet_operator import lbconf
from wsfleet_operator.validation import parse_and_check

PER_IP = 20  # the spec's default, and the workload's
CLIENTS = 100


def _handshake(port: int, source: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(source, 0))
    try:
        conn.request("GET", f"{c.SOCKETIO_PATH}?EIO=4&transport=polling")
        status = conn.getresponse().status
    finally:
        conn.close()
    return status


def test_the_per_address_limit_applies_to_each_client_behind_the_load_balancer(
    workloads: Callable[..., Workload], haproxy: Callable[..., HAProxy], tmp_path: Path
) -> None:
    # the pod-wide limit well above the storm: only the per-address one is under test
    a = workloads("a", **{c.ENV_HANDSHAKES_PER_SECOND: "5000", c.ENV_HANDSHAKES_PER_SECOND_PER_IP: str(PER_IP)})
    spec = parse_and_check(resource({"loadBalancer": {"provider": "none"}}), "test spec").spec
    assert spec.limits.handshakes_per_second_per_ip == PER_IP
    port = free_port()
    config = lbconf.haproxy(spec, [lbconf.Backend("a", "127.0.0.1", a.port)], bind=f"127.0.0.1:{port}")
    lb = haproxy([a], config=config, port=port)

    with ThreadPoolExecutor(50) as pool:
        # 100 clients, one handshake each, at once: none is over its own limit
        many = list(pool.map(lambda i: _handshake(lb.port, f"127.0.1.{i + 1}"), range(CLIENTS)))
        assert many.count(200) == CLIENTS, f"refused: {CLIENTS - many.count(200)} ({sorted(set(many))})"
        # one client, 3 x its limit at once: that one is refused
        one = list(pool.map(lambda _: _handshake(lb.port, "127.0.2.1"), range(3 * PER_IP)))
    assert one.count(503) >= PER_IP // 2, sorted(one)
    refused = a.events(event="refused", what="handshake")
    assert refused, "the workload logged its refusals"
    assert {e["ip"] for e in refused} == {"127.0.2.1"}, "each refusal names the client, not HAProxy"
    assert a.metric(c.METRIC_HANDSHAKE_REJECTIONS, reason="rate_limit_pod") == 0
