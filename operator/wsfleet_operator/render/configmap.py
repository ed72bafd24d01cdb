"""The workload's ConfigMap: every setting the workload reads, named by the shared contract."""

from __future__ import annotations

import hashlib
import json

from wsfleet_common import contract as c
from wsfleet_operator import naming
from wsfleet_operator.render.context import Context, Manifest


def data(ctx: Context) -> dict[str, str]:
    spec, t = ctx.spec, ctx.t
    return {
        c.ENV_PORT: str(spec.port),
        c.ENV_METRICS_PORT: str(spec.metrics_port),
        c.ENV_PING_INTERVAL: str(t.interval),
        c.ENV_PING_TIMEOUT: str(t.timeout),
        c.ENV_TRANSPORTS: ",".join(spec.transports),
        c.ENV_PRESTOP_SECONDS: str(t.pre_stop),
        c.ENV_DRAIN_SECONDS: str(t.drain),
        c.ENV_HTTP_KEEPALIVE: str(t.keep_alive),
        c.ENV_REPLAY_TTL: str(t.replay_ttl),
        c.ENV_REPLAY_MAX_MESSAGES: str(spec.replay.max_messages),
        c.ENV_PRESENCE_ENABLED: "true" if spec.presence.enabled else "false",
        c.ENV_PRESENCE_DIFF_MS: str(spec.presence.diff_interval_ms),
        c.ENV_PRESENCE_DIFF_MAX_MEMBERS: str(spec.presence.diff_max_members),
        c.ENV_CORS_ALLOW_ORIGINS: ",".join(spec.load_balancer.cors.allow_origins),
        c.ENV_MAX_PAYLOAD_BYTES: str(spec.max_payload_bytes),
        # several fleets may share one Redis: keys and channels are per resource
        c.ENV_KEY_PREFIX: f"wsfleet:{ctx.wss.metadata.namespace}/{ctx.wss.metadata.name}",
        c.ENV_HANDSHAKES_PER_SECOND: str(spec.limits.handshakes_per_second),
        c.ENV_HANDSHAKES_PER_SECOND_PER_IP: str(spec.limits.handshakes_per_second_per_ip),
        c.ENV_SEND_QUEUE_MESSAGES: str(spec.limits.send_queue_messages),
        c.ENV_TRUSTED_PROXIES: ",".join(spec.limits.trusted_proxies),
        c.ENV_FAST_PATH: "on" if spec.fast_path else "off",
        **_jwt(ctx),
    }


def _jwt(ctx: Context) -> dict[str, str]:
    jwt = ctx.spec.auth.jwt
    if jwt is None:
        return {}
    out = {c.ENV_JWT_ALGORITHM: jwt.algorithm, c.ENV_JWT_ROOMS_CLAIM: jwt.rooms_claim}
    if jwt.issuer:
        out[c.ENV_JWT_ISSUER] = jwt.issuer
    if jwt.audience:
        out[c.ENV_JWT_AUDIENCE] = jwt.audience
    return out


def checksum(ctx: Context) -> str:
    """sha256 of the ConfigMap data; a change rolls the pods."""
    return hashlib.sha256(json.dumps(data(ctx), sort_keys=True).encode()).hexdigest()


def render(ctx: Context) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": ctx.meta(naming.configmap_name(ctx.wss)),
        "data": data(ctx),
    }
