"""`make demo`, run as the README writes it, on a machine where it has not run before (a fresh
HOME; the build caches are shared, so nothing is rebuilt that a fresh machine would not).

| run                 | checked                                                                  |
|---------------------|--------------------------------------------------------------------------|
| first `make demo`   | exits 0 and prints the demo page's URL; the page answers; a Socket.IO    |
|                     | client connects through the same address (the Gateway: Traefik) and gets |
|                     | the affinity cookie; the operator runs as two pods (leader and standby)  |
|                     | on real nodes, from the image the install names, one of them holding the |
|                     | Lease; the example is Ready                                              |
| second `make demo`  | finds the cluster up and reuses it                                       |
| `make demo-down`    | exits 0 and leaves nothing on the machine (as test_real_nodes checks)    |
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import socketio

from tests.conftest import ROOT
from tests.integration.conftest import Kubectl
from tests.integration.nodes.test_real_nodes import host_state
from tests.support.processes import http
from wsfleet_devcluster import builds, images

pytestmark = pytest.mark.integration
if os.geteuid() != 0:
    pytest.skip("real nodes need root (kubelet, containerd, bridges, iptables)", allow_module_level=True)


def _make(target: str, home: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    go = {k: subprocess.run(["go", "env", k], capture_output=True, text=True, check=False).stdout.strip()
          for k in ("GOMODCACHE", "GOCACHE")}  # fmt: skip
    env = {
        **os.environ,
        "HOME": str(home),
        "WSFLEET_CACHE": str(builds.CACHE_ROOT),
        **{k: v for k, v in go.items() if v},
    }
    proc = subprocess.run(["make", target], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)  # fmt: skip
    sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
    return proc


def test_make_demo_as_written(tmp_path: Path) -> None:
    cluster_dir = tmp_path / ".cache" / "wsfleet" / "clusters" / "dev"
    before = host_state(cluster_dir)
    try:
        first = _make("demo", tmp_path, 1800)
        assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
        urls = re.findall(r"demo ready in \d+s: (http://\S+)", first.stdout + first.stderr)
        assert urls, first.stdout[-2000:] + first.stderr[-2000:]
        url = urls[-1]
        status, _, body = http("GET", url, timeout=10)
        assert status == 200, url
        assert "socket.io" in str(body).lower(), "the demo page loads the Socket.IO client"

        base = url.split("/demo/")[0]
        status, headers, _ = http("GET", f"{base}/socket.io/?EIO=4&transport=polling", timeout=10)
        assert status == 200
        assert "WSFLEET=" in headers.get("Set-Cookie", ""), f"no affinity cookie from the Gateway: {headers}"

        async def connect() -> str:
            client = socketio.AsyncClient(reconnection=False)
            await client.connect(base, transports=["websocket"], wait_timeout=20)
            sid = str(client.sid)
            await client.disconnect()
            return sid

        assert asyncio.run(connect())

        kubectl = Kubectl(cluster_dir / "kubeconfig")
        pods = json.loads(kubectl("-n", "wsfleet-system", "get", "pods", "-o", "json").stdout)["items"]
        assert [p["status"]["phase"] for p in pods] == ["Running", "Running"], "leader and standby"
        for pod in pods:
            assert pod["spec"]["nodeName"] in ("node1", "node2")
            assert pod["spec"]["containers"][0]["image"] == images.published_name("operator")
        lease = json.loads(kubectl("-n", "wsfleet-system", "get", "lease", "wsfleet-operator", "-o", "json").stdout)
        holder = lease["spec"]["holderIdentity"].rpartition("_")[0]  # <pod name>_<uuid>
        assert holder in [p["metadata"]["name"] for p in pods], lease["spec"]
        wss = json.loads(kubectl("get", "wss", "-A", "-o", "json").stdout)["items"]
        ready = {w["metadata"]["name"]: [c["status"] for c in w["status"]["conditions"] if c["type"] == "Ready"]
                 for w in wss}  # fmt: skip
        assert ready == {"chat-traefik": ["True"]}, ready

        second = _make("demo", tmp_path, 900)
        assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-4000:]
        assert "is up; reusing it" in second.stdout + second.stderr
    finally:
        down = _make("demo-down", tmp_path, 300)
    assert down.returncode == 0, down.stdout + down.stderr
    assert host_state(cluster_dir) == before
