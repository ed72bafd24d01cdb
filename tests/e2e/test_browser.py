"""The demo page in a real browser (Debian's Chromium, driven by playwright-core), through HAProxy,
while the pod it is on drains: the page shows the reconnect, the recovery, and no gap.

The screenshot goes to $WSFLEET_SCREENSHOT when set (docs/demo-drain.png was made so)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.fleet import Fleet
from tests.support.crowd import publish_during
from tests.support.processes import JS
from wsfleet_operator.accounting import Expect, Received

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def test_the_demo_page_rides_out_a_drain(fleet: Callable[..., Fleet], tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run installs it)")
    f = fleet()
    shot = Path(os.environ.get("WSFLEET_SCREENSHOT", tmp_path / "demo.png"))
    node = shutil.which("node") or "node"
    with subprocess.Popen(
        [node, str(JS / "browser-demo.mjs"), f"{f.url}/demo/?room=demo", str(shot)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    ) as page:  # fmt: skip
        assert page.stdin is not None
        assert page.stdout is not None
        ready = json.loads(page.stdout.readline())
        assert ready["ev"] == "ready", ready
        pod = ready["pod"]
        pub = publish_during(f.url, ["demo"], lambda: f.terminate(pod), rate=4.0, before=8, after=12)
        page.stdin.write(f"{(pub.sent['demo'] or [0])[-1]}\n")
        page.stdin.close()
        lines = [json.loads(x) for x in page.stdout.read().splitlines() if x.startswith("{")]
    errors = [x for x in lines if x["ev"] == "pageerror"]
    assert not errors, errors
    state = next(x for x in lines if x["ev"] == "state")
    assert state["connected"] is True
    assert state["pods"][0] == pod
    assert state["pods"][-1] != pod, "the page moved to another pod"
    assert state["reconnects"] >= 1
    assert state["recovered"] >= 1, "and recovered its room"
    assert state["shutdowns"] >= 1, "it was told before it was moved"
    assert "transport close" in state["reasons"]
    assert state["gaps"] == 0
    result = pub.account([Received("the demo page", ["demo"], {"demo": state["seqs"]})], Expect(max_uncertain=0))
    assert result.passed, result.problems
    assert shot.stat().st_size > 10_000
