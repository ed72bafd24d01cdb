"""The real nodes' addresses: ranges that cannot reach off the machine, and pods without a
default route.

| case                          | checked                                                       |
|-------------------------------|---------------------------------------------------------------|
| node ranges                   | disjoint /26s inside the pod range; the bridge address first   |
| the node limit                | a fifth node is refused with the range named                  |
| CNI conflist                  | bridge + host-local on the node's range, no masquerade, routes |
|                               | to the pod range, the API address and the Service range only  |
| ranges                        | documentation blocks (RFC 5737) and the Service range, apart  |
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from wsfleet_devcluster import podnet


def test_each_node_has_its_own_range_and_the_bridge_holds_its_first_address() -> None:
    nets = [podnet.NodeNet(i) for i in range(1, 5)]
    subnets = [n.subnet for n in nets]
    assert all(s.subnet_of(podnet.POD_RANGE) for s in subnets)
    assert all(not a.overlaps(b) for i, a in enumerate(subnets) for b in subnets[i + 1 :])
    assert [n.address for n in nets] == ["198.51.100.1", "198.51.100.65", "198.51.100.129", "198.51.100.193"]
    assert len({n.bridge for n in nets}) == 4
    assert all(len(n.bridge) <= 15 for n in nets), "a Linux interface name has at most 15 characters"


def test_a_fifth_node_is_refused_naming_the_range() -> None:
    with pytest.raises(podnet.NetworkError, match=r"198\.51\.100\.0/24 holds 4 nodes"):
        _ = podnet.NodeNet(5).subnet


def test_pods_get_no_default_route() -> None:
    net = podnet.NodeNet(2)
    conf = podnet.cni_conflist(net, Path("/x"))
    bridge = conf["plugins"][0]
    assert bridge["type"] == "bridge"
    assert bridge["bridge"] == net.bridge
    assert bridge["ipMasq"] is False
    assert not bridge.get("isDefaultGateway"), "a default route would send pod traffic off the machine"
    ipam = bridge["ipam"]
    assert ipam["ranges"] == [[{"subnet": "198.51.100.64/26", "gateway": "198.51.100.65"}]]
    dsts = {ipaddress.ip_network(r["dst"]) for r in ipam["routes"]}
    assert dsts == {podnet.POD_RANGE, ipaddress.ip_network(f"{podnet.API_ADDRESS}/32"), podnet.SERVICE_RANGE}
    assert ipaddress.ip_network("0.0.0.0/0") not in dsts


def test_the_ranges_are_documentation_blocks_apart_from_the_service_range() -> None:
    docs = [ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")]
    assert any(podnet.POD_RANGE.subnet_of(d) for d in docs)
    assert any(ipaddress.ip_address(podnet.API_ADDRESS) in d for d in docs)
    assert not podnet.POD_RANGE.overlaps(podnet.SERVICE_RANGE)
