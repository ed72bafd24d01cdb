"""Run etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok on loopback.

Everything lives in one directory: its own PKI, etcd data, component logs, and a
kubeconfig whose single context is named ``wsfleet-dev``. That directory is the
cluster's identity: :func:`guard` refuses any kubeconfig that is not one of
ours, so a developer's real cluster is never touched.

kwok plays the kubelets for scale: it keeps fake Nodes (three zones) Ready and
moves their pods to Running and Ready, so Deployments roll out for real while no
container runs. With ``real_nodes``, real kubelets with containerd join too
(node.py, podnet.py): the API server then listens on an address pods can reach
(podnet.API_ADDRESS) instead of loopback, and the ``kubernetes`` Service points at it.

``up`` starts a new cluster every time: what a stopped or crashed one left (its
processes, the nodes' mounts, bridges, cgroups and iptables chains, its etcd data)
is removed first.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml

from wsfleet_devcluster import builds, lending, metrics, node, pki, podnet

CONTEXT = node.CONTEXT
MARKER = ".wsfleet-dev-cluster"
SERVICE_CIDR = str(podnet.SERVICE_RANGE)
SERVICE_CIDR_FIRST_IP = str(podnet.SERVICE_RANGE[1])  # the kubernetes Service, in the API server certificate
POD_CIDR = "10.244.0.0/16"
ZONES = ("zone-a", "zone-b", "zone-c")
KWOK_ANNOTATION = "kwok.x-k8s.io/node"
START_TIMEOUT = 120.0
OPERATOR_USER = "wsfleet-operator"
# Two more identities for two operator replicas at once (leader election): the audit log tells
# which replica wrote what.
REPLICA_USERS = ("wsfleet-operator-a", "wsfleet-operator-b")
WRITE_VERBS = ["create", "update", "patch", "delete", "deletecollection"]
# Metadata of every write by the operator's user, once each (at ResponseComplete); nothing else.
AUDIT_POLICY: dict[str, Any] = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived", "ResponseStarted"],
    "rules": [
        {"level": "Metadata", "users": [OPERATOR_USER, *REPLICA_USERS], "verbs": WRITE_VERBS},
        {"level": "None"},
    ],
}


class ClusterError(RuntimeError):
    pass


free_port = lending.free_port


def _kubeconfig(server: str, ca: Path, cert: Path, key: Path, user: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": user, "user": {"client-certificate": str(cert), "client-key": str(key)}}],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": user}}],
        "current-context": CONTEXT,
    }


def guard(kubeconfig: Path) -> None:
    """Refuse any kubeconfig this harness did not create, or that points off loopback."""
    marker = kubeconfig.parent / MARKER
    if not marker.is_file():
        raise ClusterError(f"{kubeconfig}: not created by wsfleet dev-cluster (no {MARKER} beside it); refusing")
    config = yaml.safe_load(kubeconfig.read_text())
    contexts = [c["name"] for c in config.get("contexts", [])]
    servers = [c["cluster"]["server"] for c in config.get("clusters", [])]
    if contexts != [CONTEXT] or config.get("current-context") != CONTEXT:
        raise ClusterError(f"{kubeconfig}: contexts {contexts}: only {CONTEXT!r} is ours; refusing")
    ours = ("https://127.0.0.1:", f"https://{podnet.API_ADDRESS}:")
    if not all(s.startswith(ours) for s in servers):
        raise ClusterError(f"{kubeconfig}: server {servers} is neither on loopback nor {podnet.API_ADDRESS}; refusing")


@dataclass
class DevCluster:
    """One local control plane in one directory."""

    dir: Path
    bindir: Path = field(default_factory=builds.bin_dir)
    ports: dict[str, int] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    real: node.RealNodes | None = None  # real kubelets with containerd, beside kwok's fake nodes
    address: str = "127.0.0.1"  # where the API server listens

    @property
    def kubeconfig(self) -> Path:
        return self.dir / "kubeconfig"

    @property
    def operator_kubeconfig(self) -> Path:
        """The kubeconfig of user OPERATOR_USER (system:masters): the operator's, in the tests."""
        return self.dir / "operator.kubeconfig"

    def replica_kubeconfig(self, user: str) -> Path:
        """The kubeconfig of one of REPLICA_USERS (system:masters)."""
        return self.dir / f"{user}.kubeconfig"

    @property
    def audit_log(self) -> Path:
        """JSON lines: every write by OPERATOR_USER and REPLICA_USERS (AUDIT_POLICY)."""
        return self.dir / "logs" / "audit.log"

    @property
    def state_file(self) -> Path:
        return self.dir / "state.json"

    @property
    def server(self) -> str:
        return f"https://{self.address}:{self.ports['apiserver']}"

    # --- lifecycle -------------------------------------------------------------------

    def up(self, out: TextIO = sys.stderr, nodes: int = 3) -> None:
        if self.state_file.exists():
            if self._alive():
                raise ClusterError(f"{self.dir}: a dev cluster is already running here; run `wsfleet dev-cluster down`")
            out.write(f">> removing what the last dev cluster in {self.dir} left\n")
            self.down()
        if self.real:
            podnet.check_host()
            if podnet.bridges():  # ours were removed by down() above: these are another cluster's
                raise ClusterError(
                    f"another dev cluster with real nodes runs on this machine (bridges {', '.join(podnet.bridges())}); "
                    "one at a time: run `wsfleet dev-cluster down --dir DIR` in its directory"
                )
            podnet.ensure_api_address()
            self.address = podnet.API_ADDRESS
        # a new cluster every time: the objects of the last one would collide with the new ones
        shutil.rmtree(self.dir / "etcd", ignore_errors=True)
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / MARKER).write_text("created by wsfleet dev-cluster\n")
        (self.dir / "logs").mkdir(exist_ok=True)
        self.ports = {name: free_port() for name in ("etcd", "etcd-peer", "apiserver")}
        clients: dict[str, str | None] = {
            "admin": "system:masters",
            "system:kube-controller-manager": None,
            "system:kube-scheduler": None,
            "kwok": "system:masters",
            # the operator's own identity, so the audit log tells its writes from kubectl's
            OPERATOR_USER: "system:masters",
            **dict.fromkeys(REPLICA_USERS, "system:masters"),
        }
        if self.real:
            clients.update(self.real.clients())
        certs = pki.create(self.dir / "pki", clients, service_ip=SERVICE_CIDR_FIRST_IP, api_ips=(self.address,))
        for cn, fname in (
            ("admin", "kubeconfig"),
            ("system:kube-controller-manager", "controller-manager.kubeconfig"),
            ("system:kube-scheduler", "scheduler.kubeconfig"),
            ("kwok", "kwok.kubeconfig"),
            (OPERATOR_USER, "operator.kubeconfig"),
            *((user, f"{user}.kubeconfig") for user in REPLICA_USERS),
            *((cn, lending.kubeconfig_name(cn)) for cn in (self.real.clients() if self.real else {})),
        ):
            cfg = _kubeconfig(self.server, certs.ca_cert, certs.cert(cn), certs.key(cn), cn)
            (self.dir / fname).write_text(yaml.safe_dump(cfg))
            (self.dir / fname).chmod(0o600)
        try:
            self._start_etcd(out)
            self._start_apiserver(certs, out)
            self._start("kube-controller-manager", self._controller_manager_args(certs), out)
            self._start("kube-scheduler", self._scheduler_args(), out)
            self._start("kwok", self._kwok_args(), out)
            self._wait_namespace_ready(out)
            self.create_nodes(nodes)
            if self.real:
                self.real.start(self, certs.ca_cert, out)
                self.real.wait_ready(self, out)  # and starts the Gateway
        except BaseException:
            self.down()
            raise
        out.write(f">> dev cluster up: {self.server}\n   export KUBECONFIG={self.kubeconfig}\n")
        out.flush()

    def down(self) -> None:
        """Stop every component (SIGTERM, then SIGKILL after 10 s)."""
        pids = {name: p.pid for name, p in self.procs.items()}
        if not pids and self.state_file.exists():
            pids = json.loads(self.state_file.read_text()).get("pids", {})
        for pid in pids.values():
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        deadline = time.monotonic() + 10
        for pid in pids.values():
            while time.monotonic() < deadline and _pid_alive(pid):
                time.sleep(0.1)
            if _pid_alive(pid):
                os.killpg(pid, signal.SIGKILL)
        for p in self.procs.values():
            p.wait(timeout=10)
        self.procs.clear()
        real = self.real
        if real is None and self.state_file.exists():
            real = node.RealNodes.from_state(json.loads(self.state_file.read_text()).get("real"))
        if real is not None:
            left = real.cleanup(self.dir)
            if left:
                raise ClusterError(f"{self.dir}: stopped, but could not remove: {', '.join(left)}")
        self.state_file.unlink(missing_ok=True)

    def status(self) -> dict[str, bool]:
        if not self.state_file.exists():
            return {}
        pids: dict[str, int] = json.loads(self.state_file.read_text())["pids"]
        return {name: _pid_alive(pid) for name, pid in pids.items()}

    # --- components ------------------------------------------------------------------

    def _start(
        self, name: str, args: list[str], out: TextIO, *, exe: Path | None = None, env: dict[str, str] | None = None
    ) -> None:
        exe = exe or self.bindir / name
        if not exe.is_file():
            raise ClusterError(f"{exe}: missing; run `wsfleet dev-cluster build` first")
        out.write(f">> starting {name}\n")
        out.flush()
        # The child keeps its own descriptor; ours closes when the with-block ends.
        with (self.dir / "logs" / f"{name}.log").open("ab") as log:
            self.procs[name] = subprocess.Popen(
                [str(exe), *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=env,
            )
        # every process is in the state file as soon as it runs: a later `down` (or `up` after a
        # crash) stops whatever was started, whoever started it
        self._save_state()

    def _start_etcd(self, out: TextIO) -> None:
        client = f"http://127.0.0.1:{self.ports['etcd']}"
        peer = f"http://127.0.0.1:{self.ports['etcd-peer']}"
        args = [
            f"--data-dir={self.dir / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=default={peer}",
            "--unsafe-no-fsync",  # a throwaway test store: durability buys nothing here
            "--log-level=warn",
        ]
        self._start("etcd", args, out)
        self._wait(lambda: http_ok(f"{client}/health"), "etcd /health")

    def _start_apiserver(self, certs: pki.Pki, out: TextIO) -> None:
        policy = self.dir / "audit-policy.yaml"
        policy.write_text(yaml.safe_dump(AUDIT_POLICY))
        args = [
            # every write by the operator's user, dry runs included (they carry dryRun=All in
            # their requestURI): a test counts them independently of the operator's own counters
            f"--audit-policy-file={policy}",
            f"--audit-log-path={self.audit_log}",
            "--audit-log-format=json",
            "--audit-log-mode=blocking",  # the entry is written before the request is answered
            f"--etcd-servers=http://127.0.0.1:{self.ports['etcd']}",
            f"--bind-address={self.address}",
            f"--advertise-address={self.address}",
            f"--secure-port={self.ports['apiserver']}",
            f"--tls-cert-file={certs.cert('apiserver')}",
            f"--tls-private-key-file={certs.key('apiserver')}",
            f"--client-ca-file={certs.ca_cert}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--service-account-issuer={self.server}",
            f"--service-account-key-file={certs.sa_pub}",
            f"--service-account-signing-key-file={certs.sa_key}",
            "--authorization-mode=Node,RBAC",
            "--allow-privileged=true",
            "--enable-admission-plugins=NamespaceLifecycle,ServiceAccount,PodSecurity,ResourceQuota,NodeRestriction",
            "--profiling=false",
        ]
        if self.real:
            # the kubernetes Service points at the API server; kubectl logs/exec reach the kubelets
            args += [
                "--endpoint-reconciler-type=lease",
                f"--kubelet-client-certificate={certs.cert(node.KUBELET_CLIENT)}",
                f"--kubelet-client-key={certs.key(node.KUBELET_CLIENT)}",
                "--kubelet-preferred-address-types=InternalIP",
                # aggregated APIs (metrics-server, metrics.py): the API server proxies to them as
                # the front proxy, with a client certificate they trust through the requestheader
                # CA (this cluster's one CA, narrowed to that one name), and dials the endpoint
                f"--proxy-client-cert-file={certs.cert(metrics.FRONT_PROXY_CLIENT)}",
                f"--proxy-client-key-file={certs.key(metrics.FRONT_PROXY_CLIENT)}",
                f"--requestheader-client-ca-file={certs.ca_cert}",
                f"--requestheader-allowed-names={metrics.FRONT_PROXY_CLIENT}",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                "--enable-aggregator-routing=true",
            ]
        else:
            args.append("--endpoint-reconciler-type=none")  # loopback is no endpoint address
        self._start("kube-apiserver", args, out)
        self._wait(lambda: self._api_ok("/readyz"), "kube-apiserver /readyz")

    def _controller_manager_args(self, certs: pki.Pki) -> list[str]:
        return [
            f"--kubeconfig={self.dir / 'controller-manager.kubeconfig'}",
            "--secure-port=0",
            "--leader-elect=false",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={certs.sa_key}",
            f"--root-ca-file={certs.ca_cert}",
            f"--cluster-signing-cert-file={certs.ca_cert}",
            f"--cluster-signing-key-file={certs.ca_key}",
            "--controllers=*",
        ]

    def _scheduler_args(self) -> list[str]:
        return [f"--kubeconfig={self.dir / 'scheduler.kubeconfig'}", "--leader-elect=false", "--secure-port=0"]

    def _kwok_args(self) -> list[str]:
        return [
            f"--kubeconfig={self.dir / 'kwok.kubeconfig'}",
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={KWOK_ANNOTATION}=fake",
            f"--cidr={POD_CIDR}",
            "--node-ip=127.0.0.1",
            "--server-address=",
            # Without leases the node-lifecycle controller sees no heartbeat after its grace
            # period and marks every pod Ready=False, which kwok never reverts.
            "--node-lease-duration-seconds=40",
        ]

    # --- API helpers -------------------------------------------------------------------

    def _ssl(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.dir / "pki" / "ca.crt"))
        ctx.load_cert_chain(str(self.dir / "pki" / "admin.crt"), str(self.dir / "pki" / "admin.key"))
        return ctx

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, context=self._ssl(), timeout=10) as resp:
            return json.loads(resp.read() or b"null")

    def _api_ok(self, path: str) -> bool:
        try:
            req = urllib.request.Request(self.server + path)
            with urllib.request.urlopen(req, context=self._ssl(), timeout=3) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def _wait(self, check: Any, what: str, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, p in self.procs.items():
                if p.poll() is not None:
                    tail = (self.dir / "logs" / f"{name}.log").read_text(errors="replace")[-3000:]
                    raise ClusterError(f"{name} exited with {p.returncode} while waiting for {what}:\n{tail}")
            if check():
                return
            time.sleep(0.25)
        raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}")

    def _wait_namespace_ready(self, out: TextIO) -> None:
        """The controller-manager is working once it has created the default ServiceAccount."""

        def ready() -> bool:
            try:
                self.request("GET", "/api/v1/namespaces/default/serviceaccounts/default")
                return True
            except OSError:
                return False

        self._wait(ready, "the default ServiceAccount (kube-controller-manager)")

    def create_nodes(self, count: int) -> None:
        for i in range(count):
            zone = ZONES[i % len(ZONES)]
            name = f"kwok-node-{i}"
            node = {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "annotations": {KWOK_ANNOTATION: "fake"},
                    "labels": {
                        "kubernetes.io/hostname": name,
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                        "topology.kubernetes.io/zone": zone,
                        "type": "kwok",
                    },
                },
                "status": {
                    "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
                    "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"},
                },
            }
            self.request("POST", "/api/v1/nodes", node)

    def _alive(self) -> bool:
        return any(self.status().values())

    def _save_state(self) -> None:
        state = {
            "pids": {n: p.pid for n, p in self.procs.items()},
            "ports": self.ports,
            "server": self.server,
            "real": self.real.state() if self.real else None,
        }
        self.state_file.write_text(json.dumps(state, indent=2))


def _pid_alive(pid: int) -> bool:
    """Running: a zombie (killed, not yet reaped by its parent) is not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def http_ok(url: str, timeout: float = 2) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False
