"""AWS Load Balancer Controller: an ALB with IP targets, lb_cookie stickiness and readiness gates.

Readiness gates (label the namespace elbv2.k8s.aws/pod-readiness-gate-inject=enabled)
are injected only when the Service and Ingress exist before the pods, which is why
the reconciler applies them before the Deployment.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wsfleet_operator.model import Peers
from wsfleet_operator.providers.base import INGRESS, LbProfile, Provider, ingress

if TYPE_CHECKING:  # the renderers' input, for types only: render imports this layer
    from wsfleet_operator.render.context import Context, Manifest

P = "alb.ingress.kubernetes.io/"
# ALB health check limits: interval 5-300 s, timeout 2-120 s and below the interval,
# thresholds 2-10.
HC_INTERVAL = (5, 300)
HC_TIMEOUT = (2, 120)
HC_THRESHOLD = (2, 10)


def _clamp(value: int, bounds: tuple[int, int]) -> int:
    return max(bounds[0], min(bounds[1], value))


def ingress_annotations(ctx: Context) -> dict[str, str]:
    spec, t = ctx.spec, ctx.t
    ready = spec.probes.readiness
    interval = _clamp(ready.period, HC_INTERVAL)
    tg = [f"deregistration_delay.timeout_seconds={t.lb_drain}"]
    if spec.affinity.mode == "cookie":
        tg += [
            "stickiness.enabled=true",
            "stickiness.type=lb_cookie",
            f"stickiness.lb_cookie.duration_seconds={spec.affinity.ttl}",
        ]
    return {
        P + "scheme": spec.load_balancer.scheme,
        # IP targets: stickiness reaches pods, and deregistration follows pod readiness.
        P + "target-type": "ip",
        P + "load-balancer-attributes": f"idle_timeout.timeout_seconds={t.idle}",
        P + "target-group-attributes": ",".join(tg),
        P + "healthcheck-path": ready.path,
        P + "healthcheck-port": "traffic-port",
        P + "healthcheck-interval-seconds": str(interval),
        P + "healthcheck-timeout-seconds": str(min(_clamp(ready.timeout, HC_TIMEOUT), interval - 1)),
        P + "healthy-threshold-count": str(HC_THRESHOLD[0]),
        P + "unhealthy-threshold-count": str(_clamp(ready.failure_threshold, HC_THRESHOLD)),
        P + "success-codes": "200",
    }


def render(ctx: Context) -> list[Manifest]:
    return [ingress(ctx, ingress_annotations(ctx), ctx.spec.load_balancer.class_name or "alb")]


# With target-type ip the ALB's nodes connect to pod IPs from the VPC's subnets, whose CIDR the
# operator cannot know: the private ranges by default; set networkPolicy.loadBalancer.cidrs to the
# VPC's (or the ALB subnets') CIDR to narrow it.
PRIVATE_RANGES = Peers(cidrs=["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"])
PROVIDER = Provider(
    LbProfile(
        "alb",
        "AWS ALB",
        30,
        "idle_timeout.timeout_seconds",
        idle_max=4000,  # ALB attribute range 1-4000
        drain_setting="deregistration_delay.timeout_seconds",
        drain_max=3600,  # target group attribute range 0-3600
        cookie_ttl_max=604800,  # stickiness.lb_cookie.duration_seconds range 1-604800
        client_ip_affinity=False,  # ALB has no source-IP stickiness
        fixed_cookie_name="AWSALB",
    ),
    (INGRESS,),
    render,
    sources=lambda ctx: PRIVATE_RANGES,
)
