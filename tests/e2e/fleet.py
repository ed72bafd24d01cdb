"""A local fleet configured from a WebSocketService spec through the operator's own code.

- The workload processes get the environment of the ConfigMap the operator renders for the spec
  (only the address, the pod name and the secrets differ per process, as they do per pod).
- HAProxy gets the configuration `wsfleet_operator.lbconf.haproxy` renders for the same spec:
  the derived idle timeout, the spec's affinity cookie, health checks on the readiness endpoint
  with the readiness probe's period and threshold.
- Pods are stopped on the operator's shutdown timeline: the preStop hook (GET, answered after
  preStop), then SIGTERM, then SIGKILL if still alive at terminationGracePeriod.

Every pod slot (zone x generation) is declared in HAProxy up front, disabled; a pod that starts
is enabled through HAProxy's runtime API once ready, as an endpoint appears once its pod exists.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from tests.support.processes import HAProxy, Redis, Workload, free_port, http, wait_for
from tests.unit.strategies import resource
from wsfleet_common import contract as c
from wsfleet_operator.lbconf import Backend, haproxy
from wsfleet_operator.render import render_all
from wsfleet_operator.timeouts import derive
from wsfleet_operator.validation import parse_and_check, parse_resource

GENERATIONS = 3  # slots per zone: the first pod and two replacements


class Fleet:
    def __init__(
        self,
        workdir: Path,
        spec: dict[str, Any],
        zones: tuple[str, ...] = ("a", "b", "c"),
        per_zone: int = 1,
        checked: bool = True,
    ) -> None:
        self.per_zone = per_zone
        self.workdir = workdir
        # checked=False builds a fleet the operator would refuse, to show what the rule prevents
        doc = resource(spec, name="fleet")
        self.wss = parse_and_check(doc, "e2e spec") if checked else parse_resource(doc)
        self.t = derive(self.wss.spec)
        self.env: dict[str, str] = next(m for m in render_all(self.wss) if m["kind"] == "ConfigMap")["data"]
        self.redis = Redis(workdir)
        self.zones = zones
        self.slots: dict[str, Workload] = {}
        for zone in zones:
            for gen in range(GENERATIONS):
                name = f"{zone}{gen}"
                self.slots[name] = Workload(name, "", workdir, base_env=self.env, env={c.ENV_NODE_NAME: f"node-{zone}"})
        self.lb_port = free_port()
        self.socket = workdir / "haproxy.sock"
        backends = [Backend(name, "127.0.0.1", w.port) for name, w in self.slots.items()]
        config = haproxy(self.wss.spec, backends, bind=f"127.0.0.1:{self.lb_port}", stats_socket=str(self.socket),
                         disabled=frozenset(self.slots))  # fmt: skip
        self.lb = HAProxy(workdir, [], config=config, port=self.lb_port)
        self.running: list[str] = []

    @property
    def url(self) -> str:
        return self.lb.url

    def zone_of(self, pod: str) -> str:
        return pod[0]

    def start(self) -> Fleet:
        self.redis.start()
        for w in self.slots.values():
            w.redis_url = self.redis.url
        self.lb.start()
        for zone in self.zones:
            for gen in range(self.per_zone):
                self._start(f"{zone}{gen}")
        return self

    def _start(self, name: str) -> None:
        """The pod starts; once ready it becomes an endpoint: enabled in HAProxy, which then
        health-checks it up (rise 1) before sending it anything."""
        self.slots[name].start()
        self.running.append(name)
        self.admin(f"enable server fleet/{name}")
        wait_for(lambda: self.server_state(name) == "UP", 3 * self.t.readiness_period + 5, f"HAProxy sees {name} up")

    def admin(self, command: str) -> str:
        """One command on HAProxy's runtime API (the stats socket)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(str(self.socket))
            s.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def server_state(self, name: str) -> str:
        # "show stat" CSV: pxname,svname,...,status(17th field)
        for row in self.admin("show stat").splitlines():
            fields = row.split(",")
            if len(fields) > 17 and fields[0] == "fleet" and fields[1] == name:
                return fields[17]
        return ""

    def terminate(self, name: str) -> dict[str, Any]:
        """The kubelet's sequence: preStop hook, SIGTERM when it answers, SIGKILL at the grace period."""
        w = self.slots[name]
        started = time.monotonic()
        answered: dict[str, Any] = {}
        hook = threading.Thread(target=lambda: answered.update(r=http("GET", w.url + c.PRESTOP_PATH,
                                                                        timeout=self.t.grace)))  # fmt: skip
        hook.start()
        hook.join(self.t.grace)
        w.signal(signal.SIGTERM)
        left = self.t.grace - (time.monotonic() - started)
        killed = False
        try:
            code = w.wait(max(0.1, left))
        except subprocess.TimeoutExpired:
            w.signal(signal.SIGKILL)
            code, killed = w.wait(5), True
        self.running.remove(name)
        done = w.events(event="drain", phase="done")
        return {
            "pod": name,
            "exit": code,
            "killed": killed,
            "prestop_status": answered.get("r", (0,))[0],
            "seconds": round(time.monotonic() - started, 2),
            "drain_seconds": float(done[0]["seconds"]) if done else None,
        }

    def replacement(self, name: str) -> str:
        return f"{name[0]}{int(name[1:]) + 1}"

    def roll(self) -> list[dict[str, Any]]:
        """A rolling update with maxSurge 1, maxUnavailable 0: the new pod is ready before the old one goes."""
        results = []
        for old in list(self.running):
            new = self.replacement(old)
            self._start(new)
            results.append(self.terminate(old))
        return results

    def kill(self, name: str) -> None:
        self.slots[name].signal(signal.SIGKILL)
        self.slots[name].wait(5)
        self.running.remove(name)

    def close(self) -> None:
        self.lb.stop()
        for w in self.slots.values():
            w.stop()
        self.redis.stop()
