"""The WebSocketService API: the only place its schema and defaults live.

Everything else is derived from these classes: the CRD's openAPIV3Schema and
defaults (crd.py), the CRD reference in docs/, and the parsed spec every
renderer and handler works on. Handlers never read raw dicts with
``spec.get("x", default)``; they parse once with :func:`parse_resource`.

Field-level rules (types, ranges, enums, duration syntax) live here. Rules that
relate several fields live in invariants.py (timing) and validation.py
(structure), each written once in CEL: the API server runs it from the CRD, and
the operator evaluates the same text (cel.py).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, WithJsonSchema, field_validator, model_validator
from pydantic.alias_generators import to_camel

from wsfleet_operator.durations import Duration, HpaPeriod, HpaWindow
from wsfleet_workload import contract

GROUP = "wsfleet.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "WebSocketService"
PLURAL = "websocketservices"
SINGULAR = "websocketservice"
SHORT_NAMES = ["wss"]

DEFAULT_IMAGE = "ghcr.io/wsfleet/workload:0.1.0"

Provider = Literal["nginx", "alb", "gce", "gateway", "none"]
PROVIDERS: tuple[Provider, ...] = ("nginx", "alb", "gce", "gateway", "none")
GatewayImplementation = Literal["generic", "envoy", "gke", "traefik"]
Transport = Literal["websocket", "polling"]

# A Kubernetes resource quantity ("500m", "512Mi", 2), kept as a string.
_QUANTITY_RE = r"^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+|[numkMGTPE]|[KMGTPE]i)?$"
Quantity = Annotated[
    str,
    Field(pattern=_QUANTITY_RE),
    WithJsonSchema({"x-kubernetes-int-or-string": True, "pattern": _QUANTITY_RE}),
]
# A DNS-1123 label (Secret names, Gateway names, ...).
DnsName = Annotated[str, StringConstraints(min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")]
# An opaque Kubernetes object (tolerations, affinity, volumes): passed through as given.
Opaque = Annotated[dict[str, Any], WithJsonSchema({"type": "object", "x-kubernetes-preserve-unknown-fields": True})]
Port = Annotated[int, Field(ge=1, le=65535)]
HttpPath = Annotated[str, StringConstraints(max_length=512, pattern=r"^/")]


class _Spec(BaseModel):
    """Base for every spec class: camelCase on the wire, unknown fields refused, immutable."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class Resources(_Spec):
    """Compute resources of the workload container."""

    requests: dict[str, Quantity] = Field(
        default_factory=lambda: {"cpu": "250m", "memory": "256Mi"},
        description="Requested resources. The scheduler and the HPA's utilisation targets use these.",
    )
    limits: dict[str, Quantity] = Field(
        default_factory=lambda: {"cpu": "500m", "memory": "512Mi"},
        description="Resource limits. Memory is the one that matters: about 40 KB per idle connection.",
    )


class EnvVar(_Spec):
    """One environment variable for the workload container."""

    name: str = Field(min_length=1, max_length=256, description="Variable name.")
    value: str | None = Field(default=None, max_length=32768, description="Literal value.")
    value_from: Opaque | None = Field(
        default=None, description="A Kubernetes EnvVarSource (secretKeyRef, configMapKeyRef, fieldRef, ...)."
    )


class SecretKeyRef(_Spec):
    """A key in a Secret in the resource's namespace."""

    name: DnsName = Field(description="Secret name.")
    key: str = Field(min_length=1, max_length=253, description="Key inside the Secret.")


class Replicas(_Spec):
    """How many workload pods run. The HPA scales between min and max."""

    min: int = Field(default=3, ge=1, le=1000, description="Fewest pods. Must exceed disruption.minAvailable (I5).")
    max: int = Field(default=10, ge=1, le=1000, description="Most pods the HPA may scale to (I5: max >= min).")


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


class Shutdown(_Spec):
    """The graceful shutdown timeline: preStop, then SIGTERM and drain, then a buffer before SIGKILL."""

    pre_stop: Duration | None = Field(
        default=None,
        description=(
            "How long the pod stays up, unready, before SIGTERM, so the load balancer deregisters it. "
            "Provider default when omitted: 10s where the LB follows endpoints, longer for ALB and GCE."
        ),
    )
    pre_stop_action: Literal["http", "sleep"] = Field(
        default="http",
        description=(
            "http calls the workload's preStop endpoint, which turns the pod unready at once and answers after "
            "preStop; sleep uses the kubelet's native sleep action, for images that lack that endpoint."
        ),
    )
    drain: Duration = Field(
        default=30, description="How long the workload takes to move its clients away after SIGTERM."
    )
    buffer: Duration = Field(default=5, description="Slack between the end of the drain and SIGKILL.")
    termination_grace_period: Duration | None = Field(
        default=None,
        description="terminationGracePeriodSeconds. Derived as preStop + drain + buffer when omitted (I2).",
    )


