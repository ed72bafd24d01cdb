"""The WebSocketService API: the only place its schema and defaults live.

One module per concern (base: names and value types; traffic; lifecycle; features; policy;
resource: the spec, metadata and status as a whole); everything is imported from here.

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

from wsfleet_operator.model.base import (
    API_VERSION,
    DEFAULT_IMAGE,
    GROUP,
    KIND,
    PLURAL,
    PROVIDERS,
    SHORT_NAMES,
    SINGULAR,
    VERSION,
    DnsName,
    EnvVar,
    GatewayImplementation,
    HttpPath,
    Opaque,
    Port,
    Provider,
    Quantity,
    Resources,
    SecretKeyRef,
    Transport,
)
from wsfleet_operator.model.features import (
    Auth,
    Jwt,
    Limits,
    Presence,
    Publish,
    Redis,
    Replay,
)
from wsfleet_operator.model.lifecycle import (
    Autoscaling,
    Disruption,
    LivenessProbe,
    Probe,
    Probes,
    ReadinessProbe,
    Replicas,
    Rollout,
    ScalingRule,
    Shutdown,
    StartupProbe,
    TopologySpread,
)
from wsfleet_operator.model.policy import (
    Cidr,
    EgressRule,
    Labels,
    Monitoring,
    NetworkPolicy,
    Peers,
    PodTemplate,
    PrometheusRule,
    RedisEgress,
    ServiceMonitor,
    Sources,
)
from wsfleet_operator.model.resource import (
    Condition,
    ObjectMeta,
    TimeoutsStatus,
    WebSocketService,
    WebSocketServiceSpec,
    WebSocketServiceStatus,
)
from wsfleet_operator.model.traffic import (
    Affinity,
    Cors,
    GatewayRef,
    Heartbeat,
    Issuer,
    LoadBalancer,
    RateLimit,
    Tls,
)

__all__ = [
    "API_VERSION",
    "DEFAULT_IMAGE",
    "GROUP",
    "KIND",
    "PLURAL",
    "PROVIDERS",
    "SHORT_NAMES",
    "SINGULAR",
    "VERSION",
    "Affinity",
    "Auth",
    "Autoscaling",
    "Cidr",
    "Condition",
    "Cors",
    "Disruption",
    "DnsName",
    "EgressRule",
    "EnvVar",
    "GatewayImplementation",
    "GatewayRef",
    "Heartbeat",
    "HttpPath",
    "Issuer",
    "Jwt",
    "Labels",
    "Limits",
    "LivenessProbe",
    "LoadBalancer",
    "Monitoring",
    "NetworkPolicy",
    "ObjectMeta",
    "Opaque",
    "Peers",
    "PodTemplate",
    "Port",
    "Presence",
    "Probe",
    "Probes",
    "PrometheusRule",
    "Provider",
    "Publish",
    "Quantity",
    "RateLimit",
    "ReadinessProbe",
    "Redis",
    "RedisEgress",
    "Replay",
    "Replicas",
    "Resources",
    "Rollout",
    "ScalingRule",
    "SecretKeyRef",
    "ServiceMonitor",
    "Shutdown",
    "Sources",
    "StartupProbe",
    "TimeoutsStatus",
    "Tls",
    "TopologySpread",
    "Transport",
    "WebSocketService",
    "WebSocketServiceSpec",
    "WebSocketServiceStatus",
]
