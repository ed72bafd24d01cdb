"""The only module that talks to the Kubernetes API.

Writes are server-side applies under one field manager. Before writing, each
child is applied with dryRun=All and the result compared with the live object:
when they match, nothing is written. A resync of a fleet that is in line
therefore costs reads and dry runs only, and zero writes, and a field someone
edited by hand shows up as a difference and is restored.

Errors are translated here, once: conflicts, throttling and server errors
become :class:`Retry` with a delay; a request the API server refuses (invalid
object, forbidden) becomes :class:`Rejected` with its message.
"""

from __future__ import annotations

import copy
import datetime as dt
import email.utils
import json
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from kubernetes import client as k8s
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ResourceNotFoundError
from kubernetes.dynamic.resource import Resource

from wsfleet_operator import naming
from wsfleet_operator.leader import Conflict, Record
from wsfleet_operator.model import API_VERSION, KIND

Manifest = dict[str, Any]
Outcome = Literal["created", "updated", "unchanged"]

RETRY_STATUSES = {409, 429, 500, 502, 503, 504}
DEFAULT_RETRY_DELAY = 5.0  # seconds, when the API server names none
MAX_RETRY_DELAY = 300.0  # a Retry-After far in the future still retries within the resync's reach
MISSING_KIND_TTL = 60.0  # seconds


class Retry(Exception):
    """A transient failure: try again after `delay` seconds."""

    def __init__(self, message: str, delay: float = 5.0) -> None:
        super().__init__(message)
        self.delay = delay


class Rejected(Exception):
    """The API server refused a request for good; retrying will not help."""


class NamespaceTerminating(Rejected):
    """The namespace is being deleted: there is nothing left to reconcile in it."""


def retry_delay(value: str | None, now: dt.datetime | None = None) -> float:
    """Seconds to wait from a Retry-After header (RFC 9110: delay-seconds or an HTTP date), within
    [0, MAX_RETRY_DELAY]; DEFAULT_RETRY_DELAY when it is absent or unreadable."""
    if not value:
        return DEFAULT_RETRY_DELAY
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return DEFAULT_RETRY_DELAY
        if when.tzinfo is None:  # an obsolete date form without a zone: HTTP dates are GMT
            when = when.replace(tzinfo=dt.UTC)
        seconds = (when - (now or dt.datetime.now(dt.UTC))).total_seconds()
    if math.isnan(seconds):
        return DEFAULT_RETRY_DELAY
    return min(max(seconds, 0.0), MAX_RETRY_DELAY)


def _translate(exc: k8s.ApiException, what: str) -> Exception:
    try:
        message = json.loads(exc.body or "{}").get("message", exc.reason)
    except (TypeError, ValueError, AttributeError):  # not JSON, or JSON that is not an object
        message = exc.reason
    if exc.status == 403 and "being terminated" in str(message):
        return NamespaceTerminating(f"{what}: {message}")
    if exc.status in RETRY_STATUSES:
        return Retry(f"{what}: {exc.status} {message}", retry_delay((exc.headers or {}).get("Retry-After")))
    return Rejected(f"{what}: {exc.status} {message}")


def _comparable(obj: Manifest) -> Manifest:
    """The object without fields that change on every write without meaning anything."""
    out = copy.deepcopy(obj)
    meta = out.get("metadata", {})
    for entry in meta.get("managedFields", []):
        entry.pop("time", None)
    return out


