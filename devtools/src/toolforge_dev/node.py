"""The node of the local cluster: the pod bridge and CNI configuration, containerd and its
images, kubelet, kube-proxy and CoreDNS (see :mod:`toolforge_dev.cluster`)."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from toolforge_dev import images
from toolforge_dev.binaries import Binaries
from toolforge_dev.hostops import run, which
from toolforge_dev.topology import (
    BRIDGE,
    CLUSTER_CIDR,
    CLUSTER_DOMAIN,
    DNS_SERVICE_IP,
    NODE_IP,
    NODE_NAME,
    POD_SUBNET,
)

if TYPE_CHECKING:
    from toolforge_dev.cluster import Cluster

__all__ = [
    "import_images",
    "setup_network",
    "start_containerd",
    "start_coredns",
    "start_kube_proxy",
    "start_kubelet",
]


def setup_network(c: Cluster) -> None:
    """The pod bridge with the node address, forwarding sysctls and the CNI configuration."""
    for key, value in (
        ("net/ipv4/ip_forward", "1"),
        ("net/bridge/bridge-nf-call-iptables", "1"),
        ("net/bridge/bridge-nf-call-ip6tables", "1"),
    ):
        Path("/proc/sys", key).write_text(value)
    prefix = ipaddress.ip_network(POD_SUBNET).prefixlen
    run(["ip", "link", "add", BRIDGE, "type", "bridge"])
    run(["ip", "addr", "add", f"{NODE_IP}/{prefix}", "dev", BRIDGE])
    run(["ip", "link", "set", BRIDGE, "up"])
    conflist = {
        "cniVersion": "1.0.0",
        "name": "tfdev",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [
                        [
                            {
                                "subnet": POD_SUBNET,
                                "gateway": NODE_IP,
                                "rangeStart": str(ipaddress.ip_network(POD_SUBNET)[10]),
                            }
                        ]
                    ],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(c.directory / "cni" / "ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    (c.directory / "cni" / "net.d" / "10-tfdev.conflist").write_text(json.dumps(conflist))


def start_containerd(c: Cluster) -> None:
    """containerd with its own root, state and socket in the run directory."""
    root = c.directory / "containerd"
    pause = images.PAUSE.ref
    config = f"""version = 2
root = "{root}/root"
state = "{root}/state"
[grpc]
  address = "{c.containerd_socket}"
[ttrpc]
  address = ""
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{root}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  restrict_oom_score_adj = true
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
snapshotter = "overlayfs"
default_runtime_name = "runc"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
    SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
bin_dir = "/usr/lib/cni"
conf_dir = "{c.directory}/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry]
config_path = "{root}/certs.d"
"""
    # restrict_oom_score_adj: these machines drop CAP_SYS_RESOURCE, so runc cannot set a
    # negative oom_score_adj for the sandbox (CLUSTER-NOTES.md).
    path = c.config_file("containerd.toml")
    path.write_text(config)
    c.launch("containerd", [which("containerd"), "--config", str(path)])
    c.wait_for("containerd", timeout=30)


def import_images(c: Cluster, archives: dict[str, Path]) -> None:
    """Import the local OCI image archives into containerd's ``k8s.io`` namespace."""
    images.import_images(
        archives.values(),
        ctr=which("ctr"),
        address=c.containerd_socket,
        progress=lambda m: c.progress(f"    {m}"),
    )


def start_kubelet(c: Cluster, binaries: Binaries) -> None:
    """kubelet (cgroupfs, webhook authn/authz, the node's serving certificate); waits
    until the node is Ready."""
    d = c.pki_dir
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": NODE_IP,
        "port": 10250,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "readOnlyPort": 0,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(d / "cluster-ca.crt")},
        },
        "authorization": {"mode": "Webhook"},
        "tlsCertFile": str(d / "kubelet-server.crt"),
        "tlsPrivateKeyFile": str(d / "kubelet-server.key"),
        "cgroupDriver": "cgroupfs",
        "failSwapOn": False,
        "containerRuntimeEndpoint": f"unix://{c.containerd_socket}",
        "clusterDNS": [DNS_SERVICE_IP],
        "clusterDomain": CLUSTER_DOMAIN,
        "resolvConf": "",  # pods get cluster DNS only, never the host's resolvers
        "podLogsDir": str(c.directory / "pod-logs"),
        "volumePluginDir": str(c.directory / "kubelet" / "volume-plugins"),
        "hairpinMode": "hairpin-veth",
        # Images come only from local import: never garbage-collect or evict them.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
            "nodefs.inodesFree": "1%",
        },
        "serializeImagePulls": False,
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        "protectKernelDefaults": False,
        "makeIPTablesUtilChains": False,
    }
    path = c.config_file("kubelet.yaml")
    path.write_text(yaml.safe_dump(config))
    c.launch(
        "kubelet",
        [
            str(binaries.kubelet),
            "--config",
            str(path),
            "--kubeconfig",
            str(c.config_file("kubelet.kubeconfig")),
            "--root-dir",
            str(c.directory / "kubelet"),
            "--cert-dir",
            str(c.directory / "kubelet" / "pki"),
            "--hostname-override",
            NODE_NAME,
            "--node-ip",
            NODE_IP,
            "--v",
            "1",
        ],
    )
    c.wait_for("kubelet", timeout=90)


def start_kube_proxy(c: Cluster, binaries: Binaries) -> None:
    """kube-proxy in iptables mode."""
    config = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clientConnection": {"kubeconfig": str(c.config_file("kube-proxy.kubeconfig"))},
        "hostnameOverride": NODE_NAME,
        "clusterCIDR": CLUSTER_CIDR,
        "healthzBindAddress": "127.0.0.1:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        # NodePorts answer on loopback and on the node address only.
        "nodePortAddresses": ["127.0.0.0/8", f"{NODE_IP}/32"],
        # Leave the host's conntrack sysctls alone.
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
    }
    path = c.config_file("kube-proxy.yaml")
    path.write_text(yaml.safe_dump(config))
    c.launch("kube-proxy", [str(binaries.kube_proxy), "--config", str(path)])
    c.wait_for("kube-proxy", timeout=60)


def start_coredns(c: Cluster, binaries: Binaries) -> None:
    """CoreDNS as a host process for the kube-dns Service (no upstream forward)."""
    corefile = f""".:53 {{
bind {NODE_IP}
errors
health 127.0.0.1:18080
ready 127.0.0.1:18181
kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
    kubeconfig {c.config_file("coredns.kubeconfig")}
    pods insecure
    fallthrough in-addr.arpa ip6.arpa
    ttl 30
}}
cache 30
}}
"""
    # No `forward`: cluster names only, nothing leaves the machine.
    path = c.config_file("Corefile")
    path.write_text(corefile)
    c.launch("coredns", [str(binaries.coredns), "-conf", str(path)])
    c.wait_for("coredns", timeout=60)
