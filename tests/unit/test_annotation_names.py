"""Every annotation the renderers write is a name its controller reads.

An annotation a controller does not know is ignored without a word: a misspelt
`proxy-read-timeout` would leave ingress-nginx at its 60 s default and cut every idle socket. The
table below holds each name with where its controller defines it, read from upstream source at the
commit named (the module proxy serves none of these three controllers, so the test cannot read
them itself; re-read the file named when a controller is upgraded):

- ingress-nginx kubernetes/ingress-nginx@dbb11b92 (2026-03-20), internal/ingress/annotations/
- AWS Load Balancer Controller kubernetes-sigs/aws-load-balancer-controller@225f4456 (2026-08-17),
  pkg/annotations/constants.go (the attribute keys inside the values: docs/guide/ingress/annotations.md)
- ingress-gce kubernetes/ingress-gce@acbcf5d6 (2026-08-21), pkg/annotations/, pkg/negannotation/
- cert-manager's ingress-shim annotations (cert-manager.io/issuer, cert-manager.io/cluster-issuer)

The renderers are driven over every example and the variants that add annotations (CORS, TLS
with either kind of issuer, connection limits, each affinity mode), and every key they write must be in the table.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from tests.conftest import EXAMPLES
from tests.unit.strategies import resource
from wsfleet_operator.render import render_all
from wsfleet_operator.validation import SpecError, parse_and_check

NGINX_SRC = "ingress-nginx internal/ingress/annotations/"
ALB_SRC = "aws-load-balancer-controller pkg/annotations/constants.go"
DOCUMENTED: dict[str, str] = {
    **{
        f"nginx.ingress.kubernetes.io/{name}": NGINX_SRC + path
        for name, path in {
            "proxy-read-timeout": "proxy/main.go",
            "proxy-send-timeout": "proxy/main.go",
            "proxy-buffering": "proxy/main.go",
            "proxy-body-size": "proxy/main.go",
            "limit-rps": "ratelimit/main.go",
            "limit-connections": "ratelimit/main.go",
            "affinity": "sessionaffinity/main.go",
            "affinity-mode": "sessionaffinity/main.go",
            "session-cookie-name": "sessionaffinity/main.go",
            "session-cookie-max-age": "sessionaffinity/main.go",
            "session-cookie-expires": "sessionaffinity/main.go",
            "session-cookie-path": "sessionaffinity/main.go",
            "session-cookie-change-on-failure": "sessionaffinity/main.go",
            "session-cookie-samesite": "sessionaffinity/main.go",
            "session-cookie-secure": "sessionaffinity/main.go",
            "upstream-hash-by": "upstreamhashby/main.go",
            "enable-cors": "cors/main.go",
            "cors-allow-origin": "cors/main.go",
            "cors-allow-credentials": "cors/main.go",
        }.items()
    },
    **{
        f"alb.ingress.kubernetes.io/{name}": f"{ALB_SRC} {const}"
        for name, const in {
            "scheme": "IngressSuffixScheme",
            "target-type": "IngressSuffixTargetType",
            "load-balancer-attributes": "IngressSuffixLoadBalancerAttributes",
            "target-group-attributes": "IngressSuffixTargetGroupAttributes",
            "healthcheck-path": "IngressSuffixHealthCheckPath",
            "healthcheck-port": "IngressSuffixHealthCheckPort",
            "healthcheck-interval-seconds": "IngressSuffixHealthCheckIntervalSeconds",
            "healthcheck-timeout-seconds": "IngressSuffixHealthCheckTimeoutSeconds",
            "healthy-threshold-count": "IngressSuffixHealthyThresholdCount",
            "unhealthy-threshold-count": "IngressSuffixUnhealthyThresholdCount",
            "success-codes": "IngressSuffixSuccessCodes",
            "listen-ports": "IngressSuffixListenPorts",  # deploy/examples/alb.yaml passes it through
        }.items()
    },
    "kubernetes.io/ingress.class": "ingress-gce pkg/annotations/ingress.go IngressClassKey",
    "cloud.google.com/backend-config": "ingress-gce pkg/annotations/service.go BackendConfigKey",
    "cloud.google.com/neg": "ingress-gce pkg/negannotation/negannotation.go NEGAnnotationKey",
    "cert-manager.io/issuer": "cert-manager ingress-shim",
    "cert-manager.io/cluster-issuer": "cert-manager ingress-shim",
}
# The attribute keys the ALB annotations carry in their values (AWS's load balancer and target group
# attribute names, as the controller's annotations guide shows them).
ALB_ATTRIBUTES = {
    "idle_timeout.timeout_seconds",
    "deregistration_delay.timeout_seconds",
    "stickiness.enabled",
    "stickiness.type",
    "stickiness.lb_cookie.duration_seconds",
}
# Annotations the operator writes for its own use, read by nobody else.
OWN_PREFIXES = ("wsfleet.dev/",)


def _variants() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for path in EXAMPLES:
        doc = resource_from(path)
        out[path.stem] = doc
        for mode in ("cookie", "clientIP", "none"):
            changed = copy.deepcopy(doc)
            changed["spec"]["affinity"] = {"mode": mode}
            if mode == "none":
                changed["spec"]["transports"] = ["websocket"]
            lb = changed["spec"].setdefault("loadBalancer", {"provider": "none"})
            lb["cors"] = {"allowOrigins": ["https://app.example.com"]}
            lb["rateLimit"] = {"rps": 50, "connections": 100}
            if lb.get("provider") in ("nginx", "alb", "gce"):
                kind = "Issuer" if mode == "clientIP" else "ClusterIssuer"
                lb["tls"] = {"issuer": {"kind": kind, "name": "letsencrypt"}, "secretName": "chat-tls"}
            out[f"{path.stem} {mode}"] = changed
    return out


def resource_from(path: Any) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    return doc


def _written(objs: list[dict[str, Any]]) -> set[str]:
    keys: set[str] = set()
    for obj in objs:
        keys |= set(obj["metadata"].get("annotations") or {})
        template = obj.get("spec", {}).get("template", {})
        keys |= set(template.get("metadata", {}).get("annotations") or {})
    return {k for k in keys if not k.startswith(OWN_PREFIXES)}


def test_every_annotation_written_is_a_name_its_controller_reads() -> None:
    written: set[str] = set()
    for name, doc in _variants().items():
        try:
            wss = parse_and_check(doc, name)
        except SpecError:  # a variant the rules refuse (clientIP on ALB, ...) renders nothing
            continue
        written |= _written(render_all(wss))
    unknown = sorted(written - set(DOCUMENTED))
    assert not unknown, f"annotations no controller is known to read: {unknown}"
    # the table is not larger than what is written: a stale row would vouch for nothing
    assert set(DOCUMENTED) == written, sorted(set(DOCUMENTED) - written)


@pytest.mark.parametrize("annotation", ["load-balancer-attributes", "target-group-attributes"])
def test_the_alb_attribute_keys_are_awss(annotation: str) -> None:
    keys: set[str] = set()
    for mode in ("cookie", "none"):
        spec = {"loadBalancer": {"provider": "alb"}, "affinity": {"mode": mode}}
        if mode == "none":
            spec["transports"] = ["websocket"]
        for obj in render_all(parse_and_check(resource(spec))):
            value = (obj["metadata"].get("annotations") or {}).get(f"alb.ingress.kubernetes.io/{annotation}")
            if value:
                keys |= {pair.split("=", 1)[0] for pair in value.split(",")}
    assert keys
    assert keys <= ALB_ATTRIBUTES, keys - ALB_ATTRIBUTES
