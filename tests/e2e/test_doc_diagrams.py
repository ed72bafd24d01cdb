"""The mermaid diagrams of README.md and docs/ parse with mermaid itself (the library GitHub
renders them with), in Debian's Chromium; a broken diagram is refused, so the check can fail."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.test_browser import CHROMIUM
from tests.support.processes import JS
from tests.support.snippets import tagged


def _parse(diagrams: list[dict[str, str]]) -> list[dict[str, object]]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run installs it)")
    node = shutil.which("node") or "node"
    proc = subprocess.run([node, str(JS / "mermaid-check.mjs")], input=json.dumps(diagrams), capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]


def test_every_mermaid_diagram_parses() -> None:
    blocks = tagged("mermaid")
    broken = {"where": "broken", "text": "flowchart LR\n  a[unclosed --> b"}
    results = _parse([{"where": b.where, "text": b.text} for b in blocks] + [broken])
    assert [r["where"] for r in results] == [b.where for b in blocks] + ["broken"]
    for r in results[:-1]:
        assert r["ok"] is True, r
        assert r["type"] in ("flowchart-v2", "flowchart"), r
    assert results[-1]["ok"] is False, "a broken diagram must be refused"
