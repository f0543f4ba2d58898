"""Settings of the builds API, from ``TOOLFORGE_BUILDS_*`` environment variables.

Build :class:`BuildsSettings` in ``create_app()``/``main`` (never at import time) and pass it
down. The settings every backend has (serving, the backend CA and gateway peer CNs, the cluster
identity and kube client) come from :class:`toolforge_kit.BackendSettings`.

Defaults follow REFERENCE.md "Builds API (v1)": namespace ``image-build``, Pipeline
``buildpacks``, at most 4 parallel builds per tool, keep the newest 4 successful and
2 failed runs, registry storage 1 GiB per tool.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ByteSize, Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from toolforge_builds.rules import TRUSTED_SOURCE_PREFIX_RE
from toolforge_kit.settings import BackendSettings
from toolforge_kit.settings import load_settings as load_backend_settings

__all__ = ["DEFAULT_LOG_DENY_LIST", "BuildsSettings", "load_settings"]

#: Containers whose output is never shown to users (``fnmatch`` globs, matched against the
#: container name). Tekton's own init containers (``prepare``, ``place-scripts``,
#: ``working-dir-initializer``; ``place-tools``/``step-init`` in older Tekton releases) only
#: copy binaries and scripts. The export/push steps run with the registry credentials of the
#: image-push ServiceAccount (REFERENCE.md "Builds API": a known upstream gap is that they
#: are visible), so their output is hidden too.
DEFAULT_LOG_DENY_LIST: tuple[str, ...] = (
    "prepare",
    "place-scripts",
    "place-tools",
    "step-init",
    "working-dir-initializer",
    "step-export*",
    "step-image-push*",
    "step-push*",
)


class BuildsSettings(BackendSettings):
    """Where builds run and what they may use. Environment prefix ``TOOLFORGE_BUILDS_``.

    Image references are full OCI references (``host[:port]/path:tag``). Durations are
    seconds. Lists are given as JSON in the environment (pydantic-settings rules), e.g.
    ``TOOLFORGE_BUILDS_LOG_DENY_LIST='["prepare", "step-export*"]'``.
    """

    model_config = SettingsConfigDict(env_prefix="TOOLFORGE_BUILDS_", extra="forbid")

    namespace: str = Field(
        default="image-build", description="Namespace of the PipelineRuns (REFERENCE.md)."
    )
    registry: str = Field(
        default="registry.local",
        description="Registry host[:port]; images go to <registry>/tool-<tool>/<name>:latest.",
    )
    registry_url: str | None = Field(
        default=None,
        description="Base URL of the registry's HTTP API (Docker Registry HTTP API V2 / OCI "
        "distribution spec) for /quotas and /clean; unset: https://<registry>.",
    )
    registry_ca_file: Path | None = Field(
        default=None,
        description="PEM bundle that verifies the registry's TLS certificate; unset: the "
        "system trust store.",
    )
    registry_username: str | None = Field(
        default=None,
        description="HTTP Basic username at the registry (needs read and delete on the "
        "tool-* repositories and the catalog); unset: anonymous.",
    )
    registry_password: SecretStr | None = Field(
        default=None, description="Its password (never logged nor returned)."
    )
    registry_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Bound on one registry request."
    )
    registry_page_size: int = Field(
        default=1000,
        ge=1,
        description="Entries asked for per page of /v2/_catalog and /tags/list (`n`).",
    )
    registry_storage_limit: ByteSize = Field(
        default=ByteSize(1 << 30),
        description="Registry storage per tool shown by /quotas (REFERENCE.md: 1 GiB); "
        "bytes, or a size such as '1GiB'.",
    )
    builder_image: str = Field(
        default="registry.local/toolforge/buildpacks-builder:latest",
        description="Cloud Native Buildpacks builder image (BUILDER_IMAGE param).",
    )
    builder_image_latest: str | None = Field(
        default=None,
        description="Builder image used when a request sets use_latest_versions; "
        "unset: builder_image is used (and the start answer warns).",
    )
    builder_image_deprecated: str | None = Field(
        default=None,
        description="Builder image used when a request sets use_deprecated_versions (the "
        "older buildpack versions upstream keeps for tools not yet migrated); unset: "
        "builder_image is used (and the start answer warns).",
    )
    run_image: str = Field(
        default="registry.local/toolforge/buildpacks-run:latest",
        description="Run image of the built application (RUN_IMAGE param).",
    )
    pipeline_name: str = Field(default="buildpacks", description="Tekton Pipeline to run.")
    service_account: str = Field(
        default="buildpacks-service-account",
        description="ServiceAccount of the TaskRun pods; holds the registry push credentials.",
    )
    registry_auth_secret: str = Field(
        default="buildpacks-registry-auth",
        description="kubernetes.io/basic-auth Secret (in `namespace`) with the push "
        "credentials; its username/password are redacted from every log line.",
    )
    max_parallel_builds: int = Field(
        default=4, ge=1, description="Unfinished builds a tool may have at once (409 above)."
    )
    keep_successful: int = Field(
        default=4, ge=0, description="Successful runs kept per tool when pruning."
    )
    keep_failed: int = Field(
        default=2,
        ge=0,
        description="Failed, cancelled and timed-out runs kept per tool when pruning.",
    )
    log_deny_list: list[str] = Field(
        default_factory=lambda: list(DEFAULT_LOG_DENY_LIST),
        description="fnmatch globs of container names whose output is hidden.",
    )
    log_follow_start_timeout_seconds: float = Field(
        default=600.0,
        gt=0,
        description="How long `logs?follow=true` waits for the run's first pod to start.",
    )
    ls_remote_timeout_seconds: float = Field(
        default=20.0, gt=0, description="Bound on `git ls-remote` when resolving a ref."
    )
    git_ca_file: Path | None = Field(
        default=None,
        description="PEM bundle git uses to verify source hosts (GIT_SSL_CAINFO); "
        "unset: the system trust store.",
    )
    trusted_source_prefixes: list[str] = Field(
        default_factory=list,
        description="URL prefixes (https://host[:port]/path/, ending in '/') of the "
        "platform's own git servers: a source_url under one is accepted although its host "
        "is not public (locally https://10.244.0.1:8451/). Empty: only public hosts.",
    )

    @field_validator("trusted_source_prefixes")
    @classmethod
    def _trusted_prefixes(cls, value: list[str]) -> list[str]:
        for prefix in value:
            if not TRUSTED_SOURCE_PREFIX_RE.match(prefix):
                raise ValueError(
                    f"trusted source prefix {prefix!r} must be https://host[:port]/[path/] "
                    "(ending in '/')"
                )
        return value

    # ----- the kit's common settings, with the builds API's defaults -----------------------

    tls_cert_file: Path = Field(
        default=Path("builds-api-server.crt"),
        description="TLS server certificate (PlatformPKI builds-api-server, backend CA).",
    )
    tls_key_file: Path = Field(default=Path("builds-api-server.key"), description="Its key.")

    # ----- builds ----------------------------------------------------------------------------

    quota_reservation_grace_seconds: float = Field(
        default=120.0,
        gt=0,
        description="A reserved build slot whose PipelineRun does not exist yet is kept this "
        "long (its creation may still be in flight on another replica), then reclaimed.",
    )
    quota_update_attempts: int = Field(
        default=50, ge=1, description="Optimistic-concurrency retries of a quota update (409)."
    )
    logs_poll_seconds: float = Field(
        default=1.0, gt=0, description="While following logs, how often pods are re-listed."
    )
    logs_follow_max_seconds: float = Field(
        default=3600.0, gt=0, description="Longest `logs?follow=true` response."
    )


def load_settings(config_file: Path | None = None, **overrides: Any) -> BuildsSettings:
    """Settings from ``overrides``, the ``TOOLFORGE_BUILDS_*`` environment and ``config_file``
    (a YAML mapping of :class:`BuildsSettings` keys), in that priority.

    Raises :class:`pydantic.ValidationError` for invalid values and :class:`OSError` when
    ``config_file`` cannot be read.
    """
    return load_backend_settings(BuildsSettings, config_file, **overrides)
