"""Build the operator and workload images from their Dockerfiles without a Docker engine.

These machines have no Docker daemon and reach no image registry, only Debian's package mirror
and the language package registries. So:

- the base (the Dockerfiles' `PYTHON_IMAGE` build argument) is a root filesystem made by
  `mmdebstrap` from Debian packages (Python 3.11, venv, CA certificates), imported into the
  local container storage under a tag that carries a digest of those packages' versions: a new
  Debian point release makes a new base, an unchanged one is reused;
- the images are built by `buildah bud` from the unchanged Dockerfiles, with layer caching, so a
  second build after no change takes seconds;
- `export` writes an OCI archive that containerd's `ctr images import` takes under its full name.

A user with Docker and network access builds the same Dockerfiles with the official base
(`python:3.11.7-slim-bookworm`, the Dockerfiles' default); docs/images.md shows both.

Two settings this kind of machine needs (a cgroup v1 hybrid host, root without
CAP_SYS_RESOURCE), both in the `containers.conf` written here and passed as CONTAINERS_CONF:
runc instead of crun (crun refuses a hybrid cgroup layout), and default ulimits no higher than
the hard limits this process has (raising one needs the missing capability). The runc is the
one the nodes run, built from its Go module (builds.ensure_runc); Debian's predates fixes for
published CVEs.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import resource
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from wsfleet_devcluster import builds
from wsfleet_devcluster.gobuild import CACHE_ROOT, BuildError, progress

# What the base holds: the interpreter the Dockerfiles' build stage runs as `python`, venv,
# CA certificates (pip in the build, TLS to Redis and the API server at run time), netbase
# (/etc/services, /etc/protocols, which getaddrinfo and some libraries read).
BASE_PACKAGES = ("python3", "python3-venv", "python-is-python3", "ca-certificates", "netbase")
# Leave documentation, manual pages and translations out of the base (but keep the licences).
_DPKG_EXCLUDES = (
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/locale/*",
    "path-include=/usr/share/locale/locale.alias",
    "path-exclude=/usr/share/info/*",
)
# The merged-/usr hook installs usr-is-merged instead of usrmerge, which pulls in perl (~50 MB).
_MERGED_USR_HOOK = Path("/usr/share/mmdebstrap/hooks/merged-usr")
DEBIAN_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
# The host's CA bundle, mounted read-only into the build only: where a proxy re-signs TLS, pip
# in the build stage needs it; the image keeps Debian's own bundle.
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")

REDIS_PACKAGES = ("redis-server",)

IMAGES = {"workload": "Dockerfile.workload", "operator": "Dockerfile.operator"}
REGISTRY = "ghcr.io/wsfleet"
IMAGE_DIR = CACHE_ROOT / "images"


class ImageError(BuildError):
    pass


@dataclass(frozen=True)
class Base:
    """A root filesystem made by mmdebstrap from Debian packages, named by their versions."""

    name: str
    codename: str
    versions: tuple[tuple[str, str], ...]  # (package, candidate version), in the order asked

    @property
    def key(self) -> str:
        text = "\n".join(f"{p}={v}" for p, v in self.versions)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def tag(self) -> str:
        return f"localhost/{self.name}-{self.codename}-{self.key}"


def project_version() -> str:
    return importlib.metadata.version("wsfleet")


def image_name(name: str, version: str | None = None) -> str:
    return f"localhost/wsfleet-{name}:{version or project_version()}"


def published_name(name: str, version: str | None = None) -> str:
    """The name the image is published under, which the operator's install and the
    WebSocketService default name: the dev cluster's nodes hold the local build under it too, so
    both work unchanged (tests/unit/test_images.py checks that they agree)."""
    return f"{REGISTRY}/{name}:{version or project_version()}"


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise ImageError(f"{name} is not installed: apt-get install buildah podman mmdebstrap (make tools does)")
    return found


def _run(args: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    proc = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ImageError(f"{' '.join(args)} failed ({proc.returncode}):\n{(proc.stderr or proc.stdout)[-4000:]}")
    return proc.stdout


PODMAN_CONMON_NPROC = 32768


def _at_most(limit: int, cap: int) -> int:
    return cap if limit == resource.RLIM_INFINITY else min(limit, cap)


def containers_conf(out: TextIO = sys.stderr) -> Path:
    """The containers.conf buildah and podman read here (CONTAINERS_CONF): our runc, cgroupfs,
    and ulimits at this process's hard limits."""
    runc = builds.ensure_runc(out=out)
    nofile = _at_most(resource.getrlimit(resource.RLIMIT_NOFILE)[1], 1 << 20)
    # podman starts conmon, the container's parent, with RLIMIT_NPROC at 32768 whatever its own
    # limit, and a container asking for more fails in runc init ("error setting rlimit type 6").
    nproc = _at_most(resource.getrlimit(resource.RLIMIT_NPROC)[1], PODMAN_CONMON_NPROC)
    path = IMAGE_DIR / "containers.conf"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = (
        "# Written by wsfleet (devcluster/images.py): see its docstring for why each line is here.\n"
        "[containers]\n"
        f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'
        "[engine]\n"
        'runtime = "runc"\n'
        'cgroup_manager = "cgroupfs"\n'
        "[engine.runtimes]\n"
        f'runc = ["{runc}"]\n'
    )
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


