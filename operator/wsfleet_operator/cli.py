"""The ``wsfleet`` command.

    wsfleet render [-f FILE ...]   every child object as a YAML stream, for kubectl apply -f -
    wsfleet check  [-f FILE ...]   the timeout hierarchy, the shutdown timeline and every rule
    wsfleet crd [--check]          regenerate crds/, docs/crd-reference.md and the generated blocks
                                   of the load-balancer guide and the runbook, and the Grafana
                                   dashboard, from the model and the renderers
    wsfleet operator [--namespace NS ...] [--resync SECONDS]
                                   run the operator (kopf) against the current kubeconfig
    wsfleet dev-cluster build|up|down|status|images ...
                                   the local cluster the tests and the demo run on (development
                                   installs only: wsfleet_devcluster, not in the operator image)

Without -f, render and check use the built-in example: a WebSocketService
"chat" with every default. Exit codes: 0 fine, 2 bad input or a broken rule
(each problem on its own line, naming the file, the field and the value).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

import yaml

from wsfleet_common.contract import ENV_LOG_FORMAT
from wsfleet_common.logs import FORMATS
from wsfleet_operator import crd, dashboard, docs, durations
from wsfleet_operator.model import API_VERSION, KIND, WebSocketService
from wsfleet_operator.render import audit, render_all
from wsfleet_operator.timeouts import derive, fmt, hierarchy, timeline
from wsfleet_operator.validation import RULES, SpecError, check, parse_and_check, parse_resource

# deploy/operator sets it from the downward API: the Lease lives beside the operator
ENV_POD_NAMESPACE = "POD_NAMESPACE"
EXIT_OK = 0
EXIT_BAD_INPUT = 2

BUILTIN: dict[str, Any] = {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": "chat"}, "spec": {}}


class _Dumper(yaml.SafeDumper):
    """Block-style YAML with multi-line strings kept readable."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def _documents(paths: Sequence[str]) -> Iterator[tuple[str, Any]]:
    """(source, document) for every non-empty YAML document in the files ('-' is stdin)."""
    if not paths:
        yield "<built-in example>", BUILTIN
        return
    for path in paths:
        try:
            text = sys.stdin.read() if path == "-" else Path(path).read_text()
        except OSError as exc:
            raise SpecError(path, (f"can't read: {exc.strerror}",)) from None
        try:
            docs = [d for d in yaml.safe_load_all(text) if d is not None]
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}: " if mark is not None else ""
            raise SpecError(path, (f"{where}not valid YAML: {getattr(exc, 'problem', exc)}",)) from None
        if not docs:
            raise SpecError(path, ("no WebSocketService in the file",))
        for i, doc in enumerate(docs):
            kind = doc.get("kind") if isinstance(doc, dict) else None
            if kind != KIND:
                raise SpecError(f"{path}[{i}]", (f"kind: {kind!r}: expected {KIND!r}",))
            yield (path if len(docs) == 1 else f"{path}[{i}]"), doc


def _dump(manifests: list[dict[str, Any]], out: TextIO) -> None:
    out.write(yaml.dump_all(manifests, Dumper=_Dumper, sort_keys=False, explicit_start=True, width=120))


def cmd_render(args: argparse.Namespace, out: TextIO) -> int:
    resources = [parse_and_check(doc, src) for src, doc in _documents(args.file)]
    manifests = [m for wss in resources for m in render_all(wss)]
    _dump(manifests, out)
    return EXIT_OK


def _report(src: str, wss: WebSocketService, out: TextIO) -> bool:
    spec = wss.spec
    t = derive(spec)
    violations = check(spec)
    broken = {v.rule for v in violations}
    out.write(f"{src}: {wss.metadata.namespace}/{wss.metadata.name} (provider {t.profile.key}, {t.profile.label})\n")
    out.write("\nTimeout hierarchy\n")
    for line in hierarchy(t):
        out.write(f"  {line}\n")
    out.write("\nShutdown timeline\n")
    for at, what in timeline(t):
        out.write(f"  T+{at:<5} {what}\n")
    out.write(
        f"\nDerived: terminationGracePeriodSeconds {t.grace}, preStop {fmt(t.pre_stop)}"
        f"{' (provider default)' if t.pre_stop_derived else ''}, idle timeout {fmt(t.idle)}"
        f"{' (derived)' if t.idle_derived else ''}\n"
    )
    out.write("\nRules\n")
    for rule in RULES:
        mark = "FAIL" if rule.id in broken else "ok  "
        out.write(f"  {mark} {rule.id:<4} {rule.title}\n")
    if violations:
        out.write("\n")
        for v in violations:
            out.write(f"{src}: spec: {v.message}\n")
        return False
    problems = audit.audit(spec, render_all(wss))
    for p in problems:
        out.write(f"{src}: rendered objects: {p}\n")
    return not problems


