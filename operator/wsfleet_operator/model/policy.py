"""What platform teams add around the pods: network policy, monitoring, pod template overrides."""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field, StringConstraints, model_validator

from wsfleet_operator.durations import Duration
from wsfleet_operator.model.base import DnsName, Opaque, Port, _Spec

# An IPv4 or IPv6 CIDR ("10.0.0.0/8", "fd00::/8").
Cidr = Annotated[str, StringConstraints(min_length=3, max_length=43, pattern=r"^[0-9a-fA-F.:]+/[0-9]{1,3}$")]
Labels = dict[
    Annotated[str, StringConstraints(min_length=1, max_length=317)], Annotated[str, StringConstraints(max_length=63)]
]


class Peers(_Spec):
    """Where traffic may come from or go to: namespaces (by label), pods, and address blocks.

    Each namespace label set, each pod label set and each CIDR is a peer of its own (a union)."""

    namespaces: list[Labels] = Field(
        default_factory=list,
        max_length=32,
        description="Namespaces by label (e.g. {kubernetes.io/metadata.name: ingress-nginx}); every pod in them.",
    )
    pods: list[Labels] = Field(
        default_factory=list, max_length=32, description="Pods by label, in the resource's own namespace."
    )
    cidrs: list[Cidr] = Field(default_factory=list, max_length=64, description="Address blocks (ipBlock).")

    @property
    def empty(self) -> bool:
        return not (self.namespaces or self.pods or self.cidrs)


class Sources(Peers):
    """Peers that must name at least one source: an empty list in a NetworkPolicy rule admits anyone."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "(has(self.namespaces) && size(self.namespaces) > 0) || "
                    "(has(self.pods) && size(self.pods) > 0) || (has(self.cidrs) && size(self.cidrs) > 0)",
                    "message": "name at least one namespace, pod or CIDR: an empty source list admits anyone",
                }
            ]
        }
    )

    @model_validator(mode="after")
    def _not_empty(self) -> Sources:
        if self.empty:
            raise ValueError("name at least one namespace, pod or CIDR: an empty source list admits anyone")
        return self


class EgressRule(_Spec):
    """An extra destination the workload may reach."""

    to: Peers = Field(default_factory=Peers, description="Destinations; empty means any address.")
    ports: list[Port] = Field(min_length=1, max_length=32, description="TCP ports.")


class RedisEgress(_Spec):
    """Where Redis (and Sentinel) live. The operator never reads the URL Secret, so it cannot
    derive this; the default is any address on the Redis and Sentinel ports."""

    to: Peers = Field(default_factory=Peers, description="Redis destinations; empty means any address.")
    ports: list[Port] = Field(
        default_factory=lambda: [6379, 26379], min_length=1, max_length=8, description="Redis and Sentinel ports."
    )


class NetworkPolicy(_Spec):
    """A NetworkPolicy for the fleet's pods: ingress only from the load balancer and the monitoring
    namespace, egress only to Redis, DNS and the extra rules. Opt out with enabled: false."""

    enabled: bool = Field(default=True, description="Render the NetworkPolicy. false: no policy (opt-out).")
    load_balancer: Sources | None = Field(
        default=None,
        description=(
            "Who may reach the Socket.IO port. Omitted: the provider's default (ingress-nginx namespace, Envoy "
            "Gateway namespace, Google front-end ranges for GCE/GKE, private ranges for ALB, this namespace for "
            "none)."
        ),
    )
    monitoring_namespace: DnsName = Field(
        default="monitoring", description="Namespace whose pods may scrape the metrics port."
    )
    redis: RedisEgress = Field(default_factory=RedisEgress, description="Egress to Redis / Sentinel.")
    egress: list[EgressRule] = Field(
        default_factory=list, max_length=32, description="Extra egress rules (e.g. a JWKS endpoint, an API)."
    )


class ServiceMonitor(_Spec):
    """A Prometheus Operator ServiceMonitor."""

    enabled: bool = Field(default=False, description="Render a ServiceMonitor (needs the Prometheus Operator CRDs).")
    interval: Duration = Field(default=30, description="Scrape interval.")
    labels: dict[str, str] = Field(default_factory=dict, description="Labels your Prometheus selects on.")


class PrometheusRule(_Spec):
    """A Prometheus Operator PrometheusRule with the fleet's SLO alerts."""

    enabled: bool = Field(default=False, description="Render a PrometheusRule (needs the Prometheus Operator CRDs).")
    labels: dict[str, str] = Field(default_factory=dict, description="Labels your Prometheus selects on.")


class Monitoring(_Spec):
    """Prometheus Operator objects."""

    service_monitor: ServiceMonitor = Field(default_factory=ServiceMonitor, description="ServiceMonitor.")
    prometheus_rule: PrometheusRule = Field(default_factory=PrometheusRule, description="PrometheusRule.")


class PodTemplate(_Spec):
    """Overrides for platform teams, merged into the pod template."""

    labels: dict[str, str] = Field(default_factory=dict, description="Extra pod labels.")
    annotations: dict[str, str] = Field(default_factory=dict, description="Extra pod annotations.")
    node_selector: dict[str, str] = Field(default_factory=dict, description="nodeSelector.")
    tolerations: list[Opaque] = Field(default_factory=list, description="Tolerations.")
    affinity: Opaque | None = Field(default=None, description="Pod affinity / anti-affinity / node affinity.")
    priority_class_name: DnsName | None = Field(default=None, description="priorityClassName.")
    service_account_name: DnsName | None = Field(default=None, description="serviceAccountName.")
    image_pull_secrets: list[DnsName] = Field(default_factory=list, description="Names of image pull Secrets.")
    volumes: list[Opaque] = Field(default_factory=list, description="Extra volumes.")
    volume_mounts: list[Opaque] = Field(
        default_factory=list, description="Extra volume mounts for the workload container."
    )
