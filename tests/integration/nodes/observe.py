"""What the real kubelet did to the fleet's pods, seen from outside: the API server's watch of the
pods (each change stamped with the time it arrived) and each pod's log (`kubectl logs -f`), from
which the measured drain timeline of every pod that went is read.

| timeline field   | from                                                                      |
|------------------|---------------------------------------------------------------------------|
| prestop_to_term  | the workload's `unready` record (trigger preStop) to its `signal SIGTERM` |
| term_to_done     | `signal SIGTERM` to the drain's `done`                                    |
| deleted_s        | deletionTimestamp first seen to the pod's DELETED event (the watch's time) |
| exit             | the last exit code the kubelet reported for the workload container        |
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from tests.integration.conftest import BIN, Kubectl


def _env(kubectl: Kubectl) -> dict[str, str]:
    return {**os.environ, "KUBECONFIG": str(kubectl.kubeconfig)}


class PodWatch(threading.Thread):
    """`kubectl get pods -w --output-watch-events -o json`, decoded as it streams."""

    def __init__(self, kubectl: Kubectl, namespace: str, selector: str) -> None:
        super().__init__(daemon=True)
        argv = [str(BIN / "kubectl"), "-n", namespace, "get", "pods", "-l", selector, "-w", "--output-watch-events",
                "-o", "json"]  # fmt: skip
        self.proc = subprocess.Popen(argv, env=_env(kubectl), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.seen: list[tuple[float, str, dict[str, Any]]] = []  # (wall time, ADDED/MODIFIED/DELETED, pod)
        self._lock = threading.Lock()

    def run(self) -> None:
        assert self.proc.stdout is not None
        decoder, buf = json.JSONDecoder(), ""
        while chunk := os.read(self.proc.stdout.fileno(), 65536):
            buf += chunk.decode(errors="replace")
            while True:
                buf = buf.lstrip()
                try:
                    obj, end = decoder.raw_decode(buf)
                except json.JSONDecodeError:
                    break
                buf = buf[end:]
                with self._lock:
                    self.seen.append((time.time(), obj["type"], obj["object"]))

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.join(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def events(self) -> list[tuple[float, str, dict[str, Any]]]:
        with self._lock:
            return list(self.seen)

    def history(self, pod: str) -> list[tuple[float, str, dict[str, Any]]]:
        return [e for e in self.events() if e[2]["metadata"]["name"] == pod]


class LogTail:
    """`kubectl logs -f` of one pod into a file (the pod's log is gone once the pod is)."""

    def __init__(self, kubectl: Kubectl, namespace: str, pod: str, workdir: Path) -> None:
        self.path = workdir / f"{pod}.log"
        with self.path.open("wb") as out:
            self.proc = subprocess.Popen([str(BIN / "kubectl"), "-n", namespace, "logs", "-f", pod], env=_env(kubectl),
                                         stdout=out, stderr=subprocess.STDOUT)  # fmt: skip

    def records(self) -> list[dict[str, Any]]:
        out = []
        for line in self.path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(10)


def _ts(record: dict[str, Any]) -> float:
    return dt.datetime.fromisoformat(record["timestamp"]).timestamp()


def exit_codes(history: list[tuple[float, str, dict[str, Any]]], container: str) -> list[int]:
    """Every exit of `container` the kubelet reported (its last state and its state), in order."""
    exits: dict[tuple[str, int], None] = {}  # (finishedAt, exit code), insertion-ordered
    for _, _, pod in history:
        for cs in (pod.get("status") or {}).get("containerStatuses", []):
            if cs["name"] == container:
                for state in (cs.get("lastState") or {}, cs.get("state") or {}):
                    if term := state.get("terminated"):
                        exits[(str(term.get("finishedAt")), int(term["exitCode"]))] = None
    return [code for _, code in exits]


def timeline(watch: PodWatch, tail: LogTail | None, pod: str, container: str = "workload") -> dict[str, Any]:
    """The measured shutdown of `pod`: see the module's table (None where it did not happen)."""
    history = watch.history(pod)
    records = tail.records() if tail else []
    unready = next((r for r in records if r.get("event") == "drain" and r.get("phase") == "unready"), None)
    term = next((r for r in records if str(r.get("message", "")).startswith("signal SIGTERM")), None)
    done = next((r for r in records if r.get("event") == "drain" and r.get("phase") == "done"), None)
    asked = next((t for t, _, p in history if p["metadata"].get("deletionTimestamp")), None)
    deleted = next((t for t, kind, _ in history if kind == "DELETED"), None)
    codes = exit_codes(history, container)
    return {
        "pod": pod,
        "node": next((p["spec"].get("nodeName") for _, _, p in reversed(history)), None),
        "trigger": unready.get("trigger") if unready else None,
        "phases": [r["phase"] for r in records if r.get("event") == "drain"],
        "prestop_to_term": round(_ts(term) - _ts(unready), 1) if term and unready else None,
        "term_to_done": round(_ts(done) - _ts(term), 1) if done and term else None,
        "deleted_s": round(deleted - asked, 1) if deleted and asked else None,
        "exit": codes[-1] if codes else None,
    }
