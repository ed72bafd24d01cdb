"""External tools the tests use that do not come from the venv."""

from __future__ import annotations

import shutil
from pathlib import Path

# `make promtool` extracts promtool from Debian's prometheus package into <version>/promtool here.
PROMTOOL_CACHE = Path.home() / ".cache" / "wsfleet" / "promtool"


def promtool() -> str:
    found = shutil.which("promtool") or next(
        (str(p) for p in sorted(PROMTOOL_CACHE.glob("*/promtool"), reverse=True)), None
    )
    assert found, "promtool is missing: run `make promtool` (Debian's prometheus package, the binary only)"
    return found
