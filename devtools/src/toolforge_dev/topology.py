"""The local cluster's fixed layout: addresses, names, component order, and its error.

Shared by the launcher's modules (:mod:`toolforge_dev.cluster` and the component modules it
starts); :mod:`toolforge_dev.cluster` re-exports every name.
"""

from __future__ import annotations

from collections.abc import Callable

from toolforge_dev.paths import REPO_ROOT

__all__ = [
    "APISERVER_URL",
    "BRIDGE",
    "CLUSTER_CIDR",
    "CLUSTER_DOMAIN",
    "COMPONENTS",
    "CRDS_DIR",
    "DNS_SERVICE_IP",
    "KUBERNETES_SERVICE_IP",
    "MANIFESTS_DIR",
    "NODE_IP",
    "NODE_NAME",
    "POD_SUBNET",
    "SERVICE_CIDR",
    "ClusterError",
    "Progress",
]

Progress = Callable[[str], None]

NODE_NAME = "toolforge-dev"
BRIDGE = "tfdev0"
NODE_IP = "10.244.0.1"
POD_SUBNET = "10.244.0.0/24"
CLUSTER_CIDR = "10.244.0.0/16"
SERVICE_CIDR = "10.96.0.0/16"
KUBERNETES_SERVICE_IP = "10.96.0.1"
DNS_SERVICE_IP = "10.96.0.10"
CLUSTER_DOMAIN = "cluster.local"
APISERVER_URL = f"https://{NODE_IP}:6443"

#: Start order; stop runs it backwards.
COMPONENTS = (
    "containerd",
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
    "coredns",
)

MANIFESTS_DIR = REPO_ROOT / "devtools" / "manifests"
CRDS_DIR = REPO_ROOT / "devtools" / "crds"


class ClusterError(Exception):
    """The cluster could not be started or stopped; the message says which component and why."""
