"""Parse a WebSocketService once, and check every cross-field rule.

Two families of rules: the timing invariants (I1..I15, invariants.py) and the
structural rules below (S1..S8), which say which fields only make sense
together. Each is written once, as the CEL the CRD runs; ``check`` evaluates that
same CEL (cel.py), so the API server, the operator and ``wsfleet check`` refuse
the same specs with the same words.

Errors name the field and the value, in the spec's own camelCase paths, so a
user can find the line in their YAML.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from wsfleet_operator import cel
from wsfleet_operator.invariants import RULES as TIMING_RULES
from wsfleet_operator.invariants import Rule, Violation
from wsfleet_operator.model import WebSocketService, WebSocketServiceSpec

RESERVED_ENV_PREFIX = "WSFLEET_"
TLS_PROVIDERS = ("nginx", "gce")


STRUCTURAL_RULES: tuple[Rule, ...] = (
    Rule(
        "S1",
        "Provider gateway names its Gateway.",
        "An HTTPRoute without a parentRef attaches to nothing.",
        cel=(
            (
                "self.loadBalancer.provider != 'gateway' || has(self.loadBalancer.gateway)",
                "\"S1: loadBalancer.provider 'gateway' needs loadBalancer.gateway.name (the Gateway the route "
                'attaches to)"',
            ),
        ),
    ),
    Rule(
        "S2",
        "loadBalancer.implementation is only set with provider gateway.",
        "A silently ignored field misleads whoever reads the spec.",
        cel=(
            (
                "self.loadBalancer.implementation == 'generic' || self.loadBalancer.provider == 'gateway'",
                '"S2: loadBalancer.implementation \'" + self.loadBalancer.implementation + '
                "\"' only applies to provider 'gateway', not '\" + self.loadBalancer.provider + \"'\"",
            ),
        ),
    ),
    Rule(
        "S3",
        "sessionPersistence only with a generic Gateway.",
        "Envoy and GKE take affinity from their own policy objects.",
        cel=(
            (
                "!self.loadBalancer.sessionPersistence || (self.loadBalancer.provider == 'gateway' && "
                "self.loadBalancer.implementation == 'generic')",
                "\"S3: loadBalancer.sessionPersistence only applies to provider 'gateway' with implementation "
                "'generic'; envoy and gke get affinity from their policy objects\"",
            ),
        ),
    ),
    Rule(
        "S4",
        "An enabled HPA has at least one target.",
        "An HPA without metrics never scales.",
        cel=(
            (
                "!self.autoscaling.enabled || self.autoscaling.cpu > 0 || self.autoscaling.memory > 0 || "
                "has(self.autoscaling.connectionsPerPod)",
                "'S4: autoscaling.enabled is true but cpu and memory are 0 and connectionsPerPod is unset: the HPA "
                "needs at least one target'",
            ),
        ),
    ),
    Rule(
        "S5",
        "port and metricsPort differ.",
        "Metrics must stay off the public port.",
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
        cel=(
            (
                "!has(self.loadBalancer.tls) || has(self.loadBalancer.tls.secretName) || "
                "has(self.loadBalancer.tls.issuer)",
                "'S6: loadBalancer.tls needs secretName or issuer'",
            ),
            (
                f"!has(self.loadBalancer.tls) || self.loadBalancer.provider in {list(TLS_PROVIDERS)}",
                '"S6: loadBalancer.tls is not used with provider \'" + self.loadBalancer.provider + "\': ALB takes '
                'certificates from ACM, a Gateway terminates TLS on its listener"',
            ),
            (
                "!has(self.loadBalancer.tls) || !has(self.loadBalancer.tls.issuer) || has(self.loadBalancer.host)",
                "'S6: loadBalancer.tls.issuer needs loadBalancer.host, the name the certificate is issued for'",
            ),
        ),
    ),
    Rule(
        "S7",
        f"No extra env var uses the reserved {RESERVED_ENV_PREFIX} prefix.",
        "The workload's timing comes from the spec; an env override would desynchronise it from the LB.",
        cel=(
            (
                f"!self.name.startsWith('{RESERVED_ENV_PREFIX}')",
                f'"S7: env \'" + self.name + "\' uses the reserved prefix {RESERVED_ENV_PREFIX}: the operator sets '
                'those from the spec"',
            ),
        ),
        each="env",
    ),
    Rule(
        "S8",
        "Each env var has exactly one of value and valueFrom.",
        "Kubernetes would silently prefer one of them.",
        cel=(
            (
                "has(self.value) != has(self.valueFrom)",
                '"S8: env \'" + self.name + "\' needs exactly one of value and valueFrom"',
            ),
        ),
        each="env",
    ),
)

RULES: tuple[Rule, ...] = TIMING_RULES + STRUCTURAL_RULES


def check(spec: WebSocketServiceSpec) -> list[Violation]:
    """Every broken rule, timing and structural, with messages naming the values: the CRD's own
    CEL, evaluated on the spec with its defaults (cel.py)."""
    return list(_check(json.dumps(spec_document(spec), sort_keys=True)))


def spec_document(spec: WebSocketServiceSpec) -> dict[str, Any]:
    """The .spec as the API server holds it (JSON, defaults applied, absent fields absent): what
    the rules' CEL reads as `self`."""
    return spec.model_dump(by_alias=True, mode="json", exclude_none=True)


# One evaluation of every rule costs ~30 ms of cel-python; the operator checks each resource on
# every reconcile (a resync every 30 s, child events), nearly always the same spec. Keyed by the
# spec itself, so a changed spec is always checked afresh.
@functools.lru_cache(maxsize=1024)
def _check(spec_json: str) -> tuple[Violation, ...]:
    return tuple(broken(json.loads(spec_json)))


def broken(doc: Mapping[str, Any], rules: tuple[Rule, ...] = RULES) -> list[Violation]:
    """The rules whose CEL fails on a .spec object as JSON (the API server's view of it)."""
    out = []
    for rule in rules:
        for item in doc.get(rule.each, []) if rule.each else [doc]:
            out += [Violation(rule.id, msg) for msg in cel.failures(rule.cel, item)]
    return out


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