@dataclass
class Kube:
    """API access for the operator. `writes` counts every mutating request, by verb and kind."""

    api: k8s.ApiClient
    field_manager: str = naming.FIELD_MANAGER
    # Called before every mutating request (dry runs too); with leader election it ends the
    # process when the lease may have passed to another replica (leader.Elector.valid).
    fence: Callable[[], None] = field(default=lambda: None)
    writes: Counter[tuple[str, str]] = field(default_factory=Counter)
    _dyn: DynamicClient | None = None
    _resources: dict[tuple[str, str], Resource] = field(default_factory=dict)
    # Kinds found missing, and when: looked up again after MISSING_KIND_TTL, so CRDs
    # installed after the operator started (Gateway API, Prometheus Operator) are noticed.
    _missing: dict[tuple[str, str], float] = field(default_factory=dict)

    @property
    def dyn(self) -> DynamicClient:
        if self._dyn is None:
            self._dyn = DynamicClient(self.api)  # type: ignore[no-untyped-call]
        return self._dyn

    def resource(self, api_version: str, kind: str) -> Resource | None:
        """The API resource for a kind, or None when the cluster does not serve it (CRD not installed)."""
        key = (api_version, kind)
        if key in self._resources:
            return self._resources[key]
        missing_since = self._missing.get(key)
        if missing_since is not None and time.monotonic() - missing_since < MISSING_KIND_TTL:
            return None
        if missing_since is not None:
            self._dyn = None  # rediscover: the cached discovery predates the new CRD
        try:
            self._resources[key] = self.dyn.resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError:
            self._missing[key] = time.monotonic()
            return None
        self._missing.pop(key, None)
        return self._resources[key]

    def _require(self, api_version: str, kind: str) -> Resource:
        res = self.resource(api_version, kind)
        if res is None:
            raise Rejected(f"{api_version} {kind} is not served by this cluster (is its CRD installed?)")
        return res

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> Manifest | None:
        res = self._require(api_version, kind)
        try:
            obj: Manifest = res.get(name=name, namespace=namespace).to_dict()
        except k8s.ApiException as exc:
            if exc.status == 404:
                return None
            raise _translate(exc, f"get {kind} {namespace}/{name}") from None
        return obj

    def _apply(self, manifest: Manifest, dry_run: bool) -> Manifest:
        res = self._require(manifest["apiVersion"], manifest["kind"])
        meta = manifest["metadata"]
        self.fence()
        try:
            obj: Manifest = res.server_side_apply(
                body=manifest,
                name=meta["name"],
                namespace=meta.get("namespace"),
                field_manager=self.field_manager,
                force_conflicts=True,
                dry_run="All" if dry_run else None,
            ).to_dict()
        except k8s.ApiException as exc:
            raise _translate(exc, f"apply {manifest['kind']} {meta.get('namespace')}/{meta['name']}") from None
        return obj

    def ensure(self, manifest: Manifest, live: Manifest | None = None) -> Outcome:
        """Make the live object match the manifest; write only when a dry run shows a difference.

        `live` may be passed when the caller has just read the object.
        """
        meta = manifest["metadata"]
        if live is None:
            live = self.get(manifest["apiVersion"], manifest["kind"], meta.get("namespace", ""), meta["name"])
        if live is not None and _comparable(self._apply(manifest, dry_run=True)) == _comparable(live):
            return "unchanged"
        self._apply(manifest, dry_run=False)
        self.writes[("apply", manifest["kind"])] += 1
        return "created" if live is None else "updated"

    def owns(self, live: Manifest, *path: str) -> bool:
        """Whether our field manager's Apply entry holds the field at `path` (e.g. spec, replicas)."""
        for entry in live.get("metadata", {}).get("managedFields") or []:
            if entry.get("manager") == self.field_manager and entry.get("operation") == "Apply":
                fields = entry.get("fieldsV1") or {}
                for part in path:
                    fields = fields.get(f"f:{part}") if isinstance(fields, dict) else None
                if fields is not None:
                    return True
        return False

    def hand_over(self, live: Manifest, path: tuple[str, ...], manager: str) -> None:
        """Let `manager` co-own a field at its current value, so that our next apply can drop it.

        Server-side apply resets a field to its default when its last owner stops applying
        it; with a second owner the value stays (Kubernetes docs: Transferring Ownership).
        """
        value: Any = live
        for part in path:
            value = value[part]
        body: Manifest = value
        for part in reversed(path):
            body = {part: body}
        meta = live["metadata"]
        manifest = {
            "apiVersion": live["apiVersion"],
            "kind": live["kind"],
            "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
            **body,
        }
        res = self._require(live["apiVersion"], live["kind"])
        self.fence()
        try:
            res.server_side_apply(
                body=manifest,
                name=meta["name"],
                namespace=meta["namespace"],
                field_manager=manager,
                force_conflicts=True,
            )
        except k8s.ApiException as exc:
            raise _translate(exc, f"hand over {'.'.join(path)} of {live['kind']} {meta['name']}") from None
        self.writes[("handover", live["kind"])] += 1

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        res = self._require(api_version, kind)
        self.fence()
        try:
            res.delete(name=name, namespace=namespace, body={"propagationPolicy": "Background"})
        except k8s.ApiException as exc:
            if exc.status == 404:
                return False
            raise _translate(exc, f"delete {kind} {namespace}/{name}") from None
        self.writes[("delete", kind)] += 1
        return True

    def list_owned(self, api_version: str, kind: str, namespace: str, owner_uid: str, name: str) -> list[Manifest]:
        """Objects of a kind that this resource controls (by label, confirmed by owner uid)."""
        res = self.resource(api_version, kind)
        if res is None:
            return []
        selector = f"{naming.LABEL_SERVICE}={name},{naming.MANAGED_SELECTOR}"
        try:
            items = res.get(namespace=namespace, label_selector=selector).to_dict()["items"]
        except k8s.ApiException as exc:
            if exc.status in (403, 404):
                return []
            raise _translate(exc, f"list {kind} in {namespace}") from None
        return [
            {**o, "apiVersion": api_version, "kind": kind}
            for o in items
            if any(ref.get("uid") == owner_uid for ref in o["metadata"].get("ownerReferences", []))
        ]

    def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        res = self._require(API_VERSION, KIND)
        body = {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"name": name, "namespace": namespace},
            "status": status,
        }
        self.fence()
        try:
            res.status.patch(body=body, name=name, namespace=namespace, content_type="application/merge-patch+json")
        except k8s.ApiException as exc:
            if exc.status == 404:
                return  # deleted meanwhile: nothing to report on
            raise _translate(exc, f"patch status of {KIND} {namespace}/{name}") from None
        self.writes[("status", KIND)] += 1