class Probe(_Spec):
    """An HTTP probe of the workload."""

    path: HttpPath = Field(description="HTTP path.")
    period: Duration = Field(description="periodSeconds.")
    timeout: Duration = Field(default=2, description="timeoutSeconds; must be below period (I12).")
    failure_threshold: int = Field(default=3, ge=1, le=100, description="failureThreshold.")


class StartupProbe(Probe):
    """The startup probe. Its window (period x failureThreshold) must cover the startup budget (I8)."""

    path: HttpPath = Field(default=contract.STARTUP_PATH, description="HTTP path.")
    period: Duration = Field(default=5, description="periodSeconds.")
    failure_threshold: int = Field(default=12, ge=1, le=1000, description="failureThreshold.")
    budget: Duration = Field(default=60, description="The longest the workload is expected to take to start.")


class ReadinessProbe(Probe):
    """The readiness probe; the load balancer health check uses the same path and period."""

    path: HttpPath = Field(default=contract.READY_PATH, description="HTTP path.")
    period: Duration = Field(
        default=3,
        description=(
            "periodSeconds. preStop must cover (failureThreshold + 1) periods (I3): the kubelet's failed probes, "
            "then the load balancer following."
        ),
    )
    failure_threshold: int = Field(default=2, ge=1, le=100, description="failureThreshold.")


class LivenessProbe(Probe):
    """The liveness probe. It must not depend on Redis (I7)."""

    path: HttpPath = Field(default=contract.LIVE_PATH, description="HTTP path.")
    period: Duration = Field(default=10, description="periodSeconds.")


class Probes(_Spec):
    """Startup, readiness and liveness probes."""

    startup: StartupProbe = Field(default_factory=StartupProbe, description="Startup probe.")
    readiness: ReadinessProbe = Field(default_factory=ReadinessProbe, description="Readiness probe.")
    liveness: LivenessProbe = Field(default_factory=LivenessProbe, description="Liveness probe.")


class Rollout(_Spec):
    """The Deployment's rolling update. maxUnavailable must stay 0 (I6)."""

    max_surge: int = Field(default=1, ge=0, le=1000, description="Extra pods during a rollout (I6: at least 1).")
    max_unavailable: int = Field(
        default=0, ge=0, le=1000, description="Pods that may be missing during a rollout (I6: 0)."
    )


class TopologySpread(_Spec):
    """How pods spread across zones and nodes."""

    zone: Literal["ScheduleAnyway", "DoNotSchedule"] = Field(
        default="ScheduleAnyway",
        description="Zone spread. ScheduleAnyway lets replacements schedule during a zone outage.",
    )
    node: Literal["ScheduleAnyway", "DoNotSchedule"] = Field(default="ScheduleAnyway", description="Node spread.")
    max_skew: int = Field(default=1, ge=1, le=100, description="maxSkew for both constraints.")


class ScalingRule(_Spec):
    """One direction of HPA behaviour: at most percent% of pods per period, after a stabilisation window."""

    percent: int = Field(ge=1, le=1000, description="Largest change per period, in percent of current pods.")
    period: HpaPeriod = Field(description="Policy period (1s..30m).")
    stabilization: HpaWindow = Field(description="Stabilisation window (0s..1h).")


class Autoscaling(_Spec):
    """The HorizontalPodAutoscaler. While enabled it owns the replica count (I9)."""

    enabled: bool = Field(default=True, description="Render an HPA. Disabled: the Deployment runs replicas.min pods.")
    cpu: int = Field(default=70, ge=0, le=100, description="Target CPU utilisation, percent of requests; 0 disables.")
    memory: int = Field(
        default=80, ge=0, le=100, description="Target memory utilisation, percent of requests; 0 disables."
    )
    connections_per_pod: int | None = Field(
        default=None,
        ge=1,
        le=1000000,
        description="Target connections per pod (needs a custom metrics adapter serving wsfleet_connections).",
    )
    scale_up: ScalingRule = Field(
        default_factory=lambda: ScalingRule(percent=100, period="15s", stabilization="0s"),
        description="Scale-up: double at once by default.",
    )
    scale_down: ScalingRule = Field(
        default_factory=lambda: ScalingRule(percent=50, period="1m", stabilization="5m"),
        description="Scale-down: 5 minute stabilisation, at most 50% per minute, so reconnect waves stay small.",
    )


class Disruption(_Spec):
    """The PodDisruptionBudget."""

    min_available: int = Field(default=2, ge=0, le=1000, description="Pods that voluntary disruptions must leave (I5).")


class Redis(_Spec):
    """Redis, used for fan-out, replay and presence."""

    url_secret: SecretKeyRef = Field(
        default_factory=lambda: SecretKeyRef(name="wsfleet-redis", key="url"),
        description="Secret key holding the Redis URL (redis://, rediss://).",
    )


