"""The load balancer's side of the promises, and `wsfleet validate` against a real fleet.

| test                        | fleet                                 | asserted                                             |
|-----------------------------|---------------------------------------|------------------------------------------------------|
| affinity                    | aligned                               | polling sessions keep their pod (validate + HAProxy log); after a drain the cookie names the new pod |
| idle, aligned               | idle 6 s > 2 s + 2 s + 2 s margin      | idle clients survive 3 x the idle timeout             |
| idle, misaligned            | idle 1 s < the 2 s ping interval       | `wsfleet check` refuses it (I1) and clients do drop   |
| validate graceful-shutdown  | aligned, rolled while it runs          | PASS, 0 lost, exit 0                                  |
| validate failover           | aligned, a pod killed while it runs    | PASS, 0 lost, exit 0                                  |
"""

from __future__ import annotations

import asyncio
import copy
import io
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from yarl import URL

from tests.e2e.conftest import SPEC
from tests.e2e.fleet import Fleet
from tests.support.pyclient import PyClient
from tests.support.secrets import API_KEY
from wsfleet_operator import cli, live_checks


def _requests(fleet: Fleet) -> dict[str, list[str]]:
    """sid -> the server of each of its requests, in order, from HAProxy's log."""
    routes: dict[str, list[str]] = {}
    for line in fleet.lb.log_path.read_text().splitlines():
        m = re.search(r" fleet/(\w+) .*[?&]sid=([\w-]+)", line)
        if m:
            routes.setdefault(m.group(2), []).append(m.group(1))
    return routes


def _routes(fleet: Fleet) -> dict[str, set[str]]:
    """sid -> the servers HAProxy sent its requests to."""
    return {sid: set(servers) for sid, servers in _requests(fleet).items()}


def test_affinity_holds_and_follows_a_drain(fleet: Callable[..., Fleet]) -> None:
    f = fleet()
    verdict = asyncio.run(live_checks.affinity(f.url, clients=6, seconds=5))
    assert verdict.passed, verdict.problems
    assert len(verdict.figures["pods"]) >= 2, "round robin spread the sessions"
    routes = _routes(f)
    assert len(routes) >= 6
    assert all(len(servers) == 1 for servers in routes.values()), routes

    async def follow() -> tuple[str, str, str]:
        client = PyClient(f.url, ["r"], transports=["polling"])
        await client.connect()
        first = client.pod
        before.update(_routes(f))
        await asyncio.to_thread(f.terminate, first)
        for _ in range(100):
            if client.pod != first and client.sio.connected:
                break
            await asyncio.sleep(0.1)
        # a few more polls of the new session, as HAProxy logged them
        for _ in range(200):
            if sum(len(v) for sid, v in _requests(f).items() if sid not in before) >= 3:
                break
            await asyncio.sleep(0.1)
        cookies = {k: v.value for k, v in client.sio.eio.http.cookie_jar.filter_cookies(URL(f.url)).items()}
        await client.close()
        return first, client.pod, cookies.get(f.wss.spec.affinity.cookie_name, "")

    before: dict[str, set[str]] = {}
    first, second, cookie = asyncio.run(follow())
    assert second != first
    # the bare server name: no date stamps (lbconf.py says why), so no client quotes it
    assert cookie == second, "the affinity cookie now names the new pod"
    after = {sid: servers for sid, servers in _routes(f).items() if sid not in before}
    assert after, "the client's new session"
    assert all(servers == {second} for servers in after.values()), after


def test_aligned_idle_timeout_keeps_idle_clients(fleet: Callable[..., Fleet]) -> None:
    f = fleet()
    assert f.t.idle == 6
    verdict = asyncio.run(live_checks.idle_timeout(f.url, clients=3, seconds=3 * f.t.idle + 1))
    assert verdict.passed, verdict.problems
    assert verdict.figures["drops"] == 0


def test_misaligned_idle_timeout_is_refused_and_really_drops(fleet: Callable[..., Fleet], tmp_path: Path) -> None:
    spec = copy.deepcopy(SPEC)
    spec["loadBalancer"]["idleTimeout"] = "1s"  # below the 2 s ping interval, let alone the window
    path = tmp_path / "misaligned.yaml"
    path.write_text(
        f"apiVersion: wsfleet.dev/v1alpha1\nkind: WebSocketService\nmetadata: {{name: fleet}}\nspec: {spec!r}\n"
    )
    out, err = io.StringIO(), io.StringIO()
    assert cli.main(["check", "-f", str(path)], out=out, err=err) == 2
    assert "I1: loadBalancer.idleTimeout 1s" in out.getvalue() + err.getvalue()
    f = fleet(spec, checked=False)
    run = subprocess.run(
        [sys.executable, "-m", "wsfleet_operator", "validate", "idle-timeout", "--url", f.url, "--clients", "2",
         "--seconds", "6"], capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == 1, run.stdout + run.stderr
    assert "FAIL" in run.stdout
    drops = int(re.search(r"drops: (\d+)", run.stdout).group(1))  # type: ignore[union-attr]
    assert drops >= 2, run.stdout


def _validate_during(
    f: Fleet, check: str, event: Callable[[], object], seconds: int = 16
) -> subprocess.CompletedProcess[str]:
    """Run the check, and the event once it says its clients are connected and publishing began."""
    args = [sys.executable, "-m", "wsfleet_operator", "validate", check, "--url", f.url, "--api-key", API_KEY,
            "--clients", "12", "--seconds", str(seconds)]  # fmt: skip
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as run:
        assert run.stdout is not None
        first = run.stdout.readline()
        assert "clients connected; publishing" in first, first + run.stdout.read()
        event()
        rest = run.stdout.read()
        code = run.wait(120)
    return subprocess.CompletedProcess(args, code, first + rest, "")


def test_validate_graceful_shutdown_during_a_rollout(fleet: Callable[..., Fleet]) -> None:
    f = fleet()
    out = _validate_during(f, "graceful-shutdown", f.roll, seconds=40)  # the whole rollout takes ~30 s
    assert out.returncode == 0, out.stdout + out.stderr
    assert "PASS" in out.stdout
    assert "  lost: 0" in out.stdout
    moved = int(re.search(r"moved: (\d+)", out.stdout).group(1))  # type: ignore[union-attr]
    assert moved == 12, "every pod was replaced: every client moved at least once"


def test_validate_failover_when_a_pod_dies(fleet: Callable[..., Fleet]) -> None:
    f = fleet()
    out = _validate_during(f, "failover", lambda: f.kill("b0"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "  lost: 0" in out.stdout
