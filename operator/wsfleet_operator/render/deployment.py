"""The workload Deployment: probes, the shutdown timeline, spread and a restricted security context."""

from __future__ import annotations

from typing import Any

from wsfleet_common import contract as c
from wsfleet_operator import naming
from wsfleet_operator.model import Probe
from wsfleet_operator.render import configmap
from wsfleet_operator.render.context import Context, Manifest

RUN_AS = 1000
# /tmp is the only writable path; uvicorn and Python need a little scratch space.
TMP_SIZE_LIMIT = "64Mi"
ZONE_KEY = "topology.kubernetes.io/zone"
NODE_KEY = "kubernetes.io/hostname"


def _probe(probe: Probe) -> dict[str, Any]:
    return {
        "httpGet": {"path": probe.path, "port": c.PORT_NAME},
        "periodSeconds": probe.period,
        "timeoutSeconds": probe.timeout,
        "failureThreshold": probe.failure_threshold,
    }


def _pre_stop(ctx: Context) -> dict[str, Any]:
    if ctx.spec.shutdown.pre_stop_action == "sleep":
        return {"sleep": {"seconds": ctx.t.pre_stop}}
    # The workload turns unready on this request and answers after WSFLEET_PRESTOP_SECONDS.
    return {"httpGet": {"path": c.PRESTOP_PATH, "port": c.PORT_NAME}}


def _env(ctx: Context) -> list[dict[str, Any]]:
    spec = ctx.spec
    env: list[dict[str, Any]] = [
        {"name": c.ENV_POD_NAME, "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": c.ENV_POD_NAMESPACE, "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": c.ENV_NODE_NAME, "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {
            "name": c.ENV_REDIS_URL,
            "valueFrom": {"secretKeyRef": {"name": spec.redis.url_secret.name, "key": spec.redis.url_secret.key}},
        },
    ]
    secrets = [(c.ENV_PUBLISH_API_KEY, spec.publish.api_key_secret)]
    if spec.auth.jwt is not None:
        secrets.append((c.ENV_JWT_KEY, spec.auth.jwt.key_secret))
    for name, ref in secrets:
        if ref is not None:
            env.append({"name": name, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}})
    for e in spec.env:
        env.append(e.model_dump(by_alias=True, exclude_none=True))
    return env


def _spread(ctx: Context) -> list[dict[str, Any]]:
    ts = ctx.spec.topology_spread
    return [
        {
            "maxSkew": ts.max_skew,
            "topologyKey": key,
            "whenUnsatisfiable": when,
            "labelSelector": {"matchLabels": naming.selector(ctx.wss)},
            # Spread each ReplicaSet on its own, so a rollout's new pods spread too.
            "matchLabelKeys": ["pod-template-hash"],
        }
        for key, when in ((ZONE_KEY, ts.zone), (NODE_KEY, ts.node))
    ]


def _container(ctx: Context) -> dict[str, Any]:
    spec = ctx.spec
    return {
        "name": naming.CONTAINER_NAME,
        "image": spec.image,
        "imagePullPolicy": spec.image_pull_policy,
        "ports": [
            {"name": c.PORT_NAME, "containerPort": spec.port, "protocol": "TCP"},
            {"name": c.METRICS_PORT_NAME, "containerPort": spec.metrics_port, "protocol": "TCP"},
        ],
        "envFrom": [{"configMapRef": {"name": naming.configmap_name(ctx.wss)}}],
        "env": _env(ctx),
        "resources": spec.resources.model_dump(by_alias=True),
        "startupProbe": _probe(spec.probes.startup),
        "readinessProbe": {**_probe(spec.probes.readiness), "successThreshold": 1},
        "livenessProbe": _probe(spec.probes.liveness),
        "lifecycle": {"preStop": _pre_stop(ctx)},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, *spec.pod_template.volume_mounts],
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def _pod_spec(ctx: Context) -> dict[str, Any]:
    pt = ctx.spec.pod_template
    pod: dict[str, Any] = {
        "terminationGracePeriodSeconds": ctx.t.grace,
        "enableServiceLinks": False,
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            "fsGroup": RUN_AS,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "topologySpreadConstraints": _spread(ctx),
        "containers": [_container(ctx)],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": TMP_SIZE_LIMIT}}, *pt.volumes],
    }
    optional: dict[str, Any] = {
        "nodeSelector": pt.node_selector or None,
        "tolerations": pt.tolerations or None,
        "affinity": pt.affinity,
        "priorityClassName": pt.priority_class_name,
        "serviceAccountName": pt.service_account_name,
        "imagePullSecrets": [{"name": n} for n in pt.image_pull_secrets] or None,
    }
    pod.update({k: v for k, v in optional.items() if v is not None})
    return pod


def render(ctx: Context) -> Manifest:
    spec = ctx.spec
    pt = spec.pod_template
    body: dict[str, Any] = {
        "revisionHistoryLimit": 5,
        "selector": {"matchLabels": naming.selector(ctx.wss)},
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": spec.rollout.max_surge, "maxUnavailable": spec.rollout.max_unavailable},
        },
        "template": {
            "metadata": {
                "labels": {**pt.labels, **naming.labels(ctx.wss)},
                "annotations": {**pt.annotations, naming.ANNOTATION_CONFIG_CHECKSUM: configmap.checksum(ctx)},
            },
            "spec": _pod_spec(ctx),
        },
    }
    # I9: while the HPA owns scaling, the Deployment must not carry replicas at all, or each
    # apply would reset the HPA's choice.
    if not spec.autoscaling.enabled:
        body = {"replicas": spec.replicas.min, **body}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": ctx.meta(), "spec": body}
