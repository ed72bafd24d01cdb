"""The API's names, value types and building blocks: what every part of the spec uses."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, WithJsonSchema
from pydantic.alias_generators import to_camel

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
