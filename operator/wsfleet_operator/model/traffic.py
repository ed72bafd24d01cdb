"""How clients reach the pods: heartbeat, load balancer, TLS, CORS, affinity."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from wsfleet_operator.durations import Duration
from wsfleet_operator.model.base import DnsName, GatewayImplementation, HttpPath, Provider, _Spec


class Heartbeat(_Spec):
    """Socket.IO (Engine.IO) heartbeat. The heartbeat window is interval + timeout."""

    interval: Duration = Field(
        default=25, description="pingInterval: how often the server pings each client. Engine.IO default 25s."
    )
    timeout: Duration = Field(
        default=25,
        description="pingTimeout: how long after a ping the server waits for the pong before dropping the client.",
    )


class GatewayRef(_Spec):
    """The Gateway (Gateway API) that the HTTPRoute attaches to."""

    name: DnsName = Field(description="Gateway name.")
    namespace: DnsName | None = Field(default=None, description="Gateway namespace; the resource's own if omitted.")
    section_name: str | None = Field(default=None, max_length=253, description="Listener name on the Gateway.")


class Issuer(_Spec):
    """A cert-manager issuer that provisions the TLS certificate."""

    name: DnsName = Field(description="Issuer name.")
    kind: Literal["Issuer", "ClusterIssuer"] = Field(default="ClusterIssuer", description="Issuer kind.")


class Tls(_Spec):
    """TLS for the load balancer: an existing Secret, or a cert-manager issuer that creates one."""

    secret_name: DnsName | None = Field(
        default=None, description="TLS Secret name (with an issuer, the Secret it fills)."
    )
    issuer: Issuer | None = Field(
        default=None, description="cert-manager issuer; the certificate goes into secretName."
    )


class Cors(_Spec):
    """Cross-origin policy for browser clients."""

    allow_origins: list[Annotated[str, StringConstraints(min_length=1, max_length=2048)]] = Field(
        default_factory=list,
        max_length=64,
        description="Origins allowed to connect, e.g. https://app.example.com. Empty: same-origin only.",
    )


class RateLimit(_Spec):
    """Per-client-IP limits at the load balancer, to blunt reconnect storms."""

    rps: int = Field(default=100, ge=1, le=100000, description="Requests per second per client IP.")
    connections: int | None = Field(
        default=None, ge=1, le=100000, description="Concurrent connections per client IP; unlimited if omitted."
    )


class LoadBalancer(_Spec):
    """How traffic reaches the fleet, and the load balancer's timeouts."""

    provider: Provider = Field(
        default="none",
        description=(
            "nginx (ingress-nginx; retired upstream, supported for existing installs), alb (AWS Load "
            "Balancer Controller), gce (GKE Ingress + BackendConfig), gateway (Gateway API HTTPRoute), "
            "or none (a ClusterIP Service only; bring your own load balancer)."
        ),
    )
    implementation: GatewayImplementation = Field(
        default="generic",
        description=(
            "With provider gateway: envoy adds a BackendTrafficPolicy, gke a GCPBackendPolicy and HealthCheckPolicy, "
            "traefik a TraefikService carrying the affinity cookie."
        ),
    )
    gateway: GatewayRef | None = Field(default=None, description="With provider gateway: the parent Gateway.")
    host: (
        Annotated[str, StringConstraints(max_length=253, pattern=r"^(\*\.)?[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")] | None
    ) = Field(default=None, description="Public host name. Omitted: every host.")
    path: HttpPath = Field(default="/", description="Path prefix routed to the fleet.")
    class_name: DnsName | None = Field(default=None, description="IngressClass name (nginx, alb, gce).")
    idle_timeout: Duration | None = Field(
        default=None,
        description="Load balancer idle timeout. Derived as heartbeat window + margin when omitted (I1).",
    )
    margin: Duration = Field(default=30, description="How far the idle timeout must exceed the heartbeat window (I1).")
    max_connection_lifetime: Duration = Field(
        default=86400,
        description=(
            "Longest a single connection may live. GCE and GKE Gateway use it as timeoutSec, which is a "
            "lifetime cap for WebSockets there, not an idle timeout; Envoy uses it as maxConnectionDuration."
        ),
    )
    deregistration_delay: Duration | None = Field(
        default=None,
        description=(
            "ALB deregistration_delay / GCE connectionDraining.drainingTimeoutSec: how long the load balancer "
            "keeps a removed backend's connections. Derived as preStop + drain + buffer when omitted (I4)."
        ),
    )
    scheme: Literal["internet-facing", "internal"] = Field(
        default="internet-facing", description="With provider alb: the load balancer scheme."
    )
    session_persistence: bool = Field(
        default=False,
        description=(
            "With provider gateway and implementation generic: set the Gateway API sessionPersistence "
            "field (experimental channel; check that your Gateway CRDs have it)."
        ),
    )
    tls: Tls | None = Field(default=None, description="TLS termination at the load balancer.")
    cors: Cors = Field(default_factory=Cors, description="Cross-origin policy.")
    rate_limit: RateLimit = Field(default_factory=RateLimit, description="Rate limits at the load balancer.")
    annotations: dict[str, Annotated[str, StringConstraints(max_length=4096)]] = Field(
        default_factory=dict, description="Extra annotations for the Ingress or HTTPRoute; they override rendered ones."
    )


class Affinity(_Spec):
    """Session affinity. Long-polling needs it; pure WebSocket does not, but reconnects benefit."""

    mode: Literal["cookie", "clientIP", "none"] = Field(
        default="cookie",
        description="cookie survives NAT and mobile IP changes; clientIP needs no cookie support; none disables it.",
    )
    cookie_name: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")] = Field(
        default="WSFLEET", description="Affinity cookie name (ALB and GCE use their own fixed names)."
    )
    ttl: Duration = Field(default=86400, description="Affinity cookie / client-IP affinity lifetime.")
