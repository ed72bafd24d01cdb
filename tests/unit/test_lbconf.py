"""The HAProxy configuration carries the spec's derived numbers (e2e starts HAProxy with it,
which checks the syntax)."""

from __future__ import annotations

from tests.unit.strategies import resource
from wsfleet_operator.lbconf import Backend, haproxy
from wsfleet_operator.validation import parse_and_check

BACKENDS = [Backend("a0", "10.0.0.1", 3001), Backend("b0", "10.0.0.2", 3001)]


def _render(spec: dict[str, object]) -> str:
    return haproxy(parse_and_check(resource(spec), "t").spec, BACKENDS, bind="0.0.0.0:80")


def test_idle_timeout_cookie_and_health_checks_follow_the_spec() -> None:
    text = _render({"heartbeat": {"interval": "20s", "timeout": "20s"}, "loadBalancer": {"margin": "15s"},
                    "affinity": {"cookieName": "SRV", "ttl": "1h"}, "probes": {"readiness": {"period": "3s"}}})  # fmt: skip
    for line in ("timeout client 55s", "timeout server 55s", "timeout tunnel 55s",
                 "cookie SRV insert indirect nocache httponly maxlife 3600s", "balance roundrobin",
                 "option httpchk GET /health/ready", "default-server check inter 3s fall 2 rise 1",
                 "server a0 10.0.0.1:3001 cookie a0", "retry-on conn-failure empty-response 503"):  # fmt: skip
        assert line in text, line


def test_client_ip_affinity_hashes_the_source() -> None:
    text = _render({"affinity": {"mode": "clientIP"}, "transports": ["websocket"]})
    assert "balance source" in text
    assert "cookie" not in text.split("backend fleet", 1)[1]
