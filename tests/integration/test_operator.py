"""The operator against a real control plane.

Matrix:
- every example in deploy/examples becomes Ready (kubectl wait) in a namespace that
  enforces PodSecurity 'restricted', with owned children;
- a resync of a fleet in line writes nothing, for every example (the API server's audit log of the
  operator's user, resourceVersions, the write counter), once resyncs are shown to have run;
- drift: a deleted child comes back; a hand-edited managed field is restored; a field
  the operator does not manage is left alone; the HPA keeps `replicas`;
- deletion garbage-collects every child;
- a provider switch deletes the old provider's objects;
- a spec change rolls the Deployment: Reconciling, then Ready at the new generation;
- kstatus (sigs.k8s.io/cli-utils, as Flux and Argo CD read health) computes Current for every Ready
  example and InProgress for the resource as stored while it rolls out, with its message;
- an operator killed with SIGKILL and restarted converges without duplicates.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import threading
import time
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch

from tests.conftest import EXAMPLES
from tests.integration.conftest import BIN, RESYNC, Audit, Kubectl, Operator, example, wait_until
from tests.support import secrets
from tests.support.tools import kstatus
from wsfleet_common import contract
from wsfleet_operator import naming

READY_TIMEOUT = 90.0
CORE_CHILDREN = (
    "deployment", "service", "configmap", "horizontalpodautoscaler", "poddisruptionbudget", "networkpolicy"
)  # fmt: skip


def apply_ok(kubectl: Kubectl, doc: dict[str, Any]) -> None:
    proc = kubectl.apply(doc)
    assert proc.returncode == 0, proc.stderr


def wait_ready(kubectl: Kubectl, name: str, namespace: str, timeout: float = READY_TIMEOUT) -> None:
    proc = kubectl(
        "wait", "--for=condition=Ready", f"wss/{name}", "-n", namespace, f"--timeout={timeout:.0f}s", check=False
    )
    assert proc.returncode == 0, (proc.stderr, kubectl.get("wss", name, namespace))


def owned(kubectl: Kubectl, namespace: str, name: str) -> dict[str, dict[str, Any]]:
    """Every object carrying this resource's selector label, by 'kind/name'."""
    kinds = ",".join((*CORE_CHILDREN, "ingress", "httproutes.gateway.networking.k8s.io"))
    selector = f"{naming.LABEL_SERVICE}={name}"
    proc = kubectl("get", kinds, "-n", namespace, "-l", selector, "-o", "json", "--show-managed-fields")
    return {f"{o['kind']}/{o['metadata']['name']}": o for o in json.loads(proc.stdout)["items"]}


# Kinds whose objects no other controller writes: any resourceVersion change would be ours.
ONLY_OURS = ("ConfigMap", "Service", "Ingress", "NetworkPolicy")


