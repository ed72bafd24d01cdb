"""Real nodes in the dev cluster: kubelets with containerd and runc, built from Go modules, running
the images built from the Dockerfiles. One cluster for the module (two nodes, two zones, no kwok).

| what                        | checked                                                                 |
|-----------------------------|-------------------------------------------------------------------------|
| nodes                       | two Ready, v1.36.3, containerd 2.2.9, one per zone, InternalIP on their  |
|                             | bridge                                                                  |
| restricted pods             | Redis and the rendered workload Deployment (the default image, under    |
|                             | its published name) admitted under `enforce: restricted`, Ready through |
|                             | their probes (the workload reaches Redis by name: cluster DNS); inside: |
|                             | UID 1000,                                                               |
|                             | seccomp filter, read-only root; reached through a ClusterIP Service     |
|                             | (kube-proxy) from the host and from the other node's pod                |
| kubectl logs / exec         | through the API server to each kubelet                                  |
| the `kubernetes` Service    | points at the API server; a pod reaches it                              |
| preStop                     | `kubectl delete pod`: the kubelet's preStop call makes the pod unready   |
|                             | first, SIGTERM comes after the preStop seconds, the drain runs           |
| down                        | leaves no process, mount, bridge, cgroup, KUBE-* chain (iptables and     |
|                             | ip6tables) or network namespace; up again works, after down and after a  |
|                             | crash (every process SIGKILLed)                                          |
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as redis_client
import yaml

from tests.integration.conftest import BIN, Kubectl
from tests.integration.nodes import two_real_nodes
from wsfleet_devcluster import controlplane, demo, images, node, podnet
from wsfleet_operator.model import WebSocketService
from wsfleet_operator.render import render_all

pytestmark = pytest.mark.integration
if os.geteuid() != 0:
    pytest.skip("real nodes need root (kubelet, containerd, bridges, iptables)", allow_module_level=True)

NS = "real"
# a fixed replica count here; autoscaling on real nodes: test_fleet_on_nodes.py
KINDS = ("ConfigMap", "Service", "Deployment", "PodDisruptionBudget")


def host_state(directory: Path) -> dict[str, Any]:
    """What a cluster with real nodes could leave in the host's kernel and process table."""
    procs = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(directory) in cmd or str(node.NODE_ROOT) in cmd or "containerd-shim" in cmd:
                procs.append(cmd[:200])
    return {
        "processes": sorted(procs),
        "mounts": podnet.mounts_under(directory) + podnet.mounts_under(node.NODE_ROOT),
        "node_dirs": sorted(os.listdir(node.NODE_ROOT)) if node.NODE_ROOT.is_dir() else [],
        "bridges": podnet.bridges(),
        "cgroups": sorted(str(p) for h in podnet.cgroup_hierarchies() for p in h.glob("wsfleet-*")),
        "kube_chains": podnet.kube_chains(),
        "netns": sorted(os.listdir("/var/run/netns")) if os.path.isdir("/var/run/netns") else [],
    }


@pytest.fixture(scope="module")
def cluster_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("real-cluster")


@pytest.fixture(scope="module")
def before(cluster_dir: Path) -> dict[str, Any]:
    return host_state(cluster_dir)


@pytest.fixture(scope="module")
def real(cluster_dir: Path, before: dict[str, Any]) -> Iterator[controlplane.DevCluster]:
    with two_real_nodes(cluster_dir) as dc:
        yield dc


@pytest.fixture(scope="module")
def kubectl(real: controlplane.DevCluster) -> Kubectl:
    return Kubectl(real.kubeconfig)


def test_two_real_nodes_in_two_zones(kubectl: Kubectl) -> None:
    nodes = json.loads(kubectl("get", "nodes", "-o", "json").stdout)["items"]
    seen = {
        n["metadata"]["name"]: (
            n["metadata"]["labels"]["topology.kubernetes.io/zone"],
            n["status"]["nodeInfo"]["kubeletVersion"],
            n["status"]["nodeInfo"]["containerRuntimeVersion"],
            [a["address"] for a in n["status"]["addresses"] if a["type"] == "InternalIP"],
        )
        for n in nodes
    }
    assert seen == {
        "node1": ("zone-a", "v1.36.3", "containerd://2.2.9", [podnet.NodeNet(1).address]),
        "node2": ("zone-b", "v1.36.3", "containerd://2.2.9", [podnet.NodeNet(2).address]),
    }


