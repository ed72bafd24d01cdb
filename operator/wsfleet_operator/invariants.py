"""The timing invariants I1..I15: what must hold between the derived timeouts, and why.

Each invariant is written once: an id, a one-line rule, a one-line rationale, and the CEL rule
with a message that names the numbers. That CEL goes into the CRD, so the API server refuses a
bad spec before the operator sees it; the operator and `wsfleet check` evaluate the same text
(cel.py); the rendered-output audit evaluates it again on the values read back out of the
rendered objects (render/audit.py); the docs' rule tables list the id, rule and rationale. What
can only be said of rendered objects (I9, I15) is a check in render/audit.py alone.

The CEL fragments below mirror timeouts.derive() for the values a spec may leave out, generated
from the providers' profiles (providers.PROFILES), so the provider defaults exist once; a test evaluates them against
derive() on random specs.

Pure: imports timeouts only.
"""

from __future__ import annotations

from dataclasses import dataclass

from wsfleet_common import contract
from wsfleet_operator.celfmt import to_format
from wsfleet_operator.providers import PROFILES
from wsfleet_operator.timeouts import SERVICE_CLIENT_IP_TTL_MAX


@dataclass(frozen=True)
class Rule:
    """One cross-field rule: what must hold, why, and the CEL that checks it.

    CEL messages are written as concatenations for readability and converted to the
    `format` form on construction (celfmt.py explains why the API server needs it).
    """

    id: str
    title: str
    rationale: str
    # (rule, messageExpression) pairs; `self` is .spec, or with `each` every item of that list field
    cel: tuple[tuple[str, str], ...] = ()
    # A list field of the spec (its name as the CRD spells it) whose items the CEL applies to, one
    # by one: the message can name the item, and the API server names its index.
    each: str | None = None
    # Where the rule can only be checked on rendered objects (the check is in render/audit.py).
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


_CEL_NEED_IDLE = f"{_CEL_WINDOW} + {_d('loadBalancer.margin')}"
_CEL_DRAINED = f"{_CEL_PRESTOP} + {_d('shutdown.drain')}"
_CEL_READINESS_NEED = f"(self.probes.readiness.failureThreshold + 1) * {_d('probes.readiness.period')}"
_CEL_STARTUP_WINDOW = f"self.probes.startup.failureThreshold * {_d('probes.startup.period')}"
# " (AWS ALB idle_timeout.timeout_seconds)": where the provider sets the idle timeout, for messages
_CEL_IDLE_SETTING = (
    "{"
    + ", ".join(
        f"'{k}': '" + (f" ({p.label} {p.idle_setting})" if p.idle_setting else "") + "'" for k, p in PROFILES.items()
    )
    + "}["
    + _CEL_PROFILE
    + "]"
)
_CEL_PROVIDER_LABEL = "{" + ", ".join(f"'{k}': '{p.label}'" for k, p in PROFILES.items()) + "}[" + _CEL_PROFILE + "]"


