"""Bad input gets a clear answer; the server stays up and other clients are not affected.

| input                                    | answer                                               |
|------------------------------------------|------------------------------------------------------|
| undecodable Socket.IO packets            | `bad_request` event naming the error; connection kept |
| a frame above maxPayloadBytes            | WebSocket close 1009 "message too big: N bytes, ..." |
| a bad room name (acked event)            | {"ok": false, "error": "join: room='a b': ..."}      |
| a bad or missing JWT                     | connect_error naming the problem; metric bad_token   |
| a room the token does not grant          | join refused naming the room                         |
| an Origin not in the CORS allow-list    | 400 "<origin> is not an accepted origin."             |
| a handshake flood from one IP            | 503 + Retry-After, JSON reason rate_limit_ip         |
| a client that stops reading              | cut off ("slow consumer"), metric, log line          |
| publish API: wrong key / bad body / size | 401 / 400 naming the field / 413                     |
| a POST to a polling session that timed out | 400 naming the session (python-engineio: 500)     |
| a polling POST of a packet no client sends | 400 at once, session closed (python-engineio: hangs) |
| a WebSocket client that stops answering PINGs | closed pingTimeout after the unanswered PING; one that answers stays |

After each, a well-behaved client on the same process still gets every message.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jwt
import pytest
import socketio
import websocket

from tests.conftest import STOCK
from tests.support.processes import Workload, wait_for
from tests.support.processes import http as http_call
from tests.support.pyclient import PyClient
from tests.support.secrets import API_KEY, JWT_KEY
from wsfleet_common import contract as c

SECRET = JWT_KEY


def raw_client(w: Workload) -> websocket.WebSocket:
    """A hand-driven Engine.IO v4 / Socket.IO v5 client: open, CONNECT, read the session event."""
    ws = websocket.create_connection(f"ws://127.0.0.1:{w.port}{c.SOCKETIO_PATH}?EIO=4&transport=websocket", timeout=5)
    assert ws.recv().startswith("0{")  # Engine.IO OPEN
    ws.send("40")  # Socket.IO CONNECT to "/"
    assert ws.recv().startswith("40{")
    assert json.loads(ws.recv()[2:])[0] == c.EVENT_SESSION
    return ws


def finish(ws: websocket.WebSocket) -> None:
    """Close without waiting on a server that may have closed first; always free the socket."""
    try:
        ws.close(timeout=1)
    except (OSError, websocket.WebSocketException):
        pass
    finally:
        ws.shutdown()


def close_frame(ws: websocket.WebSocket) -> tuple[int, str]:
    """The code and reason of the server's CLOSE frame, read without answering it: a server that
    closes while the client is still sending resets the connection (its unread bytes), so a CLOSE
    sent back (websocket-client's recv_data does) may fail with ECONNRESET."""
    while True:
        received = ws.recv_frame()
        if received.opcode == websocket.ABNF.OPCODE_CLOSE:
            return int.from_bytes(received.data[:2], "big"), received.data[2:].decode()


def ack(ws: websocket.WebSocket, request: str) -> dict[str, Any]:
    """Send an event with ack id 1 and return the ack, skipping events that arrive meanwhile."""
    ws.send(request)
    while True:
        frame = ws.recv()
        if frame.startswith("431"):
            return json.loads(frame[3:])[0]  # type: ignore[no-any-return]


def still_serving(w: Workload, room: str = "canary", *, retry_refused: bool = False) -> None:
    """A new client connects, joins and gets what is published. With `retry_refused`, a handshake
    refused with 503 is tried again after a second, as a client told Retry-After: 1 does."""

    async def check() -> None:
        for _ in range(10):
            client = PyClient(w.url, [room])
            try:
                await client.connect()
                break
            except socketio.exceptions.ConnectionError:
                await client.close()
                if not retry_refused:
                    raise
                await asyncio.sleep(1)
        for seq in range(1, 6):
            w.publish(room, {"seq": seq})
        for _ in range(30):
            if len(client.seqs[room]) == 5:
                break
            await asyncio.sleep(0.1)
        assert client.seqs[room] == [1, 2, 3, 4, 5]
        await client.close()

    assert w.get(c.READY_PATH)[0] == 200
    asyncio.run(check())


@pytest.mark.parametrize(
    ("packet", "error"),
    [
        ('42["join"', "JSONDecodeError"),
        ("4x", "invalid literal"),
        ("42{}", "KeyError"),
        ("49999999999", "Unknown packet type"),
    ],
)
def test_malformed_packets_are_answered(workloads: Callable[..., Workload], packet: str, error: str) -> None:
    w = workloads("a")
    ws = raw_client(w)
    ws.send(packet)
    reply = ws.recv()
    assert reply.startswith("42")
    event, body = json.loads(reply[2:])
    assert event == c.EVENT_BAD_REQUEST
    assert error in body["error"]
    try:
        assert ack(ws, '421["join",{"room":"ok"}]')["ok"] is True, "the connection is still usable"
    finally:
        finish(ws)
    assert w.metric(c.METRIC_REJECTED, request="packet", reason="malformed") == 1
    still_serving(w)


def test_bad_room_name_is_refused_by_name(workloads: Callable[..., Workload]) -> None:
    w = workloads("a")
    ws = raw_client(w)
    answer = ack(ws, '421["join",{"room":"a b"}]')
    assert answer["ok"] is False
    assert "room='a b'" in answer["error"]
    finish(ws)


def test_oversized_frame_closes_with_1009(workloads: Callable[..., Workload]) -> None:
    w = workloads("a", WSFLEET_MAX_PAYLOAD_BYTES="100000")
    ws = raw_client(w)
    ws.send("42" + json.dumps(["publish", {"room": "x", "data": "y" * 200_000}]))
    assert close_frame(ws) == (1009, "message too big: 200040 bytes, limit 100000")
    finish(ws)
    assert w.metric(c.METRIC_REJECTED, request="frame", reason="payload_too_large") == 1
    (refusal,) = w.events(event="refused", what="frame")
    assert refusal["reason"] == "payload_too_large"
    assert "message too big: 200040 bytes, limit 100000" in refusal["message"]
    assert refusal["ip"] == "127.0.0.1"
    still_serving(w)


def test_an_oversized_fragmented_message_closes_with_1009(workloads: Callable[..., Workload]) -> None:
    """A message sent in fragments counts whole: three of 40,000 bytes, 100,000 allowed."""
    w = workloads("a", WSFLEET_MAX_PAYLOAD_BYTES="100000")
    ws = raw_client(w)
    body = "42" + json.dumps(["publish", {"room": "x", "data": "y" * 119_970}])
    parts = [body[i : i + 40_000] for i in range(0, len(body), 40_000)]
    ws.send_frame(websocket.ABNF.create_frame(parts[0], websocket.ABNF.OPCODE_TEXT, fin=0))
    for i, part in enumerate(parts[1:], 1):
        ws.send_frame(websocket.ABNF.create_frame(part, websocket.ABNF.OPCODE_CONT, fin=int(i == len(parts) - 1)))
    assert close_frame(ws) == (1009, f"message too big: {len(body)} bytes, limit 100000")
    finish(ws)
    assert w.metric(c.METRIC_REJECTED, request="frame", reason="payload_too_large") == 1
    still_serving(w)


def test_oversized_polling_posts_get_413_without_being_buffered(workloads: Callable[..., Workload]) -> None:
    w = workloads("a", WSFLEET_MAX_PAYLOAD_BYTES="100000")
    _, _, body = http_call("GET", w.url + c.SOCKETIO_PATH + "?EIO=4&transport=polling")
    sid = json.loads(body[1:])["sid"]
    path = f"{c.SOCKETIO_PATH}?EIO=4&transport=polling&sid={sid}"
    status, _, answer = http_call("POST", w.url + path, b"4" + b"x" * 200_000)
    assert status == 413
    assert answer["error"] == "payload too large: 200001 bytes, limit 100000"
    conn = http.client.HTTPConnection("127.0.0.1", w.port, timeout=5)
    conn.request("POST", path, body=iter([b"4" + b"x" * 60_000, b"x" * 60_000]), encode_chunked=True)
    reply = conn.getresponse()
    assert reply.status == 413
    assert json.loads(reply.read())["error"] == "payload too large: more than 100000 bytes (chunked), limit 100000"
    conn.close()
    assert w.metric(c.METRIC_REJECTED, request="post", reason="payload_too_large") == 2
    still_serving(w)


def test_cors_allow_list(workloads: Callable[..., Workload]) -> None:
    w = workloads("a", WSFLEET_CORS_ALLOW_ORIGINS="https://app.example")
    handshake = w.url + c.SOCKETIO_PATH + "?EIO=4&transport=polling"
    status, headers, _ = http_call("GET", handshake, headers={"Origin": "https://app.example"})
    assert status == 200
    assert {k.lower(): v for k, v in headers.items()}["access-control-allow-origin"] == "https://app.example"
    status, _, body = http_call("GET", handshake, headers={"Origin": "https://evil.example"})
    assert status == 400
    assert body == "https://evil.example is not an accepted origin."
    still_serving(w)


def test_publish_api_refuses_bad_requests_by_name(workloads: Callable[..., Workload]) -> None:
    w = workloads("a", WSFLEET_MAX_PAYLOAD_BYTES="2048")
    url = w.url + c.PUBLISH_PATH
    status, _, body = http_call("POST", url, {"room": "r", "data": 1}, {"Authorization": "Bearer wrong"})
    assert status == 401
    assert "API key" in body["error"]
    status, _, body = http_call("POST", url, {"room": "no spaces", "data": 1}, {"Authorization": f"Bearer {API_KEY}"})
    assert status == 400
    assert "room='no spaces'" in body["error"]
    status, _, body = http_call("POST", url, {"room": "r"}, {"Authorization": f"Bearer {API_KEY}"})
    assert status == 400
    assert '"data"' in body["error"]
    status, _, body = http_call("POST", url, b"{not json", {"Authorization": f"Bearer {API_KEY}"})
    assert status == 400
    status, _, body = http_call("POST", url, {"room": "r", "data": "z" * 4096}, {"Authorization": f"Bearer {API_KEY}"})
    assert status == 413
    assert "2048" in body["error"]
    still_serving(w)


def _token(**claims: Any) -> str:
    return jwt.encode({"exp": int(time.time()) + 300, **claims}, SECRET, algorithm="HS256")


def test_jwt_is_checked_and_rooms_follow_the_claims(workloads: Callable[..., Workload]) -> None:
    w = workloads("a", WSFLEET_JWT_ALGORITHM="HS256", WSFLEET_JWT_KEY=SECRET)

    async def refused(token: str | None, headers: dict[str, str] | None = None) -> str:
        client = socketio.AsyncClient(reconnection=False)
        errors: list[Any] = []
        client.on("connect_error", errors.append)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(
                w.url,
                transports=["websocket"],
                auth={"token": token} if token else {},
                headers=headers or {},
                wait_timeout=5,
            )
        await client.eio.disconnect(abort=True)
        if client.eio.http is not None:
            await client.eio.http.close()
        assert errors[0]["data"] == {"reason": "bad_token"}, errors
        return str(errors[0]["message"])

    async def scenario() -> None:
        assert "a token is required" in await refused(None)
        assert "invalid token: Signature verification failed" in await refused(
            jwt.encode({"exp": int(time.time()) + 60}, "x" * 40, algorithm="HS256")
        )
        assert "token expired" in await refused(_token(exp=int(time.time()) - 120))
        assert "invalid token" in await refused("not-a-jwt")
        # through a trusted proxy (127.0.0.1 by default): the refusal names the client's address
        assert "invalid token" in await refused("forwarded", {"X-Forwarded-For": "203.0.113.7"})
        good = PyClient(w.url, [], token=_token(sub="ada", rooms=["chat:*"], publish=["chat:general"]))
        await good.connect()
        assert (await good.call("join", {"room": "chat:general"}))["ok"] is True
        denied = await good.call("join", {"room": "admin"})
        assert denied["ok"] is False
        assert "room='admin'" in denied["error"]
        assert (await good.call("publish", {"room": "chat:general", "data": 1}))["ok"] is True
        refused_publish = await good.call("publish", {"room": "chat:other", "data": 1})
        assert refused_publish["ok"] is False
        members = await good.call("presence", {"room": "chat:general"})
        assert members["members"][0]["user"] == "ada"
        await good.close()

    asyncio.run(scenario())
    assert w.metric(c.METRIC_HANDSHAKE_REJECTIONS, reason="bad_token") == 5
    ips = [e["ip"] for e in w.events(event="refused", what="handshake")]
    assert ips == ["127.0.0.1"] * 4 + ["203.0.113.7"], ips
    assert w.get(c.READY_PATH)[0] == 200


def test_handshake_flood_gets_503_with_retry_after(workloads: Callable[..., Workload]) -> None:
    """30 handshakes at once against a limit of 5/s per address: the bucket holds 5 and refills at
    5/s, so however slowly this machine sends them, no more than 5 x (1 + the flood's seconds)
    are admitted, and every other one is a 503 the metric counts."""
    w = workloads("a", WSFLEET_HANDSHAKES_PER_SECOND_PER_IP="5")
    started = time.monotonic()
    with ThreadPoolExecutor(30) as pool:
        answers = list(
            pool.map(lambda _: http_call("GET", w.url + c.SOCKETIO_PATH + "?EIO=4&transport=polling"), range(30))
        )
    elapsed = time.monotonic() - started
    refused = [a for a in answers if a[0] == 503]
    admitted = [a for a in answers if a[0] == 200]
    assert len(refused) + len(admitted) == 30, [a[0] for a in answers]
    assert len(admitted) <= 5 * (1 + elapsed), (len(admitted), elapsed)
    assert refused, f"nothing refused in {elapsed:.1f} s"
    _, headers, body = refused[0]
    assert {k.lower(): v for k, v in headers.items()}["retry-after"] == "1"
    assert body["reason"] == "rate_limit_ip"
    assert "limit 5/s" in body["error"]
    assert w.metric(c.METRIC_HANDSHAKE_REJECTIONS, reason="rate_limit_ip") == len(refused)
    still_serving(w, retry_refused=True)


def test_slow_consumer_is_cut_off_and_others_are_not(workloads: Callable[..., Workload]) -> None:
    w = workloads("a", WSFLEET_SEND_QUEUE_MESSAGES="20", WSFLEET_REPLAY_MAX_MESSAGES="1000")
    slow = raw_client(w)
    assert ack(slow, '421["join",{"room":"flood"}]')["ok"] is True
    # from here on `slow` reads nothing: the kernel buffers fill, then the server's queue

    async def scenario() -> list[int]:
        fast = PyClient(w.url, ["flood"])
        await fast.connect()
        blob = "x" * 32_000
        for seq in range(1, 401):  # ~13 MB, far beyond loopback socket buffers
            await asyncio.to_thread(w.publish, "flood", {"seq": seq, "blob": blob})
        for _ in range(100):
            if len(fast.seqs["flood"]) == 400:
                break
            await asyncio.sleep(0.1)
        await fast.close()
        return fast.seqs["flood"]

    assert asyncio.run(scenario()) == list(range(1, 401)), "the fast client got everything"
    wait_for(lambda: w.metric(c.METRIC_SLOW_CONSUMERS) == 1, 10, "the slow consumer cut off")
    assert w.metric(c.METRIC_DISCONNECTS, reason="slow_consumer") == 1
    (cut,) = [e for e in w.events(level="WARNING") if "cutting off a slow consumer" in e["message"]]
    assert cut["client"], "the log line names the client"
    assert cut["connection"], "and its connection"
    finish(slow)
    still_serving(w)


def test_a_post_to_a_timed_out_polling_session_is_a_400_not_a_crash(workloads: Callable[..., Workload]) -> None:
    """A long-polling client whose heartbeat timed out (here: it never answers the ping) and
    that POSTs again gets 400 naming the session, from the moment the session closed; python-
    engineio alone answers 500 with a traceback until its service task forgets the session."""
    w = workloads("a")
    status, _, body = http_call("GET", f"{w.url}{c.SOCKETIO_PATH}?EIO=4&transport=polling")
    assert status == 200, body
    sid = json.loads(body[1:])["sid"]
    url = f"{w.url}{c.SOCKETIO_PATH}?EIO=4&transport=polling&sid={sid}"
    assert http_call("POST", url, b"40")[0] == 200  # Socket.IO CONNECT
    answers: list[int] = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and answers[-25:].count(400) < 25:  # 2.5 s past the close
        # an event, never a pong (and no GET to read the pings): the heartbeat runs out
        status, _, body = http_call("POST", url, b'42["presence",{"room":"lobby"}]')
        if status != 200:
            assert status == 400, (status, body)
            assert sid in str(body), body
        answers.append(status)
        time.sleep(0.1)
    assert answers[0] == 200, answers
    assert answers[-1] == 400, answers
    crashes = [e for e in w.events(level="ERROR") if "exc_info" in e]
    assert not crashes, crashes[0]["exc_info"]


def test_a_polling_post_of_a_packet_no_client_sends_closes_the_session_at_once(
    workloads: Callable[..., Workload],
) -> None:
    """A NOOP (6) from a client: python-engineio alone disconnects the session waiting for a GET
    to drain its queue, so the POST, and the session, hang until the client polls again."""
    w = workloads("a")
    status, _, body = http_call("GET", f"{w.url}{c.SOCKETIO_PATH}?EIO=4&transport=polling")
    assert status == 200, body
    sid = json.loads(body[1:])["sid"]
    url = f"{w.url}{c.SOCKETIO_PATH}?EIO=4&transport=polling&sid={sid}"
    started = time.monotonic()
    status, _, body = http_call("POST", url, b"6", timeout=5)
    assert status == 400, (status, body)
    # before the heartbeat (2 s + 2 s) could have ended the session: the NOOP did
    assert time.monotonic() - started < 4, "answered at once, not when the heartbeat ran out"
    status, _, body = http_call("GET", url, timeout=5)
    assert status == 400, "the session is gone"
    assert sid in str(body), body

    # the server is fine: a new client connects and joins
    async def fine() -> None:
        ok = PyClient(w.url, ["lobby"])
        await ok.connect()
        await ok.close()

    asyncio.run(fine())


def test_a_websocket_client_that_stops_answering_pings_is_closed_and_one_that_answers_stays(
    workloads: Callable[..., Workload],
) -> None:
    """The heartbeat on a WebSocket (a timer per socket on the fast path, fastpath/socket.py): a PING every
    pingInterval; a PONG re-arms it; no PONG within pingTimeout closes the session, named
    "ping timeout". Both clients run side by side, through several intervals."""
    w = workloads("a")  # heartbeat 2 s + 2 s
    interval = timeout = 2.0
    mute, alive = raw_client(w), raw_client(w)
    mute.settimeout(0.2)
    alive.settimeout(0.2)
    started = time.monotonic()
    pings: dict[str, list[float]] = {"mute": [], "alive": []}
    closed_at = None
    # until the mute one is closed and the other has answered 4 PINGs (a minute at most: a busy
    # machine delays PINGs, it cannot bring them early)
    while (closed_at is None or len(pings["alive"]) < 4) and time.monotonic() - started < 60:
        for name, ws in (("alive", alive), ("mute", mute)):
            if name == "mute" and closed_at is not None:
                continue
            try:
                frame = ws.recv()
            except websocket.WebSocketTimeoutException:
                continue
            except (OSError, websocket.WebSocketConnectionClosedException):
                assert name == "mute", "the client answering PINGs was closed"
                closed_at = time.monotonic() - started
                continue
            if frame == "":  # the close frame
                assert name == "mute", "the client answering PINGs was closed"
                closed_at = time.monotonic() - started
            elif frame == "2":
                pings[name].append(time.monotonic() - started)
                if name == "alive":
                    ws.send("3")
    assert closed_at is not None, f"the mute client was never closed (PINGs at {pings['mute']})"
    assert len(pings["mute"]) == 1, pings
    first = pings["mute"][0]
    assert first > interval - 0.5, f"the first PING came before pingInterval: {pings}"
    assert closed_at - first > timeout - 0.5, f"closed before pingTimeout ran out: {first}, {closed_at}"
    assert len(pings["alive"]) >= 4, pings  # re-armed after every PONG
    assert ack(alive, '421["presence",{"room":"lobby"}]')["ok"] is True
    # The stock path's python-engineio ends a silent WebSocket when its reader's wait times out,
    # and names that a "transport close" (docs/workload.md, the stock path)
    reason = "transport close" if STOCK else "ping timeout"
    wait_for(lambda: w.events(message=f"disconnected: {reason}"), 5, "the mute client's disconnect logged")
    finish(alive)
    finish(mute)
    still_serving(w)
