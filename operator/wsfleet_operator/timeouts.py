"""Derive every timeout from the spec, and explain the result.

A WebSocket fleet fails quietly when its timeouts disagree: a load balancer idle
timeout under the heartbeat window cuts idle sockets every minute, a grace
period shorter than preStop + drain kills sockets mid-drain, and a load balancer
that drops a backend's connections before the drain ends loses messages. This
module is the one place that knows those relations.

The invariants over these values (I1..I15), each written once in CEL, live in
invariants.py.

Pure: imports only the model.
"""

from __future__ import annotations

from dataclasses import dataclass

from wsfleet_operator.model import WebSocketServiceSpec


def fmt(seconds: int) -> str:
    """Seconds as messages show them: plain seconds, so two numbers compare at a glance."""
    return f"{seconds}s"


@dataclass(frozen=True)
class LbProfile:
    """What the operator must know about a load balancer's timing behaviour."""

    key: str
    label: str
    # Default preStop. Proxies that follow Endpoints (ingress-nginx, Envoy) stop sending new
    # requests within a second of the pod turning unready; 10 s covers the kubelet's 2 failed probes
    # of the default 3 s readiness period and one more for the LB to follow (I3). Cloud load
    # balancers deregister through their controller and lag:
    # users of the AWS Load Balancer Controller ended up with 25-70 s, GCE NEGs take ~20-30 s.
    pre_stop: int
    idle_setting: str | None  # the rendered idle-timeout setting, if the provider has one
    idle_max: int | None = None
    lifetime_setting: str | None = None  # a lifetime cap that also bounds idle sockets
    drain_setting: str | None = None  # the LB's own connection draining, if it has one
    drain_max: int | None = None
    cookie_ttl_max: int | None = None
    client_ip_affinity: bool = True
    fixed_cookie_name: str | None = None
    # False: the load balancer never closes an upgraded connection for being silent (Traefik: Go's
    # net/http clears the deadlines when the proxy hijacks the connection), so only the heartbeat
    # notices a dead peer, and no idle timeout is rendered.
    idle_limit: bool = True
    # How long the load balancer keeps an idle pooled connection to a backend for reuse; None: the
    # rendered idle timeout governs backend connections too (ALB, Envoy Gateway). The workload keeps
    # idle HTTP connections open longer than this: a backend that closes one first races the LB's
    # next request on it, and the LB answers that request (a publish POST) with 502.
    upstream_idle: int | None = None


# Where the provider's pooled-connection idle time is unknown: Envoy's default upstream idle timeout
# (1 h), the longest of the proxies we know, for Envoy-based Gateways such as Istio or Cilium.
UPSTREAM_IDLE_UNKNOWN = 3600
# Service.spec.sessionAffinityConfig.clientIP.timeoutSeconds is capped at one day.
SERVICE_CLIENT_IP_TTL_MAX = 86400

PROFILES: dict[str, LbProfile] = {
    p.key: p
    for p in (
        # upstream-keepalive-timeout, 60 s by default
        LbProfile("nginx", "ingress-nginx", 10, "proxy-read-timeout / proxy-send-timeout", upstream_idle=60),
        LbProfile(
            "alb",
            "AWS ALB",
            30,
            "idle_timeout.timeout_seconds",
            idle_max=4000,  # ALB attribute range 1-4000
            drain_setting="deregistration_delay.timeout_seconds",
            drain_max=3600,  # target group attribute range 0-3600
            cookie_ttl_max=604800,  # stickiness.lb_cookie.duration_seconds range 1-604800
            client_ip_affinity=False,  # ALB has no source-IP stickiness
            fixed_cookie_name="AWSALB",
        ),
        LbProfile(
            "gce",
            "GKE Ingress",
            20,
            None,
            lifetime_setting="BackendConfig timeoutSec",
            drain_setting="BackendConfig connectionDraining.drainingTimeoutSec",
            fixed_cookie_name="GCLB",
            upstream_idle=600,  # Google's load balancers keep backend connections 600 s, not settable
        ),
        LbProfile("gateway/generic", "Gateway API", 10, None, upstream_idle=UPSTREAM_IDLE_UNKNOWN),
        LbProfile(
            "gateway/envoy",
            "Envoy Gateway",
            10,
            "BackendTrafficPolicy connectionIdleTimeout",
            lifetime_setting="BackendTrafficPolicy maxConnectionDuration",
        ),
        LbProfile(
            "gateway/gke",
            "GKE Gateway",
            20,
            None,
            lifetime_setting="GCPBackendPolicy timeoutSec",
            drain_setting="GCPBackendPolicy connectionDraining.drainingTimeoutSec",
            fixed_cookie_name="GCLB",
            upstream_idle=600,
        ),
        LbProfile(
            "gateway/traefik",
            "Traefik",
            10,  # it stops sending new connections to an unready endpoint within 0.2 s of the API write
            None,
            client_ip_affinity=False,  # a TraefikService's only affinity is its sticky cookie
            idle_limit=False,
            upstream_idle=90,  # serversTransport idleConnTimeout, 90 s by default
        ),
        LbProfile("none", "your load balancer", 10, None, upstream_idle=UPSTREAM_IDLE_UNKNOWN),
    )
}


def profile_key(spec: WebSocketServiceSpec) -> str:
    lb = spec.load_balancer
    return f"gateway/{lb.implementation}" if lb.provider == "gateway" else lb.provider