@pytest.fixture(scope="module")
def fleet(kubectl: Kubectl, real: controlplane.DevCluster) -> dict[str, Any]:
    """Redis (as the demo runs it) and the rendered workload, in a namespace that enforces
    `restricted`; the workload finds Redis by its Service's name, through the cluster's DNS."""
    kubectl("create", "namespace", NS)
    kubectl("label", "namespace", NS, "pod-security.kubernetes.io/enforce=restricted")
    redis = demo.redis_objects(images.redis_base().tag, NS)
    kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(redis))
    kubectl("-n", NS, "create", "secret", "generic", "wsfleet-redis", f"--from-literal=url={demo.REDIS_URL}")
    wss = WebSocketService.model_validate({
        "apiVersion": "wsfleet.dev/v1alpha1", "kind": "WebSocketService", "metadata": {"name": "chat", "namespace": NS},
        "spec": {"replicas": {"min": 3, "max": 4}},  # the default image, under its published name
    })  # fmt: skip
    docs = [d for d in render_all(wss) if d["kind"] in KINDS]
    for d in docs:
        if d["kind"] == "Deployment":
            d["spec"]["replicas"] = 3  # the HPA's job, and there is no HPA without metrics
    kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(docs))
    kubectl("-n", NS, "rollout", "status", "deployment/redis", "--timeout=120s")
    kubectl("-n", NS, "rollout", "status", "deployment/chat", "--timeout=180s")
    ip = json.loads(kubectl("-n", NS, "get", "svc", "redis", "-o", "json").stdout)["spec"]["clusterIP"]
    return {"redis_ip": ip}


def _pods(kubectl: Kubectl) -> list[dict[str, Any]]:
    out = kubectl("-n", NS, "get", "pods", "-l", "wsfleet.dev/service=chat", "-o", "json").stdout
    return [p for p in json.loads(out)["items"] if not p["metadata"].get("deletionTimestamp")]


def test_restricted_pods_run_as_their_spec_says(kubectl: Kubectl, fleet: dict[str, Any]) -> None:
    pods = _pods(kubectl)
    assert len(pods) == 3
    assert {p["spec"]["nodeName"] for p in pods} == {"node1", "node2"}, "spread over both zones"
    probe = (
        "import os, json; s = open('/proc/self/status').read();"
        "ro = not os.access('/', os.W_OK);"
        "print(json.dumps([os.getuid(), os.getgid(), s.split('Seccomp:')[1].split()[0], ro, os.access('/tmp', os.W_OK)]))"
    )
    for p in pods:
        out = kubectl("-n", NS, "exec", p["metadata"]["name"], "--", "python", "-c", probe).stdout
        assert json.loads(out) == [1000, 1000, "2", True, True], (p["metadata"]["name"], out)
        log = kubectl("-n", NS, "logs", p["metadata"]["name"]).stdout
        assert '"component": "workload"' in log


def test_services_answer_from_the_host_and_from_pods(kubectl: Kubectl, fleet: dict[str, Any]) -> None:
    # the host reaches a ClusterIP through kube-proxy's rules
    assert redis_client.Redis(host=fleet["redis_ip"], port=6379, socket_timeout=5).ping()
    svc = json.loads(kubectl("-n", NS, "get", "svc", "chat", "-o", "json").stdout)
    port = svc["spec"]["ports"][0]["port"]
    url = f"http://{svc['spec']['clusterIP']}:{port}/health/ready"
    # from a pod on each node: the chat Service (both nodes' pods behind it) and the API server
    fetch = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).status)"
    for p in _pods(kubectl):
        out = kubectl("-n", NS, "exec", p["metadata"]["name"], "--", "python", "-c", fetch, url).stdout.split()
        assert out[0] == "200", out
    # the kubernetes Service points at the API server's pod-reachable address
    ep = json.loads(kubectl("get", "endpointslices", "-n", "default", "-l", "kubernetes.io/service-name=kubernetes",
                            "-o", "json").stdout)["items"]  # fmt: skip
    assert [a for s in ep for e in s["endpoints"] for a in e["addresses"]] == [podnet.API_ADDRESS]
    env = kubectl("-n", NS, "exec", _pods(kubectl)[0]["metadata"]["name"], "--", "python", "-c",
                  "import os, socket; socket.create_connection((os.environ['KUBERNETES_SERVICE_HOST'], "
                  "int(os.environ['KUBERNETES_SERVICE_PORT'])), 5); print('ok')").stdout  # fmt: skip
    assert env.strip() == "ok"


