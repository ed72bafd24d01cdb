"""kube._translate, with API exceptions built as the client raises them.

| status | body / header                                  | becomes                       |
|--------|------------------------------------------------|-------------------------------|
| 409    | Status message                                 | Retry after 5 s (default)     |
| 429    | Retry-After: 7                                 | Retry after 7 s               |
| 503    | Retry-After: an HTTP date 30 s ahead           | Retry after 30 s              |
| 503    | Retry-After: a date in the past / garbage / -3 | Retry now / 5 s / now         |
| 500    | Retry-After: 100000                            | Retry after 300 s (capped)    |
| 403    | namespace being terminated                     | NamespaceTerminating          |
| 403    | forbidden                                      | Rejected, message kept        |
| 422    | a body that is not JSON                        | Rejected, the reason kept     |
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json

import pytest
from kubernetes import client as k8s

from wsfleet_operator.kube import NamespaceTerminating, Rejected, Retry, _translate, retry_delay

NOW = dt.datetime(2026, 12, 3, 12, 0, 0, tzinfo=dt.UTC)


def api_error(
    status: int, message: str = "", headers: dict[str, str] | None = None, body: str | None = None
) -> k8s.ApiException:
    exc = k8s.ApiException(status=status, reason="Reason")
    exc.body = body if body is not None else json.dumps({"kind": "Status", "message": message})
    exc.headers = headers or {}
    return exc


@pytest.mark.parametrize("status", [409, 429, 500, 502, 503, 504])
def test_transient_statuses_retry(status: int) -> None:
    out = _translate(api_error(status, "the object has been modified"), "apply Deployment ns/chat")
    assert isinstance(out, Retry)
    assert str(out) == f"apply Deployment ns/chat: {status} the object has been modified"
    assert out.delay == 5.0


def test_retry_after_in_seconds() -> None:
    out = _translate(api_error(429, "slow down", {"Retry-After": "7"}), "get")
    assert isinstance(out, Retry)
    assert out.delay == 7.0


@pytest.mark.parametrize(
    ("value", "delay"),
    [
        (email.utils.format_datetime(NOW + dt.timedelta(seconds=30), usegmt=True), 30.0),
        ("Thu, 03 Dec 2026 12:00:45 GMT", 45.0),
        ("Thursday, 03-Dec-26 12:00:10 GMT", 10.0),  # RFC 850, obsolete but allowed
        (email.utils.format_datetime(NOW - dt.timedelta(minutes=5), usegmt=True), 0.0),
        ("not a date", 5.0),
        ("-3", 0.0),
        ("100000", 300.0),
        ("nan", 5.0),
        ("", 5.0),
        (None, 5.0),
    ],
)
def test_retry_after_as_an_http_date_or_unreadable(value: str | None, delay: float) -> None:
    assert retry_delay(value, NOW) == pytest.approx(delay)


def test_a_date_header_goes_through_translate() -> None:
    future = email.utils.format_datetime(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=60), usegmt=True)
    out = _translate(api_error(503, "unavailable", {"Retry-After": future}), "list")
    assert isinstance(out, Retry)
    assert 50 < out.delay <= 60


def test_a_terminating_namespace_is_its_own_error() -> None:
    message = 'deployments.apps "chat" is forbidden: unable to create new content in namespace t1 because it is being terminated'
    out = _translate(api_error(403, message), "apply Deployment t1/chat")
    assert isinstance(out, NamespaceTerminating)
    assert "being terminated" in str(out)


def test_other_refusals_are_rejected_with_the_message() -> None:
    out = _translate(api_error(403, 'deployments.apps is forbidden: User "x" cannot patch'), "apply Deployment ns/chat")
    assert type(out) is Rejected
    assert str(out) == 'apply Deployment ns/chat: 403 deployments.apps is forbidden: User "x" cannot patch'


@pytest.mark.parametrize("body", ["<html>bad gateway</html>", "[1, 2]", ""])
def test_a_body_that_is_no_status_keeps_the_reason(body: str) -> None:
    out = _translate(api_error(422, body=body), "apply ConfigMap ns/chat-config")
    assert type(out) is Rejected
    assert str(out) == "apply ConfigMap ns/chat-config: 422 Reason"
