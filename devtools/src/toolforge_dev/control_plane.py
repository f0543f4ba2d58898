"""The control plane of the local cluster: etcd, kube-apiserver, kube-controller-manager and
kube-scheduler, as host processes with their flags (see :mod:`toolforge_dev.cluster`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from toolforge_dev.binaries import Binaries
from toolforge_dev.cluster_pki import admission_config
from toolforge_dev.topology import (
    CLUSTER_CIDR,
    CLUSTER_DOMAIN,
    NODE_IP,
    NODE_NAME,
    SERVICE_CIDR,
)

if TYPE_CHECKING:
    from toolforge_dev.cluster import Cluster

__all__ = [
    "control_plane_flags",
    "start_apiserver",
    "start_controller_manager",
    "start_etcd",
    "start_scheduler",
]


def start_etcd(c: Cluster, binaries: Binaries) -> None:
    """etcd on 127.0.0.1:2379 with its own CA (client certificates required)."""
    d = c.pki_dir
    c.launch(
        "etcd",
        [
            str(binaries.etcd),
            "--name",
            NODE_NAME,
            "--data-dir",
            str(c.directory / "etcd"),
            "--listen-client-urls",
            "https://127.0.0.1:2379",
            "--advertise-client-urls",
            "https://127.0.0.1:2379",
            "--listen-peer-urls",
            "https://127.0.0.1:2380",
            "--initial-advertise-peer-urls",
            "https://127.0.0.1:2380",
            "--initial-cluster",
            f"{NODE_NAME}=https://127.0.0.1:2380",
            "--listen-metrics-urls",
            "http://127.0.0.1:2381",
            "--cert-file",
            str(d / "etcd-server.crt"),
            "--key-file",
            str(d / "etcd-server.key"),
            "--client-cert-auth",
            "--trusted-ca-file",
            str(d / "etcd-ca.crt"),
            "--peer-cert-file",
            str(d / "etcd-server.crt"),
            "--peer-key-file",
            str(d / "etcd-server.key"),
            "--peer-client-cert-auth",
            "--peer-trusted-ca-file",
            str(d / "etcd-ca.crt"),
            "--log-level",
            "warn",
        ],
    )
    c.wait_for("etcd", timeout=30)


def start_apiserver(c: Cluster, binaries: Binaries) -> None:
    """kube-apiserver on the node address, RBAC, the admission plugins and configuration."""
    d = c.pki_dir
    admission = ",".join(
        [
            "NamespaceLifecycle",
            "LimitRanger",
            "ServiceAccount",
            "DefaultStorageClass",
            "DefaultTolerationSeconds",
            "NodeRestriction",
            "PodSecurity",
            "Priority",
            "StorageObjectInUseProtection",
            "RuntimeClass",
            "CertificateApproval",
            "CertificateSigning",
            "CertificateSubjectRestriction",
            "TaintNodesByCondition",
            "MutatingAdmissionWebhook",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionWebhook",
            "ResourceQuota",
            # CVE-2020-8554: no Service may claim externalIPs (charts/README.md).
            "DenyServiceExternalIPs",
        ]
    )
    c.launch(
        "kube-apiserver",
        [
            str(binaries.kube_apiserver),
            "--bind-address",
            NODE_IP,
            "--advertise-address",
            NODE_IP,
            "--secure-port",
            "6443",
            "--etcd-servers",
            "https://127.0.0.1:2379",
            "--etcd-cafile",
            str(d / "etcd-ca.crt"),
            "--etcd-certfile",
            str(d / "apiserver-etcd-client.crt"),
            "--etcd-keyfile",
            str(d / "apiserver-etcd-client.key"),
            "--tls-cert-file",
            str(d / "apiserver.crt"),
            "--tls-private-key-file",
            str(d / "apiserver.key"),
            "--client-ca-file",
            str(d / "cluster-ca.crt"),
            "--kubelet-client-certificate",
            str(d / "apiserver-kubelet-client.crt"),
            "--kubelet-client-key",
            str(d / "apiserver-kubelet-client.key"),
            "--kubelet-certificate-authority",
            str(d / "cluster-ca.crt"),
            "--kubelet-preferred-address-types",
            "InternalIP",
            "--service-account-issuer",
            f"https://kubernetes.default.svc.{CLUSTER_DOMAIN}",
            "--service-account-key-file",
            str(d / "sa.pub"),
            "--service-account-signing-key-file",
            str(d / "sa.key"),
            "--service-cluster-ip-range",
            SERVICE_CIDR,
            "--authorization-mode",
            "Node,RBAC",
            "--enable-admission-plugins",
            admission,
            "--admission-control-config-file",
            str(admission_config(c)),
            "--allow-privileged=true",
            "--profiling=false",
            "--anonymous-auth=true",  # default; RBAC allows anonymous only /livez, /readyz ...
            "--requestheader-client-ca-file",
            str(d / "front-proxy-ca.crt"),
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            "--proxy-client-cert-file",
            str(d / "front-proxy-client.crt"),
            "--proxy-client-key-file",
            str(d / "front-proxy-client.key"),
        ],
    )
    c.wait_for("kube-apiserver", timeout=90)


def control_plane_flags(c: Cluster, component: str) -> list[str]:
    """Flags shared by controller-manager and scheduler: identity, serving TLS, no HA."""
    d, kc = c.pki_dir, str(c.config_file(f"{component}.kubeconfig"))
    return [
        f"--kubeconfig={kc}",
        f"--authentication-kubeconfig={kc}",
        f"--authorization-kubeconfig={kc}",
        "--bind-address=127.0.0.1",
        f"--tls-cert-file={d / f'{component}-server.crt'}",
        f"--tls-private-key-file={d / f'{component}-server.key'}",
        f"--client-ca-file={d / 'cluster-ca.crt'}",
        "--leader-elect=false",
        "--profiling=false",
    ]


def start_controller_manager(c: Cluster, binaries: Binaries) -> None:
    """kube-controller-manager, with the CSR signer on the cluster CA."""
    d = c.pki_dir
    component = "kube-controller-manager"
    argv = [str(binaries.kube_controller_manager), *control_plane_flags(c, component)]
    argv += [
        f"--root-ca-file={d / 'cluster-ca.crt'}",
        f"--service-account-private-key-file={d / 'sa.key'}",
        "--use-service-account-credentials=true",
        # The CSR signer (kubernetes.io/kube-apiserver-client and the other built-in
        # signers) signs with the cluster CA, so tool certificates authenticate.
        f"--cluster-signing-cert-file={d / 'cluster-ca.crt'}",
        f"--cluster-signing-key-file={d / 'cluster-ca.key'}",
        "--cluster-signing-duration=8760h",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        f"--cluster-cidr={CLUSTER_CIDR}",
    ]
    c.launch(component, argv)
    c.wait_for(component, timeout=60)


def start_scheduler(c: Cluster, binaries: Binaries) -> None:
    """kube-scheduler."""
    component = "kube-scheduler"
    c.launch(component, [str(binaries.kube_scheduler), *control_plane_flags(c, component)])
    c.wait_for(component, timeout=60)
