"""Who may connect, which rooms they may use, and how fast handshakes may come.

- JWT (optional): HS256 with a shared secret or RS256 with a public key, both from a Secret.
  The ``rooms`` claim (name configurable) lists glob patterns of rooms the token may join;
  ``publish`` lists the rooms it may publish to. ``sub`` names the user for presence.
  Without a configured key every client is anonymous and may use every room.
- Handshake rate limits: token buckets, one for the pod and one per client IP. Above either,
  a handshake gets 503 with Retry-After, so a reconnect storm is spread instead of absorbed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

import jwt as pyjwt

from wsfleet_workload.config import Jwt


class AuthError(ValueError):
    """Why a token was refused (never echoes the token)."""


@dataclass(frozen=True)
class Identity:
    user: str | None
    rooms: tuple[str, ...] | None  # None: every room
    publish: tuple[str, ...] | None

    def may_join(self, room: str) -> bool:
        return self.rooms is None or any(fnmatchcase(room, p) for p in self.rooms)

    def may_publish(self, room: str) -> bool:
        return self.publish is None or any(fnmatchcase(room, p) for p in self.publish)


ANONYMOUS = Identity(None, None, None)


class Authenticator:
    def __init__(self, cfg: Jwt | None) -> None:
        self.cfg = cfg

    def identify(self, token: str | None) -> Identity:
        cfg = self.cfg
        if cfg is None:
            return ANONYMOUS
        if not token:
            raise AuthError("a token is required: pass auth.token in the handshake")
        try:
            claims: dict[str, Any] = pyjwt.decode(
                token,
                cfg.key,
                algorithms=[cfg.algorithm],
                issuer=cfg.issuer,
                audience=cfg.audience,
                options={"require": ["exp"], "verify_aud": cfg.audience is not None},
                leeway=30,
            )
        except pyjwt.ExpiredSignatureError:
            raise AuthError("token expired") from None
        except pyjwt.InvalidAlgorithmError:
            raise AuthError(f"token algorithm is not {cfg.algorithm}") from None
        except pyjwt.InvalidTokenError as e:
            raise AuthError(f"invalid token: {e}") from None
        return Identity(
            user=str(claims["sub"]) if "sub" in claims else None,
            rooms=_patterns(claims, cfg.rooms_claim),
            publish=_patterns(claims, "publish"),
        )


def _patterns(claims: dict[str, Any], name: str) -> tuple[str, ...]:
    value = claims.get(name, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise AuthError(f"claim {name!r} must be a list of room patterns, got {type(value).__name__}")
    return tuple(value)


class Bucket:
    """A token bucket: ``rate`` tokens per second, holding at most ``rate`` (one second of burst)."""

    __slots__ = ("rate", "stamp", "tokens")

    def __init__(self, rate: float, now: float) -> None:
        self.rate, self.tokens, self.stamp = rate, rate, now

    def take(self, now: float) -> float:
        """0 if a token was taken, else the seconds until one is available."""
        self.tokens = min(self.rate, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class HandshakeLimiter:
    # Per-IP buckets are forgotten once full again; this caps the table against address spraying.
    MAX_TRACKED = 100_000

    def __init__(self, per_second: int, per_ip: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.per_ip = per_ip
        self.pod = Bucket(per_second, clock())
        self.ips: dict[str, Bucket] = {}

    def check(self, ip: str) -> tuple[str, int] | None:
        """None to admit; else (reason, Retry-After seconds)."""
        now = self.clock()
        bucket = self.ips.get(ip)
        if bucket is None:
            if len(self.ips) >= self.MAX_TRACKED:
                self._forget_full(now)
            bucket = self.ips[ip] = Bucket(self.per_ip, now)
        wait = bucket.take(now)
        if wait:
            return "rate_limit_ip", max(1, math.ceil(wait))
        wait = self.pod.take(now)
        if wait:
            bucket.tokens += 1  # not the client's fault: give its token back
            return "rate_limit_pod", max(1, math.ceil(wait))
        return None

    def _forget_full(self, now: float) -> None:
        for ip in [ip for ip, b in self.ips.items() if b.tokens + (now - b.stamp) * b.rate >= b.rate]:
            del self.ips[ip]
        if len(self.ips) >= self.MAX_TRACKED:
            self.ips.clear()