def _i11_cel() -> tuple[tuple[str, str], ...]:
    """I11 in CEL, generated from the PROFILES table: a provider's limits are written there once."""
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
                    f"'I11: affinity.mode clientIP is not supported by {p.label}; use cookie'",
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
        cel=(
            (
                f"{_CEL_IDLE} >= {_CEL_NEED_IDLE}",
                f"'I1: loadBalancer.idleTimeout ' + {_s(_CEL_IDLE)} + {_CEL_IDLE_SETTING} + ' must exceed the heartbeat window ' + "
                f"{_s(_CEL_WINDOW)} + ' (' + {_s(_d('heartbeat.interval'))} + ' interval + ' + "
                f"{_s(_d('heartbeat.timeout'))} + ' timeout) by the margin ' + {_s(_d('loadBalancer.margin'))} + "
                f"': need at least ' + {_s(_CEL_NEED_IDLE)}",
            ),
            (
                f"!({_CEL_PROFILE} in {_LIFETIME_CAP_PROFILES}) || "
                f"{_d('loadBalancer.maxConnectionLifetime')} >= {_CEL_NEED_IDLE}",
                f"'I1: loadBalancer.maxConnectionLifetime ' + {_s(_d('loadBalancer.maxConnectionLifetime'))} + "
                f"' is the ' + {_CEL_PROVIDER_LABEL} + ' lifetime cap of every WebSocket; it must cover the heartbeat "
                f"window ' + {_s(_CEL_WINDOW)} + ' plus the margin ' + {_s(_d('loadBalancer.margin'))} + "
                f"': need at least ' + {_s(_CEL_NEED_IDLE)}",
            ),
        ),
    ),
    Rule(
        "I2",
        "terminationGracePeriod >= preStop + drain + buffer.",
        "The kubelet sends SIGKILL at the end of the grace period, whatever the drain is doing.",
        cel=(
            (
                f"{_CEL_GRACE} >= {_CEL_DRAINED} + {_d('shutdown.buffer')}",
                f"'I2: shutdown.terminationGracePeriod ' + {_s(_CEL_GRACE)} + ' must cover preStop ' + "
                f"{_s(_CEL_PRESTOP)} + ' + drain ' + {_s(_d('shutdown.drain'))} + ' + buffer ' + "
                f"{_s(_d('shutdown.buffer'))} + ' = ' + {_s(f'{_CEL_DRAINED} + ' + _d('shutdown.buffer'))}",
            ),
        ),
    ),
    Rule(
        "I3",
        "preStop >= (readiness failureThreshold + 1) x readiness period.",
        "The kubelet marks the pod unready only after failureThreshold failed probes; the LB must follow "
        "before SIGTERM, or it sends reconnecting clients back to a pod that refuses them.",
        cel=(
            (
                f"{_CEL_PRESTOP} >= {_CEL_READINESS_NEED}",
                f"'I3: shutdown.preStop ' + {_s(_CEL_PRESTOP)} + ' must be at least (probes.readiness.failureThreshold ' + "
                f"string(self.probes.readiness.failureThreshold) + ' + 1) x probes.readiness.period ' + "
                f"{_s(_d('probes.readiness.period'))} + ' = ' + {_s(_CEL_READINESS_NEED)} + ': the kubelet marks the "
                "pod unready after failureThreshold failed probes, and the load balancer needs one more period to "
                "follow before SIGTERM'",
            ),
        ),
    ),
    Rule(
        "I4",
        "The LB's connection draining (ALB deregistration delay, GCE draining timeout) >= preStop + drain.",
        "Otherwise the LB closes a removed backend's sockets before the workload has moved its clients.",
        cel=(
            (
                f"!({_CEL_PROFILE} in {_DRAINING_PROFILES}) || {_CEL_LB_DRAIN} >= {_CEL_DRAINED}",
                f"'I4: loadBalancer.deregistrationDelay ' + {_s(_CEL_LB_DRAIN)} + ' must cover preStop ' + "
                f"{_s(_CEL_PRESTOP)} + ' + drain ' + {_s(_d('shutdown.drain'))} + ' = ' + {_s(_CEL_DRAINED)} + "
                "', or the load balancer cuts sockets before the workload has moved them'",
            ),
        ),
    ),
    Rule(
        "I5",
        "replicas.min >= disruption.minAvailable + 1, and replicas.max >= replicas.min.",
        "A PDB that allows no eviction deadlocks node drains; an inverted range breaks the HPA.",
        cel=(
            (
                "self.replicas.min >= self.disruption.minAvailable + 1",
                "'I5: replicas.min ' + string(self.replicas.min) + ' must be at least disruption.minAvailable ' + "
                "string(self.disruption.minAvailable) + ' + 1 = ' + string(self.disruption.minAvailable + 1) + "
                "', or a node drain can never evict a pod'",
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
        cel=(
            (
                "self.rollout.maxUnavailable == 0",
                "'I6: rollout.maxUnavailable ' + string(self.rollout.maxUnavailable) + ' must be 0: a rollout must "
                "not remove capacity before new pods are Ready, or their clients all reconnect at once'",
            ),
            (
                "self.rollout.maxSurge >= 1",
                "'I6: rollout.maxSurge ' + string(self.rollout.maxSurge) + ' must be at least 1, or with "
                "maxUnavailable 0 no rollout can progress'",
            ),
        ),
    ),
    Rule(
        "I7",
        "Readiness and liveness use different endpoints, and liveness never depends on Redis.",
        "A Redis outage should take pods out of rotation, not restart the whole fleet.",
        cel=(
            (
                "self.probes.liveness.path != self.probes.readiness.path",
                '"I7: probes.liveness.path \'" + self.probes.liveness.path + "\' must differ from '
                'probes.readiness.path: an unready pod must not be restarted"',
            ),
            (
                f"!(self.probes.liveness.path in {sorted(contract.REDIS_DEPENDENT_PATHS)})",
                '"I7: probes.liveness.path \'" + self.probes.liveness.path + "\' depends on Redis; a Redis outage '
                f"would restart every pod. Use '{contract.LIVE_PATH}'\"",
            ),
        ),
    ),
    Rule(
        "I8",
        "The startup window (failureThreshold x period) >= the declared startup budget.",
        "A slow start must not be killed by its own startup probe and loop in CrashLoopBackOff.",
        cel=(
            (
                f"{_CEL_STARTUP_WINDOW} >= {_d('probes.startup.budget')}",
                "'I8: the startup window probes.startup.failureThreshold ' + "
                f"string(self.probes.startup.failureThreshold) + ' x period ' + {_s(_d('probes.startup.period'))} + "
                f"' = ' + {_s(_CEL_STARTUP_WINDOW)} + ' must be at least probes.startup.budget ' + "
                f"{_s(_d('probes.startup.budget'))}",
            ),
        ),
    ),
    Rule(
        "I9",
        "The Deployment never sets replicas while the HPA owns scaling.",
        "Two writers of one field fight: every reconcile would reset the HPA's decision.",
        rendered_only=True,
    ),
    Rule(
        "I10",
        "The polling transport needs session affinity.",
        "Every HTTP long-polling request of one Engine.IO session must reach the pod that holds it.",
        cel=(
            (
                "!('polling' in self.transports) || self.affinity.mode != 'none'",
                "'I10: transports include polling but affinity.mode is none: every long-polling request of a "
                "session must reach the same pod. Use affinity.mode cookie or clientIP, or transports [websocket]'",
            ),
        ),
    ),
    Rule(
        "I11",
        "Every value is inside the load balancer's own limits and capabilities.",
        "A value the cloud API refuses fails at apply time in another controller, far from this resource.",
        cel=_i11_cel(),
    ),
    Rule(
        "I12",
        "Every probe's timeout is below its period.",
        "A probe that can outlast its period overlaps the next one and doubles the load on a struggling pod.",
        cel=tuple(
            (
                f"{_d(f'probes.{n}.timeout')} < {_d(f'probes.{n}.period')}",
                f"'I12: probes.{n}.timeout ' + self.probes.{n}.timeout + ' must be below probes.{n}.period ' + "
                f"self.probes.{n}.period + ', or probes overlap'",
            )
            for n in ("startup", "readiness", "liveness")
        ),
    ),
    Rule(
        "I13",
        "replay.ttl >= heartbeat window + drain.",
        "Clients of a crashed pod come back after a heartbeat window; drained clients over the drain window.",
        cel=(
            (
                f"{_d('replay.ttl')} >= {_CEL_WINDOW} + {_d('shutdown.drain')}",
                f"'I13: replay.ttl ' + {_s(_d('replay.ttl'))} + ' must cover the heartbeat window ' + "
                f"{_s(_CEL_WINDOW)} + ' + drain ' + {_s(_d('shutdown.drain'))} + ' = ' + "
                f"{_s(f'{_CEL_WINDOW} + ' + _d('shutdown.drain'))} + ': a client of a crashed pod notices only after "
                "the heartbeat window, and drained clients reconnect spread over the drain'",
            ),
        ),
    ),
    Rule(
        "I14",
        "maxConnectionLifetime >= the idle timeout.",
        "A lifetime cap below the idle timeout cuts connections the idle timeout was meant to keep.",
        cel=(
            (
                f"{_d('loadBalancer.maxConnectionLifetime')} >= {_CEL_IDLE}",
                f"'I14: loadBalancer.maxConnectionLifetime ' + {_s(_d('loadBalancer.maxConnectionLifetime'))} + "
                f"' must be at least the idle timeout ' + {_s(_CEL_IDLE)}",
            ),
        ),
    ),
    Rule(
        "I15",
        "The workload keeps an idle HTTP connection longer than the load balancer keeps its pooled ones.",
        "A pod that closes an idle connection first races the LB's next request on it, which then gets 502.",
        rendered_only=True,
    ),
)
