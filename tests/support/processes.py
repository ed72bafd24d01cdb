"""Real processes for the workload tests: redis-server, workload processes, HAProxy, and the
official JS socket.io-client (through Node). Each helper starts a process on a free loopback
port, waits until it answers, keeps its output in a log file, and stops it on teardown.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ROOT
from tests.support.secrets import API_KEY, REDIS_PASSWORD
from wsfleet_common import contract as c
from wsfleet_devcluster import lending

JS = ROOT / "tests" / "js"


free_port = lending.free_port  # outside the ephemeral range: see lending.PORT_RANGE


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except (OSError, ValueError) as e:
            last = e
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what} (last: {last!r})")


def http(
    method: str, url: str, body: Any = None, headers: dict[str, str] | None = None, timeout: float = 10
) -> tuple[int, dict[str, str], Any]:
    data = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else body
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
            status, hdrs = r.status, dict(r.headers)
    except urllib.error.HTTPError as e:
        raw, status, hdrs = e.read(), e.code, dict(e.headers)
    try:
        return status, hdrs, json.loads(raw) if raw else None
    except ValueError:
        return status, hdrs, raw.decode(errors="replace")


class Redis:
    """redis-server from Debian, no persistence: a restart loses everything, like a failover
    to a replica that had not caught up. Password-protected, as production Redis is: the URL
    carries the password, and no log of the suite may show it (tests/conftest.py)."""

    def __init__(self, workdir: Path, *extra: str) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"redis://:{REDIS_PASSWORD}@127.0.0.1:{self.port}/0"
        self.extra = extra  # more redis-server options (--replicaof ..., --masterauth ...)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        exe = shutil.which("redis-server")
        assert exe, "redis-server is not installed (.ci/run installs the Debian package redis-server)"
        with open(self.workdir / f"redis-{self.port}.log", "ab") as log:
            self.proc = subprocess.Popen(
                [
                    exe,
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--requirepass",
                    REDIS_PASSWORD,
                    "--dir",  # a replica's full sync writes an RDB file even with --save ""
                    str(self.workdir),
                    *self.extra,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(lambda: _tcp_ok(self.port), 10, f"redis-server on :{self.port}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def cli(self, *args: str) -> str:
        out = subprocess.run(
            ["redis-cli", "-p", str(self.port), "--no-auth-warning", "-a", REDIS_PASSWORD, *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        return out.stdout.strip()


def tls_files(workdir: Path) -> dict[str, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 (PEM files in workdir)."""
    import datetime as dt  # noqa: PLC0415 - only the TLS tests need these
    import ipaddress  # noqa: PLC0415

    from cryptography import x509  # noqa: PLC0415
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
    from cryptography.x509.oid import NameOID  # noqa: PLC0415

    now = dt.datetime.now(dt.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wsfleet test CA")])

    def build(subject: x509.Name, public: ec.EllipticCurvePublicKey, serial: int) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder().subject_name(subject).issuer_name(ca_name).public_key(public)
            .serial_number(serial).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
        )  # fmt: skip

    ca = build(ca_name, ca_key.public_key(), 1).add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
    server = build(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "redis")]), key.public_key(), 2).add_extension(
        x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
    )
    files = {"ca": workdir / "ca.pem", "cert": workdir / "redis-cert.pem", "key": workdir / "redis-key.pem"}
    files["ca"].write_bytes(ca.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    files["cert"].write_bytes(server.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    files["key"].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return files


class Sentinel:
    """redis-server in Sentinel mode (what Debian's redis-sentinel package runs), watching one
    primary as service `wsfleet`; it fails over 1 s after the primary stops answering."""

    SERVICE = "wsfleet"

    def __init__(self, workdir: Path, primary: Redis) -> None:
        self.workdir, self.port = workdir, free_port()
        self.conf = workdir / f"sentinel-{self.port}.conf"  # Sentinel rewrites its own config
        self.conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {workdir}\n"
            f"sentinel monitor {self.SERVICE} 127.0.0.1 {primary.port} 1\n"
            f"sentinel auth-pass {self.SERVICE} {REDIS_PASSWORD}\n"
            f"sentinel down-after-milliseconds {self.SERVICE} 1000\n"
            f"sentinel failover-timeout {self.SERVICE} 10000\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis+sentinel://:{REDIS_PASSWORD}@127.0.0.1:{self.port}/{self.SERVICE}/0"

    def start(self) -> Sentinel:
        exe = shutil.which("redis-server")
        assert exe, "redis-server is not installed (.ci/run installs the Debian package redis-server)"
        with open(self.workdir / f"sentinel-{self.port}.log", "ab") as log:
            self.proc = subprocess.Popen([exe, str(self.conf), "--sentinel"], stdout=log, stderr=subprocess.STDOUT)
        wait_for(lambda: _tcp_ok(self.port), 10, f"redis sentinel on :{self.port}")
        return self

    def primary_port(self) -> int:
        out = subprocess.run(
            ["redis-cli", "-p", str(self.port), "SENTINEL", "get-master-addr-by-name", self.SERVICE],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.split()  # fmt: skip
        return int(out[1])

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None


def _tcp_ok(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Workload:
    """One `python -m wsfleet_workload` process."""

    name: str
    redis_url: str
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    # The rendered ConfigMap (e2e); without it, the time-scaled defaults below.
    base_env: dict[str, str] | None = None
    port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"workload-{self.name}.log"

    def start(self, wait_ready: bool = True) -> Workload:
        defaults = {
            c.ENV_PING_INTERVAL: "2",
            c.ENV_PING_TIMEOUT: "2",
            c.ENV_PRESTOP_SECONDS: "1",
            c.ENV_DRAIN_SECONDS: "3",
            c.ENV_PRESENCE_TTL: "3",
            c.ENV_KEY_PREFIX: "wsfleet:test",
        }
        env = {
            "PATH": os.environ.get("PATH", ""),
            **(defaults if self.base_env is None else self.base_env),
            # the suite's choice of path (make test runs the workload tier on both)
            **({c.ENV_FAST_PATH: os.environ[c.ENV_FAST_PATH]} if c.ENV_FAST_PATH in os.environ else {}),
            # what differs per pod: its address (here a port), its name, its secrets
            c.ENV_PORT: str(self.port),
            c.ENV_METRICS_PORT: str(self.metrics_port),
            c.ENV_REDIS_URL: self.redis_url,
            c.ENV_POD_NAME: self.name,
            c.ENV_PUBLISH_API_KEY: API_KEY,
            c.ENV_HOST: "127.0.0.1",
            **self.env,
        }
        with open(self.log_path, "ab") as log:
            self.proc = self.spawn(env, log)
        if wait_ready:
            wait_for(lambda: self.get(c.READY_PATH)[0] == 200, 20, f"workload {self.name} ready ({self.log_path})")
        return self

    def spawn(self, env: dict[str, str], log: IO[bytes]) -> subprocess.Popen[bytes]:
        # the installed console script: the workload image's entry point
        exe = str(Path(sys.executable).parent / "wsfleet-workload")
        return subprocess.Popen([exe], env=env, stdout=log, stderr=subprocess.STDOUT)

    def get(self, path: str) -> tuple[int, Any]:
        status, _, body = http("GET", self.url + path, timeout=5)
        return status, body

    def publish(self, room: str, data: Any) -> dict[str, Any]:
        status, _, body = http(
            "POST", self.url + c.PUBLISH_PATH, {"room": room, "data": data}, {"Authorization": f"Bearer {API_KEY}"}
        )
        assert status == 200, (status, body)
        return body["results"][0]  # type: ignore[no-any-return]

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            return r.read().decode()  # type: ignore[no-any-return]

    def metric(self, name: str, **labels: str) -> float:
        """The sum of the samples called `name` whose labels include `labels`."""
        total = 0.0
        for family in text_string_to_metric_families(self.metrics()):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    total += sample.value
        return total

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def events(self, **match: Any) -> list[dict[str, Any]]:
        """The process's log lines, parsed: each one must be a JSON object with the fixed fields
        (the workload logs JSON by default). Only those whose fields equal `match`."""
        out = []
        for n, line in enumerate(self.log().splitlines(), 1):
            try:
                doc = json.loads(line)
            except ValueError:
                raise AssertionError(f"{self.log_path}:{n}: not a JSON log line: {line[:200]!r}") from None
            assert isinstance(doc, dict), f"{self.log_path}:{n}: {line[:200]!r}"
            missing = {"timestamp", "level", "component", "logger", "message"} - set(doc)
            assert not missing, f"{self.log_path}:{n}: no {sorted(missing)} in {line[:200]!r}"
            if all(doc.get(k) == v for k, v in match.items()):
                out.append(doc)
        return out

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@dataclass
class ContainerWorkload(Workload):
    """The workload image run by podman the way the Deployment runs it: as the image's user, root
    filesystem read-only with /tmp the only writable path, every capability dropped, no new
    privileges. On the host's network (loopback), so the tests reach it as they reach a process.
    `podman run` stays in the foreground and passes signals on to the container, so SIGTERM and
    the exit code mean what they mean for a process."""

    image: str = ""
    tool_env: dict[str, str] = field(default_factory=dict)  # podman's: images.tool_env()

    @property
    def container(self) -> str:
        return f"wsfleet-test-{self.name}-{self.port}"

    def spawn(self, env: dict[str, str], log: IO[bytes]) -> subprocess.Popen[bytes]:
        inside = {k: v for k, v in env.items() if k != "PATH"}
        args = ["podman", "run", "--rm", "--name", self.container, "--network=host", "--read-only",
                "--read-only-tmpfs=false", "--tmpfs=/tmp", "--cap-drop=ALL", "--security-opt=no-new-privileges",
                # values from podman's own environment: no secret on a command line
                *[f"--env={k}" for k in sorted(inside)], self.image]  # fmt: skip
        return subprocess.Popen(args, env={**self.tool_env, **inside}, stdout=log, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        super().stop()
        subprocess.run(["podman", "rm", "--force", "--ignore", self.container], env=self.tool_env,
                       capture_output=True, timeout=60, check=False)  # fmt: skip


class HAProxy:
    """HAProxy from Debian in front of workload processes: round robin, readiness health checks
    every 200 ms, and a handshake refused with 503 (a draining pod) retried on another server."""

    def __init__(
        self,
        workdir: Path,
        backends: list[Workload],
        *,
        idle_timeout: str = "30s",
        config: str | None = None,
        port: int | None = None,
    ) -> None:
        self.workdir, self.backends, self.idle_timeout = workdir, backends, idle_timeout
        self.port = port or free_port()
        self.rendered = config  # a configuration rendered elsewhere (wsfleet_operator.lbconf), used as is
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> str:
        if self.rendered is not None:
            return self.rendered
        servers = "\n".join(
            f"    server {w.name} 127.0.0.1:{w.port} check inter 200ms fall 1 rise 2 cookie {w.name}"
            for w in self.backends
        )
        return f"""global
    log stdout format raw local0 info
defaults
    mode http
    log global
    option httplog
    timeout connect 2s
    timeout client {self.idle_timeout}
    timeout server {self.idle_timeout}
    timeout tunnel {self.idle_timeout}
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response 503
frontend fe
    bind 127.0.0.1:{self.port}
    # A POST is not idempotent: a pod killed after it published but before it answered gives an
    # empty response, and a retry on another pod would publish the message twice.
    http-request disable-l7-retry if METH_POST
    default_backend workloads
backend workloads
    balance roundrobin
    cookie wsfleet insert indirect nocache
    option httpchk GET {c.READY_PATH}
    http-check expect status 200
{servers}
"""

    def start(self) -> HAProxy:
        exe = shutil.which("haproxy") or "/usr/sbin/haproxy"
        assert Path(exe).exists(), "haproxy is not installed (.ci/run installs the Debian package haproxy)"
        cfg = self.workdir / f"haproxy-{self.port}.cfg"
        cfg.write_text(self.config())
        check = subprocess.run([exe, "-c", "-f", str(cfg)], capture_output=True, text=True, check=False)
        assert check.returncode == 0, check.stdout + check.stderr
        with open(self.workdir / f"haproxy-{self.port}.log", "ab") as log:
            self.proc = subprocess.Popen([exe, "-db", "-f", str(cfg)], stdout=log, stderr=subprocess.STDOUT)
        wait_for(lambda: _tcp_ok(self.port), 10, "haproxy listening")
        return self

    @property
    def log_path(self) -> Path:
        return self.workdir / f"haproxy-{self.port}.log"

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)


class JsonLines:
    """A file of JSON lines that another process appends to, read as it grows: each read parses
    only what was added since the last one (a line still being written waits for the next)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.items: list[dict[str, Any]] = []
        self._offset = 0

    def read(self) -> list[dict[str, Any]]:
        """Every JSON object line so far (other lines, such as a process's stderr, are skipped)."""
        if self.path.exists():
            with self.path.open("rb") as f:
                f.seek(self._offset)
                data = f.read()
            whole = data[: data.rfind(b"\n") + 1]
            self._offset += len(whole)
            self.items += [json.loads(x) for x in whole.splitlines() if x.startswith(b"{")]
        return self.items


class ClientFleet:
    """N Socket.IO clients in one process that write JSON lines (``ready``, ``connect_error``,
    and ``progress`` and ``summary`` when asked on stdin): the official JS socket.io-client
    (JsFleet) or python-socketio (PyFleet)."""

    def __init__(
        self, name: str, argv: list[str], workdir: Path, url: str, *, clients: int, rooms: list[str], transports: str
    ) -> None:
        self.out = workdir / f"{name}-{free_port()}.jsonl"
        args = ["--url", url, "--clients", str(clients), "--rooms", ",".join(rooms), "--transports", transports]
        with open(self.out, "wb") as out:
            self.proc = subprocess.Popen(
                argv + args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.PIPE, cwd=ROOT
            )
        self.clients = clients
        self._lines = JsonLines(self.out)

    def events(self) -> list[dict[str, Any]]:
        """Every event line so far. A test polls this while hundreds of clients write to it, and
        re-reading the whole file each time held the GIL long enough to starve the Python
        clients' event loop of their heartbeats: JsonLines reads only what is new."""
        return self._lines.read()

    def ready(self) -> int:
        return len({e["id"] for e in self.events() if e["ev"] == "ready"})

    def wait_ready(self, timeout: float = 30) -> None:
        wait_for(lambda: self.ready() >= self.clients, timeout, f"{self.clients} clients ready ({self.out})")

    def progress(self, timeout: float = 15) -> dict[str, Any]:
        """Connected sockets and, per room, the lowest last seq any of them holds, asked now."""
        assert self.proc.stdin is not None
        before = sum(1 for e in self.events() if e["ev"] == "progress")
        self.proc.stdin.write(b"progress\n")
        self.proc.stdin.flush()
        answers = wait_for(
            lambda: [e for e in self.events() if e["ev"] == "progress"][before:], timeout, f"progress from {self.out}"
        )
        return answers[0]  # type: ignore[no-any-return]

    def summary(self) -> list[dict[str, Any]]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"summary\n")
        self.proc.stdin.flush()
        # written before the clients close: a fleet slow to close them is stopped (kill) later
        found = wait_for(lambda: [e for e in self.events() if e["ev"] == "summary"], 30, f"the summary in {self.out}")
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(30)
        return found[-1]["clients"]  # type: ignore[no-any-return]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        if self.proc.stdin is not None:
            self.proc.stdin.close()


class JsFleet(ClientFleet):
    """N official socket.io-client sockets in one Node process (tests/js/fleet-client.mjs)."""

    def __init__(self, workdir: Path, url: str, clients: int, rooms: list[str], transports: str = "websocket") -> None:
        node = shutil.which("node")
        assert node, "node is not installed"
        assert (JS / "node_modules" / "socket.io-client").exists(), "run `npm ci` in tests/js (.ci/run does)"
        argv = [node, str(JS / "fleet-client.mjs")]
        super().__init__("js", argv, workdir, url, clients=clients, rooms=rooms, transports=transports)


class PyFleet(ClientFleet):
    """N python-socketio clients in one Python process (tests/support/pyfleet.py)."""

    def __init__(self, workdir: Path, url: str, clients: int, rooms: list[str], transports: str = "websocket") -> None:
        argv = [sys.executable, "-m", "tests.support.pyfleet"]
        super().__init__("py", argv, workdir, url, clients=clients, rooms=rooms, transports=transports)
