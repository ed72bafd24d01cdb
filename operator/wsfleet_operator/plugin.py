"""``kubectl wsfleet``: the operator's view of a fleet, for the people who run it.

    kubectl wsfleet status NAME [-n NS] [-o json]     conditions, derived timeouts, rules, each pod (its
                                                      connections, draining, Redis, asked through the API
                                                      server's pod proxy), the last rollout
    kubectl wsfleet explain-timeouts NAME [-n NS]      the hierarchy and the shutdown timeline, from the live spec
    kubectl wsfleet check -f FILE | render -f FILE     as `wsfleet check` and `wsfleet render`

kubectl finds the console script ``kubectl-wsfleet`` on PATH and hands it every argument after
``wsfleet``; the plugin reads the same kubeconfig kubectl does (``--kubeconfig``, ``--context``,
``$KUBECONFIG``) and takes the namespace from ``-n`` or the context. Human output by default,
``-o json`` for scripts. Exit codes: 0 fine, 1 the resource is not Ready or a rule is broken,
2 bad input or an API error (each naming the resource and the reason).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TextIO

from kubernetes import client as k8s
from kubernetes import config as k8s_config

from wsfleet_common import contract
from wsfleet_operator import cli, naming
from wsfleet_operator.model import GROUP, PLURAL, VERSION, WebSocketService
from wsfleet_operator.timeouts import derive, fmt, hierarchy, timeline
from wsfleet_operator.validation import RULES, SpecError, check, parse_resource

EXIT_OK, EXIT_NOT_READY, EXIT_ERROR = 0, 1, 2
PROXY_TIMEOUT = 5.0  # seconds per workload endpoint; the pods are asked at once


class PluginError(Exception):
    """An error the user can act on; the message names the resource and the reason."""


class Cluster:
    """The API reads the plugin makes, through the kubeconfig kubectl would use."""

    def __init__(self, kubeconfig: str | None, context: str | None, namespace: str | None) -> None:
        configuration = k8s.Configuration()
        try:
            k8s_config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=configuration)  # type: ignore[no-untyped-call]
            contexts, active = k8s_config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
            if context:
                active = next(c for c in contexts if c["name"] == context)
        except (k8s_config.ConfigException, OSError, StopIteration) as exc:
            raise PluginError(f"kubeconfig {kubeconfig or '$KUBECONFIG or ~/.kube/config'}: {exc}") from None
        self.namespace = namespace or active.get("context", {}).get("namespace") or "default"
        api = k8s.ApiClient(configuration)
        self.custom, self.apps, self.core = k8s.CustomObjectsApi(api), k8s.AppsV1Api(api), k8s.CoreV1Api(api)

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except k8s.ApiException as exc:
            if exc.status == 404:
                return None
            raise PluginError(f"{what}: {exc.status} {exc.reason}") from None
        except OSError as exc:  # the API server unreachable
            raise PluginError(f"{what}: {exc}") from None

    def resource(self, name: str) -> dict[str, Any]:
        what = f"websocketservice {self.namespace}/{name}"
        obj = self._call(f"get {what}", self.custom.get_namespaced_custom_object, GROUP, VERSION, self.namespace,
                         PLURAL, name)  # fmt: skip
        if obj is None:
            raise PluginError(f"{what}: not found (kubectl get wss -n {self.namespace} lists them)")
        return dict(obj)

    def deployment(self, name: str) -> dict[str, Any] | None:
        obj = self._call(f"get deployment {self.namespace}/{name}", self.apps.read_namespaced_deployment, name,
                         self.namespace)  # fmt: skip
        return None if obj is None else dict(self.apps.api_client.sanitize_for_serialization(obj))

    def proxied(self, pod: str, port: int, path: str) -> dict[str, Any]:
        """A workload endpoint's JSON answer through the API server's pod proxy (kubectl's own
        route to a pod: no port-forward, no Service), or {"error": why} when it did not answer."""
        try:
            # the raw body: the client would otherwise turn the JSON into a Python repr of it
            response: Any = self.core.connect_get_namespaced_pod_proxy_with_path(
                f"{pod}:{port}", self.namespace, path.lstrip("/"), _request_timeout=PROXY_TIMEOUT,
                _preload_content=False,
            )  # fmt: skip
            text = response.data.decode("utf-8", "replace")
        except k8s.ApiException as exc:
            text = exc.body or ""
            if exc.status not in (200, 503):  # 503 with a JSON body: the pod says it is not ready
                return {"error": f"{exc.status} {exc.reason}: {text[:200].strip()}"}
        except Exception as exc:  # urllib3 timeouts and connection errors: the pod did not answer
            return {"error": f"{type(exc).__name__}: {exc}"[:300]}
        try:
            answer = json.loads(text)
        except (TypeError, ValueError):
            return {"error": f"not JSON: {str(text)[:200]}"}
        return dict(answer) if isinstance(answer, dict) else {"error": f"not a JSON object: {answer!r}"[:200]}

    def listed(self, kind: str, selector: dict[str, str]) -> list[dict[str, Any]]:
        fn = self.core.list_namespaced_pod if kind == "pods" else self.apps.list_namespaced_replica_set
        label_selector = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
        found = self._call(f"list {kind} in {self.namespace}", fn, self.namespace, label_selector=label_selector)
        items = [] if found is None else self.core.api_client.sanitize_for_serialization(found)["items"]
        return list(items)


def _when(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def _pod(pod: dict[str, Any]) -> dict[str, Any]:
    status = pod.get("status", {})
    ready = next((c["status"] == "True" for c in status.get("conditions", []) if c["type"] == "Ready"), False)
    containers = status.get("containerStatuses") or []
    return {
        "name": pod["metadata"]["name"],
        "node": pod.get("spec", {}).get("nodeName"),
        "phase": status.get("phase"),
        "ready": ready,
        "terminating": pod["metadata"].get("deletionTimestamp") is not None,
        "restarts": sum(c.get("restartCount", 0) for c in containers),
        "revision": pod["metadata"].get("labels", {}).get("pod-template-hash"),
    }


def _live(cluster: Cluster, pods: list[dict[str, Any]], port: int) -> list[dict[str, Any]]:
    """Each running pod's own account: connections and draining (readiness endpoint), Redis (the
    database endpoint: PING and the fan-out listener)."""

    def ask(pod: dict[str, Any]) -> dict[str, Any]:
        if pod["phase"] != "Running":
            return {**pod, "workload": {"error": f"pod is {pod['phase']}"}, "redis": None}
        ready = cluster.proxied(pod["name"], port, contract.READY_PATH)
        database = cluster.proxied(pod["name"], port, contract.DATABASE_PATH)
        workload = ready if "error" in ready else {
            "status": ready.get("status"),
            "connections": ready.get("connections"),
            "draining": ready.get("status") == "draining",
            "phase": ready.get("phase"),
        }  # fmt: skip
        redis = database if "error" in database else {
            "ok": database.get("status") == "ok",
            "ping": database.get("redis"),
            "listener": database.get("listener"),
        }  # fmt: skip
        return {**pod, "workload": workload, "redis": redis}

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(ask, pods))


def rollout(deployment: dict[str, Any] | None, replica_sets: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The Deployment's last rollout: its revision, whether it finished, and how long it took (from
    the new ReplicaSet's creation to the Deployment reporting it available)."""
    if deployment is None:
        return None
    status = deployment.get("status", {})
    revision = deployment["metadata"].get("annotations", {}).get("deployment.kubernetes.io/revision")
    current = next((rs for rs in replica_sets
                    if rs["metadata"].get("annotations", {}).get("deployment.kubernetes.io/revision") == revision),
                   None)  # fmt: skip
    progressing: dict[str, Any] = next((c for c in status.get("conditions", []) if c["type"] == "Progressing"), {})
    done = progressing.get("reason") == "NewReplicaSetAvailable" and status.get("updatedReplicas") == status.get(
        "replicas"
    )
    started = _when(current["metadata"]["creationTimestamp"]) if current else None
    finished = _when(progressing.get("lastUpdateTime")) if done else None
    return {
        "revision": int(revision) if revision else None,
        "complete": done,
        "replicas": status.get("replicas", 0),
        "updated": status.get("updatedReplicas", 0),
        "ready": status.get("readyReplicas", 0),
        "started": current["metadata"]["creationTimestamp"] if current else None,
        "seconds": round((finished - started).total_seconds()) if started and finished else None,
        "message": progressing.get("message"),
    }


