"""HAProxy configuration for a fleet, from the same spec and the same timeout code as the
operator's load-balancer objects.

For `loadBalancer.provider: none` (bring your own load balancer) and for the end-to-end tests,
which put a real HAProxy in front of workload processes: the idle timeout is the derived one
(I1), affinity is the spec's cookie (name, TTL) or the client IP, and health checks hit the
readiness endpoint with the readiness probe's period and failure threshold, so HAProxy drops a
draining pod as fast as Kubernetes endpoints would.
"""

from __future__ import annotations

from dataclasses import dataclass

from wsfleet_operator.model import WebSocketServiceSpec
from wsfleet_operator.timeouts import derive


@dataclass(frozen=True)
class Backend:
    name: str
    host: str
    port: int


def haproxy(
    spec: WebSocketServiceSpec,
    backends: list[Backend],
    *,
    bind: str = "127.0.0.1:8080",
    stats_socket: str | None = None,
    disabled: frozenset[str] = frozenset(),
) -> str:
    """`disabled` servers are declared but take no traffic until enabled through the runtime API
    (`stats_socket`), the way an endpoint appears only once its pod exists."""
    t = derive(spec)
    readiness = spec.probes.readiness
    affinity = spec.affinity
    balance = "source" if affinity.mode == "clientIP" else "roundrobin"
    cookie = ""
    if affinity.mode == "cookie":
        # The TTL is the cookie's Max-Age, not HAProxy's maxlife: maxlife stamps dates into the
        # value ("b1|awk/l|awk/l"), whose '/' and '+' make Python's http.cookies (aiohttp, so
        # python-socketio) send it back quoted, which HAProxy takes for an unknown server: the
        # polling session lands on another pod, at the minutes whose stamp has such a character.
        cookie = f'    cookie {affinity.cookie_name} insert indirect nocache httponly attr "Max-Age={affinity.ttl}"\n'
    servers = "".join(
        f"    server {b.name} {b.host}:{b.port}{f' cookie {b.name}' if cookie else ''}"
        f"{' disabled' if b.name in disabled else ''}\n"
        for b in backends
    )
    stats = f"    stats socket {stats_socket} mode 600 level admin\n" if stats_socket else ""
    return f"""# Rendered by wsfleet from the WebSocketService spec: idle timeout {t.idle}s = heartbeat window
# {t.window}s ({t.interval}s + {t.timeout}s) + margin {t.margin}s (I1); health checks follow the readiness probe.
global
    log stdout format raw local0 info
{stats}defaults
    mode http
    log global
    option httplog
    timeout connect 5s
    # an idle WebSocket (tunnel) or long-poll lives until the idle timeout: Engine.IO pings every {t.interval}s
    timeout client {t.idle}s
    timeout server {t.idle}s
    timeout tunnel {t.idle}s
    timeout client-fin 5s
    # the client's address for the pods (limits.handshakesPerSecondPerIp, logs): without it every
    # client has the load balancer's, and the per-address limit becomes one for the whole LB
    option forwardfor
    # a handshake refused by a draining pod (503) or a pod gone mid-connect is retried on another
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response 503
frontend websocket
    bind {bind}
    default_backend fleet
backend fleet
    balance {balance}
{cookie}    option httpchk GET {readiness.path}
    http-check expect status 200
    default-server check inter {readiness.period}s fall {readiness.failure_threshold} rise 1
{servers}"""
