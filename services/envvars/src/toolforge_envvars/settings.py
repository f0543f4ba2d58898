"""Settings of the envvars API (``TOOLFORGE_ENVVARS_*``) and of its admission webhook
(``TOOLFORGE_ENVVARS_WEBHOOK_*``), on the kit's :class:`toolforge_kit.BackendSettings`.

Build them in ``main()``, the app factory or a test, never at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from toolforge_auth.serving import FileSettings
from toolforge_kit.settings import BackendSettings, LogLevel
from toolforge_kit.settings import load_settings as load_backend_settings

__all__ = ["EnvvarsSettings", "WebhookSettings", "load_settings"]

#: Name of the one Secret per tool that holds its variables (``toolforge_envvars.secret``).
SECRET_NAME = "toolforge-envvars"  # noqa: S105 - an object name, not a password


class EnvvarsSettings(BackendSettings):
    """What the envvars API reads at start-up: the kit's common settings and its own."""

    model_config = SettingsConfigDict(env_prefix="TOOLFORGE_ENVVARS_", extra="forbid", frozen=True)

    tls_cert_file: Path = Field(
        default=Path("envvars-api-server.crt"),
        description="TLS server certificate (PlatformPKI envvars-api-server, backend CA).",
    )
    tls_key_file: Path = Field(default=Path("envvars-api-server.key"), description="Its key.")
    secret_name: str = Field(
        default=SECRET_NAME,
        description="The Secret in each tool namespace that holds the tool's variables.",
    )
    max_variables: int = Field(
        default=100,
        ge=1,
        le=500,
        description="Variables a tool may have (the quota; enforced race-free).",
    )
    max_value_bytes: int = Field(
        default=8192,
        ge=1,
        le=65536,
        description="Longest value, in bytes of UTF-8. With max_variables it bounds the Secret "
        "well under Kubernetes' 1 MiB object limit (100 x 8 KiB = 800 KiB).",
    )
    update_attempts: int = Field(
        default=20,
        ge=1,
        description="Compare-and-swap retries of one write when the Secret changed meanwhile.",
    )


class WebhookSettings(FileSettings):
    """The admission webhook (``toolforge-envvars-webhook``), called by kube-apiserver over
    TLS (it verifies the server certificate with the ``caBundle`` of the
    MutatingWebhookConfiguration). It reads Secret metadata only, as its own identity."""

    model_config = SettingsConfigDict(
        env_prefix="TOOLFORGE_ENVVARS_WEBHOOK_", extra="forbid", frozen=True
    )

    host: str = Field(
        default="0.0.0.0",  # noqa: S104 - a webhook Service listens on the pod's interfaces
        description="Address to listen on.",
    )
    port: int = Field(default=8443, ge=0, le=65535, description="Port to listen on.")
    tls_cert_file: Path = Field(
        default=Path("envvars-webhook-server.crt"),
        description="TLS server certificate (its SAN is the address kube-apiserver calls).",
    )
    tls_key_file: Path = Field(default=Path("envvars-webhook-server.key"), description="Its key.")
    client_ca_file: Path | None = Field(
        default=None,
        description="When set, callers of /mutate must present a client certificate from this "
        "CA with a CN in client_cns (kube-apiserver's webhook client identity, from its "
        "admission configuration); /healthz and /metrics need none. Unset: any TLS client may "
        "call (then a NetworkPolicy must confine who can reach the webhook).",
    )
    client_cns: list[str] = Field(
        default_factory=lambda: ["kube-apiserver"],
        description="CNs of the client certificates allowed to call, with client_ca_file.",
    )
    kubeconfig: Path | None = Field(
        default=None,
        description="Kubeconfig of the webhook's own identity; unset: the in-cluster "
        "ServiceAccount. It needs get on the tools' envvars Secret (metadata only is read).",
    )
    secret_name: str = Field(default=SECRET_NAME, description="As the API's secret_name.")
    kube_timeout_seconds: float = Field(
        default=2.0,
        gt=0,
        description="Bound on the one metadata read per admission (the configuration's "
        "timeoutSeconds is 5).",
    )
    graceful_shutdown_seconds: float = Field(default=5.0, ge=0, description="Drain time.")
    log_level: LogLevel = Field(default="INFO", description="Level of the process's log.")


def load_settings(config_file: Path | None = None, **overrides: Any) -> EnvvarsSettings:
    """:class:`EnvvarsSettings` from ``overrides``, the environment and ``config_file``.

    Raises:
        pydantic.ValidationError: an invalid or unknown value. OSError: unreadable file.
    """
    return load_backend_settings(EnvvarsSettings, config_file, **overrides)
