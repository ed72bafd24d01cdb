"""One interoperability fix in python-engineio's server, applied at import.

A long-polling GET answers with every packet queued since the last one. The Python client
(python-engineio) refuses a payload of more than 16 packets (``Payload.max_decode_packets``, a
guard against decode bombs) and drops the connection as "transport error"; a busy room or a
recovery replay queues more than that. The JS client has no such limit. So a poll here returns
at most 16 packets and leaves the rest for the next poll, which the client sends at once.

python-engineio creates its sockets from ``engineio.async_socket.AsyncSocket`` with no hook, so
the class is swapped in that module. The Python polling client tests fail if this stops working.
"""

from __future__ import annotations

import asyncio
from typing import Any

from engineio import async_socket, exceptions, payload

MAX_PACKETS_PER_POLL = payload.Payload.max_decode_packets


class AsyncSocket(async_socket.AsyncSocket):  # type: ignore[misc]
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


def install() -> None:
    async_socket.AsyncSocket = AsyncSocket