def status(cluster: Cluster, name: str) -> dict[str, Any]:
    obj = cluster.resource(name)
    try:
        wss = parse_resource(obj, f"websocketservice {cluster.namespace}/{name}")
    except SpecError as exc:  # stored before the CRD had its rules, or edited around them
        wss, problems = None, [str(exc)]
    else:
        problems = []
    out: dict[str, Any] = {
        "name": name,
        "namespace": cluster.namespace,
        "generation": obj["metadata"].get("generation"),
        "observedGeneration": obj.get("status", {}).get("observedGeneration"),
        "conditions": obj.get("status", {}).get("conditions", []),
        "timeouts": obj.get("status", {}).get("timeouts"),
        "url": obj.get("status", {}).get("url"),
        "problems": problems,
    }
    if wss is not None:
        broken = {v.rule: v.message for v in check(wss.spec)}
        out["provider"] = derive(wss.spec).profile.key
        out["rules"] = [{"id": r.id, "title": r.title, "holds": r.id not in broken, "message": broken.get(r.id)}
                        for r in RULES]  # fmt: skip
        child = naming.child_name(wss)
        selector = naming.selector(wss)
        pods = [_pod(p) for p in cluster.listed("pods", selector)]
        out["pods"] = _live(cluster, pods, wss.spec.port)
        out["rollout"] = rollout(cluster.deployment(child), cluster.listed("replicasets", selector))
    return out


