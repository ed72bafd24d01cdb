"""Check the invariants against rendered manifests, reading the numbers back out of them.

timeouts.check() reasons about the spec; this module reasons about what would
actually be applied: annotation strings, probe fields, grace periods. The
property tests require that every spec the checker accepts renders manifests
that pass this audit, so a renderer bug that drops or mangles a value fails a
test even when the arithmetic in timeouts.py is right. ``wsfleet check`` runs
it too.
"""

from __future__ import annotations

from typing import Any

from wsfleet_operator.durations import parse
from wsfleet_operator.model import WebSocketServiceSpec
from wsfleet_operator.render.context import Manifest
from wsfleet_operator.timeouts import profile
from wsfleet_workload import contract as c


def _find(manifests: list[Manifest], kind: str) -> Manifest | None:
    return next((m for m in manifests if m["kind"] == kind), None)


def _attrs(value: str) -> dict[str, str]:
    """'a=1,b=2' -> {'a': '1', 'b': '2'} (ALB attribute annotations)."""
    return dict(item.split("=", 1) for item in value.split(",") if item)


def _lb_idle_and_lifetime(manifests: list[Manifest]) -> tuple[int | None, int | None, int | None]:
    """(idle timeout, lifetime cap, connection draining) as rendered, where the provider has them."""
    idle = lifetime = draining = None
    ing = _find(manifests, "Ingress")
    ann: dict[str, str] = (ing or {}).get("metadata", {}).get("annotations", {})
    if "nginx.ingress.kubernetes.io/proxy-read-timeout" in ann:
        idle = min(
            int(ann["nginx.ingress.kubernetes.io/proxy-read-timeout"]),
            int(ann["nginx.ingress.kubernetes.io/proxy-send-timeout"]),
        )
    if "alb.ingress.kubernetes.io/load-balancer-attributes" in ann:
        idle = int(_attrs(ann["alb.ingress.kubernetes.io/load-balancer-attributes"])["idle_timeout.timeout_seconds"])
        tg = _attrs(ann["alb.ingress.kubernetes.io/target-group-attributes"])
        draining = int(tg["deregistration_delay.timeout_seconds"])
    for kind in ("BackendConfig",):
        bc = _find(manifests, kind)
        if bc:
            lifetime = bc["spec"]["timeoutSec"]
            draining = bc["spec"]["connectionDraining"]["drainingTimeoutSec"]
    gbp = _find(manifests, "GCPBackendPolicy")
    if gbp:
        lifetime = gbp["spec"]["default"]["timeoutSec"]
        draining = gbp["spec"]["default"]["connectionDraining"]["drainingTimeoutSec"]
    btp = _find(manifests, "BackendTrafficPolicy")
    if btp:
        http = btp["spec"]["timeout"]["http"]
        idle = parse(http["connectionIdleTimeout"])
        lifetime = parse(http["maxConnectionDuration"])
    return idle, lifetime, draining


def _has_affinity(manifests: list[Manifest]) -> bool | None:
    """Whether the rendered objects implement affinity; None where nothing we render could."""
    ing = _find(manifests, "Ingress")
    ann: dict[str, str] = (ing or {}).get("metadata", {}).get("annotations", {})
    if any(k.startswith("nginx.ingress.kubernetes.io/") for k in ann):
        return "nginx.ingress.kubernetes.io/affinity" in ann or "nginx.ingress.kubernetes.io/upstream-hash-by" in ann
    if "alb.ingress.kubernetes.io/target-group-attributes" in ann:
        return "stickiness.enabled=true" in ann["alb.ingress.kubernetes.io/target-group-attributes"]
    bc = _find(manifests, "BackendConfig") or _find(manifests, "GCPBackendPolicy")
    if bc:
        body = bc["spec"].get("default", bc["spec"])
        return "sessionAffinity" in body
    btp = _find(manifests, "BackendTrafficPolicy")
    if btp:
        return "loadBalancer" in btp["spec"]
    route = _find(manifests, "HTTPRoute")
    if route and any("sessionPersistence" in r for r in route["spec"]["rules"]):
        return True
    svc = _find(manifests, "Service")
    if svc and svc["spec"].get("sessionAffinity") == "ClientIP":
        return True
    return None


