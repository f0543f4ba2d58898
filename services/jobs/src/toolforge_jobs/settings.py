"""Jobs API settings (pydantic-settings): environment, YAML file, command-line overrides.

Sources, highest priority first: keyword overrides (the CLI's ``--host``/``--port``),
environment variables ``TOOLFORGE_JOBS_<KEY>`` (``TOOLFORGE_JOBS_KUBECONFIG=/etc/jobs.kubeconfig``;
lists as JSON: ``TOOLFORGE_JOBS_GATEWAY_PEER_CNS='["toolforge-api-gateway"]'``), the YAML file
given to :func:`load_settings`, then the defaults below. Nothing is read at import time:
:func:`load_settings` (or ``JobsSettings(...)``) is called from ``main()`` or a test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from toolforge_jobs.routes import WebSettings
from toolforge_kit.settings import BackendSettings
from toolforge_kit.settings import load_settings as load_backend_settings

__all__ = ["JobsSettings", "load_settings"]


class JobsSettings(BackendSettings):
    """Everything the jobs API reads at start-up: the kit's common settings
    (:class:`toolforge_kit.BackendSettings`) and the jobs API's own. See
    ``services/jobs/README.md``.

    Durations are in seconds.
    """

    model_config = SettingsConfigDict(
        env_prefix="TOOLFORGE_JOBS_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    tls_cert_file: Path = Field(
        default=Path("jobs-api-server.crt"),
        description="TLS server certificate (PlatformPKI jobs-api-server, from the backend CA).",
    )
    tls_key_file: Path = Field(default=Path("jobs-api-server.key"), description="Its key.")
    kube_max_connections: int = Field(
        default=128,
        ge=2,
        description="Size of the shared connection pool to kube-apiserver; open log follows "
        "hold one each (watches have a pool of their own).",
    )

    #: Where tool homes live on the nodes (Toolforge: the NFS mount ``/data/project``). When
    #: set, a namespace whose ``toolforge.org/home`` annotation is not directly inside it is
    #: refused (502) instead of being mounted; ``null`` trusts the annotation.
    homes_dir: Path | None = None

    #: The per-tool object cache that serves ``list`` (:mod:`toolforge_jobs.cache`): a tool
    #: that lists gets a watch of its Jobs, CronJobs, Deployments, pods and FailedCreate
    #: events (5 watches, as the tool). ``false`` reads the apiserver on every list.
    cache_enabled: bool = True
    #: A tool's watches stop when it has not listed for this long.
    cache_idle_seconds: float = Field(default=600.0, gt=0)
    #: Most tools cached at once; the tool that listed least recently is dropped for a new
    #: one. The watch connection pool holds 5 per tool.
    cache_max_tools: int = Field(default=64, ge=1)
    #: ``timeoutSeconds`` of each watch request; the watch is then opened again from the
    #: last resourceVersion seen (no new list).
    cache_watch_seconds: int = Field(default=300, ge=10)
    #: How long a list waits for a tool's first cache fill, or for the cache to show a write
    #: made through this API, before it reads the apiserver directly instead.
    cache_wait_seconds: float = Field(default=5.0, gt=0)

    #: ConfigMap with key ``images-v1.yaml`` listing the images (REFERENCE.md).
    image_config_namespace: str = "tf-public"
    image_config_name: str = "image-config"
    #: How long the image list is reused before the ConfigMap is read again.
    image_cache_seconds: float = Field(default=60.0, gt=0)

    #: Upstream pod log connections open at once over all clients; a request that would pass
    #: it gets 503 with ``Retry-After``.
    logs_max_streams: int = Field(default=64, ge=1)
    #: Pods of one job whose logs are read (the newest ones).
    logs_max_pods: int = Field(default=16, ge=1)
    #: Longest ``follow=true`` response; then the stream ends (the client may reconnect).
    logs_follow_max_seconds: float = Field(default=3600.0, gt=0)
    #: While following, how often pods are listed to find pods that started (or whose
    #: containers are still waiting to start).
    logs_poll_seconds: float = Field(default=1.0, gt=0)
    #: Longer log lines are cut to this many bytes.
    logs_max_line_bytes: int = Field(default=64 * 1024, ge=256)

    #: Build service images (``toolforge_jobs.builtimages``): ``host[:port]`` of the registry
    #: endpoint pods pull tool images from; ``null``: jobs cannot use build service images.
    registry_pull_address: str | None = None
    #: Base URL of that registry's HTTP API (OCI distribution), for the tag check and the
    #: image list; unset: ``https://<registry_pull_address>``.
    registry_url: str | None = None
    #: PEM bundle that verifies the registry's TLS certificate; unset: the system's CAs.
    registry_ca_file: Path | None = None
    #: The registry account the jobs API reads with: a pull-only account (the one of the
    #: tools' image pull Secret), never the build service's push credentials.
    registry_username: str | None = None
    registry_password: SecretStr | None = None
    #: Bound on one registry request.
    registry_timeout_seconds: float = Field(default=10.0, gt=0)
    #: Name of the image pull Secret (``kubernetes.io/dockerconfigjson``) that onboarding puts
    #: into every tool namespace; pods of build service images carry it.
    registry_pull_secret: str = "toolforge-registry-pull"  # noqa: S105 - a Secret's name

    #: The log store (VictoriaLogs) that ``.../jobs/{name}/logs`` reads besides the pod log
    #: API, so lines of deleted or replaced pods are still answered (``logstream.py``);
    #: ``None``: the pod log API only.
    logstore_url: str | None = Field(default=None, pattern=r"^https?://")
    logstore_username: str = "toolforge-logs"
    #: A file holding the store's password (read on every store read).
    logstore_password_file: Path | None = None
    logstore_ca_file: Path | None = None
    #: How far back a read without ``follow`` looks in the store.
    logstore_window_seconds: int = Field(default=86_400, ge=60)

    #: Published jobs (``publish: "/"``, :mod:`toolforge_jobs.routes`): a tool is served at
    #: ``<tool>.<public_domain>`` through the Gateway ``gateway_namespace/gateway_name``; the
    #: admission policy on tool routes must name the same domain and Gateway.
    public_domain: str = Field(default="toolforge.org", min_length=1)
    gateway_namespace: str = Field(default="toolforge-web", min_length=1)
    gateway_name: str = Field(default="web", min_length=1)
    #: The public URL of a tool's host (``public_url`` of a published job, plus its path),
    #: with ``{tool}`` and ``{domain}``; locally ``http://{tool}.{domain}:30000`` (NodePort).
    public_url_template: str = "https://{tool}.{domain}"

    @model_validator(mode="after")
    def _check_web(self) -> JobsSettings:
        self.web()  # raises ValueError for a bad public_url_template
        return self

    def web(self) -> WebSettings:
        """The web settings of published jobs."""
        return WebSettings(
            public_domain=self.public_domain,
            gateway_namespace=self.gateway_namespace,
            gateway_name=self.gateway_name,
            url_template=self.public_url_template,
        )


def load_settings(config_file: Path | None = None, **overrides: Any) -> JobsSettings:
    """Settings from ``overrides``, the environment and ``config_file`` (YAML mapping of the
    keys of :class:`JobsSettings`), in that priority.

    Raises :class:`pydantic.ValidationError` for invalid values and :class:`OSError` when
    ``config_file`` cannot be read.
    """
    return load_backend_settings(JobsSettings, config_file, **overrides)
