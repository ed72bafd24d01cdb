"""The generated CRD: fresh, structural, documented, and defaulting like the model."""

from __future__ import annotations

import re
from typing import Any

import celpy
import kubernetes_validate
import yaml

from tests.conftest import ROOT
from wsfleet_operator import crd
from wsfleet_operator.durations import DurationError, parse
from wsfleet_operator.model import WebSocketServiceSpec


def test_committed_crd_and_reference_are_fresh() -> None:
    stale = crd.stale(ROOT)
    assert not stale, f"{[str(p) for p in stale]} differ from the model: run `wsfleet crd` to regenerate them"


def _walk(node: dict[str, Any], path: str = "spec") -> list[tuple[str, dict[str, Any]]]:
    out = [(path, node)]
    for name, sub in node.get("properties", {}).items():
        out += _walk(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        out += _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        out += _walk(node["additionalProperties"], f"{path}{{}}")
    return out


def test_schema_is_structural() -> None:
    for path, node in _walk(crd.spec_schema()) + _walk(crd.status_schema(), "status"):
        assert not {"$ref", "anyOf", "allOf", "oneOf", "title", "$defs"} & set(node), path
        if "properties" in node:
            assert node["type"] == "object", path
            assert "additionalProperties" not in node, path
        assert (
            "type" in node or node.get("x-kubernetes-int-or-string") or node.get("x-kubernetes-preserve-unknown-fields")
        ), path
        if "pattern" in node:
            re.compile(node["pattern"])


def test_every_property_has_a_description() -> None:
    for root, schema in (("spec", crd.spec_schema()), ("status", crd.status_schema())):
        for path, node in _walk(schema, root):
            for name, sub in node.get("properties", {}).items():
                assert sub.get("description"), f"{path}.{name} has no description (kubectl explain shows it)"


def test_api_server_defaults_equal_model_defaults() -> None:
    # What the API server stores for `spec: {}` must be what the operator parses it as.
    defaulted = crd.apply_defaults(crd.spec_schema(), {})
    model = WebSocketServiceSpec().model_dump(by_alias=True, mode="json", exclude_none=True)
    assert defaulted == model


def test_partial_objects_default_their_missing_fields() -> None:
    defaulted = crd.apply_defaults(crd.spec_schema(), {"heartbeat": {"interval": "10s"}})
    assert defaulted["heartbeat"] == {"interval": "10s", "timeout": "25s"}
    assert defaulted["autoscaling"]["scaleDown"] == {"percent": 50, "period": "1m", "stabilization": "5m"}


def test_crd_validates_against_kubernetes_1_36() -> None:
    text = (ROOT / crd.CRD_FILE).read_text()
    kubernetes_validate.validate(yaml.safe_load(text), "1.36.0", strict=True)


def test_crd_shape() -> None:
    c = crd.crd()
    version = c["spec"]["versions"][0]
    assert c["metadata"]["name"] == "websocketservices.wsfleet.dev"
    assert c["spec"]["names"]["shortNames"] == ["wss"]
    assert version["subresources"] == {"status": {}}
    assert [col["name"] for col in version["additionalPrinterColumns"]] == [
        "Ready",
        "Provider",
        "Replicas",
        "Idle timeout",
        "Age",
    ]
    conditions = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]


def test_every_duration_field_carries_its_cel_rule() -> None:
    for path, node in _walk(crd.spec_schema()):
        if node.get("pattern", "").startswith("^(?:[0-9]{1,6}h)"):
            rules = [v["rule"] for v in node.get("x-kubernetes-validations", [])]
            assert any(r.startswith("duration(self).getSeconds()") for r in rules), path


def test_field_level_duration_cel_agrees_with_the_parser() -> None:
    env = celpy.Environment()
    samples = ["0s", "1s", "59s", "5m", "30m", "31m", "1h", "2h"]
    bounds = {(0, 1800), (1, None), (1, 1800), (0, 3600)}
    checked = set()
    for path, node in _walk(crd.spec_schema()):
        rules = node.get("x-kubernetes-validations", [])
        if not node.get("pattern", "").startswith("^(?:[0-9]{1,6}h)"):
            continue
        programs = [
            (env.program(env.compile(r["rule"])), env.program(env.compile(r["messageExpression"]))) for r in rules
        ]
        for text in samples:
            act = {"self": celpy.json_to_cel(text)}
            cel_ok = all(bool(rule.evaluate(act)) for rule, _ in programs)
            lo = 0 if all(">= 1" not in r["rule"] for r in rules) else 1
            hi = next((int(r["rule"].rsplit(" ", 1)[1]) for r in rules if "<=" in r["rule"]), None)
            checked.add((lo, hi))
            try:
                parse(text, minimum=lo, maximum=hi)
                py_ok = True
            except DurationError:
                py_ok = False
            assert cel_ok == py_ok, (path, text)
            for rule, message in programs:
                if not bool(rule.evaluate(act)):
                    assert str(message.evaluate(act)).startswith(f"'{text}' must be"), path
    assert checked <= bounds
    assert (1, None) in checked


def _cells(line: str) -> list[str]:
    """A Markdown table row's cells (a `\\|` inside a cell is no separator)."""
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def test_reference_table_cells_hold_the_defaults_of_the_schema() -> None:
    """Each field is one row of four cells, and its Default cell reads back (as YAML) as the
    schema's default: no YAML end-of-document marker, no value cut over two lines."""
    text = crd.reference_markdown()
    spec_table = text.split("## Spec", 1)[1].split("## Rules", 1)[0].strip().splitlines()
    rows = [_cells(line) for line in spec_table[2:]]
    assert all(line.startswith("| ") and line.endswith(" |") for line in spec_table[2:]), "a row spans lines"
    assert all(len(r) == 4 for r in rows), [r for r in rows if len(r) != 4][:3]

    def schema_at(path: str) -> dict[str, Any]:
        node = crd.spec_schema()
        for part in path.removeprefix("spec.").split("."):
            name = part.removesuffix("[]")
            node = node["properties"][name]
            if part.endswith("[]"):
                node = node["items"]
        return node

    checked = 0
    for field, _, default, _ in rows:
        expected = schema_at(field.strip("`")).get("default")
        if expected in (None, {}):
            assert default == "", (field, default)
            continue
        assert re.fullmatch(r"`[^`]+`", default), (field, default)
        assert yaml.safe_load(default.strip("`")) == expected, (field, default, expected)
        checked += 1
    assert checked >= 30, f"only {checked} defaults shown"