def cmd_check(args: argparse.Namespace, out: TextIO) -> int:
    ok = True
    for i, (src, doc) in enumerate(_documents(args.file)):
        if i:
            out.write("\n" + "-" * 72 + "\n")
        ok = _report(src, parse_resource(doc, src), out) and ok
    return EXIT_OK if ok else EXIT_BAD_INPUT


def cmd_crd(args: argparse.Namespace, out: TextIO) -> int:
    root = Path(args.root)
    if args.check:
        stale = crd.stale(root) + docs.stale(root) + dashboard.stale(root)
        for path in stale:
            out.write(f"{path}: stale; run `wsfleet crd` to regenerate it from the model\n")
        return EXIT_BAD_INPUT if stale else EXIT_OK
    for path in crd.write(root) + docs.write(root) + dashboard.write(root):
        out.write(f"wrote {path}\n")
    return EXIT_OK


def cmd_dev_cluster(args: argparse.Namespace, out: TextIO) -> int:
    # Development tooling, in its own package beside the operator's: a development install has it,
    # the operator image does not.
    try:
        from wsfleet_devcluster import cli  # noqa: PLC0415
    except ImportError:
        out.write(
            "wsfleet dev-cluster: not in this install (the wsfleet_devcluster package comes with a checkout's `pip install -e .[dev]`)\n"
        )
        return EXIT_BAD_INPUT
    return cli.main(args.rest, out=out)


def cmd_operator(args: argparse.Namespace, out: TextIO) -> int:
    # kopf and the API client load only for this command
    from wsfleet_operator import handlers, leader, runner  # noqa: PLC0415

    election = None
    if args.leader_elect:
        timing = leader.Timing(
            lease_duration=args.leader_elect_lease_duration,
            renew_deadline=args.leader_elect_renew_deadline,
            retry_period=args.leader_elect_retry_period,
        )
        namespace = args.leader_elect_resource_namespace or (args.namespace[0] if args.namespace else "")
        problems = timing.problems()
        if not namespace:
            problems.append(
                "--leader-elect: the Lease needs a namespace: give --leader-elect-resource-namespace "
                f"(default ${ENV_POD_NAMESPACE}, then the first --namespace)"
            )
        if problems:
            raise SpecError("wsfleet operator", tuple(problems))
        election = runner.Election(namespace, args.leader_elect_resource_name, runner.identity(), timing)
    runner.run(
        handlers.Options(
            namespaces=tuple(args.namespace),
            resync=args.resync,
            kubeconfig=args.kubeconfig,
            metrics_port=args.metrics_port,
            health_port=args.health_port,
            bind=args.bind,
            verbose=args.verbose,
            log_format=args.log_format,
        ),
        election,
    )
    return EXIT_OK


def cmd_validate(args: argparse.Namespace, out: TextIO) -> int:
    from wsfleet_operator import live_checks  # noqa: PLC0415 - the Socket.IO client loads only for this command

    n = args.clients
    if args.check == "affinity":
        coro = live_checks.affinity(args.url, n or 5, args.seconds or 10.0)
    elif args.check == "idle-timeout":
        coro = live_checks.idle_timeout(args.url, n or 3, args.seconds or 180.0)
    else:
        if not args.api_key:
            raise SpecError(
                "wsfleet validate", (f"{args.check}: --api-key is required (it publishes through {args.url})",)
            )

        def progress(line: str) -> None:
            out.write(line + "\n")
            out.flush()  # a script waiting for "publishing" to start its rollout sees it now

        coro = live_checks.delivery(
            args.check, args.url, args.api_key, clients=n or 20, seconds=args.seconds or 60.0,
            min_acknowledged=args.min_acknowledged / 100, max_uncertain=args.max_uncertain, progress=progress,
        )  # fmt: skip
    try:
        verdict = asyncio.run(coro)
    except Exception as exc:  # connection refused, handshake refused: a verdict too
        out.write(f"wsfleet validate {args.check}: FAIL\n  problem: cannot connect to {args.url}: {exc}\n")
        return 1
    return verdict.print(out)


def _port(text: str) -> int:
    port = int(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text}: a port is 0 (none) to 65535")
    return port


