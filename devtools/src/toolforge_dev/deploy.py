"""``make deploy``: the platform APIs as pods in the local cluster, installed by Helm.

Steps (each reported through ``progress``):

1. build Helm (cached Go component) and the service images
   (:mod:`toolforge_dev.service_images`), and import the images into the cluster's containerd;
2. create the release namespace (:data:`NAMESPACE`), the pre-provisioned TLS Secrets from
   the project's PKI (local mode: no cert-manager controller runs here) and the builds API's
   registry password Secret (from the ``buildpacks-registry-auth`` manifest). The backend server
   certificates already name the Services (``jobs-api``, ``builds-api``); the gateway's server
   certificate names ``127.0.0.1``, which is where the NodePort is reached;
3. ``helm upgrade --install --wait`` the charts in ``charts/`` with their ``values-local.yaml``,
   the image tags (content keys) and the CA bundles, backends first;
4. wait until the gateway answers through its NodePort (``https://127.0.0.1:30003``).

The host-process services of ``make up`` keep running next to these pods; the in-cluster
gateway has its own port. Charts: ``charts/README.md``.

API: :func:`deploy` ``(cluster, progress) -> DeployReport``, :func:`helm_command`,
:data:`CHARTS`, :data:`NAMESPACE`, :data:`NODE_PORT`. Errors: :class:`DeployError`.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from toolforge_admin.pki import CertificateAuthority, subject
from toolforge_dev import binaries as go_binaries
from toolforge_dev import emailer, images, service_images
from toolforge_dev.cluster import Cluster
from toolforge_dev.hostops import which
from toolforge_dev.logstore import platform_store
from toolforge_dev.paths import REPO_ROOT, cache_dir
from toolforge_dev.services import PlatformServices

Progress = Callable[[str], None]

#: Namespace of the releases.
NAMESPACE = "toolforge-api"
#: The gateway's node port (REFERENCE.md: 30003 in production).
NODE_PORT = 30003
CHARTS_DIR = REPO_ROOT / "charts"
#: ``chart name -> service image name``, in install order (backends before the gateway).
CHARTS: dict[str, str] = {
    "jobs-api": "toolforge-jobs-api",
    "builds-api": "toolforge-builds-api",
    "envvars-api": "toolforge-envvars-api",
    "envvars-webhook": "toolforge-envvars-webhook",
    "emailer": "toolforge-emailer",
    "logs-api": "toolforge-logs-api",
    "gateway": "toolforge-gateway",
}
#: ``Secret name -> PKI file stem`` of the pre-provisioned TLS Secrets (local mode).
TLS_SECRETS: dict[str, str] = {
    "jobs-api-tls": "jobs-api-server",
    "builds-api-tls": "builds-api-server",
    "envvars-api-tls": "envvars-api-server",
    "envvars-webhook-tls": "envvars-webhook-incluster-server",
    "emailer-tls": "emailer-server",
    "logs-api-tls": "logs-api-server",
    "gateway-tls": "gateway-server",
    "gateway-backend-client": "gateway-backend-client",
}

#: Secret with the registry password of the builds API (``values-local.yaml`` reads it).
REGISTRY_SECRET = "builds-api-registry"  # noqa: S105 - a Secret's name, not a password
#: Secret with the log store password of the logs API (its ``values.yaml`` reads it).
LOGSTORE_SECRET = "logs-api-logstore"  # noqa: S105 - a Secret's name, not a password


class DeployError(RuntimeError):
    """A deploy step failed; the message names the step and has the command's output."""


@dataclass
class DeployReport:
    """What a deploy did: ``image_tags`` (chart -> tag), ``seconds`` per step."""

    image_tags: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def gateway_url(self) -> str:
        """``https://127.0.0.1:30003``."""
        return f"https://127.0.0.1:{NODE_PORT}"


def helm_command(cluster: Cluster) -> list[str]:
    """``helm`` with the cluster's admin kubeconfig (builds Helm first if needed)."""
    helm = go_binaries.helm()
    helm.build(progress=lambda _m: None)
    return [str(helm.path("helm")), "--kubeconfig", str(cluster.admin_kubeconfig)]


