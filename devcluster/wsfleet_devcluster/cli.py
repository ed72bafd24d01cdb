"""``wsfleet dev-cluster``: the local cluster the tests and the demo run on.

    wsfleet dev-cluster build            build the control plane's, the real nodes' and the
                                         Gateway's binaries (cached by version)
    wsfleet dev-cluster up|down|status   start, stop or show the cluster in --dir
                [--real-nodes N] [--kwok-nodes M]
                                         up: N real nodes (kubelet, containerd, runc) in two zones,
                                         holding the images built from --source; M kwok nodes
    wsfleet dev-cluster demo [--source DIR]
                                         the fleet on two real nodes, installed as a user would
                                         (`make demo`; demo.py)
    wsfleet dev-cluster images [--source DIR] [--export DIR]
                                         build the operator and workload images with buildah

The operator's ``wsfleet`` command hands ``dev-cluster`` to this module when the
package is installed (a development install); the operator image does not carry it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from wsfleet_devcluster import builds, controlplane, demo, images, node

DEV_CLUSTER_DIR = Path.home() / ".cache" / "wsfleet" / "clusters" / "dev"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="wsfleet dev-cluster", description="a local cluster built from Go modules, on this machine only"
    )
    p.add_argument("action", choices=["build", "up", "down", "status", "images", "demo"])
    p.add_argument("--dir", default=str(DEV_CLUSTER_DIR), help=f"cluster directory (default: {DEV_CLUSTER_DIR})")
    p.add_argument("--source", default=".", help="images: the checkout holding the Dockerfiles (default: .)")
    p.add_argument("--export", default=None, metavar="DIR", help="images: also write each as an OCI archive in DIR")
    p.add_argument("--real-nodes", type=int, default=0, metavar="N", help="up: real nodes (default 0; at most 4)")
    p.add_argument("--kwok-nodes", type=int, default=None, metavar="M",
                   help="up: kwok's fake nodes (default 3, or 0 with real nodes)")  # fmt: skip
    return p


def run(args: argparse.Namespace, out: TextIO) -> int:
    if args.action == "images":
        tags = images.build_all(Path(args.source), out)
        if args.export:
            for tag in tags.values():
                out.write(f"{images.export(tag, Path(args.export))}\n")
        return 0
    dc = controlplane.DevCluster(Path(args.dir))
    if args.action == "demo":
        demo.run(dc, Path(args.source), out)
        return 0
    if args.action == "build":
        for path in (
            builds.ensure_binaries(out=out),
            builds.ensure_node_binaries(out=out),
            builds.ensure_traefik(out=out),
            builds.ensure_metrics_server(out=out),
            builds.ensure_kstatus(out=out),
            builds.ensure_helm(out=out),
        ):
            out.write(f"{path}\n")
    elif args.action == "up":
        builds.ensure_binaries(out=out)
        if args.real_nodes:
            dc.real = node.RealNodes.build(args.real_nodes, Path(args.source), out)
        kwok = args.kwok_nodes if args.kwok_nodes is not None else (0 if args.real_nodes else 3)
        dc.up(out=out, nodes=kwok)
    elif args.action == "down":
        dc.down()
        out.write(f"dev cluster in {dc.dir} stopped\n")
    else:
        state = dc.status()
        for name, alive in state.items():
            out.write(f"{name:<24} {'running' if alive else 'stopped'}\n")
        if not state:
            out.write(f"no dev cluster in {dc.dir}\n")
        return 0 if state and all(state.values()) else 1
    return 0


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    args = parser().parse_args(argv)
    try:
        return run(args, out)
    except RuntimeError as exc:  # BuildError, ClusterError, ImageError: they say what failed and where
        err.write(f"wsfleet dev-cluster: {exc}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
