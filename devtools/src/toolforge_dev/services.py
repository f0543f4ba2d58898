"""The platform APIs as local host processes next to the cluster: image registry, jobs API,
builds API, gateway.

``make run`` and the end-to-end tests start them with the certificates of
:class:`toolforge_admin.pki.PlatformPKI` (in the cluster's ``pki/`` directory):

- the gateway on ``https://127.0.0.1:8443`` (server certificate from the cluster CA, which a
  tool's kubeconfig already trusts), requiring a tool's client certificate;
- the jobs API on ``https://localhost:8444`` (backend CA), reached by the gateway over mTLS,
  acting as each tool through impersonation with its own cluster identity;
- the builds API on ``https://localhost:8445`` (backend CA), with its own cluster identity
  and RBAC in the ``image-build`` namespace only;
- the image registry (CNCF distribution, :mod:`toolforge_dev.registry`) on
  ``https://127.0.0.1:8446`` (server certificate from the cluster CA), htpasswd auth with the
  credentials of the ``buildpacks-registry-auth`` Secret, data under ``<run dir>/registry``. The
  builds API reads and deletes tool images there (``/quotas``, ``/clean``) with those
  credentials. Once it runs, the buildpacks run image is pushed to it
  (:func:`toolforge_dev.buildpacks.publish_run_image`): builds make app images on it;
- the registry's read-only pull endpoint on ``https://10.244.0.1:8450``
  (:mod:`toolforge_dev.registry_pull`): the same storage, a pull-only account for pods;
- the git server (:mod:`toolforge_dev.gitserver`: nginx and fcgiwrap with ``git
  http-backend``) on ``https://10.244.0.1:8451``, read-only, where builds clone from;
- the log store (VictoriaLogs, :mod:`toolforge_dev.logstore`) on ``https://10.244.0.1:9428``,
  fed by the collector DaemonSet of :mod:`toolforge_dev.logcollector`, deployed after it;
- Mailpit (:mod:`toolforge_dev.mailpit`): SMTP with STARTTLS on ``10.244.0.1:1025``, the
  mailbox (web UI and API) on ``http://127.0.0.1:8025``;
- the jobs emailer (:mod:`toolforge_dev.emailer`) with ``/healthz`` and ``/metrics`` on
  ``https://localhost:8449``, sending through Mailpit;
- the logs API on ``https://localhost:8452`` (backend CA), reading the log store with its
  credentials and the tools' job objects by impersonation (gateway route ``/logs``).

Their command lines name files under the cluster's run directory, so ``Cluster.cleanup``
recognises them as the cluster's processes too; :meth:`PlatformServices.stop` stops them first,
gracefully, so in-flight requests drain.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

from toolforge_admin.pki import CertificateAuthority, subject
from toolforge_dev import binaries as go_binaries
from toolforge_dev import buildpacks, emailer, logcollector
from toolforge_dev.cluster import NODE_IP, Cluster, ClusterError
from toolforge_dev.gitserver import GitServer
from toolforge_dev.logstore import LOGSTORE_USER, platform_store
from toolforge_dev.mailpit import platform_mailpit
from toolforge_dev.registry import LocalRegistry, builds_registry_credentials
from toolforge_dev.registry_pull import PULL_CREDENTIALS, PULL_PORT, ReadOnlyRegistry
from toolforge_dev.web_manifests import jobs_api_web_settings
from toolforge_envvars.webhook.registration import WEBHOOK_NAME, webhook_configuration

__all__ = [
    "BUILDS_API_PORT",
    "ENVVARS_API_PORT",
    "ENVVARS_WEBHOOK_PORT",
    "GATEWAY_PORT",
    "JOBS_API_PORT",
    "LOGS_API_PORT",
    "REGISTRY_PORT",
    "PlatformServices",
    "Service",
]

GATEWAY_PORT = 8443
JOBS_API_PORT = 8444
BUILDS_API_PORT = 8445
REGISTRY_PORT = 8446
ENVVARS_API_PORT = 8447
#: The envvars admission webhook listens on the node address: kube-apiserver calls it there.
ENVVARS_WEBHOOK_PORT = 8448
#: The logs API (8449-8451 are the emailer's, the pull registry's and the git server's).
LOGS_API_PORT = 8452

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Service:
    """One host process: how to start it and how to tell it is healthy."""

    name: str
    argv: list[str]
    health_url: str
    env: dict[str, str] = field(default_factory=dict)
    #: Present a client certificate to the health URL (the gateway requires one; backends
    #: take none there and refuse one that is not from the backend CA).
    health_needs_cert: bool = False
    #: HTTP Basic credentials for the health URL (the registry's ``/v2/`` needs them).
    health_auth: tuple[str, str] | None = None


class PlatformServices:
    """Starts, checks and stops the platform APIs of one :class:`Cluster`."""

    def __init__(self, cluster: Cluster, progress: Progress = print) -> None:
        self.cluster = cluster
        self.progress = progress

    # ----- addresses and commands --------------------------------------------------------------

    @property
    def gateway_url(self) -> str:
        """Base URL tools use."""
        return f"https://127.0.0.1:{GATEWAY_PORT}"

    def _config_path(self, name: str) -> Path:
        return self.cluster.directory / "config" / name

    def _pid_path(self, name: str) -> Path:
        return self.cluster.directory / "pids" / f"{name}.pid"

    def registry(self, *, issue_certificate: bool = False) -> LocalRegistry:
        """The platform's registry: files in ``<run dir>/registry``, config in
        ``<run dir>/config/registry.yml``. ``issue_certificate`` loads the cluster CA so that
        :meth:`LocalRegistry.prepare` can issue the server certificate."""
        pki = self.cluster.pki_dir
        return LocalRegistry(
            self.cluster.directory / "registry",
            binary=go_binaries.registry().path("registry"),
            ca=CertificateAuthority.load(pki, "cluster-ca") if issue_certificate else None,
            ca_file=pki / "cluster-ca.crt",
            credentials=builds_registry_credentials(),
            # The node address, not loopback: pods (the in-cluster builds API of `make deploy`)
            # reach it too, and it exists only on this machine's bridge.
            host=NODE_IP,
            port=REGISTRY_PORT,
            config_path=self._config_path("registry.yml"),
        )

    def pull_registry(self, *, issue_certificate: bool = False) -> ReadOnlyRegistry:
        """The read-only pull endpoint of :meth:`registry`'s storage (files in
        ``<run dir>/registry-pull``)."""
        pki = self.cluster.pki_dir
        return ReadOnlyRegistry(
            self.cluster.directory / "registry-pull",
            storage_dir=self.registry().storage_dir,
            binary=go_binaries.registry().path("registry"),
            ca=CertificateAuthority.load(pki, "cluster-ca") if issue_certificate else None,
            ca_file=pki / "cluster-ca.crt",
            credentials=PULL_CREDENTIALS,
            host=NODE_IP,
            port=PULL_PORT,
            config_path=self._config_path("registry-pull.yml"),
        )

    def git_server(self) -> GitServer:
        """The platform's git server: files in ``<run dir>/git``, on the node address."""
        return GitServer(self.cluster.directory / "git", host=NODE_IP)

    def services(self) -> list[Service]:
        """The services in start order (the registry, the git server, backends, the gateway)."""
        registry = self.registry()
        credentials = registry.credentials
        git = self.git_server()
        pull = self.pull_registry()
        return [
            Service(
                name="registry",
                argv=registry.argv(),
                health_url=f"{registry.url}/v2/",
                env=registry.env(),
                health_auth=(credentials.username, credentials.password),
            ),
            # The log store and the SMTP server (toolforge_dev.logstore, toolforge_dev.mailpit).
            Service(
                name="logstore",
                argv=platform_store(self.cluster).argv(),
                health_url=f"{platform_store(self.cluster).url}/health",
            ),
            Service(
                name="mailpit",
                argv=platform_mailpit(self.cluster).argv(),
                health_url=f"{platform_mailpit(self.cluster).url}/readyz",
            ),
            Service(
                name="registry-pull",
                argv=pull.argv(),
                health_url=f"{pull.url}/v2/",
                env=pull.env(),
                health_auth=(PULL_CREDENTIALS.username, PULL_CREDENTIALS.password),
            ),
            Service(name="git", argv=git.nginx_argv(), health_url=git.health_url),
            Service(
                name="git-backend", argv=git.fcgiwrap_argv(), health_url=git.backend_health_url
            ),
            Service(
                name="jobs-api",
                argv=self._python_argv("toolforge_jobs", "jobs-api.yaml"),
                health_url=f"https://localhost:{JOBS_API_PORT}/v1/healthz",
            ),
            Service(
                name="builds-api",
                argv=self._python_argv("toolforge_builds", "builds-api.yaml"),
                health_url=f"https://localhost:{BUILDS_API_PORT}/v1/healthz",
            ),
            Service(
                name="envvars-api",
                argv=self._python_argv("toolforge_envvars", "envvars-api.yaml"),
                health_url=f"https://localhost:{ENVVARS_API_PORT}/v1/healthz",
            ),
            Service(
                name="envvars-webhook",
                argv=self._python_argv("toolforge_envvars.webhook", "envvars-webhook.yaml"),
                health_url=f"https://{NODE_IP}:{ENVVARS_WEBHOOK_PORT}/healthz",
            ),
            Service(
                name="logs-api",
                argv=self._python_argv("toolforge_logs", "logs-api.yaml"),
                health_url=f"https://localhost:{LOGS_API_PORT}/v1/healthz",
            ),
            Service(
                name="emailer",
                argv=self._python_argv("toolforge_emailer", "emailer.yaml"),
                health_url=f"https://localhost:{emailer.EMAILER_PORT}/healthz",
            ),
            Service(
                name="gateway",
                argv=self._python_argv("toolforge_gateway", "gateway.yaml"),
                health_url=f"{self.gateway_url}/healthz",
                health_needs_cert=True,
            ),
        ]

    def _python_argv(self, module: str, config: str) -> list[str]:
        """``python -m <module> --config <run dir>/config/<config>``: how every platform
        service written here is started."""
        return [sys.executable, "-m", module, "--config", str(self._config_path(config))]

    def gateway_config(self) -> dict[str, object]:
        """The gateway's settings (``toolforge_gateway.settings.GatewaySettings`` keys)."""
        pki = self.cluster.pki_dir
        return {
            "host": "127.0.0.1",
            "port": GATEWAY_PORT,
            "tls_cert_file": str(pki / "gateway-server.crt"),
            "tls_key_file": str(pki / "gateway-server.key"),
            "client_ca_files": [str(pki / "cluster-ca.crt")],
            "backend_client_cert_file": str(pki / "gateway-backend-client.crt"),
            "backend_client_key_file": str(pki / "gateway-backend-client.key"),
            "backend_ca_file": str(pki / "backend-ca.crt"),
            "routes": {
                "jobs": {"url": f"https://localhost:{JOBS_API_PORT}"},
                "builds": {"url": f"https://localhost:{BUILDS_API_PORT}"},
                "envvars": {"url": f"https://localhost:{ENVVARS_API_PORT}"},
                "logs": {"url": f"https://localhost:{LOGS_API_PORT}"},
            },
            "public_url": self.gateway_url,
            # REFERENCE.md, "Logs": the jobs API's identity may only write job events
            "service_identities": {"jobs-api": [r"/logs/v1/tool/[^/]+/source/jobs-api/log"]},
            "graceful_shutdown_seconds": 5,
        }

    def jobs_api_config(self) -> dict[str, object]:
        """The jobs API's settings (``toolforge_jobs.settings.JobsSettings`` keys)."""
        pki = self.cluster.pki_dir
        return {
            "host": "127.0.0.1",
            "port": JOBS_API_PORT,
            "tls_cert_file": str(pki / "jobs-api-server.crt"),
            "tls_key_file": str(pki / "jobs-api-server.key"),
            "backend_ca_file": str(pki / "backend-ca.crt"),
            "kubeconfig": str(self.cluster.service_kubeconfig("jobs-api")),
            "homes_dir": str(self.cluster.homes_dir),
            # build service images: checked and listed through the pull endpoint with the
            # pull-only account (never the push account), pulled by pods from there
            "registry_pull_address": self.pull_registry().address,
            "registry_ca_file": str(pki / "cluster-ca.crt"),
            "registry_username": PULL_CREDENTIALS.username,
            "registry_password": PULL_CREDENTIALS.password,
            # .../jobs/NAME/logs reads the log store too (toolforge_jobs.logstream)
            "logstore_url": platform_store(self.cluster).url,
            "logstore_username": LOGSTORE_USER,
            "logstore_password_file": str(platform_store(self.cluster).password_file),
            "logstore_ca_file": str(pki / "cluster-ca.crt"),
            **jobs_api_web_settings(),
        }

    def builds_api_config(self) -> dict[str, object]:
        """The builds API's settings (``toolforge_builds.settings.BuildsSettings`` keys),
        with the registry's URL, CA and credentials (``/quotas``, ``/clean``)."""
        pki = self.cluster.pki_dir
        registry = self.registry()
        return {
            "host": "127.0.0.1",
            "port": BUILDS_API_PORT,
            "tls_cert_file": str(pki / "builds-api-server.crt"),
            "tls_key_file": str(pki / "builds-api-server.key"),
            "backend_ca_file": str(pki / "backend-ca.crt"),
            "kubeconfig": str(self.cluster.service_kubeconfig("builds-api")),
            "registry": registry.address,
            "registry_url": registry.url,
            "registry_ca_file": str(registry.ca_file),
            "run_image": buildpacks.run_image_in_registry(registry.address),
            "git_ca_file": str(pki / "cluster-ca.crt"),
            # the platform's own git server (an IP address: not a public host)
            "trusted_source_prefixes": [self.git_server().base_url + "/"],
            "registry_username": registry.credentials.username,
            "registry_password": registry.credentials.password,
        }

    def envvars_api_config(self) -> dict[str, object]:
        """The envvars API's settings (``toolforge_envvars.settings.EnvvarsSettings`` keys)."""
        pki = self.cluster.pki_dir
        return {
            "host": "127.0.0.1",
            "port": ENVVARS_API_PORT,
            "tls_cert_file": str(pki / "envvars-api-server.crt"),
            "tls_key_file": str(pki / "envvars-api-server.key"),
            "backend_ca_file": str(pki / "backend-ca.crt"),
            "kubeconfig": str(self.cluster.service_kubeconfig("envvars-api")),
        }

    def logs_api_config(self) -> dict[str, object]:
        """The logs API's settings (``toolforge_logs.settings.LogsSettings`` keys): the log
        store's URL, CA and password file (:mod:`toolforge_dev.logstore`)."""
        pki = self.cluster.pki_dir
        store = platform_store(self.cluster)
        return {
            "host": "127.0.0.1",
            "port": LOGS_API_PORT,
            "tls_cert_file": str(pki / "logs-api-server.crt"),
            "tls_key_file": str(pki / "logs-api-server.key"),
            "backend_ca_file": str(pki / "backend-ca.crt"),
            "kubeconfig": str(self.cluster.service_kubeconfig("logs-api")),
            "logstore_url": store.url,
            "logstore_username": LOGSTORE_USER,
            "logstore_password_file": str(store.password_file),
            "logstore_ca_file": str(store.ca_file),
        }

    def envvars_webhook_config(self) -> dict[str, object]:
        """The admission webhook's settings (``WebhookSettings`` keys): on the node address,
        server certificate from the cluster CA, callers must hold kube-apiserver's webhook
        client certificate."""
        pki = self.cluster.pki_dir
        return {
            "host": NODE_IP,
            "port": ENVVARS_WEBHOOK_PORT,
            "tls_cert_file": str(pki / "envvars-webhook-server.crt"),
            "tls_key_file": str(pki / "envvars-webhook-server.key"),
            "client_ca_file": str(pki / "cluster-ca.crt"),
            "client_cns": ["kube-apiserver"],
            "kubeconfig": str(self.cluster.service_kubeconfig("envvars-webhook")),
        }

    def webhook_configuration(self) -> dict[str, object]:
        """The MutatingWebhookConfiguration pointing kube-apiserver at the host webhook."""
        return webhook_configuration(
            ca_bundle=(self.cluster.pki_dir / "cluster-ca.crt").read_bytes(),
            url=f"https://{NODE_IP}:{ENVVARS_WEBHOOK_PORT}/mutate",
        )

    def _issue_webhook_certificate(self) -> None:
        pki = self.cluster.pki_dir
        if not (pki / "envvars-webhook-server.crt").exists():
            CertificateAuthority.load(pki, "cluster-ca").issue_pair(
                pki,
                "envvars-webhook-server",
                subject("toolforge-envvars-webhook"),
                server=True,
                ip_addresses=[NODE_IP],
            )

    def _write_configs(self) -> None:
        self.registry(issue_certificate=True).prepare()
        self._issue_webhook_certificate()
        self.pull_registry(issue_certificate=True).prepare()
        self.git_server().prepare(CertificateAuthority.load(self.cluster.pki_dir, "cluster-ca"))
        platform_store(self.cluster, issue_certificate=True).prepare()
        platform_mailpit(self.cluster, issue_certificate=True).prepare()
        emailer.prepare(self.cluster)
        for name, config in (
            ("gateway.yaml", self.gateway_config()),
            ("jobs-api.yaml", self.jobs_api_config()),
            ("builds-api.yaml", self.builds_api_config()),
            ("envvars-api.yaml", self.envvars_api_config()),
            ("envvars-webhook.yaml", self.envvars_webhook_config()),
            ("logs-api.yaml", self.logs_api_config()),
            ("emailer.yaml", emailer.emailer_config(self.cluster)),
        ):
            # 0600: the builds API's config holds the registry password.
            path = self._config_path(name)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(yaml.safe_dump(config, sort_keys=False))
            path.chmod(0o600)

    # ----- life cycle -------------------------------------------------------------------------

    def start(self, timeout: float = 30) -> None:
        """Start every service that is not running and wait until each is healthy.

        Raises :class:`ClusterError` with the service's log tail when one exits or stays
        unhealthy for ``timeout`` seconds, or when a binary (registry, VictoriaLogs, Mailpit) is
        not built, or when the log collector does not become ready.
        """
        needed = (go_binaries.registry(), go_binaries.victorialogs(), go_binaries.mailpit())
        for component in needed:
            if not component.is_built():
                raise ClusterError(f"{component.name} is not built yet (run `make binaries`)")
        self._write_configs()
        for service in self.services():
            if self._alive(service.name):
                self.progress(f"  {service.name}: already running")
                continue
            self.progress(f"  starting {service.name}")
            log = self.cluster.log_path(service.name).open("ab")
            proc = subprocess.Popen(
                service.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, **service.env},
            )
            log.close()
            self._pid_path(service.name).write_text(f"{proc.pid}\n")
            self._wait_healthy(service, timeout)
        # The log collector ships to the store, so it follows it (toolforge_dev.logcollector).
        logcollector.deploy(self.cluster, platform_store(self.cluster), self.progress)
        self.register_webhook()
        self._publish_run_image()

    def register_webhook(self) -> None:
        """Apply the envvars MutatingWebhookConfiguration (its webhook must be running: the
        failure policy is Fail)."""
        self.cluster.kubectl(
            go_binaries.Binaries.from_cache(),
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            "-",
            input_text=json.dumps(self.webhook_configuration()),
        )

    def unregister_webhook(self) -> None:
        """Delete the envvars MutatingWebhookConfiguration (before its webhook stops, so that
        tool pods are not refused meanwhile)."""
        with contextlib.suppress(ClusterError):
            self.cluster.kubectl(
                go_binaries.Binaries.from_cache(),
                "delete",
                "mutatingwebhookconfiguration",
                WEBHOOK_NAME,
                "--ignore-not-found",
            )

    def _publish_run_image(self) -> None:
        registry = self.registry()
        archive = buildpacks.build_images(registry.address, self.progress)["buildpacks-run"]
        buildpacks.publish_run_image(
            archive,
            registry_url=registry.url,
            ca_file=registry.ca_file,
            username=registry.credentials.username,
            password=registry.credentials.password,
            progress=self.progress,
        )

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM every service (the gateway first) and wait for each to drain and exit; the
        webhook configuration goes first."""
        if self.cluster.is_up():
            self.unregister_webhook()
        for service in self.services()[::-1]:
            self._stop(service.name, timeout)

    def stop_service(self, name: str, timeout: float = 15) -> None:
        """Stop only the service ``name`` (``"registry"``, ``"jobs-api"``, ``"builds-api"``,
        ``"gateway"``) like :meth:`stop` does, SIGKILL after ``timeout`` seconds; :meth:`start`
        starts it again. Tests use it for a real backend outage. Raises :class:`ValueError` for
        an unknown name."""
        if name not in {s.name for s in self.services()}:
            raise ValueError(f"no platform service named {name!r}")
        self._stop(name, timeout)

    def _stop(self, name: str, timeout: float) -> None:
        pid = self._pid(name)
        if pid is None or not _alive(pid):
            return
        self.progress(f"  stopping {name}")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self._pid_path(name).unlink(missing_ok=True)

    def health(self) -> dict[str, bool]:
        """Service name -> healthy now."""
        return {s.name: self._alive(s.name) and self._healthy(s) for s in self.services()}

    def dead(self) -> list[str]:
        """Services that were started and have exited since."""
        return [s.name for s in self.services() if self._pid(s.name) and not self._alive(s.name)]

    # ----- helpers ----------------------------------------------------------------------------

    def _pid(self, name: str) -> int | None:
        try:
            return int(self._pid_path(name).read_text().strip())
        except (OSError, ValueError):
            return None

    def _alive(self, name: str) -> bool:
        pid = self._pid(name)
        return pid is not None and _alive(pid)

    def _client(self, with_cert: bool) -> httpx.Client:
        """A client that trusts both CAs; ``with_cert`` presents the admin certificate (cluster
        CA), which passes the gateway's TLS handshake (health paths need no identity)."""
        pki = self.cluster.pki_dir
        context = ssl.create_default_context(cafile=pki / "cluster-ca.crt")
        context.load_verify_locations(cafile=pki / "backend-ca.crt")
        if with_cert:
            context.load_cert_chain(pki / "admin-client.crt", pki / "admin-client.key")
        return httpx.Client(verify=context, timeout=2)

    def _healthy(self, service: Service) -> bool:
        try:
            with self._client(service.health_needs_cert) as client:
                reply = client.get(service.health_url, auth=service.health_auth)
                return reply.status_code == 200
        except (httpx.HTTPError, OSError, ssl.SSLError):
            return False

    def _wait_healthy(self, service: Service, timeout: float) -> None:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if not self._alive(service.name):
                raise ClusterError(
                    f"{service.name} exited during start-up; last log lines:\n"
                    f"{self.cluster.log_tail(service.name)}"
                )
            if self._healthy(service):
                self.progress(f"  {service.name}: healthy after {time.monotonic() - started:.1f} s")
                return
            time.sleep(0.2)
        raise ClusterError(
            f"{service.name} not healthy after {timeout:.0f} s; last log lines:\n"
            f"{self.cluster.log_tail(service.name)}"
        )


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
