"""A real node: containerd (with runc and the CNI bridge) and a kubelet, in a directory of its own.

Two nodes run on one machine, so each has its own of everything the two could otherwise share
(real-node.md): containerd's root, state and socket, runc's state directory, the CNI bridge and
range, the kubelet's root directory, pod log directory, node IP and **cgroupRoot**. Each is
labelled with its zone, so a node drain and a zone loss are real.

Settings this machine needs, each with its reason:
- ``restrict_oom_score_adj``: root here lacks CAP_SYS_RESOURCE, so runc may not lower a
  container's oom_score_adj below containerd's (``nsexec: failed to update
  /proc/self/oom_score_adj: Permission denied``, and every sandbox fails);
- ``failCgroupV1: false`` and ``cgroupDriver: cgroupfs``: a cgroup v1 host without systemd;
- ``netns_mounts_under_state_dir``: the pods' network namespaces live under the node's state
  directory, so ``down`` finds and removes them, and never touches another tool's;
- the sandbox image is pinned to our pause image (no registry is reachable), and the images are
  imported into containerd's ``k8s.io`` namespace before pods ask for them.

kube-proxy (iptables mode) runs once for the whole machine: the two nodes share its network
namespace, so one set of rules serves both.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml

from wsfleet_devcluster import builds, dns, gateway, images, metrics, podnet
from wsfleet_devcluster.lending import Cluster, condition_true, free_port, kubeconfig_name

# The nodes' own directories. Unix socket paths hold at most 104 bytes here (containerd refuses
# longer ones, and the kubelet makes sockets under its root directory), and a cluster directory
# under a long HOME leaves no room for them: each node lives in a short directory here, named
# after a digest of its cluster's directory, and the cluster directory links to it (nodes/NAME).
NODE_ROOT = Path("/var/lib/wsfleet")


def node_dir(cluster_dir: Path, name: str) -> Path:
    key = hashlib.sha256(str(cluster_dir.resolve()).encode()).hexdigest()[:8]
    return NODE_ROOT / f"{key}-{name}"


@dataclass(frozen=True)
class Node:
    """Where one node's parts live and how they are configured (no process state)."""

    name: str
    zone: str
    net: podnet.NodeNet
    dir: Path
    bindir: Path

    @property
    def socket(self) -> Path:
        return self.dir / "containerd.sock"

    @property
    def cgroup_root(self) -> str:
        # one per node and per cluster directory (the node directory's name says both)
        return f"wsfleet-{self.dir.name}"

    @property
    def runc_root(self) -> Path:
        return self.dir / "runc"

    def containerd_config(self, sandbox_image: str) -> str:
        d = self.dir / "containerd"
        cri = '"io.containerd.cri.v1.runtime"'
        return f"""# Written by wsfleet dev-cluster (devcluster/node.py explains each setting).
version = 3
root = "{d / "root"}"
state = "{d / "state"}"

[grpc]
  address = "{self.socket}"

[ttrpc]
  address = "{self.socket}.ttrpc"

[plugins.{cri}]
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true

[plugins.{cri}.containerd]
  default_runtime_name = "runc"

[plugins.{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins.{cri}.containerd.runtimes.runc.options]
  BinaryName = "{self.bindir / "runc"}"
  Root = "{self.runc_root}"
  SystemdCgroup = false

[plugins.{cri}.cni]
  bin_dirs = ["{podnet.CNI_BIN_DIR}"]
  conf_dir = "{self.dir / "cni" / "net.d"}"

[plugins."io.containerd.cri.v1.images".pinned_images]
  sandbox = "{sandbox_image}"

[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
"""

    def kubelet_config(self, ca: Path) -> dict[str, Any]:
        return {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": self.net.address,
            "port": 10250,
            "healthzBindAddress": self.net.address,
            "healthzPort": 10248,
            "readOnlyPort": 0,
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": f"/{self.cgroup_root}",
            "failCgroupV1": False,
            "failSwapOn": False,
            "resolvConf": "",
            "podLogsDir": str(self.dir / "pod-logs"),
            "staticPodPath": "",
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(ca)},
            },
            "authorization": {"mode": "Webhook"},
            "clusterDomain": dns.CLUSTER_DOMAIN,
            "clusterDNS": [podnet.API_ADDRESS],  # CoreDNS on the host (dns.py)
            # a small machine: evict on memory pressure only when it is real
            "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
            "imageGCHighThresholdPercent": 100,
            "serializeImagePulls": False,
            "shutdownGracePeriod": "0s",
            "nodeStatusReportFrequency": "10s",
            "nodeStatusUpdateFrequency": "5s",
        }

    def kubelet_args(self, kubeconfig: Path) -> list[str]:
        return [
            f"--config={self.dir / 'kubelet.yaml'}",
            f"--kubeconfig={kubeconfig}",
            f"--root-dir={self.dir / 'kubelet'}",
            f"--hostname-override={self.name}",
            f"--node-ip={self.net.address}",
            f"--node-labels=topology.kubernetes.io/zone={self.zone},wsfleet.dev/node=real",
            "--v=1",
        ]

    def prepare(self, ca: Path, sandbox_image: str) -> None:
        """Directories, bridge, cgroups and configuration files; nothing started."""
        for sub in ("containerd", "cni/net.d", "cni/ipam", "kubelet", "pod-logs", "runc"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        (self.dir / "containerd.toml").write_text(self.containerd_config(sandbox_image))
        (self.dir / "kubelet.yaml").write_text(yaml.safe_dump(self.kubelet_config(ca)))
        conflist = podnet.cni_conflist(self.net, self.dir / "cni" / "ipam")
        (self.dir / "cni" / "net.d" / "10-wsfleet.conflist").write_text(json.dumps(conflist, indent=2))
        podnet.ensure_node_bridge(self.net)
        podnet.ensure_cgroup_root(self.cgroup_root)

    def containerd_env(self) -> dict[str, str]:
        # the shim (containerd-shim-runc-v2) is found on PATH
        return {**os.environ, "PATH": f"{self.bindir}:{os.environ.get('PATH', '/usr/bin:/bin')}"}

    def ctr(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bindir / "ctr"), "--address", str(self.socket), "--namespace", "k8s.io", *args],
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip

    def import_image(self, archive: Path) -> None:
        proc = self.ctr("images", "import", "--local", str(archive))
        if proc.returncode != 0:
            raise RuntimeError(f"{self.name}: ctr images import {archive}: {proc.stderr.strip()}")

    def tag_image(self, name: str, alias: str) -> None:
        proc = self.ctr("images", "tag", "--force", name, alias)
        if proc.returncode != 0:
            raise RuntimeError(f"{self.name}: ctr images tag {name} {alias}: {proc.stderr.strip()}")

    def stop_workloads(self) -> None:
        """Kill what the node ran: every process in its cgroups (the containers), then the runc
        shims of its containerd. Called once the kubelet and containerd are stopped."""
        for _ in range(3):
            pids = podnet.cgroup_pids(self.cgroup_root) | self.shim_pids()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    continue
            time.sleep(0.3)

    def shim_pids(self) -> set[int]:
        """The runc shims this node's containerd started (they run in their own sessions)."""
        needle = str(self.socket).encode()
        pids = set()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"containerd-shim" in cmdline and needle in cmdline:
                pids.add(int(entry.name))
        return pids

    def cleanup(self) -> list[str]:
        """After the processes: unmount everything under the node, remove its cgroups; return
        what is left."""
        left = podnet.unmount_under(self.dir)
        if not left:
            shutil.rmtree(self.dir, ignore_errors=True)
            with contextlib.suppress(OSError):
                NODE_ROOT.rmdir()  # when no other cluster's node is left
        return left + podnet.remove_cgroup_root(self.cgroup_root)


