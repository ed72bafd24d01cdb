"""What the control plane lends the parts that join it (the real nodes, the Gateway, metrics-server):
its directory, its address, its process starter and waiter, its API client, the names of its kubeconfigs, and free
loopback ports. A protocol,
so that node.py and gateway.py need not import controlplane.py, which imports them."""

from __future__ import annotations

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
