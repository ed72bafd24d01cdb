"""JWT checks (HS256, RS256), room claims, and the handshake token buckets (with a fake clock)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from wsfleet_workload.auth import ANONYMOUS, Authenticator, AuthError, HandshakeLimiter
from wsfleet_workload.config import Jwt

SECRET = "k" * 40


def hs(**claims: Any) -> str:
    return jwt.encode({"exp": int(time.time()) + 60, **claims}, SECRET, algorithm="HS256")


def test_without_a_key_everyone_is_anonymous() -> None:
    assert Authenticator(None).identify(None) is ANONYMOUS
    assert ANONYMOUS.may_join("anything")


def test_hs256_claims_grant_rooms_by_glob() -> None:
    who = Authenticator(Jwt("HS256", SECRET)).identify(hs(sub="ada", rooms=["chat:*", "news"], publish="chat:ada"))
    assert who.user == "ada"
    assert who.may_join("chat:42")
    assert who.may_join("news")
    assert not who.may_join("admin")
    assert who.may_publish("chat:ada")
    assert not who.may_publish("chat:42")


# Tokens are made when the test runs (not at collection), so their `exp` is always fresh.
@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: None, "a token is required"),
        (lambda: "garbage", "invalid token"),
        (lambda: jwt.encode({"exp": int(time.time()) + 60}, "x" * 40, algorithm="HS256"), "Signature verification"),
        (lambda: jwt.encode({"exp": int(time.time()) - 100}, SECRET, algorithm="HS256"), "token expired"),
        (lambda: jwt.encode({"sub": "no-exp"}, SECRET, algorithm="HS256"), 'missing the "exp" claim'),
        (lambda: jwt.encode({"exp": int(time.time()) + 60}, SECRET * 2, algorithm="HS512"), "algorithm is not HS256"),
        (lambda: hs(rooms=5), "claim 'rooms' must be a list"),
    ],
)
def test_refused_tokens_say_why(make: Callable[[], str | None], message: str) -> None:
    with pytest.raises(AuthError) as info:
        Authenticator(Jwt("HS256", SECRET)).identify(make())
    assert message in str(info.value)


def test_issuer_and_audience_are_enforced() -> None:
    auth = Authenticator(Jwt("HS256", SECRET, issuer="https://id", audience="chat"))
    assert auth.identify(hs(iss="https://id", aud="chat")).rooms == ()
    with pytest.raises(AuthError, match="Invalid issuer"):
        auth.identify(hs(iss="https://other", aud="chat"))
    with pytest.raises(AuthError, match=r"Audience doesn.t match"):
        auth.identify(hs(iss="https://id", aud="other"))


def test_rs256_with_a_public_key() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    auth = Authenticator(Jwt("RS256", public))
    token = jwt.encode({"exp": int(time.time()) + 60, "sub": "bob", "rooms": ["*"]}, key, algorithm="RS256")
    assert auth.identify(token).user == "bob"
    # an HS256 token signed with the public key text must not pass (algorithm confusion)
    with pytest.raises(AuthError):
        auth.identify(jwt.encode({"exp": int(time.time()) + 60}, "p" * 40, algorithm="HS256"))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_per_ip_bucket_allows_a_burst_then_refills() -> None:
    clock = Clock()
    limiter = HandshakeLimiter(per_second=100, per_ip=5, clock=clock)
    assert [limiter.check("1.1.1.1") for _ in range(5)] == [None] * 5
    assert limiter.check("1.1.1.1") == ("rate_limit_ip", 1)
    assert limiter.check("2.2.2.2") is None, "another IP has its own bucket"
    clock.now += 0.2  # one token back at 5/s
    assert limiter.check("1.1.1.1") is None
    assert limiter.check("1.1.1.1") == ("rate_limit_ip", 1)


def test_pod_bucket_caps_everyone_and_gives_the_ip_token_back() -> None:
    clock = Clock()
    limiter = HandshakeLimiter(per_second=3, per_ip=10, clock=clock)
    assert [limiter.check(f"10.0.0.{i}") for i in range(3)] == [None] * 3
    assert limiter.check("10.0.0.9") == ("rate_limit_pod", 1)
    assert limiter.ips["10.0.0.9"].tokens == pytest.approx(10), "the refused client's own token is returned"


def test_the_ip_table_is_bounded() -> None:
    clock = Clock()
    limiter = HandshakeLimiter(per_second=10**6, per_ip=1, clock=clock)
    limiter.MAX_TRACKED = 100
    for i in range(250):
        limiter.check(f"ip{i}")
        clock.now += 2  # every earlier bucket is full again
    assert len(limiter.ips) <= 100
