"""The process: configuration, logging, uvicorn with the drain in front of its shutdown.

uvicorn, on SIGTERM, closes every WebSocket with code 1012 before the application hears of it.
So the first SIGTERM (or SIGINT) does not reach uvicorn: it starts the drain, and only the
drain's end tells uvicorn to exit. A second signal forces the exit at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Mapping
from types import FrameType
from typing import Any

import uvicorn

from wsfleet_common import logs
from wsfleet_workload.app import Workload
from wsfleet_workload.config import Config, ConfigError

log = logging.getLogger("wsfleet")


class Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, workload: Workload) -> None:
        super().__init__(config)
        self.workload = workload
        workload.drain.on_done = self._drained
        self._loop: asyncio.AbstractEventLoop | None = None

    async def startup(self, sockets: list[object] | None = None) -> None:  # type: ignore[override]
        self._loop = asyncio.get_running_loop()
        await super().startup(sockets=sockets)  # type: ignore[arg-type]

    def _drained(self) -> None:
        self.should_exit = True

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        drain = self.workload.drain
        if self._loop is None or drain._task is not None or self.should_exit:
            # Normal under a kubelet (a second `kubectl delete`, a shorter grace period): a warning
            # that says what it cuts short, not an error. Clients still here reconnect and resume.
            name = signal.Signals(sig).name
            if self._loop is None:
                log.warning("signal %s before start-up was complete: exiting now", name)
            else:
                left = len(self.workload.sio.eio.sockets)
                log.warning("signal %s again during the drain: exiting now; connections not yet moved: %d", name, left)
            self.workload.exiting_now = True
            self.should_exit = self.force_exit = True
            return
        log.info("signal %s: draining before shutdown", signal.Signals(sig).name)
        self._loop.call_soon_threadsafe(drain.start, signal.Signals(sig).name)


# uvicorn logs every accepted WebSocket at INFO: the WebSocket counterpart of its access log,
# which is off (uvicorn_config). At a reconnect storm's thousands per second it was the costliest
# line of a handshake; connections are counted by the metrics, and DEBUG keeps the lines.
_WEBSOCKET_ACCEPTED = '%s - "WebSocket %s" [accepted]'


def _not_a_websocket_accept(record: logging.LogRecord) -> bool:
    return record.msg != _WEBSOCKET_ACCEPTED


def uvicorn_config(cfg: Config, workload: Workload) -> uvicorn.Config:
    return uvicorn.Config(
        workload,
        host=cfg.host,
        port=cfg.port,
        # httptools (llhttp, in C) parses handshakes and long-polling requests; wsproto frames
        # WebSockets: uvicorn's protocols, on the fast path lean per connection and framing
        # common frames themselves (fastpath/protocol.py).
        **_protocols(cfg, workload),
        # Per-message deflate triples memory per connection; Node's Socket.IO has it off too.
        ws_per_message_deflate=False,
        # Engine.IO pings already; a second ping layer only costs.
        ws_ping_interval=None,
        ws_ping_timeout=None,
        # Messages above the payload limit are closed with a clear 1009 before this (the fast
        # path's protocol, or app.Workload._bounded on the stock path); this is only the hard stop
        # for a fragmented one still arriving.
        ws_max_size=2 * cfg.max_payload_bytes + 65536,
        lifespan="on",
        proxy_headers=True,
        forwarded_allow_ips=",".join(cfg.trusted_proxies),
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=3,
        timeout_keep_alive=cfg.http_keepalive,
        # libuv's event loop: transports, timers and callbacks in C, the broadcast path's writes
        # and every connection's reads included.
        loop="uvloop",
    )


def _protocols(cfg: Config, workload: Workload) -> dict[str, Any]:
    if workload.fast_path.on:
        # imported once the versions are checked (fastpath/__init__.py)
        from wsfleet_workload.fastpath.protocol import HttpToolsProtocol, ws_protocol  # noqa: PLC0415

        return {"http": HttpToolsProtocol, "ws": ws_protocol(cfg.max_payload_bytes, workload.frame_too_big)}
    return {"http": "httptools", "ws": "wsproto"}


def main(environ: Mapping[str, str] | None = None) -> int:
    try:
        cfg = Config.from_environ(os.environ if environ is None else environ)
    except ConfigError as e:
        print(f"wsfleet-workload: configuration error: {e}", file=sys.stderr)
        return 2
    logs.setup(cfg.log_format, "workload", cfg.log_level)
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("uvicorn.error").addFilter(_not_a_websocket_accept)
    workload = Workload(cfg)
    server = Server(uvicorn_config(cfg, workload), workload)
    server.run()
    timeline = " -> ".join(f"{p}@{t:.3f}s" for p, t, _ in workload.drain.timeline)
    if timeline:
        log.info("drain timeline: %s", timeline)
    return 0
