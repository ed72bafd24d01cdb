"""Run the CRD's cross-field rules in the operator: the same CEL the API server runs.

Every cross-field rule (the timing invariants in invariants.py, the structural rules in
validation.py) is written once, as the CEL rule and messageExpression that go into the CRD's
``x-kubernetes-validations``. The operator, ``wsfleet check`` and the rendered-output audit
evaluate that same text here, through cel-python, on the spec as the API server holds it (the
model's defaults applied). So the API server and the operator cannot disagree about a rule or its
message: there is no second copy to drift.

Why CEL and not Python as the source: the API server only runs CEL, so a rule must exist in CEL
anyway, and one evaluated copy is less to keep true than a Python twin kept in line by tests.
What CEL cannot say over a spec (a property of rendered objects only, such as I9) is a Python
check in render/audit.py, and only there.

cel-python has no `format`, which the API server's strings extension has and every message uses
(celfmt.py says why); `_format` below gives the two verbs our messages use, %d and %s, and %%,
with the extension's meaning for them. The integration tier applies refused specs to a real API
server, which checks the real one.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any

import celpy
from celpy import celtypes
from celpy.adapter import json_to_cel


def _format(template: Any, args: Any) -> celtypes.StringType:
    values = iter(args)

    def sub(match: re.Match[str]) -> str:
        verb = match.group(1)
        if verb == "%":
            return "%"
        value = next(values)
        return str(int(value)) if verb == "d" else str(value)

    return celtypes.StringType(re.sub(r"%([ds%])", sub, str(template)))


@functools.cache
def _environment() -> celpy.Environment:
    return celpy.Environment()


@functools.cache
def program(expr: str) -> celpy.Runner:
    """One compiled CEL expression (compiled once per process)."""
    env = _environment()
    return env.program(env.compile(expr), functions={"format": _format})


def failures(pairs: Iterable[tuple[str, str]], spec: Mapping[str, Any]) -> list[str]:
    """The messages of the (rule, messageExpression) pairs that fail on `spec` (the .spec object
    as JSON, defaults applied), in order."""
    activation = {"self": json_to_cel(dict(spec))}
    out = []
    for rule, message in pairs:
        if not bool(program(rule).evaluate(activation)):
            out.append(str(program(message).evaluate(activation)))
    return out
