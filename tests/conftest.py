"""Shared test setup: hypothesis profiles and paths."""

from __future__ import annotations

import base64
import os
import urllib.parse
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

# WSFLEET_FAST_PATH=off: every workload the suite starts runs the stock path (make test runs the
# workload tier both ways); the tests of the fast path's own parts are skipped then.
STOCK = os.environ.get("WSFLEET_FAST_PATH") == "off"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if STOCK and item.get_closest_marker("fast_path"):
            item.add_marker(pytest.mark.skip(reason="tests the fast path itself; WSFLEET_FAST_PATH=off"))


def secret_forms(secret: str) -> list[tuple[str, str]]:
    """The ways a secret can show up in text: as it is, URL-encoded (in a URL's userinfo or a
    query), and base64 (a Secret's data, a basic-auth header) at each of the three alignments it
    can have inside a longer encoded value (the characters that depend on its bytes alone)."""
    raw = secret.encode()
    forms = [("as is", secret), ("URL-encoded", urllib.parse.quote(secret, safe=""))]
    for pad in range(3):
        encoded = base64.b64encode(b"\0" * pad + raw).decode()
        forms.append((f"base64 (offset {pad})", encoded[-(-pad * 4 // 3) : (pad + len(raw)) * 4 // 3]))
    unique: dict[str, str] = {}
    for how, text in forms:
        unique.setdefault(text, how)  # a secret that needs no URL-encoding is one form, "as is"
    return [(how, text) for text, how in unique.items()]


def find_secrets(text: str) -> list[str]:
    """Which test secret appears in `text`, and in which form."""
    return [f"{SECRET_NAMES[s]} ({how})" for s in ALL_SECRETS for how, form in secret_forms(s) if form in text]


# Files the suite's processes write: logs, and the JS clients' event streams (.jsonl). etcd's data
# and the dev cluster's PKI hold secrets by design (a Secret object, private keys) and are no log.
SCANNED = {".log", ".jsonl", ".out", ".txt"}
CAPTURED_LEAKS: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """pytest's captured output of each test phase (stdout, stderr, log records, a failure's
    report): a secret must not be printed there either."""
    texts = [content for _, content in report.sections]
    if report.longrepr is not None:
        texts.append(str(report.longrepr))
    for text in texts:
        CAPTURED_LEAKS.extend(f"{report.nodeid} ({report.when}): {leak}" for leak in find_secrets(text))


@pytest.fixture(scope="session", autouse=True)
def no_secret_in_any_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """After the whole session: no log any process of the suite wrote (workloads, the operator,
    the control plane, Redis, HAProxy, the JS clients) nor any output pytest captured contains a
    test secret, as it is or encoded."""
    yield
    leaks = list(CAPTURED_LEAKS)
    for path in sorted(tmp_path_factory.getbasetemp().rglob("*")):
        if path.suffix in SCANNED and path.is_file():
            leaks += [f"{path}: {leak}" for leak in find_secrets(path.read_text(errors="replace"))]
    assert not leaks, "secret values in logs or captured output:\n" + "\n".join(leaks)
