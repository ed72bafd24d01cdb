"""The contract between the operator and the bundled workload.

The operator renders a ConfigMap, probes, a preStop hook and monitoring rules
for the workload; the workload reads that ConfigMap and serves those endpoints
and metrics. Both sides import the names from this one module, so a rename on
one side breaks the other side's tests instead of a production rollout.

This module is pure data: it imports nothing from either package.
"""

from __future__ import annotations

from typing import Final

# --- Ports -----------------------------------------------------------------
DEFAULT_PORT: Final = 3001
# Metrics live on their own port so a NetworkPolicy can expose them to the
# monitoring namespace only, never to the load balancer.
DEFAULT_METRICS_PORT: Final = 9464
PORT_NAME: Final = "http"
METRICS_PORT_NAME: Final = "metrics"

# --- HTTP endpoints --------------------------------------------------------
SOCKETIO_PATH: Final = "/socket.io/"
READY_PATH: Final = "/health/ready"  # 503 while draining or while the Redis listener is dead
LIVE_PATH: Final = "/health/live"  # event loop responsive; never touches Redis
STARTUP_PATH: Final = "/health/startup"  # startup progress
DATABASE_PATH: Final = "/health/database"  # Redis PING + listener liveness
METRICS_PATH: Final = "/metrics"
PUBLISH_PATH: Final = "/api/v1/publish"
# The preStop hook calls this: the pod turns unready at once, and the request is
# answered only after PRESTOP_SECONDS, so the kubelet sends SIGTERM after the
# load balancer has had time to deregister the pod.
PRESTOP_PATH: Final = "/lifecycle/prestop"

# Endpoints whose answer depends on Redis. Liveness must never be one of them:
# a Redis outage must make pods unready, not restart the whole fleet.
REDIS_DEPENDENT_PATHS: Final = frozenset({READY_PATH, DATABASE_PATH})

# --- Environment variables (set through the rendered ConfigMap) -------------
ENV_PORT: Final = "WSFLEET_PORT"
ENV_METRICS_PORT: Final = "WSFLEET_METRICS_PORT"
ENV_PING_INTERVAL: Final = "WSFLEET_PING_INTERVAL_SECONDS"
ENV_PING_TIMEOUT: Final = "WSFLEET_PING_TIMEOUT_SECONDS"
ENV_TRANSPORTS: Final = "WSFLEET_TRANSPORTS"  # comma-separated: websocket,polling
ENV_PRESTOP_SECONDS: Final = "WSFLEET_PRESTOP_SECONDS"
ENV_DRAIN_SECONDS: Final = "WSFLEET_DRAIN_SECONDS"
# how long an idle HTTP connection stays open: longer than the load balancer keeps its pooled ones
ENV_HTTP_KEEPALIVE: Final = "WSFLEET_HTTP_KEEPALIVE_SECONDS"
ENV_REPLAY_TTL: Final = "WSFLEET_REPLAY_TTL_SECONDS"
ENV_REPLAY_MAX_MESSAGES: Final = "WSFLEET_REPLAY_MAX_MESSAGES"
ENV_PRESENCE_ENABLED: Final = "WSFLEET_PRESENCE_ENABLED"
ENV_PRESENCE_DIFF_MS: Final = "WSFLEET_PRESENCE_DIFF_MS"  # presence changes are sent at most this often per room
ENV_PRESENCE_DIFF_MAX_MEMBERS: Final = "WSFLEET_PRESENCE_DIFF_MAX_MEMBERS"  # changes listed per diff; above: counts
ENV_CORS_ALLOW_ORIGINS: Final = "WSFLEET_CORS_ALLOW_ORIGINS"  # comma-separated
ENV_MAX_PAYLOAD_BYTES: Final = "WSFLEET_MAX_PAYLOAD_BYTES"
ENV_HANDSHAKES_PER_SECOND: Final = "WSFLEET_HANDSHAKES_PER_SECOND"  # per pod, all clients
ENV_HANDSHAKES_PER_SECOND_PER_IP: Final = "WSFLEET_HANDSHAKES_PER_SECOND_PER_IP"
ENV_SEND_QUEUE_MESSAGES: Final = "WSFLEET_SEND_QUEUE_MESSAGES"  # slow-consumer cutoff
# Workload-only knobs (the operator does not set them): listen address and log level.
ENV_HOST: Final = "WSFLEET_HOST"
ENV_LOG_LEVEL: Final = "WSFLEET_LOG_LEVEL"
ENV_LOG_FORMAT: Final = "WSFLEET_LOG_FORMAT"  # json (default) or text for local development
ENV_FAST_PATH: Final = "WSFLEET_FAST_PATH"  # on (default) or off: stock python-engineio and uvicorn
# Prefix of every Redis key and channel; the operator sets wsfleet:<namespace>/<name> so that
# several fleets can share one Redis.
ENV_KEY_PREFIX: Final = "WSFLEET_KEY_PREFIX"
ENV_PRESENCE_TTL: Final = "WSFLEET_PRESENCE_TTL_SECONDS"  # a crashed pod's presence entries vanish after this
ENV_TRUSTED_PROXIES: Final = "WSFLEET_TRUSTED_PROXIES"  # comma-separated IPs/CIDRs whose X-Forwarded-For is believed
ENV_JWT_ALGORITHM: Final = "WSFLEET_JWT_ALGORITHM"  # HS256 | RS256; unset: no token needed
ENV_JWT_ISSUER: Final = "WSFLEET_JWT_ISSUER"
ENV_JWT_AUDIENCE: Final = "WSFLEET_JWT_AUDIENCE"
ENV_JWT_ROOMS_CLAIM: Final = "WSFLEET_JWT_ROOMS_CLAIM"  # claim listing the room patterns a token may join
# Set from Secrets through secretKeyRef, never through the ConfigMap.
ENV_REDIS_URL: Final = "WSFLEET_REDIS_URL"
ENV_PUBLISH_API_KEY: Final = "WSFLEET_PUBLISH_API_KEY"
ENV_JWT_KEY: Final = "WSFLEET_JWT_KEY"  # HS256 secret or RS256 public key (PEM)
# Set from the downward API.
ENV_POD_NAME: Final = "WSFLEET_POD_NAME"
ENV_POD_NAMESPACE: Final = "WSFLEET_POD_NAMESPACE"
ENV_NODE_NAME: Final = "WSFLEET_NODE_NAME"

