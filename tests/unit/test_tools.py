"""`make test` on a fresh machine: the Debian packages are checked before anything is built, and a
user who is not root is told at once what to run."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_make_test_checks_the_tools_before_it_builds() -> None:
    line = next(x for x in (ROOT / "Makefile").read_text().splitlines() if x.startswith("test:"))
    prerequisites = line.split(":", 1)[1].split()
    assert prerequisites[0] == "tools", f"`make test` builds before it checks the tools: {line}"


def _bare_path(where: Path, tools: list[str]) -> str:
    """A PATH with only `tools` on it: a machine without redis-server, haproxy, node, ..."""
    bin_ = where / "bin"
    bin_.mkdir()
    for t in tools:
        found = shutil.which(t)
        assert found, t
        (bin_ / t).symlink_to(found)
    return str(bin_)


@pytest.mark.skipif(os.getuid() != 0, reason="switches to an unprivileged user, which needs root")
def test_a_user_who_is_not_root_is_told_what_to_install() -> None:
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux)"
    with tempfile.TemporaryDirectory() as d:  # pytest's tmp_path is root's alone (0700)
        where = Path(d)
        where.chmod(0o755)
        path = _bare_path(where, ["bash", "id", "ls", "apt-cache"])
        run = subprocess.run(
            [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", str(ROOT / "hack/install-tools.sh")],
            env={"PATH": path, "HOME": d}, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert run.returncode == 1, run.stdout + run.stderr
    assert run.stdout.startswith("missing Debian packages: redis-server"), run.stdout
    command = re.search(r"sudo apt-get update && sudo apt-get install -y --no-install-recommends (.*)", run.stdout)
    assert command, run.stdout
    # haproxy and chromium are found by their absolute paths where Debian puts them
    assert {"redis-server", "nodejs", "npm"} <= set(command.group(1).split())