class Publish(_Spec):
    """The HTTP publish API for backends."""

    api_key_secret: SecretKeyRef | None = Field(
        default=None,
        description="Secret key holding the API key for POST /api/v1/publish. Omitted: publishing disabled.",
    )


class Jwt(_Spec):
    """A JWT in the Socket.IO handshake (``auth.token``), checked by the workload."""

    algorithm: Literal["HS256", "RS256"] = Field(
        default="HS256", description="HS256 (shared secret, at least 32 bytes) or RS256 (public key, PEM)."
    )
    key_secret: SecretKeyRef = Field(description="Secret key holding the HS256 secret or the RS256 public key.")
    issuer: str | None = Field(default=None, max_length=2048, description="Required iss claim, if set.")
    audience: str | None = Field(default=None, max_length=2048, description="Required aud claim, if set.")
    rooms_claim: Annotated[str, StringConstraints(min_length=1, max_length=253)] = Field(
        default="rooms", description="Claim listing the room patterns (globs) a token may join."
    )


class Auth(_Spec):
    """Who may connect. Without a JWT every client is anonymous and may use every room."""

    jwt: Jwt | None = Field(default=None, description="Require a JWT in the handshake.")


class Limits(_Spec):
    """Per-pod limits on the workload: reconnect-storm and slow-consumer protection."""

    handshakes_per_second: int = Field(
        default=200, ge=1, le=1_000_000,
        description="New connections per second per pod; above it, 503 with Retry-After (the LB retries elsewhere).",
    )  # fmt: skip
    handshakes_per_second_per_ip: int = Field(
        default=20, ge=1, le=1_000_000, description="New connections per second per client IP, per pod."
    )
    send_queue_messages: int = Field(
        default=1000, ge=1, le=1_000_000,
        description="Packets queued for one client before it is cut off as a slow consumer (it recovers on reconnect).",
    )  # fmt: skip
    trusted_proxies: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] = Field(
        default_factory=lambda: ["*"],
        max_length=64,
        description=(
            "Sources whose X-Forwarded-For names the client IP (IPs, CIDRs, or * for any). Default *: only the "
            "load balancer reaches the pods; narrow it to the proxies' CIDR if anything else can."
        ),
    )


class Replay(_Spec):
    """Per-room message history that reconnecting clients recover from."""

    ttl: Duration = Field(default=300, description="How long messages stay replayable (I13).")
    max_messages: int = Field(default=500, ge=1, le=1000000, description="Most messages kept per room.")


class Presence(_Spec):
    """Presence tracking in Redis."""

    enabled: bool = Field(default=True, description="Track who is in each room.")
    diff_interval_ms: int = Field(
        default=250, ge=10, le=60_000,
        description=(
            "Membership changes of a room are sent to its members as one presence_diff event per interval "
            "at most: a reconnect storm costs each member a few events, not one per client."
        ),
    )  # fmt: skip
    diff_max_members: int = Field(
        default=100, ge=1, le=10_000,
        description=(
            "A presence_diff lists at most this many changes; one with more carries their counts instead "
            "(joined, left, truncated: true), and a client keeping a member list asks for it again. "
            "A reconnect storm in a room of N would otherwise send each member every join: N squared bytes."
        ),
    )  # fmt: skip


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