# --- Prometheus metric names -----------------------------------------------
METRIC_CONNECTIONS: Final = "wsfleet_connections"  # gauge
METRIC_CONNECTS: Final = "wsfleet_connects_total"  # counter
METRIC_DISCONNECTS: Final = "wsfleet_disconnects_total"  # counter, label: reason
METRIC_HEARTBEAT_TIMEOUTS: Final = "wsfleet_heartbeat_timeouts_total"  # counter
METRIC_HEALTH_CHECKS: Final = "wsfleet_health_checks_total"  # counter, labels: endpoint, result
METRIC_MESSAGES_IN: Final = "wsfleet_messages_in_total"
METRIC_MESSAGES_OUT: Final = "wsfleet_messages_out_total"
METRIC_REPLAY: Final = "wsfleet_replay_total"  # counter, label: result=hit|miss
METRIC_DRAIN_SECONDS: Final = "wsfleet_drain_duration_seconds"
METRIC_REDIS_ERRORS: Final = "wsfleet_redis_errors_total"
METRIC_HANDSHAKE_REJECTIONS: Final = "wsfleet_handshake_rejections_total"  # label: reason
METRIC_REJECTED: Final = "wsfleet_requests_rejected_total"  # labels: request, reason
METRIC_SLOW_CONSUMERS: Final = "wsfleet_slow_consumer_disconnects_total"
METRIC_DRAINING: Final = "wsfleet_draining"  # gauge: 1 while this pod drains
METRIC_LISTENER_UP: Final = "wsfleet_redis_listener_up"  # gauge
METRIC_FAST_PATH: Final = "wsfleet_fast_path"  # gauge: 1 while the fast path runs (fastpath/)
# gauge, labels library, installed, expected: 1 per library whose version turned the fast path off
METRIC_FAST_PATH_MISMATCH: Final = "wsfleet_fast_path_version_mismatch"
METRIC_GC_BURSTS: Final = "wsfleet_gc_bursts_total"  # counter: bursts the garbage collector paused for

# --- Socket.IO protocol (namespace "/") --------------------------------------
# Handshake auth:  {"token"?: JWT, "session"?: str, "rooms"?: {room: {"epoch": str, "offset": int}}}
# Client -> server: join {room} · leave {room} · publish {room, data} · presence {room}   (all acked)
# Server -> client:
EVENT_SESSION: Final = "session"  # {session, pod, recovered, rooms: {room: {recovered, epoch, offset}}}
EVENT_MESSAGE: Final = "message"  # {room, epoch, offset, data}
# {room, joins: [{client, user}], leaves: [{client, user}]}: the room's membership changes of one
# interval (WSFLEET_PRESENCE_DIFF_MS), one event per member per interval whatever the churn; with
# more changes than WSFLEET_PRESENCE_DIFF_MAX_MEMBERS: {room, joins: [], leaves: [], joined: int,
# left: int, truncated: true} (a client keeping a member list calls presence again)
EVENT_PRESENCE_DIFF: Final = "presence_diff"
EVENT_GAP: Final = "gap"  # {room, epoch, offset, reason}: history could not be filled; resync
EVENT_SHUTDOWN: Final = "server_shutdown"  # {reconnectAfterMs, pod}
EVENT_BAD_REQUEST: Final = "bad_request"  # {error, packet}: a packet the server could not decode
