"""The real-node tier: dev clusters whose nodes are real kubelets with containerd (root only)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import ROOT
from wsfleet_devcluster import builds, controlplane, node


@contextmanager
def two_real_nodes(directory: Path) -> Iterator[controlplane.DevCluster]:
    """A dev cluster in `directory` with two real nodes (and the Gateway, metrics-server), from the
    binaries and images built or cached; down at the end."""
    builds.ensure_binaries(out=sys.stderr)
    dc = controlplane.DevCluster(directory)
    dc.real = node.RealNodes.build(2, ROOT, sys.stderr)
    dc.up(out=sys.stderr, nodes=0)
    try:
        yield dc
    finally:
        dc.down()
