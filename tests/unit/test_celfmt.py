"""The message converter: concatenation -> `format`, as the API server's cost estimator needs."""

from __future__ import annotations

import celpy
import pytest

from wsfleet_operator import cel
from wsfleet_operator.celfmt import to_format
from wsfleet_operator.validation import RULES


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("'static text'", "'static text'"),
        (
            "'I5: min ' + string(self.a) + ' must exceed ' + string(self.b + 1)",
            "'I5: min %d must exceed %d'.format([self.a, self.b + 1])",
        ),
        ("'path ' + self.p + ' is bad'", "'path %s is bad'.format([self.p])"),
        # a single quote in the text: the template goes in double quotes
        ('"path \'" + self.p + "\' is bad"', "\"path '%s' is bad\".format([self.p])"),
        ("'x ' + string(f(a, b)) + 's and 100%'", "'x %ds and 100%%'.format([f(a, b)])"),
        ("'t ' + string(a ? (b + c) : {'k': 1}['k'])", "'t %d'.format([a ? (b + c) : {'k': 1}['k']])"),
    ],
)
def test_to_format(message: str, expected: str) -> None:
    assert to_format(message) == expected


def test_unbalanced_is_refused() -> None:
    with pytest.raises(ValueError, match="unbalanced"):
        to_format("'open + string(x")


def test_no_rule_message_uses_string_conversion() -> None:
    for rule in RULES:
        for _, message in rule.cel:
            assert "string(" not in message, (rule.id, message)


def test_converted_messages_evaluate_to_the_same_text() -> None:
    env = celpy.Environment()
    original = "'I5: replicas.min ' + string(self.a) + ' must be at least ' + string(self.b + 1) + ' (' + self.p + ')'"
    act = {"self": celpy.json_to_cel({"a": 2, "b": 2, "p": "/x"})}
    plain = str(env.program(env.compile(original)).evaluate(act))
    assert str(cel.program(to_format(original)).evaluate(act)) == plain == "I5: replicas.min 2 must be at least 3 (/x)"
