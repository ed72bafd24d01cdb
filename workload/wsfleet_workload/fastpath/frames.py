"""WebSocket framing for the common frames, in place of wsproto's general framer and parser.

Replaces (wsproto 1.3.2): ``wsproto.frame_protocol.FrameProtocol`` building a server frame
(``_serialize_frame``) and parsing a client's (``FrameDecoder``, ``XorMaskerSimple``), for the
frames that make up nearly all traffic: final, unfragmented text, binary, PING and PONG.
Why: wsproto took about 8 us per frame each way; a broadcast frames one packet for every member.
A server frame is unmasked and no extension is negotiated, so the bytes are the same for every
connection and are built once per packet. Every other frame (a fragment, a CLOSE, reserved
bits, an unmasked client frame, a long control frame) is left to wsproto
(``protocol.WSProtocol._frames``). Unit tests hold both to wsproto's own output.
"""

from __future__ import annotations

import struct

from engineio import packet as eio_packet


def frame(pkt: eio_packet.Packet) -> bytes:
    """The WebSocket frame of an Engine.IO packet, computed once per packet object: a server
    frame (unmasked, no extension negotiated, so the same bytes for every connection), final,
    text or binary as the packet encodes. RFC 6455 section 5.2's header is a few bytes;
    wsproto's general-purpose framer took about 8 us per frame to build it (a unit test holds
    this to wsproto's output)."""
    cached: bytes | None = getattr(pkt, "_wsfleet_frame", None)
    if cached is None:
        data = pkt.encode()
        body, first = (data.encode(), 0x81) if isinstance(data, str) else (bytes(data), 0x82)  # FIN + opcode
        size = len(body)
        if size < 126:
            head = bytes((first, size))
        elif size < 65536:
            head = struct.pack("!BBH", first, 126, size)
        else:
            head = struct.pack("!BBQ", first, 127, size)
        cached = head + body
        pkt._wsfleet_frame = cached
    return cached


FAST_OPCODES = frozenset((0x1, 0x2, 0x9, 0xA))  # text, binary, ping, pong


def unmask(mask: bytes, payload: bytes) -> bytes:
    """RFC 6455 section 5.3: the payload XORed with the 4-byte mask, repeated, done on the whole
    payload as one integer (a third of the time of wsproto's XorMaskerSimple, which translates
    every fourth byte through a table; a unit test holds the two to the same output)."""
    size = len(payload)
    if not size:
        return b""
    key = int.from_bytes((mask * (size // 4 + 1))[:size], "little")
    return (int.from_bytes(payload, "little") ^ key).to_bytes(size, "little")


def message_size(data: str | bytes, limit: int | None) -> int:
    """A message's size in bytes; text is encoded only when its length in characters cannot
    tell on which side of the limit it falls (UTF-8 takes 1-4 bytes per character)."""
    if isinstance(data, bytes) or limit is None or len(data) > limit or 4 * len(data) <= limit:
        return len(data)
    return len(data.encode())