def fingerprint(kubectl: Kubectl, namespace: str, name: str) -> dict[str, str]:
    """What a write by the operator would change: our managedFields entries, and the
    resourceVersion of objects (and the WebSocketService) that only we write to."""
    out = {}
    for key, obj in owned(kubectl, namespace, name).items():
        ours = [e for e in obj["metadata"]["managedFields"] if e["manager"] == naming.FIELD_MANAGER]
        out[key] = repr([(e["operation"], e.get("time"), e.get("subresource")) for e in ours])
        if obj["kind"] in ONLY_OURS:
            out[key] += "@" + obj["metadata"]["resourceVersion"]
    wss = kubectl.get("wss", name, namespace)
    assert wss is not None
    out["WebSocketService"] = wss["metadata"]["resourceVersion"]
    return out


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_becomes_ready(path: Any, kubectl: Kubectl, operator: Operator, namespace: str) -> None:
    doc = example(path.stem, namespace)
    name = doc["metadata"]["name"]
    apply_ok(kubectl, doc)
    wait_ready(kubectl, name, namespace)
    wss = kubectl.get("wss", name, namespace)
    assert wss is not None
    status = wss["status"]
    assert status["observedGeneration"] == wss["metadata"]["generation"]
    assert status["readyReplicas"] >= doc["spec"].get("replicas", {}).get("min", 3)
    assert status["timeouts"]["idleTimeoutSeconds"] >= status["timeouts"]["heartbeatWindowSeconds"]
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions == {"Ready": "True", "Reconciling": "False", "Stalled": "False", "TimeoutsAligned": "True"}
    (health,) = kstatus(wss)
    assert (health["status"], health["message"]) == ("Current", "Resource is Ready"), health
    dep = kubectl.get("deployment", name, namespace)
    assert dep is not None
    assert dep["metadata"]["ownerReferences"][0]["uid"] == wss["metadata"]["uid"]
    # The pods were admitted by PodSecurity 'restricted' in this namespace, and are running.
    pods = kubectl("get", "pods", "-n", namespace, "-l", f"{naming.LABEL_SERVICE}={name}", "-o", "name").stdout.split()
    assert len(pods) == status["replicas"]
    events = json.loads(kubectl("get", "events", "-n", namespace, "-o", "json").stdout)["items"]
    created = {e["message"] for e in events if e["reason"] == "Created" and e["involvedObject"]["name"] == name}
    assert f"created Deployment {name}" in created  # one event per write
    columns = kubectl("get", "wss", name, "-n", namespace).stdout.splitlines()[1].split()
    assert columns[1:5] == ["True", doc["spec"].get("loadBalancer", {}).get("provider", "none"), str(status["readyReplicas"]),
                            str(status["timeouts"]["idleTimeoutSeconds"])]  # fmt: skip


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_noop_resync_writes_nothing(
    path: Any, kubectl: Kubectl, operator: Operator, audit: Audit, namespace: str
) -> None:
    """Counted by the API server's audit log (the operator's own user), not by the operator. Each
    reconcile of this resource dry-runs an apply of its Deployment: those show that resyncs ran."""
    doc = example(path.stem, namespace)
    name = doc["metadata"]["name"]
    apply_ok(kubectl, doc)
    wait_ready(kubectl, name, namespace)

    def passes() -> int:
        """Reconciles of this resource: its Deployment's dry-run applies."""
        refs = [e["objectRef"] for e in audit.writes(namespace, dry_run=True)]
        return sum(1 for r in refs if r.get("resource") == "deployments" and r.get("name") == name)

    # Settled: a whole reconcile of this resource went by without a write.
    mark = [passes(), len(audit.writes(namespace))]

    def settled() -> bool:
        now = [passes(), len(audit.writes(namespace))]
        if now[1] != mark[1]:  # it still wrote: start counting again from here
            mark[:] = now
        return now[0] >= mark[0] + 2

    wait_until(settled, 60, "a reconcile that writes nothing")
    before, writes = fingerprint(kubectl, namespace, name), audit.writes(namespace)
    ran, unchanged, counted = passes(), operator.reconciles("unchanged"), operator.writes()
    # Every child carries an Apply entry of ours, so any write by the operator would show.
    assert all(v.startswith("[('Apply'") for k, v in before.items() if k != "WebSocketService"), before
    wait_until(lambda: passes() >= ran + 2 and operator.reconciles("unchanged") >= unchanged + 2,
               6 * RESYNC + 30, "two more resyncs of this resource")  # fmt: skip
    after = audit.writes(namespace)
    assert after == writes, [f"{e['verb']} {e['objectRef']}" for e in after[len(writes) :]]
    assert fingerprint(kubectl, namespace, name) == before
    assert operator.writes() == counted


def test_drift_is_corrected_and_foreign_fields_are_kept(kubectl: Kubectl, operator: Operator, namespace: str) -> None:
    apply_ok(kubectl, example("nginx", namespace))
    wait_ready(kubectl, "chat", namespace)

    kubectl("delete", "configmap", "chat-config", "-n", namespace)
    wait_until(lambda: kubectl.get("configmap", "chat-config", namespace), 2 * RESYNC + 10, "the ConfigMap to return")

    kubectl("patch", "deployment", "chat", "-n", namespace, "--type=merge",
            "-p", '{"spec":{"template":{"spec":{"terminationGracePeriodSeconds":5}}}}')  # fmt: skip

    def grace() -> int:
        dep = kubectl.get("deployment", "chat", namespace)
        assert dep is not None
        return int(dep["spec"]["template"]["spec"]["terminationGracePeriodSeconds"])

    wait_until(lambda: grace() == 45, 2 * RESYNC + 10, "terminationGracePeriodSeconds to be restored to 45")

    kubectl("annotate", "service", "chat", "-n", namespace, "team.example.com/owner=realtime")
    time.sleep(2 * RESYNC)
    svc = kubectl.get("service", "chat", namespace)
    assert svc is not None
    assert svc["metadata"]["annotations"]["team.example.com/owner"] == "realtime"


