"""The real nodes' network, kept on this machine: a bridge per node, an address for the API
server that pods can reach, and the cleanup of everything the nodes leave in the host's kernel.

Addresses come from the documentation blocks (RFC 5737), so nothing the cluster adds can be
mistaken for, or routed to, a network off this machine:

- pods: 198.51.100.0/24, a /26 per node (node N has 198.51.100.64*(N-1)/26); the node's bridge
  ``wsfnodeN`` holds the first address of that range, which is also the node's IP (there are
  no dummy links here, and a bridge address is a local address of the host);
- no default route in a pod: routes to the pod range, the API server's address and the Service
  range only, through its node's bridge, so no packet from a pod is ever routed off the machine;
- the API server: 203.0.113.1 on the port-less bridge ``wsfapi``. Pods cannot reach the host's
  127.0.0.1, so a cluster with real nodes binds the API server there instead of to loopback;
  the ``kubernetes`` Service points at it and the API server's certificate names it.

Each node's CNI configuration is a ``bridge`` conflist (``isGateway``, no masquerade, host-local
IPAM on its range); the plugins are Debian's (containernetworking-plugins, /usr/lib/cni).

:func:`cleanup` removes what the kubelets, kube-proxy and the CNI plugins leave behind once
their processes are gone (real-node.md lists it): KUBE-* chains in every iptables and ip6tables
table, the bridges, mounts under the cluster's directory (pod volumes, container root
filesystems, network namespaces) and the nodes' cgroups.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

POD_RANGE = ipaddress.IPv4Network("198.51.100.0/24")
NODE_PREFIX = 26  # four nodes at most
API_ADDRESS = "203.0.113.1"
# Room for thousands of Services (a /24 runs out at 254, below what the benchmark creates).
SERVICE_RANGE = ipaddress.IPv4Network("10.96.0.0/16")
API_BRIDGE = "wsfapi"
BRIDGE_PREFIX = "wsfnode"
CNI_BIN_DIR = Path("/usr/lib/cni")
CGROUP_ROOT = Path("/sys/fs/cgroup")


class NetworkError(RuntimeError):
    pass


@dataclass(frozen=True)
class NodeNet:
    index: int  # 1-based

    @property
    def subnet(self) -> ipaddress.IPv4Network:
        nets = list(POD_RANGE.subnets(new_prefix=NODE_PREFIX))
        if not 1 <= self.index <= len(nets):
            raise NetworkError(f"node {self.index}: {POD_RANGE} holds {len(nets)} nodes of /{NODE_PREFIX}")
        return nets[self.index - 1]

    @property
    def address(self) -> str:
        """The bridge's address: the pods' gateway and the node's IP."""
        return str(next(self.subnet.hosts()))

    @property
    def bridge(self) -> str:
        return f"{BRIDGE_PREFIX}{self.index}"


