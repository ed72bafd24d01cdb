"""The log schema both processes share: JSON lines with fixed fields first, correlation fields
from `extra` and from the bound context, kopf's object reference as `resource`; text keeps them."""

from __future__ import annotations

import inspect
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from uvicorn.protocols.websockets import wsproto_impl

from wsfleet_common import logs
from wsfleet_workload import main


@pytest.fixture
def capture() -> Iterator[tuple[io.StringIO, logging.Logger]]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    handler = logs.setup("json", "workload")
    stream = io.StringIO()
    handler.setStream(stream)  # type: ignore[attr-defined]
    yield stream, logging.getLogger("wsfleet.test")
    root.handlers[:], _ = saved
    root.setLevel(saved[1])


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_the_fixed_fields_first_and_the_extras(capture: tuple[io.StringIO, logging.Logger]) -> None:
    stream, log = capture
    log.warning("refused %s", "frame", extra={"event": logs.EVENT_REFUSED, "reason": "payload_too_large", "room": "r"})
    (doc,) = lines(stream)
    assert list(doc)[:5] == ["timestamp", "level", "component", "logger", "message"]
    assert doc["level"] == "WARNING"
    assert doc["component"] == "workload"
    assert doc["message"] == "refused frame"
    assert (doc["event"], doc["reason"], doc["room"]) == ("refused", "payload_too_large", "r")
    assert str(doc["timestamp"]).endswith("+00:00"), "UTC"


def test_bound_fields_and_kopf_references_become_correlation_fields(
    capture: tuple[io.StringIO, logging.Logger],
) -> None:
    stream, log = capture
    with logs.bound(resource="apps/chat", reconcile_id="abc123"):
        log.info("inside")
    log.info("outside")
    log.info("from kopf", extra={"k8s_ref": {"namespace": "apps", "name": "chat", "uid": "u"}, "k8s_skip": True})
    inside, outside, kopf = lines(stream)
    assert (inside["resource"], inside["reconcile_id"]) == ("apps/chat", "abc123")
    assert "reconcile_id" not in outside
    assert kopf["resource"] == "apps/chat"
    assert "k8s_ref" not in kopf
    assert "k8s_skip" not in kopf


def test_text_format_keeps_the_fields() -> None:
    record = logging.makeLogRecord({"name": "wsfleet", "levelname": "INFO", "msg": "drain phase done", "phase": "done"})
    text = logs.formatter("text", "workload").format(record)
    assert text.endswith("INFO wsfleet drain phase done phase=done")


def test_uvicorns_per_websocket_accept_line_is_dropped_and_nothing_else() -> None:
    """The filter main.py puts on uvicorn's logger matches the line uvicorn logs (its template,
    read from the installed uvicorn's source) and lets every other uvicorn line through."""
    assert main._WEBSOCKET_ACCEPTED in inspect.getsource(wsproto_impl.WSProtocol.send)

    def record(msg: str, *args: Any) -> logging.LogRecord:
        return logging.LogRecord("uvicorn.error", logging.INFO, "x.py", 1, msg, args, None)

    assert not main._not_a_websocket_accept(record(main._WEBSOCKET_ACCEPTED, "127.0.0.1:5", "/socket.io/"))
    assert main._not_a_websocket_accept(record('%s - "WebSocket %s" %d', "127.0.0.1:5", "/x", 403))
    assert main._not_a_websocket_accept(record("Uvicorn running on %s", "http://0.0.0.0:3001"))
