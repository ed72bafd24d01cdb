"""The dev cluster's load balancer: Traefik with its Kubernetes Gateway provider, on the host.

Traefik (builds.ensure_traefik) runs beside the control plane, outside the cluster, with a
kubeconfig of its own, and follows the cluster's Gateway API objects: the GatewayClass
``traefik``, the Gateway ``default/wsfleet`` with the listener ``web``, and the HTTPRoutes the
operator renders for ``provider: gateway, implementation: traefik`` (deploy/examples/
gateway-traefik.yaml). It reaches the pods at their addresses on the nodes' bridges, and follows
the EndpointSlices' ``ready`` condition: a terminating pod gets no new connections. Clients on
this machine connect to the listener on 127.0.0.1.

It needs the Gateway API CRDs of the standard channel it implements (sigs.k8s.io/gateway-api,
config/crd) and Traefik's own CRDs (its kubernetesCRD provider serves the TraefikService that
carries the affinity cookie); both come from the Go modules, at the versions pinned in builds.
Traefik's choices, measured (gateway.md): no idle timeout at all for upgraded connections, and
established WebSockets to a removed endpoint are left open, so the workload's drain decides
when they move.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any, TextIO

import yaml

from wsfleet_devcluster import builds
from wsfleet_devcluster.kubectl import KubectlError, kubectl
from wsfleet_devcluster.lending import Cluster, condition_true, free_port, kubeconfig_name

GATEWAY_CLASS = "traefik"
CONTROLLER = "traefik.io/gateway-controller"
GATEWAY = "wsfleet"
NAMESPACE = "default"
LISTENER = "web"
TRAEFIK_USER = "traefik"  # its client certificate (system:masters in this dev cluster)
TRAEFIK_CRDS = Path("docs/content/reference/dynamic-configuration/kubernetes-crd-definition-v1.yml")


def crd_sources(work: Path) -> tuple[Path, Path]:
    """(the Gateway API standard channel's kustomize directory, Traefik's CRD file)."""
    gw = builds.module_dir("sigs.k8s.io/gateway-api", builds.GATEWAY_API_VERSION, work)
    traefik = builds.module_dir("github.com/traefik/traefik/v3", builds.TRAEFIK_VERSION, work)
    return gw / "config" / "crd", traefik / TRAEFIK_CRDS


def static_config(web_port: int, api_port: int) -> dict[str, Any]:
    """Traefik's static configuration: loopback only, no outbound calls."""
    return {
        "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
        # a Gateway listener's port must equal an entry point's port
        "entryPoints": {"web": {"address": f"127.0.0.1:{web_port}"}, "traefik": {"address": f"127.0.0.1:{api_port}"}},
        "api": {"insecure": True, "dashboard": False},
        "ping": {},
        "log": {"level": "INFO"},
        "providers": {
            "kubernetesGateway": {},
            "kubernetesCRD": {},  # the TraefikService (sticky cookie) an HTTPRoute may point at
        },
    }


def objects(web_port: int) -> list[dict[str, Any]]:
    gateway_class = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "GatewayClass",
        "metadata": {"name": GATEWAY_CLASS},
        "spec": {"controllerName": CONTROLLER},
    }
    gateway = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": GATEWAY, "namespace": NAMESPACE},
        "spec": {
            "gatewayClassName": GATEWAY_CLASS,
            "listeners": [
                {
                    "name": LISTENER,
                    "protocol": "HTTP",
                    "port": web_port,
                    "allowedRoutes": {"namespaces": {"from": "All"}},
                }
            ],
        },
    }
    return [gateway_class, gateway]


def start(dc: Cluster, traefik: Path, out: TextIO) -> dict[str, int]:
    """Install the CRDs, the GatewayClass and the Gateway, start Traefik; return its ports."""
    k = dc.kubeconfig
    gateway_api, traefik_crds = crd_sources(dc.dir / "gateway" / "mod")
    out.write(f">> Gateway API v{builds.GATEWAY_API_VERSION} and Traefik v{builds.TRAEFIK_VERSION} CRDs\n")
    out.flush()
    kubectl(k, "apply", "--server-side", "-k", str(gateway_api))
    kubectl(k, "apply", "--server-side", "-f", str(traefik_crds))
    kubectl(k, "wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    ports = {"web": free_port(), "api": free_port()}
    kubectl(k, "apply", "--server-side", "-f", "-", stdin=yaml.safe_dump_all(objects(ports["web"])))
    config = dc.dir / "gateway" / "traefik.yaml"
    config.write_text(yaml.safe_dump(static_config(ports["web"], ports["api"])))
    kubeconfig = dc.dir / kubeconfig_name(TRAEFIK_USER)
    dc._start(
        "traefik", [f"--configfile={config}"], out, exe=traefik, env={**os.environ, "KUBECONFIG": str(kubeconfig)}
    )
    dc._wait(lambda: programmed(k), f"Gateway {NAMESPACE}/{GATEWAY} Programmed by Traefik", 120)
    return ports


def programmed(kubeconfig: Path) -> bool:
    try:
        gw = json.loads(kubectl(kubeconfig, "-n", NAMESPACE, "get", "gateway", GATEWAY, "-o", "json", timeout=20))
    except (KubectlError, subprocess.TimeoutExpired):
        return False
    return condition_true(gw, "Programmed")
