"""The timing invariants I1..I14: what must hold between the derived timeouts, and why.

Each invariant has an id, a one-line rationale, a Python check whose message
names the numbers, and the same rule in CEL for the CRD, so the API server
refuses a bad spec before the operator ever sees it. A unit test evaluates both
on random specs and at every boundary, and requires them to agree.

Pure: imports the model and timeouts only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from wsfleet_operator.celfmt import to_format
from wsfleet_operator.model import WebSocketServiceSpec
from wsfleet_operator.timeouts import PROFILES, SERVICE_CLIENT_IP_TTL_MAX, Timeouts, derive, fmt
from wsfleet_workload import contract

# ---------------------------------------------------------------------------

Check = Callable[[WebSocketServiceSpec, Timeouts], list[str]]


@dataclass(frozen=True)
class Rule:
    """One invariant: what must hold, why, the Python check and the equivalent CEL.

    CEL messages are written as concatenations for readability and converted to the
    `format` form on construction (celfmt.py explains why the API server needs it).
    """

    id: str
    title: str
    rationale: str
    check: Check
    # (rule, messageExpression) pairs evaluated on .spec by the API server.
    cel: tuple[tuple[str, str], ...] = ()
    # Where the rule can only be checked on rendered objects (see render/audit.py).
    rendered_only: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "cel", tuple((rule, to_format(message)) for rule, message in self.cel))


@dataclass(frozen=True)
class Violation:
    rule: str
    message: str

    def __str__(self) -> str:
        return self.message


# CEL fragments over `self` = .spec, mirroring derive(). Generated from PROFILES, so the
# provider defaults exist once.
def _d(path: str) -> str:
    return f"duration(self.{path}).getSeconds()"


def _provider_map(values: dict[str, int]) -> str:
    return "{" + ", ".join(f"'{k}': {v}" for k, v in values.items()) + "}"


_CEL_PROFILE = (
    "(self.loadBalancer.provider == 'gateway' ? 'gateway/' + self.loadBalancer.implementation "
    ": self.loadBalancer.provider)"
)
_CEL_WINDOW = f"({_d('heartbeat.interval')} + {_d('heartbeat.timeout')})"
_CEL_IDLE = (
    f"(has(self.loadBalancer.idleTimeout) ? {_d('loadBalancer.idleTimeout')} "
    f": {_CEL_WINDOW} + {_d('loadBalancer.margin')})"
)
_CEL_PRESTOP = (
    f"(has(self.shutdown.preStop) ? {_d('shutdown.preStop')} "
    f": {_provider_map({k: p.pre_stop for k, p in PROFILES.items()})}[{_CEL_PROFILE}])"
)
_CEL_GRACE = (
    f"(has(self.shutdown.terminationGracePeriod) ? {_d('shutdown.terminationGracePeriod')} "
    f": {_CEL_PRESTOP} + {_d('shutdown.drain')} + {_d('shutdown.buffer')})"
)
_CEL_LB_DRAIN = (
    f"(has(self.loadBalancer.deregistrationDelay) ? {_d('loadBalancer.deregistrationDelay')} "
    f": {_CEL_PRESTOP} + {_d('shutdown.drain')} + {_d('shutdown.buffer')})"
)
_DRAINING_PROFILES = [k for k, p in PROFILES.items() if p.drain_setting]
_LIFETIME_CAP_PROFILES = [k for k, p in PROFILES.items() if p.lifetime_setting and not p.idle_setting]


def _s(expr: str) -> str:
    """A CEL integer expression rendered as '<n>s' inside a messageExpression."""
    return f"string({expr}) + 's'"


def _idle_source(t: Timeouts) -> str:
    where = f" ({t.profile.label} {t.profile.idle_setting})" if t.profile.idle_setting else ""
    return f"loadBalancer.idleTimeout {fmt(t.idle)}{where}"


def _check_i1(spec: WebSocketServiceSpec, t: Timeouts) -> list[str]:
    need = t.window + t.margin
    out = []
    if t.idle < need:
        out.append(
            f"I1: {_idle_source(t)} must exceed the heartbeat window {fmt(t.window)} "
            f"({fmt(t.interval)} interval + {fmt(t.timeout)} timeout) by the margin {fmt(t.margin)}: "
            f"need at least {fmt(need)}"
        )
    if t.profile.key in _LIFETIME_CAP_PROFILES and t.lifetime < need:
        out.append(
            f"I1: loadBalancer.maxConnectionLifetime {fmt(t.lifetime)} is {t.profile.label} "
            f"{t.profile.lifetime_setting}, which caps every WebSocket's lifetime; it must cover the heartbeat "
            f"window {fmt(t.window)} plus the margin {fmt(t.margin)}: need at least {fmt(need)}"
        )
    return out


def _check_i2(spec: WebSocketServiceSpec, t: Timeouts) -> list[str]:
    need = t.pre_stop + t.drain + t.buffer
    if t.grace >= need:
        return []
    return [
        f"I2: shutdown.terminationGracePeriod {fmt(t.grace)} must cover preStop {fmt(t.pre_stop)} + drain "
        f"{fmt(t.drain)} + buffer {fmt(t.buffer)} = {fmt(need)}"
    ]


def _check_i3(spec: WebSocketServiceSpec, t: Timeouts) -> list[str]:
    need = (t.readiness_failures + 1) * t.readiness_period
    if t.pre_stop >= need:
        return []
    return [
        f"I3: shutdown.preStop {fmt(t.pre_stop)} must be at least (probes.readiness.failureThreshold "
        f"{t.readiness_failures} + 1) x probes.readiness.period {fmt(t.readiness_period)} = {fmt(need)}: the "
        "kubelet marks the pod unready after failureThreshold failed probes, and the load balancer needs one "
        "more period to follow before SIGTERM"
    ]


def _check_i4(spec: WebSocketServiceSpec, t: Timeouts) -> list[str]:
    if t.lb_drain is None:
        return []
    need = t.pre_stop + t.drain
    if t.lb_drain >= need:
        return []
    return [
        f"I4: loadBalancer.deregistrationDelay {fmt(t.lb_drain)} ({t.profile.label} {t.profile.drain_setting}) "
        f"must cover preStop {fmt(t.pre_stop)} + drain {fmt(t.drain)} = {fmt(need)}, or the load balancer "
        "cuts sockets before the workload has moved them"
    ]


def _check_i5(spec: WebSocketServiceSpec, t: Timeouts) -> list[str]:
    r, pdb = spec.replicas, spec.disruption
    out = []
    if r.min < pdb.min_available + 1:
        out.append(
            f"I5: replicas.min {r.min} must be at least disruption.minAvailable {pdb.min_available} + 1 = "
            f"{pdb.min_available + 1}, or a node drain can never evict a pod"
        )
    if r.max < r.min:
        out.append(f"I5: replicas.max {r.max} must be at least replicas.min {r.min}")
    return out


def _check_i6(spec: WebSocketServiceSpec, t: Timeouts) -> list[str]:
    ro = spec.rollout
    out = []
    if ro.max_unavailable != 0:
        out.append(
            f"I6: rollout.maxUnavailable {ro.max_unavailable} must be 0: a rollout must not remove capacity "
            "before new pods are Ready, or their clients all reconnect at once"
        )
    if ro.max_surge < 1:
        out.append(
            f"I6: rollout.maxSurge {ro.max_surge} must be at least 1, or with maxUnavailable 0 no rollout can progress"
        )
    return out


def _check_i7(spec: WebSocketServiceSpec, t: Timeouts) -> list[str]:
    ready, live = spec.probes.readiness.path, spec.probes.liveness.path
    out = []
    if ready == live:
        out.append(
            f"I7: probes.liveness.path {live!r} must differ from probes.readiness.path {ready!r}: an unready pod "
            "must not be restarted"
        )
    if live in contract.REDIS_DEPENDENT_PATHS:
        out.append(
            f"I7: probes.liveness.path {live!r} depends on Redis; a Redis outage would restart every pod. "
            f"Use {contract.LIVE_PATH!r}"
        )
    return out


def _check_i8(spec: WebSocketServiceSpec, t: Timeouts) -> list[str]:
    st = spec.probes.startup
    if t.startup_window >= t.startup_budget:
        return []
    return [
        f"I8: the startup window probes.startup.failureThreshold {st.failure_threshold} x period {fmt(st.period)} "
        f"= {fmt(t.startup_window)} must be at least probes.startup.budget {fmt(t.startup_budget)}"
    ]


def _check_i10(spec: WebSocketServiceSpec, t: Timeouts) -> list[str]:
    if "polling" in spec.transports and spec.affinity.mode == "none":
        return [
            "I10: transports include 'polling' but affinity.mode is 'none': every long-polling request of a "
            "session must reach the same pod. Use affinity.mode cookie or clientIP, or transports [websocket]"
        ]
    return []


def _check_i11(spec: WebSocketServiceSpec, t: Timeouts) -> list[str]:
    p, aff = t.profile, spec.affinity
    out = []
    if p.idle_max is not None and t.idle > p.idle_max:
        out.append(f"I11: loadBalancer.idleTimeout {fmt(t.idle)} exceeds the {p.label} maximum {fmt(p.idle_max)}")
    if p.drain_max is not None and t.lb_drain is not None and t.lb_drain > p.drain_max:
        out.append(
            f"I11: loadBalancer.deregistrationDelay {fmt(t.lb_drain)} exceeds the {p.label} maximum {fmt(p.drain_max)}"
        )
    if not p.client_ip_affinity and aff.mode == "clientIP":
        out.append(f"I11: affinity.mode 'clientIP' is not supported by {p.label}; use cookie")
    if p.cookie_ttl_max is not None and aff.mode == "cookie" and aff.ttl > p.cookie_ttl_max:
        out.append(f"I11: affinity.ttl {fmt(aff.ttl)} exceeds the {p.label} maximum {fmt(p.cookie_ttl_max)}")
    if p.key == "none" and aff.mode == "clientIP" and aff.ttl > SERVICE_CLIENT_IP_TTL_MAX:
        out.append(
            f"I11: affinity.ttl {fmt(aff.ttl)} exceeds the Service sessionAffinity maximum "
            f"{fmt(SERVICE_CLIENT_IP_TTL_MAX)}"
        )
    return out


def _check_i12(spec: WebSocketServiceSpec, t: Timeouts) -> list[str]:
    out = []
    for name in ("startup", "readiness", "liveness"):
        probe = getattr(spec.probes, name)
        if probe.timeout >= probe.period:
            out.append(
                f"I12: probes.{name}.timeout {fmt(probe.timeout)} must be below probes.{name}.period "
                f"{fmt(probe.period)}, or probes overlap"
            )
    return out


def _check_i13(spec: WebSocketServiceSpec, t: Timeouts) -> list[str]:
    need = t.window + t.drain
    if t.replay_ttl >= need:
        return []
    return [
        f"I13: replay.ttl {fmt(t.replay_ttl)} must cover the heartbeat window {fmt(t.window)} + drain "
        f"{fmt(t.drain)} = {fmt(need)}: a client of a crashed pod notices only after the heartbeat window, and "
        "drained clients reconnect spread over the drain"
    ]


def _check_i14(spec: WebSocketServiceSpec, t: Timeouts) -> list[str]:
    if t.lifetime >= t.idle:
        return []
    return [
        f"I14: loadBalancer.maxConnectionLifetime {fmt(t.lifetime)} must be at least the idle timeout "
        f"{fmt(t.idle)}; a shorter cap makes the idle timeout meaningless"
    ]


def _no_check(spec: WebSocketServiceSpec, t: Timeouts) -> list[str]:
    return []


def _i11_cel() -> tuple[tuple[str, str], ...]:
    """I11 in CEL, generated from the same PROFILES table the Python check reads."""
    rules: list[tuple[str, str]] = []
    for key, p in PROFILES.items():
        unless = f"{_CEL_PROFILE} != '{key}' || "
        if p.idle_max is not None:
            rules.append(
                (
                    f"{unless}{_CEL_IDLE} <= {p.idle_max}",
                    f"'I11: loadBalancer.idleTimeout ' + {_s(_CEL_IDLE)} + ' exceeds the {p.label} maximum {p.idle_max}s'",
                )
            )
        if p.drain_max is not None:
            rules.append(
                (
                    f"{unless}{_CEL_LB_DRAIN} <= {p.drain_max}",
                    f"'I11: loadBalancer.deregistrationDelay ' + {_s(_CEL_LB_DRAIN)} + "
                    f"' exceeds the {p.label} maximum {p.drain_max}s'",
                )
            )
        if not p.client_ip_affinity:
            rules.append(
                (
                    f"{unless}self.affinity.mode != 'clientIP'",
                    f"'I11: affinity.mode clientIP is not supported by {p.label}'",
                )
            )
        if p.cookie_ttl_max is not None:
            rules.append(
                (
                    f"{unless}self.affinity.mode != 'cookie' || {_d('affinity.ttl')} <= {p.cookie_ttl_max}",
                    f"'I11: affinity.ttl ' + {_s(_d('affinity.ttl'))} + ' exceeds the {p.label} maximum {p.cookie_ttl_max}s'",
                )
            )
    rules.append(
        (
            f"!({_CEL_PROFILE} == 'none' && self.affinity.mode == 'clientIP') || {_d('affinity.ttl')} <= "
            f"{SERVICE_CLIENT_IP_TTL_MAX}",
            f"'I11: affinity.ttl ' + {_s(_d('affinity.ttl'))} + ' exceeds the Service sessionAffinity maximum "
            f"{SERVICE_CLIENT_IP_TTL_MAX}s'",
        )
    )
    return tuple(rules)


RULES: tuple[Rule, ...] = (
    Rule(
        "I1",
        "The load balancer idle timeout (or lifetime cap) is at least the heartbeat window + margin.",
        "Engine.IO sends a ping every interval; a silent socket must outlive a full window, or the LB cuts it.",
        _check_i1,
        cel=(
            (
                f"{_CEL_IDLE} >= {_CEL_WINDOW} + {_d('loadBalancer.margin')}",
                f"'I1: loadBalancer.idleTimeout ' + {_s(_CEL_IDLE)} + ' must exceed the heartbeat window ' + "
                f"{_s(_CEL_WINDOW)} + ' by the margin ' + {_s(_d('loadBalancer.margin'))}",
            ),
            (
                f"!({_CEL_PROFILE} in {_LIFETIME_CAP_PROFILES}) || "
                f"{_d('loadBalancer.maxConnectionLifetime')} >= {_CEL_WINDOW} + {_d('loadBalancer.margin')}",
                f"'I1: loadBalancer.maxConnectionLifetime ' + {_s(_d('loadBalancer.maxConnectionLifetime'))} + "
                f"' caps every WebSocket here; it must cover the heartbeat window ' + {_s(_CEL_WINDOW)} + "
                f"' plus the margin ' + {_s(_d('loadBalancer.margin'))}",
            ),
        ),
    ),
    Rule(
        "I2",
        "terminationGracePeriod >= preStop + drain + buffer.",
        "The kubelet sends SIGKILL at the end of the grace period, whatever the drain is doing.",
        _check_i2,
        cel=(
            (
                f"{_CEL_GRACE} >= {_CEL_PRESTOP} + {_d('shutdown.drain')} + {_d('shutdown.buffer')}",
                f"'I2: shutdown.terminationGracePeriod ' + {_s(_CEL_GRACE)} + ' must cover preStop ' + "
                f"{_s(_CEL_PRESTOP)} + ' + drain ' + {_s(_d('shutdown.drain'))} + ' + buffer ' + "
                f"{_s(_d('shutdown.buffer'))}",
            ),
        ),
    ),
    Rule(
        "I3",
        "preStop >= (readiness failureThreshold + 1) x readiness period.",
        "The kubelet marks the pod unready only after failureThreshold failed probes; the LB must follow "
        "before SIGTERM, or it sends reconnecting clients back to a pod that refuses them.",
        _check_i3,
        cel=(
            (
                f"{_CEL_PRESTOP} >= (self.probes.readiness.failureThreshold + 1) * {_d('probes.readiness.period')}",
                f"'I3: shutdown.preStop ' + {_s(_CEL_PRESTOP)} + ' must be at least (probes.readiness.failureThreshold ' + "
                f"string(self.probes.readiness.failureThreshold) + ' + 1) x probes.readiness.period ' + "
                f"{_s(_d('probes.readiness.period'))}",
            ),
        ),
    ),
    Rule(
        "I4",
        "The LB's connection draining (ALB deregistration delay, GCE draining timeout) >= preStop + drain.",
        "Otherwise the LB closes a removed backend's sockets before the workload has moved its clients.",
        _check_i4,
        cel=(
            (
                f"!({_CEL_PROFILE} in {_DRAINING_PROFILES}) || "
                f"{_CEL_LB_DRAIN} >= {_CEL_PRESTOP} + {_d('shutdown.drain')}",
                f"'I4: loadBalancer.deregistrationDelay ' + {_s(_CEL_LB_DRAIN)} + ' must cover preStop ' + "
                f"{_s(_CEL_PRESTOP)} + ' + drain ' + {_s(_d('shutdown.drain'))}",
            ),
        ),
    ),
    Rule(
        "I5",
        "replicas.min >= disruption.minAvailable + 1, and replicas.max >= replicas.min.",
        "A PDB that allows no eviction deadlocks node drains; an inverted range breaks the HPA.",
        _check_i5,
        cel=(
            (
                "self.replicas.min >= self.disruption.minAvailable + 1",
                "'I5: replicas.min ' + string(self.replicas.min) + ' must be at least disruption.minAvailable ' + "
                "string(self.disruption.minAvailable) + ' + 1'",
            ),
            (
                "self.replicas.max >= self.replicas.min",
                "'I5: replicas.max ' + string(self.replicas.max) + ' must be at least replicas.min ' + "
                "string(self.replicas.min)",
            ),
        ),
    ),
    Rule(
        "I6",
        "The rolling update uses maxUnavailable 0 and maxSurge >= 1.",
        "Capacity must never drop during a rollout, or every client of a removed pod reconnects at once.",
        _check_i6,
        cel=(
            (
                "self.rollout.maxUnavailable == 0",
                "'I6: rollout.maxUnavailable ' + string(self.rollout.maxUnavailable) + ' must be 0'",
            ),
            (
                "self.rollout.maxSurge >= 1",
                "'I6: rollout.maxSurge ' + string(self.rollout.maxSurge) + ' must be at least 1'",
            ),
        ),
    ),
    Rule(
        "I7",
        "Readiness and liveness use different endpoints, and liveness never depends on Redis.",
        "A Redis outage should take pods out of rotation, not restart the whole fleet.",
        _check_i7,
        cel=(
            (
                "self.probes.liveness.path != self.probes.readiness.path",
                "'I7: probes.liveness.path ' + self.probes.liveness.path + ' must differ from probes.readiness.path'",
            ),
            (
                f"!(self.probes.liveness.path in {sorted(contract.REDIS_DEPENDENT_PATHS)})",
                "'I7: probes.liveness.path ' + self.probes.liveness.path + ' depends on Redis'",
            ),
        ),
    ),
    Rule(
        "I8",
        "The startup window (failureThreshold x period) >= the declared startup budget.",
        "A slow start must not be killed by its own startup probe and loop in CrashLoopBackOff.",
        _check_i8,
        cel=(
            (
                f"self.probes.startup.failureThreshold * {_d('probes.startup.period')} >= "
                f"{_d('probes.startup.budget')}",
                f"'I8: the startup window ' + {_s('self.probes.startup.failureThreshold * ' + _d('probes.startup.period'))}"
                f" + ' must be at least probes.startup.budget ' + {_s(_d('probes.startup.budget'))}",
            ),
        ),
    ),
    Rule(
        "I9",
        "The Deployment never sets replicas while the HPA owns scaling.",
        "Two writers of one field fight: every reconcile would reset the HPA's decision.",
        _no_check,
        rendered_only=True,
    ),
    Rule(
        "I10",
        "The polling transport needs session affinity.",
        "Every HTTP long-polling request of one Engine.IO session must reach the pod that holds it.",
        _check_i10,
        cel=(
            (
                "!('polling' in self.transports) || self.affinity.mode != 'none'",
                "'I10: transports include polling but affinity.mode is none'",
            ),
        ),
    ),
    Rule(
        "I11",
        "Every value is inside the load balancer's own limits and capabilities.",
        "A value the cloud API refuses fails at apply time in another controller, far from this resource.",
        _check_i11,
        cel=_i11_cel(),
    ),
    Rule(
        "I12",
        "Every probe's timeout is below its period.",
        "A probe that can outlast its period overlaps the next one and doubles the load on a struggling pod.",
        _check_i12,
        cel=tuple(
            (
                f"{_d(f'probes.{n}.timeout')} < {_d(f'probes.{n}.period')}",
                f"'I12: probes.{n}.timeout ' + self.probes.{n}.timeout + ' must be below probes.{n}.period ' + "
                f"self.probes.{n}.period",
            )
            for n in ("startup", "readiness", "liveness")
        ),
    ),
    Rule(
        "I13",
        "replay.ttl >= heartbeat window + drain.",
        "Clients of a crashed pod come back after a heartbeat window; drained clients over the drain window.",
        _check_i13,
        cel=(
            (
                f"{_d('replay.ttl')} >= {_CEL_WINDOW} + {_d('shutdown.drain')}",
                f"'I13: replay.ttl ' + {_s(_d('replay.ttl'))} + ' must cover the heartbeat window ' + "
                f"{_s(_CEL_WINDOW)} + ' + drain ' + {_s(_d('shutdown.drain'))}",
            ),
        ),
    ),
    Rule(
        "I14",
        "maxConnectionLifetime >= the idle timeout.",
        "A lifetime cap below the idle timeout cuts connections the idle timeout was meant to keep.",
        _check_i14,
        cel=(
            (
                f"{_d('loadBalancer.maxConnectionLifetime')} >= {_CEL_IDLE}",
                f"'I14: loadBalancer.maxConnectionLifetime ' + {_s(_d('loadBalancer.maxConnectionLifetime'))} + "
                f"' must be at least the idle timeout ' + {_s(_CEL_IDLE)}",
            ),
        ),
    ),
)


def check(spec: WebSocketServiceSpec) -> list[Violation]:
    """Every broken invariant, with a message naming the values. Empty: the spec is sound."""
    t = derive(spec)
    return [Violation(rule.id, msg) for rule in RULES for msg in rule.check(spec, t)]
