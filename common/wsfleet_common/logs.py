"""One log schema for both processes: a JSON object per line, or text for local development.

Every JSON line has ``timestamp`` (UTC, ISO 8601), ``level``, ``component`` (workload or operator),
``logger`` and ``message``, plus whatever correlation fields the call site passed as ``extra``:
on the workload ``connection`` (the Engine.IO sid), ``client`` (the recoverable session id),
``room``, ``ip``; on the operator ``resource`` (namespace/name) and ``reconcile_id``. Searchable
events carry ``event``: ``refused`` (with ``reason``) for every refused handshake, frame or
request, ``drain`` (with ``phase``) for each drain phase.

The formatting is python-json-logger's; this module only fixes the field names, so the workload
and the operator (which imports only this and the contract from the workload) log alike.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any, Final, Literal

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

LogFormat = Literal["json", "text"]
FORMATS: Final[tuple[LogFormat, ...]] = ("json", "text")

# Searchable event names (the `event` field).
EVENT_REFUSED: Final = "refused"
EVENT_DRAIN: Final = "drain"

FIRST: Final[tuple[str, ...]] = ("timestamp", "level", "component", "logger", "message")
TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s %(message)s%(fields)s"


# Correlation fields of the work in progress (the operator's resource and reconcile id), added to
# every record logged meanwhile, by whichever library logs it.
_BOUND: ContextVar[dict[str, Any]] = ContextVar("wsfleet_log_fields", default={})  # noqa: B039 - never mutated


@contextlib.contextmanager
def bound(**fields: Any) -> Iterator[None]:
    token = _BOUND.set({**_BOUND.get(), **fields})
    try:
        yield
    finally:
        _BOUND.reset(token)


class _Correlate(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _BOUND.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        # kopf's per-object loggers carry the object as k8s_ref: name it the way ours do.
        ref = getattr(record, "k8s_ref", None)
        if isinstance(ref, dict) and not hasattr(record, "resource"):
            record.resource = f"{ref.get('namespace', '')}/{ref.get('name', '')}".lstrip("/")
        return True


# Attributes kopf sets on its records for its own event posting: not log fields.
_KOPF_ATTRS = frozenset({"k8s_skip", "k8s_ref", "settings"})


class _Json(JsonFormatter):
    def __init__(self, component: str) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            static_fields={"component": component},
            timestamp=True,
            reserved_attrs=[*RESERVED_ATTRS, *_KOPF_ATTRS],
        )

    def add_fields(self, log_record: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        super().add_fields(log_record, record, message_dict)
        # python-json-logger puts `timestamp` last; put the fixed fields first for people reading raw lines.
        head: dict[str, Any] = {k: log_record.pop(k) for k in FIRST if k in log_record}
        rest = dict(log_record)
        log_record.clear()
        log_record.update(head)
        log_record.update(rest)


class _Text(logging.Formatter):
    """Text with the correlation fields appended as key=value, so local logs keep them too."""

    _plain = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "fields"}

    def format(self, record: logging.LogRecord) -> str:
        extras = {k: v for k, v in record.__dict__.items() if k not in self._plain and k not in _KOPF_ATTRS}
        record.fields = "".join(f" {k}={v}" for k, v in extras.items())
        return super().format(record)


def formatter(log_format: LogFormat, component: str) -> logging.Formatter:
    return _Json(component) if log_format == "json" else _Text(TEXT_FORMAT)


def setup(log_format: LogFormat, component: str, level: str | int = "INFO") -> logging.Handler:
    """Route the root logger to stderr in the chosen format; returns the handler it installed."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(log_format, component))
    handler.addFilter(_Correlate())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    return handler
