"""What the workload does for clients: Redis, publishing, auth, limits, replay, presence."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from wsfleet_operator.durations import Duration
from wsfleet_operator.model.base import SecretKeyRef, _Spec


class Redis(_Spec):
    """Redis, used for fan-out, replay and presence."""

    url_secret: SecretKeyRef = Field(
        default_factory=lambda: SecretKeyRef(name="wsfleet-redis", key="url"),
        description="Secret key holding the Redis URL (redis://, rediss://).",
    )


class Publish(_Spec):
    """The HTTP publish API for backends."""

    api_key_secret: SecretKeyRef | None = Field(
        default=None,
        description="Secret key holding the API key for POST /api/v1/publish. Omitted: publishing disabled.",
    )


class Jwt(_Spec):
    """A JWT in the Socket.IO handshake (``auth.token``), checked by the workload."""

    algorithm: Literal["HS256", "RS256"] = Field(
        default="HS256", description="HS256 (shared secret, at least 32 bytes) or RS256 (public key, PEM)."
    )
    key_secret: SecretKeyRef = Field(description="Secret key holding the HS256 secret or the RS256 public key.")
    issuer: str | None = Field(default=None, max_length=2048, description="Required iss claim, if set.")
    audience: str | None = Field(default=None, max_length=2048, description="Required aud claim, if set.")
    rooms_claim: Annotated[str, StringConstraints(min_length=1, max_length=253)] = Field(
        default="rooms", description="Claim listing the room patterns (globs) a token may join."
    )


class Auth(_Spec):
    """Who may connect. Without a JWT every client is anonymous and may use every room."""

    jwt: Jwt | None = Field(default=None, description="Require a JWT in the handshake.")


class Limits(_Spec):
    """Per-pod limits on the workload: reconnect-storm and slow-consumer protection."""

    handshakes_per_second: int = Field(
        default=200, ge=1, le=1_000_000,
        description="New connections per second per pod; above it, 503 with Retry-After (the LB retries elsewhere).",
    )  # fmt: skip
    handshakes_per_second_per_ip: int = Field(
        default=20, ge=1, le=1_000_000, description="New connections per second per client IP, per pod."
    )
    send_queue_messages: int = Field(
        default=1000, ge=1, le=1_000_000,
        description="Packets queued for one client before it is cut off as a slow consumer (it recovers on reconnect).",
    )  # fmt: skip
    trusted_proxies: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] = Field(
        default_factory=lambda: ["*"],
        max_length=64,
        description=(
            "Sources whose X-Forwarded-For names the client IP (IPs, CIDRs, or * for any). Default *: only the "
            "load balancer reaches the pods; narrow it to the proxies' CIDR if anything else can."
        ),
    )


class Replay(_Spec):
    """Per-room message history that reconnecting clients recover from."""

    ttl: Duration = Field(default=300, description="How long messages stay replayable (I13).")
    max_messages: int = Field(default=500, ge=1, le=1000000, description="Most messages kept per room.")


class Presence(_Spec):
    """Presence tracking in Redis."""

    enabled: bool = Field(default=True, description="Track who is in each room.")
    diff_interval_ms: int = Field(
        default=250, ge=10, le=60_000,
        description=(
            "Membership changes of a room are sent to its members as one presence_diff event per interval "
            "at most: a reconnect storm costs each member a few events, not one per client."
        ),
    )  # fmt: skip
    diff_max_members: int = Field(
        default=100, ge=1, le=10_000,
        description=(
            "A presence_diff lists at most this many changes; one with more carries their counts instead "
            "(joined, left, truncated: true), and a client keeping a member list asks for it again. "
            "A reconnect storm in a room of N would otherwise send each member every join: N squared bytes."
        ),
    )  # fmt: skip
