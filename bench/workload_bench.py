"""Workload benchmark: the wsfleet workload against a plain Node socket.io 4.8 server, side by side.

Both servers are driven by the same load generator (bench/node/loadgen.mjs: raw WebSockets
speaking just enough Engine.IO / Socket.IO, one Node process), one server process each, on
loopback. The wsfleet workload runs as deployed: the environment of the ConfigMap the operator
renders for the default spec (replay offsets, presence, metrics, drain, JSON logs all on), one
redis-server beside it. Only the handshake rate limits are raised (to 1,000,000/s), or the
connect storm would measure the limiter; the limiter still runs on every handshake.

For each size N and each run, servers alternate (which goes first alternates too), each started
fresh:
  memory per idle connection  (RSS after N idle connections - RSS before) / N; for wsfleet the
                              workload plus redis-server (it holds their sessions and presence)
  accept rate                 N clients connect at once: N / time until all are connected and joined
  broadcast p50 / p99         a publisher emits every 100 ms with its send time; every client
                              records receipt - send time (one process, one clock)
  throughput                  deliveries per second with `window` publishes kept in flight
  CPU per 1k deliveries       server CPU time (utime + stime; wsfleet: workload + redis-server)
                              over the throughput window, per 1000 deliveries

Every figure is the median over the runs; every ratio is wsfleet / Node within a run, then the
median of those ratios. Run: `python bench/workload_bench.py [--sizes 1000,5000,10000 --runs 3]`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
NODE_DIR = ROOT / "bench" / "node"
sys.path.insert(0, str(ROOT))

from tests.support.processes import Redis, Workload, free_port  # noqa: E402
from tests.unit.strategies import resource  # noqa: E402

from wsfleet_operator.render import render_all  # noqa: E402
from wsfleet_operator.validation import parse_and_check  # noqa: E402

ROOM = "bench"
CLK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def say(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def rss(pid: int) -> int:
    """Resident set size in bytes."""
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE


def cpu(pid: int) -> float:
    """CPU seconds (user + system) the process used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def npm_install() -> None:
    stamp = NODE_DIR / "node_modules" / ".installed"
    lock = (NODE_DIR / "package-lock.json").read_bytes()
    if stamp.exists() and stamp.read_bytes() == lock:
        return
    say("npm ci in bench/node (the reference server and the load generator; test-only)")
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True)
    stamp.write_bytes(lock)


class Target:
    """One server under test: started fresh, measured through its processes' /proc entries."""

    name = ""
    url = ""

    def start(self, workdir: Path) -> None: ...
    def stop(self) -> None: ...
    def pids(self) -> list[int]:
        return []


