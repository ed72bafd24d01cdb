"""Turn a CEL message built by concatenation into the `format` form the API server can cost.

The API server estimates the cost of every messageExpression from the largest
value each operand could hold. `string(<int>)` has no size bound in that
estimate, so each concatenation after it is costed at the request-size limit
and the CRD is refused ("exceeds budget by factor of more than 100x"). The
strings extension's `'... %d ...'.format([...])` is bounded, so every rule
message is written as a readable concatenation and converted here:

    'I5: replicas.min ' + string(self.replicas.min) + ' must be ...'
    ->  'I5: replicas.min %d must be ...'.format([self.replicas.min])

Only the shapes our rules use are accepted: quoted literals without escapes ('...', or "..."
where the text holds a single quote), `string(<int expr>)` (-> %d), and bare string expressions
(-> %s).
"""

from __future__ import annotations


def _split_top_level(expr: str) -> list[str]:
    """Split on '+' outside quotes, parentheses, brackets and braces."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(expr):
        if quote:
            quote = "" if ch == quote else quote
            continue
        if ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "+" and depth == 0:
            parts.append(expr[start:i].strip())
            start = i + 1
    if quote or depth:
        raise ValueError(f"unbalanced CEL message: {expr}")
    parts.append(expr[start:].strip())
    return parts


def _is_literal(part: str) -> bool:
    return len(part) >= 2 and part[0] == part[-1] in "'\"" and part[0] not in part[1:-1] and "\\" not in part


def _one_call(part: str, name: str) -> str | None:
    """The argument if `part` is exactly `name(<arg>)`, else None."""
    if not (part.startswith(name + "(") and part.endswith(")")):
        return None
    depth, quote = 0, False
    for i, ch in enumerate(part[len(name) :], start=len(name)):
        if ch == "'":
            quote = not quote
        elif not quote and ch in "([{":
            depth += 1
        elif not quote and ch in ")]}":
            depth -= 1
            if depth == 0 and i != len(part) - 1:
                return None  # the call closes early: `string(a) + ...` is not one call
    return part[len(name) + 1 : -1]


def to_format(message: str) -> str:
    """The `format` form of a concatenated CEL message (unchanged if it is a single literal)."""
    template, args = "", []
    for part in _split_top_level(message):
        if _is_literal(part):
            template += part[1:-1].replace("%", "%%")
        elif (arg := _one_call(part, "string")) is not None:
            template += "%d"
            args.append(arg)
        else:
            template += "%s"
            args.append(part)
    if "'" in template and '"' in template:
        raise ValueError(f"a CEL message with both quote characters: {message}")
    quoted = f'"{template}"' if "'" in template else f"'{template}'"
    if not args:
        return quoted
    return f"{quoted}.format([{', '.join(args)}])"
