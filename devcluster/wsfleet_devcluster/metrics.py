"""The resource metrics API for the real nodes: metrics-server, on the host, aggregated by the API
server, so that a HorizontalPodAutoscaler reads the pods' CPU and memory as it does on any cluster.

metrics-server (builds.ensure_metrics_server, from its Go module) runs beside the control plane,
like Traefik and CoreDNS, under the identity its upstream manifests give it: the ServiceAccount
``kube-system/metrics-server`` with upstream's RBAC (manifests/base/rbac.yaml of the module,
applied as it is), through a token the API server issues for it. It scrapes each kubelet's
``/metrics/resource`` on the node's InternalIP and the kubelet's own port, as that
ServiceAccount (the kubelets authorise ``nodes/metrics`` by webhook); the kubelets' serving
certificates are self-signed, so it runs with ``--kubelet-insecure-tls``, as kind and minikube do.

The API server reaches it the way it reaches any aggregated API: upstream's APIService
``v1beta1.metrics.k8s.io`` (``insecureSkipTLSVerify``, as upstream ships it) names the Service
``kube-system/metrics-server``, and the API server, with ``--enable-aggregator-routing``, dials that
Service's endpoint. The Service is upstream's without a selector (nothing runs in a pod), and an
EndpointSlice of ours points at the host's pod-reachable address (podnet.API_ADDRESS). The API
server authenticates itself to metrics-server with its front-proxy client certificate
(``--proxy-client-*``, ``--requestheader-*``; controlplane.py), which metrics-server learns of from
the ConfigMap ``kube-system/extension-apiserver-authentication``.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any, TextIO

import yaml

from wsfleet_devcluster import builds, pki, podnet
from wsfleet_devcluster.kubectl import KubectlError, kubectl
from wsfleet_devcluster.lending import Cluster, condition_true, free_port

NAMESPACE = "kube-system"
NAME = "metrics-server"
API_SERVICE = "v1beta1.metrics.k8s.io"
UPSTREAM = ("manifests/base/rbac.yaml", "manifests/base/apiservice.yaml", "manifests/base/service.yaml")
RESOLUTION = "15s"  # upstream's deployment sets it; it must exceed the kubelet request timeout (10 s)
TOKEN_LIFETIME = "720h"  # longer than any dev cluster lives
# The front proxy's identity (the API server's client certificate towards aggregated APIs).
FRONT_PROXY_CLIENT = "front-proxy-client"


def upstream_objects(work: Path) -> list[dict[str, Any]]:
    """Upstream's RBAC, APIService and Service, from the module at the pinned version."""
    root = builds.module_dir("sigs.k8s.io/metrics-server", builds.METRICS_SERVER_VERSION, work)
    docs: list[dict[str, Any]] = []
    for rel in UPSTREAM:
        docs += [d for d in yaml.safe_load_all((root / rel).read_text()) if d]
    return docs


def endpoint_slice(port: int) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{NAME}-host",
            "namespace": NAMESPACE,
            "labels": {"kubernetes.io/service-name": NAME, "endpointslice.kubernetes.io/managed-by": "wsfleet.dev"},
        },
        "addressType": "IPv4",
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
        "endpoints": [{"addresses": [podnet.API_ADDRESS], "conditions": {"ready": True}}],
    }


def kubeconfig(server: str, ca: Path, token: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "dev", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": NAME, "user": {"token": token}}],
        "contexts": [{"name": "dev", "context": {"cluster": "dev", "user": NAME}}],
        "current-context": "dev",
    }


def args(kubeconfig_path: Path, port: int, cert_dir: Path) -> list[str]:
    return [
        f"--kubeconfig={kubeconfig_path}",
        f"--authentication-kubeconfig={kubeconfig_path}",
        f"--authorization-kubeconfig={kubeconfig_path}",
        f"--bind-address={podnet.API_ADDRESS}",
        f"--secure-port={port}",
        f"--cert-dir={cert_dir}",
        "--kubelet-preferred-address-types=InternalIP",
        "--kubelet-use-node-status-port",
        "--kubelet-insecure-tls",
        f"--metric-resolution={RESOLUTION}",
    ]


def start(dc: Cluster, binary: Path, out: TextIO) -> None:
    """Apply upstream's objects and our EndpointSlice, start metrics-server, wait until the API
    server reports the APIService Available."""
    k = dc.kubeconfig
    work = dc.dir / "metrics-server"
    out.write(f">> metrics-server v{builds.METRICS_SERVER_VERSION} (upstream RBAC and APIService)\n")
    out.flush()
    port = free_port()
    docs = [*upstream_objects(work / "mod"), endpoint_slice(port)]
    kubectl(k, "apply", "--server-side", "-f", "-", stdin=yaml.safe_dump_all(docs))
    token = kubectl(k, "-n", NAMESPACE, "create", "token", NAME, f"--duration={TOKEN_LIFETIME}").strip()
    path = work / "kubeconfig"
    path.write_text(yaml.safe_dump(kubeconfig(dc.server, pki.Pki(dc.dir / "pki").ca_cert, token)))
    path.chmod(0o600)
    dc._start(NAME, args(path, port, work / "certs"), out, exe=binary)
    dc._wait(lambda: available(k), f"APIService {API_SERVICE} Available", 120)


def available(kubeconfig_path: Path) -> bool:
    try:
        svc = json.loads(kubectl(kubeconfig_path, "get", "apiservice", API_SERVICE, "-o", "json", timeout=20))
    except (KubectlError, subprocess.TimeoutExpired):
        return False
    return condition_true(svc, "Available")
