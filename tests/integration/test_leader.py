"""Leader election on the real API server: two operator processes, one Lease.

Each replica runs as its own user (controlplane.REPLICA_USERS), so the API server's audit log
says which one wrote what; the test never relies on the operators' own account of it.

Matrix:
- standby: serves /healthz, reports it does not lead (health and metrics), writes nothing at
  all, not even to the Lease, while the leader renews;
- SIGKILL the leader: the standby takes over within the lease duration plus one (jittered)
  retry period, and applies a spec change made after the kill;
- SIGSTOP the leader past its lease: the standby takes over and applies a change; on SIGCONT
  the old leader exits (code 3, "leader election lost") without one write after the takeover;
- SIGTERM the leader: it releases the Lease, and the standby takes it within a retry period,
  not a lease duration.

Short timings keep the test quick: lease 6 s, renew deadline 4 s, retry 1 s.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.integration.conftest import BIN, Audit, Kubectl, Operator, example, wait_until
from tests.integration.test_operator import apply_ok, wait_ready
from tests.support.snippets import tagged
from wsfleet_devcluster import controlplane

LEASE, DEADLINE, RETRY = 6.0, 4.0, 1.0
TAKEOVER = LEASE + RETRY * 2.2  # a lease unrenewed for LEASE, noticed at the next jittered retry
SLACK = 5.0  # a loaded two-core machine: process scheduling, the watch, a reconcile
EXIT_LEASE_LOST = 3


@dataclass
class Replica:
    user: str
    op: Operator

    def health(self) -> dict[str, Any]:
        return self.op.health()

    def leading(self) -> bool:
        try:
            return bool(self.health()["leading"])
        except OSError:
            return False

    def gauge(self) -> float:
        return self.op.counter("wsfleet_operator_leader{")


def _lease_args(namespace: str) -> tuple[str, ...]:
    return (
        f"--namespace={namespace}",
        "--leader-elect",
        f"--leader-elect-resource-namespace={namespace}",
        f"--leader-elect-lease-duration={LEASE:.0f}s",
        f"--leader-elect-renew-deadline={DEADLINE:.0f}s",
        f"--leader-elect-retry-period={RETRY:.0f}s",
    )


@pytest.fixture
def replicas(
    operator: Operator, dev_cluster: controlplane.DevCluster, namespace: str
) -> Iterator[tuple[Replica, Replica]]:
    """Replica a leading and b standing by, both watching `namespace` only; the session's
    operator is stopped meanwhile, so nothing else reconciles there."""
    operator.stop()
    logs = dev_cluster.dir / "logs"
    a, b = (
        Replica(user, Operator(dev_cluster.replica_kubeconfig(user), logs / f"{user}.log", args=_lease_args(namespace)))
        for user in controlplane.REPLICA_USERS
    )
    try:
        a.op.start()
        wait_until(a.leading, 30, "replica a to take the free Lease")
        b.op.start()
        health = wait_until(lambda: (h := b.health())["holder"] and h, 30, "replica b's first look at the Lease")
        assert (health["leading"], health["holder"]) == (False, a.health()["identity"]), health
        yield a, b
    finally:
        for r in (a, b):
            if r.op.proc is not None:
                os.killpg(r.op.proc.pid, signal.SIGCONT)
                r.op.stop()
        operator.start()


def _writes(audit: Audit, user: str, namespace: str, after: str = "") -> list[dict[str, Any]]:
    """Every write by `user` in `namespace` (dry runs and the Lease included), received after
    `after`. The users are shared by the tests; the namespace is each test's own."""
    return [
        e for e in audit.read()
        if e["user"]["username"] == user
        and e.get("objectRef", {}).get("namespace") == namespace
        and e["requestReceivedTimestamp"] > after
    ]  # fmt: skip


def _lease_writes(audit: Audit, user: str, namespace: str) -> list[dict[str, Any]]:
    return [e for e in _writes(audit, user, namespace) if e["objectRef"].get("resource") == "leases"]


def _bring_up(kubectl: Kubectl, namespace: str) -> str:
    doc = example("none", namespace)
    apply_ok(kubectl, doc)
    wait_ready(kubectl, doc["metadata"]["name"], namespace)
    return str(doc["metadata"]["name"])


def _scale(kubectl: Kubectl, name: str, namespace: str, n: int) -> None:
    patch = f'{{"spec": {{"replicas": {{"min": {n}, "max": {n}}}}}}}'
    kubectl("patch", "wss", name, "-n", namespace, "--type=merge", "-p", patch)


def _replicas(kubectl: Kubectl, name: str, namespace: str) -> int:
    deployment = kubectl.get("deployment", name, namespace) or {}
    return int(deployment.get("spec", {}).get("replicas", 0))