def tool_env() -> dict[str, str]:
    """The environment to run buildah and podman in."""
    return {**os.environ, "CONTAINERS_CONF": str(containers_conf())}


def _codename() -> str:
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("VERSION_CODENAME="):
            return line.split("=", 1)[1].strip('"')
    raise ImageError("/etc/os-release: no VERSION_CODENAME; the base is made from this machine's Debian release")


def candidates(packages: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """The version apt would install of each package, from this machine's package lists."""
    out = _run([_tool("apt-cache"), "policy", *packages], env={**os.environ, "LC_ALL": "C"})
    versions: dict[str, str] = {}
    current = ""
    for line in out.splitlines():
        if line and not line.startswith(" "):
            current = line.rstrip(":")
        elif line.strip().startswith("Candidate:"):
            versions[current] = line.split(":", 1)[1].strip()
    absent = [p for p in packages if versions.get(p, "(none)") == "(none)"]
    if absent:
        raise ImageError(f"apt-cache policy: no candidate for {', '.join(absent)}; run apt-get update")
    return tuple((p, versions[p]) for p in packages)


def base() -> Base:
    """The Python base this machine's package lists would make."""
    return Base("wsfleet-python:3.11", _codename(), candidates(BASE_PACKAGES))


def redis_base() -> Base:
    """Redis for the dev cluster's pods: Debian's redis-server, as the tests run on the host."""
    return Base("wsfleet-redis:7", _codename(), candidates(REDIS_PACKAGES))


def exists(tag: str) -> bool:
    return subprocess.run([_tool("podman"), "image", "exists", tag], env=tool_env(), check=False).returncode == 0


def _debian_image(b: Base, changes: tuple[str, ...], what: str, out: TextIO) -> str:
    """Make `b` from Debian packages unless the storage has it; return its tag."""
    if exists(b.tag):
        return b.tag
    tar = IMAGE_DIR / f"rootfs-{b.tag.rsplit('/', 1)[1].replace(':', '_')}.tar"
    if not tar.exists():
        packages = ",".join(p for p, _ in b.versions)
        args = [_tool("mmdebstrap"), "--variant=minbase", "--quiet", f"--include={packages}"]
        if _MERGED_USR_HOOK.is_dir():
            args.append(f"--hook-dir={_MERGED_USR_HOOK}")
        args += [f"--dpkgopt={o}" for o in _DPKG_EXCLUDES]
        partial = tar.with_suffix(".partial.tar")
        args += [b.codename, str(partial)]
        if DEBIAN_SOURCES.exists():
            args.append(str(DEBIAN_SOURCES))  # this machine's mirror
        with progress(f"making {what} from Debian {b.codename} packages (about a minute)", out):
            _run(args)
            partial.rename(tar)
    with progress(f"importing {what} as {b.tag}", out):
        change_args = [a for c in ("ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                                   "ENV LANG=C.UTF-8", *changes) for a in ("--change", c)]  # fmt: skip
        _run([_tool("podman"), "import", *change_args, str(tar), b.tag], env=tool_env())
    return b.tag


def ensure_base(out: TextIO = sys.stderr) -> str:
    """The Python base (the Dockerfiles' PYTHON_IMAGE)."""
    return _debian_image(base(), ('CMD ["python3"]',), "the Python base", out)


def ensure_redis(out: TextIO = sys.stderr) -> str:
    """Redis as a pod runs it: any UID (it writes only /tmp), no persistence, every interface
    (the pod's own network namespace)."""
    cmd = '["redis-server", "--save", "", "--appendonly", "no", "--protected-mode", "no", "--dir", "/tmp"]'
    return _debian_image(redis_base(), (f"CMD {cmd}", "EXPOSE 6379"), "the Redis image", out)


def ensure_pause(binary: Path, out: TextIO = sys.stderr) -> str:
    """The pod sandbox image: our pause program alone on a scratch image (builds.PAUSE_MAIN)."""
    digest = hashlib.sha256(binary.read_bytes()).hexdigest()[:12]
    tag = f"localhost/wsfleet-pause:{digest}"
    if exists(tag):
        return tag
    with progress(f"building the sandbox image {tag}", out):
        env = tool_env()
        ctr = _run([_tool("buildah"), "from", "scratch"], env=env).strip()
        try:
            _run([_tool("buildah"), "copy", "--chmod", "0755", ctr, str(binary), "/pause"], env=env)
            _run([_tool("buildah"), "config", "--entrypoint", '["/pause"]', "--user", "65535:65535", ctr], env=env)
            _run([_tool("buildah"), "commit", "--quiet", ctr, tag], env=env)
        finally:
            subprocess.run([_tool("buildah"), "rm", ctr], env=env, capture_output=True, check=False)
    return tag


def build(name: str, root: Path, out: TextIO = sys.stderr, *, base_tag: str | None = None) -> str:
    """`buildah bud` of Dockerfile.<name> in `root`; return the image's name."""
    if name not in IMAGES:
        raise ImageError(f"no image {name!r}: the images are {', '.join(IMAGES)}")
    base_tag = base_tag or ensure_base(out)
    tag = image_name(name)
    args = [_tool("buildah"), "bud", "--layers", "--quiet", "--build-arg", f"PYTHON_IMAGE={base_tag}"]
    if HOST_CA_BUNDLE.exists():
        args += ["-v", f"{HOST_CA_BUNDLE}:{HOST_CA_BUNDLE}:ro"]
    args += ["-f", IMAGES[name], "-t", tag, "."]
    with progress(f"building {tag} from {IMAGES[name]} (cold: about a minute; cached: seconds)", out):
        _run(args, env=tool_env(), cwd=root)
    return tag


def size(tag: str) -> int:
    """The image's size in bytes, every layer counted once."""
    return int(_run([_tool("podman"), "image", "inspect", "--format", "{{.Size}}", tag], env=tool_env()).strip())


def image_id(tag: str) -> str:
    return _run([_tool("podman"), "image", "inspect", "--format", "{{.Id}}", tag], env=tool_env()).strip()


def archive(tag: str, out: TextIO = sys.stderr) -> Path:
    """The image as an OCI archive under the cache, written again only when the image changed."""
    directory = IMAGE_DIR / "oci" / image_id(tag)[:16]
    name = tag.rsplit("/", 1)[-1].replace(":", "_")
    path = directory / f"{name}.tar"
    if not path.exists():
        with progress(f"exporting {tag} as an OCI archive", out):
            export(tag, directory)
    return path


def export(tag: str, directory: Path) -> Path:
    """An OCI archive of the image, named inside so that `ctr images import` keeps its name."""
    directory.mkdir(parents=True, exist_ok=True)
    name = tag.rsplit("/", 1)[-1].replace(":", "_")
    path = directory / f"{name}.tar"
    path.unlink(missing_ok=True)
    _run([_tool("buildah"), "push", "--quiet", tag, f"oci-archive:{path}:{tag}"], env=tool_env())
    return path


def build_all(root: Path, out: TextIO = sys.stderr) -> dict[str, str]:
    base_tag = ensure_base(out)
    tags = {name: build(name, root, out, base_tag=base_tag) for name in IMAGES}
    for tag in tags.values():
        out.write(f"{tag}: {size(tag) / 1e6:.0f} MB\n")
    return tags
