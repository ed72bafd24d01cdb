"""Operator benchmark: the operator against the floor, side by side in one run.

The floor is what a perfect operator could do: `kubectl apply --server-side` of the
same rendered manifests, then waiting for the same readiness (every pod of the
Deployment updated and ready). Both use the same cluster, namespace layout and
readiness poll, and are interleaved item by item so that noise hits both alike.

Figures:
- apply -> Ready latency, p50 and p99 over N resources (operator and floor);
- the time to reconcile M resources from a cold start (operator started after they
  exist) against one kubectl apply of all their manifests;
- API writes per reconcile during the cold start, and writes during a no-op resync;
- the operator's RSS with M resources.

Resources use autoscaling off and one replica, so the numbers measure the operator,
not the HPA's 15 s sync period. Run: `python bench/operator_bench.py [--n 50 --m 200]`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.integration.conftest import STAND_INS, Kubectl, Operator, stand_in_crd  # noqa: E402

from wsfleet_devcluster import builds, controlplane  # noqa: E402
from wsfleet_operator.render import render_all  # noqa: E402
from wsfleet_operator.validation import parse_and_check  # noqa: E402


def spec_for(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "wsfleet.dev/v1alpha1",
        "kind": "WebSocketService",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": {"min": 1, "max": 1},
            "disruption": {"minAvailable": 0},
            "autoscaling": {"enabled": False},
            "loadBalancer": {"provider": "nginx", "host": f"{name}.example.com"},
        },
    }


class Bench:
    def __init__(self, dc: controlplane.DevCluster) -> None:
        self.dc = dc
        configuration = k8s.Configuration()
        k8s_config.load_kube_config(config_file=str(dc.kubeconfig), client_configuration=configuration)
        api = k8s.ApiClient(configuration)
        self.apps = k8s.AppsV1Api(api)
        self.custom = k8s.CustomObjectsApi(api)
        self.core = k8s.CoreV1Api(api)

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        return Kubectl(self.dc.kubeconfig)(*args, stdin=stdin).stdout

    def namespace(self, name: str) -> None:
        self.core.create_namespace({"metadata": {"name": name}})
        self.core.create_namespaced_secret(
            name, {"metadata": {"name": "wsfleet-redis"}, "stringData": {"url": "redis://r"}}
        )

    def wss_ready(self, name: str, ns: str) -> bool:
        obj = self.custom.get_namespaced_custom_object("wsfleet.dev", "v1alpha1", ns, "websocketservices", name)
        return any(
            c["type"] == "Ready" and c["status"] == "True" for c in (obj.get("status") or {}).get("conditions", [])
        )

    def deployment_ready(self, name: str, ns: str) -> bool:
        try:
            d = self.apps.read_namespaced_deployment_status(name, ns)
        except k8s.ApiException:
            return False
        s, want = d.status, d.spec.replicas or 0
        return bool(
            (s.observed_generation or 0) >= (d.metadata.generation or 0)
            and (s.updated_replicas or 0) == want
            and (s.ready_replicas or 0) == want
            and (s.available_replicas or 0) == want
        )

    def ready_wss(self, ns: str) -> int:
        items = self.custom.list_namespaced_custom_object("wsfleet.dev", "v1alpha1", ns, "websocketservices")["items"]
        return sum(
            any(c["type"] == "Ready" and c["status"] == "True" for c in (o.get("status") or {}).get("conditions", []))
            for o in items
        )

    def ready_deployments(self, ns: str) -> int:
        return sum(
            (d.status.ready_replicas or 0) == (d.spec.replicas or 0) == (d.status.updated_replicas or 0) > 0
            for d in self.apps.list_namespaced_deployment(ns).items
        )

    @staticmethod
    def wait(predicate: Any, timeout: float = 120.0, interval: float = 0.05) -> float:
        start = time.monotonic()
        while not predicate():
            if time.monotonic() - start > timeout:
                raise TimeoutError("timed out")
            time.sleep(0.05)
        return time.monotonic() - start


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(n: int, m: int, out: Any) -> dict[str, Any]:
    builds.ensure_binaries(out=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        dc = controlplane.DevCluster(Path(tmp))
        # 10 fake nodes x 110 pods: room for all 500 pods of the run (3 nodes would leave the floor Pending).
        dc.up(out=sys.stderr, nodes=10)
        try:
            b = Bench(dc)
            b.kubectl("apply", "--server-side", "-k", str(ROOT / "crds"))
            b.kubectl(
                "apply", "--server-side", "-f", "-", stdin=yaml.safe_dump_all([stand_in_crd(*a) for a in STAND_INS])
            )
            b.kubectl("wait", "--for=condition=Established", "crd", "--all")
            b.namespace("op")
            b.namespace("floor")
            op = Operator(dc.kubeconfig, Path(tmp) / "operator.log", resync=30.0, verbose=False)
            op.start()

            # 1. apply -> Ready, interleaved. Item 0 is a warm-up for both sides and not counted:
            # kopf answers /healthz before its watches have listed, so the first apply after a
            # start measures operator start-up (about 8 s here), not apply latency.
            lat_op, lat_floor = [], []
            for i in range(n + 1):
                doc = spec_for(f"lat-{i}", "op")
                start = time.monotonic()
                b.kubectl("apply", "--server-side", "-f", "-", stdin=yaml.safe_dump(doc))
                b.wait(lambda d=doc: b.wss_ready(d["metadata"]["name"], "op"))
                lat_op.append(time.monotonic() - start)

                fdoc = spec_for(f"lat-{i}", "floor")
                manifests = render_all(parse_and_check(fdoc))
                start = time.monotonic()
                b.kubectl(
                    "apply", "--server-side", "--field-manager=floor", "-f", "-", stdin=yaml.safe_dump_all(manifests)
                )
                b.wait(lambda name=f"lat-{i}": b.deployment_ready(name, "floor"))
                lat_floor.append(time.monotonic() - start)
                out.write(f"\r   apply->Ready {i}/{n}")
                out.flush()
            out.write("\n")
            warmup = (lat_op.pop(0), lat_floor.pop(0))

            # 2. Cold start: M resources exist before the operator starts.
            op.stop()
            b.namespace("cold")
            b.namespace("coldfloor")
            docs = [spec_for(f"cold-{i}", "cold") for i in range(m)]
            b.kubectl("apply", "--server-side", "-f", "-", stdin=yaml.safe_dump_all(docs))
            start = time.monotonic()
            op.start()
            b.wait(lambda: b.ready_wss("cold") == m, timeout=900, interval=0.5)
            cold_op = time.monotonic() - start
            writes_cold = op.writes()
            rss_peak_mb = _rss_mb(op)

            floor_docs = [spec_for(f"cold-{i}", "coldfloor") for i in range(m)]
            manifests = [mf for d in floor_docs for mf in render_all(parse_and_check(d))]
            start = time.monotonic()
            b.kubectl("apply", "--server-side", "--field-manager=floor", "-f", "-", stdin=yaml.safe_dump_all(manifests))
            b.wait(lambda: b.ready_deployments("coldfloor") == m, timeout=900, interval=0.5)
            cold_floor = time.monotonic() - start

            # 3. A no-op resync: everything is in line, nothing may be written.
            settle = op.writes()
            time.sleep(35)  # > one 30 s resync of all M resources
            noop_writes = op.writes() - settle
            rss_steady_mb = _rss_mb(op)
            op.stop()
        finally:
            dc.down()
    return {
        "n": n,
        "m": m,
        "latencies_op": lat_op,
        "latencies_floor": lat_floor,
        "latency_op_p50": statistics.median(lat_op),
        "latency_op_p99": pct(lat_op, 0.99),
        "latency_floor_p50": statistics.median(lat_floor),
        "latency_floor_p99": pct(lat_floor, 0.99),
        "cold_op": cold_op,
        "cold_floor": cold_floor,
        "writes_per_reconcile": writes_cold / m,
        "noop_resync_writes": noop_writes,
        "rss_peak_mb": rss_peak_mb,
        "rss_steady_mb": rss_steady_mb,
        "warmup_op": warmup[0],
        "warmup_floor": warmup[1],
    }


def _rss_mb(op: Operator) -> float:
    """Resident memory of the operator process (the wsfleet console script is that process)."""
    assert op.proc is not None
    for line in Path(f"/proc/{op.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {op.proc.pid}")


def report(r: dict[str, Any]) -> str:
    rows = [
        ("apply->Ready p50 (s)", r["latency_op_p50"], r["latency_floor_p50"]),
        ("apply->Ready p99 (s)", r["latency_op_p99"], r["latency_floor_p99"]),
        (f"cold start, {r['m']} resources (s)", r["cold_op"], r["cold_floor"]),
    ]
    lines = [
        "| Figure | operator | floor (kubectl apply --server-side) | ratio |",
        "|---|---|---|---|",
        *[f"| {name} | {a:.2f} | {b:.2f} | {a / b:.2f}x |" for name, a, b in rows],
        f"| API writes per reconcile (cold start) | {r['writes_per_reconcile']:.2f} | | |",
        f"| writes during a no-op resync of {r['m']} resources | {r['noop_resync_writes']:.0f} | | |",
        f"| operator RSS right after the cold start of {r['m']} (MB) | {r['rss_peak_mb']:.0f} | | |",
        f"| operator RSS with {r['m']} resources, after a resync (MB) | {r['rss_steady_mb']:.0f} | | |",
        f"| warm-up apply->Ready, not counted (s) | {r['warmup_op']:.2f} | {r['warmup_floor']:.2f} | |",
    ]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=50, help="resources for the latency figures")
    p.add_argument("--m", type=int, default=200, help="resources for the cold start")
    p.add_argument("--json", type=Path, help="also write the raw figures here")
    args = p.parse_args()
    result = run(args.n, args.m, sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    print(report(result))


if __name__ == "__main__":
    main()
