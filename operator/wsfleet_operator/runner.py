"""Running the operator: the health and metrics endpoints, leader election around kopf, shutdown.

Without ``--leader-elect`` kopf runs at once (a single replica, or a developer's machine).
With it, the process is first a standby: it serves ``/healthz`` and metrics, and campaigns
for the Lease (leader.py). Once it holds the Lease it starts kopf; kopf never runs in a
standby, so a standby makes no writes at all, kopf's own bookkeeping annotations included.

Losing the Lease ends the process at once (exit code 3), as controller-runtime's managers
do: kopf's handlers run in threads that cannot be interrupted, and a clean stop would let
kopf write its progress annotations after another replica took over. The kubelet restarts
the container, which comes back as a standby. Every write of the operator's own passes the
fence first (kube.Kube.fence), so a process frozen past its renew deadline ends before its
first write after waking; kopf's own writes pass it too (handlers.fenced_session). A SIGTERM (rollout, drain) stops kopf, waits for its handlers,
then releases the Lease so the standby takes over within a retry period.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import kopf
from aiohttp import web
from kubernetes import client as k8s
from prometheus_client import Gauge, start_http_server

from wsfleet_common import logs
from wsfleet_operator import handlers, leader
from wsfleet_operator.controller import Controller
from wsfleet_operator.handlers import Options
from wsfleet_operator.kube import Kube, Leases

log = logging.getLogger("wsfleet.operator")

EXIT_LEASE_LOST = 3
LEADER = Gauge(
    "wsfleet_operator_leader",
    "1 while this replica holds the Lease and reconciles; 0 while it stands by",
    ["lease", "identity"],
)


@dataclass(frozen=True)
class Election:
    """Where the Lease lives, and who this replica is."""

    namespace: str
    name: str
    identity: str
    timing: leader.Timing

    @property
    def lease(self) -> str:
        return f"{self.namespace}/{self.name}"


def identity() -> str:
    """client-go's choice: the host (the pod's name in a pod) and a random part, so a restarted
    container never mistakes its predecessor's Lease for its own."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"


def run(opts: Options, election: Election | None) -> None:
    """Run until SIGTERM, or until the Lease is lost (exit code EXIT_LEASE_LOST)."""
    logs.setup(opts.log_format, "operator", "DEBUG" if opts.verbose else "INFO")
    # As kopf.configure() does: asyncio's own debug chatter stays out of the operator's log.
    logging.getLogger("asyncio").propagate = opts.verbose
    if opts.metrics_port:
        start_http_server(opts.metrics_port, addr=opts.bind)
    log.info(
        "metrics %s, health %s, leader election %s",
        f"on {opts.bind}:{opts.metrics_port}" if opts.metrics_port else "disabled (--metrics-port 0)",
        f"on {opts.bind}:{opts.health_port}" if opts.health_port else "disabled (--health-port 0)",
        f"on Lease {election.lease} as {election.identity}" if election else "off (--leader-elect not given)",
    )
    asyncio.run(_main(opts, election))


async def _main(opts: Options, election: Election | None) -> None:
    api = k8s.ApiClient(handlers.configuration(opts))
    elector = None
    if election:
        elector = leader.Elector(
            Leases(api, election.namespace, election.name),
            election.identity,
            election.timing,
            on_change=lambda leading: LEADER.labels(election.lease, election.identity).set(int(leading)),
        )
        LEADER.labels(election.lease, election.identity).set(0)
    health = await _serve_health(opts, election, elector)
    try:
        if elector is None or election is None:
            await _operate(opts, Kube(api))
            return
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):  # kopf sets its own once it runs
            loop.add_signal_handler(sig, stop.set)
        log.info("standing by for Lease %s", election.lease)
        if not await elector.acquire(stop):
            return  # stopped while standing by
        await _lead(opts, api, election, elector, stop)
    finally:
        if health is not None:
            await health.cleanup()


async def _lead(
    opts: Options, api: k8s.ApiClient, election: Election, elector: leader.Elector, stop: asyncio.Event
) -> None:
    def fence() -> None:
        if not elector.valid():
            _lost(f"the lease was not renewed within {election.timing.renew_deadline:g}s; no write may follow")

    leases = Leases(api, election.namespace, election.name)
    try:
        await asyncio.get_running_loop().run_in_executor(None, leases.announce, election.identity)
    except Exception as exc:  # the event is for people; leading does not depend on it
        log.warning("could not record the leader event: %s", exc)
    # The renew loop exists before kopf starts, so kopf's shutdown leaves it alone.
    holding = asyncio.create_task(elector.hold(), name="lease renewal")
    # `stop`: a SIGTERM that came before kopf installed its own signal handlers still stops it.
    operating = asyncio.create_task(_operate(opts, Kube(api, fence=fence), fence, stop), name="kopf")
    done, _ = await asyncio.wait({holding, operating}, return_when=asyncio.FIRST_COMPLETED)
    if holding in done:
        _lost(f"Lease {election.lease} lost")
    holding.cancel()
    await elector.release()
    operating.result()


def _lost(why: str) -> None:
    log.critical("leader election lost: %s; exiting so that nothing more is written", why)
    for h in logging.getLogger().handlers:
        h.flush()
    sys.stderr.flush()
    os._exit(EXIT_LEASE_LOST)


async def _operate(
    opts: Options, kube: Kube, fence: Callable[[], None] = lambda: None, stop: asyncio.Event | None = None
) -> None:
    registry = kopf.OperatorRegistry()
    handlers.register(registry, Controller(kube), opts, fence)
    await kopf.operator(
        registry=registry,
        standalone=True,
        clusterwide=not opts.namespaces,
        namespaces=list(opts.namespaces),
        stop_flag=stop,
    )


async def _serve_health(
    opts: Options, election: Election | None, elector: leader.Elector | None
) -> web.AppRunner | None:
    """/healthz on the event loop: a blocked loop fails the liveness probe, a standby passes it."""
    if not opts.health_port:
        return None

    async def healthz(_: web.Request) -> web.Response:
        body: dict[str, object] = {"status": "ok"}
        if election and elector:
            body |= {
                "leading": elector.leading,
                "identity": election.identity,
                "lease": election.lease,
                "holder": elector.holder,
            }
        return web.json_response(body)

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, opts.bind, opts.health_port).start()
    return runner