def audit(spec: WebSocketServiceSpec, manifests: list[Manifest]) -> list[str]:
    """Problems found in the rendered manifests; empty when every invariant holds in them."""
    problems: list[str] = []
    cm: dict[str, str] = (_find(manifests, "ConfigMap") or {"data": {}})["data"]
    dep = _find(manifests, "Deployment")
    hpa = _find(manifests, "HorizontalPodAutoscaler")
    pdb = _find(manifests, "PodDisruptionBudget")
    if dep is None or pdb is None or not cm:
        return ["the Deployment, PodDisruptionBudget and ConfigMap must always be rendered"]
    pod: dict[str, Any] = dep["spec"]["template"]["spec"]
    container = pod["containers"][0]
    window = int(cm[c.ENV_PING_INTERVAL]) + int(cm[c.ENV_PING_TIMEOUT])
    need_idle = window + spec.load_balancer.margin
    pre_stop_hook = container["lifecycle"]["preStop"]
    pre_stop = pre_stop_hook["sleep"]["seconds"] if "sleep" in pre_stop_hook else int(cm[c.ENV_PRESTOP_SECONDS])
    drain = int(cm[c.ENV_DRAIN_SECONDS])

    idle, lifetime, draining = _lb_idle_and_lifetime(manifests)
    if idle is not None and idle < need_idle:
        problems.append(f"I1: rendered LB idle timeout {idle}s < heartbeat window {window}s + margin")
    if lifetime is not None and lifetime < need_idle:
        problems.append(f"I1: rendered LB lifetime cap {lifetime}s < heartbeat window {window}s + margin")
    if lifetime is not None and idle is not None and lifetime < idle:
        problems.append(f"I14: rendered lifetime {lifetime}s < idle timeout {idle}s")
    ing = _find(manifests, "Ingress")
    if ing and "alb.ingress.kubernetes.io/load-balancer-attributes" in ing["metadata"]["annotations"]:
        # ALB attribute ranges: idle 1-4000 s, deregistration delay 0-3600 s.
        if idle is not None and not 1 <= idle <= 4000:
            problems.append(f"I11: rendered ALB idle timeout {idle}s outside 1-4000s")
        if draining is not None and not 0 <= draining <= 3600:
            problems.append(f"I11: rendered ALB deregistration delay {draining}s outside 0-3600s")
    pooled = profile(spec).upstream_idle or idle  # ALB and Envoy: the idle timeout covers backend connections
    keep_alive = int(cm[c.ENV_HTTP_KEEPALIVE])
    if pooled is not None and keep_alive <= pooled:
        problems.append(
            f"keep-alive: rendered {c.ENV_HTTP_KEEPALIVE} {keep_alive}s <= the LB's idle pooled connection {pooled}s"
        )
    grace = pod["terminationGracePeriodSeconds"]
    if grace < pre_stop + drain + spec.shutdown.buffer:
        problems.append(f"I2: rendered terminationGracePeriodSeconds {grace}s < preStop + drain + buffer")
    rp = container["readinessProbe"]
    if pre_stop < (rp["failureThreshold"] + 1) * rp["periodSeconds"]:
        problems.append(f"I3: rendered preStop {pre_stop}s < (readiness failureThreshold + 1) x periodSeconds")
    if draining is not None and draining < pre_stop + drain:
        problems.append(f"I4: rendered LB connection draining {draining}s < preStop + drain {pre_stop + drain}s")
    floor = hpa["spec"]["minReplicas"] if hpa else dep["spec"]["replicas"]
    if floor < pdb["spec"]["minAvailable"] + 1:
        problems.append(f"I5: {floor} replicas leave no eviction under PDB minAvailable {pdb['spec']['minAvailable']}")
    if hpa and hpa["spec"]["maxReplicas"] < hpa["spec"]["minReplicas"]:
        problems.append("I5: HPA maxReplicas < minReplicas")
    ru = dep["spec"]["strategy"]["rollingUpdate"]
    if ru["maxUnavailable"] != 0 or ru["maxSurge"] < 1:
        problems.append(f"I6: rendered rolling update {ru}")
    ready_path = container["readinessProbe"]["httpGet"]["path"]
    live_path = container["livenessProbe"]["httpGet"]["path"]
    if ready_path == live_path or live_path in c.REDIS_DEPENDENT_PATHS:
        problems.append(f"I7: rendered liveness path {live_path!r} (readiness {ready_path!r})")
    sp = container["startupProbe"]
    if sp["failureThreshold"] * sp["periodSeconds"] < spec.probes.startup.budget:
        problems.append("I8: rendered startup window below the startup budget")
    if hpa and "replicas" in dep["spec"]:
        problems.append("I9: the Deployment sets replicas while an HPA owns scaling")
    if "polling" in cm[c.ENV_TRANSPORTS].split(",") and _has_affinity(manifests) is False:
        problems.append("I10: polling is enabled but the rendered load balancer has no affinity")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        if container[probe]["timeoutSeconds"] >= container[probe]["periodSeconds"]:
            problems.append(f"I12: rendered {probe} timeoutSeconds >= periodSeconds")
    if int(cm[c.ENV_REPLAY_TTL]) < window + drain:
        problems.append("I13: rendered replay TTL below heartbeat window + drain")
    return problems
