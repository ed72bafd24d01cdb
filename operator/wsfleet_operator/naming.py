"""Names, labels, selectors and owner references of child objects.

Every literal label key and child-name suffix lives here, so the renderers, the
reconciler and the tests agree on what "owned by this WebSocketService" means.
Pure: imports only the model.
"""

from __future__ import annotations

from typing import Any

from wsfleet_operator.model import API_VERSION, KIND, WebSocketService

FIELD_MANAGER = "wsfleet-operator"
CONTAINER_NAME = "workload"

LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_PART_OF = "app.kubernetes.io/part-of"
# The selector label: one key, never changed after creation (Deployment selectors are immutable).
LABEL_SERVICE = "wsfleet.dev/service"

# Selects every object this operator manages (watch filters, owned-object listing).
MANAGED_SELECTOR = f"{LABEL_MANAGED_BY}={FIELD_MANAGER}"

# Changes whenever the rendered ConfigMap changes, so the Deployment rolls its pods.
ANNOTATION_CONFIG_CHECKSUM = "wsfleet.dev/config-checksum"

CONFIGMAP_SUFFIX = "-config"


def configmap_name(wss: WebSocketService) -> str:
    return wss.metadata.name + CONFIGMAP_SUFFIX


def child_name(wss: WebSocketService) -> str:
    """Every other child shares the resource's name: one name to grep for in kubectl output."""
    return wss.metadata.name


def selector(wss: WebSocketService) -> dict[str, str]:
    return {LABEL_SERVICE: wss.metadata.name}


def labels(wss: WebSocketService) -> dict[str, str]:
    return {
        LABEL_NAME: "wsfleet-workload",
        LABEL_INSTANCE: wss.metadata.name,
        LABEL_COMPONENT: "websocket",
        LABEL_PART_OF: "wsfleet",
        LABEL_MANAGED_BY: FIELD_MANAGER,
        **selector(wss),
    }


def owner_reference(wss: WebSocketService) -> dict[str, Any] | None:
    """The controller owner reference, or None for a resource read from a file (no uid yet)."""
    if not wss.metadata.uid:
        return None
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": wss.metadata.name,
        "uid": wss.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def metadata(
    wss: WebSocketService,
    name: str,
    *,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Metadata for a child object: name, namespace, labels, owner reference."""
    meta: dict[str, Any] = {"name": name, "namespace": wss.metadata.namespace, "labels": labels(wss)}
    if annotations:
        meta["annotations"] = dict(sorted(annotations.items()))
    owner = owner_reference(wss)
    if owner is not None:
        meta["ownerReferences"] = [owner]
    return meta
