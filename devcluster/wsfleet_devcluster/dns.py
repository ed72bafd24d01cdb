"""Cluster DNS for the real nodes: CoreDNS with its kubernetes plugin, on the host.

Pods find Services by name (``redis``, ``redis.<ns>.svc.cluster.local``), as they do on any
cluster; the operator's defaults and the examples say ``redis://redis:6379``. CoreDNS runs on
the host, like the control plane, listening on the API server's pod-reachable address
(podnet.API_ADDRESS, port 53), which every pod has a route to; the kubelets hand that address
to pods as their nameserver (``clusterDNS``). It answers for the cluster domain only and
forwards nothing: no name is resolved off this machine.
"""

from __future__ import annotations

from pathlib import Path

from wsfleet_devcluster import podnet

CLUSTER_DOMAIN = "cluster.local"
DNS_USER = "coredns"  # its client certificate; system:masters, like kwok's, in this dev cluster


def corefile(kubeconfig: Path, context: str) -> str:
    return f"""# Written by wsfleet dev-cluster (devcluster/wsfleet_devcluster/dns.py).
{CLUSTER_DOMAIN}:53 in-addr.arpa:53 ip6.arpa:53 {{
    bind {podnet.API_ADDRESS}
    errors
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig} {context}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 5
    }}
    cache 5
}}
.:53 {{
    bind {podnet.API_ADDRESS}
    errors
}}
"""


def args(corefile_path: Path) -> list[str]:
    return ["-conf", str(corefile_path)]