def test_the_hpa_owns_replicas(kubectl: Kubectl, operator: Operator, namespace: str) -> None:
    apply_ok(kubectl, example("nginx", namespace))
    wait_ready(kubectl, "chat", namespace)
    kubectl("scale", "deployment", "chat", "-n", namespace, "--replicas=5")
    time.sleep(3 * RESYNC)
    dep = kubectl.get("deployment", "chat", namespace)
    assert dep is not None
    assert dep["spec"]["replicas"] == 5
    for entry in dep["metadata"]["managedFields"]:
        if entry["manager"] == naming.FIELD_MANAGER:
            assert "f:replicas" not in entry.get("fieldsV1", {}).get("f:spec", {})


def test_network_policy_is_repaired_at_once_and_removed_on_opt_out(
    kubectl: Kubectl, operator: Operator, namespace: str
) -> None:
    doc = example("nginx", namespace)
    apply_ok(kubectl, doc)
    wait_ready(kubectl, "chat", namespace)
    np = kubectl.get("networkpolicy", "chat", namespace)
    assert np is not None
    assert np["spec"]["policyTypes"] == ["Ingress", "Egress"]
    # The API server kept every rule as rendered (named ports, peers).
    assert [r["ports"][0]["port"] for r in np["spec"]["ingress"]] == ["http", "metrics"]
    # A deleted policy leaves the pods open: it comes back (a watched child; the resync would too).
    kubectl("delete", "networkpolicy", "chat", "-n", namespace)
    wait_until(lambda: kubectl.get("networkpolicy", "chat", namespace), RESYNC, "the NetworkPolicy to return")
    opted_out = copy.deepcopy(doc)
    opted_out["spec"]["networkPolicy"] = {"enabled": False}
    apply_ok(kubectl, opted_out)
    wait_until(lambda: kubectl.get("networkpolicy", "chat", namespace) is None, 30, "the NetworkPolicy to be deleted")
    wait_ready(kubectl, "chat", namespace)