def profile(spec: WebSocketServiceSpec) -> LbProfile:
    return PROFILES[profile_key(spec)]


@dataclass(frozen=True)
class Timeouts:
    """Every timing value of a fleet, in seconds, with which ones were derived."""

    profile: LbProfile
    interval: int
    timeout: int
    margin: int
    idle: int
    idle_derived: bool
    lifetime: int
    pre_stop: int
    pre_stop_derived: bool
    drain: int
    buffer: int
    grace: int
    grace_derived: bool
    lb_drain: int | None  # None where the provider has no connection draining setting
    lb_drain_derived: bool
    readiness_period: int
    readiness_failures: int  # the readiness probe's failureThreshold
    startup_window: int
    startup_budget: int
    replay_ttl: int
    upstream_idle: int  # how long the LB keeps an idle pooled connection to a pod
    keep_alive: int  # how long the workload keeps an idle HTTP connection: upstream_idle + margin

    @property
    def window(self) -> int:
        """The heartbeat window: how long a silent but healthy connection can go without traffic."""
        return self.interval + self.timeout

    @property
    def drained_at(self) -> int:
        return self.pre_stop + self.drain


def derive(spec: WebSocketServiceSpec) -> Timeouts:
    """Fill in every derived timeout. Derived values satisfy their invariants by construction."""
    prof = profile(spec)
    lb, sd, probes = spec.load_balancer, spec.shutdown, spec.probes
    window = spec.heartbeat.interval + spec.heartbeat.timeout
    pre_stop = sd.pre_stop if sd.pre_stop is not None else prof.pre_stop
    lb_drain: int | None = None
    if prof.drain_setting is not None:
        lb_drain = lb.deregistration_delay if lb.deregistration_delay is not None else pre_stop + sd.drain + sd.buffer
    idle = lb.idle_timeout if lb.idle_timeout is not None else window + lb.margin
    upstream_idle = prof.upstream_idle if prof.upstream_idle is not None else idle
    return Timeouts(
        profile=prof,
        interval=spec.heartbeat.interval,
        timeout=spec.heartbeat.timeout,
        margin=lb.margin,
        idle=idle,
        idle_derived=lb.idle_timeout is None,
        lifetime=lb.max_connection_lifetime,
        pre_stop=pre_stop,
        pre_stop_derived=sd.pre_stop is None,
        drain=sd.drain,
        buffer=sd.buffer,
        grace=(
            sd.termination_grace_period if sd.termination_grace_period is not None else pre_stop + sd.drain + sd.buffer
        ),
        grace_derived=sd.termination_grace_period is None,
        lb_drain=lb_drain,
        lb_drain_derived=lb.deregistration_delay is None,
        readiness_period=probes.readiness.period,
        readiness_failures=probes.readiness.failure_threshold,
        startup_window=probes.startup.period * probes.startup.failure_threshold,
        startup_budget=probes.startup.budget,
        replay_ttl=spec.replay.ttl,
        upstream_idle=upstream_idle,
        keep_alive=upstream_idle + lb.margin,
    )


def keep_alive_line(t: Timeouts) -> str:
    """Why the workload holds idle HTTP connections as long as it does."""
    return (
        f"workload HTTP keep-alive {fmt(t.keep_alive)} = {t.profile.label}'s idle pooled connection "
        f"{fmt(t.upstream_idle)} + margin {fmt(t.margin)}: the LB, not the pod, closes an idle connection"
    )


def hierarchy(t: Timeouts) -> list[str]:
    """The timeout hierarchy, outermost first, as it holds for this spec."""
    lines = []
    if t.profile.lifetime_setting and not t.profile.idle_setting:
        lines.append(f"LB lifetime cap {fmt(t.lifetime)} ({t.profile.lifetime_setting})")
    if not t.profile.idle_limit:
        lines.append(
            f"LB idle none ({t.profile.label} keeps an upgraded connection however long it is silent) "
            f"> heartbeat window {fmt(t.window)} > interval {fmt(t.interval)}"
        )
        lines.append(
            f"the heartbeat is what notices a dead peer; a proxy in front of {t.profile.label} needs an idle timeout "
            f"of at least {fmt(t.window + t.margin)}"
        )
        lines.append(keep_alive_line(t))
        return lines
    idle_note = "derived" if t.idle_derived else "set"
    lines.append(f"LB idle {fmt(t.idle)} ({idle_note}) > heartbeat window {fmt(t.window)} > interval {fmt(t.interval)}")
    lines.append(f"margin {fmt(t.idle - t.window)} (required {fmt(t.margin)})")
    lines.append(keep_alive_line(t))
    return lines


def timeline(t: Timeouts) -> list[tuple[int, str]]:
    """The shutdown timeline of one pod: seconds after deletion, and what happens."""
    events = [
        (0, "pod deleted: endpoints drop it, preStop starts and the pod turns unready"),
        (t.pre_stop, "preStop ends: SIGTERM, the drain starts (server_shutdown, batched Engine.IO closes)"),
        (t.drained_at, "drain complete: the workload exits 0"),
    ]
    if t.lb_drain is not None:
        events.append((t.lb_drain, f"{t.profile.label} stops holding the old connections ({t.profile.drain_setting})"))
    events.append((t.grace, "terminationGracePeriod ends: SIGKILL if still running"))
    return sorted(events, key=lambda e: e[0])
