"""The rules (I1-I15, S1-S8): examples, properties, and agreement with the CRD.

Each rule is written once, in CEL (invariants.py, validation.py); the checker evaluates it on
the model's dump of the spec (cel.py). Matrix:
- each rule id has a spec that breaks it, and its message names the numbers;
- derived values (idle timeout, preStop, grace, deregistration delay) never break a rule, and
  the CEL fragments that derive them agree with timeouts.derive(), which the renderers use;
- property: every spec the checker accepts renders manifests that pass render.audit,
  which reads the numbers back out of the manifests and runs the same rules on them;
- property: every spec it refuses yields messages that each start with a known rule id;
- property: for every spec, the set of broken rules is the same whether computed by the
  checker or from the generated CRD as the API server holds it (its rules, at spec and item
  level, on the spec after the CRD's own defaults are applied).
"""

from __future__ import annotations

import functools
from collections import Counter
from typing import Any, get_args

import celpy
import pytest
from hypothesis import HealthCheck, event, given, settings

from tests.unit.strategies import accepted_specs, broken_rules, raw_specs, resource, single_rule_specs
from wsfleet_operator import cel, crd, invariants
from wsfleet_operator.model import PROVIDERS, GatewayImplementation, WebSocketServiceSpec
from wsfleet_operator.providers import PROFILES, REGISTRY
from wsfleet_operator.render import audit, render_all
from wsfleet_operator.timeouts import derive
from wsfleet_operator.validation import RULES, check, parse_resource, spec_document

RULE_IDS = {r.id for r in RULES}


def spec(raw: dict[str, Any]) -> WebSocketServiceSpec:
    return parse_resource(resource(raw)).spec


# (rule id, spec, substrings the message must contain)
BROKEN: list[tuple[str, dict[str, Any], list[str]]] = [
    ("I1", {"loadBalancer": {"provider": "nginx", "idleTimeout": "60s"}}, ["60s", "50s", "25s interval", "30s", "80s"]),
    (
        "I1",
        {"loadBalancer": {"provider": "gce", "maxConnectionLifetime": "30s"}},
        ["maxConnectionLifetime 30s", "lifetime", "80s"],
    ),
    ("I2", {"shutdown": {"terminationGracePeriod": "20s"}}, ["20s", "preStop 10s", "drain 30s", "buffer 5s", "45s"]),
    ("I3", {"shutdown": {"preStop": "6s"}}, ["preStop 6s", "failureThreshold 2", "period 3s", "9s"]),
    # the kubelet needs failureThreshold failed probes: a higher threshold needs a longer preStop
    ("I3", {"probes": {"readiness": {"failureThreshold": 4}}}, ["preStop 10s", "failureThreshold 4", "3s", "15s"]),
    (
        "I4",
        {"loadBalancer": {"provider": "alb", "deregistrationDelay": "40s"}},
        ["deregistrationDelay 40s", "preStop 30s", "drain 30s", "60s"],
    ),
    ("I5", {"replicas": {"min": 2}}, ["replicas.min 2", "minAvailable 2", "3"]),
    ("I5", {"replicas": {"min": 5, "max": 4}}, ["replicas.max 4", "replicas.min 5"]),
    ("I6", {"rollout": {"maxUnavailable": 1}}, ["maxUnavailable 1"]),
    ("I6", {"rollout": {"maxSurge": 0}}, ["maxSurge 0"]),
    ("I7", {"probes": {"liveness": {"path": "/health/ready"}}}, ["/health/ready", "Redis"]),
    ("I7", {"probes": {"liveness": {"path": "/x"}, "readiness": {"path": "/x"}}}, ["'/x'", "differ"]),
    ("I8", {"probes": {"startup": {"failureThreshold": 3, "budget": "60s"}}}, ["3 x period 5s", "15s", "60s"]),
    ("I10", {"affinity": {"mode": "none"}}, ["polling", "none"]),
    ("I11", {"loadBalancer": {"provider": "alb", "idleTimeout": "4001s"}}, ["4001s", "4000s"]),
    ("I11", {"loadBalancer": {"provider": "alb"}, "affinity": {"mode": "clientIP"}}, ["clientIP", "AWS ALB"]),
    ("I11", {"loadBalancer": {"provider": "alb"}, "affinity": {"ttl": "200h"}}, ["720000s", "604800s"]),
    ("I12", {"probes": {"readiness": {"timeout": "5s"}}}, ["timeout 5s", "period 3s"]),
    ("I13", {"replay": {"ttl": "60s"}}, ["60s", "50s", "drain 30s", "80s"]),
    ("I14", {"loadBalancer": {"maxConnectionLifetime": "60s"}}, ["60s", "80s"]),
    ("S1", {"loadBalancer": {"provider": "gateway"}}, ["gateway"]),
    ("S2", {"loadBalancer": {"provider": "nginx", "implementation": "envoy"}}, ["'envoy'", "'nginx'"]),
    ("S3", {"loadBalancer": {"provider": "nginx", "sessionPersistence": True}}, ["sessionPersistence"]),
    ("S4", {"autoscaling": {"cpu": 0, "memory": 0}}, ["cpu", "memory"]),
    ("S5", {"port": 9464}, ["9464"]),
    ("S6", {"loadBalancer": {"provider": "alb", "tls": {"secretName": "x"}}}, ["'alb'"]),
    ("S7", {"env": [{"name": "WSFLEET_DRAIN_SECONDS", "value": "1"}]}, ["WSFLEET_DRAIN_SECONDS"]),
    ("S8", {"env": [{"name": "A"}]}, ["'A'"]),
]


