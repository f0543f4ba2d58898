"""The jobs emailer (``services/emailer``) in the local platform: a host process next to the
other platform services (:mod:`toolforge_dev.services` starts it), with

- its own cluster identity, user ``toolforge-emailer`` (client certificate issued with the
  other components' in :mod:`toolforge_dev.cluster`), and the RBAC, namespace, configuration
  ConfigMap, state ConfigMap and Lease of ``devtools/manifests/50-emailer.yaml``;
- ``/healthz`` and ``/metrics`` on ``https://localhost:8449`` (:data:`EMAILER_PORT`; a
  certificate from the backend CA, issued here);
- Mailpit (:mod:`toolforge_dev.mailpit`) as its SMTP server, through the live ConfigMap
  (``smtp_server_fqdn: 10.244.0.1``, port 1025), STARTTLS verified against the cluster CA.

The local configuration batches for 30 s (production: 400 s) and re-reads the ConfigMap every
2 s, so that ``make run`` shows mails soon; tests change it through the ConfigMap.
"""

from __future__ import annotations

from typing import Final

from toolforge_admin.pki import CertificateAuthority, subject
from toolforge_dev.cluster import Cluster

__all__ = [
    "CONFIG_MAP",
    "EMAILER_PORT",
    "LEASE",
    "NAMESPACE",
    "STATE_CONFIG_MAP",
    "emailer_config",
    "prepare",
]

EMAILER_PORT: Final = 8449
NAMESPACE: Final = "jobs-emailer"
CONFIG_MAP: Final = "jobs-emailer-config"
STATE_CONFIG_MAP: Final = "jobs-emailer-state"
LEASE: Final = "jobs-emailer"


def prepare(cluster: Cluster) -> None:
    """Issue the emailer's server certificate (backend CA; ``localhost``, the in-cluster
    Service names, ``127.0.0.1``) unless it exists."""
    pki = cluster.pki_dir
    if (pki / "emailer-server.crt").exists():
        return
    CertificateAuthority.load(pki, "backend-ca").issue_pair(
        pki,
        "emailer-server",
        subject("emailer"),
        server=True,
        dns_names=["localhost", "emailer", "emailer.toolforge-api.svc"],
        ip_addresses=["127.0.0.1"],
    )


def emailer_config(cluster: Cluster) -> dict[str, object]:
    """The emailer's settings (``toolforge_emailer.settings.EmailerSettings`` keys)."""
    pki = cluster.pki_dir
    return {
        "host": "127.0.0.1",
        "port": EMAILER_PORT,
        "tls_cert_file": str(pki / "emailer-server.crt"),
        "tls_key_file": str(pki / "emailer-server.key"),
        "backend_ca_file": str(pki / "backend-ca.crt"),
        "kubeconfig": str(cluster.service_kubeconfig("emailer")),
        "namespace": NAMESPACE,
        "config_map": CONFIG_MAP,
        "state_config_map": STATE_CONFIG_MAP,
        "lease": LEASE,
        "smtp_ca_file": str(pki / "cluster-ca.crt"),
        "smtp_require_starttls": True,
        "graceful_shutdown_seconds": 5,
    }
