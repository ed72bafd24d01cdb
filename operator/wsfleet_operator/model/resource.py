"""The resource as a whole: its spec, metadata and status."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from pydantic.alias_generators import to_camel

from wsfleet_common import contract
from wsfleet_operator.model.base import DEFAULT_IMAGE, EnvVar, Port, Resources, Transport, _Spec
from wsfleet_operator.model.features import Auth, Limits, Presence, Publish, Redis, Replay
from wsfleet_operator.model.lifecycle import (
    Autoscaling,
    Disruption,
    Probes,
    Replicas,
    Rollout,
    Shutdown,
    TopologySpread,
)
from wsfleet_operator.model.policy import Monitoring, NetworkPolicy, PodTemplate
from wsfleet_operator.model.traffic import Affinity, Heartbeat, LoadBalancer


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
