"""External tools the tests use that do not come from the venv."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from wsfleet_devcluster import builds

# `make promtool` extracts promtool from Debian's prometheus package into <version>/promtool here.
PROMTOOL_CACHE = Path.home() / ".cache" / "wsfleet" / "promtool"


def promtool() -> str:
    found = shutil.which("promtool") or next(
        (str(p) for p in sorted(PROMTOOL_CACHE.glob("*/promtool"), reverse=True)), None
    )
    assert found, "promtool is missing: run `make promtool` (Debian's prometheus package, the binary only)"
    return found


def check_expressions(exprs: list[str], workdir: Path, name: str) -> subprocess.CompletedProcess[str]:
    """`promtool check rules` on PromQL expressions, each as a recording rule of group `name`."""
    rules = [{"record": f"wsfleet:{name}:{i}", "expr": e} for i, e in enumerate(exprs)]
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": name, "rules": rules}]}))
    return subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60,
                          check=False)  # fmt: skip


def kstatus(*objects: dict[str, Any]) -> list[dict[str, Any]]:
    """Each object's status as kstatus (sigs.k8s.io/cli-utils) computes it for Flux and Argo CD:
    {status: Current|InProgress|Failed|..., message, conditions}. Built by `make controlplane`."""
    binary = builds.kstatus_binary()
    assert binary.is_file(), f"{binary} is missing: run `make controlplane` (builds.ensure_kstatus)"
    proc = subprocess.run([str(binary)], input=json.dumps(list(objects)), capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
    assert proc.returncode == 0, f"kstatus failed ({proc.returncode}): {proc.stderr}"
    results: list[dict[str, Any]] = json.loads(proc.stdout)
    return results
