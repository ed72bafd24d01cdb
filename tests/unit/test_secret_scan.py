"""The session-end secret scan (tests/conftest.py) finds each test secret as it is, URL-encoded and
base64-encoded inside a longer value, and in pytest's captured output."""

from __future__ import annotations

import base64
import urllib.parse

import pytest

from tests.conftest import find_secrets, secret_forms
from tests.support import secrets


@pytest.mark.parametrize("secret", secrets.ALL)
def test_each_form_of_each_secret_is_found(secret: str) -> None:
    redis_url = f"redis://:{urllib.parse.quote(secret, safe='')}@redis:6379/0"
    for prefix in ("", "a", "ab"):  # the three base64 alignments inside a longer value
        blob = base64.b64encode(f"{prefix}url={secret}&x=1".encode()).decode()
        assert find_secrets(f"data: {blob}"), (prefix, blob)
    assert find_secrets(f"connecting to {redis_url}")
    assert find_secrets(f"key={secret}")
    assert not find_secrets("nothing secret here: redis://redis:6379/0")


def test_forms_are_distinct_and_named() -> None:
    forms = secret_forms(secrets.REDIS_PASSWORD)
    assert [how for how, _ in forms] == ["as is", "base64 (offset 0)", "base64 (offset 1)", "base64 (offset 2)"]
    assert [how for how, _ in secret_forms(secrets.JWT_KEY)][:2] == ["as is", "URL-encoded"]  # its '!'
    assert len({text for _, text in forms}) == len(forms)
    assert all(len(text) >= 20 for _, text in forms), "long enough never to match by chance"
