"""Check the rules against rendered manifests, reading the numbers back out of them.

validation.check() judges the spec; this module judges what would actually be
applied: annotation strings, probe fields, grace periods. It reads those values
back into a spec (read_back) and evaluates every rule's own CEL on it, so the
audit is the same rule as the admission check, not a third copy; what only
rendered objects can break (I9, I15) is checked here alone. The property tests
require that every spec the checker accepts renders manifests that pass this
audit, so a renderer bug that drops or mangles a value fails a test even when
the derivation in timeouts.py is right. ``wsfleet check`` runs it too.
"""

from __future__ import annotations

from typing import Any

from wsfleet_common import contract as c
from wsfleet_operator.durations import parse
from wsfleet_operator.model import WebSocketServiceSpec
from wsfleet_operator.render.context import Manifest
from wsfleet_operator.timeouts import profile
from wsfleet_operator.validation import broken, spec_document


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


MISSING = "the Deployment, PodDisruptionBudget and ConfigMap must always be rendered"


def _seconds(n: int) -> str:
    """A rendered number of seconds as a CEL duration; unlike durations.format_seconds it keeps a
    mangled negative value negative, so the rules see what was rendered."""
    return f"{n}s"


def read_back(spec: WebSocketServiceSpec, manifests: list[Manifest]) -> dict[str, Any]:
    """The .spec (as JSON) that the rendered objects state: the spec, with every value a rule
    relates replaced by what the rendered objects hold. Derived values become explicit ones, so
    the rules judge what would be applied, not what the spec meant."""
    doc = spec_document(spec)
    cm: dict[str, str] = (_find(manifests, "ConfigMap") or {"data": {}})["data"]
    dep, hpa, pdb = (_find(manifests, k) for k in ("Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget"))
    if dep is None or pdb is None or not cm:
        raise ValueError(MISSING)
    container = dep["spec"]["template"]["spec"]["containers"][0]
    doc["heartbeat"] = {
        "interval": _seconds(int(cm[c.ENV_PING_INTERVAL])),
        "timeout": _seconds(int(cm[c.ENV_PING_TIMEOUT])),
    }
    hook = container["lifecycle"]["preStop"]
    pre_stop = hook["sleep"]["seconds"] if "sleep" in hook else int(cm[c.ENV_PRESTOP_SECONDS])
    doc["shutdown"] |= {
        "preStop": _seconds(pre_stop),
        "drain": _seconds(int(cm[c.ENV_DRAIN_SECONDS])),
        "terminationGracePeriod": _seconds(dep["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]),
    }
    for name in ("startup", "readiness", "liveness"):
        probe = container[f"{name}Probe"]
        doc["probes"][name] |= {
            "path": probe["httpGet"]["path"],
            "period": _seconds(probe["periodSeconds"]),
            "timeout": _seconds(probe["timeoutSeconds"]),
            "failureThreshold": probe["failureThreshold"],
        }
    doc["replicas"]["min"] = hpa["spec"]["minReplicas"] if hpa else dep["spec"]["replicas"]
    doc["replicas"]["max"] = hpa["spec"]["maxReplicas"] if hpa else doc["replicas"]["min"]
    doc["disruption"]["minAvailable"] = pdb["spec"]["minAvailable"]
    ru = dep["spec"]["strategy"]["rollingUpdate"]
    doc["rollout"] = {"maxSurge": ru["maxSurge"], "maxUnavailable": ru["maxUnavailable"]}
    doc["transports"] = cm[c.ENV_TRANSPORTS].split(",")
    if _has_affinity(manifests) is False:
        doc["affinity"]["mode"] = "none"
    doc["replay"]["ttl"] = _seconds(int(cm[c.ENV_REPLAY_TTL]))
    idle, lifetime, draining = _lb_idle_and_lifetime(manifests)
    lb = doc["loadBalancer"]
    if idle is not None:
        lb["idleTimeout"] = _seconds(idle)
    if lifetime is not None:
        lb["maxConnectionLifetime"] = _seconds(lifetime)
    if draining is not None:
        lb["deregistrationDelay"] = _seconds(draining)
    return doc


def _rendered_only(spec: WebSocketServiceSpec, manifests: list[Manifest], doc: dict[str, Any]) -> list[str]:
    """I9 and I15: what only the rendered objects can break (invariants.py names them)."""
    problems = []
    dep, hpa = _find(manifests, "Deployment"), _find(manifests, "HorizontalPodAutoscaler")
    if hpa and dep and "replicas" in dep["spec"]:
        problems.append("I9: the Deployment sets replicas while an HPA owns scaling")
    cm: dict[str, str] = (_find(manifests, "ConfigMap") or {"data": {}})["data"]
    idle = parse(doc["loadBalancer"]["idleTimeout"]) if "idleTimeout" in doc["loadBalancer"] else None
    pooled = profile(spec).upstream_idle or idle  # ALB and Envoy: the idle timeout covers backend connections
    keep_alive = int(cm[c.ENV_HTTP_KEEPALIVE])
    if pooled is not None and keep_alive <= pooled:
        problems.append(
            f"I15: rendered {c.ENV_HTTP_KEEPALIVE} {keep_alive}s must exceed the load balancer's idle pooled "
            f"connection {pooled}s"
        )
    return problems


RENDERED_ONLY = ("I9", "I15")


def audit(spec: WebSocketServiceSpec, manifests: list[Manifest]) -> list[str]:
    """Problems found in the rendered manifests; empty when every rule holds in them: each rule's
    own CEL on the values read back (read_back), and the rendered-only rules."""
    cm = (_find(manifests, "ConfigMap") or {"data": {}})["data"]
    if _find(manifests, "Deployment") is None or _find(manifests, "PodDisruptionBudget") is None or not cm:
        return [MISSING]
    doc = read_back(spec, manifests)
    found = [f"{v.rule}: rendered: {v.message.removeprefix(v.rule + ': ')}" for v in broken(doc)]
    return found + _rendered_only(spec, manifests, doc)
