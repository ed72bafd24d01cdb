"""The WebSocket upgrade, byte for byte, on a raw socket to a workload process.

uvicorn's httptools protocol parses the upgrade request; the workload's WebSocket protocol
(fastpath/protocol.py, WSProtocol.upgrade) has wsproto check it without h11 parsing it again and writes a plain
accept itself. Everything else goes through wsproto and h11 whole: a request wsproto refuses, and
a refusal by the app (the handshake gate's 503). These tests pin what each answer looks like.
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import struct
import time
from collections.abc import Callable

import pytest

from tests.integration.workload.test_frames import frame
from tests.support.processes import Workload
from wsfleet_common import contract as c

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455's example key
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # and its accept token
TARGET = c.SOCKETIO_PATH + "?EIO=4&transport=websocket"


def upgrade(w: Workload, **headers: str) -> tuple[str, dict[str, str], bytes, socket.socket]:
    """Send an upgrade request with these headers (Name_With_Underscores; "" drops one); return the answer's status line, headers, what followed them, and the open socket."""
    fields = {
        "Host": f"127.0.0.1:{w.port}",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": KEY,
        "Sec-WebSocket-Version": "13",
    }
    fields.update({name.replace("_", "-"): value for name, value in headers.items()})
    request = f"GET {TARGET} HTTP/1.1\r\n"
    request += "".join(f"{name}: {value}\r\n" for name, value in fields.items() if value)
    sock = socket.create_connection(("127.0.0.1", w.port), timeout=5)
    sock.sendall((request + "\r\n").encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status, *lines = head.decode().split("\r\n")
    answer = {name.lower(): value for name, _, value in (line.partition(": ") for line in lines)}
    return status, answer, rest, sock


def next_frame(sock: socket.socket, data: bytes) -> tuple[str, bytes]:
    """One unmasked server text frame under 64 KiB from the stream (data: what was read of it
    before), and what follows it."""
    while len(data) < 2 or (data[1] & 0x7F == 126 and len(data) < 4):
        data += sock.recv(65536)
    length, start = data[1] & 0x7F, 2
    assert length < 127, "frames under 64 KiB only"
    if length == 126:
        length, start = int.from_bytes(data[2:4], "big"), 4
    while len(data) < start + length:
        data += sock.recv(65536)
    assert data[0] == 0x81, f"a final text frame, got first byte {data[0]:#x}"
    return data[start : start + length].decode(), data[start + length :]


def data_segments_in(sock: socket.socket) -> int:
    """TCP segments with data this socket has received (Linux tcp_info.tcpi_data_segs_in)."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    return int(struct.unpack_from("I", info, 152)[0])


def dechunk(body: bytes) -> bytes:
    out = b""
    while True:
        size, _, body = body.partition(b"\r\n")
        if int(size, 16) == 0:
            return out
        out, body = out + body[: int(size, 16)], body[int(size, 16) + 2 :]


def test_an_accepted_upgrade_is_rfc6455s_101_and_speaks_engine_io(workloads: Callable[..., Workload]) -> None:
    w = workloads("a")
    status, headers, rest, sock = upgrade(w, Sec_WebSocket_Protocol="chat, superchat")
    try:
        assert status == "HTTP/1.1 101 Switching Protocols"
        assert headers["upgrade"] == "websocket"
        assert headers["connection"] == "Upgrade"
        assert headers["sec-websocket-accept"] == ACCEPT
        expected = base64.b64encode(hashlib.sha1((KEY + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
        assert headers["sec-websocket-accept"] == expected.decode()
        assert "sec-websocket-protocol" not in headers, "no subprotocol chosen by the app: none named"
        assert "sec-websocket-extensions" not in headers, "deflate is off"
        assert headers["server"] == "uvicorn"
        assert "date" in headers
        opening, _ = next_frame(sock, rest)
        assert opening.startswith("0{"), opening
        assert json.loads(opening[1:])["upgrades"] == []
    finally:
        sock.close()


def test_upgrades_wsproto_refuses_get_its_answers(workloads: Callable[..., Workload]) -> None:
    w = workloads("a")
    status, headers, _, sock = upgrade(w, Sec_WebSocket_Version="8")
    sock.close()
    assert status.startswith("HTTP/1.1 426"), status
    assert headers["sec-websocket-version"] == "13"
    status, _, _, sock = upgrade(w, Sec_WebSocket_Key="")
    sock.close()
    assert status.startswith("HTTP/1.1 400"), status
    status, _, _, sock = upgrade(w, Upgrade="h2c")
    sock.close()
    assert not status.startswith("HTTP/1.1 101"), status


def test_an_upgrade_the_gate_refuses_gets_503_with_its_reason(workloads: Callable[..., Workload]) -> None:
    w = workloads("a", WSFLEET_HANDSHAKES_PER_SECOND_PER_IP="2")
    answers = []
    for _ in range(6):
        status, headers, rest, sock = upgrade(w)
        if status.startswith("HTTP/1.1 503"):
            while not rest.endswith(b"0\r\n\r\n"):  # h11 sends a body of unknown length chunked
                rest += sock.recv(65536)
            assert headers["transfer-encoding"] == "chunked"
            answers.append((headers, json.loads(dechunk(rest))))
        sock.close()
    assert answers, "six upgrades at once from one IP, two per second allowed: some refused"
    headers, body = answers[0]
    assert headers["retry-after"] == "1"
    assert headers["content-type"] == "application/json"
    assert body["reason"] == "rate_limit_ip"
    assert "limit 2/s" in body["error"]


@pytest.mark.fast_path
def test_each_answer_of_several_packets_leaves_in_one_tcp_segment(workloads: Callable[..., Workload]) -> None:
    """The 101 with the Engine.IO OPEN packet; Socket.IO's CONNECT answer with the session event;
    and for a client that comes back, both with what it missed: one write, one segment, each."""
    w = workloads("a")
    status, _, rest, sock = upgrade(w)
    try:
        assert status == "HTTP/1.1 101 Switching Protocols"
        opening, rest = next_frame(sock, rest)
        assert opening.startswith("0{")
        assert rest == b""
        assert data_segments_in(sock) == 1, "the 101 and the OPEN packet"
        sock.sendall(frame("40"))
        answer, rest = next_frame(sock, b"")
        event, rest = next_frame(sock, rest)
        assert answer.startswith("40{")
        assert rest == b""
        name, session = json.loads(event[2:])
        assert name == c.EVENT_SESSION
        assert data_segments_in(sock) == 2, "the CONNECT answer and the session event"
        sock.sendall(frame("421" + json.dumps(["join", {"room": "r"}])))
        text, rest = next_frame(sock, b"")
        while not text.startswith("431"):  # a presence_diff may come first
            text, rest = next_frame(sock, rest)
        position = json.loads(text[3:])[0]
    finally:
        sock.close()
    for seq in range(3):
        w.publish("r", {"seq": seq})
    time.sleep(0.3)  # the first connection's end is handled
    status, _, rest, sock = upgrade(w)
    try:
        opening, rest = next_frame(sock, rest)
        before = data_segments_in(sock)
        auth = {
            "session": session["session"],
            "rooms": {"r": {"epoch": position["epoch"], "offset": position["offset"]}},
        }
        sock.sendall(frame("40" + json.dumps(auth, separators=(",", ":"))))
        frames, rest = [], b""
        while len(frames) < 5:
            text, rest = next_frame(sock, rest)
            frames.append(text)
        assert frames[0].startswith("40{")
        name, body = json.loads(frames[1][2:])
        assert name == c.EVENT_SESSION
        assert body["recovered"] is True, body
        assert [json.loads(f[2:])[1]["data"]["seq"] for f in frames[2:]] == [0, 1, 2]
        assert data_segments_in(sock) - before == 1, "the CONNECT answer, the session event and 3 replayed messages"
    finally:
        sock.close()
