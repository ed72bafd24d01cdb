"""The dev cluster's Gateway: Traefik listens on loopback only, the Gateway's listener is the
entry point Traefik serves (Traefik matches them by port), and the GatewayClass names Traefik's
controller, as the example WebSocketService's parentRef expects."""

from __future__ import annotations

import yaml

from tests.conftest import ROOT
from wsfleet_devcluster import gateway


def test_traefik_listens_on_loopback_only_and_calls_nowhere() -> None:
    config = gateway.static_config(18000, 18080)
    addresses = [e["address"] for e in config["entryPoints"].values()]
    assert addresses == ["127.0.0.1:18000", "127.0.0.1:18080"]
    assert config["global"] == {"checkNewVersion": False, "sendAnonymousUsage": False}
    assert set(config["providers"]) == {"kubernetesGateway", "kubernetesCRD"}


def test_the_listener_is_traefiks_entry_point_and_the_example_attaches_to_it() -> None:
    gateway_class, gw = gateway.objects(18000)
    assert gateway_class["spec"]["controllerName"] == gateway.CONTROLLER
    assert gw["spec"]["gatewayClassName"] == gateway_class["metadata"]["name"]
    (listener,) = gw["spec"]["listeners"]
    assert listener["port"] == 18000
    example = yaml.safe_load((ROOT / "deploy" / "examples" / "gateway-traefik.yaml").read_text())
    ref = example["spec"]["loadBalancer"]["gateway"]
    assert (ref["name"], ref["namespace"], ref["sectionName"]) == (
        gw["metadata"]["name"], gw["metadata"]["namespace"], listener["name"]
    )  # fmt: skip
    assert example["spec"]["loadBalancer"]["implementation"] == "traefik"