class WebSocketServiceSpec(_Spec):
    """The desired state of a WebSocket fleet."""

    image: Annotated[str, StringConstraints(min_length=1, max_length=512)] = Field(
        default=DEFAULT_IMAGE, description="Workload image. Default: the bundled wsfleet Socket.IO workload."
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        default="IfNotPresent", description="imagePullPolicy."
    )
    port: Port = Field(default=contract.DEFAULT_PORT, description="Socket.IO port.")
    metrics_port: Port = Field(default=contract.DEFAULT_METRICS_PORT, description="Prometheus metrics port.")
    transports: list[Transport] = Field(
        default_factory=lambda: list[Transport](("websocket", "polling")),
        min_length=1,
        max_length=2,
        description="Engine.IO transports. polling needs affinity (I10).",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    max_payload_bytes: int = Field(
        default=1_000_000,
        ge=1024,
        le=100_000_000,
        description="Largest accepted message (Engine.IO maxHttpBufferSize).",
    )
    fast_path: bool = Field(
        default=True,
        description=(
            "The bundled workload's fast path (its own WebSocket framing and Engine.IO sockets in place of parts of "
            "python-engineio and uvicorn). false runs the libraries as released, slower and with more memory per "
            "connection; the workload also runs them when their installed versions differ from the ones the fast "
            "path was written for."
        ),
    )
    resources: Resources = Field(default_factory=Resources, description="Container resources.")
    env: list[EnvVar] = Field(
        default_factory=list,
        max_length=256,
        description="Extra environment variables (names starting WSFLEET_ are reserved, S7).",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )

    @field_validator("transports")
    @classmethod
    def _unique_transports(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"{value!r} lists a transport twice")
        return value

    @field_validator("env")
    @classmethod
    def _unique_env(cls, value: list[EnvVar]) -> list[EnvVar]:
        names = [e.name for e in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"{dupes!r} set more than once")
        return value

    replicas: Replicas = Field(default_factory=Replicas, description="Replica range.")
    heartbeat: Heartbeat = Field(default_factory=Heartbeat, description="Socket.IO heartbeat.")
    load_balancer: LoadBalancer = Field(default_factory=LoadBalancer, description="Load balancer.")
    affinity: Affinity = Field(default_factory=Affinity, description="Session affinity.")
    shutdown: Shutdown = Field(default_factory=Shutdown, description="Graceful shutdown timeline.")
    probes: Probes = Field(default_factory=Probes, description="Probes.")
    rollout: Rollout = Field(default_factory=Rollout, description="Rolling update.")
    topology_spread: TopologySpread = Field(default_factory=TopologySpread, description="Topology spread.")
    autoscaling: Autoscaling = Field(default_factory=Autoscaling, description="Autoscaling.")
    disruption: Disruption = Field(default_factory=Disruption, description="PodDisruptionBudget.")
    redis: Redis = Field(default_factory=Redis, description="Redis.")
    publish: Publish = Field(default_factory=Publish, description="Publish API.")
    auth: Auth = Field(default_factory=Auth, description="Client authentication.")
    limits: Limits = Field(default_factory=Limits, description="Handshake rate and slow-consumer limits.")
    replay: Replay = Field(default_factory=Replay, description="Replay buffer.")
    presence: Presence = Field(default_factory=Presence, description="Presence.")
    monitoring: Monitoring = Field(default_factory=Monitoring, description="Monitoring.")
    network_policy: NetworkPolicy = Field(default_factory=NetworkPolicy, description="NetworkPolicy.")
    pod_template: PodTemplate = Field(default_factory=PodTemplate, description="Pod template overrides.")


class ObjectMeta(BaseModel):
    """The parts of metadata the operator reads. Everything else is ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    # The name becomes a Service name and a label value (both at most 63 characters), and the
    # longest child suffix is "-config" (7): 63 - 7 = 56.
    name: Annotated[str, StringConstraints(min_length=1, max_length=56, pattern=r"^[a-z]([-a-z0-9]*[a-z0-9])?$")]
    namespace: str = "default"
    uid: str | None = None
    generation: int | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class WebSocketService(BaseModel):
    """A whole WebSocketService resource, as read from a file or the API."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    api_version: Literal["wsfleet.dev/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["WebSocketService"]
    metadata: ObjectMeta
    spec: WebSocketServiceSpec = Field(default_factory=WebSocketServiceSpec)


# ---------------------------------------------------------------------------
# Status
# ---------------------------------------------------------------------------


class _Status(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class Condition(_Status):
    """A metav1.Condition."""

    type: str = Field(max_length=316, description="Condition type: Ready, Reconciling, Stalled or TimeoutsAligned.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(max_length=1024, description="CamelCase reason.")
    message: str = Field(max_length=32768, description="Human-readable detail, with the numbers.")
    last_transition_time: str = Field(description="When status last changed (RFC 3339).")
    observed_generation: int | None = Field(default=None, description="The generation this condition describes.")


class TimeoutsStatus(_Status):
    """Every derived timeout, in seconds."""

    heartbeat_window_seconds: int = Field(description="Heartbeat interval + timeout.")
    idle_timeout_seconds: int = Field(description="Load balancer idle timeout.")
    max_connection_lifetime_seconds: int = Field(description="Connection lifetime cap.")
    pre_stop_seconds: int = Field(description="preStop duration.")
    drain_seconds: int = Field(description="Drain duration.")
    buffer_seconds: int = Field(description="Buffer before SIGKILL.")
    termination_grace_period_seconds: int = Field(description="terminationGracePeriodSeconds.")
    deregistration_delay_seconds: int | None = Field(
        default=None, description="LB connection draining, where the provider has it."
    )


class WebSocketServiceStatus(_Status):
    """The observed state, written by the operator."""

    observed_generation: int | None = Field(default=None, description="The generation last reconciled.")
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready, Reconciling, Stalled, TimeoutsAligned.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    timeouts: TimeoutsStatus | None = Field(default=None, description="Derived timeouts.")
    replicas: int | None = Field(default=None, description="Pods of the Deployment.")
    ready_replicas: int | None = Field(default=None, description="Ready pods of the Deployment.")
    url: str | None = Field(default=None, description="Where clients connect.")
