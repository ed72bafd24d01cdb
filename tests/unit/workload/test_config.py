"""Config.from_environ: defaults, and every refusal names the variable and the value."""

from __future__ import annotations

import pytest

from wsfleet_common import contract as c
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
        ({c.ENV_HTTP_KEEPALIVE: "0"}, "WSFLEET_HTTP_KEEPALIVE_SECONDS=0: must be between 1 and 86400"),
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


def test_sentinel_urls_parse_into_hosts_service_and_credentials() -> None:
    url = "rediss+sentinel://app:s3cret@10.0.0.1:26379,sentinel-b,[fd00::5]:26380/wsfleet/2?sentinel_password=sp"
    cfg = Config.from_environ({c.ENV_REDIS_URL: url})
    s = cfg.sentinel
    assert s is not None
    assert s.hosts == (("10.0.0.1", 26379), ("sentinel-b", 26379), ("fd00::5", 26380))
    assert (s.service, s.db, s.tls) == ("wsfleet", 2, True)
    assert (s.username, s.password, s.sentinel_password) == ("app", "s3cret", "sp")
    assert "s3cret" not in repr(s)
    assert Config.from_environ({c.ENV_REDIS_URL: "redis://:pw@h:6379/0"}).sentinel is None


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis+sentinel://:pw@h1,h2", "needs /<service name>"),
        ("redis+sentinel://:pw@h1:x/svc", "port 'x' is not a number"),
        ("redis+sentinel://:pw@h1/svc/zero", "database 'zero' is not a number"),
        ("redis+sentinel://:pw@h1/svc?master=x", "unknown Sentinel URL parameter(s) ['master']"),
        ("memcached://:pw@h1", "scheme 'memcached' is not"),
    ],
)
def test_bad_redis_urls_name_the_part_never_the_password(url: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        Config.from_environ({c.ENV_REDIS_URL: url})
    assert message in str(err.value)
    assert c.ENV_REDIS_URL in str(err.value)
    assert "pw" not in str(err.value)


def test_log_format_and_level_are_checked() -> None:
    assert Config.from_environ({}).log_format == "json"
    assert Config.from_environ({c.ENV_LOG_FORMAT: "text"}).log_format == "text"
    with pytest.raises(ConfigError, match="WSFLEET_LOG_FORMAT='yaml': must be one of json, text"):
        Config.from_environ({c.ENV_LOG_FORMAT: "yaml"})
    with pytest.raises(ConfigError, match="WSFLEET_LOG_LEVEL='LOUD'"):
        Config.from_environ({c.ENV_LOG_LEVEL: "LOUD"})


def test_the_fast_path_switch_is_on_or_off() -> None:
    assert Config.from_environ({}).fast_path is True
    assert Config.from_environ({"WSFLEET_FAST_PATH": "off"}).fast_path is False
    assert Config.from_environ({"WSFLEET_FAST_PATH": "on"}).fast_path is True
    with pytest.raises(ConfigError, match="WSFLEET_FAST_PATH='false': must be one of on, off"):
        Config.from_environ({"WSFLEET_FAST_PATH": "false"})
