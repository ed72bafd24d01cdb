"""The HAProxy configuration carries the spec's derived numbers (e2e starts HAProxy with it,
which checks the syntax)."""

from __future__ import annotations

from http.cookies import SimpleCookie

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
                 'cookie SRV insert indirect nocache httponly attr "Max-Age=3600"', "balance roundrobin",
                 "option httpchk GET /health/ready", "default-server check inter 3s fall 2 rise 1",
                 "server a0 10.0.0.1:3001 cookie a0", "retry-on conn-failure empty-response 503"):  # fmt: skip
        assert line in text, line


def test_client_ip_affinity_hashes_the_source() -> None:
    text = _render({"affinity": {"mode": "clientIP"}, "transports": ["websocket"]})
    assert "balance source" in text
    assert "cookie" not in text.split("backend fleet", 1)[1]


def test_the_affinity_cookie_is_sent_back_unquoted_by_python_clients() -> None:
    """HAProxy's maxlife/maxidle stamp dates into the value ("b1|awk/l|awk/l"); Python's
    http.cookies (aiohttp, so python-socketio) quotes a value with '/', HAProxy then matches no
    server, and a long-polling session lands on another pod. The rendered cookie carries no
    stamp: its value is the backend's name."""
    text = _render({"affinity": {"cookieName": "SRV", "ttl": "1h"}})
    assert "maxlife" not in text
    assert "maxidle" not in text
    jar: SimpleCookie = SimpleCookie()
    for backend in BACKENDS:
        jar["SRV"] = backend.name
        assert jar["SRV"].OutputString() == f"SRV={backend.name}"
    jar["SRV"] = "b1|awk/l|awk/l"  # what maxlife made at 08:30 on 2026-11-27
    assert jar["SRV"].OutputString() == 'SRV="b1|awk/l|awk/l"'
