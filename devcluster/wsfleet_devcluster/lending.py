"""What the control plane lends the parts that join it (the real nodes, the Gateway, metrics-server):
its directory, its address, its process starter and waiter, its API client, the names of its kubeconfigs, and free
loopback ports. A protocol,
so that node.py and gateway.py need not import controlplane.py, which imports them."""

from __future__ import annotations

import random
import socket
import subprocess
from pathlib import Path
from typing import Any, Protocol, TextIO


class Cluster(Protocol):
    dir: Path
    procs: dict[str, subprocess.Popen[bytes]]

    @property
    def kubeconfig(self) -> Path: ...

    @property
    def server(self) -> str: ...

    def _start(
        self, name: str, args: list[str], out: TextIO, *, exe: Path | None = None, env: dict[str, str] | None = None
    ) -> None: ...

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any: ...

    def _wait(self, check: Any, what: str, timeout: float = ...) -> None: ...


def kubeconfig_name(cn: str) -> str:
    """The file in the cluster directory holding the kubeconfig of client certificate `cn`."""
    return f"{cn.replace(':', '-')}.kubeconfig"


def condition_true(obj: dict[str, Any], kind: str) -> bool:
    """Whether the object's status condition `kind` (Ready, Programmed...) is True."""
    return any(c["type"] == kind and c["status"] == "True" for c in (obj.get("status") or {}).get("conditions", []))


# Ports handed out come from below Linux's ephemeral range (32768-60999 by default). A port the
# kernel picked for bind(0) is ephemeral, and between our check and the server's own bind the
# kernel may give it to an outgoing connection (a client, a Redis command, a download): the server
# then fails with "address already in use". Outgoing connections never take ports below the range.
# It also stays below Kubernetes' NodePort range (30000-32767), which kube-proxy's rules match on
# the real nodes' host.
PORT_RANGE = (20000, 29999)
_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port nothing listens on, not handed out before by this process, and outside the
    kernel's ephemeral range."""
    low, high = PORT_RANGE
    start = random.randrange(low, high + 1)
    for i in range(high - low + 1):
        port = low + (start - low + i) % (high - low + 1)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise OSError(f"no free loopback port in {low}-{high}")
