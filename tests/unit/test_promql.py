"""The PromQL the project ships, checked by promtool (Debian's prometheus package; `make promtool`).

| what                                   | check                                                       |
|----------------------------------------|-------------------------------------------------------------|
| the rendered PrometheusRule            | `promtool check rules`                                      |
| each alert's threshold                 | `promtool test rules`: fires on synthetic series above it, not below |
| every Grafana dashboard expression     | `promtool check rules` (as recording rules), and every metric it names is exported |
| the check itself                       | a broken expression is refused                              |
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT
from tests.support import tools
from wsfleet_operator import dashboard
from wsfleet_operator.model import WebSocketService
from wsfleet_operator.render import render_all
from wsfleet_workload.metrics import Metrics


@pytest.fixture(scope="module")
def promtool() -> str:
    return tools.promtool()


def _run(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60, check=False)


def _rule() -> dict[str, Any]:
    doc = yaml.safe_load((ROOT / "deploy" / "examples" / "gateway-envoy.yaml").read_text())
    assert doc["spec"]["monitoring"]["prometheusRule"]["enabled"], "the example enables the PrometheusRule"
    (rule,) = [m for m in render_all(WebSocketService.model_validate(doc)) if m["kind"] == "PrometheusRule"]
    return rule


def test_rendered_alert_rules_pass_promtool(promtool: str, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(_rule()["spec"]))
    proc = _run(promtool, "check", "rules", str(rules))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(_rule()['spec']['groups'][0]['rules'])} rules found" in proc.stdout, proc.stdout
    assert len(_rule()["spec"]["groups"][0]["rules"]) == 4


def test_promtool_refuses_a_broken_expression(promtool: str, tmp_path: Path) -> None:
    spec = _rule()["spec"]
    spec["groups"][0]["rules"][0]["expr"] = "sum(rate(wsfleet_disconnects_total[5m]) > "
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(spec))
    proc = _run(promtool, "check", "rules", str(rules))
    assert proc.returncode != 0
    assert "parse error" in proc.stdout + proc.stderr


FLEET = 'namespace="default", service="chat-envoy"'


def _alert_test(alert: str, series: list[tuple[str, str]], fires: bool) -> dict[str, Any]:
    rule = next(r for r in _rule()["spec"]["groups"][0]["rules"] if r["alert"] == alert)
    expected = [{"exp_labels": rule["labels"], "exp_annotations": rule["annotations"]}] if fires else []
    return {
        "interval": "1m",
        "input_series": [{"series": s, "values": v} for s, v in series],
        # past the 30 m window of the availability alert and every alert's `for`
        "alert_rule_test": [{"eval_time": "50m", "alertname": alert, "exp_alerts": expected}],
    }


# 1000 connected clients; the churn alert's threshold is 1% of them per minute, the heartbeat
# alert's 0.5%; availability is 99.9% of readiness answers, draining ones excluded.
CONNECTED = (f"wsfleet_connections{{{FLEET}, pod='a'}}".replace("'", '"'), "1000x60")
CASES = [
    ("WsfleetConnectionChurnHigh", [CONNECTED, (f'wsfleet_disconnects_total{{{FLEET}, reason="transport_close"}}', "0+20x60")], True),
    ("WsfleetConnectionChurnHigh", [CONNECTED, (f'wsfleet_disconnects_total{{{FLEET}, reason="transport_close"}}', "0+5x60")], False),
    ("WsfleetHeartbeatTimeoutsHigh", [CONNECTED, (f"wsfleet_heartbeat_timeouts_total{{{FLEET}}}", "0+10x60")], True),
    ("WsfleetHeartbeatTimeoutsHigh", [CONNECTED, (f"wsfleet_heartbeat_timeouts_total{{{FLEET}}}", "0+2x60")], False),
    ("WsfleetAvailabilityLow", [(f'wsfleet_health_checks_total{{{FLEET}, endpoint="ready", result="ok"}}', "0+990x60"),
                                (f'wsfleet_health_checks_total{{{FLEET}, endpoint="ready", result="unavailable"}}', "0+10x60")], True),
    ("WsfleetAvailabilityLow", [(f'wsfleet_health_checks_total{{{FLEET}, endpoint="ready", result="ok"}}', "0+1000x60"),
                                (f'wsfleet_health_checks_total{{{FLEET}, endpoint="ready", result="draining"}}', "0+500x60")], False),
    ("WsfleetFastPathVersionMismatch", [(f'wsfleet_fast_path_version_mismatch{{{FLEET}, pod="a", library="uvicorn", installed="0.55.0", expected="0.54.0"}}', "1x60")], True),
    # a pod whose versions match exports the family with no sample; another fleet's mismatch is not ours
    ("WsfleetFastPathVersionMismatch", [('wsfleet_fast_path_version_mismatch{namespace="other", service="chat", pod="b", library="redis", installed="8.2.0", expected="8.1.0"}', "1x60")], False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("alert", "series", "fires"), CASES, ids=[f"{a}-{'fires' if f else 'quiet'}" for a, _, f in CASES]
)
def test_alert_thresholds(
    promtool: str, tmp_path: Path, alert: str, series: list[tuple[str, str]], fires: bool
) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(_rule()["spec"]))
    tests = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": [_alert_test(alert, series, fires)]}
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests))
    proc = _run(promtool, "test", "rules", str(tmp_path / "tests.yaml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _concrete(expr: str) -> str:
    """A dashboard expression with Grafana's variables given values, as Grafana would."""
    return expr.replace("$namespace", "default").replace("$service", "chat").replace("$__rate_interval", "5m")


def test_dashboard_expressions_pass_promtool(promtool: str, tmp_path: Path) -> None:
    exprs = dashboard.expressions()
    assert len(exprs) >= 20
    proc = tools.check_expressions([_concrete(e) for e in exprs], tmp_path, "dashboard")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in proc.stdout


def _exported() -> set[str]:
    """Series names the workload and the operator expose (a labelled metric has no sample until
    used, so the names come from each family's type)."""
    from wsfleet_operator import controller  # noqa: PLC0415 - the operator's metrics are module-level

    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    families = [*Metrics().registry.collect()]
    for collector in (controller.RECONCILES, controller.DURATION, controller.WRITES, controller.ERRORS):
        families += collector.collect()
    return {f.name + suffix for f in families for suffix in suffixes[f.type]}


def test_every_metric_on_the_dashboard_and_in_the_alerts_is_exported() -> None:
    exported = _exported()
    used = {m for e in dashboard.expressions() for m in re.findall(r"\b(wsfleet_[a-z_]+)\b", e)}
    used |= {m for r in _rule()["spec"]["groups"][0]["rules"] for m in re.findall(r"\b(wsfleet_[a-z_]+)\b", r["expr"])}
    assert used, "no metric found"
    assert used <= exported, f"not exported by the workload or the operator: {sorted(used - exported)}"


def test_the_committed_dashboard_is_generated() -> None:
    assert dashboard.stale(ROOT) == [], "run `wsfleet crd` to regenerate deploy/monitoring/grafana-dashboard.json"