@pytest.mark.parametrize(("rule_id", "raw", "needles"), BROKEN, ids=[f"{b[0]}-{i}" for i, b in enumerate(BROKEN)])
def test_each_rule_refuses_with_the_numbers(rule_id: str, raw: dict[str, Any], needles: list[str]) -> None:
    violations = check(spec(raw))
    mine = [v for v in violations if v.rule == rule_id]
    assert mine, f"{rule_id} not reported; got {[v.message for v in violations]}"
    text = " ".join(v.message for v in mine)
    assert text.startswith(f"{rule_id}: ")
    for needle in needles:
        assert needle in text


def test_every_checkable_rule_has_an_example() -> None:
    covered = {b[0] for b in BROKEN}
    expected = {r.id for r in RULES if not r.rendered_only}
    assert covered == expected


def test_defaults_are_sound_for_every_provider() -> None:
    for key in PROFILES:
        provider, _, impl = key.partition("/")
        lb: dict[str, Any] = {"provider": provider}
        if impl:
            lb |= {"implementation": impl, "gateway": {"name": "gw"}}
        s = spec({"loadBalancer": lb})
        assert check(s) == [], key
        t = derive(s)
        assert t.idle == 80
        assert t.grace == t.pre_stop + 30 + 5
        assert t.pre_stop == PROFILES[key].pre_stop


def test_alb_and_gce_get_longer_default_prestop() -> None:
    # Cloud LBs deregister through their controller and keep routing for a while.
    assert derive(spec({"loadBalancer": {"provider": "alb"}})).pre_stop >= 25
    assert derive(spec({"loadBalancer": {"provider": "nginx"}})).pre_stop == 10


def test_the_registry_covers_every_provider_the_model_accepts() -> None:
    accepted = {f"gateway/{impl}" for impl in get_args(GatewayImplementation)} | {
        p for p in PROVIDERS if p != "gateway"
    }
    assert set(REGISTRY) == accepted
    assert all(key == p.profile.key for key, p in REGISTRY.items())


@given(raw_specs)
def test_the_cel_derivations_agree_with_derive(raw: dict[str, Any]) -> None:
    """The rules read derived values (a default preStop per provider, the idle timeout, the grace
    period, the deregistration delay) through CEL fragments; the renderers through derive()."""
    s = spec(raw)
    t = derive(s)
    activation = {"self": celpy.json_to_cel(spec_document(s))}
    got = {name: int(cel.program(getattr(invariants, name)).evaluate(activation))
           for name in ("_CEL_IDLE", "_CEL_PRESTOP", "_CEL_GRACE", "_CEL_WINDOW")}  # fmt: skip
    assert got == {"_CEL_IDLE": t.idle, "_CEL_PRESTOP": t.pre_stop, "_CEL_GRACE": t.grace, "_CEL_WINDOW": t.window}
    if t.lb_drain is not None:
        assert int(cel.program(invariants._CEL_LB_DRAIN).evaluate(activation)) == t.lb_drain