def _ready(report: dict[str, Any]) -> bool:
    ready = next((c for c in report["conditions"] if c["type"] == "Ready"), None)
    return bool(ready and ready["status"] == "True") and all(r["holds"] for r in report.get("rules", []))


def print_status(report: dict[str, Any], out: TextIO) -> None:
    out.write(f"{report['namespace']}/{report['name']}  provider {report.get('provider', '?')}  "
              f"generation {report['generation']} (observed {report['observedGeneration']})\n")  # fmt: skip
    if report.get("url"):
        out.write(f"url: {report['url']}\n")
    out.write("\nConditions\n")
    for c in report["conditions"] or [{"type": "-", "status": "-", "reason": "none yet", "message": ""}]:
        out.write(f"  {c['type']:<16} {c['status']:<8} {c['reason']}{': ' + c['message'] if c['message'] else ''}\n")
    if report.get("timeouts"):
        out.write("\nTimeouts (seconds)\n")
        for key, value in report["timeouts"].items():
            out.write(f"  {key.removesuffix('Seconds'):<32} {value}\n")
    for p in report["problems"]:
        out.write(f"\n{p}\n")
    if "rules" in report:
        broken = [r for r in report["rules"] if not r["holds"]]
        out.write(f"\nRules: {len(report['rules']) - len(broken)} of {len(report['rules'])} hold\n")
        for r in broken:
            out.write(f"  FAIL {r['id']}: {r['message']}\n")
    if report.get("rollout"):
        r = report["rollout"]
        state = (
            f"complete in {r['seconds']}s"
            if r["complete"] and r["seconds"] is not None
            else ("complete" if r["complete"] else f"in progress: {r['updated']}/{r['replicas']} updated")
        )
        out.write(f"\nRollout: revision {r['revision']}, {state}, {r['ready']}/{r['replicas']} ready"
                  f"{', started ' + r['started'] if r['started'] else ''}\n")  # fmt: skip
    if "pods" in report:
        out.write(f"\nPods ({len(report['pods'])})\n")
        out.write(f"  {'NAME':<40} {'NODE':<12} {'PHASE':<9} {'READY':<6} {'RESTARTS':<9} {'CONNS':<6} "
                  f"{'REDIS':<6} STATE\n")  # fmt: skip
        for p in report["pods"]:
            w, r = p.get("workload") or {}, p.get("redis") or {}
            conns = "-" if w.get("connections") is None else str(w["connections"])
            redis = "-" if not r or "error" in r else ("ok" if r["ok"] else "down")
            state = (
                "terminating"
                if p["terminating"]
                else "draining"
                if w.get("draining")
                else (f"unreachable ({w['error']})" if "error" in w else w.get("status") or "")
            )
            out.write(f"  {p['name']:<40} {p['node'] or '-':<12} {p['phase'] or '-':<9} {str(p['ready']).lower():<6} "
                      f"{p['restarts']:<9} {conns:<6} {redis:<6} {state}\n")  # fmt: skip


