"""The README's tour and the docs' cluster commands, run as written.

| block (tests/support/snippets.py)  | how it runs                                                         |
|------------------------------------|---------------------------------------------------------------------|
| README `tour`                      | verbatim in bash from the repository, HOME in a temp dir: its own dev cluster, the operator, an example, `kubectl wait` Ready, then down |
| README `tour-client`               | verbatim: redis-server, the workload on :3001, `wsfleet validate affinity` PASS |
| operator.md `install`, runbook `cluster` | against this session's control plane (KUBECONFIG), with its operator |

HOME is a temp dir so the tour's `~/.cache/wsfleet/clusters/dev` cannot touch a developer's own
dev cluster; WSFLEET_CACHE points at the built binaries so nothing is rebuilt.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.integration.conftest import Kubectl, Operator
from tests.support.snippets import tagged
from wsfleet_devcluster import builds, controlplane

BIN = Path(sys.executable).parent


def _bash(script: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    proc = subprocess.Popen(
        ["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever the block left running in the background
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, "")


@pytest.fixture
def home(tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "WSFLEET_CACHE": str(builds.CACHE_ROOT),
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
    }
    env.pop("KUBECONFIG", None)
    yield env
    # the tour's cluster, if the block failed before its own `down`
    subprocess.run([str(BIN / "wsfleet"), "dev-cluster", "down", "--dir", str(tmp_path / ".cache/wsfleet/clusters/dev")],
                   capture_output=True, timeout=60, check=False)  # fmt: skip


def test_readme_tour_reaches_ready(home: dict[str, str]) -> None:
    (block,) = tagged("tour")
    proc = _bash(block.text, home, timeout=420)
    assert proc.returncode == 0, f"{block.where}:\n{proc.stdout[-4000:]}"
    rows = [line.split() for line in proc.stdout.splitlines() if line.startswith("chat ")]
    assert rows, proc.stdout[-3000:]
    assert rows[-1][1:5] == ["True", "nginx", "3", "80"], rows[-1]
    assert "condition met" in proc.stdout


def test_readme_client_tour_passes(home: dict[str, str]) -> None:
    (block,) = tagged("tour-client")
    try:
        proc = _bash(block.text, home, timeout=180)
    finally:  # the daemonized redis-server, if the block failed before its own shutdown
        subprocess.run(["redis-cli", "-p", "6379", "shutdown", "nosave"], capture_output=True, timeout=10, check=False)
    assert proc.returncode == 0, f"{block.where}:\n{proc.stdout[-4000:]}"
    assert '"status": "ready"' in proc.stdout, proc.stdout[-3000:]
    assert "wsfleet validate affinity: PASS" in proc.stdout, proc.stdout[-3000:]


def test_install_and_runbook_commands_on_the_control_plane(
    kubectl: Kubectl, operator: Operator, dev_cluster: controlplane.DevCluster, tmp_path: Path
) -> None:
    env = {**os.environ, "KUBECONFIG": str(dev_cluster.kubeconfig), "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
           "HOME": str(tmp_path)}  # fmt: skip
    controlplane.guard(dev_cluster.kubeconfig)
    try:
        for block in [*tagged("install"), *tagged("cluster")]:
            proc = _bash(block.text, env, timeout=300)
            assert proc.returncode == 0, f"{block.where}:\n{proc.stdout[-4000:]}"
        ready = kubectl.condition("chat", "default", "Ready")
        assert ready is not None
        assert ready["status"] == "True", ready
    finally:
        kubectl("delete", "wss", "chat", "-n", "default", "--ignore-not-found", "--wait=false", check=False)
        kubectl("delete", "secret", "wsfleet-redis", "-n", "default", "--ignore-not-found", check=False)
