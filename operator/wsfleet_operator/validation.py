"""Parse a WebSocketService once, and check every cross-field rule.

Two families of rules: the timing invariants (I1..I14, invariants.py) and the
structural rules below (S1..S8), which say which fields only make sense
together. Both carry the CEL the CRD runs, so the API server and
``wsfleet check`` refuse the same specs.

Errors name the field and the value, in the spec's own camelCase paths, so a
user can find the line in their YAML.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from wsfleet_operator.invariants import RULES as TIMING_RULES
from wsfleet_operator.invariants import Rule, Violation
from wsfleet_operator.model import WebSocketService, WebSocketServiceSpec
from wsfleet_operator.timeouts import Timeouts, derive

RESERVED_ENV_PREFIX = "WSFLEET_"
TLS_PROVIDERS = ("nginx", "gce")


def _one(condition: bool, message: str) -> list[str]:
    return [message] if condition else []


def _s1(spec: WebSocketServiceSpec, t: Timeouts) -> list[str]:
    lb = spec.load_balancer
    return _one(
        lb.provider == "gateway" and lb.gateway is None,
        "S1: loadBalancer.provider 'gateway' needs loadBalancer.gateway.name (the Gateway the route attaches to)",
    )


def _s2(spec: WebSocketServiceSpec, t: Timeouts) -> list[str]:
    lb = spec.load_balancer
    return _one(
        lb.implementation != "generic" and lb.provider != "gateway",
        f"S2: loadBalancer.implementation {lb.implementation!r} only applies to provider 'gateway', "
        f"not {lb.provider!r}",
    )


def _s3(spec: WebSocketServiceSpec, t: Timeouts) -> list[str]:
    lb = spec.load_balancer
    return _one(
        lb.session_persistence and not (lb.provider == "gateway" and lb.implementation == "generic"),
        "S3: loadBalancer.sessionPersistence only applies to provider 'gateway' with implementation 'generic'; "
        "envoy and gke get affinity from their policy objects",
    )


def _s4(spec: WebSocketServiceSpec, t: Timeouts) -> list[str]:
    a = spec.autoscaling
    return _one(
        a.enabled and a.cpu == 0 and a.memory == 0 and a.connections_per_pod is None,
        "S4: autoscaling.enabled is true but cpu and memory are 0 and connectionsPerPod is unset: "
        "the HPA needs at least one target",
    )


def _s5(spec: WebSocketServiceSpec, t: Timeouts) -> list[str]:
    return _one(
        spec.port == spec.metrics_port,
        f"S5: port {spec.port} and metricsPort {spec.metrics_port} must differ",
    )


def _s6(spec: WebSocketServiceSpec, t: Timeouts) -> list[str]:
    tls = spec.load_balancer.tls
    if tls is None:
        return []
    out = _one(
        tls.secret_name is None and tls.issuer is None,
        "S6: loadBalancer.tls needs secretName or issuer",
    )
    out += _one(
        spec.load_balancer.provider not in TLS_PROVIDERS,
        f"S6: loadBalancer.tls is not used with provider {spec.load_balancer.provider!r}: "
        "ALB takes certificates from ACM, a Gateway terminates TLS on its listener",
    )
    out += _one(
        tls.issuer is not None and spec.load_balancer.host is None,
        "S6: loadBalancer.tls.issuer needs loadBalancer.host, the name the certificate is issued for",
    )
    return out


def _s7(spec: WebSocketServiceSpec, t: Timeouts) -> list[str]:
    return [
        f"S7: env {e.name!r} uses the reserved prefix {RESERVED_ENV_PREFIX}: the operator sets those from the spec"
        for e in spec.env
        if e.name.startswith(RESERVED_ENV_PREFIX)
    ]


def _s8(spec: WebSocketServiceSpec, t: Timeouts) -> list[str]:
    return [
        f"S8: env {e.name!r} needs exactly one of value and valueFrom"
        for e in spec.env
        if (e.value is None) == (e.value_from is None)
    ]


STRUCTURAL_RULES: tuple[Rule, ...] = (
    Rule(
        "S1",
        "Provider gateway names its Gateway.",
        "An HTTPRoute without a parentRef attaches to nothing.",
        _s1,
        cel=(
            (
                "self.loadBalancer.provider != 'gateway' || has(self.loadBalancer.gateway)",
                "'S1: loadBalancer.provider gateway needs loadBalancer.gateway.name'",
            ),
        ),
    ),
    Rule(
        "S2",
        "loadBalancer.implementation is only set with provider gateway.",
        "A silently ignored field misleads whoever reads the spec.",
        _s2,
        cel=(
            (
                "self.loadBalancer.implementation == 'generic' || self.loadBalancer.provider == 'gateway'",
                "'S2: loadBalancer.implementation ' + self.loadBalancer.implementation + "
                "' only applies to provider gateway, not ' + self.loadBalancer.provider",
            ),
        ),
    ),
    Rule(
        "S3",
        "sessionPersistence only with a generic Gateway.",
        "Envoy and GKE take affinity from their own policy objects.",
        _s3,
        cel=(
            (
                "!self.loadBalancer.sessionPersistence || (self.loadBalancer.provider == 'gateway' && "
                "self.loadBalancer.implementation == 'generic')",
                "'S3: loadBalancer.sessionPersistence only applies to provider gateway with implementation generic'",
            ),
        ),
    ),
    Rule(
        "S4",
        "An enabled HPA has at least one target.",
        "An HPA without metrics never scales.",
        _s4,
        cel=(
            (
                "!self.autoscaling.enabled || self.autoscaling.cpu > 0 || self.autoscaling.memory > 0 || "
                "has(self.autoscaling.connectionsPerPod)",
                "'S4: autoscaling.enabled needs cpu, memory or connectionsPerPod'",
            ),
        ),
    ),
    Rule(
        "S5",
        "port and metricsPort differ.",
        "Metrics must stay off the public port.",
        _s5,
        cel=(
            (
                "self.port != self.metricsPort",
                "'S5: port ' + string(self.port) + ' and metricsPort ' + string(self.metricsPort) + ' must differ'",
            ),
        ),
    ),
    Rule(
        "S6",
        "TLS names a certificate source, with a provider that terminates TLS from a Secret.",
        "A TLS block that nothing reads gives a false sense of encryption.",
        _s6,
        cel=(
            (
                "!has(self.loadBalancer.tls) || has(self.loadBalancer.tls.secretName) || "
                "has(self.loadBalancer.tls.issuer)",
                "'S6: loadBalancer.tls needs secretName or issuer'",
            ),
            (
                f"!has(self.loadBalancer.tls) || self.loadBalancer.provider in {list(TLS_PROVIDERS)}",
                "'S6: loadBalancer.tls is not used with provider ' + self.loadBalancer.provider",
            ),
            (
                "!has(self.loadBalancer.tls) || !has(self.loadBalancer.tls.issuer) || has(self.loadBalancer.host)",
                "'S6: loadBalancer.tls.issuer needs loadBalancer.host'",
            ),
        ),
    ),
    Rule(
        "S7",
        f"No extra env var uses the reserved {RESERVED_ENV_PREFIX} prefix.",
        "The workload's timing comes from the spec; an env override would desynchronise it from the LB.",
        _s7,
        cel=(
            (
                f"self.env.all(e, !e.name.startsWith('{RESERVED_ENV_PREFIX}'))",
                f"'S7: env names must not start with {RESERVED_ENV_PREFIX}'",
            ),
        ),
    ),
    Rule(
        "S8",
        "Each env var has exactly one of value and valueFrom.",
        "Kubernetes would silently prefer one of them.",
        _s8,
        cel=(
            (
                "self.env.all(e, has(e.value) != has(e.valueFrom))",
                "'S8: each env entry needs exactly one of value and valueFrom'",
            ),
        ),
    ),
)

RULES: tuple[Rule, ...] = TIMING_RULES + STRUCTURAL_RULES


def check(spec: WebSocketServiceSpec) -> list[Violation]:
    """Every broken rule, timing and structural, with messages naming the values."""
    t = derive(spec)
    return [Violation(rule.id, msg) for rule in RULES for msg in rule.check(spec, t)]


# ---------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SpecError(Exception):
    """A resource that can't be used. Each line names a field and its value."""

    source: str
    problems: tuple[str, ...]

    def __str__(self) -> str:
        return "\n".join(f"{self.source}: {p}" for p in self.problems)


