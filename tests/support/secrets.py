"""The suite's secret values. Every test that needs a secret takes it from here, and a
session-end check (tests/conftest.py) scans every log the suite's processes wrote for them:
a secret reaches a process only through its environment (from a Secret, in a cluster) and must
never come back out in a log line, an error, an event or a status."""

from __future__ import annotations

API_KEY = "test-publish-key-0123456789"
REDIS_PASSWORD = "test-redis-password-5b1e7c"
JWT_KEY = "a-test-signing-key-of-32-bytes-or-more!"

ALL = (API_KEY, REDIS_PASSWORD, JWT_KEY)