def _run(argv: Sequence[str], what: str, *, timeout: float = 600) -> str:
    env = {**os.environ, "HELM_CACHE_HOME": str(_helm_home() / "cache")}
    env["HELM_CONFIG_HOME"] = str(_helm_home() / "config")
    env["HELM_DATA_HOME"] = str(_helm_home() / "data")
    proc = subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise DeployError(f"{what} failed (exit {proc.returncode}):\n{proc.stderr or proc.stdout}")
    return proc.stdout


def _helm_home() -> Path:
    """Helm's cache, config and data directories, kept in the dev cache (not ``$HOME``)."""
    return cache_dir() / "helm"


def build_chart_dependencies(cluster: Cluster) -> None:
    """``helm dependency build`` every chart (packs ``toolforge-common`` into its ``charts/``)."""
    helm = helm_command(cluster)
    for chart in CHARTS:
        _run([*helm, "dependency", "build", str(CHARTS_DIR / chart)], f"helm dependency {chart}")


def local_values_args(cluster: Cluster, chart: str, tag: str) -> list[str]:
    """The ``helm`` value flags of ``chart`` for the local cluster: ``values-local.yaml``, the
    image tag, the CA bundles from the PKI, the homes directory and the image list. Writes the
    image list to ``<run dir>/config/images-v1.yaml``."""
    pki = cluster.pki_dir
    args = [
        "-f",
        str(CHARTS_DIR / chart / "values-local.yaml"),
        "--set",
        f"image.tag={tag}",
        "--set-file",
        f"caBundles.backend-ca={pki / 'backend-ca.crt'}",
    ]
    if chart == "gateway":
        args += ["--set-file", f"caBundles.cluster-ca={pki / 'cluster-ca.crt'}"]
    if chart == "jobs-api":
        # The image list comes from values too: the same images-v1.yaml as the cluster's own
        # image-config ConfigMap (the images imported into containerd).
        image_list = cluster.directory / "config" / "images-v1.yaml"
        image_list.parent.mkdir(parents=True, exist_ok=True)
        image_list.write_text(images.image_config_yaml())
        args += [
            "--set",
            f"config.homes_dir={cluster.homes_dir}",
            "--set-file",
            f"imageConfig={image_list}",
        ]
    if chart == "envvars-webhook":
        # kube-apiserver trusts the webhook's certificate (cluster CA) through the caBundle,
        # and the webhook trusts kube-apiserver's webhook client certificate (cluster CA).
        args += [
            "--set-file",
            f"caBundles.webhook-ca={pki / 'cluster-ca.crt'}",
            "--set-file",
            f"caBundles.apiserver-client-ca={pki / 'cluster-ca.crt'}",
        ]
    if chart == "logs-api":
        # The log store's certificate is from the cluster CA (toolforge_dev.logstore).
        args += ["--set-file", f"caBundles.logstore-ca={pki / 'cluster-ca.crt'}"]
    if chart == "emailer":
        # Mailpit's STARTTLS certificate is from the cluster CA (toolforge_dev.mailpit).
        args += ["--set-file", f"caBundles.smtp-ca={pki / 'cluster-ca.crt'}"]
    if chart == "builds-api":
        registry = PlatformServices(cluster).registry()
        args += [
            "--set-file",
            f"caBundles.registry-ca={registry.ca_file}",
            "--set",
            f"config.registry_url={registry.url}",
            "--set",
            f"config.registry_username={registry.credentials.username}",
        ]
    return args


