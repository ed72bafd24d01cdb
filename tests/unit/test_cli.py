"""The wsfleet command: render, check and crd, and how it fails on bad input."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import EXAMPLES, ROOT
from wsfleet_operator.cli import main


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


def test_render_builtin_example_is_an_applyable_stream() -> None:
    code, out, err = run("render")
    assert (code, err) == (0, "")
    docs = list(yaml.safe_load_all(out))
    assert [d["kind"] for d in docs] == [
        "NetworkPolicy",
        "ConfigMap",
        "Service",
        "Deployment",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    ]
    assert all(d["metadata"]["name"].startswith("chat") for d in docs)


def test_render_several_files() -> None:
    code, out, _ = run("render", "-f", str(EXAMPLES[0]), "-f", str(EXAMPLES[1]))
    assert code == 0
    names = {d["metadata"]["name"] for d in yaml.safe_load_all(out) if d["kind"] == "Deployment"}
    assert len(names) == 2


def test_check_prints_hierarchy_and_timeline() -> None:
    code, out, _ = run("check", "-f", str(ROOT / "deploy/examples/nginx.yaml"))
    assert code == 0
    assert "LB idle 80s (derived) > heartbeat window 50s > interval 25s" in out
    assert "T+0 " in out
    assert "T+10    preStop ends: SIGTERM" in out
    assert "T+45    terminationGracePeriod ends: SIGKILL" in out
    assert "FAIL" not in out


def test_check_alb_timeline_includes_deregistration() -> None:
    _, out, _ = run("check", "-f", str(ROOT / "deploy/examples/alb.yaml"))
    assert "T+30    preStop ends" in out
    assert "T+65    AWS ALB stops holding the old connections" in out


@pytest.fixture
def bad_file(tmp_path: Path) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "apiVersion: wsfleet.dev/v1alpha1\nkind: WebSocketService\nmetadata: {name: chat}\n"
        "spec:\n  loadBalancer: {provider: nginx, idleTimeout: 60s}\n"
    )
    return path


def test_check_exits_2_and_names_the_broken_invariant(bad_file: Path) -> None:
    code, out, _ = run("check", "-f", str(bad_file))
    assert code == 2
    assert "FAIL I1" in out
    assert f"{bad_file}: spec: I1: loadBalancer.idleTimeout 60s" in out


def test_render_refuses_a_broken_spec(bad_file: Path) -> None:
    code, out, err = run("render", "-f", str(bad_file))
    assert (code, out) == (2, "")
    assert "I1: loadBalancer.idleTimeout 60s" in err
    assert "need at least 80s" in err


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("spec: [unclosed", "line 1: not valid YAML"),
        ("kind: Deployment\n", "kind: 'Deployment': expected 'WebSocketService'"),
        ("", "no WebSocketService in the file"),
    ],
)
def test_unreadable_input(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(text)
    code, _, err = run("render", "-f", str(path))
    assert code == 2
    assert str(path) in err
    assert needle in err


def test_missing_file() -> None:
    code, _, err = run("check", "-f", "/nonexistent/chat.yaml")
    assert code == 2
    assert "/nonexistent/chat.yaml: can't read: No such file or directory" in err


def test_crd_check_reports_stale_files(tmp_path: Path) -> None:
    # the hand-written pages with generated blocks, and the examples they quote
    shutil.copytree(ROOT / "docs", tmp_path / "docs", ignore=shutil.ignore_patterns("crd-reference.md"))
    shutil.copytree(ROOT / "deploy", tmp_path / "deploy")
    code, out, _ = run("crd", "--check", "--root", str(tmp_path))
    assert code == 2
    assert "run `wsfleet crd` to regenerate" in out
    assert run("crd", "--root", str(tmp_path))[0] == 0
    assert run("crd", "--check", "--root", str(tmp_path)) == (0, "", "")


def test_console_script_fails_cleanly(bad_file: Path) -> None:
    exe = shutil.which("wsfleet", path=str(Path(sys.executable).parent))
    assert exe, "the wsfleet console script is installed with the package"
    proc = subprocess.run([exe, "render", "-f", str(bad_file)], capture_output=True, text=True, check=False, timeout=60)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "spec: I1:" in proc.stderr


def test_operator_ports_are_checked(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["operator", "--health-port", "70000"])
    assert exit_.value.code == 2
    assert "--health-port: 70000: a port is 0 (none) to 65535" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--leader-elect-lease-duration", "10s"],
         "--leader-elect-lease-duration 10s must be longer than --leader-elect-renew-deadline 10s"),
        (["--leader-elect-retry-period", "9s"],
         "--leader-elect-renew-deadline 10s must be longer than 1.2 x --leader-elect-retry-period 9s"),
        (["--leader-elect-resource-namespace", ""], "--leader-elect: the Lease needs a namespace"),
    ],
)  # fmt: skip
def test_leader_election_flags_are_checked_before_anything_starts(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["operator", "--leader-elect", "--leader-elect-resource-namespace", "ns", *args]) == 2
    assert message in capsys.readouterr().err


def test_leader_election_durations_are_duration_strings(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["operator", "--leader-elect", "--leader-elect-lease-duration", "1.5s"])
    assert "--leader-elect-lease-duration: '1.5s' is not a duration" in capsys.readouterr().err
