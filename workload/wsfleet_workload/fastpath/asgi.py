"""python-engineio's ASGI request translation, with its body reader defined once.

Replaces (python-engineio 4.15.1): ``engineio.async_drivers.asgi.translate_request``, set per
server in python-engineio's private driver table (``AsyncServer._async``; ``adopt``).

Why: python-engineio defines its body reader class inside ``translate_request``, so every request
created a new class: a reference cycle only the garbage collector frees, about 2.5 KB per
WebSocket handshake and per polling request, and collections that grew with the number of
connections. Also, python-engineio says REMOTE_ADDR 127.0.0.1 for every client; here it is
the client's address.
"""

from __future__ import annotations

import sys
from typing import Any

from wsfleet_workload.engine import client_ip


class Body:
    """python-engineio's request body reader (``wsgi.input``), defined once. python-engineio
    defines its class inside ``translate_request``, so every request created a new class: a
    reference cycle only the garbage collector frees, about 2.5 KB per WebSocket handshake and
    per polling request, and collections that grew with the number of connections."""

    __slots__ = ("event", "payload", "receive")

    def __init__(self, event: dict[str, Any], receive: Any) -> None:
        self.event, self.receive = event, receive
        self.payload: bytes | None = None

    async def read(self, length: int | None = None) -> bytes:
        if self.payload is None and self.event["type"] == "http.request":
            self.payload = self.event.get("body") or b""
            while self.event.get("more_body"):
                self.event = await self.receive()
                if self.event["type"] == "http.request" and (length is None or len(self.payload) < length):
                    self.payload += self.event.get("body") or b""
        payload = self.payload or b""
        if length is None:
            self.payload = b""
            return payload
        self.payload = payload[length:]
        return payload[:length]


async def translate_request(scope: dict[str, Any], receive: Any, send: Any) -> dict[str, Any]:
    """python-engineio's ASGI ``translate_request`` with ``Body`` as its reader, and the client's
    address as REMOTE_ADDR (python-engineio says 127.0.0.1 for every client)."""
    event = await receive()
    if event["type"] not in ("http.request", "websocket.connect"):
        return {}
    raw_uri = scope["path"]
    query_string = ""
    if scope.get("query_string"):
        try:
            query_string = scope["query_string"].decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            raw_uri += "?" + query_string
    environ: dict[str, Any] = {
        "wsgi.input": Body(event, receive),
        "wsgi.errors": sys.stderr,
        "wsgi.version": (1, 0),
        "wsgi.async": True,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "SERVER_SOFTWARE": "asgi",
        "REQUEST_METHOD": scope.get("method", "GET"),
        "PATH_INFO": scope["path"],
        "QUERY_STRING": query_string,
        "RAW_URI": raw_uri,
        "SCRIPT_NAME": "",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": client_ip(scope) or "127.0.0.1",
        "REMOTE_PORT": "0",
        "SERVER_NAME": "asgi",
        "SERVER_PORT": "0",
        "asgi.receive": receive,
        "asgi.send": send,
        "asgi.scope": scope,
    }
    for raw_name, raw_value in scope["headers"]:
        try:
            name = raw_name.upper().decode("utf-8")
            value = raw_value.decode("utf-8")
        except UnicodeDecodeError:
            continue  # as python-engineio: a header that cannot be decoded is skipped
        if name == "CONTENT-TYPE":
            environ["CONTENT_TYPE"] = value
            continue
        if name == "CONTENT-LENGTH":
            environ["CONTENT_LENGTH"] = value
            continue
        key = "HTTP_" + name.replace("-", "_")
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    environ["wsgi.url_scheme"] = environ.get("HTTP_X_FORWARDED_PROTO", "http")
    return environ


def adopt(eio: Any) -> None:
    """Per server: python-engineio's request translation, with the reader class defined once."""
    eio._async = {**eio._async, "translate_request": translate_request}
