"""`wsfleet validate graceful-shutdown|failover` against a real workload: it passes only when it
tested something. A wrong API key refuses every publish; the clients then lose nothing because
nothing was sent, and the verdict must be FAIL, exit 1, with the reason."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import pytest

from tests.support.processes import Workload
from tests.support.secrets import API_KEY


def _validate(check: str, url: str, key: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wsfleet_operator", "validate", check, "--url", url, "--api-key", key,
         "--clients", "3", "--seconds", "2", *extra], capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("check", ["graceful-shutdown", "failover"])
def test_a_wrong_api_key_fails_the_check(workloads: Callable[..., Workload], check: str) -> None:
    a = workloads("a")
    run = _validate(check, a.url, "not-the-key")
    assert run.returncode == 1, run.stdout + run.stderr
    assert f"wsfleet validate {check}: FAIL" in run.stdout
    assert "  published: 0" in run.stdout
    assert "publishes was acknowledged (HTTP 401: 1): no delivery was tested" in run.stdout, run.stdout
    assert "check --api-key" in run.stdout


def test_the_right_key_passes_and_counts_what_it_published(workloads: Callable[..., Workload]) -> None:
    a = workloads("a")
    run = _validate("graceful-shutdown", a.url, API_KEY)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "3 clients connected; publishing 10 messages over 2s: roll the fleet now" in run.stdout
    assert "wsfleet validate graceful-shutdown: PASS" in run.stdout
    assert "  published: 10" in run.stdout
    assert "  lost: 0" in run.stdout


def test_a_floor_above_what_was_acknowledged_fails(workloads: Callable[..., Workload]) -> None:
    """The floor is the user's: asking for more than 100% can never pass, and says so."""
    a = workloads("a")
    run = _validate("graceful-shutdown", a.url, API_KEY, "--min-acknowledged", "101")
    assert run.returncode == 1, run.stdout
    assert "only 10 of 10 publishes were acknowledged (100%, below 101%" in run.stdout
