"""The operator and the workload agree: every variable the workload reads is rendered by the
operator (or is a documented workload-only knob), and what the operator renders parses in the
workload's own Config with the spec's numbers."""

from __future__ import annotations

from typing import Any

from tests.conftest import ROOT
from tests.unit.strategies import resource
from wsfleet_common import contract as c
from wsfleet_operator.render import render_all
from wsfleet_operator.timeouts import derive
from wsfleet_operator.validation import parse_and_check
from wsfleet_workload.config import Config

WORKLOAD_ONLY = {c.ENV_PRESENCE_TTL, c.ENV_HOST, c.ENV_LOG_LEVEL, c.ENV_LOG_FORMAT}
SPEC: dict[str, Any] = {
    "publish": {"apiKeySecret": {"name": "api", "key": "key"}},
    "auth": {"jwt": {"algorithm": "HS256", "keySecret": {"name": "jwt", "key": "hs256"}, "issuer": "https://id",
                     "audience": "chat"}},
    "heartbeat": {"interval": "20s", "timeout": "15s"},
    "limits": {"handshakesPerSecond": 150, "trustedProxies": ["10.0.0.0/8"]},
    "presence": {"diffIntervalMs": 400, "diffMaxMembers": 30},
}  # fmt: skip
SECRETS = {("api", "key"): "publish-key", ("jwt", "hs256"): "s" * 40, ("wsfleet-redis", "url"): "redis://r:6379/0"}


def _env() -> tuple[dict[str, str], Any]:
    wss = parse_and_check(resource(SPEC), "test")
    manifests = {m["kind"]: m for m in render_all(wss)}
    env = dict(manifests["ConfigMap"]["data"])
    container = manifests["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    for e in container["env"]:
        ref = e.get("valueFrom", {})
        if "secretKeyRef" in ref:
            env[e["name"]] = SECRETS[(ref["secretKeyRef"]["name"], ref["secretKeyRef"]["key"])]
        elif "fieldRef" in ref:
            env[e["name"]] = "from-the-downward-api"
    return env, wss


def test_every_workload_variable_is_rendered() -> None:
    env, _ = _env()
    declared = {v for k, v in vars(c).items() if k.startswith("ENV_")}
    assert declared - WORKLOAD_ONLY == set(env), "rendered vs declared"


def test_secrets_come_from_secret_refs_never_from_the_configmap() -> None:
    wss = parse_and_check(resource(SPEC), "test")
    data = next(m for m in render_all(wss) if m["kind"] == "ConfigMap")["data"]
    for secret in (c.ENV_REDIS_URL, c.ENV_PUBLISH_API_KEY, c.ENV_JWT_KEY):
        assert secret not in data


def test_the_workload_accepts_what_the_operator_renders() -> None:
    env, wss = _env()
    cfg = Config.from_environ(env)
    t = derive(wss.spec)
    assert (cfg.ping_interval, cfg.ping_timeout) == (20, 15)
    assert (cfg.prestop_seconds, cfg.drain_seconds, cfg.replay_ttl) == (t.pre_stop, t.drain, t.replay_ttl)
    assert cfg.handshakes_per_second == 150
    assert cfg.trusted_proxies == ("10.0.0.0/8",)
    assert cfg.jwt is not None
    assert (cfg.jwt.algorithm, cfg.jwt.issuer, cfg.jwt.audience) == ("HS256", "https://id", "chat")
    assert cfg.publish_api_key == "publish-key"
    assert cfg.key_prefix == f"wsfleet:{wss.metadata.namespace}/{wss.metadata.name}"
    assert cfg.port == wss.spec.port
    assert (cfg.presence_diff_ms, cfg.presence_diff_max_members) == (400, 30)
    assert cfg.http_keepalive == t.keep_alive


def test_the_vendored_js_client_is_the_official_one() -> None:
    """workload/wsfleet_workload/static/socket.io.min.js is npm's socket.io-client dist file, unchanged."""
    vendored = ROOT / "workload" / "wsfleet_workload" / "static" / "socket.io.min.js"
    installed = ROOT / "tests" / "js" / "node_modules" / "socket.io-client" / "dist" / "socket.io.min.js"
    assert installed.exists(), "run `npm ci --prefix tests/js` (make test does)"
    assert vendored.read_bytes() == installed.read_bytes()
