"""Running `go` for the dev cluster's builds: progress lines, errors that say what failed, and
wrapper modules.

These machines reach the Go module proxy but no binary download and no image registry, so
every component the dev cluster runs is built here from its Go module, once per version, into
~/.cache/wsfleet (``WSFLEET_CACHE``). Many of those modules cannot be built with a plain
``go install module@version``: Kubernetes replaces its staging modules with local paths,
Traefik carries replace directives, containerd's commands live beside the library. Each is
built from a small wrapper module of ours that requires it; replace and exclude directives
apply only in a main module, so a wrapper copies the ones its dependency needs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

CACHE_ROOT = Path(os.environ.get("WSFLEET_CACHE", Path.home() / ".cache" / "wsfleet"))


class BuildError(RuntimeError):
    pass


@contextmanager
def progress(what: str, out: TextIO) -> Iterator[None]:
    """Print what is being done, then its elapsed time every 30 s until it is done."""
    start = time.monotonic()
    done = threading.Event()
    out.write(f">> {what}\n")
    out.flush()

    def tick() -> None:
        while not done.wait(30):
            out.write(f"   ... {what}: {time.monotonic() - start:.0f}s\n")
            out.flush()

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
    out.write(f"   {what}: done in {time.monotonic() - start:.0f}s\n")
    out.flush()


def go_binary() -> str:
    go = shutil.which("go") or shutil.which("go", path="/usr/local/go/bin")
    if go is None:
        raise BuildError("go is not on PATH (nor in /usr/local/go/bin); the dev cluster is built from Go modules")
    return go


def go(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run go in `cwd` (static builds unless env says CGO_ENABLED=1); raise with its stderr."""
    full_env = {**os.environ, "CGO_ENABLED": "0", "GOWORK": "off", "GOFLAGS": "-mod=mod", **(env or {})}
    proc = subprocess.run([go_binary(), *args], cwd=cwd, env=full_env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BuildError(f"go {' '.join(args)} (in {cwd}) failed:\n{proc.stderr[-4000:]}")
    return proc.stdout


def wrapper(
    src: Path,
    module: str,
    requires: dict[str, str],
    *,
    replaces: tuple[str, ...] = (),
    excludes: tuple[str, ...] = (),
    mains: dict[str, str] | None = None,
) -> None:
    """Write a wrapper module in `src`: go.mod requiring each module at its version (with the
    replace and exclude lines given), and cmd/<name>/main.go for each main program given; then
    resolve them (`go get`, and `go mod tidy` for our own mains), unless that was done for
    exactly this go.mod. Commands of a required module build with `go build module/cmd/x`."""
    lines = [f"module {module}", "", "go 1.25", "", "require ("]
    lines += [f"\t{m} {v}" for m, v in requires.items()]
    lines += [")", ""]
    lines += [f"replace {r}" for r in replaces] + [f"exclude {e}" for e in excludes]
    text = "\n".join(lines) + "\n"
    src.mkdir(parents=True, exist_ok=True)
    for name, body in (mains or {}).items():
        main = src / "cmd" / name / "main.go"
        main.parent.mkdir(parents=True, exist_ok=True)
        main.write_text(body)
    stamp = src / "go.mod.wanted"
    if stamp.exists() and stamp.read_text() == text and (src / "go.sum").exists():
        return
    (src / "go.mod").write_text(text)
    go(["get", *(f"{m}@{v}" for m, v in requires.items())], src)
    if mains:
        go(["mod", "tidy"], src)
    stamp.write_text(text)
