"""docs/workload.md's code blocks, run against real workloads and a real Redis.

| block          | run                                                                           |
|----------------|-------------------------------------------------------------------------------|
| `workload-run` | each line starts a workload that serves /health/ready (the test's Redis URL in place of the example's) |
| `js-client`    | with node and the official socket.io-client, the docs' host replaced by a workload's URL; a published message reaches `render` |
| `publish`      | curl against a workload (host and $KEY replaced); the answer has the documented shape |
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.support.processes import JS, Redis, Workload, free_port, http, wait_for
from tests.support.secrets import API_KEY
from tests.support.snippets import tagged
from wsfleet_common import contract as c

DOC_HOST = "https://chat.example.com"


def test_workload_run_lines_serve(redis: Redis, tmp_path: Path) -> None:
    (block,) = tagged("workload-run")
    bin_dir = Path(sys.executable).parent
    for n, line in enumerate(block.lines()):
        port = free_port()
        command = line.replace("redis://127.0.0.1:6379/0", redis.url)
        env = {**os.environ, "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}", c.ENV_REDIS_URL: redis.url,
               c.ENV_PORT: str(port), c.ENV_METRICS_PORT: str(free_port()), c.ENV_HOST: "127.0.0.1"}  # fmt: skip
        with open(tmp_path / f"workload-run-{n}.log", "wb") as log:
            # `env` takes the leading VAR=value words, and exec leaves the workload as the process we signal
            proc = subprocess.Popen(
                ["bash", "-c", f"exec env {command}"], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            wait_for(lambda p=port: _ready(p), 20, f"{block.where}: `{line}` serving on :{port}")  # type: ignore[misc]
        finally:
            proc.terminate()
            assert proc.wait(30) == 0, (tmp_path / f"workload-run-{n}.log").read_text()[-2000:]


def _ready(port: int) -> bool:
    try:
        return http("GET", f"http://127.0.0.1:{port}{c.READY_PATH}", timeout=2)[0] == 200
    except OSError:
        return False


def test_js_client_receives_a_published_message(workloads: Callable[..., Workload]) -> None:
    (block,) = tagged("js-client")
    w = workloads("a")
    assert DOC_HOST in block.text
    script = JS / f"doc-client-{os.getpid()}.mjs"  # beside node_modules, so the import resolves
    prelude = (
        "const token = undefined;\nconst render = (data) => { console.log(JSON.stringify(data)); process.exit(0); };\n"
    )
    script.write_text(prelude + block.text.replace(DOC_HOST, w.url))
    node = shutil.which("node") or "node"
    try:
        with subprocess.Popen([node, str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
            deadline = time.monotonic() + 20
            seq = 0
            while proc.poll() is None and time.monotonic() < deadline:
                seq += 1  # until the client has joined and renders one
                w.publish("lobby", {"text": "hi", "seq": seq})
                time.sleep(0.2)
            if proc.poll() is None:
                proc.kill()
            out = proc.stdout.read() if proc.stdout else ""
            assert proc.wait(5) == 0, out
    finally:
        script.unlink(missing_ok=True)
    rendered = json.loads(out.strip().splitlines()[-1])
    assert rendered["text"] == "hi", out


def test_publish_with_curl(workloads: Callable[..., Workload]) -> None:
    (block,) = tagged("publish")
    w = workloads("a")
    command = "\n".join(x for x in block.lines() if not x.lstrip().startswith("#")).replace(DOC_HOST, w.url)
    documented = json.loads(next(x for x in block.lines() if x.lstrip().startswith("# {")).lstrip("# "))
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", command], env={**os.environ, "KEY": API_KEY},
                          capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout)
    assert set(answer) == set(documented), (answer, documented)
    assert [set(r) for r in answer["results"]] == [set(r) for r in documented["results"]], answer
    assert answer["results"][0]["room"] == "lobby"
    assert re.fullmatch(r"[0-9a-f]+", answer["results"][0]["epoch"]), answer