def kube_proxy_config(kubeconfig: Path, hostname: str, port_healthz: int, port_metrics: int) -> dict[str, Any]:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "clusterCIDR": str(podnet.POD_RANGE),
        "hostnameOverride": hostname,
        "bindAddress": "127.0.0.1",
        # port 0 is refused: explicit loopback ports
        "healthzBindAddress": f"127.0.0.1:{port_healthz}",
        "metricsBindAddress": f"127.0.0.1:{port_metrics}",
        "conntrack": {"maxPerCore": 0},  # leave the host's conntrack table size alone
    }


KUBELET_CLIENT = "kube-apiserver-kubelet-client"  # the API server's identity towards the kubelets
KUBE_PROXY_USER = "system:kube-proxy"  # bound to system:node-proxier by the default policy
ZONES = ("zone-a", "zone-b")
CONTEXT = "wsfleet-dev"  # the only context of every kubeconfig the control plane writes
READY_TIMEOUT = 180.0


@dataclass(frozen=True)
class RealNodes:
    """The real nodes of one dev cluster: how many, their binaries, and the images they hold."""

    count: int
    bindir: Path
    sandbox_image: str = ""
    archives: tuple[Path, ...] = ()  # OCI archives every node imports (the sandbox image's first)
    aliases: tuple[tuple[str, str], ...] = ()  # (imported name, another name for it), e.g. the published one
    traefik: Path | None = None  # the Gateway's binary (gateway.py); None: no Gateway
    metrics_server: Path | None = None  # the resource metrics API (metrics.py); None: none

    @classmethod
    def build(cls, count: int, source: Path, out: TextIO) -> RealNodes:
        """Everything `count` real nodes need, built or taken from the cache: the node binaries,
        the sandbox image, and the images the pods run (workload and operator from `source`'s
        Dockerfiles, also under their published names; Redis)."""
        bindir = builds.ensure_node_binaries(out=out)
        sandbox = images.ensure_pause(bindir / "pause", out)
        built = images.build_all(source, out)
        tags = [sandbox, images.ensure_redis(out), *built.values()]
        aliases = tuple((tag, images.published_name(name)) for name, tag in built.items())
        archives = tuple(images.archive(t, out) for t in tags)
        traefik, metrics_server = builds.ensure_traefik(out=out), builds.ensure_metrics_server(out=out)
        return cls(count, bindir, sandbox, archives, aliases, traefik, metrics_server)

    def nodes(self, cluster_dir: Path) -> list[Node]:
        return [
            Node(f"node{i}", ZONES[(i - 1) % len(ZONES)], podnet.NodeNet(i), node_dir(cluster_dir, f"node{i}"), self.bindir)
            for i in range(1, self.count + 1)
        ]  # fmt: skip

    def clients(self) -> dict[str, str | None]:
        users: dict[str, str | None] = {f"system:node:node{i}": "system:nodes" for i in range(1, self.count + 1)}
        return {
            **users,
            KUBE_PROXY_USER: None,
            KUBELET_CLIENT: "system:masters",
            dns.DNS_USER: "system:masters",
            gateway.TRAEFIK_USER: "system:masters",
            metrics.FRONT_PROXY_CLIENT: None,  # the API server's own, towards aggregated APIs
        }

    def state(self) -> dict[str, Any]:
        return {"count": self.count, "bindir": str(self.bindir), "sandbox_image": self.sandbox_image}

    @classmethod
    def from_state(cls, state: dict[str, Any] | None) -> RealNodes | None:
        if not state:
            return None
        return cls(state["count"], Path(state["bindir"]), state.get("sandbox_image", ""))

    def start(self, dc: Cluster, ca: Path, out: TextIO) -> None:
        for n in self.nodes(dc.dir):
            n.prepare(ca, self.sandbox_image)
            link = dc.dir / "nodes" / n.name
            link.parent.mkdir(exist_ok=True)
            if not link.is_symlink():
                link.symlink_to(n.dir)
            dc._start(f"containerd-{n.name}", ["--config", str(n.dir / "containerd.toml")], out,
                      exe=self.bindir / "containerd", env=n.containerd_env())  # fmt: skip
            dc._wait(lambda n=n: n.ctr("version", timeout=5).returncode == 0, f"containerd of {n.name}", 60)
            for archive in self.archives:
                out.write(f">> {n.name}: importing {archive.name}\n")
                out.flush()
                n.import_image(archive)
            for name, alias in self.aliases:
                n.tag_image(name, alias)
            kubeconfig = dc.dir / kubeconfig_name(f"system:node:{n.name}")
            dc._start(f"kubelet-{n.name}", n.kubelet_args(kubeconfig), out, exe=self.bindir / "kubelet")
        proxy = dc.dir / "kube-proxy.yaml"
        config = kube_proxy_config(dc.dir / kubeconfig_name(KUBE_PROXY_USER), "node1", free_port(), free_port())
        proxy.write_text(yaml.safe_dump(config))
        dc._start("kube-proxy", [f"--config={proxy}"], out, exe=self.bindir / "kube-proxy")
        corefile = dc.dir / "Corefile"
        corefile.write_text(dns.corefile(dc.dir / kubeconfig_name(dns.DNS_USER), CONTEXT))
        dc._start("coredns", dns.args(corefile), out, exe=self.bindir / "coredns")

    def wait_ready(self, dc: Cluster, out: TextIO) -> None:
        for n in self.nodes(dc.dir):
            out.write(f">> waiting for {n.name} ({n.zone}, {n.net.address}) to be Ready\n")
            out.flush()
            dc._wait(lambda n=n: _node_ready(dc, n.name), f"node {n.name} Ready", READY_TIMEOUT)
        if self.traefik is not None:
            ports = gateway.start(dc, self.traefik, out)
            (dc.dir / "gateway" / "ports.json").write_text(json.dumps(ports))
            out.write(f">> Gateway {gateway.NAMESPACE}/{gateway.GATEWAY}: http://127.0.0.1:{ports['web']}/\n")
        if self.metrics_server is not None:
            metrics.start(dc, self.metrics_server, out)

    def power_off(self, dc: Cluster, name: str) -> None:
        """Node `name` lost as a zone is lost: its pods cut off first (their links down, so peers
        see silence: no FIN or RST leaves the node), then its kubelet, containerd, shims and
        containers killed. The API server hears nothing more from it: the node goes NotReady
        after the controller-manager's grace period, and its pods are evicted when their
        tolerations run out. `down` cleans up after it as after any node."""
        n = next(x for x in self.nodes(dc.dir) if x.name == name)
        podnet.unplug_ports(n.net.bridge)
        for proc in (f"kubelet-{name}", f"containerd-{name}"):
            p = dc.procs.get(proc)
            if p is not None and p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait(10)
        n.stop_workloads()

    def cleanup(self, cluster_dir: Path) -> list[str]:
        """Once the processes are stopped: what the nodes left in the host's kernel. Returns
        what could not be removed."""
        left: list[str] = []
        for n in self.nodes(cluster_dir):
            n.stop_workloads()
            left += n.cleanup()
            (cluster_dir / "nodes" / n.name).unlink(missing_ok=True)
        proxy = self.bindir / "kube-proxy"
        if proxy.is_file():
            subprocess.run([str(proxy), "--cleanup"], capture_output=True, timeout=60, check=False)
        podnet.remove_kube_chains()
        podnet.remove_bridges()
        left += [f"iptables chain {c} ({t})" for t, chains in podnet.kube_chains().items() for c in chains]
        left += [f"bridge {b}" for b in podnet.bridges()]
        return left


def _node_ready(dc: Cluster, name: str) -> bool:
    try:
        obj = dc.request("GET", f"/api/v1/nodes/{name}")
    except OSError:
        return False
    return condition_true(obj, "Ready")