def _apply_tls_secrets(cluster: Cluster) -> None:
    """Namespace, TLS Secrets and registry password Secret, applied with ``Cluster.kubectl``
    (create ``--dry-run=client`` renders each Secret, apply makes it idempotent)."""
    bins = go_binaries.Binaries.from_cache()
    _issue_incluster_webhook_certificate(cluster)
    emailer.prepare(cluster)  # its server certificate, if the platform has not made it yet
    namespace = f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {NAMESPACE}\n"
    cluster.kubectl(bins, "apply", "-f", "-", input_text=namespace)
    pki = cluster.pki_dir
    render = ["-n", NAMESPACE, "--dry-run=client", "-o", "yaml"]
    secrets = [
        ["tls", secret, f"--cert={pki / f'{stem}.crt'}", f"--key={pki / f'{stem}.key'}"]
        for secret, stem in TLS_SECRETS.items()
    ]
    password = PlatformServices(cluster).registry().credentials.password
    secrets.append(["generic", REGISTRY_SECRET, "--from-literal=password=" + password])
    store_password = platform_store(cluster).credentials.password
    secrets.append(["generic", LOGSTORE_SECRET, "--from-literal=password=" + store_password])
    for secret in secrets:
        manifest = cluster.kubectl(bins, "create", "secret", *secret, *render)
        cluster.kubectl(bins, "apply", "-f", "-", input_text=manifest)


def _issue_incluster_webhook_certificate(cluster: Cluster) -> None:
    """The in-cluster envvars webhook's server certificate (cluster CA), named as its Service:
    kube-apiserver calls ``envvars-webhook.<namespace>.svc``."""
    pki = cluster.pki_dir
    if not (pki / "envvars-webhook-incluster-server.crt").exists():
        name = f"envvars-webhook.{NAMESPACE}.svc"
        CertificateAuthority.load(pki, "cluster-ca").issue_pair(
            pki, "envvars-webhook-incluster-server", subject(name), server=True, dns_names=[name]
        )


def wait_for_gateway(cluster: Cluster, timeout: float = 60) -> None:
    """Wait until ``https://127.0.0.1:30003/healthz`` answers 200 (the cluster admin's client
    certificate passes the handshake; ``/healthz`` needs no tool identity).

    Raises :class:`DeployError` with the last error after ``timeout`` seconds.
    """
    pki = cluster.pki_dir
    context = ssl.create_default_context(cafile=pki / "cluster-ca.crt")
    context.load_cert_chain(pki / "admin-client.crt", pki / "admin-client.key")
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            with httpx.Client(verify=context, timeout=5) as client:
                response = client.get(f"https://127.0.0.1:{NODE_PORT}/healthz")
            if response.status_code == 200:
                return
            last = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(1)
    raise DeployError(f"the in-cluster gateway did not answer on :{NODE_PORT}: {last}")


def deploy(cluster: Cluster, progress: Progress = print) -> DeployReport:
    """Build, import and install the three charts into the running local cluster, then wait
    until the in-cluster gateway answers on its NodePort.

    Raises :class:`DeployError` (a failed helm step or an unhealthy gateway),
    :class:`toolforge_dev.cluster.ClusterError` (a failed kubectl step) and
    :class:`toolforge_dev.images.ImageBuildError` (an image that cannot be built).
    """
    report = DeployReport()
    started = time.monotonic()
    archives = service_images.build_service_images(progress)
    images.import_images(
        archives.values(),
        ctr=which("ctr"),
        address=cluster.containerd_socket,
        progress=lambda m: progress(f"  {m}"),
    )
    report.seconds["images"] = time.monotonic() - started
    by_name = {s.name: s for s in service_images.SERVICES}
    report.image_tags = {
        chart: service_images.content_key(by_name[image]) for chart, image in CHARTS.items()
    }
    step = time.monotonic()
    progress(f"namespace {NAMESPACE} and TLS Secrets from the PKI")
    _apply_tls_secrets(cluster)
    build_chart_dependencies(cluster)
    helm = helm_command(cluster)
    for chart, tag in report.image_tags.items():
        progress(f"helm upgrade --install {chart} (image tag {tag}), waiting for the rollout...")
        chart_started = time.monotonic()
        _run(
            [
                *helm,
                "upgrade",
                "--install",
                chart,
                str(CHARTS_DIR / chart),
                "--namespace",
                NAMESPACE,
                *local_values_args(cluster, chart, tag),
                "--wait",
                "--timeout",
                "5m",
            ],
            f"helm upgrade {chart}",
        )
        progress(f"  {chart}: rolled out in {time.monotonic() - chart_started:.0f} s")
    wait_for_gateway(cluster)
    report.seconds["helm"] = time.monotonic() - step
    report.seconds["total"] = time.monotonic() - started
    return report
