"""The canary: every upstream source the workload copies, overrides or reaches into, held by hash.

The fast path (workload/wsfleet_workload/fastpath/) and the fixes both paths run (engine.py,
server.py) were written against the versions in ``fastpath.WRITTEN_FOR``. A library upgrade
that changes one of these sources could bypass a fix upstream made (a security fix among them)
while every other test stays green. So each source's hash is held here; a change fails with
the name of what changed and of the workload code to re-read. Once re-read (and the workload
changed to match), update the hash and the version in ``WRITTEN_FOR`` and pyproject.toml.

Print the current hashes: ``.venv/bin/python tests/unit/workload/test_fastpath_upstream.py``.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from wsfleet_workload import fastpath

ROOT = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class Watched:
    source: str  # "module:qualified.name", or "module" for a whole module
    sha: str  # sha256 of its source, first 16 hex digits
    ours: str  # the workload code that copies, overrides or relies on it


UPSTREAM: tuple[Watched, ...] = (
    # --- both paths: engine.py, server.py ----------------------------------------------------
    Watched(
        "engineio.async_socket:AsyncSocket.poll",
        "826f58a9f3606db2",
        "engine.Socket.poll (a copy, capped at 16 packets)",
    ),
    Watched(
        "engineio.async_socket:AsyncSocket.handle_post_request",
        "82dca119a261a959",
        "engine.Socket.handle_post_request (closes on an unknown packet)",
    ),
    Watched("engineio.payload:Payload.decode", "9c7975664d815d3d", "engine.MAX_PACKETS_PER_POLL (the client's limit)"),
    Watched(
        "engineio.async_server:AsyncServer._handle_connect",
        "5bd7edc1d1ae115a",
        "engine.install (sockets made from async_socket.AsyncSocket)",
    ),
    Watched(
        "socketio.async_server:AsyncServer._handle_connect",
        "c97c480cf777de36",
        "server.AsyncServer._handle_connect (the hook after CONNECT is queued)",
    ),
    Watched(
        "socketio.async_server:AsyncServer._handle_eio_message",
        "bef50fc0e1635921",
        "server.AsyncServer._handle_eio_message (malformed packets)",
    ),
    Watched(
        "socketio.async_server:AsyncServer._handle_eio_connect",
        "76704886d944a7e6",
        "server.AsyncServer._handle_eio_connect (the environ it keeps)",
    ),
    # --- fastpath/socket.py ----------------------------------------------------------------------
    Watched("engineio.base_socket:BaseSocket", "d787ee3666d08b7a", "fastpath.socket.DirectSocket.__init__ (its state)"),
    Watched(
        "engineio.async_socket:AsyncSocket._websocket_handler",
        "27f120df4d717a24",
        "fastpath.socket.DirectSocket._websocket_handler, _upgrade, feed, _handle_inbox (its reader, inverted)",
    ),
    Watched(
        "engineio.async_socket:AsyncSocket._upgrade_websocket",
        "820b83efe96adb98",
        "fastpath.socket.DirectSocket._websocket_handler",
    ),
    Watched(
        "engineio.async_socket:AsyncSocket.schedule_ping",
        "fe316639159cd70d",
        "fastpath.socket.DirectSocket.schedule_ping, _ping, _pong_overdue (the heartbeat timer)",
    ),
    Watched("engineio.async_socket:AsyncSocket._send_ping", "67db82a704ea49d0", "fastpath.socket.DirectSocket._ping"),
    Watched(
        "engineio.async_socket:AsyncSocket.close", "faa2e93902543244", "fastpath.socket.DirectSocket.close, _finish"
    ),
    Watched(
        "engineio.async_socket:AsyncSocket.send",
        "0437276ccba7ab09",
        "fastpath.socket.DirectQueue (sends skip the queue once direct)",
    ),
    Watched("engineio.async_socket:AsyncSocket.receive", "a91ae36ec2fb5340", "fastpath.socket.DirectSocket.feed"),
    Watched(
        "engineio.async_socket:AsyncSocket.check_ping_timeout",
        "77616d5ca7809257",
        "fastpath.socket.DirectSocket (the PONG deadline replaces it)",
    ),
    # --- fastpath/asgi.py (and the socket's reach into the driver's WebSocket wrapper) ---------
    Watched(
        "engineio.async_drivers.asgi",
        "ed291a91141373d5",
        "fastpath.asgi.translate_request (a copy), fastpath.socket.DirectSocket._websocket_handler (ws.asgi_send)",
    ),
    # --- fastpath/protocol.py and frames.py --------------------------------------------------
    Watched("uvicorn.protocols.websockets.wsproto_impl:WSProtocol", "142b7556afc92890", "fastpath.protocol.WSProtocol"),
    Watched(
        "uvicorn.protocols.http.httptools_impl:HttpToolsProtocol.handle_websocket_upgrade",
        "179c4f769386ab89",
        "fastpath.protocol.HttpToolsProtocol.handle_websocket_upgrade (a copy)",
    ),
    Watched(
        "uvicorn.protocols.http.httptools_impl:HttpToolsProtocol.on_headers_complete",
        "1ea8589acfad92d8",
        "fastpath.protocol.HttpToolsProtocol (the scope and url it hands over)",
    ),
    Watched(
        "wsproto.handshake:H11Handshake._process_connection_request",
        "4433e4b73d4c697e",
        "fastpath.protocol.WSProtocol.upgrade (called without h11)",
    ),
    Watched(
        "wsproto.handshake:H11Handshake._accept", "36599302b034ef65", "fastpath.protocol.WSProtocol._accept (its 101)"
    ),
    Watched("wsproto.frame_protocol:FrameProtocol._serialize_frame", "54db7d4e9bb11d8f", "fastpath.frames.frame"),
    Watched("wsproto.frame_protocol:FrameDecoder", "a06eb6159106220a", "fastpath.protocol.WSProtocol._frames"),
    Watched("wsproto.frame_protocol:XorMaskerSimple", "cbb8f050226ca97a", "fastpath.frames.unmask"),
    # --- fastpath/lean.py ----------------------------------------------------------------------
    Watched("asyncio.locks:Event", "11f4dfa4dc42a3f7", "fastpath.lean.LeanEvent (sets _value and _waiters)"),
    Watched("asyncio.queues:Queue", "ee2c09c337192556", "fastpath.lean.LeanQueue (the part engineio and uvicorn use)"),
    # --- fastpath/redis.py ---------------------------------------------------------------------
    Watched(
        "redis.asyncio.connection:AbstractConnection.read_response",
        "c1b374bc1a30d0b4",
        "fastpath.redis.Pipeliner._read",
    ),
    Watched(
        "redis.asyncio.connection:AbstractConnection.connect", "08c5daf33e6e52ef", "fastpath.redis.Pipeliner._connect"
    ),
    Watched(
        "redis.asyncio.connection:AbstractConnection.disconnect",
        "11194f01c2f6d3c2",
        "fastpath.redis.Pipeliner._connect, _usable (_reader, _writer)",
    ),
    Watched(
        "redis.asyncio.connection:Connection._connect", "24cd655d5f27ddbb", "fastpath.redis._usable (_reader, _writer)"
    ),
)


def resolve(source: str, module: ModuleType | None = None) -> object:
    name, _, attr = source.partition(":")
    obj: object = module if module is not None else importlib.import_module(name)
    for i, part in enumerate(filter(None, attr.split("."))):
        found = inspect.getattr_static(obj, part)
        if i == 0 and inspect.isclass(found) and found.__module__ != getattr(obj, "__name__", None):
            # engine.install puts the workload's socket class in python-engineio's module in place
            # of upstream's (any workload started in this process did): upstream's is in its MRO
            found = next(
                (k for k in found.__mro__ if k.__module__ == getattr(obj, "__name__", None) and k.__qualname__ == part),
                None,
            )
            if found is None:
                raise AttributeError(f"{source}: no class {part} of {name} found")
        obj = getattr(found, "__func__", found)  # a staticmethod or classmethod: its function
    return obj


def digest(obj: object) -> str:
    return hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()[:16]  # type: ignore[arg-type]


def changed(watched: tuple[Watched, ...], module: ModuleType | None = None) -> list[str]:
    out = []
    for w in watched:
        try:
            now = digest(resolve(w.source, module))
        except (AttributeError, ImportError, OSError, TypeError) as e:
            now = f"gone ({e})"
        if now != w.sha:
            out.append(f"{w.source} changed ({now}, held {w.sha}): re-read {w.ours}")
    return out


def test_no_upstream_source_the_workload_relies_on_has_changed() -> None:
    found = changed(UPSTREAM)
    assert not found, (
        "upstream changed since "
        + ", ".join(f"{k} {v}" for k, v in fastpath.WRITTEN_FOR.items())
        + ":\n"
        + "\n".join(found)
    )


def test_the_canary_reads_upstream_even_where_the_workload_installed_its_socket() -> None:
    """A workload started in this process (the integration tier does) has put its own socket
    class in python-engineio's module: the canary still hashes python-engineio's."""
    from engineio import async_socket  # noqa: PLC0415

    from wsfleet_workload import engine  # noqa: PLC0415
    from wsfleet_workload.fastpath.socket import DirectSocket  # noqa: PLC0415

    installed = async_socket.AsyncSocket
    try:
        for cls in (engine.Socket, DirectSocket):
            engine.install(cls)
            assert async_socket.AsyncSocket is cls
            assert not changed(UPSTREAM), cls
            assert resolve("engineio.async_socket:AsyncSocket.poll") is not engine.Socket.poll
    finally:
        async_socket.AsyncSocket = installed


def test_the_canary_notices_an_edited_copy(tmp_path: Path) -> None:
    """An edited copy of python-engineio's socket module (one line of ``poll`` changed, as a
    security fix might): the canary names what changed and what to re-read."""
    original = inspect.getsource(importlib.import_module("engineio.async_socket"))
    edited = original.replace("async def poll(self):", "async def poll(self):  # a fix upstream", 1)
    assert edited != original
    path = tmp_path / "edited_async_socket.py"
    path.write_text(edited)
    # inside the engineio package, so that its relative imports resolve
    spec = importlib.util.spec_from_file_location("engineio.edited_async_socket", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # inspect.getsource finds the class's file through it
    try:
        spec.loader.exec_module(module)
        watched = tuple(w for w in UPSTREAM if w.source.startswith("engineio.async_socket:"))
        found = changed(watched, module)
    finally:
        del sys.modules[spec.name]
    assert found == [f for f in found if "AsyncSocket.poll changed" in f], found
    assert len(found) == 1, found
    assert "re-read engine.Socket.poll" in found[0], found
    assert not changed(watched), "the installed module itself is unchanged"


def test_the_versions_the_fast_path_checks_are_the_pinned_ones() -> None:
    """pyproject.toml pins each library at the version the fast path was written for: a pin
    moved without re-reading the fast path would switch it off at start-up in every pod."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = dict(
        re.fullmatch(r"([A-Za-z0-9_.-]+)==([^\s;]+)", req).groups()  # type: ignore[union-attr]
        for req in project["optional-dependencies"]["workload"]
    )
    assert {lib: pins.get(lib) for lib in fastpath.WRITTEN_FOR} == dict(fastpath.WRITTEN_FOR)


def test_a_version_other_than_the_one_written_for_runs_the_stock_path() -> None:
    def version(library: str) -> str:
        return "9.9.9" if library == "uvicorn" else fastpath.WRITTEN_FOR[library]

    choice = fastpath.choose(True, version)
    assert (choice.on, choice.reason) == (False, "versions")
    assert [(m.library, m.installed, m.expected) for m in choice.mismatches] == [("uvicorn", "9.9.9", "0.54.0")]
    assert "uvicorn 9.9.9 (written for 0.54.0)" in choice.describe()
    assert "stock" in choice.describe()
    assert fastpath.choose(True, lambda library: "absent").mismatches[0].installed == "absent"
    assert (fastpath.choose(False).on, fastpath.choose(False).reason) == (False, "off")
    assert fastpath.choose(True).on, "the installed libraries are the ones it was written for"


if __name__ == "__main__":
    for w in UPSTREAM:
        print(f"{digest(resolve(w.source))}  {w.source}")