def test_derived_values_follow_the_spec() -> None:
    t = derive(spec({"heartbeat": {"interval": "2s", "timeout": "2s"}, "loadBalancer": {"margin": "2s"}}))
    assert (t.window, t.idle, t.idle_derived) == (4, 6, True)


def test_the_strategies_reach_both_sides_of_the_rules() -> None:
    """The property tests below see accepted specs, specs that break one rule and specs that
    break several, each in a substantial share: raw_specs does not drown one side in the other."""
    shares: Counter[str] = Counter()

    @settings(max_examples=400, database=None, suppress_health_check=list(HealthCheck))
    @given(raw_specs)
    def sample(raw: dict[str, Any]) -> None:
        n = len(broken_rules(raw))
        shares["accepted" if n == 0 else "one rule" if n == 1 else "several"] += 1

    sample()
    total = sum(shares.values())
    assert total >= 300, shares
    for side in ("accepted", "one rule", "several"):
        assert shares[side] >= 0.1 * total, f"{side}: {shares[side]} of {total} ({dict(shares)})"


@given(accepted_specs)
def test_accepted_specs_render_objects_that_keep_every_invariant(raw: dict[str, Any]) -> None:
    wss = parse_resource(resource(raw))
    assert check(wss.spec) == []
    assert audit.audit(wss.spec, render_all(wss)) == []


@given(raw_specs)
def test_refused_specs_name_the_broken_rule(raw: dict[str, Any]) -> None:
    violations = check(spec(raw))
    event("refused" if violations else "accepted")
    for v in violations:
        assert v.rule in RULE_IDS
        assert v.message.startswith(f"{v.rule}: ")


# --- Agreement with the CRD's CEL -----------------------------------------------------


@functools.cache
def _programs() -> list[tuple[str, str | None, str, str]]:
    """(rule id, the list field it applies to item by item or None, rule, message) as the CRD holds them."""
    schema = crd.spec_schema()
    by_rule = {(rule, msg): r.id for r in RULES for rule, msg in r.cel}
    out = [(by_rule[(e["rule"], e["messageExpression"])], None, e["rule"], e["messageExpression"])
           for e in schema["x-kubernetes-validations"]]  # fmt: skip
    for name, prop in schema["properties"].items():
        for e in prop.get("items", {}).get("x-kubernetes-validations", []):
            if "messageExpression" in e:
                out.append((by_rule[(e["rule"], e["messageExpression"])], name, e["rule"], e["messageExpression"]))
    return out


def cel_broken(raw: dict[str, Any]) -> set[str]:
    """Rule ids whose CEL fails on the spec, after the CRD's defaults are applied."""
    defaulted = crd.apply_defaults(crd.spec_schema(), raw)
    broken = set()
    for rule_id, each, rule, message in _programs():
        for item in defaulted.get(each, []) if each else [defaulted]:
            activation = {"self": celpy.json_to_cel(item)}
            if not bool(cel.program(rule).evaluate(activation)):
                broken.add(rule_id)
                text = str(cel.program(message).evaluate(activation))
                assert text.startswith(f"{rule_id}: "), text
                assert "%" not in text, text  # every verb got its argument
    return broken


def test_every_rule_with_cel_is_in_the_crd() -> None:
    assert {p[0] for p in _programs()} == {r.id for r in RULES if r.cel}
    assert len(_programs()) == sum(len(r.cel) for r in RULES)
    # what CEL cannot say over a spec is checked on the rendered objects, and only there
    assert {r.id for r in RULES if not r.cel} == {r.id for r in RULES if r.rendered_only} == set(audit.RENDERED_ONLY)


@pytest.mark.parametrize(("rule_id", "raw", "needles"), BROKEN, ids=[f"{b[0]}-{i}" for i, b in enumerate(BROKEN)])
def test_cel_refuses_each_example(rule_id: str, raw: dict[str, Any], needles: list[str]) -> None:
    assert rule_id in cel_broken(raw)


