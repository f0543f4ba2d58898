"""The local cluster's certificates and credentials: every component's certificate from the
cluster CA (etcd from its own), the components' and platform services' kubeconfigs, the
service-account keys, and kube-apiserver's admission configuration (its client certificate
towards admission webhooks)."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from cryptography.hazmat.primitives import serialization

from toolforge_admin.pki import CertificateAuthority, PlatformPKI, generate_key, subject, write_key
from toolforge_dev.topology import (
    APISERVER_URL,
    CLUSTER_DOMAIN,
    KUBERNETES_SERVICE_IP,
    NODE_IP,
    NODE_NAME,
)

if TYPE_CHECKING:
    from toolforge_dev.cluster import Cluster

__all__ = ["admission_config", "write_kubeconfig", "write_pki"]


def write_pki(c: Cluster) -> None:
    """Issue every certificate and kubeconfig of the cluster into ``c.pki_dir`` (the CAs
    are kept when present)."""
    d = c.pki_dir
    platform = PlatformPKI.ensure(d)
    ca = platform.cluster_ca
    etcd_ca = CertificateAuthority.load_or_create(d, "etcd-ca", "toolforge-etcd-ca")
    etcd_ca.issue_pair(
        d,
        "etcd-server",
        subject("etcd"),
        server=True,
        client=True,
        dns_names=["localhost"],
        ip_addresses=["127.0.0.1"],
    )
    etcd_ca.issue_pair(d, "apiserver-etcd-client", subject("kube-apiserver"), client=True)
    ca.issue_pair(
        d,
        "apiserver",
        subject("kube-apiserver"),
        server=True,
        dns_names=[
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            f"kubernetes.default.svc.{CLUSTER_DOMAIN}",
            "localhost",
        ],
        ip_addresses=[KUBERNETES_SERVICE_IP, NODE_IP, "127.0.0.1"],
    )
    ca.issue_pair(
        d,
        "apiserver-kubelet-client",
        subject("kube-apiserver-kubelet-client", ["system:masters"]),
        client=True,
    )
    # kube-apiserver's client identity towards admission webhooks (the envvars webhook
    # requires it): see _admission_config.
    ca.issue_pair(d, "apiserver-webhook-client", subject("kube-apiserver"), client=True)
    ca.issue_pair(
        d,
        "kubelet-server",
        subject(NODE_NAME),
        server=True,
        dns_names=[NODE_NAME, "localhost"],
        ip_addresses=[NODE_IP, "127.0.0.1"],
    )
    for name in ("kube-controller-manager", "kube-scheduler"):
        ca.issue_pair(
            d,
            f"{name}-server",
            subject(name),
            server=True,
            dns_names=["localhost"],
            ip_addresses=["127.0.0.1"],
        )
    clients = {
        "admin": subject("toolforge-dev-admin", ["system:masters"]),
        "kube-controller-manager": subject("system:kube-controller-manager"),
        "kube-scheduler": subject("system:kube-scheduler"),
        "kubelet": subject(f"system:node:{NODE_NAME}", ["system:nodes"]),
        "kube-proxy": subject("system:kube-proxy"),
        "coredns": subject("system:coredns"),
        # The platform APIs' own identities (RBAC in manifests/20-platform-apis.yaml).
        "jobs-api": subject("toolforge-jobs-api"),
        "builds-api": subject("toolforge-builds-api"),
        "envvars-api": subject("toolforge-envvars-api"),
        "envvars-webhook": subject("toolforge-envvars-webhook"),
        "logs-api": subject("toolforge-logs-api"),  # RBAC: manifests/45-logs-api.yaml
        "emailer": subject("toolforge-emailer"),  # RBAC: manifests/50-emailer.yaml
    }
    for name, dn in clients.items():
        cert, key = ca.issue_pair(d, f"{name}-client", dn, client=True)
        embed = name == "admin"
        path = c.admin_kubeconfig if embed else c.config_file(f"{name}.kubeconfig")
        write_kubeconfig(path, user=name, cert=cert, key=key, ca=d / "cluster-ca.crt", embed=embed)
    # The aggregation layer's front proxy has a CA of its own, as in kubeadm.
    front = CertificateAuthority.load_or_create(d, "front-proxy-ca", "toolforge-front-proxy-ca")
    front.issue_pair(d, "front-proxy-client", subject("front-proxy-client"), client=True)
    sa_key = generate_key()
    write_key(d / "sa.key", sa_key)
    pub = sa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (d / "sa.pub").write_bytes(pub)


def admission_config(c: Cluster) -> Path:
    """The AdmissionConfiguration that makes kube-apiserver present its webhook client
    certificate (CN ``kube-apiserver``, cluster CA) to every admission webhook (Kubernetes
    "Dynamic Admission Control", "Authenticate apiservers")."""
    d = c.pki_dir
    kubeconfig = c.config_file("apiserver-webhook.kubeconfig")
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "users": [
                    {
                        "name": "*",
                        "user": {
                            "client-certificate": str(d / "apiserver-webhook-client.crt"),
                            "client-key": str(d / "apiserver-webhook-client.key"),
                        },
                    }
                ],
            }
        )
    )
    webhook = {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "WebhookAdmissionConfiguration",
        "kubeConfigFile": str(kubeconfig),
    }
    path = c.config_file("admission.yaml")
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "apiserver.config.k8s.io/v1",
                "kind": "AdmissionConfiguration",
                "plugins": [
                    {"name": name, "configuration": webhook}
                    for name in ("MutatingAdmissionWebhook", "ValidatingAdmissionWebhook")
                ],
            }
        )
    )
    return path


def write_kubeconfig(
    path: Path,
    *,
    user: str,
    cert: Path,
    key: Path,
    ca: Path,
    embed: bool,
    server: str = APISERVER_URL,
    namespace: str | None = None,
) -> None:
    """Write a kubeconfig for a client-certificate user (mode 0600).

    With ``embed`` the PEM data is inlined (a portable file); otherwise the file refers to the
    certificate paths.
    """

    def ref(kind: str, p: Path) -> dict[str, str]:
        if embed:
            return {f"{kind}-data": base64.b64encode(p.read_bytes()).decode()}
        return {kind: str(p)}

    context: dict[str, str] = {"cluster": "toolforge-dev", "user": user}
    if namespace:
        context["namespace"] = namespace
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "toolforge-dev",
                "cluster": {"server": server, **ref("certificate-authority", ca)},
            }
        ],
        "users": [
            {"name": user, "user": {**ref("client-certificate", cert), **ref("client-key", key)}}
        ],
        "contexts": [{"name": "toolforge-dev", "context": context}],
        "current-context": "toolforge-dev",
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(doc, f)
