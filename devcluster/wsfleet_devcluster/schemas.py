"""The real CRDs of the kinds the operator renders beyond core Kubernetes, from the Go modules that
ship them, by version (`go mod download` into the Go module cache; nothing is built).

| kinds                          | module                                            | file in the module                                          |
|--------------------------------|---------------------------------------------------|-------------------------------------------------------------|
| HTTPRoute                      | sigs.k8s.io/gateway-api (standard channel)        | config/crd/standard/gateway.networking.k8s.io_httproutes.yaml |
| TraefikService                 | github.com/traefik/traefik/v3                     | docs/.../kubernetes-crd-definition-v1.yml (all of Traefik's)  |
| BackendTrafficPolicy           | github.com/envoyproxy/gateway                     | charts/gateway-helm/charts/crds/crds/generated/...           |
| ServiceMonitor, PrometheusRule | github.com/prometheus-operator/prometheus-operator | example/prometheus-operator-crd/...                          |

BackendConfig (k8s.io/ingress-gce) and GCPBackendPolicy and HealthCheckPolicy
(github.com/GoogleCloudPlatform/gke-gateway-api) are not here: the module proxy lists no version
of either module, and neither controller publishes its CRDs elsewhere that this machine reaches.
The tests keep schemaless stand-ins for those three kinds (STAND_INS in
tests/integration/conftest.py) and name them as such.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from wsfleet_devcluster import builds

# Envoy Gateway and prometheus-operator are only read here (their CRD files); the Gateway API and
# Traefik versions are the ones the dev cluster's Gateway runs (builds.py).
ENVOY_GATEWAY_VERSION = "1.9.1"
PROMETHEUS_OPERATOR_VERSION = "0.85.0"


@dataclass(frozen=True)
class Source:
    kinds: tuple[str, ...]
    module: str
    version: str
    files: tuple[str, ...]


SOURCES = (
    Source(
        ("HTTPRoute",),
        "sigs.k8s.io/gateway-api",
        builds.GATEWAY_API_VERSION,
        ("config/crd/standard/gateway.networking.k8s.io_httproutes.yaml",),
    ),
    Source(
        ("TraefikService",),
        "github.com/traefik/traefik/v3",
        builds.TRAEFIK_VERSION,
        ("docs/content/reference/dynamic-configuration/kubernetes-crd-definition-v1.yml",),
    ),
    Source(
        ("BackendTrafficPolicy",),
        "github.com/envoyproxy/gateway",
        ENVOY_GATEWAY_VERSION,
        ("charts/gateway-helm/charts/crds/crds/generated/gateway.envoyproxy.io_backendtrafficpolicies.yaml",),
    ),
    Source(
        ("ServiceMonitor", "PrometheusRule"),
        "github.com/prometheus-operator/prometheus-operator",
        PROMETHEUS_OPERATOR_VERSION,
        (
            "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml",
            "example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml",
        ),
    ),
)

REAL_KINDS = frozenset(kind for s in SOURCES for kind in s.kinds)


def crd_files(work: Path, out: TextIO = sys.stderr) -> list[Path]:
    """Every CRD file of SOURCES, downloaded by version if the module cache lacks it."""
    paths = []
    for source in SOURCES:
        out.write(f">> CRDs of {', '.join(source.kinds)} from {source.module} v{source.version}\n")
        root = builds.module_dir(source.module, source.version, work)
        for name in source.files:
            path = root / name
            if not path.is_file():
                raise builds.BuildError(f"{source.module} v{source.version} has no {name}: was it moved upstream?")
            paths.append(path)
    return paths