class NodeServer(Target):
    name = "node"

    def start(self, workdir: Path) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.log = (workdir / "node-server.log").open("ab")
        self.proc = subprocess.Popen(
            ["node", str(NODE_DIR / "reference-server.mjs"), str(port)], stdout=subprocess.PIPE, stderr=self.log
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert json.loads(line)["ready"], line

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()

    def pids(self) -> list[int]:
        return [self.proc.pid]


class WsfleetServer(Target):
    name = "wsfleet"

    def __init__(self) -> None:
        spec = {"limits": {"handshakesPerSecond": 1_000_000, "handshakesPerSecondPerIp": 1_000_000}}
        wss = parse_and_check(resource(spec, name="bench"), "bench spec")
        self.env: dict[str, str] = next(m for m in render_all(wss) if m["kind"] == "ConfigMap")["data"]

    def start(self, workdir: Path) -> None:
        self.redis = Redis(workdir)
        self.redis.start()
        self.workload = Workload("bench", self.redis.url, workdir, base_env=self.env).start()
        self.url = self.workload.url

    def stop(self) -> None:
        self.workload.stop()
        self.redis.stop()

    def pids(self) -> list[int]:
        assert self.workload.proc is not None
        assert self.redis.proc is not None
        return [self.workload.proc.pid, self.redis.proc.pid]


def _expect(stream: IO[str], key: str, timeout: float = 600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            raise RuntimeError(f"load generator ended before {key!r}")
        doc: dict[str, Any] = json.loads(line)
        if key in doc:
            return doc
    raise TimeoutError(key)


def measure(target: Target, n: int, args: argparse.Namespace, workdir: Path) -> dict[str, float]:
    target.start(workdir)
    try:
        time.sleep(1.0)  # let start-up allocations settle
        before = sum(rss(p) for p in target.pids())
        job = {"label": f"{target.name} {n}", "url": target.url, "clients": n, "room": ROOM,
               "broadcasts": args.broadcasts, "intervalMs": 100, "throughputSeconds": args.throughput_seconds,
               "window": args.window}  # fmt: skip
        gen = subprocess.Popen(
            ["node", str(NODE_DIR / "loadgen.mjs"), json.dumps(job)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert gen.stdout is not None
        assert gen.stdin is not None
        _expect(gen.stdout, "connected")
        time.sleep(2.0)  # idle: what N open connections hold
        after = sum(rss(p) for p in target.pids())
        gen.stdin.write("go\n")
        gen.stdin.flush()
        _expect(gen.stdout, "throughput_start")
        cpu0 = sum(cpu(p) for p in target.pids())
        _expect(gen.stdout, "throughput_end")
        cpu1 = sum(cpu(p) for p in target.pids())
        result = _expect(gen.stdout, "result")["result"]
        gen.wait(30)
        if result["broadcast_deliveries"] < result["broadcast_expected"]:
            say(
                f"{target.name} {n}: {result['broadcast_expected'] - result['broadcast_deliveries']} broadcast deliveries missing"
            )
        return {
            "kb_per_connection": (after - before) / n / 1024,
            "accept_per_second": result["accept_rate"],
            "p50_ms": result["p50_ms"],
            "p99_ms": result["p99_ms"],
            "deliveries_per_second": result["deliveries_per_second"],
            "cpu_ms_per_1k": (cpu1 - cpu0) * 1000 / max(1, result["throughput_deliveries"]) * 1000,
            "delivered_fraction": result["broadcast_deliveries"] / result["broadcast_expected"],
        }
    finally:
        target.stop()


FIGURES = [
    ("kb_per_connection", "memory per idle connection (KB)", "lower"),
    ("accept_per_second", "accept rate, connect storm (/s)", "higher"),
    ("p50_ms", "broadcast p50 (ms)", "lower"),
    ("p99_ms", "broadcast p99 (ms)", "lower"),
    ("deliveries_per_second", "throughput (deliveries/s)", "higher"),
    ("cpu_ms_per_1k", "CPU per 1k deliveries (ms)", "lower"),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,5000,10000", help="client counts (default 1000,5000,10000)")
    ap.add_argument("--runs", type=int, default=3, help="runs per size; figures are medians (default 3)")
    ap.add_argument("--broadcasts", type=int, default=20, help="broadcasts 100 ms apart (default 20)")
    ap.add_argument("--throughput-seconds", type=float, default=5.0, help="throughput window (default 5)")
    ap.add_argument("--window", type=int, default=4, help="publishes in flight in the throughput phase")
    ap.add_argument("--json", default=None, help="also write every figure to this file")
    args = ap.parse_args()
    for tool in ("node", "npm", "redis-server"):
        if shutil.which(tool) is None:
            print(f"bench: {tool} is not installed", file=sys.stderr)
            return 2
    npm_install()
    sizes = [int(s) for s in args.sizes.split(",")]
    targets: list[Target] = [NodeServer(), WsfleetServer()]
    raw: dict[str, dict[str, list[dict[str, float]]]] = {str(n): {t.name: [] for t in targets} for n in sizes}
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="wsfleet-bench-") as tmp:
        for n in sizes:
            for run in range(args.runs):
                order = targets if run % 2 == 0 else targets[::-1]
                for t in order:
                    say(f"N={n} run {run + 1}/{args.runs}: {t.name}")
                    workdir = Path(tmp) / f"{t.name}-{n}-{run}"
                    workdir.mkdir()
                    try:
                        raw[str(n)][t.name].append(measure(t, n, args, workdir))
                    except (RuntimeError, TimeoutError) as e:  # reported as a failed run, not hidden
                        say(f"N={n} {t.name}: run failed: {e}")
                        failures.append(f"N={n} {t.name} run {run + 1}: {e}")
    print(report(raw, sizes, args))
    for f in failures:
        print(f"FAILED {f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "runs": raw, "failures": failures}, indent=1) + "\n")
    return 1 if failures else 0


def report(raw: dict[str, dict[str, list[dict[str, float]]]], sizes: list[int], args: argparse.Namespace) -> str:
    lines = [f"wsfleet workload vs Node socket.io 4.8.4, medians of {args.runs} runs; ratio = wsfleet / node "
             "(median of per-run ratios)", ""]  # fmt: skip
    for n in sizes:
        lines += [f"N = {n}", "| figure | wsfleet | node | ratio | better when |", "|---|---|---|---|---|"]
        runs = raw[str(n)]
        if not runs["wsfleet"] or not runs["node"]:
            lines += ["| (no complete run for both servers) | | | | |", ""]
            continue
        for key, label, better in FIGURES:
            w = statistics.median(r[key] for r in runs["wsfleet"])
            nd = statistics.median(r[key] for r in runs["node"])
            pairs = zip(runs["wsfleet"], runs["node"], strict=False)
            ratio = statistics.median(a[key] / b[key] for a, b in pairs if b[key])
            lines.append(f"| {label} | {w:.1f} | {nd:.1f} | {ratio:.2f}x | {better} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
