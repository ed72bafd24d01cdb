"""Build the local control plane's binaries from Go modules, cached by version.

There is no Docker engine and no binary download on these machines, but Go and
the Go module proxy are. ``go install k8s.io/kubernetes/cmd/...@v1.36.3`` fails
("unknown revision v0.0.0") because k8s.io/kubernetes replaces its staging
modules with local paths, so we generate a small wrapper module that requires
k8s.io/kubernetes and replaces every staging module with its published
v0.36.3. The staging list comes from that release's own go.mod.

Binaries land in ~/.cache/wsfleet/k8s/<key>/bin, where the key names every
version, so a version bump builds afresh and never reuses a stale binary.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

KUBERNETES_VERSION = "1.36.3"
ETCD_VERSION = "3.6.16"
KWOK_VERSION = "0.7.0"  # the last release with built-in fast stages; 0.8 needs Stage YAML

CACHE_ROOT = Path(os.environ.get("WSFLEET_CACHE", Path.home() / ".cache" / "wsfleet"))

K8S_COMPONENTS = {
    "kube-apiserver": (
        "k8s.io/kubernetes/cmd/kube-apiserver/app",
        "os.Exit(cli.Run(app.NewAPIServerCommand()))",
    ),
    "kube-controller-manager": (
        "k8s.io/kubernetes/cmd/kube-controller-manager/app",
        "os.Exit(cli.Run(app.NewControllerManagerCommand()))",
    ),
    "kube-scheduler": (
        "k8s.io/kubernetes/cmd/kube-scheduler/app",
        "os.Exit(cli.Run(app.NewSchedulerCommand()))",
    ),
}
BINARIES = (*K8S_COMPONENTS, "etcd", "kwok")


@dataclass(frozen=True)
class Versions:
    kubernetes: str = KUBERNETES_VERSION
    etcd: str = ETCD_VERSION
    kwok: str = KWOK_VERSION

    @property
    def key(self) -> str:
        return f"k8s-{self.kubernetes}_etcd-{self.etcd}_kwok-{self.kwok}"

    @property
    def minor(self) -> str:
        return self.kubernetes.split(".")[1]


def bin_dir(versions: Versions = Versions()) -> Path:
    return CACHE_ROOT / "k8s" / versions.key / "bin"


def missing(versions: Versions = Versions()) -> list[str]:
    return [b for b in BINARIES if not (bin_dir(versions) / b).is_file()]


class BuildError(RuntimeError):
    pass


@contextmanager
def _progress(what: str, out: TextIO) -> Iterator[None]:
    """Print what is being built, then its elapsed time every 30 s until it is done."""
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


def _go(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    go = shutil.which("go") or shutil.which("go", path="/usr/local/go/bin")
    if go is None:
        raise BuildError("go is not on PATH (nor in /usr/local/go/bin); the control plane is built from Go modules")
    full_env = {**os.environ, "CGO_ENABLED": "0", "GOWORK": "off", "GOFLAGS": "-mod=mod", **(env or {})}
    proc = subprocess.run([go, *args], cwd=cwd, env=full_env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BuildError(f"go {' '.join(args)} (in {cwd}) failed:\n{proc.stderr[-4000:]}")
    return proc.stdout


def staging_modules(kubernetes: str, work: Path) -> list[str]:
    """The k8s.io staging modules that k8s.io/kubernetes@version replaces with local paths."""
    info = json.loads(_go(["mod", "download", "-json", f"k8s.io/kubernetes@v{kubernetes}"], work))
    text = Path(info["GoMod"]).read_text()
    return sorted(set(re.findall(r"^\s*(k8s\.io/[\w.-]+) => \./staging/src/", text, flags=re.MULTILINE)))


def wrapper_go_mod(kubernetes: str, staging: list[str]) -> str:
    """go.mod of the wrapper module: require kubernetes, pin each staging module to v0.<minor>.<patch>."""
    tag = "v0." + kubernetes.split(".", 1)[1]
    lines = ["module wsfleet.dev/controlplane", "", "go 1.25", "", f"require k8s.io/kubernetes v{kubernetes}", ""]
    lines += [f"replace {m} => {m} {tag}" for m in staging]
    return "\n".join(lines) + "\n"


def _ldflags(v: Versions) -> str:
    pkg = "k8s.io/component-base/version"
    return (
        f"-s -w -X {pkg}.gitVersion=v{v.kubernetes} -X {pkg}.gitMajor=1 -X {pkg}.gitMinor={v.minor} "
        f"-X {pkg}.gitTreeState=clean"
    )


def _build_kubernetes(v: Versions, names: list[str], out: TextIO) -> None:
    src = CACHE_ROOT / "k8s" / v.key / "src"
    src.mkdir(parents=True, exist_ok=True)
    with _progress(f"resolving k8s.io/kubernetes v{v.kubernetes} modules", out):
        staging = staging_modules(v.kubernetes, src)
        (src / "go.mod").write_text(wrapper_go_mod(v.kubernetes, staging))
        for name, (pkg, call) in K8S_COMPONENTS.items():
            main = src / "cmd" / name / "main.go"
            main.parent.mkdir(parents=True, exist_ok=True)
            main.write_text(
                f'package main\n\nimport (\n\t"os"\n\n\t"k8s.io/component-base/cli"\n\t"{pkg}"\n)\n\n'
                f"func main() {{ {call} }}\n"
            )
        _go(["mod", "tidy"], src)
    for name in names:
        with _progress(f"building {name} v{v.kubernetes} (a cold build takes several minutes)", out):
            _go(["build", "-ldflags", _ldflags(v), "-o", str(bin_dir(v) / name), f"./cmd/{name}"], src)


def _build_etcd(v: Versions, out: TextIO) -> None:
    src = CACHE_ROOT / "k8s" / v.key / "etcd-src"
    src.mkdir(parents=True, exist_ok=True)
    with _progress(f"building etcd v{v.etcd}", out):
        if not (src / "go.mod").exists():
            _go(["mod", "init", "wsfleet.dev/etcd"], src)
        _go(["get", f"go.etcd.io/etcd/server/v3@v{v.etcd}"], src)
        _go(["build", "-o", str(bin_dir(v) / "etcd"), "go.etcd.io/etcd/server/v3"], src)


def _build_kwok(v: Versions, out: TextIO) -> None:
    with _progress(f"building kwok v{v.kwok}", out):
        _go(["install", f"sigs.k8s.io/kwok/cmd/kwok@v{v.kwok}"], bin_dir(v), {"GOBIN": str(bin_dir(v))})


def ensure_binaries(versions: Versions = Versions(), out: TextIO = sys.stderr) -> Path:
    """Build whatever binary is missing from the cache; return the bin directory."""
    todo = missing(versions)
    bindir = bin_dir(versions)
    bindir.mkdir(parents=True, exist_ok=True)
    if not todo:
        return bindir
    out.write(f">> control plane binaries missing from {bindir}: {', '.join(todo)}\n")
    k8s = [n for n in todo if n in K8S_COMPONENTS]
    if k8s:
        _build_kubernetes(versions, k8s, out)
    if "etcd" in todo:
        _build_etcd(versions, out)
    if "kwok" in todo:
        _build_kwok(versions, out)
    still = missing(versions)
    if still:
        raise BuildError(f"built, but still missing from {bindir}: {', '.join(still)}")
    return bindir
