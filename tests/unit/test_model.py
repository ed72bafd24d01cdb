"""Parsing: durations, defaults, and bad input that must produce one clear line per problem.

Matrix of bad input: unknown field, wrong type, zero / negative / fractional / unparsable
duration, out-of-range number, bad enum, duplicate list entries, a non-mapping document.
Each gives a line naming the field path and the value; none gives a traceback.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.strategies import resource
from wsfleet_operator.durations import DurationError, format_seconds, parse
from wsfleet_operator.model import WebSocketServiceSpec
from wsfleet_operator.validation import SpecError, parse_resource


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("25s", 25), ("5m", 300), ("24h", 86400), ("1h30m", 5400), ("1m30s", 90), ("90s", 90), ("0h0m7s", 7)],
)
def test_parse_accepts_kubernetes_style(text: str, seconds: int) -> None:
    assert parse(text) == seconds


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("0s", "must be positive"),
        ("-5s", "not a duration"),
        ("1.5s", "not a duration"),
        ("500ms", "not a duration"),
        ("", "not a duration"),
        ("5 minutes", "not a duration"),
        ("30m1h", "not a duration"),
        (25, "not a duration string"),
        (True, "not a duration string"),
    ],
)
def test_parse_refuses_with_the_value(value: object, needle: str) -> None:
    with pytest.raises(DurationError) as exc:
        parse(value)
    assert needle in str(exc.value)
    assert repr(value) in str(exc.value)


def test_parse_bounds() -> None:
    assert parse("0s", minimum=0) == 0
    with pytest.raises(DurationError, match="at most 30m"):
        parse("31m", maximum=1800)


@given(st.integers(0, 999_999 * 3600))
def test_format_round_trips(seconds: int) -> None:
    text = format_seconds(seconds)
    assert parse(text, minimum=0) == seconds


def test_defaults_are_the_production_values() -> None:
    s = WebSocketServiceSpec()
    assert (s.port, s.replicas.min, s.replicas.max) == (3001, 3, 10)
    assert (s.heartbeat.interval, s.heartbeat.timeout) == (25, 25)
    assert (s.load_balancer.margin, s.load_balancer.idle_timeout) == (30, None)
    assert (s.shutdown.drain, s.shutdown.buffer, s.shutdown.pre_stop) == (30, 5, None)
    assert (s.affinity.mode, s.affinity.ttl) == ("cookie", 86400)
    assert (s.probes.startup.period, s.probes.startup.failure_threshold) == (5, 12)
    assert (s.probes.readiness.period, s.probes.liveness.period) == (3, 10)
    assert (s.autoscaling.cpu, s.autoscaling.memory) == (70, 80)
    assert (s.autoscaling.scale_down.stabilization, s.autoscaling.scale_down.percent) == (300, 50)
    assert s.disruption.min_available == 2
    assert (s.replay.ttl, s.replay.max_messages) == (300, 500)
    assert s.resources.limits == {"cpu": "500m", "memory": "512Mi"}


def _problems(spec: dict[str, Any]) -> list[str]:
    with pytest.raises(SpecError) as exc:
        parse_resource(resource(spec), "chat.yaml")
    return [str(line) for line in str(exc.value).splitlines()]


BAD: list[tuple[dict[str, Any], str]] = [
    ({"heartbeat": {"intervall": "25s"}}, "chat.yaml: spec.heartbeat.intervall: unknown field"),
    ({"replicas": {"min": "three"}}, "chat.yaml: spec.replicas.min: 'three'"),
    ({"heartbeat": {"interval": "0s"}}, "chat.yaml: spec.heartbeat.interval: '0s' must be positive"),
    ({"shutdown": {"drain": "-30s"}}, "chat.yaml: spec.shutdown.drain: '-30s' is not a duration"),
    ({"shutdown": {"drain": "30"}}, "chat.yaml: spec.shutdown.drain: '30' is not a duration"),
    ({"shutdown": {"drain": 30}}, "chat.yaml: spec.shutdown.drain: 30 is not a duration string"),
    ({"loadBalancer": {"provider": "haproxy"}}, "chat.yaml: spec.loadBalancer.provider: 'haproxy'"),
    ({"port": 70000}, "chat.yaml: spec.port: 70000"),
    ({"transports": ["websocket", "websocket"]}, "chat.yaml: spec.transports: ['websocket', 'websocket'] lists"),
    ({"env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]}, "chat.yaml: spec.env: ['A'] set more"),
    ({"resources": {"limits": {"cpu": "lots"}}}, "chat.yaml: spec.resources.limits.cpu: 'lots'"),
    ({"autoscaling": {"scaleUp": {"percent": 100, "period": "1h", "stabilization": "0s"}}}, "'1h' must be at most 30m"),
]


@pytest.mark.parametrize(("spec", "line"), BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_input_names_field_and_value(spec: dict[str, Any], line: str) -> None:
    problems = _problems(spec)
    assert len(problems) == 1, problems
    assert line in problems[0]


def test_every_problem_is_reported_at_once() -> None:
    problems = _problems({"heartbeat": {"interval": "0s", "timeout": "x"}, "port": 0, "bogus": 1})
    assert len(problems) == 4


def test_null_means_absent_like_the_api_server() -> None:
    wss = parse_resource(resource({"heartbeat": None, "loadBalancer": {"idleTimeout": None}}))
    assert wss.spec.heartbeat.interval == 25
    assert wss.spec.load_balancer.idle_timeout is None


def test_not_a_mapping() -> None:
    with pytest.raises(SpecError, match="expected a WebSocketService mapping, got list"):
        parse_resource([1, 2], "x.yaml")


def test_name_too_long_for_child_names() -> None:
    doc = resource({}, name="a" * 57)
    with pytest.raises(SpecError, match=r"metadata\.name"):
        parse_resource(doc)