def test_cel_accepts_the_defaults() -> None:
    assert cel_broken({}) == set()


@given(raw_specs)
def test_python_and_cel_agree(raw: dict[str, Any]) -> None:
    python = {v.rule for v in check(spec(raw))}
    assert cel_broken(raw) == python


@given(single_rule_specs)
def test_python_and_cel_agree_one_rule_at_a_time(raw: dict[str, Any]) -> None:
    (rule,) = broken_rules(raw)
    event(rule)
    assert cel_broken(raw) == {rule}


# --- Boundaries: the last accepted value and the first refused one ----------------------

# (rule id, spec accepted exactly at the boundary, spec one second or one unit past it)
BOUNDARIES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("I1", {"loadBalancer": {"idleTimeout": "80s"}}, {"loadBalancer": {"idleTimeout": "79s"}}),
    (
        "I1",
        {"loadBalancer": {"provider": "gce", "maxConnectionLifetime": "80s"}},
        {"loadBalancer": {"provider": "gce", "maxConnectionLifetime": "79s"}},
    ),
    ("I2", {"shutdown": {"terminationGracePeriod": "45s"}}, {"shutdown": {"terminationGracePeriod": "44s"}}),
    ("I3", {"shutdown": {"preStop": "9s"}}, {"shutdown": {"preStop": "8s"}}),
    (
        "I3",
        {"shutdown": {"preStop": "12s"}, "probes": {"readiness": {"failureThreshold": 3}}},
        {"shutdown": {"preStop": "11s"}, "probes": {"readiness": {"failureThreshold": 3}}},
    ),
    (
        "I4",
        {"loadBalancer": {"provider": "alb", "deregistrationDelay": "60s"}},
        {"loadBalancer": {"provider": "alb", "deregistrationDelay": "59s"}},
    ),
    ("I5", {"replicas": {"min": 3}}, {"replicas": {"min": 2}}),
    ("I5", {"replicas": {"min": 4, "max": 4}}, {"replicas": {"min": 4, "max": 3}}),
    ("I8", {"probes": {"startup": {"budget": "60s"}}}, {"probes": {"startup": {"budget": "61s"}}}),
    (
        "I11",
        {"loadBalancer": {"provider": "alb", "idleTimeout": "4000s", "maxConnectionLifetime": "4000s"}},
        {"loadBalancer": {"provider": "alb", "idleTimeout": "4001s", "maxConnectionLifetime": "4001s"}},
    ),
    (
        "I11",
        {"loadBalancer": {"provider": "alb", "deregistrationDelay": "3600s"}},
        {"loadBalancer": {"provider": "alb", "deregistrationDelay": "3601s"}},
    ),
    (
        "I11",
        {"loadBalancer": {"provider": "alb"}, "affinity": {"ttl": "604800s"}},
        {"loadBalancer": {"provider": "alb"}, "affinity": {"ttl": "604801s"}},
    ),
    ("I11", {"affinity": {"mode": "clientIP", "ttl": "24h"}}, {"affinity": {"mode": "clientIP", "ttl": "86401s"}}),
    ("I12", {"probes": {"readiness": {"timeout": "2s"}}}, {"probes": {"readiness": {"timeout": "3s"}}}),
    ("I13", {"replay": {"ttl": "80s"}}, {"replay": {"ttl": "79s"}}),
    ("I14", {"loadBalancer": {"maxConnectionLifetime": "80s"}}, {"loadBalancer": {"maxConnectionLifetime": "79s"}}),
]


@pytest.mark.parametrize(("rule_id", "ok", "bad"), BOUNDARIES, ids=[f"{b[0]}-{i}" for i, b in enumerate(BOUNDARIES)])
def test_boundaries_python_and_cel(rule_id: str, ok: dict[str, Any], bad: dict[str, Any]) -> None:
    assert rule_id not in {v.rule for v in check(spec(ok))}
    assert rule_id not in cel_broken(ok)
    assert rule_id in {v.rule for v in check(spec(bad))}
    assert rule_id in cel_broken(bad)
