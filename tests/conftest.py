"""Shared test setup: hypothesis profiles and paths."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.support import secrets

ALL_SECRETS = secrets.ALL
SECRET_NAMES = {secrets.API_KEY: "the publish API key", secrets.REDIS_PASSWORD: "the Redis password",
                secrets.JWT_KEY: "the JWT key"}  # fmt: skip

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "deploy" / "examples").glob("*.yaml"))

# CI runs more examples; a developer's run stays quick. No deadline: these machines are noisy,
# and speed belongs in bench/, not in unit tests.
settings.register_profile("ci", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(scope="session", autouse=True)
def no_secret_in_any_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """After the whole session: no log any process of the suite wrote (workloads, the operator,
    the control plane, Redis, HAProxy) contains a test secret's value."""
    yield
    leaks = []
    for path in sorted(tmp_path_factory.getbasetemp().rglob("*.log")):
        text = path.read_text(errors="replace")
        leaks += [f"{path}: {SECRET_NAMES[s]}" for s in ALL_SECRETS if s in text]
    assert not leaks, "secret values in logs:\n" + "\n".join(leaks)