def _drop_nulls(value: Any) -> Any:
    """Treat an explicit null as an absent field, as the API server does for non-nullable fields."""
    if isinstance(value, Mapping):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def _path(loc: tuple[int | str, ...], root: str) -> str:
    out = root
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _lookup(data: Any, loc: tuple[int | str, ...]) -> tuple[bool, Any]:
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return False, None
    return True, data


def describe(error: ValidationError, data: Any, root: str = "") -> list[str]:
    """One line per problem: field path, the offending value, and what was expected."""
    lines = []
    for err in error.errors(include_url=False):
        loc = tuple(err["loc"])
        path = _path(loc, root)
        found, value = _lookup(data, loc)
        if err["type"] == "extra_forbidden":
            lines.append(f"{path}: unknown field")
        elif err["type"] == "missing":
            lines.append(f"{path}: required field is missing")
        elif err["type"] == "value_error":
            # Our own validators (durations, uniqueness) already name the value.
            lines.append(f"{path}: {err['msg'].removeprefix('Value error, ')}")
        else:
            lines.append(f"{path}: {value!r}: {err['msg']}" if found else f"{path}: {err['msg']}")
    return lines


def parse_resource(doc: Any, source: str = "<input>") -> WebSocketService:
    """Parse one WebSocketService document, or raise SpecError naming every problem."""
    if not isinstance(doc, Mapping):
        raise SpecError(source, (f"expected a WebSocketService mapping, got {type(doc).__name__}",))
    data = _drop_nulls(doc)
    try:
        return WebSocketService.model_validate(data)
    except ValidationError as exc:
        raise SpecError(source, tuple(describe(exc, data))) from None


def parse_and_check(doc: Any, source: str = "<input>") -> WebSocketService:
    """Parse, then refuse the resource if any rule is broken."""
    wss = parse_resource(doc, source)
    violations = check(wss.spec)
    if violations:
        raise SpecError(source, tuple(f"spec: {v.message}" for v in violations))
    return wss
