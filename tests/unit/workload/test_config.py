"""Config.from_environ: defaults, and every refusal names the variable and the value."""

from __future__ import annotations

import pytest

from wsfleet_workload import contract as c
from wsfleet_workload.config import Config, ConfigError


def test_defaults_without_environment() -> None:
    cfg = Config.from_environ({})
    assert (cfg.port, cfg.metrics_port) == (c.DEFAULT_PORT, c.DEFAULT_METRICS_PORT)
    assert cfg.transports == ("websocket", "polling")
    assert cfg.jwt is None
    assert cfg.heartbeat_window == 45


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({c.ENV_PORT: "abc"}, "WSFLEET_PORT='abc': not a whole number"),
        ({c.ENV_PORT: "70000"}, "WSFLEET_PORT=70000: must be between 1 and 65535"),
        ({c.ENV_PING_INTERVAL: "0"}, "WSFLEET_PING_INTERVAL_SECONDS=0"),
        ({c.ENV_TRANSPORTS: "websocket,carrier-pigeon"}, "unknown transport 'carrier-pigeon'"),
        ({c.ENV_TRANSPORTS: ""}, "needs at least one transport"),
        ({c.ENV_PRESENCE_ENABLED: "maybe"}, "WSFLEET_PRESENCE_ENABLED='maybe': expected true or false"),
        ({c.ENV_TRUSTED_PROXIES: "10.0.0.0/8,not-an-ip"}, "'not-an-ip' is not an IP address or CIDR"),
        ({c.ENV_REDIS_URL: "http://user:hunter2@redis"}, "scheme 'http' is not redis://"),
        ({c.ENV_KEY_PREFIX: "a{b}"}, "no braces"),
        ({c.ENV_METRICS_PORT: "3001"}, "must differ from WSFLEET_PORT=3001"),
        ({c.ENV_JWT_ALGORITHM: "none", c.ENV_JWT_KEY: "k" * 40}, "WSFLEET_JWT_ALGORITHM='none'"),
        ({c.ENV_JWT_ALGORITHM: "HS256"}, "needs WSFLEET_JWT_KEY"),
        ({c.ENV_JWT_KEY: "k" * 40}, "WSFLEET_JWT_ALGORITHM is not"),
        ({c.ENV_JWT_ALGORITHM: "HS256", c.ENV_JWT_KEY: "short"}, "at least 32 bytes, got 5"),
        ({c.ENV_JWT_ALGORITHM: "RS256", c.ENV_JWT_KEY: "k" * 40}, "PEM public key"),
    ],
)
def test_refusals_name_the_variable_and_value(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_environ(env)
    assert message in str(info.value)


def test_secrets_never_appear_in_errors_or_repr() -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_environ({c.ENV_REDIS_URL: "http://user:hunter2@redis"})
    assert "hunter2" not in str(info.value)
    cfg = Config.from_environ(
        {c.ENV_REDIS_URL: "redis://:hunter2@r:6379", c.ENV_PUBLISH_API_KEY: "sekrit",
         c.ENV_JWT_ALGORITHM: "HS256", c.ENV_JWT_KEY: "j" * 40}
    )  # fmt: skip
    assert "hunter2" not in repr(cfg)
    assert "sekrit" not in repr(cfg)
    assert "j" * 40 not in repr(cfg)
