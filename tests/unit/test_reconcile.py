"""Pure reconcile logic: stale objects, rollout state, conditions, and which child events matter.

Matrix for child events: DELETED always reconciles; the initial listing and ADDED need at
most a status refresh (Deployment) and otherwise nothing; MODIFIED with a new generation
(a spec edit) reconciles; MODIFIED with the same generation (another controller writing
status) refreshes status for a Deployment and is ignored otherwise; kinds without a
generation (ConfigMap, Service) reconcile on every change.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.strategies import resource
from wsfleet_operator import reconcile
from wsfleet_operator.render import render_all
from wsfleet_operator.timeouts import derive
from wsfleet_operator.validation import parse_resource


@pytest.mark.parametrize(
    ("event", "kind", "generation", "last", "action"),
    [
        ("DELETED", "Deployment", 3, 3, "reconcile"),
        ("DELETED", "ConfigMap", None, None, "reconcile"),
        (None, "Deployment", 1, None, "status"),
        (None, "Service", None, None, "ignore"),
        ("ADDED", "HorizontalPodAutoscaler", 1, None, "ignore"),
        ("MODIFIED", "Deployment", 4, 3, "reconcile"),
        ("MODIFIED", "Deployment", 3, 3, "status"),
        ("MODIFIED", "HorizontalPodAutoscaler", 2, 2, "ignore"),
        ("MODIFIED", "PodDisruptionBudget", 1, 1, "ignore"),
        ("MODIFIED", "ConfigMap", None, None, "reconcile"),
        ("MODIFIED", "Ingress", 2, None, "reconcile"),
    ],
)
def test_child_event_action(
    event: str | None, kind: str, generation: int | None, last: int | None, action: str
) -> None:
    assert reconcile.child_event_action(event, kind, generation, last) == action


def _wss(spec: dict[str, Any]) -> Any:
    return parse_resource({**resource(spec), "metadata": {"name": "chat", "namespace": "apps", "generation": 2}})


def test_stale_after_a_provider_switch() -> None:
    before = render_all(_wss({"loadBalancer": {"provider": "gce"}}))
    after = render_all(_wss({"loadBalancer": {"provider": "gateway", "gateway": {"name": "gw"}}}))
    assert reconcile.stale(after, before) == [
        ("cloud.google.com/v1", "BackendConfig", "chat"),
        ("networking.k8s.io/v1", "Ingress", "chat"),
    ]
    assert reconcile.stale(after, after) == []


def deployment(**status: Any) -> dict[str, Any]:
    return {"metadata": {"generation": 2}, "status": {"observedGeneration": 2, **status}}


@pytest.mark.parametrize(
    ("status", "ready", "reason"),
    [
        ({"replicas": 3, "readyReplicas": 3, "updatedReplicas": 3, "availableReplicas": 3}, True, "Ready"),
        ({"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}, False, "RollingOut"),
        ({"replicas": 4, "readyReplicas": 4, "updatedReplicas": 1, "availableReplicas": 4}, False, "RollingOut"),
        ({"replicas": 1, "readyReplicas": 1, "updatedReplicas": 1, "availableReplicas": 1}, False, "RollingOut"),
        (
            {"conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]},
            False,
            "ProgressDeadlineExceeded",
        ),
    ],
)
def test_conditions_follow_the_rollout(status: dict[str, Any], ready: bool, reason: str) -> None:
    wss = _wss({})
    conds = {
        c["type"]: c
        for c in reconcile.conditions_ok(wss, derive(wss.spec), reconcile.Rollout.of(deployment(**status)), 3)
    }
    assert conds["Ready"]["status"] == ("True" if ready else "False")
    assert conds["Ready"]["reason"] == reason
    assert conds["Ready"]["observedGeneration"] == 2
    assert conds["Stalled"]["status"] == ("True" if reason == "ProgressDeadlineExceeded" else "False")
    assert conds["Reconciling"]["status"] == ("True" if reason == "RollingOut" else "False")


def test_an_old_deployment_generation_is_not_ready() -> None:
    stale = {"metadata": {"generation": 3}, "status": {"observedGeneration": 2, "replicas": 3, "readyReplicas": 3,
             "updatedReplicas": 3, "availableReplicas": 3}}  # fmt: skip
    rollout = reconcile.Rollout.of(stale)
    assert rollout is not None
    assert not rollout.done(3)


def test_refused_conditions() -> None:
    conds = {c["type"]: c for c in reconcile.conditions_refused(5, ["I1: x 60s"], timing=True)}
    assert (conds["Stalled"]["status"], conds["Ready"]["status"], conds["TimeoutsAligned"]["status"]) == (
        "True",
        "False",
        "False",
    )
    assert "I1: x 60s" in conds["Stalled"]["message"]
    structural = {c["type"]: c for c in reconcile.conditions_refused(5, ["S1: x"], timing=False)}
    assert structural["TimeoutsAligned"]["status"] == "True"


def test_transition_time_moves_only_with_status() -> None:
    old = [{"type": "Ready", "status": "True", "lastTransitionTime": "T1"}]
    same = reconcile.with_transition_times([{"type": "Ready", "status": "True"}], old, "T2")
    flipped = reconcile.with_transition_times([{"type": "Ready", "status": "False"}], old, "T2")
    assert same[0]["lastTransitionTime"] == "T1"
    assert flipped[0]["lastTransitionTime"] == "T2"


def test_url() -> None:
    assert reconcile.url(_wss({})) == "http://chat.apps.svc:3001"
    tls = {"loadBalancer": {"provider": "nginx", "host": "c.example.com", "path": "/ws/", "tls": {"secretName": "t"}}}
    assert reconcile.url(_wss(tls)) == "https://c.example.com/ws"