class Leases:
    """The one Lease leader election holds (leader.LeaseStore): read, create, replace at a
    resourceVersion. Requests time out after `timeout` seconds, so a hung connection is a
    failed attempt rather than a leader that believes it renewed."""

    def __init__(self, api: k8s.ApiClient, namespace: str, name: str) -> None:
        self.coordination = k8s.CoordinationV1Api(api)
        self.core = k8s.CoreV1Api(api)
        self.namespace, self.name = namespace, name

    def get(self, timeout: float) -> Record | None:
        try:
            lease = self.coordination.read_namespaced_lease(self.name, self.namespace, _request_timeout=timeout)
        except k8s.ApiException as exc:
            if exc.status == 404:
                return None
            raise _translate(exc, f"get Lease {self.namespace}/{self.name}") from None
        return _record(lease)

    def create(self, record: Record, timeout: float) -> Record:
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": self.name}}
        return self._write(record, timeout, lambda spec: self.coordination.create_namespaced_lease(
            self.namespace, cast(k8s.V1Lease, {**body, "spec": spec}), _request_timeout=timeout))  # fmt: skip

    def update(self, record: Record, timeout: float) -> Record:
        meta = {"name": self.name, "namespace": self.namespace, "resourceVersion": record.version}
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta}
        return self._write(record, timeout, lambda spec: self.coordination.replace_namespaced_lease(
            self.name, self.namespace, cast(k8s.V1Lease, {**body, "spec": spec}), _request_timeout=timeout))  # fmt: skip

    # The client serialises a dict body as it is: the MicroTimes go out exactly as _micro writes
    # them (its models would write datetime.isoformat(), which drops zero microseconds).
    def _write(self, record: Record, timeout: float, call: Any) -> Record:
        spec = {
            "holderIdentity": record.holder,
            "leaseDurationSeconds": math.ceil(record.duration),
            "acquireTime": _micro(record.acquired),
            "renewTime": _micro(record.renewed),
            "leaseTransitions": record.transitions,
        }
        try:
            return _record(call(spec))
        except k8s.ApiException as exc:
            if exc.status == 409:
                raise Conflict(f"Lease {self.namespace}/{self.name}: {exc.reason}") from None
            raise _translate(exc, f"write Lease {self.namespace}/{self.name}") from None

    def announce(self, identity: str) -> None:
        """An event on the Lease, as client-go records one: `kubectl describe lease` says who leads."""
        now = dt.datetime.now(dt.UTC)
        event = {
            "metadata": {"generateName": f"{self.name}.", "namespace": self.namespace},
            "involvedObject": {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                               "name": self.name, "namespace": self.namespace},
            "reason": "LeaderElection",
            "message": f"{identity} became leader",
            "type": "Normal",
            "source": {"component": naming.FIELD_MANAGER},
            "firstTimestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "lastTimestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "count": 1,
        }  # fmt: skip
        try:
            self.core.create_namespaced_event(self.namespace, cast(k8s.CoreV1Event, event), _request_timeout=5)
        except k8s.ApiException as exc:
            raise _translate(exc, f"event on Lease {self.namespace}/{self.name}") from None


def _micro(when: dt.datetime | None) -> str | None:
    """A MicroTime as the API server writes it: RFC 3339 in UTC with microseconds."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") if when else None


def _record(lease: k8s.V1Lease) -> Record:
    spec = lease.spec or k8s.V1LeaseSpec()
    return Record(
        holder=spec.holder_identity or "",
        duration=float(spec.lease_duration_seconds or 0),
        acquired=spec.acquire_time,
        renewed=spec.renew_time,
        transitions=spec.lease_transitions or 0,
        version=(lease.metadata.resource_version if lease.metadata else None) or "",
    )
