"""Generate the CustomResourceDefinition (and its reference doc) from the model.

The pydantic JSON schema is turned into a Kubernetes structural schema: $refs
inlined, Optional unwrapped, titles dropped, nested object defaults written as
``{}`` so the API server fills in their fields, and the cross-field rules of
validation.RULES attached to .spec as CEL ``x-kubernetes-validations``.

The output is committed under crds/; tests/unit/test_crd.py fails when it is
stale and says to run ``wsfleet crd``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import SchemaSerializer, core_schema

from wsfleet_operator import model
from wsfleet_operator.validation import RULES

CRD_FILE = Path("crds") / f"{model.PLURAL}.{model.GROUP}.yaml"
CHART_CRD_FILE = Path("deploy") / "helm" / "wsfleet" / "files" / CRD_FILE.name
REFERENCE_FILE = Path("docs") / "crd-reference.md"

# Keys of JSON schema that a structural schema keeps.
_KEEP = {
    "type",
    "description",
    "default",
    "enum",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "format",
}


def _structural(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Convert one pydantic JSON-schema node into a structural schema node."""
    node = dict(node)
    if "$ref" in node:
        target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        merged = {**target, **node}  # the field's own description and default win
        return _structural(merged, defs)
    if "anyOf" in node:
        variants = [v for v in node.pop("anyOf") if v.get("type") != "null"]
        if len(variants) != 1:
            raise ValueError(f"crd: can't express a union of {variants} structurally")
        # Optional[X] = None: absent means "derive it", so no default is written.
        return _structural({**variants[0], **node}, defs)
    if "const" in node:
        node["enum"] = [node.pop("const")]
    out: dict[str, Any] = {k: v for k, v in node.items() if k in _KEEP or k.startswith("x-kubernetes-")}
    if out.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
    # The API server estimates CEL cost from the largest value a field can hold; an enum's
    # longest member is its bound.
    if out.get("type") == "string" and "enum" in out and "maxLength" not in out:
        out["maxLength"] = max(len(str(v)) for v in out["enum"])
    if "properties" in node:
        out["type"] = "object"
        out["properties"] = {k: _structural(v, defs) for k, v in node["properties"].items()}
        if node.get("required"):
            out["required"] = sorted(node["required"])
        # Object defaults: write {} when the API server, applying each nested field's own
        # default, arrives at the same object; otherwise (scaleUp and scaleDown share a
        # class but not defaults) keep the whole default.
        if isinstance(out.get("default"), dict) and apply_defaults(out, {}) == out["default"]:
            out["default"] = {}
    elif node.get("type") == "object" and isinstance(node.get("additionalProperties"), dict):
        out["additionalProperties"] = _structural(node["additionalProperties"], defs)
    if node.get("type") == "array" and "items" in node:
        out["items"] = _structural(node["items"], defs)
    if out.get("default") is None:
        out.pop("default", None)
    return out


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """Apply a structural schema's defaults to a value, as the API server does on every read and write."""
    if isinstance(value, dict) and "properties" in schema:
        out = dict(value)
        for name, sub in schema["properties"].items():
            if name not in out and "default" in sub:
                out[name] = copy.deepcopy(sub["default"])
            if name in out:
                out[name] = apply_defaults(sub, out[name])
        return out
    if isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        return {k: apply_defaults(schema["additionalProperties"], v) for k, v in value.items()}
    if isinstance(value, list) and "items" in schema:
        return [apply_defaults(schema["items"], v) for v in value]
    return value


class _Generator(GenerateJsonSchema):
    """Writes every default as the API sees it: through the field's own serializer ("25s", not 25),
    and including default_factory fields, which pydantic leaves out."""

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        if schema.get("default_factory_takes_data"):
            return super().default_schema(schema)
        factory = schema.get("default_factory")
        value = factory() if factory is not None else schema.get("default")  # type: ignore[call-arg]
        json_schema = self.generate_inner(schema["schema"])
        if value is None:
            return json_schema
        if isinstance(value, BaseModel):
            json_schema["default"] = value.model_dump(by_alias=True, mode="json", exclude_none=True)
        else:
            json_schema["default"] = SchemaSerializer(schema["schema"]).to_python(value, mode="json")
        return json_schema


def _schema(cls: type[BaseModel]) -> dict[str, Any]:
    raw = cls.model_json_schema(by_alias=True, mode="validation", schema_generator=_Generator)
    defs = raw.pop("$defs", {})
    return _structural(raw, defs)


def spec_schema() -> dict[str, Any]:
    schema = _schema(model.WebSocketServiceSpec)
    schema["x-kubernetes-validations"] = [
        {"rule": rule, "messageExpression": message} for r in RULES if not r.each for rule, message in r.cel
    ]
    for r in RULES:
        if r.each:  # on each item of a list field: `self` is the item, and the API server names its index
            items = schema["properties"][r.each]["items"]
            items.setdefault("x-kubernetes-validations", []).extend(
                {"rule": rule, "messageExpression": message} for rule, message in r.cel
            )
    return schema


def status_schema() -> dict[str, Any]:
    return _schema(model.WebSocketServiceStatus)