def cni_conflist(net: NodeNet, data_dir: Path) -> dict[str, Any]:
    """The node's CNI network: its bridge, its range, no masquerade (nothing leaves the host)."""
    return {
        "cniVersion": "1.0.0",
        "name": f"wsfleet-{net.bridge}",
        "plugins": [
            {
                "type": "bridge",
                "bridge": net.bridge,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,  # a pod reaching its own Service through kube-proxy
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": str(net.subnet), "gateway": net.address}]],
                    "routes": [{"dst": str(POD_RANGE)}, {"dst": f"{API_ADDRESS}/32"}, {"dst": str(SERVICE_RANGE)}],
                    "dataDir": str(data_dir),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    ip = shutil.which("ip") or "/usr/sbin/ip"
    proc = subprocess.run([ip, *args], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise NetworkError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
    return proc


def _link_exists(name: str) -> bool:
    return _ip("link", "show", name, check=False).returncode == 0


def ensure_bridge(name: str, address: str, prefix: int) -> None:
    """A bridge holding `address`, up. The bridge plugin later adds the pods' veths to it."""
    if not _link_exists(name):
        _ip("link", "add", name, "type", "bridge")
    if address not in _ip("-4", "addr", "show", "dev", name).stdout:
        _ip("addr", "add", f"{address}/{prefix}", "dev", name)
    _ip("link", "set", name, "up")


def ensure_api_address() -> None:
    ensure_bridge(API_BRIDGE, API_ADDRESS, 32)


def ensure_node_bridge(net: NodeNet) -> None:
    ensure_bridge(net.bridge, net.address, NODE_PREFIX)


def unplug_ports(bridge: str) -> list[str]:
    """Take down every port of `bridge` (the host ends of its pods' veths): the pods behind it are
    cut off as a machine that lost power is, with silence, not a reset. The bridge keeps its
    address and route, so the host still tries them (ARP goes unanswered) and nothing leaves the
    machine. Returns the ports."""
    out = _ip("-o", "link", "show", "master", bridge, check=False).stdout
    ports = [line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line]
    for port in ports:
        _ip("link", "set", "dev", port, "down", check=False)
    return ports


def check_host() -> None:
    """What the real nodes need from this machine, said before anything starts."""
    problems = []
    if os.geteuid() != 0:
        problems.append("real nodes need root (kubelet, containerd, bridges, iptables)")
    if not (CNI_BIN_DIR / "bridge").is_file():
        problems.append(f"{CNI_BIN_DIR}/bridge: missing (apt-get install containernetworking-plugins)")
    for tool in (*IPTABLES, "ip"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            problems.append(f"{tool}: missing (apt-get install iptables iproute2)")
    if Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() != "1":
        problems.append("net.ipv4.ip_forward is 0: pods on one node cannot reach the other's")
    if problems:
        raise NetworkError("; ".join(problems))


# --- cgroups ------------------------------------------------------------------------------


def cgroup_hierarchies() -> list[Path]:
    """Every mounted cgroup hierarchy (v1 controllers, and the v2 one of a hybrid host)."""
    out = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        _, mountpoint, fstype, *_ = line.split()
        if fstype in ("cgroup", "cgroup2"):
            out.append(Path(mountpoint))
    return out


def ensure_cgroup_root(name: str) -> None:
    """The node's cgroupRoot in every hierarchy: the kubelet refuses to start without it."""
    for h in cgroup_hierarchies():
        (h / name).mkdir(exist_ok=True)


def cgroup_pids(name: str) -> set[int]:
    pids: set[int] = set()
    for h in cgroup_hierarchies():
        root = h / name
        if root.is_dir():
            for procs in root.rglob("cgroup.procs"):
                try:
                    pids |= {int(p) for p in procs.read_text().split()}
                except OSError:
                    continue
    return pids


def remove_cgroup_root(name: str) -> list[str]:
    """rmdir the node's cgroups, deepest first; return the ones that could not go."""
    left: list[str] = []
    for h in cgroup_hierarchies():
        root = h / name
        if not root.is_dir():
            continue
        for d in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            _rmdir(d, left)
        _rmdir(root, left)
    return left


def _rmdir(d: Path, left: list[str]) -> None:
    for _ in range(50):  # a cgroup whose last process just died can be busy for a moment
        try:
            d.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.1)
    left.append(str(d))


# --- cleanup ------------------------------------------------------------------------------


def mounts_under(directory: Path) -> list[str]:
    """Mount points at or under `directory`, deepest first (mountinfo escapes spaces as \\040)."""
    base = str(directory.resolve())
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == base or point.startswith(base + "/"):
            points.append(point)
    return sorted(set(points), key=len, reverse=True)


def unmount_under(directory: Path) -> list[str]:
    """Unmount everything under `directory` (lazily: a mount still in use goes when released)."""
    for point in mounts_under(directory):
        subprocess.run(["umount", "--lazy", point], capture_output=True, check=False)
    return mounts_under(directory)


IPTABLES = ("iptables", "ip6tables")


def _kube_rules(tool: str) -> tuple[dict[str, list[str]], list[tuple[str, list[str]]]]:
    """From `tool`-save: the KUBE-* chains of each table, and the rules of other chains that
    jump to one (as (table, rule arguments))."""
    dump = subprocess.run([f"{tool}-save"], capture_output=True, text=True, check=False).stdout
    table = ""
    chains: dict[str, list[str]] = {}
    jumps: list[tuple[str, list[str]]] = []
    for line in dump.splitlines():
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith(":KUBE-"):
            chains.setdefault(table, []).append(line[1:].split()[0])
        elif line.startswith("-A ") and re.search(r" -j KUBE-", line) and not line.split()[1].startswith("KUBE-"):
            jumps.append((table, shlex.split(line)[1:]))
    return chains, jumps


def kube_chains() -> dict[str, list[str]]:
    """{'iptables:filter': ['KUBE-FIREWALL', ...], ...}: every KUBE-* chain in the host's tables."""
    return {f"{tool}:{table}": names for tool in IPTABLES for table, names in _kube_rules(tool)[0].items()}


def remove_kube_chains() -> None:
    """Delete the rules that jump to KUBE-* chains, then flush and delete those chains, in every
    table of iptables and ip6tables: what the kubelets and kube-proxy made."""
    for tool in IPTABLES:
        chains, jumps = _kube_rules(tool)
        for table, rule in jumps:
            subprocess.run([tool, "-w", "-t", table, "-D", *rule], capture_output=True, check=False)
        for table, names in chains.items():
            for name in names:
                subprocess.run([tool, "-w", "-t", table, "-F", name], capture_output=True, check=False)
            for name in names:
                subprocess.run([tool, "-w", "-t", table, "-X", name], capture_output=True, check=False)


def bridges() -> list[str]:
    """The cluster's bridges that exist now."""
    out = _ip("-o", "link", "show", "type", "bridge", check=False).stdout
    names = [line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line]
    return [n for n in names if n == API_BRIDGE or n.startswith(BRIDGE_PREFIX)]


def remove_bridges() -> None:
    for name in bridges():
        _ip("link", "delete", name, check=False)
