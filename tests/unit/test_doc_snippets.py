"""Every code block of README.md and docs/ is run or checked by a test (tests/support/snippets.py
says which, and whether it is run as written or only checked). This module holds the ones that need no cluster, Redis or browser.

| tag        | check                                                                       |
|------------|-----------------------------------------------------------------------------|
| (any)      | the block carries a tag some test runs                                      |
| make       | `make demo` runs; `make test` is the command .ci/run calls                   |
| cli        | every line runs in the repository and exits 0                               |
| alb-check  | every line appears in `wsfleet check -f deploy/examples/alb.yaml`            |
| bad-spec   | written to bad.yaml, `wsfleet check -f bad.yaml` exits 2 printing `refusal` |
| layout     | every path it names exists                                                  |
| diagram    | every WSFLEET_ variable, HTTP path and spec field it names exists           |
| get-wss    | its header is NAME plus the CRD's printer columns                           |
| log-line   | the same fields, in the same order, as a real refusal logged by the workload |
| pytest     | each line collects tests                                                    |
| validate   | each line parses with the wsfleet CLI's own parser                          |
| kustomize  | every `-k` directory builds with `kubectl kustomize`                          |
| promql     | promtool accepts every expression                                           |
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from tests.support import tools
from tests.support.snippets import CHECKED, RUN, RUNNERS, Snippet, snippets, tagged
from wsfleet_common import contract as c
from wsfleet_common import logs
from wsfleet_devcluster import images
from wsfleet_operator import cli
from wsfleet_workload.metrics import Metrics, refused

BIN = Path(sys.executable).parent


def _sh(command: str, cwd: Path = ROOT, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}
    return subprocess.run(["bash", "-euo", "pipefail", "-c", command], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)  # fmt: skip


def test_every_block_has_a_runner() -> None:
    blocks = snippets()
    assert len(blocks) >= 30
    untagged = [f"{s.where} ```{s.lang} {s.tag}" for s in blocks if s.tag not in RUNNERS]
    assert not untagged, f"code blocks no test runs (tag them; tests/support/snippets.py lists the tags): {untagged}"


def test_every_tag_says_whether_its_blocks_are_run_or_checked() -> None:
    kinds = {tag: kind for tag, (kind, _) in RUNNERS.items()}
    assert set(kinds.values()) == {RUN, CHECKED}, kinds
    # the README's claim, in its words: these are run as written
    assert {t for t, k in kinds.items() if k == RUN} == {
        "cli", "bad-spec", "tour", "tour-client", "install", "cluster", "workload-run", "js-client", "publish",
        "podman-run",
    }  # fmt: skip


def test_every_tag_is_used() -> None:
    used = {s.tag for s in snippets()}
    assert set(RUNNERS) <= used, f"runners for tags no block carries: {sorted(set(RUNNERS) - used)}"


def test_make_commands() -> None:
    (block,) = tagged("make")
    targets = [shlex.split(line, comments=True) for line in block.lines()]
    assert targets == [["make", "demo"], ["make", "test"]], targets
    # `make demo` is run as written, on real nodes, by tests/integration/nodes/test_demo.py; here,
    # that it is the dev cluster's demo and that `make demo-down` stops it
    dry = _sh("make -n demo demo-down", timeout=60)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "wsfleet dev-cluster demo" in dry.stdout
    assert "wsfleet dev-cluster down" in dry.stdout
    assert re.search(r"^make test$", (ROOT / ".ci" / "run").read_text(), re.M), ".ci/run runs the README's test command"


@pytest.mark.parametrize("block", tagged("cli"), ids=lambda s: s.where)
def test_cli_lines_run(block: Snippet) -> None:
    for line in block.lines():
        proc = _sh(line)
        assert proc.returncode == 0, f"{block.where}: {line}\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        assert proc.stdout.strip(), f"{block.where}: {line} printed nothing"


def _check(path: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return _sh(f"wsfleet check -f {path}", cwd=cwd)


def test_alb_check_output_is_what_the_cli_prints() -> None:
    (block,) = tagged("alb-check")
    printed = {line.strip() for line in _check("deploy/examples/alb.yaml").stdout.splitlines()}
    for line in block.lines():
        assert line.strip() in printed, f"{block.where}: `wsfleet check` no longer prints {line.strip()!r}"


def test_a_bad_spec_is_refused_as_documented(tmp_path: Path) -> None:
    (spec,) = tagged("bad-spec")
    (refusal,) = tagged("refusal")
    (tmp_path / "bad.yaml").write_text(spec.text)
    proc = _check("bad.yaml", cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert refusal.text.strip() in (proc.stdout + proc.stderr).splitlines(), proc.stdout + proc.stderr


@pytest.mark.parametrize("block", tagged("docker-build"), ids=lambda s: s.where)
def test_docker_build_lines_name_the_dockerfiles(block: Snippet) -> None:
    built = {}
    for line in block.lines():
        args = shlex.split(line)
        assert args[:2] == ["docker", "build"], f"{block.where}: {line}"
        dockerfile, tag = args[args.index("-f") + 1], args[args.index("-t") + 1]
        assert (ROOT / dockerfile).is_file(), f"{block.where}: no {dockerfile}"
        built[dockerfile] = tag
    # the tag each Dockerfile gets is the name the images module gives it, without the registry
    assert built == {f: images.image_name(name).removeprefix("localhost/") for name, f in images.IMAGES.items()}, (
        f"{block.where}: {built}"
    )


def test_layout_paths_exist() -> None:
    (block,) = tagged("layout")
    paths = [line.split()[0] for line in block.lines() if not line.startswith(" ")]
    assert len(paths) >= 8
    missing = [p for p in paths if not (ROOT / p).exists()]
    assert not missing, f"{block.where}: {missing}"


def _spec_fields() -> set[str]:
    reference = (ROOT / "docs" / "crd-reference.md").read_text()
    return {
        part for path in re.findall(r"^\| `spec\.([^`]+)`", reference, re.M) for part in re.split(r"[.\[\]]+", path)
    }


@pytest.mark.parametrize("block", tagged("diagram"), ids=lambda s: s.where)
def test_diagrams_name_real_things(block: Snippet) -> None:
    env = {v for k, v in vars(c).items() if k.startswith("ENV_")}
    paths = {v for k, v in vars(c).items() if k.endswith("_PATH")}
    # spec fields, the Pod's own names, and the keys the workload sends (string literals in its code)
    wire = set(
        re.findall(
            r'"([a-z]+[A-Z][A-Za-z]+)"',
            "".join(p.read_text() for top in ("workload", "common") for p in (ROOT / top).rglob("*.py")),
        )
    )
    fields = _spec_fields() | {"preStop", "terminationGracePeriod"} | wire
    text = block.text
    named_env = set(re.findall(r"\bWSFLEET_[A-Z_]+\b", text))
    named_paths = set(re.findall(r"(?<![\w.])(/[a-z]+/[a-z/]*)", text))
    named_fields = set(re.findall(r"\b[a-z]+[A-Z][A-Za-z]+\b", text))
    assert named_env | named_paths | named_fields, f"{block.where}: names nothing to check"
    assert named_env <= env, f"{block.where}: unknown variables {sorted(named_env - env)}"
    assert named_paths <= paths, f"{block.where}: unknown paths {sorted(named_paths - paths)}"
    assert named_fields <= fields, f"{block.where}: not spec fields {sorted(named_fields - fields)}"


def test_get_wss_columns_are_the_printer_columns() -> None:
    (block,) = tagged("get-wss")
    crd = yaml.safe_load((ROOT / "crds" / "websocketservices.wsfleet.dev.yaml").read_text())
    columns = [col["name"].upper() for col in crd["spec"]["versions"][0]["additionalPrinterColumns"]]
    header = re.split(r"\s{2,}", block.lines()[0].strip())
    assert header == ["NAME", *columns], (header, columns)


def test_log_line_has_the_fields_a_real_refusal_logs() -> None:
    (block,) = tagged("log-line")
    documented = json.loads(block.text)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.formatter("json", "workload"))
    logger = logging.getLogger("wsfleet.refused")
    logger.addHandler(handler)
    try:
        refused(Metrics(), documented["what"], documented["reason"], "message too big", ip="127.0.0.1")
    finally:
        logger.removeHandler(handler)
    real = json.loads(stream.getvalue())
    assert list(documented) == list(real), (list(documented), list(real))
    assert {k: documented[k] for k in ("level", "component", "logger", "event")} == {
        k: real[k] for k in ("level", "component", "logger", "event")
    }


def test_pytest_lines_collect_tests() -> None:
    for block in tagged("pytest"):
        for line in block.lines():
            args = shlex.split(line, comments=True)
            while "=" in args[0]:  # leading VAR=value assignments
                args.pop(0)
            assert args[0].endswith("pytest"), line
            proc = subprocess.run([str(BIN / "pytest"), "--collect-only", "-q", *args[1:]], cwd=ROOT,
                                  capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
            assert proc.returncode == 0, f"{block.where}: {line}\n{proc.stdout[-2000:]}"
            assert re.search(r"\b[1-9]\d* tests? collected", proc.stdout), (
                f"{block.where}: {line}: {proc.stdout[-500:]}"
            )


def test_validate_lines_parse() -> None:
    for block in tagged("validate"):
        for line in block.lines():
            args = shlex.split(line.replace("[", "").replace("]", ""), comments=True)
            assert args[0] == "wsfleet", line
            parsed = cli.parser().parse_args(args[1:])
            assert parsed.func is cli.cmd_validate, line


def test_kustomize_directories_build() -> None:
    for block in tagged("kustomize"):
        for line in block.lines():
            args = shlex.split(line, comments=True)
            directory = args[args.index("-k") + 1]
            proc = subprocess.run([str(BIN / "kubectl"), "kustomize", str(ROOT / directory)], capture_output=True,
                                  text=True, timeout=60, check=False)  # fmt: skip
            assert proc.returncode == 0, f"{block.where}: {line}: {proc.stderr}"
            assert "kind:" in proc.stdout


def test_promql_blocks_pass_promtool(tmp_path: Path) -> None:
    exprs = [line for block in tagged("promql") for line in block.lines()]
    assert exprs
    proc = tools.check_expressions(exprs, tmp_path, "docs")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in proc.stdout
