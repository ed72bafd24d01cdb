"""The fast path: where the workload replaces parts of its libraries for speed and memory.

Each module opens with what it replaces upstream, at which version, and why:

    frames.py    WebSocket framing of common frames        (wsproto's framer and parser)
    lean.py      a queue and an event with no idle buffer  (asyncio.Queue, asyncio.Event)
    protocol.py  uvicorn's HTTP and WebSocket protocols    (uvicorn's httptools and wsproto protocols)
    socket.py    Engine.IO socket writing to its WebSocket (python-engineio's AsyncSocket tasks)
    asgi.py      request translation, one body class       (python-engineio's translate_request)
    redis.py     auto-pipelined presence joins             (redis-py's execute_command)

The stock path runs python-socketio, python-engineio and uvicorn as released, with only the
interoperability fixes that both paths need (``wsfleet_workload.engine``). It runs when
``WSFLEET_FAST_PATH=off`` (``spec.fastPath: false``), and when an installed library is
not the version the fast path was written for (``WRITTEN_FOR``): copying or overriding code of
another version would be guessing, so the workload logs a warning naming each library, sets
the ``wsfleet_fast_path_version_mismatch`` gauge, and runs stock.

This module imports none of the fast path's modules: they import upstream internals that a
different version may lack, and are imported only once the versions have been checked.
tests/unit/workload/test_fastpath_upstream.py holds a hash of every upstream source the fast
path copies, overrides or reaches into, and names what to re-read when one changes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata

# The versions the fast path was written and measured against (pyproject.toml pins the same).
WRITTEN_FOR: Mapping[str, str] = {
    "python-engineio": "4.15.1",
    "python-socketio": "5.18.1",
    "uvicorn": "0.54.0",
    "wsproto": "1.3.2",
    "redis": "8.1.0",
}


@dataclass(frozen=True)
class Mismatch:
    library: str
    installed: str
    expected: str

    def __str__(self) -> str:
        return f"{self.library} {self.installed} (written for {self.expected})"


@dataclass(frozen=True)
class Choice:
    """Which path runs, and why."""

    reason: str  # "on", "off" (asked for), "versions" (an installed library differs)
    mismatches: tuple[Mismatch, ...] = ()

    @property
    def on(self) -> bool:
        return self.reason == "on"

    def describe(self) -> str:
        if self.on:
            return "fast path on"
        if self.reason == "off":
            return "fast path off (WSFLEET_FAST_PATH=off): stock python-engineio, python-socketio and uvicorn"
        return (
            "fast path off: installed libraries differ from the ones it was written for ("
            + ", ".join(map(str, self.mismatches))
            + "); running stock python-engineio, python-socketio and uvicorn"
        )


def _installed(library: str) -> str:
    try:
        return metadata.version(library)
    except metadata.PackageNotFoundError:
        return "absent"


def mismatches(version: Callable[[str], str] = _installed) -> tuple[Mismatch, ...]:
    return tuple(
        Mismatch(library, found, expected)
        for library, expected in WRITTEN_FOR.items()
        if (found := version(library)) != expected
    )


def choose(requested: bool, version: Callable[[str], str] = _installed) -> Choice:
    if not requested:
        return Choice("off")
    found = mismatches(version)
    if found:
        return Choice("versions", found)
    return Choice("on")
