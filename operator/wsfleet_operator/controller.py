"""One reconcile of one WebSocketService: parse, check, render, apply in order, prune, report.

The sequence matters:
1. Parse and check the spec. A refused spec changes no child at all: the last
   good fleet keeps running, and the status says Stalled with the numbers.
2. Apply children in render order (ConfigMap, Service, load-balancer objects,
   then the Deployment), each only if a dry run shows a difference.
3. Delete owned objects the spec no longer renders (provider switch, HPA off).
4. Write the status only if it changed.

Events go through the `emit` callback (kopf in production), one per write and
one per refusal; a resync that finds everything in line emits nothing and
writes nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter, Histogram

from wsfleet_common import logs
from wsfleet_operator import reconcile
from wsfleet_operator.kube import Kube
from wsfleet_operator.model import API_VERSION, KIND, WebSocketService
from wsfleet_operator.render import owned_kinds, render_context
from wsfleet_operator.render.context import Context
from wsfleet_operator.validation import RULES, SpecError, check, parse_resource

log = logging.getLogger("wsfleet.operator")

Emit = Callable[[str, str, str], None]  # (type Normal|Warning, reason, message)

RECONCILES = Counter("wsfleet_operator_reconciles_total", "Reconciles by result", ["result"])
DURATION = Histogram("wsfleet_operator_reconcile_duration_seconds", "Reconcile duration")
WRITES = Counter("wsfleet_operator_api_writes_total", "Writes to the API by verb and kind", ["verb", "kind"])
ERRORS = Counter("wsfleet_operator_errors_total", "Reconcile errors by kind", ["kind"])

TIMING_RULES = {r.id for r in RULES if r.id.startswith("I")}
# Co-owns Deployment.spec.replicas for the moment the operator stops applying it.
REPLICAS_HANDOVER_MANAGER = "wsfleet-operator-replicas-handover"


@dataclass(frozen=True)
class Result:
    outcome: str  # "refused", "applied", "unchanged"
    writes: int
    ready: bool


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Controller:
    kube: Kube
    _locks: dict[str, threading.Lock] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)
    # The generation of each resource whose stale children were last pruned by this process.
    _pruned: dict[str, int | None] = field(default_factory=dict)
    # child uid -> its metadata.generation at its last watch event (child_event)
    _seen: dict[str, int | None] = field(default_factory=dict)

    def _lock(self, uid: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(uid, threading.Lock())

    def child_event(self, body: Mapping[str, Any], event_type: str | None) -> tuple[str, dict[str, Any] | None]:
        """What a watch event on a child calls for (reconcile.child_event_action: "reconcile",
        "status" or "ignore"), and the resource that owns the child, to do it on; no owner (none,
        or one being deleted) means there is nothing to do."""
        meta = body.get("metadata", {})
        uid, generation = meta.get("uid", ""), meta.get("generation")
        with self._guard:
            action = reconcile.child_event_action(event_type, body.get("kind", ""), generation, self._seen.get(uid))
            if event_type == "DELETED":
                self._seen.pop(uid, None)
            else:
                self._seen[uid] = generation
        if action == "ignore":
            return action, None
        owner = self.owner_of(body)
        if owner is None or owner["metadata"].get("deletionTimestamp"):
            return "ignore", None
        return action, owner

    def owner_of(self, child: Mapping[str, Any]) -> dict[str, Any] | None:
        """The WebSocketService that controls this child, read from the API; None if it has none."""
        for ref in child.get("metadata", {}).get("ownerReferences", []):
            if ref.get("kind") == KIND and ref.get("controller"):
                return self.kube.get(API_VERSION, KIND, child["metadata"]["namespace"], ref["name"])
        return None

    def reconcile(self, body: dict[str, Any], emit: Emit, *, prune: bool = False) -> Result:
        """Bring one resource's children in line with its spec; serialised per resource.

        Stale children are pruned when `prune` is set (the resync timer), on every new
        generation, and the first time this process sees the resource.
        """
        uid = body["metadata"]["uid"]
        resource = f"{body['metadata'].get('namespace', '')}/{body['metadata'].get('name', '')}"
        # Every line logged during this reconcile, ours or a library's, carries both ids.
        with logs.bound(resource=resource, reconcile_id=secrets.token_hex(6)), self._lock(uid), DURATION.time():
            before = sum(self.kube.writes.values())
            generation = body["metadata"].get("generation")
            prune = prune or uid not in self._pruned or self._pruned[uid] != generation
            try:
                result = self._reconcile(body, emit, before, prune)
                if prune:
                    self._pruned[uid] = generation
            except Exception as exc:
                ERRORS.labels(type(exc).__name__).inc()
                RECONCILES.labels("error").inc()
                raise
            RECONCILES.labels(result.outcome).inc()
            if result.outcome != "refused" and result.writes:
                log.info("reconciled: %d writes", result.writes, extra={"writes": result.writes, "ready": result.ready})
            return result

    def refresh_status(self, body: dict[str, Any]) -> None:
        """Recompute the status from the Deployment without applying anything (status-only events)."""
        uid = body["metadata"]["uid"]
        with self._lock(uid):
            try:
                wss = parse_resource(body, f"{body['metadata']['namespace']}/{body['metadata']['name']}")
            except SpecError:
                return
            if check(wss.spec):
                return
            self._report(wss, Context.of(wss), body.get("status") or {})

    def _report(self, wss: WebSocketService, ctx: Context, old_status: dict[str, Any]) -> bool:
        """Write the status from the live Deployment; return whether the rollout is done."""
        ns, name = wss.metadata.namespace, wss.metadata.name
        deployment = self.kube.get("apps/v1", "Deployment", ns, ctx.name)
        rollout = reconcile.Rollout.of(deployment)
        wanted = wss.spec.replicas.min
        status = {
            "observedGeneration": wss.metadata.generation,
            "conditions": reconcile.conditions_ok(wss, ctx.t, rollout, wanted),
            "timeouts": reconcile.timeouts_status(ctx.t),
            "replicas": rollout.replicas if rollout else 0,
            "readyReplicas": rollout.ready if rollout else 0,
            "url": reconcile.url(wss),
        }
        self._write_status(ns, name, old_status, status)
        return bool(rollout and rollout.done(wanted))

    def _reconcile(self, body: dict[str, Any], emit: Emit, before: int, prune: bool) -> Result:
        meta = body["metadata"]
        ns, name = meta["namespace"], meta["name"]
        old_status = body.get("status") or {}
        try:
            wss = parse_resource(body, f"{ns}/{name}")
        except SpecError as exc:
            return self._refuse(body, list(exc.problems), timing=False, emit=emit, before=before)
        violations = check(wss.spec)
        if violations:
            timing = any(v.rule in TIMING_RULES for v in violations)
            return self._refuse(body, [v.message for v in violations], timing=timing, emit=emit, before=before)

        ctx = Context.of(wss)
        desired = render_context(ctx)
        for manifest in desired:
            live = None
            if manifest["kind"] == "Deployment" and "replicas" not in manifest["spec"]:
                live = self._hand_replicas_to_hpa(ns, manifest, emit)
            outcome = self.kube.ensure(manifest, live)
            if outcome != "unchanged":
                WRITES.labels("apply", manifest["kind"]).inc()
                emit("Normal", outcome.capitalize(), f"{outcome} {manifest['kind']} {manifest['metadata']['name']}")

        if prune:
            owned = [o for av, kind in owned_kinds() for o in self.kube.list_owned(av, kind, ns, meta["uid"], name)]
            for api_version, kind, child in reconcile.stale(desired, owned):
                if self.kube.delete(api_version, kind, ns, child):
                    WRITES.labels("delete", kind).inc()
                    emit("Normal", "Deleted", f"deleted {kind} {child}: no longer part of the spec")

        ready = self._report(wss, ctx, old_status)
        writes = sum(self.kube.writes.values()) - before
        return Result("applied" if writes else "unchanged", writes, ready)

    def _hand_replicas_to_hpa(self, ns: str, manifest: dict[str, Any], emit: Emit) -> dict[str, Any] | None:
        """Autoscaling was just enabled: keep the current replica count while the HPA takes over.

        Without this, dropping `replicas` from our apply would reset it to 1 (I9's other side).
        Returns the live Deployment when it can stand for a fresh read (nothing was written).
        """
        live = self.kube.get("apps/v1", "Deployment", ns, manifest["metadata"]["name"])
        if live is None or not self.kube.owns(live, "spec", "replicas"):
            return live
        self.kube.hand_over(live, ("spec", "replicas"), REPLICAS_HANDOVER_MANAGER)
        WRITES.labels("handover", "Deployment").inc()
        emit("Normal", "HandedOver", f"replicas {live['spec']['replicas']} handed over to the HorizontalPodAutoscaler")
        return None  # changed by the handover: ensure() reads it again

    def _refuse(self, body: dict[str, Any], problems: list[str], timing: bool, emit: Emit, before: int) -> Result:
        meta = body["metadata"]
        status = {
            "observedGeneration": meta.get("generation"),
            "conditions": reconcile.conditions_refused(meta.get("generation"), problems, timing),
        }
        if self._write_status(meta["namespace"], meta["name"], body.get("status") or {}, status):
            # One Warning per refusal (not per resync): only when the refusal is news.
            emit("Warning", "InvalidSpec", "; ".join(problems))
            log.warning("refused the spec, nothing applied: %s", "; ".join(problems),
                        extra={"event": logs.EVENT_REFUSED, "reason": "InvalidSpec"})  # fmt: skip
        return Result("refused", sum(self.kube.writes.values()) - before, ready=False)

    def _write_status(self, ns: str, name: str, old: dict[str, Any], new: dict[str, Any]) -> bool:
        """Patch the status subresource only when something in it changed."""
        new = {
            **new,
            "conditions": reconcile.with_transition_times(new["conditions"], old.get("conditions", []), _now()),
        }
        if all(old.get(k) == v for k, v in new.items()):
            return False
        self.kube.patch_status(ns, name, new)
        WRITES.labels("status", "WebSocketService").inc()
        return True
