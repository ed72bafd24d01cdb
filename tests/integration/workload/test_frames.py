"""Client frames on an established WebSocket, byte for byte, against a workload process.

Once the Engine.IO socket is established the workload reads client frames itself
(fastpath/protocol.py, WSProtocol._frames): final, masked text, binary, PING and PONG frames in their shortest
length form, however TCP packs or cuts them. Any other frame (a fragment, a CLOSE, an unmasked
frame, text that is not UTF-8) hands the stream to wsproto, which answers it as it always did.
These tests drive both sides of that line with hand-made frames on the raw socket. (Events are
handled concurrently, one task each, so acks come back in completion order, not sending order.)
"""

from __future__ import annotations

import json
import random
import socket
import time
from collections.abc import Callable

import pytest
import websocket

from tests.integration.workload.test_bad_input import close_frame, finish, raw_client, still_serving
from tests.support.processes import Workload


def frame(payload: bytes | str, opcode: int = websocket.ABNF.OPCODE_TEXT, *, fin: int = 1, mask: int = 1) -> bytes:
    data = payload.encode() if isinstance(payload, str) else payload
    return bytes(websocket.ABNF(fin, 0, 0, 0, opcode, mask, data).format())


def join(ack_id: int, room: str) -> bytes:
    return frame(f"42{ack_id}" + json.dumps(["join", {"room": room}]))


def acks(ws: websocket.WebSocket, count: int) -> list[tuple[int, dict[str, object]]]:
    """The next `count` acks, in arrival order, skipping other events."""
    out = []
    while len(out) < count:
        text = ws.recv()
        if text.startswith("43"):
            ack_id, body = text[2:].split("[", 1)
            out.append((int(ack_id), json.loads("[" + body)[0]))
    return out


def closed_by_server(ws: websocket.WebSocket) -> bool:
    """wsproto ends the connection on a frame it cannot parse (uvicorn closes it, no CLOSE frame)."""
    try:
        while True:
            if ws.recv_frame().opcode == websocket.ABNF.OPCODE_CLOSE:
                return True
    except (websocket.WebSocketConnectionClosedException, ConnectionResetError):
        return True


def test_messages_packed_together_or_cut_anywhere_arrive_whole_and_in_order(
    workloads: Callable[..., Workload],
) -> None:
    w = workloads("a")
    ws = raw_client(w)
    ws.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        frames = [join(i, f"room-{i}") for i in range(1, 31)]
        frames[10] = frame("4211" + json.dumps(["join", {"room": "r" * 150}]))  # a 2-byte length: 126..65535
        frames[20] = frame("4221" + json.dumps(["publish", {"room": "room-1", "data": "x" * 3000}]))
        stream = b"".join(frames)
        cuts = [*sorted(random.Random(7).sample(range(1, len(stream)), 80)), len(stream)]
        start = 0
        for cut in cuts:  # pieces from 1 byte to a few frames, each in a TCP write of its own
            ws.sock.sendall(stream[start:cut])
            start = cut
            time.sleep(0.002)
        answers = dict(acks(ws, 30))
        assert sorted(answers) == list(range(1, 31))
        assert all(body["ok"] for body in answers.values()), answers
        assert [answers[i]["room"] for i in range(1, 31) if i not in (11, 21)] == [
            f"room-{i}" for i in range(1, 31) if i not in (11, 21)
        ]
        assert answers[11]["room"] == "r" * 150
        assert answers[21]["offset"] == 1, "the 3,000-byte publish, read whole"
        # an 8-byte length (a message of 64 KiB or more), and frames after it
        big = frame("4231" + json.dumps(["publish", {"room": "room-1", "data": "x" * 70_000}]))
        ws.sock.sendall(big + join(32, "after") + join(33, "after-2"))
        after = dict(acks(ws, 3))
        assert after[31]["offset"] == 2
        assert sorted(after) == [31, 32, 33]
    finally:
        finish(ws)


def test_frames_sent_a_byte_at_a_time_arrive_whole(workloads: Callable[..., Workload]) -> None:
    """Every cut: inside the 2-byte header, inside the extended length, inside the mask, the payload."""
    w = workloads("a")
    ws = raw_client(w)
    ws.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        stream = frame("421" + json.dumps(["join", {"room": "r" * 150}])) + join(2, "short")
        for i in range(len(stream)):
            ws.sock.sendall(stream[i : i + 1])
            time.sleep(0.001)
        answers = dict(acks(ws, 2))
        assert answers[1]["room"] == "r" * 150
        assert answers[2]["room"] == "short"
    finally:
        finish(ws)


def test_a_ping_frame_is_answered_with_its_payload_between_messages(workloads: Callable[..., Workload]) -> None:
    w = workloads("a")
    ws = raw_client(w)
    try:
        ws.sock.sendall(join(1, "a") + frame(b"are you there", websocket.ABNF.OPCODE_PING) + join(2, "b"))
        opcode, data = ws.recv_data(control_frame=True)
        while opcode != websocket.ABNF.OPCODE_PONG:
            opcode, data = ws.recv_data(control_frame=True)
        assert data == b"are you there"
        assert sorted(ack_id for ack_id, _ in acks(ws, 2)) == [1, 2]
    finally:
        finish(ws)


def test_a_fragmented_message_goes_to_wsproto_and_later_frames_still_arrive(
    workloads: Callable[..., Workload],
) -> None:
    w = workloads("a")
    ws = raw_client(w)
    try:
        text = "421" + json.dumps(["join", {"room": "pieces"}])
        ws.sock.sendall(
            frame(text[:5], fin=0)
            + frame(text[5:12], websocket.ABNF.OPCODE_CONT, fin=0)
            + frame(text[12:], websocket.ABNF.OPCODE_CONT)
            + join(2, "whole")
        )
        assert dict(acks(ws, 2)) == {1: {"ok": True, "room": "pieces", "epoch": "", "offset": 0},
                                     2: {"ok": True, "room": "whole", "epoch": "", "offset": 0}}  # fmt: skip
    finally:
        finish(ws)


def test_text_that_is_not_utf8_ends_the_connection(workloads: Callable[..., Workload]) -> None:
    w = workloads("a")
    ws = raw_client(w)
    try:
        ws.sock.sendall(join(1, "a"))
        assert acks(ws, 1)[0][0] == 1
        ws.sock.sendall(frame(b'42["join",{"room":"\xff\xfe"}]') + join(2, "b"))
        assert closed_by_server(ws)
    finally:
        finish(ws)
    still_serving(w)


def test_an_unmasked_client_frame_ends_the_connection(workloads: Callable[..., Workload]) -> None:
    w = workloads("a")
    ws = raw_client(w)
    try:
        ws.sock.sendall(frame(b"2probe", mask=0) + join(1, "a"))
        assert closed_by_server(ws)
    finally:
        finish(ws)


@pytest.mark.fast_path
def test_a_message_above_the_limit_is_refused_on_its_header(workloads: Callable[..., Workload]) -> None:
    """The header names 200,000 bytes: 1009 at once, before any of them is sent (wsproto's path
    waited for the whole message, or for twice the limit)."""
    w = workloads("a", WSFLEET_MAX_PAYLOAD_BYTES="100000")
    ws = raw_client(w)
    try:
        header = bytes((0x81, 0x80 | 127)) + (200_000).to_bytes(8, "big") + b"mask"
        ws.sock.sendall(header)
        assert close_frame(ws) == (1009, "message too big: 200000 bytes, limit 100000")
    finally:
        finish(ws)
    still_serving(w)
