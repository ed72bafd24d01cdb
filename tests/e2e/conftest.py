"""End-to-end tier: several workload processes behind HAProxy, configured from one time-scaled
WebSocketService spec (2 s + 2 s heartbeat against a 6 s idle timeout: the invariants are the same
at any scale)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.fleet import Fleet
from tests.support.crowd import Crowd

# Time-scaled: every invariant of `wsfleet check` holds (the fleet refuses to start otherwise).
SPEC: dict[str, Any] = {
    "heartbeat": {"interval": "2s", "timeout": "2s"},
    "loadBalancer": {"provider": "none", "margin": "2s"},
    "shutdown": {"preStop": "6s", "drain": "3s", "buffer": "2s"},
    "probes": {"readiness": {"period": "2s", "timeout": "1s"}},
    "publish": {"apiKeySecret": {"name": "api", "key": "key"}},
    # every test client comes from 127.0.0.1: a per-IP limit would throttle the test, not a storm
    "limits": {"handshakesPerSecond": 2000, "handshakesPerSecondPerIp": 2000},
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Callable[..., Fleet]]:
    made: list[Fleet] = []

    def make(spec: dict[str, Any] | None = None, **kw: Any) -> Fleet:
        made.append(Fleet(tmp_path, spec or SPEC, **kw))
        return made[-1].start()

    yield make
    for f in made:
        f.close()


@pytest.fixture
def crowd(tmp_path: Path) -> Iterator[Callable[[str], Crowd]]:
    made: list[Crowd] = []

    def make(url: str) -> Crowd:
        made.append(Crowd(url, tmp_path))
        return made[-1]

    yield make
    for c_ in made:
        c_.close()
