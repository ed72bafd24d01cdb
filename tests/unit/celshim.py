"""A cel-python environment with the Kubernetes strings extension's `format`.

cel-python has no `format`; the API server does (k8s CEL strings library). This
shim implements the two verbs our messages use, %d and %s, plus %% - the same
semantics as the extension for those verbs. It is a stand-in for a function
the real API server provides; tests/integration checks the real one.
"""

from __future__ import annotations

import re
from typing import Any

import celpy
from celpy import celtypes


def _format(template: Any, args: Any) -> celtypes.StringType:
    values = iter(args)

    def sub(match: re.Match[str]) -> str:
        verb = match.group(1)
        if verb == "%":
            return "%"
        value = next(values)
        return str(int(value)) if verb == "d" else str(value)

    return celtypes.StringType(re.sub(r"%([ds%])", sub, str(template)))


def program(env: celpy.Environment, expr: str) -> celpy.Runner:
    return env.program(env.compile(expr), functions={"format": _format})
