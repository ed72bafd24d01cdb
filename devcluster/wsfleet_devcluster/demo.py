"""`make demo`: the fleet on real nodes, installed the way a user installs it.

1. the binaries and the images, built or taken from the cache (the first run builds for several
   minutes, with progress; later runs reuse them);
2. the dev cluster with two real nodes in two zones (an `up` that finds it already running and
   healthy reuses it);
3. the operator, with ``kubectl apply --server-side -k deploy/operator``: the operator image runs
   on a real node, under the ``restricted`` Pod Security Standard;
4. Redis in the cluster (a Deployment and a Service named ``redis``, on the Redis image made from
   Debian's package) and the ``wsfleet-redis`` Secret the example names;
5. the example ``WebSocketService`` (deploy/examples/gateway-traefik.yaml: an HTTPRoute to the dev
   cluster's Gateway, Traefik, with the affinity cookie in a TraefikService), waited for until
   Ready;
6. the URL of the demo page, through the Gateway, once it answers there.

Each step prints a progress line. ``make demo-down`` stops the cluster (``down`` removes what
it made on the machine).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any, TextIO

import yaml

from wsfleet_devcluster import builds, controlplane, images, node
from wsfleet_devcluster.kubectl import KubectlError, kubectl
from wsfleet_devcluster.lending import condition_true

NAMESPACE = "default"
EXAMPLE = Path("deploy/examples/gateway-traefik.yaml")  # through the dev cluster's Gateway (gateway.py)
OPERATOR_INSTALL = Path("deploy/operator")
REDIS_URL = "redis://redis:6379/0"  # through the cluster's DNS (dns.py)
REAL_NODES = 2
READY_TIMEOUT = "300s"


def redis_objects(image: str, namespace: str) -> list[dict[str, Any]]:
    """Redis as a restricted pod runs it: any non-root UID, read-only root, /tmp an emptyDir."""
    labels = {"app.kubernetes.io/name": "redis"}
    container = {
        "name": "redis",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "redis", "containerPort": 6379}],
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        "readinessProbe": {"tcpSocket": {"port": "redis"}, "periodSeconds": 2},
    }  # fmt: skip
    pod_spec = {
        "securityContext": {"runAsNonRoot": True, "runAsUser": 999, "runAsGroup": 999,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {}}],
    }  # fmt: skip
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "redis", "namespace": namespace, "labels": labels},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels}, "spec": pod_spec}},
    }  # fmt: skip
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "redis", "namespace": namespace, "labels": labels},
        "spec": {"selector": labels, "ports": [{"name": "redis", "port": 6379, "targetPort": "redis"}]},
    }
    return [deployment, service]


def install_operator(k: Path, source: Path, out: TextIO) -> None:
    """The operator as a user installs it (`kubectl apply -k deploy/operator`), rolled out."""
    _step(out, f"demo: kubectl apply --server-side -k {OPERATOR_INSTALL}")
    kubectl(k, "apply", "--server-side", "--force-conflicts", "-k", str(source / OPERATOR_INSTALL))
    kubectl(k, "-n", "wsfleet-system", "rollout", "status", "deployment/wsfleet-operator", f"--timeout={READY_TIMEOUT}")


def install_redis(k: Path, namespace: str, out: TextIO, node: str | None = None) -> None:
    """Redis (Deployment and Service `redis`) and the Secret `wsfleet-redis` holding its URL, in
    `namespace`, rolled out; on `node` only, when given."""
    _step(out, f"demo: Redis (Deployment and Service `redis`) and the Secret wsfleet-redis in {namespace}")
    redis = redis_objects(images.redis_base().tag, namespace)
    if node:
        redis[0]["spec"]["template"]["spec"]["nodeSelector"] = {"kubernetes.io/hostname": node}
    kubectl(k, "apply", "--server-side", "-f", "-", stdin=yaml.safe_dump_all(redis))
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "wsfleet-redis", "namespace": namespace},
              "stringData": {"url": REDIS_URL}}  # fmt: skip
    kubectl(k, "apply", "--server-side", "-f", "-", stdin=yaml.safe_dump(secret))
    kubectl(k, "-n", namespace, "rollout", "status", "deployment/redis", f"--timeout={READY_TIMEOUT}")


def gateway_url(dc: controlplane.DevCluster) -> str:
    """The Gateway's listener `web` (Traefik, on loopback)."""
    ports = json.loads((dc.dir / "gateway" / "ports.json").read_text())
    return f"http://127.0.0.1:{ports['web']}"


def _step(out: TextIO, text: str) -> float:
    out.write(f">> {text}\n")
    out.flush()
    return time.monotonic()


def run(dc: controlplane.DevCluster, source: Path, out: TextIO) -> str:
    """Bring the demo up (or find it up); return the demo page's URL."""
    started = _step(out, "demo: binaries and images (the first run builds them: 20 to 30 minutes on 2 cores)")
    builds.ensure_binaries(out=out)
    dc.real = node.RealNodes.build(REAL_NODES, source, out)
    state = dc.status()
    if state and all(state.values()) and _nodes_ready(dc):
        _step(out, f"demo: the dev cluster in {dc.dir} is up; reusing it")
    else:
        dc.up(out=out, nodes=0)
    k = dc.kubeconfig
    install_operator(k, source, out)
    install_redis(k, NAMESPACE, out)
    example = yaml.safe_load((source / EXAMPLE).read_text())
    name = example["metadata"]["name"]
    _step(out, f"demo: kubectl apply -f {EXAMPLE}, then wait for WebSocketService {name} to be Ready")
    kubectl(k, "apply", "-f", str(source / EXAMPLE))
    kubectl(k, "-n", NAMESPACE, "wait", "--for=condition=Ready", f"wss/{name}", f"--timeout={READY_TIMEOUT}")
    url = f"{gateway_url(dc)}/demo/?room=lobby"
    _step(out, f"demo: waiting for the route through the Gateway ({url})")
    dc._wait(lambda: controlplane.http_ok(url, timeout=5), f"{url} through the Gateway", 120)
    out.write(
        f">> demo ready in {time.monotonic() - started:.0f}s: {url}\n"
        f"   export KUBECONFIG={k}   # kubectl get wss,pods -o wide\n"
        "   make demo-down stops it\n"
    )
    out.flush()
    return url


def _nodes_ready(dc: controlplane.DevCluster) -> bool:
    try:
        items = json.loads(kubectl(dc.kubeconfig, "get", "nodes", "-o", "json", timeout=20))["items"]
    except (KubectlError, subprocess.TimeoutExpired, OSError):
        return False
    return sum(condition_true(n, "Ready") for n in items) >= REAL_NODES