def _seconds(text: str) -> float:
    try:
        return float(durations.parse(text))
    except durations.DurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="wsfleet", description="WebSocket fleets on Kubernetes, with timeouts that agree.")
    sub = p.add_subparsers(dest="command", required=True)
    for name, func, text in (
        ("render", cmd_render, "print every child object as a YAML stream"),
        ("check", cmd_check, "print the timeout hierarchy, shutdown timeline and rules"),
    ):
        s = sub.add_parser(name, help=text, description=text)
        s.add_argument("-f", "--file", action="append", default=[], help="WebSocketService YAML ('-' for stdin)")
        s.set_defaults(func=func)
    s = sub.add_parser("crd", help="regenerate the CRD, its reference, the generated doc blocks and the dashboard")
    s.add_argument("--check", action="store_true", help="fail if the committed files are stale")
    s.add_argument("--root", default=".", help="repository root (default: .)")
    s.set_defaults(func=cmd_crd)
    s = sub.add_parser("operator", help="run the operator")
    s.add_argument("--namespace", action="append", default=[], help="watch only this namespace (repeatable)")
    s.add_argument("--resync", type=float, default=30.0, help="seconds between full reconciles (default 30)")
    s.add_argument("--kubeconfig", default=None, help="kubeconfig (default: $KUBECONFIG or in-cluster)")
    s.add_argument("--metrics-port", type=_port, default=9090, help="Prometheus metrics port (default 9090; 0: none)")
    s.add_argument(
        "--health-port", type=_port, default=8080, help="liveness endpoint port, /healthz (default 8080; 0: none)"
    )
    s.add_argument("--bind", default="0.0.0.0", help="address for metrics and health (default 0.0.0.0)")
    s.add_argument("--verbose", action="store_true", help="debug logging")
    s.add_argument(
        "--log-format",
        choices=FORMATS,
        default=os.environ.get(ENV_LOG_FORMAT, "json"),
        help=f"json lines (default; also ${ENV_LOG_FORMAT}) or text for local development",
    )
    # component-base's flag names, as kube-controller-manager and controller-runtime managers have them
    s.add_argument(
        "--leader-elect",
        action="store_true",
        help="hold a coordination.k8s.io Lease and reconcile only while holding it (2 replicas)",
    )
    s.add_argument(
        "--leader-elect-lease-duration",
        type=_seconds,
        default=15.0,
        metavar="DURATION",
        help="how long a standby waits on a Lease that is no longer renewed (default 15s)",
    )
    s.add_argument(
        "--leader-elect-renew-deadline",
        type=_seconds,
        default=10.0,
        metavar="DURATION",
        help="how long the leader retries renewing before it stops (default 10s)",
    )
    s.add_argument(
        "--leader-elect-retry-period",
        type=_seconds,
        default=2.0,
        metavar="DURATION",
        help="between renews, and between a standby's attempts (default 2s)",
    )
    s.add_argument(
        "--leader-elect-resource-name",
        default="wsfleet-operator",
        metavar="NAME",
        help="the Lease's name (default wsfleet-operator)",
    )
    s.add_argument(
        "--leader-elect-resource-namespace",
        default=os.environ.get(ENV_POD_NAMESPACE, ""),
        metavar="NS",
        help=f"the Lease's namespace (default ${ENV_POD_NAMESPACE}, then the first --namespace)",
    )
    s.set_defaults(func=cmd_operator)
    s = sub.add_parser("validate", help="check a running fleet from the outside: affinity, idle timeout, drains")
    s.add_argument("check", choices=["affinity", "idle-timeout", "graceful-shutdown", "failover"])
    s.add_argument("--url", required=True, help="the fleet's public URL (its load balancer)")
    s.add_argument("--clients", type=int, default=None, help="clients to connect")
    s.add_argument("--seconds", type=float, default=None, help="how long to watch")
    s.add_argument("--api-key", default=None, help="publish API key (graceful-shutdown, failover)")
    s.add_argument("--min-acknowledged", type=float, default=90.0, metavar="PERCENT",
                   help="fail unless this share of the publishes got HTTP 200 (default 90)")  # fmt: skip
    s.add_argument("--max-uncertain", type=int, default=None, metavar="N",
                   help="publishes without a certain answer (5xx, none) to allow "
                        "(default: 0 for graceful-shutdown, 5%% of the planned ones for failover)")  # fmt: skip
    s.set_defaults(func=cmd_validate)
    s = sub.add_parser("dev-cluster", add_help=False, help="the local cluster the tests and the demo run on")
    s.add_argument("rest", nargs=argparse.REMAINDER, help="wsfleet dev-cluster --help lists them")
    s.set_defaults(func=cmd_dev_cluster)
    return p


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    args = parser().parse_args(argv)
    try:
        code: int = args.func(args, out)
    except SpecError as exc:
        err.write(f"{exc}\n")
        return EXIT_BAD_INPUT
    except RuntimeError as exc:  # BuildError, ClusterError: already say what failed and where
        err.write(f"wsfleet {args.command}: {exc}\n")
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
