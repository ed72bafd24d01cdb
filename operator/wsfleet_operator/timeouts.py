"""Derive every timeout from the spec, and explain the result.

A WebSocket fleet fails quietly when its timeouts disagree: a load balancer idle
timeout under the heartbeat window cuts idle sockets every minute, a grace
period shorter than preStop + drain kills sockets mid-drain, and a load balancer
that drops a backend's connections before the drain ends loses messages. This
module is the one place that knows those relations.

The invariants over these values (I1..I15), each written once in CEL, live in
invariants.py.

Pure: imports only the model and the providers' timing profiles.
"""

from __future__ import annotations

from dataclasses import dataclass

from wsfleet_operator.model import WebSocketServiceSpec
from wsfleet_operator.providers import LbProfile, provider_for


def fmt(seconds: int) -> str:
    """Seconds as messages show them: plain seconds, so two numbers compare at a glance."""
    return f"{seconds}s"


# Service.spec.sessionAffinityConfig.clientIP.timeoutSeconds is capped at one day.
SERVICE_CLIENT_IP_TTL_MAX = 86400


def profile(spec: WebSocketServiceSpec) -> LbProfile:
    return provider_for(spec).profile


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
