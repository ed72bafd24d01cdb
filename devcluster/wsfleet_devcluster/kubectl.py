"""kubectl against a dev cluster's kubeconfig (and only such a one: controlplane.guard)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


class KubectlError(RuntimeError):
    pass


def kubectl(kubeconfig: Path, *args: str, stdin: str | None = None, timeout: float = 360) -> str:
    """Run kubectl (the development install's, else the one on PATH); raise with its stderr."""
    from wsfleet_devcluster.controlplane import guard  # noqa: PLC0415 - controlplane imports the nodes, which use this

    guard(kubeconfig)
    local = Path(sys.executable).parent / "kubectl"
    exe = str(local) if local.exists() else shutil.which("kubectl") or "kubectl"
    proc = subprocess.run(
        [exe, *args], input=stdin, capture_output=True, text=True,
        env={**os.environ, "KUBECONFIG": str(kubeconfig)}, timeout=timeout, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise KubectlError(f"kubectl {' '.join(args)}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout
