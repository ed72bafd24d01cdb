"""kopf registrations, and nothing else: every decision is in controller.py.

Handlers are registered into a fresh registry by :func:`register`, with the
options of this run, so nothing happens at import time and tests can run
several operators with different settings.

Drift is corrected two ways: a watch on the core child kinds (Deployment,
Service, ConfigMap, HPA, PDB, Ingress) reconciles the owner as soon as a child
changes or disappears, and a timer reconciles every resource each
``resync`` seconds, which bounds the repair time for the other kinds too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import aiohttp
import kopf
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from wsfleet_common.logs import LogFormat
from wsfleet_operator import naming
from wsfleet_operator.controller import Controller
from wsfleet_operator.kube import NamespaceTerminating, Rejected, Retry
from wsfleet_operator.model import GROUP, PLURAL, VERSION

log = logging.getLogger("wsfleet.operator")

# RBAC, from here: deploy/operator/rbac.yaml grants CHILD_VERBS on every kind the renderers own
# (render.owned_kinds) and OWN_ACCESS, nothing else; tests/integration/test_install.py compares.
# Children: server-side apply (create + patch), drift watch (get, list, watch), pruning (delete).
CHILD_VERBS = ("get", "list", "watch", "create", "patch", "delete")
OWN_ACCESS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    # the resource itself: kopf keeps its bookkeeping in annotations (patch); status is ours
    (GROUP, PLURAL, ("get", "list", "watch", "patch")),
    (GROUP, f"{PLURAL}/status", ("get", "patch", "update")),
    # kopf's cluster-wide discovery (the namespaced install runs without it: CLUSTER_SCOPED)
    ("apiextensions.k8s.io", "customresourcedefinitions", ("list", "watch")),
    ("", "namespaces", ("list", "watch")),
    # one event per write and per refusal
    ("", "events", ("create", "patch")),
    ("events.k8s.io", "events", ("create", "patch")),
)
CLUSTER_SCOPED = {"customresourcedefinitions", "namespaces"}
# Leader election (runner.py), in the Lease's namespace only: a Role, even beside a ClusterRole.
LEASE_ACCESS = ("coordination.k8s.io", "leases", ("get", "create", "update"))

# Core kinds watched for drift; CRD-backed children are covered by the resync timer.
WATCHED_CHILDREN = (
    ("apps", "v1", "deployments"),
    ("", "v1", "services"),
    ("", "v1", "configmaps"),
    ("autoscaling", "v2", "horizontalpodautoscalers"),
    ("policy", "v1", "poddisruptionbudgets"),
    ("networking.k8s.io", "v1", "ingresses"),
    ("networking.k8s.io", "v1", "networkpolicies"),  # a deleted policy opens the pods: repaired at once
)


@dataclass(frozen=True)
class Options:
    namespaces: tuple[str, ...] = ()  # empty: every namespace
    resync: float = 30.0  # seconds; the upper bound on repairing drift of any child
    kubeconfig: str | None = None
    metrics_port: int = 9090  # 0: no metrics endpoint
    health_port: int = 8080  # 0: no /healthz
    bind: str = "0.0.0.0"
    verbose: bool = False
    log_format: LogFormat = "json"


def configuration(opts: Options) -> k8s.Configuration:
    """The client configuration from --kubeconfig, $KUBECONFIG, or the in-cluster service account."""
    configuration = k8s.Configuration()
    try:
        k8s_config.load_kube_config(config_file=opts.kubeconfig, client_configuration=configuration)  # type: ignore[no-untyped-call]
    except k8s_config.ConfigException:
        k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    return configuration


def _connection(configuration: k8s.Configuration) -> kopf.ConnectionInfo:
    """kopf's credentials, taken from the same configuration as the operator's own client."""
    auth = (configuration.api_key or {}).get("authorization") or (configuration.api_key or {}).get("BearerToken")
    scheme, _, token = auth.partition(" ") if auth else ("", "", "")
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
        scheme=scheme or None,
        token=token or None,
    )


# Requests that change nothing; every other method passes the fence first.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def fenced_session(info: kopf.ConnectionInfo, fence: Callable[[], None]) -> kopf.AiohttpSession:
    """kopf's HTTP session, built as kopf builds its own from a ConnectionInfo (``APIContext``
    in kopf/_cogs/clients/auth.py, kopf 1.45.2), plus a hook that runs `fence` before every
    request that writes. kopf writes too: its bookkeeping annotations and the events it posts,
    outside any handler of ours, so Kube's fence alone would not stop them. kopf.AiohttpSession
    is kopf's public way to bring a session (docs: "Custom HTTP sessions"). tests/unit/test_handlers.py
    checks the hook runs before every write on the session and that kopf's client context uses the
    session as given; tests/integration/test_leader.py, that a paused leader's kopf writes nothing
    after the takeover."""

    async def before(_: aiohttp.ClientSession, __: Any, params: aiohttp.TraceRequestStartParams) -> None:
        if params.method.upper() not in SAFE_METHODS:
            fence()

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(before)
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, ssl=info.as_ssl_context()),
        headers=info.as_http_headers(),
        trace_configs=[trace],
    )
    return kopf.AiohttpSession(server=info.server, aiohttp_session=session, default_namespace=info.default_namespace)


def register(
    registry: kopf.OperatorRegistry, controller: Controller, opts: Options, fence: Callable[[], None] = lambda: None
) -> None:
    def run(body: kopf.Body | dict[str, Any], prune: bool = False) -> None:
        obj = dict(body)
        target = kopf.Body(cast(kopf.RawBody, obj))

        def emit(kind: str, reason: str, message: str) -> None:
            kopf.event(target, type=kind, reason=reason, message=message)

        try:
            controller.reconcile(obj, emit, prune=prune)
        except NamespaceTerminating as exc:
            log.debug("skipped: %s", exc)
        except Retry as exc:
            raise kopf.TemporaryError(str(exc), delay=exc.delay) from None
        except Rejected as exc:
            kopf.warn(target, reason="ApplyRejected", message=str(exc))
            raise kopf.PermanentError(str(exc)) from None

    @kopf.on.startup(registry=registry)
    def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        # Keep kopf's bookkeeping in our own annotations, and out of .status (which is ours).
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP)
        settings.posting.level = logging.WARNING  # our own events only, not kopf's chatter
        settings.watching.server_timeout = 300
        # Watch only our own children, filtered by the API server: kopf's `labels=` filter on
        # a handler runs client-side, after every Deployment and ConfigMap of the cluster
        # has been sent to us and held in memory.
        for group, version, plural in WATCHED_CHILDREN:
            key = (group, plural) if group else (version, plural)  # kopf's ('v1', plural) = the core group
            settings.watching.label_selectors[key] = naming.MANAGED_SELECTOR
        # Reconciles are short and serialised per resource; 4 threads keep two cores busy.
        settings.execution.max_workers = 4
        # Bound the per-object worker tasks kopf runs at once: a cold start would otherwise
        # hold every object body and coroutine queued in front of the 4 threads.
        settings.batching.worker_limit = 32
        # Watching given namespaces (the namespaced install, with a Role): kopf's discovery of
        # CRDs and namespaces needs cluster-wide list/watch that a Role cannot grant. Without it
        # kopf serves the resources present at start-up; restart after installing a new CRD.
        settings.scanning.disabled = bool(opts.namespaces)

    @kopf.on.login(registry=registry)
    async def login(**_: Any) -> kopf.AiohttpSession:
        # A fresh registry has none of kopf's default login handlers. Re-read on every login,
        # so a rotated service-account token is picked up.
        return fenced_session(_connection(configuration(opts)), fence)

    @kopf.on.resume(GROUP, VERSION, PLURAL, registry=registry)
    @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry)
    @kopf.on.update(GROUP, VERSION, PLURAL, registry=registry)
    def changed(body: kopf.Body, **_: Any) -> None:
        run(body)

    @kopf.timer(GROUP, VERSION, PLURAL, interval=opts.resync, initial_delay=opts.resync, registry=registry)
    def resync(body: kopf.Body, **_: Any) -> None:
        run(body, prune=True)

    for group, version, plural in WATCHED_CHILDREN:

        @kopf.on.event(
            group, version, plural, labels={naming.LABEL_MANAGED_BY: naming.FIELD_MANAGER}, registry=registry
        )
        def child_changed(body: kopf.Body, type: str | None, **_: Any) -> None:
            action, owner = controller.child_event(body, type)
            if owner is None:
                return
            try:
                if action == "status":
                    controller.refresh_status(owner)
                else:
                    run(owner)
            except (kopf.TemporaryError, kopf.PermanentError, Retry, Rejected) as exc:
                log.warning("reconcile after a child changed: %s", exc)
