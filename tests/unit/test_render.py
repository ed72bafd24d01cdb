"""Renderers: every example renders, validates against Kubernetes 1.36, and carries the derived numbers.

Matrix: examples x {schema validation, audit}; providers x {objects rendered, timeout
values, affinity}; Deployment x {PodSecurity restricted, probes, preStop action, HPA
ownership of replicas, config checksum}; ownership (owner references with a uid).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.conftest import EXAMPLES
from tests.unit.strategies import resource
from wsfleet_common import contract
from wsfleet_operator import naming
from wsfleet_operator.model import WebSocketService
from wsfleet_operator.render import audit, owned_kinds, render_all
from wsfleet_operator.validation import check, parse_and_check, parse_resource

# Kinds whose schemas come from third-party CRDs, not from Kubernetes itself.
CRD_KINDS = {"BackendConfig", "HTTPRoute", "BackendTrafficPolicy", "GCPBackendPolicy", "HealthCheckPolicy",
             "TraefikService", "ServiceMonitor", "PrometheusRule"}  # fmt: skip


def load(path: Path) -> WebSocketService:
    return parse_and_check(yaml.safe_load(path.read_text()), str(path))


def render(spec: dict[str, Any], uid: str | None = None) -> dict[str, dict[str, Any]]:
    wss = parse_resource(resource(spec, uid=uid))
    assert check(wss.spec) == []
    return {m["kind"]: m for m in render_all(wss)}


def test_there_is_an_example_per_provider() -> None:
    providers = set()
    for path in EXAMPLES:
        lb = load(path).spec.load_balancer
        providers.add(f"gateway/{lb.implementation}" if lb.provider == "gateway" else lb.provider)
    assert providers == {
        "nginx", "alb", "gce", "gateway/generic", "gateway/envoy", "gateway/gke", "gateway/traefik", "none"
    }  # fmt: skip


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_renders_valid_objects(path: Path) -> None:
    wss = load(path)
    manifests = render_all(wss)
    assert audit.audit(wss.spec, manifests) == []
    for m in manifests:
        if m["kind"] in CRD_KINDS:
            continue
        kubernetes_validate.validate(m, "1.36.0", strict=True)
    kinds = [m["kind"] for m in manifests]
    # Apply order: the Service and LB objects before the Deployment (ALB / NEG readiness gates).
    assert kinds.index("Service") < kinds.index("Deployment")
    for lb_kind in set(kinds) & {"Ingress", "HTTPRoute", "BackendConfig"}:
        assert kinds.index(lb_kind) < kinds.index("Deployment")
    assert {(m["apiVersion"], m["kind"]) for m in manifests} <= set(owned_kinds())


def _pod(objs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    pod: dict[str, Any] = objs["Deployment"]["spec"]["template"]["spec"]
    return pod


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    """The PodSecurity 'restricted' profile, as the admission plugin checks it."""
    out = []
    psc = pod.get("securityContext", {})
    for c in pod["containers"]:
        sc = c.get("securityContext", {})
        if not (sc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
            out.append("runAsNonRoot")
        if sc.get("runAsUser", psc.get("runAsUser")) == 0:
            out.append("runAsUser 0")
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append("allowPrivilegeEscalation")
        if sc.get("capabilities", {}).get("drop") != ["ALL"]:
            out.append("capabilities.drop")
        if set(sc.get("capabilities", {}).get("add", [])) - {"NET_BIND_SERVICE"}:
            out.append("capabilities.add")
        seccomp = sc.get("seccompProfile", psc.get("seccompProfile", {})).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            out.append("seccompProfile")
        if sc.get("privileged"):
            out.append("privileged")
    allowed = {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
    for v in pod.get("volumes", []):
        if not set(v) - {"name"} <= allowed:
            out.append(f"volume {v['name']}")
    if pod.get("hostNetwork") or pod.get("hostPID") or pod.get("hostIPC"):
        out.append("host namespaces")
    return out


def test_pod_passes_podsecurity_restricted() -> None:
    pod = _pod(render({}))
    assert restricted_violations(pod) == []
    c = pod["containers"][0]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]
    assert c["securityContext"]["runAsUser"] == 1000


def test_restricted_check_can_fail() -> None:
    pod = _pod(render({}))
    pod["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    pod["volumes"].append({"name": "h", "hostPath": {"path": "/"}})
    assert restricted_violations(pod) == ["allowPrivilegeEscalation", "volume h"]


def test_deployment_timeline_and_probes() -> None:
    objs = render({})
    dep = objs["Deployment"]
    pod = _pod(objs)
    c = pod["containers"][0]
    assert pod["terminationGracePeriodSeconds"] == 45
    assert c["lifecycle"]["preStop"] == {"httpGet": {"path": contract.PRESTOP_PATH, "port": "http"}}
    assert objs["ConfigMap"]["data"][contract.ENV_PRESTOP_SECONDS] == "10"
    assert c["readinessProbe"]["httpGet"]["path"] == contract.READY_PATH
    assert c["livenessProbe"]["httpGet"]["path"] == contract.LIVE_PATH
    assert c["startupProbe"]["failureThreshold"] * c["startupProbe"]["periodSeconds"] == 60
    assert dep["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    assert [t["topologyKey"] for t in pod["topologySpreadConstraints"]] == [
        "topology.kubernetes.io/zone",
        "kubernetes.io/hostname",
    ]
    env = {e["name"]: e for e in c["env"]}
    assert env[contract.ENV_REDIS_URL]["valueFrom"]["secretKeyRef"] == {"name": "wsfleet-redis", "key": "url"}
    assert c["envFrom"] == [{"configMapRef": {"name": "chat-config"}}]


def test_sleep_prestop_for_images_without_the_endpoint() -> None:
    c = _pod(render({"shutdown": {"preStopAction": "sleep", "preStop": "15s"}}))["containers"][0]
    assert c["lifecycle"]["preStop"] == {"sleep": {"seconds": 15}}


def test_hpa_owns_replicas() -> None:
    objs = render({})
    assert "replicas" not in objs["Deployment"]["spec"]  # I9
    hpa = objs["HorizontalPodAutoscaler"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 10)
    assert hpa["behavior"]["scaleUp"] == {
        "stabilizationWindowSeconds": 0,
        "selectPolicy": "Max",
        "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
    }
    assert hpa["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300
    assert hpa["behavior"]["scaleDown"]["policies"] == [{"type": "Percent", "value": 50, "periodSeconds": 60}]
    assert {m["resource"]["name"] for m in hpa["metrics"]} == {"cpu", "memory"}


def test_without_autoscaling_the_deployment_sets_replicas() -> None:
    objs = render({"autoscaling": {"enabled": False}, "replicas": {"min": 4}})
    assert "HorizontalPodAutoscaler" not in objs
    assert objs["Deployment"]["spec"]["replicas"] == 4


def test_connections_metric_targets_the_contract_metric() -> None:
    hpa = render({"autoscaling": {"connectionsPerPod": 5000, "memory": 0}})["HorizontalPodAutoscaler"]["spec"]
    pods = [m for m in hpa["metrics"] if m["type"] == "Pods"]
    assert pods[0]["pods"]["metric"]["name"] == contract.METRIC_CONNECTIONS
    assert pods[0]["pods"]["target"]["averageValue"] == "5000"


def test_pdb() -> None:
    pdb = render({"disruption": {"minAvailable": 1}})["PodDisruptionBudget"]["spec"]
    assert pdb == {
        "minAvailable": 1,
        "selector": {"matchLabels": {naming.LABEL_SERVICE: "chat"}},
        "unhealthyPodEvictionPolicy": "AlwaysAllow",
    }


def test_config_checksum_rolls_pods_only_on_config_change() -> None:
    def checksum(spec: dict[str, Any]) -> str:
        return str(
            render(spec)["Deployment"]["spec"]["template"]["metadata"]["annotations"][naming.ANNOTATION_CONFIG_CHECKSUM]
        )

    base = checksum({})
    assert checksum({}) == base
    assert checksum({"replicas": {"max": 20}}) == base  # not in the ConfigMap
    assert checksum({"replay": {"maxMessages": 1000}}) != base


def test_owner_reference_only_with_a_uid() -> None:
    assert "ownerReferences" not in render({})["Service"]["metadata"]
    for m in render({}, uid="0b5c")["Service"], render({}, uid="0b5c")["Deployment"]:
        assert m["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "wsfleet.dev/v1alpha1",
                "kind": "WebSocketService",
                "name": "chat",
                "uid": "0b5c",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]


def test_nginx_timeouts_and_cookie() -> None:
    spec = {"loadBalancer": {"provider": "nginx", "cors": {"allowOrigins": ["https://a.example"]}}}
    ann = render(spec)["Ingress"]["metadata"]["annotations"]
    p = "nginx.ingress.kubernetes.io/"
    assert ann[p + "proxy-read-timeout"] == ann[p + "proxy-send-timeout"] == "80"
    assert ann[p + "affinity"] == "cookie"
    assert ann[p + "session-cookie-name"] == "WSFLEET"
    assert ann[p + "session-cookie-max-age"] == "86400"
    assert ann[p + "session-cookie-change-on-failure"] == "true"
    assert (ann[p + "session-cookie-samesite"], ann[p + "session-cookie-secure"]) == ("None", "true")
    assert ann[p + "cors-allow-origin"] == "https://a.example"
    assert ann[p + "limit-rps"] == "100"


def test_nginx_client_ip() -> None:
    ann = render({"loadBalancer": {"provider": "nginx"}, "affinity": {"mode": "clientIP"}})["Ingress"]["metadata"]
    assert ann["annotations"]["nginx.ingress.kubernetes.io/upstream-hash-by"] == "$remote_addr"
    assert "nginx.ingress.kubernetes.io/affinity" not in ann["annotations"]


def test_alb_attributes() -> None:
    ing = render({"loadBalancer": {"provider": "alb"}})["Ingress"]
    ann = ing["metadata"]["annotations"]
    p = "alb.ingress.kubernetes.io/"
    assert ann[p + "load-balancer-attributes"] == "idle_timeout.timeout_seconds=80"
    assert ann[p + "target-group-attributes"] == (
        "deregistration_delay.timeout_seconds=65,stickiness.enabled=true,stickiness.type=lb_cookie,"
        "stickiness.lb_cookie.duration_seconds=86400"
    )
    assert ann[p + "target-type"] == "ip"
    assert ann[p + "healthcheck-path"] == contract.READY_PATH
    assert ing["spec"]["ingressClassName"] == "alb"


def test_alb_health_check_stays_inside_alb_limits() -> None:
    spec = {
        "loadBalancer": {"provider": "alb"},
        "probes": {"readiness": {"period": "2s", "timeout": "1s"}},
        "shutdown": {"preStop": "30s"},
    }
    ann = render(spec)["Ingress"]["metadata"]["annotations"]
    interval = int(ann["alb.ingress.kubernetes.io/healthcheck-interval-seconds"])
    timeout = int(ann["alb.ingress.kubernetes.io/healthcheck-timeout-seconds"])
    assert 5 <= interval <= 300
    assert 2 <= timeout < interval


def test_gce_lifetime_cap_and_draining() -> None:
    objs = render({"loadBalancer": {"provider": "gce", "maxConnectionLifetime": "12h"}})
    bc = objs["BackendConfig"]["spec"]
    assert bc["timeoutSec"] == 43200
    assert bc["connectionDraining"]["drainingTimeoutSec"] == 20 + 30 + 5
    assert bc["sessionAffinity"] == {"affinityType": "GENERATED_COOKIE", "affinityCookieTtlSec": 86400}
    assert bc["healthCheck"]["requestPath"] == contract.READY_PATH
    svc = objs["Service"]["metadata"]["annotations"]
    assert yaml.safe_load(svc["cloud.google.com/backend-config"]) == {"default": "chat"}
    assert objs["Ingress"]["metadata"]["annotations"]["kubernetes.io/ingress.class"] == "gce"


def test_gateway_traefik_sticky_cookie_through_a_traefik_service() -> None:
    spec = {"loadBalancer": {"provider": "gateway", "implementation": "traefik", "gateway": {"name": "traefik"}},
            "affinity": {"mode": "cookie", "cookieName": "CHAT", "ttl": "2h"}}  # fmt: skip
    objs = render(spec)
    ts = objs["TraefikService"]
    (backend,) = ts["spec"]["weighted"]["services"]
    assert backend["name"] == objs["Service"]["metadata"]["name"]
    assert backend["port"] == objs["Service"]["spec"]["ports"][0]["port"]
    assert backend["sticky"]["cookie"] == {"name": "CHAT", "httpOnly": True, "sameSite": "lax", "maxAge": 7200}
    (rule,) = objs["HTTPRoute"]["spec"]["rules"]
    assert rule["backendRefs"] == [{"group": "traefik.io", "kind": "TraefikService", "name": ts["metadata"]["name"]}]
    assert "timeouts" not in rule, "Traefik has no idle timeout for upgraded connections: nothing to render"
    # without cookie affinity the route goes straight to the Service
    plain = render({**spec, "affinity": {"mode": "none"}, "transports": ["websocket"]})
    assert "TraefikService" not in plain
    assert plain["HTTPRoute"]["spec"]["rules"][0]["backendRefs"] == [
        {"name": plain["Service"]["metadata"]["name"], "port": plain["Service"]["spec"]["ports"][0]["port"]}
    ]


def test_gateway_envoy_policy() -> None:
    spec = {"loadBalancer": {"provider": "gateway", "implementation": "envoy", "gateway": {"name": "eg"}}}
    objs = render(spec)
    route = objs["HTTPRoute"]["spec"]
    assert route["parentRefs"][0]["name"] == "eg"
    assert "timeouts" not in route["rules"][0]
    btp = objs["BackendTrafficPolicy"]["spec"]
    assert btp["timeout"]["http"] == {"connectionIdleTimeout": "1m20s", "maxConnectionDuration": "24h"}
    assert btp["loadBalancer"]["consistentHash"]["cookie"] == {"name": "WSFLEET", "ttl": "24h"}
    assert btp["targetRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "chat"}]


def test_gateway_gke_policies() -> None:
    spec = {"loadBalancer": {"provider": "gateway", "implementation": "gke", "gateway": {"name": "gw"}}}
    objs = render(spec)
    assert "timeouts" not in objs["HTTPRoute"]["spec"]["rules"][0]  # the GKE Gateway rejects them
    gbp = objs["GCPBackendPolicy"]["spec"]
    assert gbp["default"]["timeoutSec"] == 86400
    assert gbp["default"]["connectionDraining"]["drainingTimeoutSec"] == 55
    assert gbp["targetRef"] == {"group": "", "kind": "Service", "name": "chat"}
    assert (
        objs["HealthCheckPolicy"]["spec"]["default"]["config"]["httpHealthCheck"]["requestPath"] == contract.READY_PATH
    )


def test_gateway_session_persistence_is_opt_in() -> None:
    base = {"provider": "gateway", "gateway": {"name": "gw"}}
    assert "sessionPersistence" not in render({"loadBalancer": base})["HTTPRoute"]["spec"]["rules"][0]
    rule = render({"loadBalancer": {**base, "sessionPersistence": True}})["HTTPRoute"]["spec"]["rules"][0]
    assert rule["sessionPersistence"]["sessionName"] == "WSFLEET"


def test_none_provider_uses_service_client_ip_affinity() -> None:
    objs = render({"affinity": {"mode": "clientIP", "ttl": "3h"}})
    assert set(objs) == {
        "NetworkPolicy",
        "ConfigMap",
        "Service",
        "Deployment",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    }
    assert objs["Service"]["spec"]["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}


def test_monitoring_objects_when_enabled() -> None:
    objs = render({"monitoring": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}}})
    sm = objs["ServiceMonitor"]["spec"]["endpoints"][0]
    assert (sm["port"], sm["path"]) == ("metrics", contract.METRICS_PATH)
    rules = {r["alert"]: r for r in objs["PrometheusRule"]["spec"]["groups"][0]["rules"]}
    assert set(rules) == {
        "WsfleetConnectionChurnHigh",
        "WsfleetHeartbeatTimeoutsHigh",
        "WsfleetAvailabilityLow",
        "WsfleetFastPathVersionMismatch",
    }
    assert contract.METRIC_FAST_PATH_MISMATCH in rules["WsfleetFastPathVersionMismatch"]["expr"]
    assert "> 0.01" in rules["WsfleetConnectionChurnHigh"]["expr"]
    assert "> 0.005" in rules["WsfleetHeartbeatTimeoutsHigh"]["expr"]
    assert "< 0.999" in rules["WsfleetAvailabilityLow"]["expr"]
    assert contract.METRIC_DISCONNECTS in rules["WsfleetConnectionChurnHigh"]["expr"]


def test_rendering_is_pure() -> None:
    assert render({"loadBalancer": {"provider": "nginx"}}) == render({"loadBalancer": {"provider": "nginx"}})


def test_audit_catches_a_mangled_manifest() -> None:
    wss = parse_resource(resource({"loadBalancer": {"provider": "nginx"}}))
    manifests = render_all(wss)
    ing = next(m for m in manifests if m["kind"] == "Ingress")
    ing["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-read-timeout"] = "60"
    dep = next(m for m in manifests if m["kind"] == "Deployment")
    dep["spec"]["replicas"] = 3
    problems = audit.audit(wss.spec, manifests)
    assert [p.split(":")[0] for p in problems] == ["I1", "I9"]


@pytest.mark.parametrize(
    ("lb", "pooled"),
    [
        ({"provider": "nginx"}, 60),  # upstream-keepalive-timeout
        ({"provider": "alb"}, 80),  # the ALB's idle timeout covers target connections: window 50 + margin 30
        ({"provider": "alb", "idleTimeout": "5m"}, 300),
        ({"provider": "gce"}, 600),
        ({"provider": "gateway", "implementation": "envoy", "gateway": {"name": "eg"}, "idleTimeout": "2m"}, 120),
        # serversTransport idleConnTimeout
        ({"provider": "gateway", "implementation": "traefik", "gateway": {"name": "traefik"}}, 90),
        ({"provider": "gateway", "implementation": "generic", "gateway": {"name": "gw"}}, 3600),
        ({"provider": "none"}, 3600),
    ],
)
def test_the_pod_keeps_idle_http_connections_longer_than_the_load_balancer(lb: dict[str, Any], pooled: int) -> None:
    """A pod that closes an idle pooled connection first races the LB's next request on it, and the
    LB answers that request with 502 (measured behind Traefik: 4 of 300 POSTs timed at the pod's
    keep-alive). The rendered keep-alive is the LB's pooled idle time plus the margin."""
    wss = parse_resource(resource({"loadBalancer": lb}))
    manifests = render_all(wss)
    cm = next(m for m in manifests if m["kind"] == "ConfigMap")
    assert cm["data"][contract.ENV_HTTP_KEEPALIVE] == str(pooled + wss.spec.load_balancer.margin)
    assert audit.audit(wss.spec, manifests) == []
    cm["data"][contract.ENV_HTTP_KEEPALIVE] = str(pooled)
    assert [p.split(":")[0] for p in audit.audit(wss.spec, manifests)] == ["I15"]


SECRET_VARS = (contract.ENV_REDIS_URL, contract.ENV_PUBLISH_API_KEY, contract.ENV_JWT_KEY)


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_secrets_reach_the_pod_only_through_secret_key_refs(path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    doc["spec"]["publish"] = {"apiKeySecret": {"name": "pub", "key": "k"}}
    doc["spec"]["auth"] = {"jwt": {"keySecret": {"name": "jwt", "key": "k"}}}
    objs = {m["kind"]: m for m in render_all(parse_resource(doc))}
    assert not set(SECRET_VARS) & set(objs["ConfigMap"]["data"]), "no secret in the ConfigMap"
    env = {e["name"]: e for e in objs["Deployment"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    for var in SECRET_VARS:
        assert set(env[var]) == {"name", "valueFrom"}, env[var]
        assert set(env[var]["valueFrom"]) == {"secretKeyRef"}, env[var]
    # Nothing else in any rendered object names a secret variable with a literal value.
    for m in objs.values():
        text = yaml.safe_dump(m)
        for var in SECRET_VARS:
            assert text.count(var) <= (1 if m["kind"] == "Deployment" else 0), (m["kind"], var)
