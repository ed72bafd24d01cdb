"""Kubernetes-style duration strings ("25s", "5m", "1h30m"), parsed once into whole seconds.

Why whole seconds: every value these durations end up in (probe periods, grace
periods, ALB and GCE attributes, ingress-nginx timeouts) is an integer number of
seconds. Accepting "1.5s" would force a rounding rule somewhere, and a rounding
rule can quietly break an invariant.

The accepted grammar is a strict subset of Go's time.ParseDuration, which is
what CEL's duration() uses on the API server, so a string the CRD accepts parses
to the same number of seconds on both sides.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

# At most six digits per unit keeps every value far inside CEL's duration range,
# so the API server can never fail to evaluate a rule on an absurd value.
_PATTERN = r"^(?:[0-9]{1,6}h)?(?:[0-9]{1,6}m)?(?:[0-9]{1,6}s)?$"
_RE = re.compile(r"^(?:(?P<h>[0-9]{1,6})h)?(?:(?P<m>[0-9]{1,6})m)?(?:(?P<s>[0-9]{1,6})s)?$")
MAX_LENGTH = 21


class DurationError(ValueError):
    """A duration string that can't be used; the message names the value."""


def parse(value: object, *, minimum: int = 1, maximum: int | None = None) -> int:
    """Parse a duration string into whole seconds, within [minimum, maximum]."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise DurationError(f"{value!r} is not a duration string; write it like 25s, 5m or 1h30m")
    match = _RE.match(value.strip())
    if not value.strip() or match is None:
        raise DurationError(
            f"{value!r} is not a duration; use whole hours, minutes and seconds like 25s, 5m or 1h30m "
            "(no fractions, no ms, no negative values)"
        )
    seconds = int(match["h"] or 0) * 3600 + int(match["m"] or 0) * 60 + int(match["s"] or 0)
    if seconds < minimum:
        need = "positive" if minimum == 1 else f"at least {format_seconds(minimum)}"
        raise DurationError(f"{value!r} must be {need}")
    if maximum is not None and seconds > maximum:
        raise DurationError(f"{value!r} must be at most {format_seconds(maximum)}")
    return seconds


def format_seconds(seconds: int) -> str:
    """The canonical string for a number of seconds: 90 -> '1m30s', 86400 -> '24h'."""
    if seconds == 0:
        return "0s"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return "".join(f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if n)


def cel_rules(minimum: int, maximum: int | None) -> list[dict[str, str]]:
    """The CEL rules the API server runs on one duration field, mirroring parse()."""
    rules = []
    if minimum > 0:
        word = "positive" if minimum == 1 else f"at least {format_seconds(minimum)}"
        rules.append(
            {
                "rule": f"duration(self).getSeconds() >= {minimum}",
                "messageExpression": f"'\\'' + self + '\\' must be {word}'",
            }
        )
    if maximum is not None:
        rules.append(
            {
                "rule": f"duration(self).getSeconds() <= {maximum}",
                "messageExpression": f"'\\'' + self + '\\' must be at most {format_seconds(maximum)}'",
            }
        )
    return rules


def duration_type(minimum: int = 1, maximum: int | None = None) -> Any:
    """An annotated int type: parsed from a duration string, serialised back to one."""

    def _validate(value: object) -> int:
        return parse(value, minimum=minimum, maximum=maximum)

    schema: dict[str, Any] = {
        "type": "string",
        "pattern": _PATTERN,
        "maxLength": MAX_LENGTH,
        "x-kubernetes-validations": cel_rules(minimum, maximum),
    }
    return Annotated[
        int,
        BeforeValidator(_validate),
        PlainSerializer(format_seconds, return_type=str),
        WithJsonSchema(schema),
    ]


# The duration types used by the model. Type checkers see the Python value (int seconds).
if TYPE_CHECKING:
    Duration = int
    HpaPeriod = int
    HpaWindow = int
else:
    Duration = duration_type()
    HpaPeriod = duration_type(minimum=1, maximum=1800)  # HPA policy periodSeconds: 1..1800
    HpaWindow = duration_type(minimum=0, maximum=3600)  # HPA stabilizationWindowSeconds: 0..3600
