"""Workload tier fixtures: a fresh redis-server per test, workload processes and HAProxy on
loopback, all torn down afterwards (their logs stay in the test's tmp_path)."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.processes import HAProxy, Redis, Workload


@pytest.fixture(autouse=True)
def collect_garbage() -> Iterator[None]:
    """Collect at the end of each test, so a client resource left unclosed (a ResourceWarning,
    an error under filterwarnings=error) is charged to the test that leaked it, not to whichever
    test the garbage collector happens to run in later."""
    yield
    gc.collect()


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[Redis]:
    server = Redis(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def workloads(tmp_path: Path, redis: Redis) -> Iterator[Callable[..., Workload]]:
    started: list[Workload] = []

    def start(name: str, wait_ready: bool = True, **env: str) -> Workload:
        w = Workload(name, redis.url, tmp_path, env=env)
        started.append(w)
        return w.start(wait_ready)

    yield start
    for w in started:
        w.stop()


@pytest.fixture
def haproxy(tmp_path: Path) -> Iterator[Callable[..., HAProxy]]:
    started: list[HAProxy] = []

    def start(backends: list[Workload], **kw: str) -> HAProxy:
        lb = HAProxy(tmp_path, backends, **kw)
        started.append(lb)
        return lb.start()

    yield start
    for lb in started:
        lb.stop()
