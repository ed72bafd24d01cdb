"""Hypothesis strategies for raw WebSocketService specs.

The specs are valid field by field (types, enums, duration syntax) but combine
values freely around every rule's boundary, so a large share of them breaks one
or more rules. That is the point: the tests compare what the operator's checker,
the CEL rules and the rendered objects say about the same spec.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from wsfleet_common import contract
from wsfleet_operator.durations import format_seconds
from wsfleet_operator.model import PROVIDERS
from wsfleet_operator.validation import check, parse_resource


def dur(lo: int, hi: int) -> st.SearchStrategy[str]:
    """A duration string in [lo, hi] seconds, in canonical or plain-seconds form."""
    return st.integers(lo, hi).flatmap(lambda n: st.sampled_from([format_seconds(n), f"{n}s"]))


def opt(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """A dict where every field may be absent (the API server then applies the default)."""
    return st.fixed_dictionaries({}, optional=fields)


PATHS = st.sampled_from([contract.READY_PATH, contract.LIVE_PATH, contract.DATABASE_PATH, "/custom"])


def probe(period: tuple[int, int]) -> st.SearchStrategy[dict[str, Any]]:
    return opt(period=dur(*period), timeout=dur(1, 12), failureThreshold=st.integers(1, 20), path=PATHS)


env_entry = st.fixed_dictionaries(
    {"name": st.sampled_from(["LOG_LEVEL", "WSFLEET_PING_INTERVAL_SECONDS", "APP_MODE"])},
    optional={"value": st.just("x"), "valueFrom": st.just({"fieldRef": {"fieldPath": "metadata.uid"}})},
)

raw_specs: st.SearchStrategy[dict[str, Any]] = opt(
    port=st.sampled_from([3001, 8080, 9464]),
    metricsPort=st.sampled_from([9464, 3001]),
    transports=st.sampled_from([["websocket"], ["polling"], ["websocket", "polling"]]),
    replicas=opt(min=st.integers(1, 8), max=st.integers(1, 8)),
    heartbeat=opt(interval=dur(1, 15), timeout=dur(1, 15)),
    loadBalancer=opt(
        provider=st.sampled_from(PROVIDERS),
        implementation=st.sampled_from(["generic", "envoy", "gke"]),
        gateway=st.just({"name": "public"}),
        host=st.just("chat.example.com"),
        idleTimeout=st.one_of(dur(1, 60), dur(3990, 4010)),
        margin=dur(1, 15),
        maxConnectionLifetime=st.one_of(dur(1, 80), dur(3990, 100000)),
        deregistrationDelay=st.one_of(dur(1, 90), dur(3590, 3610)),
        sessionPersistence=st.booleans(),
        tls=st.sampled_from([{"secretName": "tls"}, {"issuer": {"name": "le"}}, {}]),
    ),
    affinity=opt(
        mode=st.sampled_from(["cookie", "clientIP", "none"]), ttl=st.one_of(dur(1, 90000), dur(604790, 604810))
    ),
    shutdown=opt(
        preStop=dur(1, 40),
        preStopAction=st.sampled_from(["http", "sleep"]),
        drain=dur(1, 40),
        buffer=dur(1, 10),
        terminationGracePeriod=dur(1, 90),
    ),
    probes=opt(
        startup=probe((1, 20)).flatmap(
            lambda p: st.fixed_dictionaries({}, optional={"budget": dur(1, 400)}).map(lambda b: {**p, **b})
        ),
        readiness=probe((1, 20)),
        liveness=probe((1, 30)),
    ),
    rollout=opt(maxSurge=st.integers(0, 3), maxUnavailable=st.integers(0, 2)),
    autoscaling=opt(
        enabled=st.booleans(),
        cpu=st.sampled_from([0, 70]),
        memory=st.sampled_from([0, 80]),
        connectionsPerPod=st.integers(1, 10000),
    ),
    disruption=opt(minAvailable=st.integers(0, 8)),
    replay=opt(ttl=dur(1, 120)),
    env=st.lists(env_entry, max_size=2, unique_by=lambda e: e["name"]),
    networkPolicy=opt(
        enabled=st.booleans(),
        loadBalancer=st.sampled_from(
            [{"cidrs": ["10.1.0.0/16"]}, {"namespaces": [{"team": "edge"}]}, {"pods": [{}], "cidrs": ["10.1.0.0/16"]}]
        ),
        egress=st.lists(
            st.sampled_from([{"ports": [443]}, {"to": {"cidrs": ["10.2.0.0/16"]}, "ports": [8443]}]), max_size=2
        ),
    ),
)


def resource(spec: dict[str, Any], name: str = "chat", uid: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "apps"}
    if uid:
        meta["uid"] = uid
    return {"apiVersion": "wsfleet.dev/v1alpha1", "kind": "WebSocketService", "metadata": meta, "spec": spec}


def broken_rules(raw: dict[str, Any]) -> set[str]:
    """The ids of the rules the operator's checker says `raw` breaks."""
    return {v.rule for v in check(parse_resource(resource(raw)).spec)}


# About a fifth of raw_specs is accepted and a sixth breaks exactly one rule (test_rules measures
# both shares): each filter keeps enough for hypothesis, and a property over accepted specs then
# reaches its assertions on every example instead of returning early on most of them.
accepted_specs = raw_specs.filter(lambda raw: not broken_rules(raw))
# One rule broken, no other: a wrong rule cannot hide behind another that refuses the same spec.
single_rule_specs = raw_specs.filter(lambda raw: len(broken_rules(raw)) == 1)
