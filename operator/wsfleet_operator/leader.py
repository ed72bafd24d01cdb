"""Leader election on a coordination.k8s.io/v1 Lease, with client-go's algorithm.

Two operator replicas run; the one holding the Lease reconciles, the other waits and
serves its health endpoint. The rules are client-go's (``tools/leaderelection``):

- A candidate takes the Lease when it does not exist, when its holder is empty (released),
  or when the candidate has seen the same record, unchanged, for ``leaseDurationSeconds``
  by its *own* clock. Lease times written by another machine are never compared with
  local time, so clock skew between nodes cannot shorten a lease.
- Every write carries the resourceVersion last read, so of two candidates racing for an
  expired Lease one wins and the other gets a conflict.
- The leader renews every ``retry_period``. When no renew has succeeded for
  ``renew_deadline`` it stops leading; ``lease_duration - renew_deadline`` (5 s by
  default) is the margin between the leader giving up and a standby being allowed in.
- On shutdown the leader releases the Lease (empty holder, 1 s), so a rolling update hands
  over within a retry period instead of a lease duration.

On top of client-go, :meth:`Elector.valid` is the fence every write checks: it is measured
on the monotonic clock from the moment the last successful renew was *sent*, so a process
that was frozen (SIGSTOP, a stalled node) past its deadline finds it closed the instant it
runs again, before its renew loop has even woken.

Why not ``kubernetes.leaderelection`` (the Python client's): it runs in threads on the wall
clock, reads the Lease through the default client configuration rather than the one given,
never releases on shutdown (a rolling update would wait a full lease duration), and has
no fence. Pure asyncio over a :class:`LeaseStore`: kube.py holds the API calls, the tests
a dict.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Literal, Protocol, TypeVar

log = logging.getLogger("wsfleet.operator.leader")

JITTER = 1.2  # client-go's JitterFactor: a standby retries every retry_period x [1, 2.2)
T = TypeVar("T")


@dataclass(frozen=True)
class Timing:
    """controller-runtime's defaults: a standby takes over within about 15 s of a crash."""

    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def problems(self) -> list[str]:
        """client-go's checks (NewLeaderElector), naming the flags."""
        out = []
        if self.lease_duration <= self.renew_deadline:
            out.append(
                f"--leader-elect-lease-duration {self.lease_duration:g}s must be longer than "
                f"--leader-elect-renew-deadline {self.renew_deadline:g}s: the difference is the margin "
                "between the leader stopping and a standby taking over"
            )
        if self.renew_deadline <= JITTER * self.retry_period:
            out.append(
                f"--leader-elect-renew-deadline {self.renew_deadline:g}s must be longer than {JITTER} x "
                f"--leader-elect-retry-period {self.retry_period:g}s, or one slow retry loses the lease"
            )
        if self.retry_period <= 0:
            out.append(f"--leader-elect-retry-period {self.retry_period:g}s must be positive")
        return out


@dataclass(frozen=True)
class Record:
    """A Lease's spec, and the resourceVersion it was read at (empty for a new one)."""

    holder: str  # "" once released
    duration: float  # leaseDurationSeconds
    acquired: dt.datetime | None
    renewed: dt.datetime | None
    transitions: int
    version: str = ""


class Conflict(Exception):
    """Another candidate wrote the Lease first (HTTP 409)."""


class LeaseStore(Protocol):
    """One Lease. Any exception but Conflict counts as a failed attempt and is logged."""

    def get(self, timeout: float) -> Record | None: ...  # None: no such Lease
    def create(self, record: Record, timeout: float) -> Record: ...
    def update(self, record: Record, timeout: float) -> Record: ...  # at record.version


Attempt = Literal["held", "taken", "failed"]  # ours now; another's and valid; error or conflict


class Elector:
    def __init__(
        self,
        store: LeaseStore,
        identity: str,
        timing: Timing = Timing(),
        *,
        on_change: Callable[[bool], None] = lambda leading: None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.store, self.identity, self.timing = store, identity, timing
        self.on_change, self.clock, self.wall = on_change, clock, wall
        self.leading = False
        self.holder = ""  # who holds the Lease, as last read
        self._renewed_at = -float("inf")  # clock() when the last successful write was sent
        self._observed: Record | None = None
        self._observed_at = 0.0
        # Its own thread: the API calls are blocking, and the shared executor may be full of
        # reconciles exactly when a renew is due.
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lease")

    def valid(self) -> bool:
        """Whether this replica may write now: leading, and renewed within the renew deadline."""
        return self.leading and self.clock() - self._renewed_at < self.timing.renew_deadline

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Wait for the Lease: True once held, False when `stop` is set first."""
        while not stop.is_set():
            if await self.attempt(self.timing.renew_deadline) == "held":
                self._set(True)
                return True
            delay = self.timing.retry_period * (1 + random.random() * JITTER)  # jitter, not a secret
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
        return False

    async def hold(self) -> None:
        """Renew until the Lease is lost; return then (the caller stops writing at once)."""
        while True:
            await asyncio.sleep(self.timing.retry_period)
            while True:
                remaining = self._renewed_at + self.timing.renew_deadline - self.clock()
                if remaining <= 0:
                    log.error("lease not renewed for %gs (renew deadline): stopping", self.timing.renew_deadline)
                    self._set(False)
                    return
                outcome = await self.attempt(remaining)
                if outcome == "held":
                    break
                if outcome == "taken":
                    log.error("the lease is held by %s now: stopping", self.holder)
                    self._set(False)
                    return
                await asyncio.sleep(min(self.timing.retry_period, remaining))

    async def release(self) -> None:
        """Give the Lease up (after the last write), so a standby takes it at its next retry."""
        if not self.leading:
            return
        self._set(False)
        old = self._observed
        if old is None or old.holder != self.identity:
            return
        now = self.wall()
        try:
            await self._call(self.store.update, replace(old, holder="", duration=1, acquired=now, renewed=now), 5.0)
        except Exception as exc:  # the standby takes over after the lease duration anyway
            log.warning("could not release the lease: %s", exc)
        else:
            log.info("lease released")

    async def attempt(self, timeout: float) -> Attempt:
        """client-go's tryAcquireOrRenew."""
        sent, now = self.clock(), self.wall()
        try:
            old = await self._call(self.store.get, timeout)
            if old is None:
                record = Record(self.identity, self.timing.lease_duration, now, now, 0)
                new = await self._call(self.store.create, record, timeout)
            else:
                if old != self._observed:
                    self._observed, self._observed_at = old, self.clock()
                self.holder = old.holder
                if old.holder and old.holder != self.identity and self.clock() < self._observed_at + old.duration:
                    return "taken"
                ours = old.holder == self.identity
                record = replace(
                    old,
                    holder=self.identity,
                    duration=self.timing.lease_duration,
                    acquired=old.acquired if ours else now,
                    renewed=now,
                    transitions=old.transitions if ours else old.transitions + 1,
                )
                new = await self._call(self.store.update, record, timeout)
        except Conflict:
            log.debug("lease conflict: another candidate wrote it first")
            return "failed"
        except Exception as exc:  # any failure is a failed attempt; the deadline decides
            log.warning("lease attempt failed: %s", exc)
            return "failed"
        self._observed, self._observed_at, self._renewed_at, self.holder = new, self.clock(), sent, self.identity
        return "held"

    async def _call(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def _set(self, leading: bool) -> None:
        if leading != self.leading:
            self.leading = leading
            log.info("%s %s", self.identity, "is leading" if leading else "stopped leading")
            self.on_change(leading)