PRINTER_COLUMNS = [
    {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
    {"name": "Provider", "type": "string", "jsonPath": ".spec.loadBalancer.provider"},
    {"name": "Replicas", "type": "integer", "jsonPath": ".status.readyReplicas"},
    {"name": "Idle timeout", "type": "integer", "jsonPath": ".status.timeouts.idleTimeoutSeconds"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def crd() -> dict[str, Any]:
    """The CustomResourceDefinition, as a dict."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{model.PLURAL}.{model.GROUP}"},
        "spec": {
            "group": model.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": model.KIND,
                "listKind": f"{model.KIND}List",
                "plural": model.PLURAL,
                "singular": model.SINGULAR,
                "shortNames": model.SHORT_NAMES,
                "categories": ["wsfleet", "all"],
            },
            "versions": [
                {
                    "name": model.VERSION,
                    "served": True,
                    "storage": True,
                    # No scale subresource: the replica count is a range owned by the HPA, and a
                    # single "replicas" would mean two writers of one number (I9).
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": (
                                "A WebSocketService runs a Socket.IO fleet whose load balancer, shutdown "
                                "timeline, probes, autoscaling and disruption budget agree with each other."
                            ),
                            "properties": {
                                "apiVersion": {"type": "string", "description": "API version."},
                                "kind": {"type": "string", "description": "Kind."},
                                "metadata": {"type": "object"},
                                "spec": spec_schema(),
                                "status": status_schema(),
                            },
                            "x-kubernetes-validations": [
                                {
                                    "rule": "size(self.metadata.name) <= 56",
                                    "message": "metadata.name must be at most 56 characters (child names add suffixes)",
                                }
                            ],
                        }
                    },
                }
            ],
        },
    }


def crd_yaml() -> str:
    header = "# Generated from operator/wsfleet_operator/model/ by `wsfleet crd`. Do not edit.\n"
    return header + yaml.safe_dump(crd(), sort_keys=False, width=120)


# ---------------------------------------------------------------------------
# Reference documentation
# ---------------------------------------------------------------------------


def default_cell(default: Any) -> str:
    """A default as one Markdown table cell: `25s`, `3001`, `true`, `[websocket, polling]`.
    (yaml.safe_dump of a lone scalar ends its document with a '...' line, which broke the cell.)"""
    if default is None or default == {}:
        return ""
    if isinstance(default, bool):
        text = "true" if default else "false"
    elif isinstance(default, dict | list):
        text = yaml.safe_dump(default, default_flow_style=True, width=10_000).strip()
    else:
        text = str(default)
    escaped = text.replace("|", "\\|")
    return f"`{escaped}`"


def _rows(schema: dict[str, Any], path: str) -> list[tuple[str, str, str, str]]:
    rows = []
    for name, sub in schema.get("properties", {}).items():
        here = f"{path}.{name}"
        kind = sub.get("type", "int-or-string" if sub.get("x-kubernetes-int-or-string") else "object")
        if "enum" in sub:
            kind = " \\| ".join(str(v) for v in sub["enum"])
        rows.append((here, kind, default_cell(sub.get("default")), sub.get("description", "").replace("|", "\\|")))
        if sub.get("type") == "object":
            rows += _rows(sub, here)
        elif sub.get("type") == "array" and sub.get("items", {}).get("type") == "object":
            rows += _rows(sub["items"], here + "[]")
    return rows


def reference_markdown() -> str:
    lines = [
        "# WebSocketService reference",
        "",
        "<!-- Generated from operator/wsfleet_operator/model/ by `wsfleet crd`. Do not edit. -->",
        "",
        f"`apiVersion: {model.API_VERSION}`, `kind: {model.KIND}`, short name `{model.SHORT_NAMES[0]}`.",
        "",
        "## Spec",
        "",
        "| Field | Type | Default | Description |",
        "|---|---|---|---|",
    ]
    lines += [f"| `{p}` | {k} | {d} | {desc} |" for p, k, d, desc in _rows(spec_schema(), "spec")]
    rendered = " and ".join(r.id for r in RULES if r.rendered_only)
    lines += [
        "",
        "## Rules",
        "",
        f"Checked by the API server (CEL) and by `wsfleet check`; {rendered} on the rendered objects.",
        "",
    ]
    lines += ["| Id | Must hold | Why |", "|---|---|---|"]
    lines += [f"| {r.id} | {r.title} | {r.rationale} |" for r in RULES]
    lines += ["", "## Status", "", "| Field | Type | Default | Description |", "|---|---|---|---|"]
    lines += [f"| `{p}` | {k} | {d} | {desc} |" for p, k, d, desc in _rows(status_schema(), "status")]
    return "\n".join(lines) + "\n"


def _outputs(root: Path) -> dict[Path, str]:
    # The Helm chart's copy: a chart reads files inside its own directory only.
    crd = crd_yaml()
    return {root / CRD_FILE: crd, root / CHART_CRD_FILE: crd, root / REFERENCE_FILE: reference_markdown()}


def write(root: Path) -> list[Path]:
    """Write the CRD, the chart's copy of it and the reference doc under root; return the paths written."""
    outputs = _outputs(root)
    for path, text in outputs.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return list(outputs)


def stale(root: Path) -> list[Path]:
    """Committed files that differ from what the model generates."""
    return [p for p, text in _outputs(root).items() if not p.exists() or p.read_text() != text]