def test_the_standby_writes_nothing_and_says_who_leads(
    replicas: tuple[Replica, Replica], kubectl: Kubectl, audit: Audit, namespace: str
) -> None:
    a, b = replicas
    _bring_up(kubectl, namespace)
    time.sleep(3 * RETRY)  # several renews by a, several attempts by b
    assert [e["objectRef"]["resource"] for e in _lease_writes(audit, a.user, namespace)], "the leader renews its Lease"
    assert len([e for e in _writes(audit, a.user, namespace) if e["objectRef"].get("resource") == "deployments"]) > 0
    assert _writes(audit, b.user, namespace) == [], "a standby writes nothing, not even the Lease"
    assert (a.gauge(), b.gauge()) == (1.0, 0.0)
    lease = kubectl.get("lease", "wsfleet-operator", namespace)
    assert lease is not None
    assert lease["spec"]["holderIdentity"] == a.health()["identity"]
    events = kubectl("get", "events", "-n", namespace, "--field-selector=reason=LeaderElection", "-o", "json").stdout
    assert f"{a.health()['identity']} became leader" in events
    # docs/operator.md's "who leads" commands, run as written but for the namespace
    (block,) = tagged("leader")
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", block.text.replace("wsfleet-system", namespace)],
                          capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, "KUBECONFIG": str(kubectl.kubeconfig), "PATH": f"{BIN}:{os.environ['PATH']}"})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count(a.health()["identity"]) == 2, proc.stdout  # the holder, and the event


def test_the_standby_takes_over_from_a_killed_leader_and_applies_a_change_made_meanwhile(
    replicas: tuple[Replica, Replica], kubectl: Kubectl, audit: Audit, namespace: str
) -> None:
    a, b = replicas
    name = _bring_up(kubectl, namespace)
    assert a.op.proc is not None
    os.killpg(a.op.proc.pid, signal.SIGKILL)
    killed = time.monotonic()
    a.op.proc.wait(timeout=10)
    a.op.proc = None
    _scale(kubectl, name, namespace, 5)
    wait_until(b.leading, TAKEOVER + SLACK, "replica b to take over the Lease", interval=0.1)
    took = time.monotonic() - killed
    wait_until(lambda: _replicas(kubectl, name, namespace) == 5, 60, "the change made meanwhile to be applied")
    print(f"takeover after SIGKILL: {took:.1f}s (lease {LEASE:g}s, retry {RETRY:g}s)")
    assert took <= TAKEOVER + SLACK
    deployment_writes = [
        e for e in _writes(audit, b.user, namespace) if e["objectRef"].get("resource") == "deployments"
    ]
    assert deployment_writes, "the new leader applied the change"
    assert b.gauge() == 1.0
    lease = kubectl.get("lease", "wsfleet-operator", namespace)
    assert lease is not None
    assert lease["spec"]["leaseTransitions"] == 1


def test_a_paused_leader_writes_nothing_after_the_standby_took_over(
    replicas: tuple[Replica, Replica], kubectl: Kubectl, audit: Audit, namespace: str
) -> None:
    a, b = replicas
    name = _bring_up(kubectl, namespace)
    assert _writes(audit, a.user, namespace), "the leader wrote before it was paused"
    assert a.op.proc is not None
    os.killpg(a.op.proc.pid, signal.SIGSTOP)
    wait_until(b.leading, TAKEOVER + SLACK, "replica b to take over from the paused leader", interval=0.1)
    (first, *_) = _lease_writes(audit, b.user, namespace)
    takeover = first["requestReceivedTimestamp"]
    _scale(kubectl, name, namespace, 3)  # something for the old leader to act on when it wakes
    wait_until(lambda: _replicas(kubectl, name, namespace) == 3, 60, "the new leader to apply the change")
    os.killpg(a.op.proc.pid, signal.SIGCONT)
    assert a.op.proc.wait(timeout=30) == EXIT_LEASE_LOST
    a.op.proc = None
    assert "leader election lost" in a.op.log.read_text()
    late = [f"{e['verb']} {e['objectRef'].get('resource')} at {e['requestReceivedTimestamp']}"
            for e in _writes(audit, a.user, namespace, after=takeover)]  # fmt: skip
    assert late == [], f"the old leader wrote after replica b took over at {takeover}"
    assert _writes(audit, b.user, namespace, after=takeover), "the new leader wrote"
    assert _replicas(kubectl, name, namespace) == 3


def test_a_leader_stopped_with_sigterm_releases_the_lease(
    replicas: tuple[Replica, Replica], kubectl: Kubectl, audit: Audit, namespace: str
) -> None:
    a, b = replicas
    _bring_up(kubectl, namespace)
    a.op.stop(signal.SIGTERM)
    wait_until(b.leading, TAKEOVER + SLACK, "replica b to take the released Lease", interval=0.1)
    last_a = _lease_writes(audit, a.user, namespace)[-1]["requestReceivedTimestamp"]
    first_b = _lease_writes(audit, b.user, namespace)[0]["requestReceivedTimestamp"]
    gap = (_when(first_b) - _when(last_a)).total_seconds()
    print(f"handover after SIGTERM: {gap:.1f}s from the release to the standby's write")
    # Released: b takes it at its next attempt (at most 2.2 retries). Unreleased, b would wait a
    # whole lease duration after a's last renew.
    assert gap < LEASE - RETRY, f"b waited {gap:.1f}s: the Lease was not released"
    lease = kubectl.get("lease", "wsfleet-operator", namespace)
    assert lease is not None
    assert lease["spec"]["holderIdentity"] == b.health()["identity"]


def _when(timestamp: str) -> dt.datetime:
    return dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
