"""The generated parts of the hand-written docs: every number comes from the renderers.

A page marks a block with ``<!-- generated: NAME -->`` and ``<!-- /generated -->``; ``wsfleet crd``
rewrites what lies between from BLOCKS[NAME], and ``wsfleet crd --check`` (run by ``make lint``
and a unit test) fails when a committed page differs. So the load-balancer guide and the runbook
quote the invariants, the provider defaults, the derived timeouts of every example, the rendered
load-balancer objects and the alert expressions exactly as the code has them.

Pure apart from reading deploy/examples/.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from wsfleet_operator.model import API_VERSION, KIND, WebSocketService
from wsfleet_operator.providers import PROFILES, REGISTRY
from wsfleet_operator.render import monitoring, render_context
from wsfleet_operator.render.context import Context
from wsfleet_operator.timeouts import derive, fmt, hierarchy, timeline
from wsfleet_operator.validation import RULES

PAGES = (Path("docs") / "LOAD_BALANCER_CONFIGURATION.md", Path("docs") / "OPERATIONS_RUNBOOK.md")
EXAMPLES = Path("deploy") / "examples"
_BLOCK = re.compile(r"(<!-- generated: ([a-z-]+) -->\n)(.*?)(<!-- /generated -->)", re.S)


def _examples(root: Path) -> list[tuple[str, WebSocketService]]:
    out = []
    for path in sorted((root / EXAMPLES).glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "WebSocketService":
                out.append((f"{EXAMPLES / path.name}", WebSocketService.model_validate(doc)))
    return out


def _invariants(root: Path) -> str:
    rows = ["| Id | Must hold | Why | Checked by |", "|---|---|---|---|"]
    for r in RULES:
        where = ["API server (CEL)"] if r.cel else []
        where += ["`wsfleet check`", "the operator"] + (["on the rendered objects"] if r.rendered_only else [])
        rows.append(f"| {r.id} | {r.title} | {r.rationale} | {', '.join(where)} |")
    return "\n".join(rows)


def _profiles(root: Path) -> str:
    rows = [
        "| Provider | Load balancer | preStop default | Idle timeout set through | Lifetime cap | Connection draining | Limits |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, p in PROFILES.items():
        limits = []
        if p.idle_max:
            limits.append(f"idle <= {p.idle_max} s")
        if p.drain_max:
            limits.append(f"draining <= {p.drain_max} s")
        if p.cookie_ttl_max:
            limits.append(f"cookie TTL <= {p.cookie_ttl_max} s")
        if not p.client_ip_affinity:
            limits.append("no client-IP affinity")
        if p.fixed_cookie_name:
            limits.append(f"cookie name fixed: {p.fixed_cookie_name}")
        rows.append(
            f"| `{key}` | {p.label} | {p.pre_stop} s | {p.idle_setting or _no_idle(p.lifetime_setting, p.idle_limit)} "
            f"| {p.lifetime_setting or '-'} | {p.drain_setting or '-'} | {', '.join(limits) or '-'} |"
        )
    return "\n".join(rows)


def _no_idle(lifetime_setting: str | None, idle_limit: bool) -> str:
    if not idle_limit:
        return "none: upgraded connections are never closed for silence; the heartbeat notices dead peers"
    if lifetime_setting:
        return "none: the lifetime cap also bounds idle sockets"
    return "on your Gateway or load balancer, as `wsfleet check` prints it"


def _derived(root: Path) -> str:
    rows = [
        "| Example | Provider | Heartbeat window | LB idle | Lifetime cap | preStop | Drain | Grace | LB draining | Affinity |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for src, wss in _examples(root):
        t = derive(wss.spec)
        rows.append(
            f"| `{src}` | {t.profile.key} | {fmt(t.window)} ({fmt(t.interval)} + {fmt(t.timeout)}) | {fmt(t.idle)} "
            f"| {fmt(t.lifetime)} | {fmt(t.pre_stop)} | {fmt(t.drain)} | {fmt(t.grace)} "
            f"| {fmt(t.lb_drain) if t.lb_drain is not None else '-'} | {wss.spec.affinity.mode} |"
        )
    return "\n".join(rows)


def _lb_objects(root: Path) -> str:
    """Per example: the Service and the provider's objects, as the operator applies them (labels aside)."""
    parts = []
    for src, wss in _examples(root):
        ctx = Context.of(wss)
        service = next(m for m in render_context(ctx) if m["kind"] == "Service")
        objects: list[dict[str, Any]] = [service, *REGISTRY[derive(wss.spec).profile.key].render(ctx)]
        # the common labels (naming.py) say nothing about the load balancer
        objects = [{**o, "metadata": {k: v for k, v in o["metadata"].items() if k != "labels"}} for o in objects]
        body = yaml.safe_dump_all(objects, sort_keys=False, default_flow_style=False).strip()
        parts.append(f"#### `{src}` ({derive(wss.spec).profile.label})\n\n```yaml rendered\n{body}\n```")
    return "\n\n".join(parts)


# Two timelines tell the story: a cloud LB with its own connection draining and a long preStop
# (ALB), and an in-cluster proxy with the 10 s default (Envoy Gateway).
TIMELINE_PROFILES = ("alb", "gateway/envoy")


def _timeline(root: Path) -> str:
    parts = []
    for src, wss in _examples(root):
        t = derive(wss.spec)
        if t.profile.key not in TIMELINE_PROFILES:
            continue
        lines = [*hierarchy(t), ""] + [f"T+{at:<5} {what}" for at, what in timeline(t)]
        parts.append(f"`{src}` ({t.profile.label}):\n\n```text rendered\n" + "\n".join(lines) + "\n```")
    return "\n\n".join(parts)


def _alerts(root: Path) -> str:
    wss = WebSocketService.model_validate(
        {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": "chat", "namespace": "default"}, "spec": {}}
    )
    ctx = Context.of(wss)
    rows = ["| Alert | Severity | For | Expression (fleet `default/chat`) | Meaning |", "|---|---|---|---|---|"]
    for alert, expr in monitoring.expressions(ctx).items():
        severity, for_, summary = monitoring.DESCRIPTIONS[alert]
        rows.append(f"| `{alert}` | {severity} | {for_} | `{expr}` | {summary} |")
    return "\n".join(rows)


BLOCKS: dict[str, Callable[[Path], str]] = {
    "invariants": _invariants,
    "profiles": _profiles,
    "derived": _derived,
    "lb-objects": _lb_objects,
    "timeline": _timeline,
    "alerts": _alerts,
}


def fill(text: str, root: Path, where: str = "") -> str:
    """The page with every generated block rewritten."""

    def one(m: re.Match[str]) -> str:
        name = m.group(2)
        if name not in BLOCKS:
            raise ValueError(f"{where}: unknown generated block {name!r} (known: {', '.join(BLOCKS)})")
        return f"{m.group(1)}{BLOCKS[name](root)}\n{m.group(4)}"

    return _BLOCK.sub(one, text)


def write(root: Path) -> list[Path]:
    """Rewrite the generated blocks of every page; a missing page is left to stale() to report."""
    written = []
    for page in PAGES:
        path = root / page
        if not path.exists():
            continue
        text = path.read_text()
        new = fill(text, root, str(page))
        if new != text:
            path.write_text(new)
        written.append(path)
    return written


def stale(root: Path) -> list[Path]:
    """Pages that are missing or whose generated blocks differ from what the code renders."""
    out = []
    for page in PAGES:
        path = root / page
        if not path.exists() or path.read_text() != fill(path.read_text(), root, str(page)):
            out.append(path)
    return out
