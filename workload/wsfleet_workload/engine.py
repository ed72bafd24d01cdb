"""python-engineio's server socket as the workload runs it, with or without the fast path.

python-engineio creates every session's socket from ``engineio.async_socket.AsyncSocket`` and
offers no hook for another class, so ``install`` sets the class in that module: ``Socket`` here
on the stock path, ``fastpath.socket.DirectSocket`` (a subclass) on the fast path.

``Socket`` holds what the workload needs of a socket in both modes. These are fixes of
interoperability and of bad input, not of speed (python-engineio 4.15.1):

1. A long-polling GET answers with every packet queued since the last one. The Python client
   (python-engineio) refuses a payload of more than 16 packets (``Payload.max_decode_packets``,
   a guard against decode bombs) and drops the connection as "transport error"; a busy room or
   a recovery replay queues more than that. The JS client has no such limit. So a poll here
   returns at most 16 packets and leaves the rest for the next poll, which the client sends at
   once (``poll``, in place of ``AsyncSocket.poll``).
2. A long-polling POST carrying a packet no client sends (a NOOP, an unknown type) closes the
   session and gets 400 at once (``handle_post_request``). python-engineio's own answer, a
   disconnect that waits for a GET to drain the queue, hangs the POST and keeps the session for
   as long as the client does not poll again, which a hostile client never does.

The canary test (tests/unit/workload/test_fastpath_upstream.py) fails when the upstream code
these replace changes.
"""

from __future__ import annotations

import asyncio
from typing import Any

from engineio import async_socket, exceptions, payload

MAX_PACKETS_PER_POLL = payload.Payload.max_decode_packets


def client_ip(scope: Any) -> str:
    """The client's address: the ASGI peer, or, from a trusted proxy, the X-Forwarded-For client
    (uvicorn's proxy-headers middleware rewrites the scope)."""
    return str((scope.get("client") or ("",))[0])


class Socket(async_socket.AsyncSocket):  # type: ignore[misc]
    # Set by the fast path's socket: the connection its packets are written to directly.
    direct: Any = None
    # python-engineio's (untyped) session state, as used here
    upgraded: bool

    def buffered(self) -> int:
        """What the client has not taken yet: packets queued (bytes unsent, on the fast path)."""
        return int(self.queue.qsize())

    async def handle_post_request(self, environ: Any) -> None:
        """python-engineio's, except that a packet no client sends closes the session at once."""
        try:
            await super().handle_post_request(environ)
        except exceptions.UnknownPacketError:
            await self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_ERROR)
            raise  # python-engineio answers 400 and forgets the closed session

    async def poll(self) -> list[Any]:
        """python-engineio's poll, with at most MAX_PACKETS_PER_POLL packets per answer."""
        try:
            packets = [await asyncio.wait_for(self.queue.get(), self.server.ping_interval + self.server.ping_timeout)]
            self.queue.task_done()
        except (TimeoutError, asyncio.CancelledError):
            raise exceptions.QueueEmpty() from None
        if packets == [None]:
            return []
        while len(packets) < MAX_PACKETS_PER_POLL or self.upgraded:
            try:
                pkt = self.queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            self.queue.task_done()
            if pkt is None:
                self.queue.put_nowait(None)
                break
            packets.append(pkt)
        return packets


def install(cls: type[Socket]) -> None:
    """The class python-engineio creates its sockets from, from now on (process-wide)."""
    async_socket.AsyncSocket = cls
