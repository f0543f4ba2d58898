"""The settings every backend has: serving over mTLS behind the gateway, its cluster identity,
its kube-apiserver client, shutdown and logging.

A backend subclasses :class:`BackendSettings` with its own ``env_prefix`` and fields, and may
override a default by re-declaring the field (e.g. its certificate file names). Sources,
highest priority first: keyword overrides (the command line's ``--host``/``--port``), the
environment (``<PREFIX><KEY>``; lists as JSON), the YAML file given to :func:`load_settings`,
then the defaults. Nothing is read at import time: settings are built in ``main()``, the app
factory or a test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import Field

from toolforge_auth.serving import FileSettings, load_file_settings
from toolforge_auth.settings import AuthSettings

__all__ = ["BackendSettings", "LogLevel", "load_settings"]

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class BackendSettings(FileSettings):
    """Common settings of the backends behind the gateway. Durations are in seconds."""

    host: str = Field(
        default="0.0.0.0",  # noqa: S104 - a backend Service listens on the pod's interfaces
        description="Address to listen on.",
    )
    port: int = Field(
        default=8443,
        ge=0,
        le=65535,
        description="Port to listen on (the gateway's default routes: <api>-api:8443).",
    )
    tls_cert_file: Path = Field(
        default=Path("api-server.crt"),
        description="TLS server certificate (from the backend CA; PlatformPKI "
        "<api>-api-server locally).",
    )
    tls_key_file: Path = Field(default=Path("api-server.key"), description="Its private key.")
    backend_ca_file: Path = Field(
        default=Path("backend-ca.crt"),
        description="The backend CA: client certificates from it identify the gateway (mTLS, "
        "optional at the handshake so health probes get in; required by every /v1/tool/... "
        "route).",
    )
    gateway_peer_cns: list[str] = Field(
        default_factory=lambda: ["toolforge-api-gateway"],
        description="CNs of backend-CA client certificates allowed to forward the "
        "ssl-client-subject-dn identity header.",
    )
    kubeconfig: Path | None = Field(
        default=None,
        description="Kubeconfig of the API's own cluster identity; unset: the in-cluster "
        "ServiceAccount.",
    )
    kube_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Longest time for one kube-apiserver call (connect plus response), except "
        "watches and log follows.",
    )
    kube_max_connections: int = Field(
        default=64, ge=2, description="Size of the connection pool to kube-apiserver."
    )
    retry_after_seconds: int = Field(
        default=5,
        ge=0,
        description="Retry-After of a 503 when kube-apiserver (or another dependency) cannot "
        "be reached.",
    )
    graceful_shutdown_seconds: float = Field(
        default=15.0,
        ge=0,
        description="Seconds in-flight requests get after SIGTERM/SIGINT (uvicorn "
        "timeout_graceful_shutdown); open streams are then cancelled.",
    )
    log_level: LogLevel = Field(default="INFO", description="Level of the process's log.")

    def auth_settings(self) -> AuthSettings:
        """These settings as :class:`toolforge_auth.AuthSettings` (for
        :func:`toolforge_auth.dependencies.install_auth`)."""
        return AuthSettings(
            backend_ca_file=self.backend_ca_file, gateway_peer_cns=list(self.gateway_peer_cns)
        )


S = TypeVar("S", bound=BackendSettings)


def load_settings(cls: type[S], config_file: Path | None = None, **overrides: Any) -> S:
    """``cls`` from ``overrides``, the environment and ``config_file`` (a YAML mapping of its
    keys), in that priority.

    Raises:
        pydantic.ValidationError: an invalid or unknown value.
        OSError: ``config_file`` cannot be read.
    """
    return load_file_settings(cls, config_file, **overrides)
