"""Every binary the dev cluster runs, built from Go modules by version and cached.

- the control plane: kube-apiserver, kube-controller-manager, kube-scheduler (k8s.io/kubernetes),
  etcd, kwok (the fake nodes for scale);
- a real node: kubelet and kube-proxy (k8s.io/kubernetes, the same version), containerd 2 with its
  runc shim and ctr, runc (with seccomp, through cgo and libseccomp), the pause program the
  pod sandboxes run (ours: no image registry is reachable here), and CoreDNS (cluster DNS);
- the resource metrics API: metrics-server (sigs.k8s.io/metrics-server), which HPAs read;
- the load balancer: Traefik (its Kubernetes Gateway provider), whose go.mod replace and exclude
  directives its wrapper module copies (they apply only in a main module).

``go install k8s.io/kubernetes/cmd/...@v1.36.3`` fails ("unknown revision v0.0.0") because
k8s.io/kubernetes replaces its staging modules with local paths, so its wrapper module replaces
every staging module with its published v0.36.3 (the list comes from that release's own go.mod)
and holds a main.go per component. The version is stamped into each binary (``-X
k8s.io/component-base/version.gitVersion``), or the nodes would report ``v0.0.0-master``.

Binaries land in ~/.cache/wsfleet/<part>/<key>/bin, where the key names every version, so a
version bump builds afresh and never reuses a stale binary.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from wsfleet_devcluster.gobuild import CACHE_ROOT, BuildError, go, progress, wrapper

__all__ = ["CACHE_ROOT", "BuildError", "Versions", "ensure_binaries", "ensure_node_binaries", "ensure_runc"]

KUBERNETES_VERSION = "1.36.3"
ETCD_VERSION = "3.6.16"
KWOK_VERSION = "0.7.0"  # the last release with built-in fast stages; 0.8 needs Stage YAML
CONTAINERD_VERSION = "2.2.9"
RUNC_VERSION = "1.4.4"  # Debian bookworm's runc 1.1.5 predates fixes for published CVEs
COREDNS_VERSION = "1.12.4"
TRAEFIK_VERSION = "3.6.12"  # 3.7.x pins dependencies the module proxy refuses (gateway.md)
GATEWAY_API_VERSION = "1.4.0"  # the standard channel Traefik 3.6 implements
METRICS_SERVER_VERSION = "0.8.0"  # 0.9.0 is served but not an approved release
HELM_VERSION = "4.3.2"  # helm.sh/helm/v4: server-side apply by default
KSTATUS_VERSION = "0.37.2"  # sigs.k8s.io/cli-utils, whose pkg/kstatus Flux and Argo CD read health with

_CLI = "k8s.io/component-base/cli"
K8S_COMPONENTS = {
    "kube-apiserver": ("k8s.io/kubernetes/cmd/kube-apiserver/app", "os.Exit(cli.Run(app.NewAPIServerCommand()))"),
    "kube-controller-manager": (
        "k8s.io/kubernetes/cmd/kube-controller-manager/app",
        "os.Exit(cli.Run(app.NewControllerManagerCommand()))",
    ),
    "kube-scheduler": ("k8s.io/kubernetes/cmd/kube-scheduler/app", "os.Exit(cli.Run(app.NewSchedulerCommand()))"),
    "kubelet": ("k8s.io/kubernetes/cmd/kubelet/app", "os.Exit(cli.Run(app.NewKubeletCommand(context.Background())))"),
    "kube-proxy": ("k8s.io/kubernetes/cmd/kube-proxy/app", "os.Exit(cli.Run(app.NewProxyCommand()))"),
}
CONTROL_PLANE = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd", "kwok")
NODE = ("kubelet", "kube-proxy", "containerd", "containerd-shim-runc-v2", "ctr", "runc", "pause", "coredns")
CONTAINERD_COMMANDS = ("containerd", "containerd-shim-runc-v2", "ctr")

# The sandbox's process: it holds the pod's namespaces, reaps orphans (it is PID 1 when the pod
# shares its process namespace) and exits on SIGINT or SIGTERM. The same job as Kubernetes'
# build/pause/linux/pause.c, in Go so that it builds statically with the rest.
PAUSE_MAIN = """package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range signals {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
"""


@dataclass(frozen=True)
class Versions:
    kubernetes: str = KUBERNETES_VERSION
    etcd: str = ETCD_VERSION
    kwok: str = KWOK_VERSION
    containerd: str = CONTAINERD_VERSION
    runc: str = RUNC_VERSION
    coredns: str = COREDNS_VERSION

    @property
    def key(self) -> str:
        """The control plane's cache key (kept as it was, so an existing cache stays valid)."""
        return f"k8s-{self.kubernetes}_etcd-{self.etcd}_kwok-{self.kwok}"

    @property
    def node_key(self) -> str:
        return f"k8s-{self.kubernetes}_containerd-{self.containerd}_runc-{self.runc}_coredns-{self.coredns}"

    @property
    def minor(self) -> str:
        return self.kubernetes.split(".")[1]


def bin_dir(versions: Versions = Versions()) -> Path:
    return CACHE_ROOT / "k8s" / versions.key / "bin"


def node_bin_dir(versions: Versions = Versions()) -> Path:
    return CACHE_ROOT / "node" / versions.node_key / "bin"


def staging_modules(kubernetes: str, work: Path) -> list[str]:
    """The k8s.io staging modules that k8s.io/kubernetes@version replaces with local paths."""
    work.mkdir(parents=True, exist_ok=True)
    info = json.loads(go(["mod", "download", "-json", f"k8s.io/kubernetes@v{kubernetes}"], work))
    text = Path(info["GoMod"]).read_text()
    return sorted(set(re.findall(r"^\s*(k8s\.io/[\w.-]+) => \./staging/src/", text, flags=re.MULTILINE)))


def _k8s_main(pkg: str, call: str) -> str:
    imports = ['"os"', "", f'"{_CLI}"', f'"{pkg}"']
    if "context." in call:
        imports.insert(0, '"context"')
    body = "\n".join(f"\t{i}" if i else "" for i in imports)
    return f"package main\n\nimport (\n{body}\n)\n\nfunc main() {{ {call} }}\n"


def _ldflags(v: Versions) -> str:
    pkg = "k8s.io/component-base/version"
    return (
        f"-s -w -X {pkg}.gitVersion=v{v.kubernetes} -X {pkg}.gitMajor=1 -X {pkg}.gitMinor={v.minor} "
        f"-X {pkg}.gitTreeState=clean"
    )


def _build_kubernetes(v: Versions, names: list[str], bindir: Path, out: TextIO) -> None:
    src = CACHE_ROOT / "k8s" / v.key / "src"  # one wrapper module for every component of this version
    with progress(f"resolving k8s.io/kubernetes v{v.kubernetes} modules", out):
        tag = "v0." + v.kubernetes.split(".", 1)[1]
        staging = staging_modules(v.kubernetes, src)
        wrapper(
            src,
            "wsfleet.dev/kubernetes",
            {"k8s.io/kubernetes": f"v{v.kubernetes}"},
            replaces=tuple(f"{m} => {m} {tag}" for m in staging),
            mains={name: _k8s_main(pkg, call) for name, (pkg, call) in K8S_COMPONENTS.items()},
        )
    for name in names:
        with progress(f"building {name} v{v.kubernetes} (a cold build takes several minutes)", out):
            go(["build", "-ldflags", _ldflags(v), "-o", str(bindir / name), f"./cmd/{name}"], src)


def _build_etcd(v: Versions, bindir: Path, out: TextIO) -> None:
    src = CACHE_ROOT / "k8s" / v.key / "etcd-src"
    with progress(f"building etcd v{v.etcd}", out):
        wrapper(src, "wsfleet.dev/etcd", {"go.etcd.io/etcd/server/v3": f"v{v.etcd}"})
        go(["build", "-o", str(bindir / "etcd"), "go.etcd.io/etcd/server/v3"], src)


def _build_kwok(v: Versions, bindir: Path, out: TextIO) -> None:
    with progress(f"building kwok v{v.kwok}", out):
        go(["install", f"sigs.k8s.io/kwok/cmd/kwok@v{v.kwok}"], bindir, {"GOBIN": str(bindir)})


def _build_containerd(v: Versions, names: list[str], bindir: Path, out: TextIO) -> None:
    src = CACHE_ROOT / "node" / v.node_key / "containerd-src"
    module = "github.com/containerd/containerd/v2"
    ldflags = f"-s -w -X {module}/version.Version=v{v.containerd}"
    with progress(f"building containerd v{v.containerd} ({', '.join(names)})", out):
        wrapper(src, "wsfleet.dev/containerd", {module: f"v{v.containerd}"})
        for name in names:
            go(["build", "-tags", "no_btrfs no_devmapper no_zfs", "-ldflags", ldflags, "-o", str(bindir / name),
                f"{module}/cmd/{name}"], src)  # fmt: skip


def _build_runc(version: str, target: Path, out: TextIO) -> None:
    src = target.parent.parent / "runc-src"
    module = "github.com/opencontainers/runc"
    with progress(f"building runc v{version} (with seccomp: cgo and libseccomp-dev)", out):
        wrapper(src, "wsfleet.dev/runc", {module: f"v{version}"})
        go(["build", "-tags", "seccomp urfave_cli_no_docs", "-ldflags", f"-s -w -X main.version={version}",
            "-o", str(target), module], src, {"CGO_ENABLED": "1"})  # fmt: skip


def _build_coredns(v: Versions, bindir: Path, out: TextIO) -> None:
    src = bindir.parent / "coredns-src"
    module = "github.com/coredns/coredns"
    with progress(f"building CoreDNS v{v.coredns}", out):
        wrapper(src, "wsfleet.dev/coredns", {module: f"v{v.coredns}"})
        go(["build", "-ldflags", f"-s -w -X {module}/coremain.GitCommit=v{v.coredns}", "-o", str(bindir / "coredns"),
            module], src)  # fmt: skip


def _build_pause(bindir: Path, out: TextIO) -> None:
    src = bindir.parent / "pause-src"
    with progress("building the pod sandbox's pause program", out):
        src.mkdir(parents=True, exist_ok=True)
        (src / "go.mod").write_text("module wsfleet.dev/pause\n\ngo 1.25\n")
        (src / "main.go").write_text(PAUSE_MAIN)
        go(["build", "-ldflags", "-s -w", "-o", str(bindir / "pause"), "."], src)


def _ensure(what: str, bindir: Path, wanted: tuple[str, ...], build: Callable[[list[str]], None], out: TextIO) -> Path:
    """Build the binaries of `wanted` that `bindir` lacks (with `build`), then check they are there."""
    bindir.mkdir(parents=True, exist_ok=True)
    todo = [b for b in wanted if not (bindir / b).is_file()]
    if todo:
        out.write(f">> {what} binaries missing from {bindir}: {', '.join(todo)}\n")
        build(todo)
        still = [b for b in wanted if not (bindir / b).is_file()]
        if still:
            raise BuildError(f"built, but still missing from {bindir}: {', '.join(still)}")
    return bindir


# Copied from traefik v3.6.12's go.mod: replace and exclude apply only in the main module.
TRAEFIK_REPLACES = (
    "github.com/abbot/go-http-auth => github.com/containous/go-http-auth v0.4.1-0.20200324110947-a37a7636d23e",
    "github.com/gorilla/mux => github.com/containous/mux v0.0.0-20250523120546-41b6ec3aed59",
    "github.com/mailgun/minheap => github.com/containous/minheap v0.0.0-20190809180810-6e71eb837595",
)
TRAEFIK_EXCLUDES = ("github.com/tencentcloud/tencentcloud-sdk-go v3.0.83+incompatible",)


def traefik_binary(version: str = TRAEFIK_VERSION) -> Path:
    return CACHE_ROOT / "gateway" / f"traefik-{version}" / "bin" / "traefik"


def _built_once(target: Path, what: str, build: Callable[[Path], None], out: TextIO) -> Path:
    """`target`, built by `build(src)` (src: a wrapper module's directory beside the target's) unless
    it is already there."""
    if not target.is_file():
        with progress(what, out):
            build(target.parent.parent / "src")
    return target


def ensure_traefik(version: str = TRAEFIK_VERSION, out: TextIO = sys.stderr) -> Path:
    """Traefik, built from its Go module (a cold build takes about 6 minutes on 2 cores)."""
    target = traefik_binary(version)
    module = "github.com/traefik/traefik/v3"

    def build(src: Path) -> None:
        wrapper(
            src, "wsfleet.dev/traefik", {module: f"v{version}"}, replaces=TRAEFIK_REPLACES, excludes=TRAEFIK_EXCLUDES
        )
        go(["build", "-ldflags", f"-s -w -X {module}/pkg/version.Version=v{version}", "-o", str(target),
            f"{module}/cmd/traefik"], src)  # fmt: skip

    return _built_once(target, f"building Traefik v{version} (cold: about 8 minutes on 2 cores)", build, out)


def metrics_server_binary(version: str = METRICS_SERVER_VERSION) -> Path:
    return CACHE_ROOT / "metrics" / f"metrics-server-{version}" / "bin" / "metrics-server"


def ensure_metrics_server(version: str = METRICS_SERVER_VERSION, out: TextIO = sys.stderr) -> Path:
    """metrics-server, built from its Go module with the version stamp its Makefile sets."""
    target = metrics_server_binary(version)
    if target.is_file():
        return target
    pkg = "k8s.io/client-go/pkg/version"  # as its Makefile stamps it
    with progress(f"building metrics-server v{version} (cold: about 3 minutes on 2 cores)", out):
        target.parent.mkdir(parents=True, exist_ok=True)
        go(["install", "-trimpath", "-ldflags", f"-s -w -X {pkg}.gitVersion=v{version}",
            f"sigs.k8s.io/metrics-server/cmd/metrics-server@v{version}"], target.parent,
           {"GOBIN": str(target.parent), "CGO_ENABLED": "0"})  # fmt: skip
    return target


# kstatus as Flux and Argo CD compute it: a JSON array of objects on stdin, a JSON array of
# {status, message, conditions} on stdout, in the same order.
KSTATUS_MAIN = """package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type result struct {
	Status     string             `json:"status"`
	Message    string             `json:"message"`
	Conditions []status.Condition `json:"conditions"`
}

func main() {
	raw, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kstatus: reading stdin:", err)
		os.Exit(2)
	}
	// numbers as int64 where they are integers, as the API machinery reads them
	var objs []interface{}
	if err := utiljson.Unmarshal(raw, &objs); err != nil {
		fmt.Fprintln(os.Stderr, "kstatus: stdin must be a JSON array of Kubernetes objects:", err)
		os.Exit(2)
	}
	out := make([]result, 0, len(objs))
	for i, item := range objs {
		obj, ok := item.(map[string]interface{})
		if !ok {
			fmt.Fprintf(os.Stderr, "kstatus: object %d is not a JSON object\\n", i)
			os.Exit(2)
		}
		res, err := status.Compute(&unstructured.Unstructured{Object: obj})
		if err != nil {
			fmt.Fprintf(os.Stderr, "kstatus: object %d: %v\\n", i, err)
			os.Exit(1)
		}
		out = append(out, result{string(res.Status), res.Message, res.Conditions})
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, "kstatus: writing stdout:", err)
		os.Exit(1)
	}
}
"""


def kstatus_binary(version: str = KSTATUS_VERSION) -> Path:
    # keyed by the program too, so a change to it is built, not served from the cache
    main = hashlib.sha256(KSTATUS_MAIN.encode()).hexdigest()[:8]
    return CACHE_ROOT / "kstatus" / f"cli-utils-{version}-{main}" / "bin" / "kstatus"


def ensure_kstatus(version: str = KSTATUS_VERSION, out: TextIO = sys.stderr) -> Path:
    """A kstatus checker built from sigs.k8s.io/cli-utils (test tooling: what GitOps tools see)."""
    target = kstatus_binary(version)

    def build(src: Path) -> None:
        wrapper(src, "wsfleet.dev/kstatus", {"sigs.k8s.io/cli-utils": f"v{version}"}, mains={"kstatus": KSTATUS_MAIN})
        go(["build", "-ldflags", "-s -w", "-o", str(target), "./cmd/kstatus"], src)

    what = f"building the kstatus checker from sigs.k8s.io/cli-utils v{version} (cold: about 1 minute)"
    return _built_once(target, what, build, out)


def helm_binary(version: str = HELM_VERSION) -> Path:
    return CACHE_ROOT / "helm" / f"helm-{version}" / "bin" / "helm"


def ensure_helm(version: str = HELM_VERSION, out: TextIO = sys.stderr) -> Path:
    """helm, built from its Go module with the version stamp its Makefile sets (the chart's tests)."""
    target = helm_binary(version)
    module = "helm.sh/helm/v4"

    def build(src: Path) -> None:
        wrapper(src, "wsfleet.dev/helm", {module: f"v{version}"})
        go(["build", "-ldflags", f"-s -w -X {module}/internal/version.version=v{version}", "-o", str(target),
            f"{module}/cmd/helm"], src)  # fmt: skip

    return _built_once(target, f"building helm v{version} (cold: about 2 minutes on 2 cores)", build, out)


def module_dir(module: str, version: str, work: Path) -> Path:
    """Where the Go module cache holds `module@version` (downloaded if it is not there)."""
    work.mkdir(parents=True, exist_ok=True)
    return Path(json.loads(go(["mod", "download", "-json", f"{module}@v{version}"], work))["Dir"])


def ensure_binaries(versions: Versions = Versions(), out: TextIO = sys.stderr) -> Path:
    """Build whatever control-plane binary is missing from the cache; return the bin directory."""
    bindir = bin_dir(versions)

    def build(todo: list[str]) -> None:
        if k8s := [n for n in todo if n in K8S_COMPONENTS]:
            _build_kubernetes(versions, k8s, bindir, out)
        if "etcd" in todo:
            _build_etcd(versions, bindir, out)
        if "kwok" in todo:
            _build_kwok(versions, bindir, out)

    return _ensure("control plane", bindir, CONTROL_PLANE, build, out)


def ensure_runc(versions: Versions = Versions(), out: TextIO = sys.stderr) -> Path:
    """runc, which the nodes' containerd and the image builds (buildah, podman) both run."""
    target = node_bin_dir(versions) / "runc"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        _build_runc(versions.runc, target, out)
    return target


def ensure_node_binaries(versions: Versions = Versions(), out: TextIO = sys.stderr) -> Path:
    """Build whatever a real node needs and the cache lacks; return the bin directory."""
    bindir = node_bin_dir(versions)

    def build(todo: list[str]) -> None:
        if k8s := [n for n in todo if n in K8S_COMPONENTS]:
            _build_kubernetes(versions, k8s, bindir, out)
        if ctrd := [n for n in todo if n in CONTAINERD_COMMANDS]:
            _build_containerd(versions, ctrd, bindir, out)
        if "runc" in todo:
            ensure_runc(versions, out)
        if "pause" in todo:
            _build_pause(bindir, out)
        if "coredns" in todo:
            _build_coredns(versions, bindir, out)

    return _ensure("node", bindir, NODE, build, out)