def test_the_kubelet_runs_the_prestop_hook_before_sigterm(kubectl: Kubectl, fleet: dict[str, Any]) -> None:
    """`kubectl delete pod`: the kubelet calls the preStop hook (the workload turns unready and
    holds the call for its preStop seconds), sends SIGTERM once it returns, and the container
    drains and exits 0 within the grace period."""
    pod = _pods(kubectl)[0]
    name, grace = pod["metadata"]["name"], pod["spec"]["terminationGracePeriodSeconds"]
    env = {**os.environ, "KUBECONFIG": str(kubectl.kubeconfig)}
    logs = subprocess.Popen(
        [str(BIN / "kubectl"), "-n", NS, "logs", "-f", name], env=env, stdout=subprocess.PIPE, text=True
    )
    watch = subprocess.Popen([str(BIN / "kubectl"), "-n", NS, "get", "pod", name, "-w", "-o", "json"], env=env,
                             stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        started = time.monotonic()
        kubectl("-n", NS, "delete", "pod", name, "--wait=true", f"--timeout={grace + 30}s")
        took = time.monotonic() - started
        lines, _ = logs.communicate(timeout=30)
    finally:
        logs.kill()
        watch.kill()
    seen, _ = watch.communicate(timeout=10)
    records = [json.loads(line) for line in lines.splitlines() if line.startswith("{")]
    unready = next(r for r in records if r.get("phase") == "unready")
    sigterm = next(r for r in records if r["message"].startswith("signal SIGTERM"))
    assert unready["trigger"] == "preStop", unready
    held = (_ts(sigterm) - _ts(unready)).total_seconds()
    assert held >= 5, f"SIGTERM {held:.1f}s after the preStop call: the kubelet did not wait for the hook"
    phases = [r["phase"] for r in records if r.get("event") == "drain"]
    assert phases == ["unready", "announced", "closed", "done"], phases
    assert took < grace, f"the pod took {took:.0f}s to go, its grace period is {grace}s"
    exits = [c["state"]["terminated"]["exitCode"] for obj in _json_stream(seen)
             for c in obj.get("status", {}).get("containerStatuses", []) if "terminated" in c.get("state", {})]  # fmt: skip
    assert exits, "the kubelet reported no terminated container"
    assert set(exits) == {0}, f"exit codes the kubelet reported: {exits}"


def _ts(record: dict[str, Any]) -> dt.datetime:
    return dt.datetime.fromisoformat(record["timestamp"])


def _json_stream(text: str) -> Iterator[dict[str, Any]]:
    """The objects of `kubectl get -w -o json`, up to one cut short when the watch was stopped."""
    decoder, i = json.JSONDecoder(), 0
    while i < len(text):
        while i < len(text) and text[i].isspace():
            i += 1
        if i == len(text):
            return
        try:
            obj, i = decoder.raw_decode(text, i)
        except json.JSONDecodeError:
            return
        yield obj


def test_down_leaves_nothing_and_up_works_again(
    real: controlplane.DevCluster, before: dict[str, Any], cluster_dir: Path
) -> None:
    real.down()
    assert host_state(cluster_dir) == before
    # up again after a down
    real.up(out=sys.stderr, nodes=0)
    assert Kubectl(real.kubeconfig)("get", "nodes").returncode == 0
    # a crash: every process killed at once, nothing cleaned up; up must still work
    for pid in json.loads(real.state_file.read_text())["pids"].values():
        os.killpg(pid, signal.SIGKILL)
    for p in real.procs.values():
        p.wait(10)
    real.procs.clear()
    fresh = controlplane.DevCluster(cluster_dir)
    fresh.real = real.real
    fresh.up(out=sys.stderr, nodes=0)
    nodes = json.loads(Kubectl(fresh.kubeconfig)("get", "nodes", "-o", "json").stdout)["items"]
    assert sorted(n["metadata"]["name"] for n in nodes) == ["node1", "node2"]
    fresh.down()
    assert host_state(cluster_dir) == before
    real.real = None  # the module fixture's down finds nothing left to do
