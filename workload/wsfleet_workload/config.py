"""The workload's settings, read once from an environment mapping.

The operator renders these variables into a ConfigMap (and Secrets for the Redis URL, the
publish API key and the JWT key); their names live in :mod:`wsfleet_common.contract`.
``Config.from_environ`` takes any mapping, so tests never touch ``os.environ``, and every
error names the variable and the value it refused.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qs, unquote

from wsfleet_common import contract as c
from wsfleet_common.logs import FORMATS, LogFormat

Transport = Literal["websocket", "polling"]


class ConfigError(ValueError):
    """A variable the workload cannot run with; the message names it and its value."""


@dataclass(frozen=True)
class Jwt:
    algorithm: Literal["HS256", "RS256"]
    key: str = field(repr=False)  # a secret: never printed
    issuer: str | None = None
    audience: str | None = None
    rooms_claim: str = "rooms"


SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")


@dataclass(frozen=True)
class Sentinel:
    """A Sentinel-managed Redis, from
    ``redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/service[/db][?sentinel_password=...]``
    (``rediss+sentinel://`` for TLS to both the Sentinels and the primary). The password is the
    primary's; the Sentinels' own comes from ``sentinel_password`` if they need one."""

    hosts: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    tls: bool = False
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    sentinel_password: str | None = field(default=None, repr=False)


def parse_sentinel(url: str) -> Sentinel:
    """Parse a Sentinel URL. Errors name the part that is wrong, never a password."""
    var = c.ENV_REDIS_URL
    scheme, _, rest = url.partition("://")
    rest, _, query = rest.partition("?")
    userinfo, at, location = rest.rpartition("@")
    if not at:
        userinfo, location = "", rest
    hostlist, _, path = location.partition("/")
    hosts = []
    for item in hostlist.split(","):
        host, colon, port = item.rpartition(":") if item.count(":") == 1 or item.startswith("[") else (item, "", "")
        host = host.strip("[]")
        if not host:
            raise ConfigError(f"{var}: Sentinel address {item!r} has no host")
        try:
            hosts.append((host, int(port) if colon else 26379))
        except ValueError:
            raise ConfigError(f"{var}: Sentinel address {item!r}: port {port!r} is not a number") from None
    parts = [p for p in path.split("/") if p]
    if not parts or len(parts) > 2:
        raise ConfigError(f"{var}: a Sentinel URL needs /<service name>[/<db>] after the hosts, got {path!r}")
    try:
        db = int(parts[1]) if len(parts) == 2 else 0
    except ValueError:
        raise ConfigError(f"{var}: database {parts[1]!r} is not a number") from None
    params = {k: v[-1] for k, v in parse_qs(query).items()}
    unknown = set(params) - {"sentinel_password"}
    if unknown:
        raise ConfigError(f"{var}: unknown Sentinel URL parameter(s) {sorted(unknown)}")
    user, _, password = userinfo.partition(":")
    return Sentinel(
        hosts=tuple(hosts),
        service=parts[0],
        db=db,
        tls=scheme == "rediss+sentinel",
        username=unquote(user) or None,
        password=unquote(password) or None,
        sentinel_password=params.get("sentinel_password") or None,
    )


@dataclass(frozen=True)
class Config:
    port: int = c.DEFAULT_PORT
    metrics_port: int = c.DEFAULT_METRICS_PORT
    host: str = "0.0.0.0"  # a pod listens on its own IP
    # Engine.IO defaults; the operator sends the spec's heartbeat.
    ping_interval: int = 25
    ping_timeout: int = 20
    transports: tuple[Transport, ...] = ("websocket", "polling")
    # 10 s covers the default readiness probe (2 failures x 3 s) and one period for the LB to follow (I3).
    prestop_seconds: int = 10
    drain_seconds: int = 30
    # An idle HTTP connection (a load balancer's pooled one) stays open this long: longer than the
    # load balancer keeps it, so the LB, never the pod, closes it; else a request the LB sends as the
    # pod closes gets a 502. The operator derives it per load balancer; this default outlasts
    # Envoy's 1 h upstream idle timeout, the longest we know.
    http_keepalive: int = 3630
    replay_ttl: int = 300
    replay_max_messages: int = 500
    presence_enabled: bool = True
    # 30 s = 3 presence heartbeats (every ttl/3): a crashed pod's members vanish within it.
    presence_ttl: int = 30
    # Membership changes of a room go out as one presence_diff per member every 250 ms at most: a
    # reconnect storm of N clients costs each member a few events, not N (N joins to N members).
    presence_diff_ms: int = 250
    # ... listing at most 100 changes (about 6 KB); a storm's diff carries counts instead: N joins
    # listed to N members were N squared bytes (1.5 GB for 5000 clients rejoining one room).
    presence_diff_max_members: int = 100
    cors_allow_origins: tuple[str, ...] = ()
    max_payload_bytes: int = 1_000_000
    # A storm guard, not a throughput cap: 200 handshakes/s lets a pod take 6000 clients in 30 s.
    handshakes_per_second: int = 200
    handshakes_per_second_per_ip: int = 20
    # 1000 queued packets is ~10 s of a busy room; a client that far behind is cut off and recovers by replay.
    send_queue_messages: int = 1000
    trusted_proxies: tuple[str, ...] = ("127.0.0.1",)
    key_prefix: str = "wsfleet"
    redis_url: str = field(default="redis://127.0.0.1:6379/0", repr=False)
    publish_api_key: str | None = field(default=None, repr=False)
    jwt: Jwt | None = None
    pod_name: str = field(default_factory=socket.gethostname)
    namespace: str = "default"
    node_name: str = ""
    log_format: LogFormat = "json"
    log_level: str = "INFO"
    # The fast path (fastpath/): on unless switched off, or unless a library's version differs.
    fast_path: bool = True

    @property
    def sentinel(self) -> Sentinel | None:
        """The Sentinel setup when redis_url is a Sentinel URL; None for a plain redis(s):// URL."""
        return parse_sentinel(self.redis_url) if self.redis_url.split("://", 1)[0] in SENTINEL_SCHEMES else None

    @property
    def heartbeat_window(self) -> int:
        return self.ping_interval + self.ping_timeout

    @classmethod
    def from_environ(cls, env: Mapping[str, str]) -> Config:
        r = _Reader(env)
        d = cls()
        transports = r.csv(c.ENV_TRANSPORTS, d.transports)
        for t in transports:
            if t not in ("websocket", "polling"):
                raise ConfigError(f"{c.ENV_TRANSPORTS}={env[c.ENV_TRANSPORTS]!r}: unknown transport {t!r}")
        if not transports:
            raise ConfigError(f"{c.ENV_TRANSPORTS}={env.get(c.ENV_TRANSPORTS)!r}: needs at least one transport")
        proxies = r.csv(c.ENV_TRUSTED_PROXIES, d.trusted_proxies)
        for p in proxies:
            if p != "*":
                try:
                    ipaddress.ip_network(p, strict=False)
                except ValueError:
                    raise ConfigError(f"{c.ENV_TRUSTED_PROXIES}: {p!r} is not an IP address or CIDR") from None
        cfg = cls(
            port=r.int(c.ENV_PORT, d.port, 1, 65535),
            metrics_port=r.int(c.ENV_METRICS_PORT, d.metrics_port, 0, 65535),
            host=env.get(c.ENV_HOST, d.host),
            ping_interval=r.int(c.ENV_PING_INTERVAL, d.ping_interval, 1, 3600),
            ping_timeout=r.int(c.ENV_PING_TIMEOUT, d.ping_timeout, 1, 3600),
            transports=tuple(transports),  # type: ignore[arg-type]
            prestop_seconds=r.int(c.ENV_PRESTOP_SECONDS, d.prestop_seconds, 0, 3600),
            drain_seconds=r.int(c.ENV_DRAIN_SECONDS, d.drain_seconds, 0, 3600),
            http_keepalive=r.int(c.ENV_HTTP_KEEPALIVE, d.http_keepalive, 1, 86400),
            replay_ttl=r.int(c.ENV_REPLAY_TTL, d.replay_ttl, 1, 30 * 86400),
            replay_max_messages=r.int(c.ENV_REPLAY_MAX_MESSAGES, d.replay_max_messages, 1, 10_000_000),
            presence_enabled=r.bool(c.ENV_PRESENCE_ENABLED, d.presence_enabled),
            presence_ttl=r.int(c.ENV_PRESENCE_TTL, d.presence_ttl, 3, 86400),
            presence_diff_ms=r.int(c.ENV_PRESENCE_DIFF_MS, d.presence_diff_ms, 10, 60_000),
            presence_diff_max_members=r.int(c.ENV_PRESENCE_DIFF_MAX_MEMBERS, d.presence_diff_max_members, 1, 10_000),
            cors_allow_origins=tuple(r.csv(c.ENV_CORS_ALLOW_ORIGINS, d.cors_allow_origins)),
            max_payload_bytes=r.int(c.ENV_MAX_PAYLOAD_BYTES, d.max_payload_bytes, 1024, 100_000_000),
            handshakes_per_second=r.int(c.ENV_HANDSHAKES_PER_SECOND, d.handshakes_per_second, 1, 1_000_000),
            handshakes_per_second_per_ip=r.int(
                c.ENV_HANDSHAKES_PER_SECOND_PER_IP, d.handshakes_per_second_per_ip, 1, 1_000_000
            ),
            send_queue_messages=r.int(c.ENV_SEND_QUEUE_MESSAGES, d.send_queue_messages, 1, 1_000_000),
            trusted_proxies=tuple(proxies),
            key_prefix=r.key_prefix(d.key_prefix),
            redis_url=r.redis_url(d.redis_url),
            publish_api_key=env.get(c.ENV_PUBLISH_API_KEY) or None,
            jwt=_jwt(env),
            pod_name=env.get(c.ENV_POD_NAME) or d.pod_name,
            namespace=env.get(c.ENV_POD_NAMESPACE) or d.namespace,
            node_name=env.get(c.ENV_NODE_NAME, ""),
            log_format=r.choice(c.ENV_LOG_FORMAT, d.log_format, FORMATS),  # type: ignore[arg-type]
            log_level=r.choice(c.ENV_LOG_LEVEL, d.log_level, ("DEBUG", "INFO", "WARNING", "ERROR")),
            fast_path=r.choice(c.ENV_FAST_PATH, "on" if d.fast_path else "off", ("on", "off")) == "on",
        )
        if cfg.metrics_port == cfg.port:
            raise ConfigError(f"{c.ENV_METRICS_PORT}={cfg.metrics_port}: must differ from {c.ENV_PORT}={cfg.port}")
        return cfg


def _jwt(env: Mapping[str, str]) -> Jwt | None:
    algorithm = env.get(c.ENV_JWT_ALGORITHM, "")
    key = env.get(c.ENV_JWT_KEY, "")
    if not algorithm:
        if key:
            raise ConfigError(f"{c.ENV_JWT_KEY} is set but {c.ENV_JWT_ALGORITHM} is not (HS256 or RS256)")
        return None
    if algorithm not in ("HS256", "RS256"):
        raise ConfigError(f"{c.ENV_JWT_ALGORITHM}={algorithm!r}: must be HS256 or RS256")
    if not key:
        raise ConfigError(f"{c.ENV_JWT_ALGORITHM}={algorithm} needs {c.ENV_JWT_KEY} (from a Secret)")
    if algorithm == "HS256" and len(key.encode()) < 32:
        # RFC 7518 3.2: the key must be at least as long as the hash output.
        raise ConfigError(f"{c.ENV_JWT_KEY}: an HS256 key needs at least 32 bytes, got {len(key.encode())}")
    if algorithm == "RS256" and "BEGIN PUBLIC KEY" not in key:
        raise ConfigError(f"{c.ENV_JWT_KEY}: RS256 needs a PEM public key (-----BEGIN PUBLIC KEY-----)")
    return Jwt(
        algorithm=algorithm,  # type: ignore[arg-type]
        key=key,
        issuer=env.get(c.ENV_JWT_ISSUER) or None,
        audience=env.get(c.ENV_JWT_AUDIENCE) or None,
        rooms_claim=env.get(c.ENV_JWT_ROOMS_CLAIM) or "rooms",
    )


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def int(self, key: str, default: int, lo: int, hi: int) -> int:
        raw = self.env.get(key)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{key}={raw!r}: not a whole number") from None
        if not lo <= value <= hi:
            raise ConfigError(f"{key}={value}: must be between {lo} and {hi}")
        return value

    def bool(self, key: str, default: bool) -> bool:
        raw = self.env.get(key)
        if raw is None or raw == "":
            return default
        if raw.lower() in ("true", "1", "yes"):
            return True
        if raw.lower() in ("false", "0", "no"):
            return False
        raise ConfigError(f"{key}={raw!r}: expected true or false")

    def csv(self, key: str, default: tuple[str, ...]) -> list[str]:
        raw = self.env.get(key)
        if raw is None:
            return list(default)
        return [p.strip() for p in raw.split(",") if p.strip()]

    def key_prefix(self, default: str) -> str:
        raw = self.env.get(c.ENV_KEY_PREFIX) or default
        if len(raw) > 200 or any(ch in raw for ch in "{} \t\n"):
            raise ConfigError(f"{c.ENV_KEY_PREFIX}={raw!r}: at most 200 characters, no braces or whitespace")
        return raw

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        raw = self.env.get(name) or default
        if raw not in allowed:
            raise ConfigError(f"{name}={raw!r}: must be one of {', '.join(allowed)}")
        return raw

    def redis_url(self, default: str) -> str:
        raw = self.env.get(c.ENV_REDIS_URL) or default
        scheme = raw.split("://", 1)[0] if "://" in raw else ""
        if scheme in SENTINEL_SCHEMES:
            parse_sentinel(raw)  # refuse a malformed one now, naming the part (never the password)
        elif scheme not in ("redis", "rediss", "unix"):
            # Never echo the URL: it may carry a password.
            raise ConfigError(
                f"{c.ENV_REDIS_URL}: scheme {scheme!r} is not redis://, rediss://, unix://, "
                "redis+sentinel:// or rediss+sentinel://"
            )
        return raw
