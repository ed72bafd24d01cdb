"""Desired vs observed -> what to delete, and the status to report. Pure.

Conditions follow kstatus, so Argo CD, Flux and ``kubectl wait`` read them:
- Ready: the Deployment has rolled out the current spec and every pod is ready.
- Reconciling: the operator or the Deployment is still moving towards the spec.
- Stalled: the spec was refused; nothing will change until it is fixed.
- TimeoutsAligned: every invariant holds (with the numbers in the message).
A condition's lastTransitionTime only moves when its status does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wsfleet_operator.model import WebSocketService
from wsfleet_operator.render.context import Manifest
from wsfleet_operator.timeouts import Timeouts

Key = tuple[str, str, str]  # (apiVersion, kind, name)


def key(manifest: Manifest) -> Key:
    return (manifest["apiVersion"], manifest["kind"], manifest["metadata"]["name"])


def stale(desired: list[Manifest], owned: list[Manifest]) -> list[Key]:
    """Owned objects that the spec no longer renders: a provider switch, a disabled HPA."""
    wanted = {key(m) for m in desired}
    return sorted({key(o) for o in owned} - wanted)


@dataclass(frozen=True)
class Rollout:
    """What the Deployment's status says about the rollout of the current template."""

    replicas: int
    ready: int
    updated: int
    available: int
    current: bool  # the Deployment controller has seen the latest template
    progressing_failed: bool

    @classmethod
    def of(cls, deployment: Manifest | None) -> Rollout | None:
        if deployment is None:
            return None
        status: dict[str, Any] = deployment.get("status") or {}
        conditions = {c["type"]: c for c in status.get("conditions") or []}
        progressing = conditions.get("Progressing", {})
        return cls(
            replicas=status.get("replicas") or 0,
            ready=status.get("readyReplicas") or 0,
            updated=status.get("updatedReplicas") or 0,
            available=status.get("availableReplicas") or 0,
            current=(status.get("observedGeneration") or 0) >= (deployment["metadata"].get("generation") or 0),
            progressing_failed=progressing.get("reason") == "ProgressDeadlineExceeded",
        )

    def done(self, wanted: int) -> bool:
        return (
            self.current
            and self.replicas >= wanted
            and self.updated == self.replicas
            and self.ready == self.replicas
            and self.available == self.replicas
        )


def _condition(kind: str, ok: bool, reason: str, message: str, generation: int | None) -> dict[str, Any]:
    return {
        "type": kind,
        "status": "True" if ok else "False",
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
    }


def aligned_message(t: Timeouts) -> str:
    return (
        f"LB idle {t.idle}s >= heartbeat window {t.window}s + margin {t.margin}s; "
        f"grace {t.grace}s >= preStop {t.pre_stop}s + drain {t.drain}s + buffer {t.buffer}s"
    )


def conditions_ok(wss: WebSocketService, t: Timeouts, rollout: Rollout | None, wanted: int) -> list[dict[str, Any]]:
    gen = wss.metadata.generation
    if rollout is None:
        ready, reconciling, why = False, True, ("Creating", "the Deployment does not exist yet")
    elif rollout.progressing_failed:
        ready, reconciling, why = False, False, ("ProgressDeadlineExceeded", "the Deployment rollout is stuck")
    elif rollout.done(wanted):
        ready, reconciling, why = True, False, ("Ready", f"{rollout.ready}/{rollout.replicas} pods ready")
    else:
        ready, reconciling = False, True
        why = ("RollingOut", f"{rollout.updated} updated, {rollout.ready} ready of {rollout.replicas} pods")
    stalled = rollout is not None and rollout.progressing_failed
    return [
        _condition("Ready", ready, why[0], why[1], gen),
        _condition("Reconciling", reconciling, why[0] if reconciling else "Idle", why[1], gen),
        _condition("Stalled", stalled, why[0] if stalled else "NotStalled", why[1] if stalled else "", gen),
        _condition("TimeoutsAligned", True, "Aligned", aligned_message(t), gen),
    ]


def conditions_refused(gen: int | None, problems: list[str], timing: bool) -> list[dict[str, Any]]:
    """The spec was refused: Stalled, not Ready; the running fleet is left as it was."""
    message = "; ".join(problems)
    reason = "InvalidSpec"
    return [
        _condition("Ready", False, reason, "spec refused; the last good fleet keeps running: " + message, gen),
        _condition("Reconciling", False, reason, message, gen),
        _condition("Stalled", True, reason, message, gen),
        _condition(
            "TimeoutsAligned", not timing, "Misaligned" if timing else "Aligned", message if timing else "", gen
        ),
    ]


def timeouts_status(t: Timeouts) -> dict[str, Any]:
    return {
        "heartbeatWindowSeconds": t.window,
        "idleTimeoutSeconds": t.idle,
        "maxConnectionLifetimeSeconds": t.lifetime,
        "preStopSeconds": t.pre_stop,
        "drainSeconds": t.drain,
        "bufferSeconds": t.buffer,
        "terminationGracePeriodSeconds": t.grace,
        **({"deregistrationDelaySeconds": t.lb_drain} if t.lb_drain is not None else {}),
    }


def url(wss: WebSocketService) -> str:
    lb = wss.spec.load_balancer
    if lb.provider != "none" and lb.host:
        scheme = "https" if lb.tls is not None else "http"
        return f"{scheme}://{lb.host}{lb.path.rstrip('/')}"
    return f"http://{wss.metadata.name}.{wss.metadata.namespace}.svc:{wss.spec.port}"


def with_transition_times(new: list[dict[str, Any]], old: list[dict[str, Any]], now: str) -> list[dict[str, Any]]:
    """Keep lastTransitionTime where a condition's status did not change."""
    before = {c["type"]: c for c in old}
    out = []
    for c in new:
        prev = before.get(c["type"])
        same = prev is not None and prev.get("status") == c["status"]
        out.append({**c, "lastTransitionTime": prev["lastTransitionTime"] if same and prev else now})
    return out


def child_event_action(event_type: str | None, kind: str, generation: int | None, last_seen: int | None) -> str:
    """What a watch event on a child calls for: "reconcile", "status" or "ignore".

    Most child events are other controllers writing status: the HPA every 15 s, the PDB on
    every pod change, the Deployment during a rollout. They do not change what we apply,
    so they must not cost a full reconcile each (at a few hundred fleets that load is what
    the API server would see). A status write leaves metadata.generation unchanged; a spec
    edit bumps it. Kinds without a generation (ConfigMap, Service) change only by edits.
    The initial listing (no event type) and ADDED (only the operator creates children; the
    owner's own handlers already reconcile it) need at most a status refresh.
    """
    if event_type == "DELETED":
        return "reconcile"
    if event_type in (None, "ADDED"):
        return "status" if kind == "Deployment" else "ignore"
    if generation is None or last_seen is None or generation != last_seen:
        return "reconcile"
    return "status" if kind == "Deployment" else "ignore"