def test_secret_values_never_leave_their_secrets(kubectl: Kubectl, operator: Operator, namespace: str) -> None:
    """Secrets are referenced, never read: no child, event, status or operator log line carries a value
    (the operator log is scanned with every other log at the end of the session)."""
    kubectl("create", "secret", "generic", "chat-publish", "-n", namespace, f"--from-literal=key={secrets.API_KEY}")
    kubectl("create", "secret", "generic", "chat-jwt", "-n", namespace, f"--from-literal=key={secrets.JWT_KEY}")
    doc = example("nginx", namespace)
    doc["spec"]["publish"] = {"apiKeySecret": {"name": "chat-publish", "key": "key"}}
    doc["spec"]["auth"] = {"jwt": {"keySecret": {"name": "chat-jwt", "key": "key"}}}
    apply_ok(kubectl, doc)
    wait_ready(kubectl, "chat", namespace)
    dep = kubectl.get("deployment", "chat", namespace)
    assert dep is not None
    env = {e["name"]: e for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    refs = {contract.ENV_REDIS_URL: "wsfleet-redis", contract.ENV_PUBLISH_API_KEY: "chat-publish",
            contract.ENV_JWT_KEY: "chat-jwt"}  # fmt: skip
    for var, name in refs.items():
        assert env[var]["valueFrom"]["secretKeyRef"]["name"] == name, env[var]
        assert "value" not in env[var]
    kinds = ",".join((*CORE_CHILDREN, "ingress", "websocketservices", "events"))
    everything = kubectl("get", kinds, "-n", namespace, "-o", "yaml").stdout
    assert "chat-jwt" in everything, "the dump holds the objects"
    for value in secrets.ALL:
        assert value not in everything, "a secret value in an object, event or status"
    # The operator's log: JSON lines; those of this resource's reconciles carry both correlation ids.
    lines = [json.loads(line) for line in operator.log.read_text().splitlines() if line.startswith("{")]
    ours = [d for d in lines if d.get("resource") == f"{namespace}/chat"]
    assert ours, "no log line names the resource"
    assert all(d["component"] == "operator" for d in lines)
    assert any(d.get("reconcile_id") and d["message"].startswith("reconciled") for d in ours), ours[-5:]


def test_deletion_garbage_collects_children(kubectl: Kubectl, operator: Operator, namespace: str) -> None:
    apply_ok(kubectl, example("nginx", namespace))
    wait_ready(kubectl, "chat", namespace)
    assert len(owned(kubectl, namespace, "chat")) == 7
    kubectl("delete", "wss", "chat", "-n", namespace)
    wait_until(lambda: not owned(kubectl, namespace, "chat"), 60, "garbage collection of every child")


def test_provider_switch_deletes_old_objects(kubectl: Kubectl, operator: Operator, namespace: str) -> None:
    doc = example("nginx", namespace)
    apply_ok(kubectl, doc)
    wait_ready(kubectl, "chat", namespace)
    switched = copy.deepcopy(doc)
    switched["spec"]["loadBalancer"] = {
        "provider": "gateway",
        "gateway": {"name": "public"},
        "host": "chat.example.com",
    }
    apply_ok(kubectl, switched)
    wait_until(lambda: kubectl.get("httproute", "chat", namespace), 30, "the HTTPRoute")
    wait_until(lambda: kubectl.get("ingress", "chat", namespace) is None, 30, "the Ingress to be deleted")
    wait_ready(kubectl, "chat", namespace)


def test_spec_change_rolls_out(kubectl: Kubectl, operator: Operator, namespace: str) -> None:
    doc = example("nginx", namespace)
    apply_ok(kubectl, doc)
    wait_ready(kubectl, "chat", namespace)
    # Record every version of the resource the API server stores during the rollout: with
    # kwok's instant pods, Reconciling=True may last well under a second.
    versions: list[tuple[int, dict[str, str]]] = []
    stored: list[dict[str, Any]] = []  # every version as stored, for kstatus
    stop = threading.Event()
    api = k8s_config.new_client_from_config(config_file=str(kubectl.kubeconfig))
    custom = k8s.CustomObjectsApi(api)

    def record() -> None:
        w = k8s_watch.Watch()
        for event in w.stream(
            custom.list_namespaced_custom_object, "wsfleet.dev", "v1alpha1", namespace, "websocketservices",
            field_selector="metadata.name=chat", timeout_seconds=60,
        ):  # fmt: skip
            obj = event["object"]
            conds = {c["type"]: c["status"] for c in (obj.get("status") or {}).get("conditions", [])}
            versions.append((obj["metadata"]["generation"], conds))
            stored.append(obj)
            if stop.is_set():
                w.stop()

    recorder = threading.Thread(target=record, daemon=True)
    recorder.start()
    # the watch is established once it has sent the object as it is now (its first event, ADDED)
    wait_until(lambda: versions, 30, "the watch's first event", interval=0.05)
    changed = copy.deepcopy(doc)
    changed["spec"]["replay"] = {"maxMessages": 1000}  # in the ConfigMap: the checksum rolls the pods
    apply_ok(kubectl, changed)
    wait_ready(kubectl, "chat", namespace)
    wait_until(
        lambda: (kubectl.get("wss", "chat", namespace) or {}).get("status", {}).get("observedGeneration") == 2,
        30,
        "observedGeneration 2",
    )
    stop.set()
    kubectl("annotate", "wss", "chat", "-n", namespace, "test.example.com/end=1")  # one more event ends the stream
    recorder.join(timeout=30)
    api.close()
    gen2 = [conds for gen, conds in versions if gen == 2]
    assert any(c.get("Reconciling") == "True" and c.get("Ready") == "False" for c in gen2), versions
    assert gen2[-1]["Ready"] == "True", versions
    assert gen2[-1]["Reconciling"] == "False", versions
    # What Flux and Argo CD see of the same versions: InProgress while it rolls, then Current.
    rolling = [o for o in stored if o["metadata"]["generation"] == 2]
    health = kstatus(*rolling)
    reconciling = [
        h for o, h in zip(rolling, health, strict=True)
        if any(c["type"] == "Reconciling" and c["status"] == "True" for c in o.get("status", {}).get("conditions", []))
    ]  # fmt: skip
    assert reconciling, versions
    assert all(h["status"] == "InProgress" for h in reconciling), reconciling
    assert all(h["message"] for h in reconciling), reconciling
    assert health[-1]["status"] == "Current", health[-1]
    wss = kubectl.get("wss", "chat", namespace)
    assert wss is not None
    assert wss["status"]["observedGeneration"] == wss["metadata"]["generation"] == 2
    cm = kubectl.get("configmap", "chat-config", namespace)
    assert cm is not None
    assert cm["data"]["WSFLEET_REPLAY_MAX_MESSAGES"] == "1000"


def test_operator_restart_converges_without_duplicates(kubectl: Kubectl, operator: Operator, namespace: str) -> None:
    doc = example("gce", namespace)
    apply_ok(kubectl, doc)
    # Kill the operator while it is creating children, then start it again.
    wait_until(lambda: kubectl.get("configmap", "chat-gce-config", namespace), 30, "the first child", interval=0.05)
    operator.stop(signal.SIGKILL)
    operator.start()
    wait_ready(kubectl, "chat-gce", namespace)
    objs = owned(kubectl, namespace, "chat-gce")
    kinds = sorted(k.split("/")[0] for k in objs)
    assert kinds == sorted(["ConfigMap", "Deployment", "HorizontalPodAutoscaler", "Ingress", "NetworkPolicy",
                            "PodDisruptionBudget", "Service"])  # fmt: skip
    assert kubectl.get("backendconfig", "chat-gce", namespace) is not None
    replicasets = kubectl("get", "rs", "-n", namespace, "-o", "name").stdout.split()
    assert len(replicasets) == 1


def test_enabling_autoscaling_keeps_the_replica_count(kubectl: Kubectl, operator: Operator, namespace: str) -> None:
    doc = example("none", namespace)
    doc["spec"]["replicas"] = {"min": 4, "max": 8}
    apply_ok(kubectl, doc)
    wait_ready(kubectl, "chat-internal", namespace)
    enabled = copy.deepcopy(doc)
    enabled["spec"]["autoscaling"] = {"enabled": True}
    apply_ok(kubectl, enabled)
    seen = set()
    deadline = time.monotonic() + 3 * RESYNC
    while time.monotonic() < deadline:
        dep = kubectl.get("deployment", "chat-internal", namespace)
        assert dep is not None
        seen.add(dep["spec"]["replicas"])
    # Dropping `replicas` from the apply must not reset it to the default 1 before the HPA acts.
    assert seen == {4}, seen
    wait_until(lambda: kubectl.get("hpa", "chat-internal", namespace), 10, "the HPA")
    dep = kubectl.get("deployment", "chat-internal", namespace)
    assert dep is not None
    managers = {
        e["manager"]
        for e in dep["metadata"]["managedFields"]
        if "f:replicas" in e.get("fieldsV1", {}).get("f:spec", {})
    }
    assert naming.FIELD_MANAGER not in managers


def test_namespace_scoped_operator_touches_only_its_namespace(
    kubectl: Kubectl, operator: Operator, namespace: str, dev_cluster: Any
) -> None:
    other = f"{namespace}-other"
    kubectl("create", "namespace", other)
    kubectl("label", "namespace", other, "pod-security.kubernetes.io/enforce=restricted")
    operator.stop()
    scoped = Operator(
        dev_cluster.operator_kubeconfig,
        dev_cluster.dir / "logs" / "operator-scoped.log",
        args=(f"--namespace={namespace}",),
    )
    scoped.start()
    try:
        apply_ok(kubectl, example("nginx", namespace))
        apply_ok(kubectl, example("nginx", other))
        wait_ready(kubectl, "chat", namespace)
        time.sleep(2 * RESYNC)
        assert kubectl.get("deployment", "chat", other) is None
        assert kubectl.condition("chat", other, "Ready") is None
    finally:
        scoped.stop()
        operator.start()
        kubectl("delete", "namespace", other, "--wait=false", check=False)


def test_ports_0_mean_no_endpoint_and_two_operators_start(dev_cluster: Any, namespace: str, tmp_path: Any) -> None:
    """--health-port 0 once built the liveness URL http://host:0/healthz, which has no port, so
    kopf bound port 80 and a second operator died with "address already in use"."""
    procs = []
    logs = [tmp_path / f"operator-{i}.log" for i in range(2)]
    for log in logs:
        with log.open("wb") as out:
            procs.append(subprocess.Popen(
                [str(BIN / "wsfleet"), "operator", f"--kubeconfig={dev_cluster.operator_kubeconfig}",
                 f"--namespace={namespace}", "--bind=127.0.0.1", "--metrics-port=0", "--health-port=0",
                 "--verbose", "--log-format=text"], stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            ))  # fmt: skip
    try:
        for log, proc in zip(logs, procs, strict=True):
            # kopf's watch on the namespace is up: the operator got past every endpoint it binds
            wait_until(lambda log=log, proc=proc: "Starting the watch-stream" in log.read_text() or proc.poll() is not None,
                       60, f"the operator's watch ({log})")  # fmt: skip
            text = log.read_text()
            assert proc.poll() is None, text[-3000:]
            assert "metrics disabled (--metrics-port 0), health disabled (--health-port 0)" in text
            assert "address already in use" not in text
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