def explain(cluster: Cluster, name: str) -> dict[str, Any]:
    obj = cluster.resource(name)
    try:
        wss: WebSocketService = parse_resource(obj, f"websocketservice {cluster.namespace}/{name}")
    except SpecError as exc:
        raise PluginError(str(exc)) from None
    t = derive(wss.spec)
    return {
        "name": name,
        "namespace": cluster.namespace,
        "provider": t.profile.key,
        "hierarchy": hierarchy(t),
        "timeline": [{"at": at, "what": what} for at, what in timeline(t)],
        "gracePeriodSeconds": t.grace,
        "preStop": fmt(t.pre_stop),
        "idleTimeout": fmt(t.idle),
    }


def print_explain(report: dict[str, Any], out: TextIO) -> None:
    out.write(f"{report['namespace']}/{report['name']} (provider {report['provider']})\n\nTimeout hierarchy\n")
    for line in report["hierarchy"]:
        out.write(f"  {line}\n")
    out.write("\nShutdown timeline\n")
    for step in report["timeline"]:
        out.write(f"  T+{step['at']:<5} {step['what']}\n")
    out.write(f"\nterminationGracePeriodSeconds {report['gracePeriodSeconds']}, preStop {report['preStop']}, "
              f"idle timeout {report['idleTimeout']}\n")  # fmt: skip


def _common(p: argparse.ArgumentParser, default: Any) -> None:
    """kubectl's own options, accepted before and after the command, as kubectl accepts them."""
    p.add_argument("--kubeconfig", default=default, help="kubeconfig (default: $KUBECONFIG, then ~/.kube/config)")
    p.add_argument("--context", default=default, help="kubeconfig context (default: the current one)")
    p.add_argument("-n", "--namespace", default=default, help="namespace (default: the context's, then default)")
    p.add_argument("-o", "--output", choices=["text", "json"], default=default, help="text (default) or json")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kubectl wsfleet", description="wsfleet fleets, as the operator sees them.")
    _common(p, None)
    sub = p.add_subparsers(dest="command", required=True)
    for name, text in (("status", "conditions, timeouts, rules, pods and the last rollout of one WebSocketService"),
                       ("explain-timeouts", "the timeout hierarchy and shutdown timeline, from the live spec")):  # fmt: skip
        s = sub.add_parser(name, help=text, description=text)
        s.add_argument("name", help="the WebSocketService")
        _common(s, argparse.SUPPRESS)  # given after the command, they override; absent, they leave the top's
    for name in ("check", "render"):
        s = sub.add_parser(name, help=f"as `wsfleet {name}`")
        s.add_argument("-f", "--file", action="append", default=[], help="WebSocketService YAML ('-' for stdin)")
    return p


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    args = parser().parse_args(argv)
    if args.command in ("check", "render"):
        return cli.main([args.command, *(f"--file={f}" for f in args.file)], out=out, err=err)
    try:
        cluster = Cluster(args.kubeconfig, args.context, args.namespace)
        if args.command == "status":
            report = status(cluster, args.name)
            code = EXIT_OK if _ready(report) else EXIT_NOT_READY
            printer = print_status
        else:
            report, code, printer = explain(cluster, args.name), EXIT_OK, print_explain
    except PluginError as exc:
        err.write(f"kubectl wsfleet {args.command}: {exc}\n")
        return EXIT_ERROR
    if args.output == "json":  # None: text
        out.write(json.dumps(report, indent=2) + "\n")
    else:
        printer(report, out)
    return code
